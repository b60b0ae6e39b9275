"""Experiment tasks: each module turns an experiment config into a :class:`ranking_jax.train.Task`.

* :mod:`~ranking_jax.tasks.image_difficulty`: IDE RankNet (image difficulty regression with the Kendall
  RankLoss and MSE, alternating or weighted), on the embedded scenes or on VOC 2012 + VSD scores.
"""

from ranking_jax.tasks import image_difficulty

__all__ = ["image_difficulty"]
