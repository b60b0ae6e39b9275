r"""Sorter figures: L1 on the synthetic test sets (Table 1), one-step Spearman gain, Figure 5, timing.

SoDeep: a Sorting Deep net to learn ranking loss surrogates (Engilberge et al., CVPR 2019), §4.1. Every
function takes a :class:`ranking_jax.types.RankFn` (1-based ranks, rank 1 = highest), so learned sorters,
:func:`ranking_jax.ranks.sigmoid_ranks` and exact ranks are measured the same way.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax import metrics
from ranking_jax import ranks as ranks_lib
from ranking_jax import types

# Table 1 of the paper (L1 on 10 000 synthetic vectors, d = 100).
PAPER_TABLE1 = {"handcrafted (lambda=10)": 0.0350, "cnn": 0.0120, "lstm": 0.0033}


def l1_error(rank_fn: types.RankFn, scores: np.ndarray, targets: np.ndarray, *, chunk: int = 500) -> float:
  r"""Mean absolute error between ``rank_fn(scores) / d`` and the normalised targets (Table 1's L1).

  .. math:: \mathrm{L1} = \frac{1}{N d} \sum_{n=1}^{N} \sum_{i=1}^{d}
     \Big| \frac{f(\mathbf{y}^{(n)})_i}{d} - \frac{\mathbf{rk}(\mathbf{y}^{(n)})_i}{d} \Big|

  >>> import jax.numpy as jnp, numpy as np
  >>> from ranking_jax import ranks
  >>> s = np.array([[0.3, -1.0, 2.0]], np.float32)
  >>> l1_error(ranks.hard_ranks, s, np.array([[2, 3, 1]]) / 3.0)
  0.0
  """
  d = scores.shape[-1]
  fn = jax.jit(lambda s: rank_fn(s))
  total = 0.0
  for start in range(0, scores.shape[0], chunk):
    predicted = np.asarray(fn(jnp.asarray(scores[start:start + chunk])), np.float64) / d
    total += float(np.abs(predicted - targets[start:start + chunk]).sum())
  return total / targets.size


def spearman_gain(rank_fn: types.RankFn, *, seed: int = 0, num_lists: int = 500, length: int = 100,
                  step_size: float = 0.3) -> float:
  r"""One-step Spearman gain: how much one normalised gradient step through ``rank_fn`` helps.

  For ``num_lists`` lists, :math:`y \sim \mathcal{N}(0,1)^d` and
  :math:`s = \mathrm{clip}((0.3 y + \epsilon)/3, -1, 1)` with :math:`\epsilon \sim \mathcal{N}(0,1)^d`;
  :math:`g = \nabla_s \operatorname{mean}\big((f(s)/d - \mathbf{rk}(y)/d)^2\big)`, each row of :math:`g`
  scaled to norm :math:`\sqrt d`, then :math:`s' = s - 0.3\,\mathrm{std}(s)\,g` (per-row std). Returns the
  mean of :math:`\rho(s', y) - \rho(s, y)` (true Spearman correlations). A step-function sorter has a tiny
  L1 but a small gain; a useful surrogate needs both.
  """
  rng = np.random.default_rng(seed)
  y = rng.standard_normal((num_lists, length)).astype(np.float32)
  s = np.clip((0.3 * y + rng.standard_normal((num_lists, length))) / 3.0, -1.0, 1.0).astype(np.float32)
  target = np.asarray(ranks_lib.hard_ranks(jnp.asarray(y))) / length

  def loss(scores):
    return jnp.mean((rank_fn(scores) / length - target) ** 2)

  g = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(s)), np.float64)
  norms = np.linalg.norm(g, axis=-1, keepdims=True)
  g = np.where(norms > 0, g * np.sqrt(length) / np.where(norms > 0, norms, 1.0), 0.0)
  s_new = s - step_size * s.std(-1, keepdims=True) * g
  return float(np.mean(metrics.spearman_rho(s_new, y) - metrics.spearman_rho(s, y)))


def figure5_curve(rank_fn: types.RankFn, *, seed: int = 0, length: int = 100, step: float = 0.001
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Figure 5: ``(values, true_rank, predicted_rank)`` of element 0 as it sweeps ``[-1, 1]``.

  The other ``length - 1`` scores are drawn once from ``U[-1, 1]`` with ``numpy.random.default_rng(seed)``.
  """
  rng = np.random.default_rng(seed)
  base = rng.uniform(-1.0, 1.0, length).astype(np.float32)
  values = np.arange(-1.0, 1.0 + step / 2, step, dtype=np.float32)
  batch = np.repeat(base[None], len(values), axis=0)
  batch[:, 0] = values
  true = np.asarray(ranks_lib.hard_ranks(jnp.asarray(batch)))[:, 0]
  predicted = np.asarray(jax.jit(lambda s: rank_fn(s))(jnp.asarray(batch)))[:, 0]
  return values, true, predicted


def plot_figure5(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: str) -> None:
  """Writes the Figure-5 PNG: true rank and each named sorter's rank of element 0 vs. its value."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4.5))
  first = next(iter(curves.values()))
  ax.plot(first[0], first[1], label="ground truth", color="black", linewidth=1.0, drawstyle="steps-post")
  colors = ("tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")
  for (name, (values, _, predicted)), color in zip(curves.items(), colors):
    ax.plot(values, predicted, label=name, linewidth=1.2, color=color)
  ax.set_xlabel("value of y'_1")
  ax.set_ylabel("rank of y'_1 (1 = highest)")
  ax.set_title("Sorter behaviour (SoDeep Fig. 5)")
  ax.legend(loc="upper right", fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def forward_backward_ms(rank_fn: types.RankFn, *, batch_size: int = 32, length: int = 100,
                        repeats: int = 20, seed: int = 0) -> float:
  """Median wall time (ms) of a jitted forward+backward to the input of a Spearman-type loss."""
  rng = np.random.default_rng(seed)
  scores = jnp.asarray(rng.uniform(-1, 1, (batch_size, length)).astype(np.float32))
  target = jnp.asarray(rng.permutation(np.tile(np.arange(1, length + 1), (batch_size, 1)).T).T,
                       jnp.float32)
  grad_fn = jax.jit(jax.grad(lambda s: jnp.mean((rank_fn(s) - target) ** 2)))
  grad_fn(scores).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    grad_fn(scores).block_until_ready()
    times.append(time.perf_counter() - start)
  return 1000.0 * float(np.median(times))


def handcrafted(sharpness: float, *, standardize: bool = False) -> Callable[..., jax.Array]:
  """SoDeep's handcrafted sorter (eq. 11-12) with sharpness ``lambda`` as a RankFn (see ``sigmoid_ranks``)."""
  def rank_fn(scores, *, where: Optional[jax.Array] = None):
    return ranks_lib.sigmoid_ranks(scores, where=where, sharpness=sharpness, standardize=standardize)
  return rank_fn
