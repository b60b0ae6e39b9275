"""Deep multi-task attribute-driven ranking for fine-grained sketch retrieval (Song et al.): task
``sketch_retrieval``, the QMUL data, the embedded shoe sketches and the three-branch network.

Results and launch commands: ``README.md`` in this folder.
"""

from ranking_jax.projects.sketch_retrieval import sketch_net  # registers "sketch_triplet_net"
