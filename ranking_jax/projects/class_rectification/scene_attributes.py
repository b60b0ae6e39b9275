r"""Imbalanced attributes of the embedded scenes: the embedded data of the Class Rectification experiment.

"Class Rectification Hard Mining for Imbalanced Deep Learning" (Dong, Gong, Zhu, ICCV 2017) evaluates on two
kinds of imbalanced multi-label attributes: 40 binary face attributes (CelebA, imbalance 1:1 to 1:43) and 9
multi-valued (1-in-N) clothing attributes with N from 6 to 55 (X-Domain, imbalance up to 1:4162). The
embedded scenes of :mod:`ranking_jax.data.scenes` provide both settings, with every label computed from the
scene description (no rendering needed for the labels) and decidable from the pixels:

* **24 binary attributes** (:data:`BINARY_ATTRIBUTE_NAMES`, CelebA-like): those of
  :func:`ranking_jax.data.scenes.scene_statistics` thresholded at
  :data:`ranking_jax.data.scenes.ATTRIBUTE_THRESHOLDS`, positive rates from 1:1 down to about 1:40.
* **4 multi-valued attributes** (:data:`MULTI_VALUED_ATTRIBUTE_NAMES`, X-Domain-like), N = 6, 9, 21 and 41,
  each with a dominant value and a power-law tail, largest / smallest value count >= 500 in the default
  4 000-scene training split (seed 0; see :data:`MEASURED_IMBALANCE`):

  ==========================  ==  =====================  =============  ==========================
  attribute                   N   train, 4 000 (seed 0)  20 000 scenes  value counts, 4 000 split
  ==========================  ==  =====================  =============  ==========================
  ``tiny_count``              6   1:823                  1:1235         2470 ... 3
  ``visible_count``           9   1:929                  1:714          1857 ... 2
  ``occluder_class``          21  1:1190                 1:896          3569 ... 3
  ``smallest_class_stripes``  41  1:736                  1:553          2208 ... 3
  ==========================  ==  =====================  =============  ==========================

  The tails hold a handful of scenes in a 4 000-scene split (as X-Domain's rarest values hold 24 of 165 467
  images), so the ratio of a split of another seed or size differs; keep the data seed fixed.

Definitions. An object is *visible* when at least 15 % of its own area is inside the image and not hidden
by objects drawn after it (:attr:`ranking_jax.data.scenes.SceneObject.visible`); areas are fractions of the
image area measured on the scenes' analysis grid (64 cells per image side, so labels do not depend on the
rendered ``image_size``); object class ``k`` is :data:`ranking_jax.data.scenes.CLASS_NAMES` ``[k]``
(5 shapes x 4 colours, Zipf frequencies). The multi-valued attributes are:

``tiny_count`` (N = 6)
  The number of visible objects whose visible area is below :data:`TINY_AREA` (0.8 % of the image, about
  33 pixels at 64 x 64): values 0-4, and 5 for "5 or more".
``visible_count`` (N = 9)
  The number of visible objects, 0-8.
``occluder_class`` (N = 21)
  0 when no visible object hides a large part of another visible one; otherwise ``1 + k`` with ``k`` the
  class of the frontmost visible object ``j`` for which some visible object ``i`` drawn before it
  (``i < j``) has at least :data:`OCCLUSION_FRACTION` (25 %) of its whole area covered by ``j`` inside the
  image.
``smallest_class_stripes`` (N = 41)
  0 when fewer than two objects are visible; otherwise ``1 + 2 k + s`` for the visible object with the
  smallest visible area (the earliest drawn on ties), ``k`` its class and ``s`` = 1 if it is striped.

Entry points: :class:`SceneAttributesSource` (random access, renders on read), :func:`render_attribute_split`
/ :class:`RenderedAttributes` (a split rendered once into ``uint8`` memory by
:func:`ranking_jax.data.rendered.render`, optionally cached on disk),
:func:`make_scene_attribute_splits`, :func:`attribute_labels` (labels without rendering),
:func:`class_counts` and :func:`imbalance_ratios`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence, Union

import numpy as np

from ranking_jax.data import rendered
from ranking_jax.data import scenes as scenes_lib

# Bump when a label definition changes: it is part of the on-disk cache key.
LABELS_VERSION = 1
TINY_AREA = 0.008
OCCLUSION_FRACTION = 0.25
MAX_TINY_COUNT = 5


@dataclasses.dataclass(frozen=True)
class AttributeSpec:
  """One attribute :math:`z_j`: its name, its number of values :math:`|Z_j|` and its definition.

  Attributes:
    name: attribute name.
    num_values: :math:`|Z_j|`; labels are ``0 .. num_values - 1`` (binary attributes: 0/1).
    definition: how the label is computed from the scene (what a viewer decides from the pixels).
    value_names: a short name per value.
  """
  name: str
  num_values: int
  definition: str
  value_names: tuple[str, ...]

  @property
  def binary(self) -> bool:
    return self.num_values == 2


# What each binary attribute's statistic measures (ranking_jax.data.scenes.scene_statistics).
_BINARY_STATISTICS = {
    "cluttered": "background clutter (number, size and saturation of distractor blobs and pixel noise)",
    "truncated": "largest fraction of an object's area outside the image",
    "large_object": "visible area of the largest visible object",
    "high_coverage": "total visible area of the visible objects",
    "occluded": "mean fraction of the objects' in-image area hidden by objects in front",
    "striped": "visible area of the striped visible objects",
    "bright_background": "background HSV value",
    "dark_background": "minus the background HSV value",
    "elongated": "largest aspect ratio of a visible object",
    "off_centre": "distance of the largest visible object's centre from the image centre (image sides)",
    "colourful_background": "background HSV saturation",
    "no_tiny_object": "visible area of the smallest visible object",
    "left_heavy": "minus the x coordinate (0 = left border) of the area-weighted centroid of visible objects",
    "top_heavy": "minus the y coordinate (0 = top border) of the area-weighted centroid of visible objects",
    "shaded_background": "amplitude of the background's linear shading",
}
_BINARY_STATISTICS.update(
    {name: f"visible area of the visible {name} objects" for name in scenes_lib.COLOUR_NAMES})
_BINARY_STATISTICS.update({name: f"visible area of the visible {name}s" for name in scenes_lib.SHAPE_NAMES})


def _binary_spec(name: str, threshold: float) -> AttributeSpec:
  return AttributeSpec(name, 2, f"1 if the {_BINARY_STATISTICS[name]} is >= {threshold:g}, else 0 (areas "
                       "are fractions of the image; with no visible object, the frontmost object counts)",
                       ("no", "yes"))


def _class_value_names(with_stripes: bool) -> tuple[str, ...]:
  if not with_stripes:
    return scenes_lib.CLASS_NAMES
  return tuple(f"{name}{suffix}" for name in scenes_lib.CLASS_NAMES for suffix in ("", " striped"))


MULTI_VALUED_ATTRIBUTES = (
    AttributeSpec("tiny_count", MAX_TINY_COUNT + 1,
                  f"number of visible objects with visible area < {TINY_AREA:g} of the image (5 = 5 or more)",
                  ("0", "1", "2", "3", "4", "5+")),
    AttributeSpec("visible_count", scenes_lib.MAX_OBJECTS + 1, "number of visible objects (0-8)",
                  tuple(str(n) for n in range(scenes_lib.MAX_OBJECTS + 1))),
    AttributeSpec("occluder_class", scenes_lib.NUM_CLASSES + 1,
                  f"0 if no visible object covers >= {OCCLUSION_FRACTION:g} of the area of a visible object "
                  "drawn before it (inside the image); else 1 + the class of the frontmost such occluder",
                  ("none",) + _class_value_names(False)),
    AttributeSpec("smallest_class_stripes", 2 * scenes_lib.NUM_CLASSES + 1,
                  "0 if fewer than two objects are visible; else 1 + 2 * class + striped of the visible "
                  "object with the smallest visible area (earliest drawn on ties)",
                  ("fewer than two",) + _class_value_names(True)),
)
BINARY_ATTRIBUTES = tuple(_binary_spec(name, threshold) for name, threshold in
                          zip(scenes_lib.ATTRIBUTE_NAMES, scenes_lib.ATTRIBUTE_THRESHOLDS))
ATTRIBUTES = BINARY_ATTRIBUTES + MULTI_VALUED_ATTRIBUTES
ATTRIBUTE_NAMES = tuple(spec.name for spec in ATTRIBUTES)
BINARY_ATTRIBUTE_NAMES = tuple(spec.name for spec in BINARY_ATTRIBUTES)
MULTI_VALUED_ATTRIBUTE_NAMES = tuple(spec.name for spec in MULTI_VALUED_ATTRIBUTES)
NUM_VALUES = tuple(spec.num_values for spec in ATTRIBUTES)
NUM_ATTRIBUTES = len(ATTRIBUTES)
_SPECS = {spec.name: spec for spec in ATTRIBUTES}

# Largest / smallest value count of every attribute in the default training split (scenes 0-3999 of seed 0:
# `imbalance_ratios(attribute_labels(ScenesSource(4000)), NUM_VALUES)`), rounded to one decimal. The tails of
# the multi-valued attributes hold 2-3 scenes there, so other seeds or sizes give other ratios (20 000 scenes
# of seed 0: tiny_count 1234.5, visible_count 713.5, occluder_class 895.5, smallest_class_stripes 553.3;
# seeds 1 and 2 at 4 000 scenes leave tiny_count's "5+" empty and give visible_count 205 and 374).
MEASURED_IMBALANCE: dict[str, float] = {
    "cluttered": 1.1, "truncated": 1.3, "red": 1.6, "disk": 1.9, "large_object": 2.3, "green": 3.0,
    "occluded": 3.3, "striped": 4.1, "triangle": 4.7, "blue": 5.6, "high_coverage": 6.2, "yellow": 7.7,
    "square": 8.9, "star": 10.2, "cross": 11.7, "dark_background": 15.1, "bright_background": 13.0,
    "elongated": 17.2, "off_centre": 21.0, "colourful_background": 25.7, "no_tiny_object": 24.6,
    "left_heavy": 29.8, "top_heavy": 37.5, "shaded_background": 39.0, "tiny_count": 823.3,
    "visible_count": 928.5, "occluder_class": 1189.7, "smallest_class_stripes": 736.0,
}


def select_attributes(names: Union[None, str, Sequence[str]] = None) -> tuple[AttributeSpec, ...]:
  """The specs of ``names``: ``None`` or ``"all"`` (every attribute), ``"binary"``, ``"multi_valued"``, or
  a sequence of attribute names (kept in the given order).

  Raises:
    ValueError: an unknown name (the message lists the known ones).

  >>> [spec.num_values for spec in select_attributes("multi_valued")]
  [6, 9, 21, 41]
  """
  if names is None or names == "all":
    return ATTRIBUTES
  if names == "binary":
    return BINARY_ATTRIBUTES
  if names == "multi_valued":
    return MULTI_VALUED_ATTRIBUTES
  if isinstance(names, str):
    names = [n.strip() for n in names.split(",") if n.strip()]
  unknown = [n for n in names if n not in _SPECS]
  if unknown or not names:
    raise ValueError(f"unknown scene attributes {unknown or names!r}; choose 'all', 'binary', 'multi_valued' "
                     f"or names from {list(ATTRIBUTE_NAMES)}.")
  return tuple(_SPECS[n] for n in names)


# ----------------------------------------------------------------------------------------------- labels


def _in_image_masks(objects: Sequence[scenes_lib.SceneObject]) -> tuple[list[np.ndarray], list[int]]:
  """Each object's in-image mask on the analysis grid and its whole area in grid cells."""
  x, y, inside, _ = scenes_lib._GRID  # pylint: disable=protected-access  # the grid the scenes measure on
  masks, areas = [], []
  for obj in objects:
    # pylint: disable-next=protected-access
    mask = scenes_lib._shape_mask(obj.shape, *scenes_lib._object_coordinates(obj, x, y))
    areas.append(max(int(mask.sum()), 1))
    masks.append(mask & inside)
  return masks, areas


def _occluder_class(scene: scenes_lib.Scene) -> int:
  objects = scene.objects
  visible = [k for k, o in enumerate(objects) if o.visible]
  if len(visible) < 2:
    return 0
  masks, areas = _in_image_masks(objects)
  for j in reversed(visible):
    for i in visible:
      if i >= j:
        break
      if np.count_nonzero(masks[i] & masks[j]) >= OCCLUSION_FRACTION * areas[i]:
        return 1 + objects[j].class_id
  return 0


def multi_valued_values(scene: scenes_lib.Scene) -> np.ndarray:
  """The :data:`MULTI_VALUED_ATTRIBUTES` of one scene, int32 ``[4]`` (definitions in the module docstring).

  >>> values = multi_valued_values(scenes_lib.make_scene(0, 3))
  >>> values.shape, bool(np.all((values >= 0) & (values < [6, 9, 21, 41])))
  ((4,), True)
  """
  visible = [o for o in scene.objects if o.visible]
  tiny = min(sum(o.visible_area < TINY_AREA for o in visible), MAX_TINY_COUNT)
  smallest = 0
  if len(visible) >= 2:
    obj = min(visible, key=lambda o: o.visible_area)  # min() keeps the first (earliest drawn) on ties
    smallest = 1 + 2 * obj.class_id + int(obj.striped)
  return np.array([tiny, len(visible), _occluder_class(scene), smallest], np.int32)


def scene_attribute_values(scene: scenes_lib.Scene,
                           attributes: Sequence[AttributeSpec] = ATTRIBUTES) -> np.ndarray:
  """Every attribute of ``attributes`` for one scene: int32 ``[len(attributes)]`` (0/1 or class index)."""
  thresholds = np.asarray(scenes_lib.ATTRIBUTE_THRESHOLDS)
  binary = (scenes_lib.scene_statistics(scene) >= thresholds).astype(np.int32)
  values = dict(zip(BINARY_ATTRIBUTE_NAMES, binary))
  if any(not spec.binary for spec in attributes):
    values.update(zip(MULTI_VALUED_ATTRIBUTE_NAMES, multi_valued_values(scene)))
  return np.array([values[spec.name] for spec in attributes], np.int32)


def attribute_labels(source: scenes_lib.ScenesSource, indices: Optional[Sequence[int]] = None, *,
                     attributes: Union[None, str, Sequence[str]] = None) -> np.ndarray:
  """Attribute labels of scenes of ``source`` without rendering (about 2-3 ms per scene).

  Args:
    source: a :class:`ranking_jax.data.scenes.ScenesSource`.
    indices: example indices (default: all of ``source``).
    attributes: which attributes (see :func:`select_attributes`; default all).

  Returns:
    int32 ``[n, num_attributes]``.

  >>> attribute_labels(scenes_lib.ScenesSource(3), attributes="multi_valued").shape
  (3, 4)
  """
  specs = select_attributes(attributes)
  indices = range(len(source)) if indices is None else np.asarray(indices).reshape(-1)
  rows = [scene_attribute_values(source.scene(int(i)), specs) for i in indices]
  return np.stack(rows) if rows else np.zeros((0, len(specs)), np.int32)


def class_counts(labels: np.ndarray, num_values: Sequence[int]) -> list[np.ndarray]:
  """Per attribute, the number of samples of each value: ``[np.ndarray int64 [num_values[j]]]``.

  Labels outside ``[0, num_values[j])`` (e.g. -1 for "not annotated") are not counted.

  >>> [c.tolist() for c in class_counts(np.array([[0, 2], [1, 2], [0, -1]]), (2, 3))]
  [[2, 1], [0, 0, 2]]
  """
  labels = np.asarray(labels)
  if labels.ndim != 2 or labels.shape[1] != len(num_values):
    raise ValueError(f"`labels` must be [n, {len(num_values)}] for {len(num_values)} attributes, got "
                     f"{labels.shape}.")
  counts = []
  for j, n in enumerate(num_values):
    column = labels[:, j]
    column = column[(column >= 0) & (column < n)].astype(np.int64)
    counts.append(np.bincount(column, minlength=int(n)))
  return counts


def imbalance_ratios(labels: np.ndarray, num_values: Sequence[int]) -> np.ndarray:
  """Each attribute's imbalance ratio: largest / smallest value count over all its ``num_values`` values.

  The ratio of Table 1 of the CRL paper ("the size ratio of smallest and largest classes"), written 1:x
  there; this returns x. A value that never occurs makes the ratio ``inf`` (an attribute with no labelled
  sample gives ``nan``).

  Args:
    labels: int ``[n, num_attributes]`` class values (labels outside ``[0, |Z_j|)`` are ignored).
    num_values: :math:`|Z_j|` of every attribute.

  Returns:
    float64 ``[num_attributes]``.

  >>> imbalance_ratios(np.array([[0, 0], [0, 1], [0, 1], [1, 1]]), (2, 3)).tolist()
  [3.0, inf]
  """
  ratios = []
  for counts in class_counts(labels, num_values):
    if counts.sum() == 0:
      ratios.append(np.nan)
    elif counts.min() == 0:
      ratios.append(np.inf)
    else:
      ratios.append(counts.max() / counts.min())
  return np.array(ratios, np.float64)


def imbalance_table(labels: np.ndarray, attributes: Sequence[AttributeSpec] = ATTRIBUTES) -> str:
  """A markdown table of each attribute's |Z_j|, largest and smallest value count and imbalance ratio,
  sorted by imbalance (what the experiment prints for its training split)."""
  num_values = [spec.num_values for spec in attributes]
  counts = class_counts(labels, num_values)
  ratios = imbalance_ratios(labels, num_values)
  lines = ["| attribute | values | largest | smallest | imbalance 1:x |", "|---|---:|---:|---:|---:|"]
  for j in np.argsort(ratios, kind="stable"):
    lines.append(f"| {attributes[j].name} | {num_values[j]} | {counts[j].max()} | {counts[j].min()} | "
                 f"{ratios[j]:.1f} |")
  return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- sources


class SceneAttributesSource:
  """Random-access scenes with attribute labels: ``len(source)``, ``source[i]``, ``source[index_array]``.

  ``source[indices]`` renders the scenes and returns ``{"image": float32 [n, H, W, 3] in [0, 1],
  "attributes": int32 [n, num_attributes], "index": int64 [n]}`` (a scalar index drops the batch axis).
  Use :func:`render_attribute_split` to render a split once for training.

  Args:
    scenes: the underlying :class:`ranking_jax.data.scenes.ScenesSource` (its seed, offset and size).
    attributes: which attributes, in which order (see :func:`select_attributes`; default all).

  >>> source = SceneAttributesSource(scenes_lib.ScenesSource(10, image_size=16))
  >>> batch = source[np.array([0, 3])]
  >>> batch["image"].shape, batch["attributes"].shape, batch["attributes"].dtype
  ((2, 16, 16, 3), (2, 28), dtype('int32'))
  """

  def __init__(self, scenes: scenes_lib.ScenesSource, *,
               attributes: Union[None, str, Sequence[str]] = None):
    self.scenes = scenes
    self.attributes = select_attributes(attributes)
    self._labels: Optional[np.ndarray] = None

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(spec.name for spec in self.attributes)

  @property
  def num_values(self) -> tuple[int, ...]:
    return tuple(spec.num_values for spec in self.attributes)

  def __len__(self) -> int:
    return len(self.scenes)

  def labels(self) -> np.ndarray:
    """All labels ``[len(self), num_attributes]`` int32, computed once without rendering."""
    if self._labels is None:
      self._labels = attribute_labels(self.scenes, attributes=self.names)
    return self._labels

  def example(self, index: int) -> tuple[np.ndarray, np.ndarray]:
    """``(image float32 [H, W, 3], attributes int32 [num_attributes])`` of one example."""
    scene = self.scenes.scene(index)
    return self.scenes.render(scene), scene_attribute_values(scene, self.attributes)

  def __getitem__(self, indices: Union[int, Sequence[int], np.ndarray]) -> dict[str, np.ndarray]:
    if np.ndim(indices) == 0:
      image, labels = self.example(int(indices))
      return {"image": image, "attributes": labels, "index": np.int64(int(indices) % max(len(self), 1))}
    indices = np.asarray(indices).reshape(-1)
    if indices.size == 0:
      raise ValueError("cannot build a batch from zero indices.")
    images, labels = zip(*(self.example(int(i)) for i in indices))
    return {"image": np.stack(images), "attributes": np.stack(labels),
            "index": (indices % max(len(self), 1)).astype(np.int64)}


class RenderedAttributes(rendered.ArraySource):
  """A rendered split (:func:`ranking_jax.data.rendered.render`) that knows its attributes.

  ``source[indices]`` returns ``{"image": float32 [n, H, W, 3] in [0, 1], "attributes": int32 [n, A]}``
  (images stored as ``uint8``); ``names``, ``num_values`` and ``labels()`` as
  :class:`SceneAttributesSource`.

  >>> src = RenderedAttributes({"image": np.zeros((3, 4, 4, 3), np.uint8),
  ...                           "attributes": np.array([[0, 5], [1, 2], [0, 0]], np.int32)},
  ...                          select_attributes(["red", "visible_count"]))
  >>> len(src), src[np.array([1])]["attributes"].tolist(), src.num_values
  (3, [[1, 2]], (2, 9))
  """

  def __init__(self, arrays: Any, specs: Sequence[AttributeSpec]):
    super().__init__(arrays)
    self.specs = tuple(specs)

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(spec.name for spec in self.specs)

  @property
  def num_values(self) -> tuple[int, ...]:
    return tuple(spec.num_values for spec in self.specs)

  def labels(self) -> np.ndarray:
    return self.arrays["attributes"]


def render_attribute_split(source: SceneAttributesSource, *, cache_dir: str = "") -> RenderedAttributes:
  """Renders every scene of ``source`` once with :func:`ranking_jax.data.rendered.render` (uint8 pixels,
  progress line, optional disk cache ``cache_dir/scene_attributes_<hash>.npz`` keyed by every generator
  option, the attribute list and :data:`LABELS_VERSION`)."""
  scenes = source.scenes
  arrays = rendered.render(
      source, keys=("image", "attributes"), cache_dir=cache_dir,
      cache_key=["scene_attributes", LABELS_VERSION, scenes.seed, scenes.offset, len(scenes), scenes.image_size,
                 scenes.clutter_range, scenes.max_objects, list(source.names)],
      name="scene_attributes", description=f"rendering {len(scenes)} scenes with attributes")
  return RenderedAttributes(arrays.arrays, source.attributes)


def make_scene_attribute_splits(num_train: int = 4000, num_validation: int = 1000, num_test: int = 2000, *,
                                seed: int = 0, image_size: int = 64,
                                attributes: Union[None, str, Sequence[str]] = None, render: bool = True,
                                cache_dir: str = "", **scene_options: Any
                                ) -> dict[str, Union[SceneAttributesSource, RenderedAttributes]]:
  """Train / validation / test attribute sources over disjoint scene ranges of one generator seed.

  Args:
    num_train, num_validation, num_test: split sizes (scene ranges ``[0, num_train)``, then the next ones).
    seed: scene generator seed.
    image_size: rendered image side.
    attributes: which attributes (see :func:`select_attributes`).
    render: render every split into memory (:func:`render_attribute_split`); else render on read.
    cache_dir: on-disk cache of the rendered splits (only with ``render``).
    **scene_options: other :class:`ranking_jax.data.scenes.ScenesSource` options.

  >>> splits = make_scene_attribute_splits(4, 2, 2, image_size=8, render=False)
  >>> [len(splits[k]) for k in ("train", "validation", "test")], splits["test"].scenes.offset
  ([4, 2, 2], 6)
  """
  scene_splits = scenes_lib.make_scenes_splits(num_train, num_validation, num_test, seed=seed,
                                               image_size=image_size, **scene_options)
  out: dict[str, Union[SceneAttributesSource, RenderedAttributes]] = {}
  for split, scenes in scene_splits.items():
    source = SceneAttributesSource(scenes, attributes=attributes)
    out[split] = render_attribute_split(source, cache_dir=cache_dir) if render else source
  return out
