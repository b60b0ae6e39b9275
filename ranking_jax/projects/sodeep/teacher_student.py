r"""Synthetic average-precision data: a random ReLU teacher network labels Gaussian points.

The synthetic experiment of *Training Deep Neural Networks via Direct Loss Minimization* (Song, Schwing,
Zemel, Urtasun, ICML 2016), which *SoDeep: a Sorting Deep net to learn ranking loss surrogates*
(Engilberge et al., CVPR 2019, §4.1.4, Figure 6) follows to compare its mAP loss (eq. 7) with the
structured hinge upper bound on :math:`1 - \mathrm{AP}` (:func:`ranking_jax.losses.hinge_ap_loss`):

1. draw ``num_points`` = 20 000 points :math:`x \sim \mathcal N(0, I_{10})`;
2. score them with a *teacher*: four fully connected ReLU layers (``hidden_sizes``) and a linear output
   unit, every weight and bias drawn from :math:`\mathcal N(0, 1)`;
3. label the top ``positive_fraction`` = 20 % of the points by teacher score positive (exactly
   ``round(0.2 * num_points)`` of them), the others negative;
4. split the points at random into ``num_train`` = 10 000 training and 10 000 test points.

A *student* of the same architecture (:class:`ReluMLP`, from a random initialisation) is then trained with
each loss and scored by the AP of its test scores. The protocol fixes the depth but not the widths; the
teacher's default hidden width is 64.

Everything is a pure function of ``seed`` (numpy ``default_rng`` streams, float64 teacher arithmetic, so
the labels do not depend on the platform).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax.models.registry import register_model

NUM_POINTS = 20000
INPUT_DIM = 10
HIDDEN_SIZES = (64, 64, 64, 64)
POSITIVE_FRACTION = 0.2
NUM_TRAIN = 10000

# Independent numpy streams of one seed.
_POINTS_STREAM = 0
_TEACHER_STREAM = 1
_SPLIT_STREAM = 2


@dataclasses.dataclass(frozen=True)
class TeacherStudentData:
  """The synthetic AP data set: inputs, binary labels and teacher scores of both splits.

  Attributes:
    x_train: float32 ``[num_train, dim]`` inputs.
    y_train: float32 ``[num_train]`` labels, 1 for the positives (the teacher's top 20 %), else 0.
    x_test: float32 ``[num_test, dim]``.
    y_test: float32 ``[num_test]``.
    teacher_train: float64 ``[num_train]`` teacher scores (positives are the highest ones overall).
    teacher_test: float64 ``[num_test]``.
    teacher_params: the teacher's ``[(W, b), ...]`` (float64), for :func:`relu_mlp_numpy`.
    threshold: the smallest positive teacher score.
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  teacher_train: np.ndarray
  teacher_test: np.ndarray
  teacher_params: tuple[tuple[np.ndarray, np.ndarray], ...]
  threshold: float


def init_teacher(rng: np.random.Generator, input_dim: int = INPUT_DIM,
                 hidden_sizes: Sequence[int] = HIDDEN_SIZES) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
  """Teacher weights and biases, every entry :math:`\\mathcal N(0, 1)` (float64): ReLU layers, 1 output.

  >>> params = init_teacher(np.random.default_rng(0), 10, (8, 8, 8, 8))
  >>> [w.shape for w, _ in params]
  [(10, 8), (8, 8), (8, 8), (8, 8), (8, 1)]
  """
  sizes = [int(input_dim)] + [int(h) for h in hidden_sizes] + [1]
  if min(sizes) < 1:
    raise ValueError(f"layer sizes must be positive, got {sizes}.")
  return tuple((rng.standard_normal((fan_in, fan_out)), rng.standard_normal(fan_out))
               for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))


def relu_mlp_numpy(params: Sequence[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
  """Scores ``[n]`` of a ReLU network ``[(W, b), ...]`` (ReLU after every layer but the last), float64.

  >>> params = ((np.eye(2), np.zeros(2)), (np.ones((2, 1)), np.zeros(1)))
  >>> relu_mlp_numpy(params, np.array([[1.0, -2.0], [3.0, 4.0]])).tolist()
  [1.0, 7.0]
  """
  h = np.asarray(x, np.float64)
  for layer, (w, b) in enumerate(params):
    h = h @ w + b
    if layer < len(params) - 1:
      h = np.maximum(h, 0.0)
  return h[..., 0]


def top_fraction_labels(scores: np.ndarray, fraction: float = POSITIVE_FRACTION) -> np.ndarray:
  """float32 0/1 labels marking exactly ``round(fraction * n)`` highest scores (ties broken by index).

  >>> top_fraction_labels(np.array([0.3, 0.9, 0.1, 0.5, 0.7]), 0.4).tolist()
  [0.0, 1.0, 0.0, 0.0, 1.0]
  """
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"`fraction` must be in (0, 1), got {fraction}.")
  scores = np.asarray(scores)
  num_positive = int(round(fraction * scores.shape[0]))
  labels = np.zeros(scores.shape[0], np.float32)
  labels[np.argsort(-scores, kind="stable")[:num_positive]] = 1.0
  return labels


def make_teacher_student_data(seed: int = 0, *, num_points: int = NUM_POINTS, input_dim: int = INPUT_DIM,
                              hidden_sizes: Sequence[int] = HIDDEN_SIZES,
                              positive_fraction: float = POSITIVE_FRACTION,
                              num_train: int = NUM_TRAIN) -> TeacherStudentData:
  """The synthetic AP data of Song et al. (ICML 2016) as used in SoDeep §4.1.4 (see the module docstring).

  Args:
    seed: seeds the points, the teacher and the split (independent streams).
    num_points: number of points (20 000).
    input_dim: input dimension (10).
    hidden_sizes: widths of the teacher's ReLU layers (four layers).
    positive_fraction: fraction of points, by teacher score, labelled positive (0.2).
    num_train: points in the training split (10 000); the rest are the test split.

  Returns:
    A :class:`TeacherStudentData`.

  >>> data = make_teacher_student_data(0, num_points=50, num_train=30, hidden_sizes=(4, 4, 4, 4))
  >>> data.x_train.shape, data.x_test.shape, int(data.y_train.sum() + data.y_test.sum())
  ((30, 10), (20, 10), 10)
  """
  if not 0 < num_train < num_points:
    raise ValueError(f"need 0 < num_train < num_points, got {num_train} and {num_points}.")
  seed = int(seed) & 0xFFFFFFFF
  x = np.random.default_rng([seed, _POINTS_STREAM]).standard_normal((num_points, input_dim))
  params = init_teacher(np.random.default_rng([seed, _TEACHER_STREAM]), input_dim, hidden_sizes)
  scores = relu_mlp_numpy(params, x)
  labels = top_fraction_labels(scores, positive_fraction)
  order = np.random.default_rng([seed, _SPLIT_STREAM]).permutation(num_points)
  train, test = order[:num_train], order[num_train:]
  return TeacherStudentData(
      x_train=x[train].astype(np.float32), y_train=labels[train], x_test=x[test].astype(np.float32),
      y_test=labels[test], teacher_train=scores[train], teacher_test=scores[test], teacher_params=params,
      threshold=float(scores[labels > 0].min()))


class ReluMLP(nn.Module):
  """The student: ReLU layers of ``hidden_sizes`` and one linear output unit; returns scores ``[...]``.

  Flax's default initialisation (LeCun normal weights, zero biases); the inputs' last axis is the feature
  axis. Called as ``model.apply(variables, x)`` (``train`` is accepted and ignored).

  >>> model = ReluMLP(hidden_sizes=(8, 8, 8, 8))
  >>> variables = model.init(jax.random.key(0), jnp.zeros((3, 10)))
  >>> model.apply(variables, jnp.ones((3, 10))).shape
  (3,)
  """
  hidden_sizes: Sequence[int] = HIDDEN_SIZES

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # no dropout or batch norm
    h = jnp.asarray(x, jnp.float32)
    for width in self.hidden_sizes:
      h = nn.relu(nn.Dense(int(width))(h))
    return nn.Dense(1)(h)[..., 0]


@register_model("relu_mlp")
def relu_mlp(*, hidden_sizes: Sequence[int] = HIDDEN_SIZES) -> ReluMLP:
  """The student :class:`ReluMLP` by name (``config.model.name = "relu_mlp"``)."""
  return ReluMLP(hidden_sizes=tuple(int(h) for h in hidden_sizes))
