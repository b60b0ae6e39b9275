"""SoDeep sorters: learned differentiable proxies of the ranking function, as ``rank_fn``s.

SoDeep: a Sorting Deep net to learn ranking loss surrogates (Engilberge et al., CVPR 2019).

Which rank function to use: on SoDeep's synthetic benchmark the handcrafted sorter on standardised scores,
``ranking_jax.ranks.sigmoid_ranks(scores, sharpness=lam, standardize=True)``, is on or above the L1 /
gradient-quality trade-off of every learned sorter we trained (at lam = 7 it beats the shipped LSTM on
both), at under 1 ms instead of ~50 ms (``ranking_jax/sorters/README.md``); the learned sorters are here to
reproduce and extend the paper.

>>> from ranking_jax import sorters
>>> rank_fn = sorters.load_pretrained(sorters.available_pretrained()[0])  # doctest: +SKIP
>>> rank_fn(scores, where=mask)  # 1-based soft ranks, rank 1 = highest  # doctest: +SKIP
"""

from ranking_jax.sorters.models import CNNSorter
from ranking_jax.sorters.models import LSTMSorter
from ranking_jax.sorters.models import PairwiseSorter
from ranking_jax.sorters.models import build_sorter
from ranking_jax.sorters.pretrained import SorterRankFn
from ranking_jax.sorters.pretrained import available_pretrained
from ranking_jax.sorters.pretrained import load_pretrained
from ranking_jax.sorters.pretrained import pretrained_metadata
from ranking_jax.sorters.synthetic import sample_batch
from ranking_jax.sorters.synthetic import sample_scores
from ranking_jax.sorters.synthetic import target_ranks

__all__ = [
    "CNNSorter", "LSTMSorter", "PairwiseSorter", "SorterRankFn", "available_pretrained", "build_sorter",
    "load_pretrained", "pretrained_metadata", "sample_batch", "sample_scores", "target_ranks",
]
