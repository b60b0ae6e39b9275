r"""A memorability-like score on the embedded procedural scenes (the SoDeep Spearman experiment's default).

*SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019, §4.2.1)
regresses the memorability of images and video frames (LaMem, MediaEval 2018) and scores the ranking by
Spearman's :math:`\rho`. This module gives the embedded scenes of :mod:`ranking_jax.data.scenes` a score of
the same kind, computed from the scene description, so the experiment runs without a download. Real
memorability data is read by :mod:`ranking_jax.projects.sodeep.memorability_files`.

What makes an image memorable (Isola et al., *What makes an image memorable?*, CVPR 2011; Khosla et al.,
*Understanding and predicting image memorability at a large scale*, ICCV 2015): a few large, close-up,
central objects that stand out and are distinctive; cluttered scenes and many small objects are forgotten.
The six factors, each in :math:`[0, 1]` (:data:`MEMORABILITY_FACTOR_NAMES`), are measured on the largest
visible object :math:`o^*` (the visible area :math:`A` is a fraction of the image):

.. math::

   f_\text{size} = \operatorname{clip}\Big(\frac{\log A_{o^*} - \log 0.003}{\log 0.25 - \log 0.003},
   0, 1\Big),
   \quad
   f_\text{central} = \operatorname{clip}\big(1 - \sqrt{2}\,\lVert c_{o^*} - (\tfrac12, \tfrac12)\rVert,
   0, 1\big),
   \quad
   f_\text{contrast} = \frac{\lVert \mathrm{rgb}_{o^*} - \mathrm{rgb}_\text{bg} \rVert_2}{\sqrt 3},

.. math::

   f_\text{distinct} = \frac{\log(k_{o^*} + 1)}{\log 20},\quad
   f_\text{count} = \frac{n_\text{vis} - 1}{7},\quad f_\text{clutter} = c,

with :math:`c_{o^*}` the object's centre, :math:`\mathrm{rgb}_\text{bg}` the background's base colour (a
saturated object on a dull background has a high contrast), :math:`k_{o^*}` the object's class (classes are
Zipf-distributed, class 0 the most frequent, so :math:`f_\text{distinct}` is the normalised surprisal
:math:`-\log p_k` of the class: rare objects are distinctive), :math:`n_\text{vis}` the number of visible
objects and :math:`c` the background clutter. The noise-free signal is :math:`s = w^\top f` with
:math:`w` = :data:`MEMORABILITY_WEIGHTS` = (0.8, 0.6, 2.5, 0.9, -0.6, -0.3) (contrast has a small spread,
hence its large weight; the weights are effects with the other factors fixed: scenes with more objects also
tend to have a larger largest object, so the count's raw Spearman correlation with the label is about
+0.08), standardised with its mean and standard deviation under the default generator,
:math:`z = (s - \mu_s)/\sigma_s`. The annotators see :math:`z` through independent noise
:math:`\varepsilon \sim \mathcal N(0, 1)` (drawn from ``(seed, scene index)``, independent of the
difficulty label's noise):

.. math::

   u = \frac{z + r\,\varepsilon}{\sqrt{1 + r^2}},\qquad
   \text{memorability} = \sigma(a + b\,u),\qquad
   \text{memorability\_noise\_free} = \sigma(a + b\,z),

with :math:`r` = ``annotator_noise`` (default 0.75: a perfect predictor of :math:`z` reaches Spearman
:math:`\rho \approx 0.79` with the noisy labels), :math:`\sigma` the logistic function and
:math:`a = 1.2053`, :math:`b = 0.6783` chosen so that a standard normal :math:`u` gives mean 0.75 and
standard deviation 0.12, the statistics of LaMem's scores (in :math:`(0, 1)`, skewed to the left).
Measured on 20 000 scenes: see :data:`MEASURED_STATISTICS`.

The label is distinct from ``difficulty`` (IDE RankNet): difficulty ignores position, contrast and class
rarity, and memorability ignores occlusion and truncation; they share clutter, and the size of objects
with opposite sign, so the two correlate (Spearman :math:`\rho \approx -0.4` noise-free, about -0.27 for the
noisy labels) without one determining the other.

Test-split size: Spearman's :math:`\rho` on :math:`n` test items has standard error
:math:`\approx (1 - \rho^2)\sqrt{1.06 / (n - 3)}` (Fieller, Hartley and Pearson, *Tests for rank
correlation coefficients. I*, Biometrika 1957), below 0.01 for :math:`\rho \approx 0.45` (the paper's
range) from 6745 items (10 603 at :math:`\rho = 0`, 5966 at 0.5, 2761 at 0.7; a bootstrap agrees within
5 %); the default test split has :data:`DEFAULT_NUM_TEST` = 6800; :func:`spearman_standard_error` and
:func:`spearman_test_size` compute it for other :math:`\rho`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence, Union

import numpy as np

from ranking_jax.data import scenes
from ranking_jax.data import sources

MEMORABILITY_FACTOR_NAMES = ("size", "central", "contrast", "distinct", "count", "clutter")
MEMORABILITY_WEIGHTS = (0.8, 0.6, 2.5, 0.9, -0.6, -0.3)
# Mean and standard deviation of w^T f under the default generator (20 000 scenes of seed 12345, measured
# by `_calibrate`).
SIGNAL_MEAN = 1.6901
SIGNAL_STD = 0.4590
DEFAULT_ANNOTATOR_NOISE = 0.75
# sigma(a + b u) with u ~ N(0, 1) has mean 0.75 and standard deviation 0.12 (LaMem's statistics); solved by
# Gauss-Hermite quadrature.
LOGIT_INTERCEPT = 1.20528
LOGIT_SLOPE = 0.67832
TARGET_MEAN = 0.75
TARGET_STD = 0.12
# Test items for a standard error of Spearman's rho below 0.01 at rho = 0.45 (see module docstring).
DEFAULT_NUM_TEST = 6800
# Statistics of the labels on 20 000 scenes of seed 12345 (default options), from `_calibrate`.
MEASURED_STATISTICS = {
    "memorability": {"mean": 0.7500, "std": 0.1191, "min": 0.2303, "max": 0.9764, "skewness": -0.73},
    "memorability_noise_free": {"mean": 0.7497, "std": 0.1189, "min": 0.3108, "max": 0.9743,
                                "skewness": -0.64},
    "spearman_noisy_vs_noise_free": 0.792,
    "spearman_noise_free_vs_difficulty_noise_free": -0.414,
    "spearman_noisy_vs_difficulty_noisy": -0.267,
}

_NOISE_STREAM = 101  # scenes.py draws streams 0 and 1 of (seed, index): a distinct one, independent noise
_SIZE_RANGE = (0.003, 0.25)


def annotator_noise_draw(seed: int, index: int) -> float:
  """The standard-normal annotator noise :math:`\\varepsilon` of scene ``index`` of generator ``seed``.

  >>> annotator_noise_draw(0, 3) == annotator_noise_draw(0, 3) != annotator_noise_draw(0, 4)
  True
  """
  return float(np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), _NOISE_STREAM]).standard_normal())


def memorability_factors(scene: scenes.Scene) -> np.ndarray:
  """The six memorability factors :data:`MEMORABILITY_FACTOR_NAMES` of a scene, float32 ``[6]`` in ``[0, 1]``.

  >>> f = memorability_factors(scenes.make_scene(0, 7))
  >>> f.shape, bool(((f >= 0) & (f <= 1)).all())
  ((6,), True)
  """
  visible = [o for o in scene.objects if o.visible] or list(scene.objects[-1:])
  areas = np.array([o.visible_area for o in visible])
  largest = visible[int(np.argmax(areas))]
  lo, hi = _SIZE_RANGE
  size = (math.log(max(float(areas.max()), 1e-4)) - math.log(lo)) / (math.log(hi) - math.log(lo))
  offset = math.hypot(largest.center[0] - 0.5, largest.center[1] - 0.5)
  background = np.asarray(scenes._hsv(*scene.background_hsv))  # pylint: disable=protected-access
  contrast = float(np.linalg.norm(np.asarray(largest.colour) - background)) / math.sqrt(3.0)
  distinct = math.log(largest.class_id + 1.0) / math.log(scenes.NUM_CLASSES)
  count = (len([o for o in scene.objects if o.visible]) - 1) / (scenes.MAX_OBJECTS - 1)
  values = (size, 1.0 - math.sqrt(2.0) * offset, contrast, distinct, count, scene.clutter)
  return np.clip(np.array(values, np.float64), 0.0, 1.0).astype(np.float32)


def memorability_from_latent(latent: Union[float, np.ndarray]) -> np.ndarray:
  """Maps a standard-normal latent to the memorability scale: ``sigmoid(a + b * latent)`` (float32).

  >>> round(float(memorability_from_latent(0.0)), 4)
  0.7695
  """
  latent = np.asarray(latent, np.float64)
  return (1.0 / (1.0 + np.exp(-(LOGIT_INTERCEPT + LOGIT_SLOPE * latent)))).astype(np.float32)


def memorability_signal(scene: scenes.Scene) -> float:
  """The standardised noise-free signal :math:`z = (w^\\top f - \\mu_s) / \\sigma_s` of a scene."""
  return (float(np.dot(MEMORABILITY_WEIGHTS, memorability_factors(scene))) - SIGNAL_MEAN) / SIGNAL_STD


def scene_memorability(scene: scenes.Scene, *, seed: int,
                       annotator_noise: float = DEFAULT_ANNOTATOR_NOISE) -> tuple[np.float32, np.float32]:
  """Returns ``(memorability, memorability_noise_free)`` of a scene of generator ``seed``.

  Args:
    scene: a scene description (:func:`ranking_jax.data.scenes.make_scene`).
    seed: the generator seed the scene was drawn with (the annotator noise is drawn from
      ``(seed, scene.index)``).
    annotator_noise: standard deviation :math:`r` of the annotator noise relative to the signal's.

  Returns:
    Two float32 scalars in ``(0, 1)`` (see the module docstring for the formula).

  >>> noisy, clean = scene_memorability(scenes.make_scene(0, 7), seed=0)
  >>> bool(0 < noisy < 1 and 0 < clean < 1)
  True
  >>> float(scene_memorability(scenes.make_scene(0, 7), seed=0, annotator_noise=0.0)[0]) == float(clean)
  True
  """
  if annotator_noise < 0:
    raise ValueError(f"`annotator_noise` must be >= 0, got {annotator_noise}.")
  z = memorability_signal(scene)
  epsilon = annotator_noise_draw(seed, scene.index)
  noisy = (z + annotator_noise * epsilon) / math.sqrt(1.0 + annotator_noise ** 2)
  return memorability_from_latent(noisy)[()], memorability_from_latent(z)[()]


def memorability_statistics(values: Union[Sequence[float], np.ndarray]) -> dict[str, float]:
  """Summary statistics of memorability scores: count, mean, std, min, max, skewness and quantiles.

  Meant to compare a label sample with LaMem's (mean about 0.75, standard deviation about 0.12, all in
  ``[0, 1]``, skewed to the left).

  >>> stats = memorability_statistics([0.5, 0.7, 0.9])
  >>> stats["count"], round(stats["mean"], 3), stats["min"], stats["q50"]
  (3, 0.7, 0.5, 0.7)
  """
  values = np.asarray(values, np.float64).reshape(-1)
  if values.size == 0:
    raise ValueError("cannot summarise zero values.")
  std = float(values.std())
  centred = values - values.mean()
  skew = float(np.mean(centred ** 3) / std ** 3) if std > 0 else 0.0
  stats = {"count": int(values.size), "mean": float(values.mean()), "std": std, "min": float(values.min()),
           "max": float(values.max()), "skewness": skew}
  levels = [0.01, 0.1, 0.5, 0.9, 0.99]
  quantiles = np.quantile(values, levels)
  stats.update({f"q{int(round(q * 100)):02d}": float(v) for q, v in zip(levels, quantiles)})
  return stats


def spearman_standard_error(rho: float, num_items: int) -> float:
  r"""Approximate standard error of Spearman's :math:`\rho` estimated on ``num_items`` items.

  :math:`(1 - \rho^2)\sqrt{1.06 / (n - 3)}`, the delta-method form of the variance of Fisher's
  :math:`z` of Spearman's :math:`\rho`, :math:`1.06 / (n - 3)` (Fieller, Hartley and Pearson, *Tests for
  rank correlation coefficients. I*, Biometrika 1957). Accurate for :math:`n \gtrsim 50` and
  :math:`|\rho| \lesssim 0.8` (checked against a bootstrap in the tests).

  >>> round(spearman_standard_error(0.5, 1000), 4)
  0.0245
  """
  if num_items <= 3:
    raise ValueError(f"need more than 3 items, got {num_items}.")
  if not -1.0 <= rho <= 1.0:
    raise ValueError(f"`rho` must be in [-1, 1], got {rho}.")
  return (1.0 - rho ** 2) * math.sqrt(1.06 / (num_items - 3))


def spearman_test_size(rho: float, target: float = 0.01) -> int:
  """Smallest number of test items for which :func:`spearman_standard_error` is at most ``target``.

  >>> spearman_test_size(0.45), spearman_test_size(0.0)
  (6745, 10603)
  """
  if target <= 0:
    raise ValueError(f"`target` must be > 0, got {target}.")
  if not -1.0 < rho < 1.0:
    raise ValueError(f"`rho` must be in (-1, 1), got {rho}.")
  n = math.ceil(1.06 * ((1.0 - rho ** 2) / target) ** 2 + 3.0)
  while n > 4 and spearman_standard_error(rho, n - 1) <= target:  # guard against rounding up one too many
    n -= 1
  return max(n, 4)


class MemorabilitySource(sources.ExampleSource):
  """Random-access procedural scenes with a memorability score: ``len(source)``, ``source[index_array]``.

  Example ``i`` is scene ``offset + i`` of generator ``seed`` (the same scene, and pixels, as
  ``ScenesSource(..., seed=seed, offset=offset)[i]``), with the memorability label of
  :func:`scene_memorability`.

  ``source[i]`` returns ``image`` float32 ``[H, W, 3]`` in ``[0, 1]``, ``memorability`` and
  ``memorability_noise_free`` float32 in ``(0, 1)``, and ``index`` int64; an index array gives a leading
  batch axis. :meth:`labels` returns the same without rendering (fast).

  Args:
    num_examples: number of examples.
    seed: generator seed.
    offset: first scene index (see :func:`make_memorability_splits`).
    image_size: side of the square images.
    annotator_noise: annotator noise :math:`r` relative to the signal (0 gives the noise-free score).
    **scene_options: other :class:`ranking_jax.data.scenes.ScenesSource` options (``clutter_range``,
      ``max_objects``); the standardisation constants hold for the defaults only.

  >>> source = MemorabilitySource(10, seed=0)
  >>> batch = source[np.arange(3)]
  >>> batch["image"].shape, batch["memorability"].shape, batch["memorability"].dtype
  ((3, 64, 64, 3), (3,), dtype('float32'))
  """

  def __init__(self, num_examples: int, *, seed: int = 0, offset: int = 0, image_size: int = 64,
               annotator_noise: float = DEFAULT_ANNOTATOR_NOISE, **scene_options: Any):
    if annotator_noise < 0:
      raise ValueError(f"`annotator_noise` must be >= 0, got {annotator_noise}.")
    self.scenes = scenes.ScenesSource(num_examples, seed=seed, offset=offset, image_size=image_size,
                                      **scene_options)
    self.annotator_noise = float(annotator_noise)

  @property
  def seed(self) -> int:
    return self.scenes.seed

  @property
  def offset(self) -> int:
    return self.scenes.offset

  def __len__(self) -> int:
    return len(self.scenes)

  def __repr__(self) -> str:
    return (f"MemorabilitySource(num_examples={len(self)}, seed={self.seed}, offset={self.offset}, "
            f"image_size={self.scenes.image_size}, annotator_noise={self.annotator_noise})")

  def scene(self, index: int) -> scenes.Scene:
    """The structured description of example ``index``."""
    return self.scenes.scene(index)

  def _labels(self, index: int) -> dict[str, np.ndarray]:
    index = self.check_index(index)
    scene = self.scenes.scene(index)
    noisy, clean = scene_memorability(scene, seed=self.seed, annotator_noise=self.annotator_noise)
    return {"memorability": np.float32(noisy), "memorability_noise_free": np.float32(clean),
            "index": np.int64(index)}

  def labels(self, indices: Union[int, Sequence[int], np.ndarray]) -> dict[str, np.ndarray]:
    """Like ``source[indices]`` without the images (for label statistics)."""
    if np.ndim(indices) == 0:
      return self._labels(int(indices))
    examples = [self._labels(int(i)) for i in np.asarray(indices).reshape(-1)]
    if not examples:
      raise ValueError("cannot build a batch from zero indices.")
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    example = self._labels(index)
    example["image"] = self.scenes.render(self.scenes.scene(index))
    return example


def make_memorability_splits(num_train: int = 8000, num_validation: int = 2000,
                             num_test: int = DEFAULT_NUM_TEST, *, seed: int = 0,
                             **options: Any) -> dict[str, MemorabilitySource]:
  """Train / validation / test memorability sources over disjoint scene-index ranges of one seed.

  The default test split (6800 scenes) keeps the standard error of the test Spearman :math:`\\rho` below
  0.01 for :math:`\\rho \\ge 0.45` (:func:`spearman_test_size`).

  >>> splits = make_memorability_splits(10, 5, 5)
  >>> [len(splits[k]) for k in ("train", "validation", "test")], splits["test"].offset
  ([10, 5, 5], 15)
  """
  return {
      "train": MemorabilitySource(num_train, seed=seed, offset=0, **options),
      "validation": MemorabilitySource(num_validation, seed=seed, offset=num_train, **options),
      "test": MemorabilitySource(num_test, seed=seed, offset=num_train + num_validation, **options),
  }


def _calibrate(num_scenes: int = 20000, seed: int = 12345) -> dict[str, Any]:
  """Re-derives SIGNAL_MEAN and SIGNAL_STD and the label statistics (developer tool, about a minute)."""
  sample = [scenes.make_scene(seed, i) for i in range(num_scenes)]
  signal = np.array([np.dot(MEMORABILITY_WEIGHTS, memorability_factors(s)) for s in sample])
  labels = np.array([scene_memorability(s, seed=seed) for s in sample])
  difficulty = np.array([scenes.scene_difficulty(s) for s in sample])
  return {"signal_mean": float(signal.mean()), "signal_std": float(signal.std()), "labels": labels,
          "difficulty": difficulty, "factors": np.stack([memorability_factors(s) for s in sample])}
