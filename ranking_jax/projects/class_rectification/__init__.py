"""Class Rectification Loss (Dong, Gong, Zhu): task ``class_rectification``, its attribute data and DeepID2.

Results and launch commands: ``README.md`` in this folder.
"""

from ranking_jax.projects.class_rectification import deepid2  # registers "deepid2_attributes"
