r"""Flax Linen sorter networks (SoDeep, Engilberge et al., CVPR 2019, §3.1.1 and Fig. 3).

A sorter :math:`f_{\Theta_B}` maps a score vector :math:`\mathbf{y} \in \mathbb{R}^d` to an estimate of its
normalised rank vector and is trained with the L1 loss of eq. (1):

.. math:: \min_{\Theta_B} \sum_{n=1}^{N} \big\| \mathbf{rk}(\mathbf{y}^{(n)}) - f_{\Theta_B}(\mathbf{y}^{(n)})
   \big\|_1 .

Every module here is called as ``module.apply(variables, scores[B, d], where[B, d], train=...)`` and returns
``rk / n`` estimates of shape ``[B, d]`` (rank 1 = largest; masked entries are 0). Use
:class:`ranking_jax.sorters.SorterRankFn` to turn trained variables into a frozen ``rank_fn``.

* :class:`LSTMSorter` -- Fig. 3a: a bidirectional LSTM then a linear map. ``head="position"`` (default) uses
  one shared affine map per position and serves any length ``2..d_max`` with masks; ``head="dense"`` is the
  authors' map from all ``d x 2H`` features to the ``d`` outputs (fixed length only).
* :class:`CNNSorter` -- Fig. 3b: 8 blocks of 1-D convolution + BatchNorm + ReLU, then an affine layer
  from all features to ``d`` outputs (fixed length only).
* :class:`PairwiseSorter` -- ours: a learned comparator whose sharpness adapts to the local spacing of the
  scores, permutation-equivariant, any length, masks natively (see its docstring).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax import utils

Array = jax.Array

def _compact(x: Array, where: Array) -> tuple[Array, Array]:
  """Moves valid items to the front (stable); returns the moved array and the permutation used."""
  order = jnp.argsort(~where, axis=-1, stable=True)
  return jnp.take_along_axis(x, order, axis=-1), order


def _uncompact(x: Array, order: Array) -> Array:
  inverse = jnp.argsort(order, axis=-1)
  return jnp.take_along_axis(x, inverse, axis=-1)


class LSTMSorter(nn.Module):
  """SoDeep's recurrent sorter (Fig. 3a): stacked bidirectional LSTM then an affine projection.

  Attributes:
    hidden_size: LSTM units per direction (the authors' released model uses 512, their smaller one 128).
    num_layers: stacked bidirectional layers (2 in the authors' code).
    head: ``"position"`` (a shared affine map per position; variable length with masks) or ``"dense"``
      (the authors' map from all ``d x 2H`` features to ``d`` outputs; needs ``length``).
    length: the fixed list length for ``head="dense"``.
    standardize_inputs: standardise each list first (:func:`ranking_jax.utils.standardize`: invariant to
      the scale and shift of the scores at any magnitude; the authors feed raw scores).
  """
  hidden_size: int = 128
  num_layers: int = 2
  head: str = "position"
  length: Optional[int] = None
  standardize_inputs: bool = True

  @nn.compact
  def __call__(self, scores: Array, where: Array, *, train: bool = False) -> Array:
    del train  # No train-time-only layers.
    if self.head not in ("position", "dense"):
      raise ValueError(f"LSTMSorter.head must be 'position' or 'dense', got {self.head!r}.")
    x = utils.standardize(scores, where) if self.standardize_inputs else jnp.where(where, scores, 0.0)
    # Valid items first so that masks may sit anywhere; the RNN then stops at each list's length.
    x, order = _compact(x, where)
    lengths = jnp.sum(where, axis=-1).astype(jnp.int32)
    h = x[..., None]
    # Zero carries in the input's dtype, so that float64 inputs run (and differentiate) in float64.
    zeros = jnp.zeros(h.shape[:-2] + (self.hidden_size,), h.dtype)
    for layer in range(self.num_layers):
      forward = nn.RNN(nn.OptimizedLSTMCell(self.hidden_size), name=f"forward_{layer}")(
          h, initial_carry=(zeros, zeros), seq_lengths=lengths)
      backward = nn.RNN(nn.OptimizedLSTMCell(self.hidden_size), reverse=True, keep_order=True,
                        name=f"backward_{layer}")(h, initial_carry=(zeros, zeros), seq_lengths=lengths)
      h = jnp.concatenate([forward, backward], axis=-1)
    if self.head == "position":
      out = nn.Dense(1, name="head")(h)[..., 0]
    else:
      if self.length is None or scores.shape[-1] != self.length:
        raise ValueError(f"LSTMSorter(head='dense') was built for lists of length {self.length}, got "
                         f"shape {scores.shape}.")
      out = nn.Dense(self.length, name="head")(h.reshape(h.shape[:-2] + (-1,)))
    out = _uncompact(out, order)
    return jnp.where(where, out, 0.0)


class CNNSorter(nn.Module):
  """SoDeep's convolutional sorter (Fig. 3b): 8 blocks of Conv1D + BatchNorm + ReLU, then an affine map.

  The 'valid' convolutions shrink the sequence; the last affine layer maps all remaining features to
  the ``length`` outputs, so the model serves one list length only.

  Attributes:
    length: the list length ``d``.
    features: channels of the 8 blocks.
    kernel_sizes: kernel widths of the 8 blocks (their sum minus 8 must be < ``length``).
    standardize_inputs: standardise each list first (:func:`ranking_jax.utils.standardize`).
  """
  length: int = 100
  features: Sequence[int] = (8, 16, 32, 64, 96, 128, 128, 128)
  kernel_sizes: Sequence[int] = (2, 3, 5, 7, 10, 7, 5, 3)
  standardize_inputs: bool = True

  @nn.compact
  def __call__(self, scores: Array, where: Array, *, train: bool = False) -> Array:
    if scores.shape[-1] != self.length:
      raise ValueError(f"CNNSorter was built for lists of length {self.length}, got shape {scores.shape}.")
    if len(self.features) != len(self.kernel_sizes):
      raise ValueError("CNNSorter: `features` and `kernel_sizes` must have the same length.")
    if sum(k - 1 for k in self.kernel_sizes) >= self.length:
      raise ValueError(f"CNNSorter: kernels {tuple(self.kernel_sizes)} shrink a length-{self.length} list "
                       "to nothing.")
    x = utils.standardize(scores, where) if self.standardize_inputs else jnp.where(where, scores, 0.0)
    h = x[..., None]
    for block, (channels, width) in enumerate(zip(self.features, self.kernel_sizes)):
      h = nn.Conv(channels, (width,), padding="VALID", name=f"conv_{block}")(h)
      h = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn_{block}")(h)
      h = nn.relu(h)
    out = nn.Dense(self.length, name="head")(h.reshape(h.shape[:-2] + (-1,)))
    return jnp.where(where, out, 0.0)


class _ChannelsFirstDense(nn.Module):
  """``nn.Dense`` (same parameters and initialisers) applied to features on the *first* axis."""
  features: int
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[0], self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    dtype = jnp.promote_types(x.dtype, kernel.dtype)
    out = jnp.tensordot(kernel.astype(dtype).T, x.astype(dtype), axes=1)
    return out + bias.astype(dtype).reshape((-1,) + (1,) * (x.ndim - 1))


class PairwiseSorter(nn.Module):
  r"""A learned comparator sorter whose sharpness adapts to the local spacing of the scores.

  With standardised scores :math:`z` and :math:`\delta_{ij} = z_j - z_i`, each item's distances to its
  nearest valid neighbours :math:`g_i^{(1)}, g_i^{(2)}` set a per-pair log-temperature
  :math:`t_{ij} = \mathrm{MLP}(\phi_{ij})` from features :math:`\phi_{ij}` symmetric in :math:`(i, j)`, and

  .. math:: \hat r_i = \frac{1}{n}\Big(1 + \sum_{j \ne i} \sigma\big(e^{t_{ij}}\,\delta_{ij}\big)\Big).

  This is SoDeep's handcrafted sorter (eq. 11-12) on standardised scores with a learned, pair-dependent
  :math:`\lambda = e^{t_{ij}}`, bounded by :math:`|t_{ij}| \le` ``max_log_temperature``. Trained with the
  L1 loss alone it learns sharp comparisons (a near-step function: tiny L1, small gradients far from
  ties). With a low bound, training drives every :math:`t_{ij}` to the bound, which makes the module
  :func:`ranking_jax.ranks.sigmoid_ranks` with ``standardize=True`` and :math:`\lambda = e^{\text{bound}}`
  (measured with the bound log 40: equal to 4 digits in L1 and one-step Spearman gain); use that
  function instead, at a hundredth of the cost. Since :math:`t_{ij} = t_{ji}`,
  :math:`\sigma(e^{t}\delta_{ij}) + \sigma(e^{t}\delta_{ji}) = 1` and the soft ranks always sum to
  :math:`n(n+1)/2`. Permutation-equivariant; any length; masked items never interact. Tied scores get
  the average of their ranks. Costs :math:`O(n^2 \cdot \text{hidden})` per list.

  Attributes:
    hidden: widths of the per-pair MLP.
    max_log_temperature: bound on :math:`|t_{ij}|` (keeps the comparison finite for exact ties).
  """
  hidden: Sequence[int] = (16, 16)
  max_log_temperature: float = 12.0

  @nn.compact
  def __call__(self, scores: Array, where: Array, *, train: bool = False) -> Array:
    del train
    n_items = scores.shape[-1]
    z = utils.standardize(scores, where)
    delta = z[..., None, :] - z[..., :, None]  # [..., i, j] = z_j - z_i
    pair_valid = where[..., None, :] & where[..., :, None] & ~jnp.eye(n_items, dtype=bool)
    abs_delta = jnp.where(pair_valid, jnp.abs(delta), 1e3)
    k = min(2, max(n_items - 1, 1))
    nearest = -jax.lax.top_k(-abs_delta, k)[0]  # [..., i, k] ascending distances
    if k == 1:
      nearest = jnp.concatenate([nearest, nearest], axis=-1)
    # No neighbour at all (one-element list): any finite spacing will do.
    nearest = jnp.where(nearest >= 1e3, 1.0, nearest)
    log_gap = jnp.log(nearest + 1e-4)  # [..., i, 2]
    n_valid = jnp.sum(where, axis=-1).astype(z.dtype)
    # Since t_ij = t_ji and sigma(-x) = 1 - sigma(x), only the pairs i < j are evaluated; items are
    # gathered to pairs and pairs summed back to items with static one-hot matmuls (no scatter in the
    # backward pass). The MLP runs channels-first, [out, F] x [F, pairs]: XLA's CPU dot is much faster
    # so than [pairs, F] x [F, out] with F, out ~ 16.
    first, second = np.triu_indices(n_items, 1)
    to_first = jax.nn.one_hot(first, n_items, dtype=z.dtype).T  # [n, P]
    to_second = jax.nn.one_hot(second, n_items, dtype=z.dtype).T
    w = where.astype(z.dtype)
    valid = (w @ to_first) * (w @ to_second)  # [..., P]
    delta = z @ to_second - z @ to_first  # z_j - z_i
    log_abs = jnp.log(jnp.where(valid > 0, jnp.abs(delta), 1.0) + 1e-4)
    g1_i, g1_j = log_gap[..., 0] @ to_first, log_gap[..., 0] @ to_second
    g2_i, g2_j = log_gap[..., 1] @ to_first, log_gap[..., 1] @ to_second
    log_n = jnp.broadcast_to(jnp.log(jnp.maximum(n_valid, 1.0))[..., None], delta.shape)
    features = jnp.stack([
        log_abs,
        g1_i + g1_j, jnp.abs(g1_i - g1_j),
        g2_i + g2_j, jnp.abs(g2_i - g2_j),
        jnp.minimum(g1_i, g1_j) - log_abs,
        log_n,
    ], axis=0)  # [F, ..., P]
    h = features
    for layer, width in enumerate(self.hidden):
      h = nn.gelu(_ChannelsFirstDense(width, name=f"pair_{layer}")(h))
    log_temperature = _ChannelsFirstDense(1, bias_init=nn.initializers.constant(2.0),
                                          name="temperature")(h)[0]
    log_temperature = self.max_log_temperature * jnp.tanh(log_temperature / self.max_log_temperature)
    compare = valid * jax.nn.sigmoid(jnp.exp(log_temperature) * delta)  # i below j, for i < j
    ranks = 1.0 + compare @ to_first.T + (valid - compare) @ to_second.T
    out = ranks / jnp.maximum(n_valid[..., None], 1.0)
    return jnp.where(where, out, 0.0)


ARCHITECTURES = {"lstm": LSTMSorter, "cnn": CNNSorter, "pairwise": PairwiseSorter}


def build_sorter(architecture: str, **kwargs: Any) -> nn.Module:
  """Instantiates a sorter by name (``"lstm"``, ``"cnn"``, ``"pairwise"``) with module attributes."""
  if architecture not in ARCHITECTURES:
    raise ValueError(f"Unknown sorter architecture {architecture!r}; expected one of "
                     f"{sorted(ARCHITECTURES)}.")
  return ARCHITECTURES[architecture](**kwargs)


def fixed_length(module: nn.Module) -> Optional[int]:
  """The only list length a module accepts, or None if it serves any length (with masks)."""
  if isinstance(module, CNNSorter):
    return module.length
  if isinstance(module, LSTMSorter) and module.head == "dense":
    return module.length
  return None
