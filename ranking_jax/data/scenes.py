r"""Procedural, seeded scenes: the embedded default data of the image-difficulty experiment.

No download and no TensorFlow. Example ``i`` of a :class:`ScenesSource` is regenerated from
``(seed, offset + i)`` alone, so any example (or any batch) can be read in any order, on any process,
and a resumed run sees the same pixels and labels.

A scene is a background with adjustable clutter (a smooth colour field, coloured distractor blobs and
pixel noise, all growing with ``clutter`` in ``[0, 1]``) and 1-8 objects drawn back to front. Each object
has a class (one of 20 = 5 shapes x 4 colours), a size, a position (centres may leave the image, so objects
are truncated by the border), a rotation, an elongation and an optional stripe texture; objects drawn later
occlude earlier ones.

Labels (all computed from the scene description on a fixed analysis grid, so they do not depend on the
rendered ``image_size``):

* ``difficulty``: a function of the five factors the IDE RankNet paper names ("background, complexity of
  scene, amount of objects, and whether they are occluded", plus size and truncation, as in the visual
  search difficulty data it uses), each normalised to ``[0, 1]``:

  .. math::

     f_\text{clutter} = c,\quad f_\text{count} = \frac{n_\text{vis} - 1}{7},\quad
     f_\text{small} = \operatorname{clip}\Big(\frac{\log 0.2 - \log \bar A}{\log 0.2 - \log 0.003},
     0, 1\Big),\quad f_\text{occl} = \overline{o},\quad f_\text{trunc} = \overline{t}

  with :math:`c` the clutter, :math:`n_\text{vis}` the number of visible objects, :math:`\bar A` the
  mean visible area (fraction of the image) of the visible objects, :math:`\overline{o}` and
  :math:`\overline{t}` the mean occluded and truncated fractions of the objects. Then

  .. math::

     z = w^\top f + \sigma_\text{ann}\,\varepsilon,\quad \varepsilon \sim \mathcal N(0, 1),\qquad
     \text{difficulty} = Q_\text{VSD}\big(\Phi((z - \mu_z) / \sigma_z)\big)

  where :math:`w` = :data:`DIFFICULTY_WEIGHTS`, :math:`\sigma_\text{ann}` is the annotator noise (by default
  0.75 times the standard deviation of :math:`w^\top f`, which caps the Kendall :math:`\tau` a perfect
  predictor of the noise-free score can reach at about 0.6), :math:`\mu_z, \sigma_z` are the mean and
  standard deviation of :math:`z` under the default generator, :math:`\Phi` is the standard normal CDF and
  :math:`Q_\text{VSD}` is the piecewise-linear quantile function of the real visual-search-difficulty scores
  (:data:`VSD_QUANTILES`). The result ranges over 2.455-9.628 with mean about 3.3, standard deviation about
  0.5 and a long right tail, like the real scores. ``difficulty_noise_free`` is the same map without
  :math:`\varepsilon`.

* ``attributes``: :data:`NUM_ATTRIBUTES` = 24 binary attributes, each a threshold on a visible scene
  statistic (:data:`ATTRIBUTE_NAMES`); the thresholds are calibrated so that the positive rates fall
  geometrically from about 1:1 to about 1:40 (a power law in the attribute's rank).
* ``labels``: a 20-way multi-hot vector of the object classes visible in the scene (at least 15 % of an
  object visible); classes are drawn with Zipf probabilities :math:`p_k \propto (k+1)^{-1.1}`, so label
  frequencies follow a power law.
* ``object_*``: the scene's object list, padded to :data:`MAX_OBJECTS` with ``object_mask``: class, shape,
  colour, centre, radius, rotation, aspect, stripes, depth order and visible/occluded/truncated fractions.
  It describes the scene completely (with :meth:`ScenesSource.scene`), so a line-drawing sketch renderer
  or a token caption can be added later without changing the generator.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence, Union

import numpy as np

from ranking_jax.data import augment

MAX_OBJECTS = 8
SHAPE_NAMES = ("disk", "square", "triangle", "cross", "star")
COLOUR_NAMES = ("red", "green", "blue", "yellow")
COLOUR_HUES = (0.0, 1.0 / 3.0, 0.61, 0.15)
NUM_SHAPES = len(SHAPE_NAMES)
NUM_COLOURS = len(COLOUR_NAMES)
NUM_CLASSES = NUM_SHAPES * NUM_COLOURS
# Class k (k = 0 is the most frequent) is the (shape, colour) pair below: a fixed interleaving so that the
# frequent classes are not all one shape or one colour.
CLASS_SHAPE = tuple((k * 2 + k // NUM_SHAPES) % NUM_SHAPES for k in range(NUM_CLASSES))
CLASS_COLOUR = tuple(k % NUM_COLOURS for k in range(NUM_CLASSES))
CLASS_NAMES = tuple(f"{COLOUR_NAMES[c]} {SHAPE_NAMES[s]}" for s, c in zip(CLASS_SHAPE, CLASS_COLOUR))
CLASS_ZIPF_EXPONENT = 1.1

FACTOR_NAMES = ("clutter", "count", "small", "occlusion", "truncation")
DIFFICULTY_WEIGHTS = (1.1, 1.2, 0.85, 1.3, 0.5)
# Mean and standard deviation of w^T f under the default generator (measured on 20 000 scenes by
# `_calibrate`); the annotator noise defaults to 0.75 times that standard deviation.
SIGNAL_MEAN = 1.247
SIGNAL_STD = 0.448
DEFAULT_ANNOTATOR_NOISE = 0.75
# Quantiles of the 11 540 visual-search-difficulty scores (Ionescu et al., CVPR 2016) at VSD_LEVELS.
VSD_LEVELS = (0.0, 0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99,
              0.995, 0.999, 1.0)
VSD_QUANTILES = (2.455, 2.548, 2.683, 2.740, 2.820, 2.900, 3.014, 3.088, 3.156, 3.220, 3.281, 3.360, 3.465,
                 3.697, 4.065, 4.849, 5.561, 6.172, 7.215, 9.627)

# Attribute j is positive when statistic j >= ATTRIBUTE_THRESHOLDS[j]; ordered by decreasing positive rate,
# which is 0.5 (2 / 41) ** (j / 23): from 1:1 down to 1:40.
ATTRIBUTE_NAMES = ("cluttered", "truncated", "red", "disk", "large_object", "green", "occluded", "striped",
                   "triangle", "blue", "high_coverage", "yellow", "square", "star", "cross",
                   "dark_background", "bright_background", "elongated", "off_centre", "colourful_background",
                   "no_tiny_object", "left_heavy", "top_heavy", "shaded_background")
# Calibrated on 20 000 scenes of seed 12345 (see `_calibrate`); valid for the default generator options.
ATTRIBUTE_THRESHOLDS = (0.344, 0.4825, 0.01538, 0.01831, 0.06104, 0.006592, 0.04204, 0.01953, 0.01001,
                        0.01465, 0.1423, 0.02441, 0.03223, 0.02645, 0.02846, -0.342, 0.8618, 1.776, 0.6753,
                        0.338, 0.1091, 0.008426, 0.01822, 0.1465)
NUM_ATTRIBUTES = len(ATTRIBUTE_NAMES)

# Analysis grid: 64 cells per image side, covering [-0.5, 1.5]^2 so truncated parts are measured too.
_ANALYSIS_CELLS_PER_SIDE = 64
_ANALYSIS_EXTENT = (-0.5, 1.5)
_MIN_VISIBLE_FRACTION = 0.15


@dataclasses.dataclass(frozen=True)
class SceneObject:
  """One object of a scene; coordinates are fractions of the image side, ``y`` points down."""
  class_id: int
  shape: int
  colour: tuple[float, float, float]
  center: tuple[float, float]
  radius: float
  rotation: float
  aspect: float
  striped: bool
  visible_fraction: float = 0.0
  occluded_fraction: float = 0.0
  truncated_fraction: float = 0.0
  visible_area: float = 0.0

  @property
  def visible(self) -> bool:
    return self.visible_fraction >= _MIN_VISIBLE_FRACTION


@dataclasses.dataclass(frozen=True)
class Scene:
  """A complete scene description: what the renderer draws and what every label is computed from."""
  index: int
  clutter: float
  background_hsv: tuple[float, float, float]
  gradient: tuple[float, float, float]
  objects: tuple[SceneObject, ...]  # back to front
  distractors: np.ndarray  # [M, 8]: x, y, radius, aspect, rotation, r, g, b
  noise_seed: int
  annotator_noise: float  # the standard-normal draw epsilon


def _scene_rng(seed: int, index: int, stream: int) -> np.random.Generator:
  return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), stream])


def _shape_mask(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Inside test of a unit-size shape in its own (rotated, scaled) coordinates."""
  if shape == 0:  # disk
    return u * u + v * v <= 1.0
  if shape == 1:  # square
    return np.maximum(np.abs(u), np.abs(v)) <= 0.85
  if shape == 2:  # equilateral triangle inscribed in the unit circle, apex up
    s3 = math.sqrt(3.0)
    return (v <= 0.5) & (s3 * u - v <= 1.0) & (-s3 * u - v <= 1.0)
  if shape == 3:  # cross
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.32) & (av <= 1.0)) | ((av <= 0.32) & (au <= 1.0))
  if shape == 4:  # five-pointed star
    rho2 = u * u + v * v
    phi = np.arctan2(u, -v)
    limit = 0.42 + 0.58 * np.abs(np.cos(2.5 * phi)) ** 2
    return rho2 <= limit * limit
  raise ValueError(f"unknown shape {shape}")


def _object_coordinates(obj: SceneObject, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  dx, dy = x - obj.center[0], y - obj.center[1]
  cos, sin = math.cos(obj.rotation), math.sin(obj.rotation)
  u = (cos * dx + sin * dy) / obj.radius
  v = (-sin * dx + cos * dy) * (obj.aspect / obj.radius)
  return u, v


def _analysis_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
  lo, hi = _ANALYSIS_EXTENT
  cells = int(round((hi - lo) * _ANALYSIS_CELLS_PER_SIDE))
  centres = lo + (np.arange(cells) + 0.5) / _ANALYSIS_CELLS_PER_SIDE
  y, x = np.meshgrid(centres, centres, indexing="ij")
  inside = (x >= 0) & (x <= 1) & (y >= 0) & (y <= 1)
  return x, y, inside, 1.0 / _ANALYSIS_CELLS_PER_SIDE ** 2


_GRID = _analysis_grid()


def _measure(objects: list[SceneObject]) -> list[SceneObject]:
  """Fills in visible / occluded / truncated fractions on the analysis grid (back-to-front order)."""
  x, y, inside, cell_area = _GRID
  masks = [_shape_mask(o.shape, *_object_coordinates(o, x, y)) for o in objects]
  in_front = np.zeros_like(inside)
  measured = []
  for obj, mask in zip(reversed(objects), reversed(masks)):
    full = max(int(mask.sum()), 1)
    within = mask & inside
    n_within = int(within.sum())
    n_visible = int((within & ~in_front).sum())
    in_front |= mask
    measured.append(dataclasses.replace(
        obj, visible_fraction=n_visible / full, truncated_fraction=1.0 - n_within / full,
        occluded_fraction=(1.0 - n_visible / n_within) if n_within else 0.0,
        visible_area=n_visible * cell_area))
  return measured[::-1]


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
  return tuple(float(c) for c in augment.hsv_to_rgb(np.array([h, s, v], np.float32)))


def make_scene(seed: int, index: int, *, clutter_range: tuple[float, float] = (0.0, 1.0),
               max_objects: int = MAX_OBJECTS) -> Scene:
  """Draws the description of scene ``index`` of generator ``seed`` (no pixels are rendered).

  >>> scene = make_scene(0, 7)
  >>> 1 <= len(scene.objects) <= 8, scene.objects == make_scene(0, 7).objects
  (True, True)
  """
  if not 1 <= max_objects <= MAX_OBJECTS:
    raise ValueError(f"`max_objects` must be in [1, {MAX_OBJECTS}], got {max_objects}.")
  lo, hi = clutter_range
  if not 0.0 <= lo <= hi <= 1.0:
    raise ValueError(f"`clutter_range` must satisfy 0 <= lo <= hi <= 1, got {clutter_range}.")
  rng = _scene_rng(seed, index, 0)
  clutter = lo + (hi - lo) * float(rng.beta(1.3, 2.2))
  count_probs = 0.55 ** np.arange(max_objects)
  n_objects = 1 + int(rng.choice(max_objects, p=count_probs / count_probs.sum()))
  class_probs = (np.arange(NUM_CLASSES) + 1.0) ** -CLASS_ZIPF_EXPONENT
  class_probs /= class_probs.sum()
  objects = []
  for j in range(n_objects):
    class_id = int(rng.choice(NUM_CLASSES, p=class_probs))
    hue = COLOUR_HUES[CLASS_COLOUR[class_id]] + rng.uniform(-0.025, 0.025)
    colour = _hsv(hue % 1.0, rng.uniform(0.65, 1.0), rng.uniform(0.65, 1.0))
    radius = float(np.exp(rng.uniform(np.log(0.045), np.log(0.33))))
    placement = rng.uniform()
    if j > 0 and placement < 0.4:  # next to an earlier object: groups, hence occlusion
      anchor = objects[int(rng.integers(j))]
      offset = rng.normal(0.0, 0.8 * (anchor.radius + radius) / 2.0, size=2)
      center = np.clip(np.asarray(anchor.center) + offset, -0.1, 1.1)
    elif placement < 0.6:  # across the border: truncation
      center = rng.uniform(0.05, 0.95, size=2)
      axis = int(rng.integers(2))
      center[axis] = rng.choice([-1.0, 1.0]) * rng.uniform(0.0, radius) + float(rng.integers(2))
    else:
      center = rng.uniform(0.05, 0.95, size=2)
    objects.append(SceneObject(
        class_id=class_id, shape=CLASS_SHAPE[class_id], colour=colour,
        center=(float(center[0]), float(center[1])), radius=radius,
        rotation=float(rng.uniform(0.0, 2.0 * np.pi)), aspect=float(rng.uniform(1.0, 1.8)),
        striped=bool(rng.uniform() < 0.25)))
  background_hsv = (float(rng.uniform()), float(rng.uniform(0.05, 0.35)), float(rng.uniform(0.3, 0.9)))
  angle = rng.uniform(0.0, 2.0 * np.pi)
  gradient = (float(np.cos(angle)), float(np.sin(angle)), float(rng.uniform(0.0, 0.15)))
  n_distractors = int(round(clutter * 48))
  distractors = np.zeros((n_distractors, 8), np.float32)
  if n_distractors:
    distractors[:, 0:2] = rng.uniform(-0.05, 1.05, size=(n_distractors, 2))
    distractors[:, 2] = rng.uniform(0.01, 0.02 + 0.05 * clutter, size=n_distractors)
    distractors[:, 3] = rng.uniform(1.0, 5.0, size=n_distractors)
    distractors[:, 4] = rng.uniform(0.0, np.pi, size=n_distractors)
    hsv = np.stack([rng.uniform(size=n_distractors), rng.uniform(0.1, 0.2 + 0.7 * clutter, n_distractors),
                    rng.uniform(0.25, 0.95, n_distractors)], axis=-1)
    distractors[:, 5:8] = augment.hsv_to_rgb(hsv)
  noise_seed = int(rng.integers(2 ** 31))
  annotator_noise = float(_scene_rng(seed, index, 1).standard_normal())
  return Scene(index=int(index), clutter=float(clutter), background_hsv=background_hsv, gradient=gradient,
               objects=tuple(_measure(objects)), distractors=distractors, noise_seed=noise_seed,
               annotator_noise=annotator_noise)


def scene_factors(scene: Scene) -> np.ndarray:
  """The five normalised difficulty factors :data:`FACTOR_NAMES` of a scene, each in ``[0, 1]``."""
  visible = [o for o in scene.objects if o.visible]
  n_visible = max(len(visible), 1)
  mean_area = float(np.mean([o.visible_area for o in visible])) if visible else 0.0
  small = (math.log(0.2) - math.log(max(mean_area, 1e-4))) / (math.log(0.2) - math.log(0.003))
  occlusion = float(np.mean([o.occluded_fraction for o in scene.objects]))
  truncation = float(np.mean([o.truncated_fraction for o in scene.objects]))
  return np.array([scene.clutter, (n_visible - 1) / (MAX_OBJECTS - 1), min(max(small, 0.0), 1.0),
                   occlusion, truncation], np.float32)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
  return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(x, np.float64) / math.sqrt(2.0)))


def difficulty_from_latent(latent: Union[float, np.ndarray]) -> np.ndarray:
  """Maps a standardised latent difficulty to the VSD score scale: ``Q_VSD(Phi(latent))``.

  >>> float(difficulty_from_latent(0.0))
  3.22
  """
  return np.interp(_normal_cdf(latent), VSD_LEVELS, VSD_QUANTILES).astype(np.float32)


def scene_difficulty(scene: Scene, annotator_noise: float = DEFAULT_ANNOTATOR_NOISE
                     ) -> tuple[np.float32, np.float32]:
  """Returns ``(difficulty, difficulty_noise_free)`` of a scene (see the module docstring)."""
  signal = float(np.dot(DIFFICULTY_WEIGHTS, scene_factors(scene)))
  noise_std = annotator_noise * SIGNAL_STD
  total_std = math.sqrt(SIGNAL_STD ** 2 + noise_std ** 2)
  noisy = (signal + noise_std * scene.annotator_noise - SIGNAL_MEAN) / total_std
  clean = (signal - SIGNAL_MEAN) / SIGNAL_STD
  return difficulty_from_latent(noisy)[()], difficulty_from_latent(clean)[()]


def scene_statistics(scene: Scene) -> np.ndarray:
  """The visible scene statistics that :data:`ATTRIBUTE_NAMES` threshold (float64 ``[24]``).

  Colour and shape attributes measure the visible area of objects of that colour / shape; the background
  ones its HSV value, saturation and shading; the layout ones the area-weighted centroid and the distance of
  the largest object from the centre.
  """
  visible = [o for o in scene.objects if o.visible] or list(scene.objects[-1:])
  areas = np.array([o.visible_area for o in visible])
  centres = np.array([o.center for o in visible])
  colour_area = np.zeros(NUM_COLOURS)
  shape_area = np.zeros(NUM_SHAPES)
  for o in visible:
    colour_area[CLASS_COLOUR[o.class_id]] += o.visible_area
    shape_area[o.shape] += o.visible_area
  weights = areas / max(areas.sum(), 1e-9)
  centroid = (weights[:, None] * centres).sum(axis=0)
  largest = visible[int(np.argmax(areas))]
  values = {
      "cluttered": scene.clutter,
      "truncated": max(o.truncated_fraction for o in scene.objects),
      "large_object": areas.max(),
      "high_coverage": areas.sum(),
      "occluded": float(np.mean([o.occluded_fraction for o in scene.objects])),
      "striped": sum(o.visible_area for o in visible if o.striped),
      "bright_background": scene.background_hsv[2],
      "dark_background": -scene.background_hsv[2],  # negated: every attribute is `statistic >= threshold`
      "elongated": max(o.aspect for o in visible),
      "off_centre": float(np.hypot(largest.center[0] - 0.5, largest.center[1] - 0.5)),
      "colourful_background": scene.background_hsv[1],
      "no_tiny_object": areas.min(),
      "left_heavy": -centroid[0],
      "top_heavy": -centroid[1],
      "shaded_background": scene.gradient[2],
  }
  values.update({name: colour_area[k] for k, name in enumerate(COLOUR_NAMES)})
  values.update({name: shape_area[k] for k, name in enumerate(SHAPE_NAMES)})
  return np.array([values[name] for name in ATTRIBUTE_NAMES], np.float64)


class ScenesSource:
  """Random-access source of procedural scenes: ``len(source)``, ``source[i]``, ``source[index_array]``.

  Args:
    num_examples: number of examples.
    seed: generator seed; example ``i`` is scene ``offset + i`` of this seed.
    offset: first scene index (use disjoint ranges for train / validation / test, see
      :func:`make_scenes_splits`).
    image_size: side of the square images.
    clutter_range: the background clutter is drawn in this sub-range of ``[0, 1]``.
    annotator_noise: standard deviation of the annotator noise relative to the signal's.
    max_objects: at most this many objects per scene (1-8).

  ``source[i]`` returns a dict of numpy arrays: ``image`` float32 ``[H, W, 3]`` in ``[0, 1]``,
  ``difficulty``, ``difficulty_noise_free`` (float32), ``factors`` float32 ``[5]``, ``attributes`` float32
  0/1 ``[24]``, ``labels`` float32 0/1 ``[20]``, ``index`` int64, and the padded object list
  ``object_mask`` bool ``[8]``, ``object_class`` int32, ``object_shape`` int32, ``object_colour``
  ``[8, 3]``, ``object_center`` ``[8, 2]``, ``object_radius``, ``object_rotation``, ``object_aspect``,
  ``object_striped``, ``object_visible_fraction``, ``object_occluded_fraction``,
  ``object_truncated_fraction`` (float32, objects back to front). An index array gives the same keys
  with a leading batch axis.

  >>> source = ScenesSource(100, seed=0)
  >>> batch = source[np.arange(4)]
  >>> batch["image"].shape, batch["attributes"].shape, batch["labels"].shape
  ((4, 64, 64, 3), (4, 24), (4, 20))
  >>> bool(np.array_equal(source[2]["image"], batch["image"][2]))
  True
  """

  def __init__(self, num_examples: int, *, seed: int = 0, offset: int = 0, image_size: int = 64,
               clutter_range: tuple[float, float] = (0.0, 1.0),
               annotator_noise: float = DEFAULT_ANNOTATOR_NOISE, max_objects: int = MAX_OBJECTS):
    if num_examples < 0 or offset < 0:
      raise ValueError(f"`num_examples` and `offset` must be >= 0, got {num_examples}, {offset}.")
    if image_size < 8:
      raise ValueError(f"`image_size` must be >= 8, got {image_size}.")
    if annotator_noise < 0:
      raise ValueError(f"`annotator_noise` must be >= 0, got {annotator_noise}.")
    self.num_examples = int(num_examples)
    self.seed = int(seed)
    self.offset = int(offset)
    self.image_size = int(image_size)
    self.clutter_range = tuple(float(c) for c in clutter_range)
    self.annotator_noise = float(annotator_noise)
    self.max_objects = int(max_objects)
    make_scene(0, 0, clutter_range=self.clutter_range, max_objects=self.max_objects)  # validates options
    centres = (np.arange(self.image_size) + 0.5) / self.image_size
    self._y, self._x = np.meshgrid(centres, centres, indexing="ij")

  def __len__(self) -> int:
    return self.num_examples

  def __repr__(self) -> str:
    return (f"ScenesSource(num_examples={self.num_examples}, seed={self.seed}, offset={self.offset}, "
            f"image_size={self.image_size}, clutter_range={self.clutter_range})")

  def _check_index(self, index: int) -> int:
    index = int(index)
    if index < 0:
      index += self.num_examples
    if not 0 <= index < self.num_examples:
      raise IndexError(f"index {index} out of range for a source of {self.num_examples} examples.")
    return index

  def scene(self, index: int) -> Scene:
    """The structured description of example ``index`` (for sketch / caption renderers)."""
    index = self._check_index(index)
    return make_scene(self.seed, self.offset + index, clutter_range=self.clutter_range,
                      max_objects=self.max_objects)

  def render(self, scene: Scene) -> np.ndarray:
    """Rasterises a scene to a float32 ``[image_size, image_size, 3]`` image in ``[0, 1]``."""
    x, y = self._x, self._y
    gx, gy, amplitude = scene.gradient
    base = np.asarray(_hsv(*scene.background_hsv), np.float32)
    shade = 1.0 + amplitude * ((x - 0.5) * gx + (y - 0.5) * gy) * 2.0
    image = base[None, None, :] * shade[..., None].astype(np.float32)
    d = scene.distractors
    if len(d):
      dx = x[None] - d[:, 0, None, None]
      dy = y[None] - d[:, 1, None, None]
      cos, sin = np.cos(d[:, 4])[:, None, None], np.sin(d[:, 4])[:, None, None]
      u = (cos * dx + sin * dy) / d[:, 2, None, None]
      v = (-sin * dx + cos * dy) * (d[:, 3] / d[:, 2])[:, None, None]
      inside = u * u + v * v <= 1.0  # [M, H, W]
      # The last distractor covering a pixel is the one on top.
      top = len(d) - 1 - np.argmax(inside[::-1], axis=0)
      covered = inside.any(axis=0)
      image = np.where(covered[..., None], d[top, 5:8], image)
    for obj in scene.objects:
      u, v = _object_coordinates(obj, x, y)
      mask = _shape_mask(obj.shape, u, v)
      colour = np.asarray(obj.colour, np.float32)
      if obj.striped:
        stripes = (np.sin(2.0 * np.pi * 2.5 * u) > 0)[..., None]
        pixels = np.where(stripes, colour * 0.45, colour)
      else:
        pixels = colour
      image = np.where(mask[..., None], pixels, image)
    noise_rng = np.random.default_rng(scene.noise_seed)
    noise = noise_rng.normal(0.0, 0.02 + 0.06 * scene.clutter, size=image.shape)
    return np.clip(image + noise, 0.0, 1.0).astype(np.float32)

  def _example(self, index: int) -> dict[str, np.ndarray]:
    scene = self.scene(index)
    example = self.labels_of(scene)
    example["image"] = self.render(scene)
    example["index"] = np.int64(index)
    return example

  def labels_of(self, scene: Scene) -> dict[str, np.ndarray]:
    """Every label and the padded object list of a scene (everything ``source[i]`` returns but pixels)."""
    difficulty, noise_free = scene_difficulty(scene, self.annotator_noise)
    attributes = (scene_statistics(scene) >= np.asarray(ATTRIBUTE_THRESHOLDS)).astype(np.float32)
    labels = np.zeros(NUM_CLASSES, np.float32)
    for o in scene.objects:
      if o.visible:
        labels[o.class_id] = 1.0
    n = len(scene.objects)
    pad = MAX_OBJECTS - n

    def padded(values: Sequence[Any], dtype: Any, shape: tuple[int, ...] = ()) -> np.ndarray:
      array = np.asarray(values, dtype).reshape((n,) + shape)
      return np.concatenate([array, np.zeros((pad,) + shape, dtype)], axis=0)

    objs = scene.objects
    return {
        "difficulty": np.float32(difficulty),
        "difficulty_noise_free": np.float32(noise_free),
        "factors": scene_factors(scene),
        "attributes": attributes,
        "labels": labels,
        "object_mask": padded([True] * n, bool),
        "object_class": padded([o.class_id for o in objs], np.int32),
        "object_shape": padded([o.shape for o in objs], np.int32),
        "object_colour": padded([o.colour for o in objs], np.float32, (3,)),
        "object_center": padded([o.center for o in objs], np.float32, (2,)),
        "object_radius": padded([o.radius for o in objs], np.float32),
        "object_rotation": padded([o.rotation for o in objs], np.float32),
        "object_aspect": padded([o.aspect for o in objs], np.float32),
        "object_striped": padded([o.striped for o in objs], np.float32),
        "object_visible_fraction": padded([o.visible_fraction for o in objs], np.float32),
        "object_occluded_fraction": padded([o.occluded_fraction for o in objs], np.float32),
        "object_truncated_fraction": padded([o.truncated_fraction for o in objs], np.float32),
    }

  def labels(self, indices: Union[int, Sequence[int], np.ndarray]) -> dict[str, np.ndarray]:
    """Like ``source[indices]`` without rendering images (fast: for label statistics)."""
    if np.ndim(indices) == 0:
      index = self._check_index(indices)
      out = self.labels_of(self.scene(index))
      out["index"] = np.int64(index)
      return out
    return _stack([self.labels(int(i)) for i in np.asarray(indices).reshape(-1)])

  def __getitem__(self, indices: Union[int, Sequence[int], np.ndarray]) -> dict[str, np.ndarray]:
    if isinstance(indices, slice):
      indices = np.arange(self.num_examples)[indices]
    if np.ndim(indices) == 0:
      return self._example(self._check_index(indices))
    indices = np.asarray(indices)
    if indices.ndim != 1 or not (indices.size == 0 or np.issubdtype(indices.dtype, np.integer)):
      raise TypeError(f"indices must be an int or a 1-D integer array, got {indices!r}.")
    return _stack([self._example(self._check_index(i)) for i in indices])


def _stack(examples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  if not examples:
    raise ValueError("cannot build a batch from zero indices.")
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def make_scenes_splits(num_train: int = 8000, num_validation: int = 2000, num_test: int = 2000, *,
                       seed: int = 0, **options: Any) -> dict[str, ScenesSource]:
  """Train / validation / test sources over disjoint scene-index ranges of one generator seed.

  >>> splits = make_scenes_splits(10, 5, 5)
  >>> [len(splits[k]) for k in ("train", "validation", "test")], splits["test"].offset
  ([10, 5, 5], 15)
  """
  return {
      "train": ScenesSource(num_train, seed=seed, offset=0, **options),
      "validation": ScenesSource(num_validation, seed=seed, offset=num_train, **options),
      "test": ScenesSource(num_test, seed=seed, offset=num_train + num_validation, **options),
  }


def _calibrate(num_scenes: int = 20000, seed: int = 12345) -> dict[str, Any]:
  """Re-derives SIGNAL_MEAN, SIGNAL_STD and the attribute thresholds (developer tool, slow)."""
  scenes = [make_scene(seed, i) for i in range(num_scenes)]
  signal = np.array([np.dot(DIFFICULTY_WEIGHTS, scene_factors(s)) for s in scenes])
  stats = np.stack([scene_statistics(s) for s in scenes])
  return {"signal_mean": float(signal.mean()), "signal_std": float(signal.std()), "statistics": stats}
