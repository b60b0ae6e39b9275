"""SoDeep (Engilberge et al.): the rank-based losses used to train models — tasks ``sodeep_synthetic_ap``,
``sodeep_spearman``, ``sodeep_map``, ``sodeep_recall`` — with their private data and models.

The learned sorters and their training task are core: :mod:`ranking_jax.sorters`. Results and launch
commands: ``README.md`` in this folder.
"""

from ranking_jax.projects.sodeep import joint_embedding  # registers "joint_embedding"
from ranking_jax.projects.sodeep import memorability_model  # registers "memorability_regressor"
from ranking_jax.projects.sodeep import teacher_student  # registers "relu_mlp"
from ranking_jax.projects.sodeep import wildcat  # registers "wildcat"
