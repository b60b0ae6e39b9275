"""Ranking losses of the five papers, as pure JAX functions (lists on the last axis).

=========================================  ======================================================
paper                                      losses
=========================================  ======================================================
IDE RankNet (image difficulty)             :func:`kendall_rank_loss`, :func:`mse_loss`
Class Rectification Loss (imbalance)       :func:`class_rectification_loss`, :func:`minority_classes`,
                                           :func:`class_level_hard_mining`,
                                           :func:`instance_level_hard_mining`,
                                           :func:`triplet_margin_loss`, :func:`contrastive_loss`,
                                           :func:`histogram_loss`
SoDeep (learned sorter surrogates)         :func:`spearman_loss`, :func:`map_rank_loss`,
                                           :func:`recall_rank_loss` (any ``rank_fn``)
Deep convolutional ranking (multilabel)    :func:`multilabel_softmax_loss`,
                                           :func:`pairwise_ranking_loss`, :func:`warp_loss`,
                                           :func:`warp_loss_exact`, :func:`warp_loss_single_violator`
Attribute-driven sketch retrieval          :func:`triplet_ranking_loss`,
                                           :func:`attribute_prediction_loss`,
                                           :func:`attribute_similarity_loss`,
                                           :func:`sbir_multitask_loss`, :func:`fused_distance`
=========================================  ======================================================

The O(n^2) pairwise losses run in checkpointed row blocks (:mod:`ranking_jax.losses.pairs`), so their
memory is O(batch * n * block) in both the forward and the backward pass.
"""

from ranking_jax.losses import pairs
from ranking_jax.losses.average_precision import hinge_ap_loss
from ranking_jax.losses.kendall import kendall_rank_loss
from ranking_jax.losses.kendall import mse_loss
from ranking_jax.losses.multilabel import multilabel_softmax_loss
from ranking_jax.losses.multilabel import pairwise_ranking_loss
from ranking_jax.losses.multilabel import warp_loss
from ranking_jax.losses.multilabel import warp_loss_exact
from ranking_jax.losses.multilabel import warp_loss_single_violator
from ranking_jax.losses.pairs import pairwise_row_sums
from ranking_jax.losses.pairs import pairwise_sum
from ranking_jax.losses.rectification import HardMining
from ranking_jax.losses.rectification import class_level_hard_mining
from ranking_jax.losses.rectification import class_rectification_loss
from ranking_jax.losses.rectification import contrastive_loss
from ranking_jax.losses.rectification import histogram_loss
from ranking_jax.losses.rectification import instance_level_hard_mining
from ranking_jax.losses.rectification import minority_classes
from ranking_jax.losses.rectification import triplet_margin_loss
from ranking_jax.losses.sorting import map_rank_loss
from ranking_jax.losses.sorting import recall_rank_loss
from ranking_jax.losses.sorting import spearman_loss
from ranking_jax.ranks import tie_averaged_ranks  # re-exported: the exact targets of spearman_loss
from ranking_jax.losses.triplet import SBIR_TASK_WEIGHTS
from ranking_jax.losses.triplet import attribute_prediction_loss
from ranking_jax.losses.triplet import attribute_similarity_loss
from ranking_jax.losses.triplet import fused_distance
from ranking_jax.losses.triplet import sbir_multitask_loss
from ranking_jax.losses.triplet import triplet_ranking_loss

__all__ = [
    "HardMining", "SBIR_TASK_WEIGHTS", "attribute_prediction_loss", "attribute_similarity_loss",
    "class_level_hard_mining", "class_rectification_loss", "contrastive_loss", "fused_distance",
    "hinge_ap_loss", "histogram_loss", "instance_level_hard_mining", "kendall_rank_loss", "map_rank_loss",
    "minority_classes", "mse_loss", "multilabel_softmax_loss", "pairs", "pairwise_ranking_loss",
    "pairwise_row_sums", "pairwise_sum", "recall_rank_loss", "sbir_multitask_loss", "spearman_loss",
    "tie_averaged_ranks", "triplet_margin_loss", "triplet_ranking_loss", "warp_loss", "warp_loss_exact",
    "warp_loss_single_violator",
]
