r"""A NUS-WIDE-shaped tag vocabulary on the embedded scenes: the default data of the annotation experiment.

*Deep Convolutional Ranking for Multilabel Image Annotation* (Gong et al.) annotates NUS-WIDE images with
their top-k of 81 concepts. The embedded stand-in tags every procedural scene of
:mod:`ranking_jax.data.scenes` with :data:`NUM_TAGS` = 80 tags: object kinds, counts, sizes, positions,
textures, orientations, colours of the group and scene-level tags (background, clutter). Like NUS-WIDE's
concepts the frequencies are long-tailed (two tags on almost half of the images, most on 1-5 %, three on
0.5 % or less), and every image has at least one tag, typically 2-5: the count tags ``no_object`` ...
``many_objects`` partition the images (``crowd`` is a sub-tag of ``many_objects``). There are more tags
per image than in NUS-WIDE (mean 4.0 against about 2.4 on its tagged images), because a scene with many
objects gets many tags.

The 20 classes of the scenes are only 16 distinct colour-shape kinds (classes 16-19 repeat the colour and
shape of 0-3, see ``scenes.CLASS_SHAPE``), so there are 16 kind tags.

Every tag is a function of the scene description evaluated on the 64 x 64 in-frame cells of the scenes'
analysis grid (independent of the rendered ``image_size``), and every quantity it uses is visible in the
pixels: objects are vivid, uniformly coloured shapes drawn back to front, so visible regions, their areas
and centroids, and the background can be read off the image. Terms used below:

* A *tagged object* is an object with at least 15 % of its area visible (inside the frame and not hidden
  by objects in front: the scenes' ``visible`` rule) **and** a visible area of at least
  :data:`MIN_TAGGED_AREA` = 0.3 % of the image (12 pixels at 64 x 64), so that its shape can be made out.
  Only tagged objects count, except for the background tags.
* *area* is an object's visible area as a fraction of the image; *centroid* the centre of its visible
  pixels in image coordinates ``(x, y)`` in ``[0, 1]``, ``y`` pointing down; the *main object* is the
  tagged object with the largest area.
* Orientations use the object's rotation modulo its symmetry; they are only tagged for objects that are
  not visibly stretched (aspect below a limit) and large enough (area >= 0.5 %).
* Background hue, saturation and value are those of the scene's background colour (the smooth field under
  the distractor blobs and objects); *clutter* is the scenes' clutter level, which sets the number of
  distractor blobs, ``round(48 c)``, and the pixel-noise standard deviation, ``0.02 + 0.06 c``.

Tag table (frequency: per cent of the 4 000 training scenes of seed 0, ``make_scene_tags_splits()``):

* ``no_object`` (count, 12.10 %): no tagged object (background only).
* ``one_object`` (count, 46.70 %): exactly 1 tagged object.
* ``two_objects`` (count, 22.65 %): exactly 2 tagged objects.
* ``three_objects`` (count, 10.42 %): exactly 3 tagged objects.
* ``four_objects`` (count, 5.17 %): exactly 4 tagged objects.
* ``many_objects`` (count, 2.95 %): 5 or more tagged objects.
* ``crowd`` (count, 1.07 %): 6 or more tagged objects.
* ``red_disk`` (kind, 44.38 %): a tagged red disk.
* ``green_triangle`` (kind, 20.12 %): a tagged green triangle.
* ``blue_star`` (kind, 15.17 %): a tagged blue star.
* ``yellow_square`` (kind, 12.50 %): a tagged yellow square.
* ``red_cross`` (kind, 8.48 %): a tagged red cross.
* ``green_square`` (kind, 7.17 %): a tagged green square.
* ``blue_cross`` (kind, 5.50 %): a tagged blue cross.
* ``yellow_disk`` (kind, 5.35 %): a tagged yellow disk.
* ``red_triangle`` (kind, 3.38 %): a tagged red triangle.
* ``green_star`` (kind, 3.95 %): a tagged green star.
* ``blue_triangle`` (kind, 2.97 %): a tagged blue triangle.
* ``yellow_star`` (kind, 3.10 %): a tagged yellow star.
* ``red_square`` (kind, 2.73 %): a tagged red square.
* ``green_cross`` (kind, 2.48 %): a tagged green cross.
* ``blue_disk`` (kind, 2.67 %): a tagged blue disk.
* ``yellow_cross`` (kind, 2.20 %): a tagged yellow cross.
* ``three_of_a_kind`` (kind, 2.20 %): at least 3 tagged objects of the same kind (colour and shape).
* ``one_colour`` (colour, 1.43 %): at least 3 tagged objects, all of one colour.
* ``all_colours`` (colour, 0.73 %): tagged objects of all 4 colours.
* ``camouflaged`` (colour, 1.93 %): a tagged object whose hue is within 0.04 of the background's, on a
  background of saturation >= 0.28.
* ``all_different_shapes`` (kind, 4.80 %): at least 3 tagged objects, no two of the same shape.
* ``huge_object`` (size, 0.43 %): a tagged object with area >= 25 %.
* ``large_object`` (size, 5.45 %): a tagged object with area >= 15 %.
* ``tiny_object`` (size, 3.88 %): a tagged object with area < 0.35 %.
* ``only_small_objects`` (size, 4.92 %): at least 1 tagged object and every area < 0.5 %.
* ``big_and_small`` (size, 1.47 %): two tagged objects whose areas differ by a factor >= 30.
* ``large_red`` (size, 3.82 %): a tagged red object with area >= 15 %.
* ``large_green`` (size, 0.38 %): a tagged green object with area >= 15 %.
* ``large_blue`` (size, 0.30 %): a tagged blue object with area >= 15 %.
* ``large_yellow`` (size, 0.97 %): a tagged yellow object with area >= 15 %.
* ``centred`` (position, 2.48 %): the main object's centroid within 0.1 of the image centre in x and y.
* ``top_left_corner`` (position, 1.98 %): the main object's centroid within 0.15 of the top-left corner in x
  and y.
* ``top_right_corner`` (position, 1.80 %): the main object's centroid within 0.15 of the top-right corner in x
  and y.
* ``bottom_left_corner`` (position, 2.05 %): the main object's centroid within 0.15 of the bottom-left corner
  in x and y.
* ``bottom_right_corner`` (position, 1.85 %): the main object's centroid within 0.15 of the bottom-right
  corner in x and y.
* ``all_left`` (position, 2.85 %): at least 3 tagged objects, every centroid at x < 0.5.
* ``all_right`` (position, 2.95 %): at least 3 tagged objects, every centroid at x > 0.5.
* ``all_top`` (position, 2.55 %): at least 3 tagged objects, every centroid at y < 0.5.
* ``all_bottom`` (position, 2.80 %): at least 3 tagged objects, every centroid at y > 0.5.
* ``in_a_row`` (position, 0.53 %): at least 3 tagged objects whose centroids span >= 0.4 in x with a standard
  deviation < 0.06 in y.
* ``far_apart`` (position, 3.60 %): exactly 2 tagged objects, centroids >= 0.75 apart.
* ``all_striped`` (texture, 1.55 %): at least 2 tagged objects, all striped.
* ``cut_off`` (layout, 12.70 %): a tagged object with >= 60 % of its area outside the frame.
* ``overlapping`` (layout, 3.70 %): a tagged object with >= 50 % of its in-frame area hidden by objects in
  front.
* ``mostly_hidden`` (layout, 0.62 %): a tagged object with >= 75 % of its in-frame area hidden.
* ``object_on_object`` (layout, 3.52 %): a tagged object whose in-frame region lies (>= 95 %) inside an object
  behind it.
* ``striped_disk`` (texture, 9.43 %): a tagged striped disk with area >= 2 % (stripes readable).
* ``striped_square`` (texture, 3.12 %): a tagged striped square with area >= 2 % (stripes readable).
* ``striped_triangle`` (texture, 2.65 %): a tagged striped triangle with area >= 2 % (stripes readable).
* ``striped_cross`` (texture, 2.50 %): a tagged striped cross with area >= 2 % (stripes readable).
* ``striped_star`` (texture, 2.48 %): a tagged striped star with area >= 2 % (stripes readable).
* ``tall_ellipse`` (orientation, 1.23 %): a tagged disk stretched by >= 1.75 (aspect), area >= 1.5 %, its long
  axis within 45 deg of vertical.
* ``wide_ellipse`` (orientation, 1.30 %): a tagged disk stretched by >= 1.75 (aspect), area >= 1.5 %, its long
  axis within 45 deg of horizontal.
* ``upright_triangle`` (orientation, 1.62 %): a tagged triangle (aspect < 1.3, area >= 0.5 %) with an apex
  within 10 deg of straight up.
* ``upside_down_triangle`` (orientation, 1.57 %): a tagged triangle (aspect < 1.3, area >= 0.5 %) with an apex
  within 10 deg of straight down.
* ``upright_star`` (orientation, 1.18 %): a tagged star (aspect < 1.25, area >= 0.5 %) with a point within 6
  deg of straight up.
* ``upright_square`` (orientation, 1.35 %): a tagged square (aspect < 1.25, area >= 0.5 %) with sides within 8
  deg of the image axes.
* ``diamond`` (orientation, 1.57 %): a tagged square (aspect < 1.25, area >= 0.5 %) turned 45 +- 8 deg.
* ``plus_sign`` (orientation, 1.15 %): a tagged cross (aspect < 1.25, area >= 0.5 %) with arms within 8 deg of
  the image axes.
* ``x_sign`` (orientation, 1.10 %): a tagged cross (aspect < 1.25, area >= 0.5 %) turned 45 +- 8 deg.
* ``dark_background`` (background, 2.95 %): background value < 0.32.
* ``bright_background`` (background, 3.70 %): background value > 0.88.
* ``grey_background`` (background, 3.57 %): background saturation < 0.06.
* ``colourful_background`` (background, 4.85 %): background saturation > 0.335.
* ``shaded_background`` (background, 3.57 %): background brightness gradient amplitude > 0.145 (brightness
  changes by >= 29 % across the image).
* ``reddish_background`` (background, 2.83 %): background saturation >= 0.2 and hue within 0.03 of red's (0).
* ``greenish_background`` (background, 3.40 %): background saturation >= 0.2 and hue within 0.03 of green's
  (0.333).
* ``bluish_background`` (background, 3.38 %): background saturation >= 0.2 and hue within 0.03 of blue's
  (0.61).
* ``yellowish_background`` (background, 3.10 %): background saturation >= 0.2 and hue within 0.03 of yellow's
  (0.15).
* ``plain_background`` (clutter, 0.70 %): no distractor blobs (clutter < 1/96).
* ``cluttered`` (clutter, 6.75 %): clutter >= 0.75 (>= 36 distractor blobs, noise std >= 0.065).
* ``very_cluttered`` (clutter, 2.27 %): clutter >= 0.85 (>= 41 blobs, noise std >= 0.071).
* ``filled`` (layout, 0.68 %): objects cover >= 35 % of the image.

Tags per image on those 4 000 scenes: mean 3.97, median 3, min 1, max 16; 70.9 % of the images have 2-5 tags
(images with 1, 2, ..., 8 tags: 326, 814, 925, 657, 438, 284, 214, 134; 208 with more); the most frequent tag
is on 46.7 %, the rarest on 0.30 % and 3 tags on <= 0.5 %.

:class:`SceneTagsSource` renders images on demand (deterministic in ``(seed, index)``); render a source
once into memory with :func:`ranking_jax.data.rendered.render` (uint8 pixels, optional ``.npz`` cache keyed
by :meth:`SceneTagsSource.cache_key`), as ``ranking_jax.projects.multilabel_annotation.multilabel_annotation`` does.
:func:`tag_statistics` measures frequencies and tags per image.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, NamedTuple, Sequence, Union

import numpy as np

from ranking_jax.data import augment
from ranking_jax.data import scenes as scenes_lib
from ranking_jax.data import sources

MIN_TAGGED_AREA = 0.003
# Areas are fractions of the image; thresholds below are chosen so that each tag is readable at 64x64.
_MIN_ORIENTED_AREA = 0.005
_MIN_STRIPED_AREA = 0.02  # stripes are 0.2 radii wide: >= 1 pixel at 64x64 (4 at 256x256) from here on
_MIN_ELLIPSE_AREA = 0.015
TAGS_VERSION = 1  # bump when a definition changes (keys the render cache)


@dataclasses.dataclass(frozen=True)
class TagSpec:
  """One tag: its name, group and the pixel-level definition (documentation only)."""
  name: str
  group: str
  definition: str


_SHAPES = scenes_lib.SHAPE_NAMES
_COLOURS = scenes_lib.COLOUR_NAMES
_CORNERS = {"top_left": (0.0, 0.0), "top_right": (1.0, 0.0), "bottom_left": (0.0, 1.0),
            "bottom_right": (1.0, 1.0)}
_HUE_TAGS = {"red": "reddish_background", "green": "greenish_background", "blue": "bluish_background",
             "yellow": "yellowish_background"}
# The scenes' 20 classes are 16 distinct (colour, shape) kinds: classes 16-19 draw the same colour and shape
# as classes 0-3, so the pixels cannot tell them apart and they share a tag.
_KIND_NAMES = tuple(dict.fromkeys(scenes_lib.CLASS_NAMES))
_COUNT_TAGS = ("no_object", "one_object", "two_objects", "three_objects", "four_objects", "many_objects")


def _specs() -> tuple[TagSpec, ...]:
  specs = [
      TagSpec("no_object", "count", "no tagged object (background only)"),
      TagSpec("one_object", "count", "exactly 1 tagged object"),
      TagSpec("two_objects", "count", "exactly 2 tagged objects"),
      TagSpec("three_objects", "count", "exactly 3 tagged objects"),
      TagSpec("four_objects", "count", "exactly 4 tagged objects"),
      TagSpec("many_objects", "count", "5 or more tagged objects"),
      TagSpec("crowd", "count", "6 or more tagged objects"),
  ]
  for name in _KIND_NAMES:
    specs.append(TagSpec(name.replace(" ", "_"), "kind", f"a tagged {name}"))
  specs += [
      TagSpec("three_of_a_kind", "kind", "at least 3 tagged objects of the same kind (colour and shape)"),
      TagSpec("one_colour", "colour", "at least 3 tagged objects, all of one colour"),
      TagSpec("all_colours", "colour", "tagged objects of all 4 colours"),
      TagSpec("camouflaged", "colour", "a tagged object whose hue is within 0.04 of the background's, on a "
                                       "background of saturation >= 0.28"),
      TagSpec("all_different_shapes", "kind", "at least 3 tagged objects, no two of the same shape"),
      TagSpec("huge_object", "size", "a tagged object with area >= 25 %"),
      TagSpec("large_object", "size", "a tagged object with area >= 15 %"),
      TagSpec("tiny_object", "size", "a tagged object with area < 0.35 %"),
      TagSpec("only_small_objects", "size", "at least 1 tagged object and every area < 0.5 %"),
      TagSpec("big_and_small", "size", "two tagged objects whose areas differ by a factor >= 30"),
  ]
  for colour in _COLOURS:
    specs.append(TagSpec(f"large_{colour}", "size", f"a tagged {colour} object with area >= 15 %"))
  specs.append(TagSpec("centred", "position", "the main object's centroid within 0.1 of the image centre "
                                               "in x and y"))
  for corner in _CORNERS:
    specs.append(TagSpec(f"{corner}_corner", "position",
                         f"the main object's centroid within 0.15 of the {corner.replace('_', '-')} corner "
                         "in x and y"))
  for side, text in (("left", "x < 0.5"), ("right", "x > 0.5"), ("top", "y < 0.5"), ("bottom", "y > 0.5")):
    specs.append(TagSpec(f"all_{side}", "position",
                         f"at least 3 tagged objects, every centroid at {text}"))
  specs += [
      TagSpec("in_a_row", "position", "at least 3 tagged objects whose centroids span >= 0.4 in x with a "
                                      "standard deviation < 0.06 in y"),
      TagSpec("far_apart", "position", "exactly 2 tagged objects, centroids >= 0.75 apart"),
      TagSpec("all_striped", "texture", "at least 2 tagged objects, all striped"),
      TagSpec("cut_off", "layout", "a tagged object with >= 60 % of its area outside the frame"),
      TagSpec("overlapping", "layout", "a tagged object with >= 50 % of its in-frame area hidden by objects "
                                       "in front"),
      TagSpec("mostly_hidden", "layout", "a tagged object with >= 75 % of its in-frame area hidden"),
      TagSpec("object_on_object", "layout", "a tagged object whose in-frame region lies (>= 95 %) inside "
                                            "an object behind it"),
  ]
  for shape in _SHAPES:
    specs.append(TagSpec(f"striped_{shape}", "texture",
                         f"a tagged striped {shape} with area >= 2 % (stripes readable)"))
  specs += [
      TagSpec("tall_ellipse", "orientation", "a tagged disk stretched by >= 1.75 (aspect), area >= 1.5 %, "
                                             "its long axis within 45 deg of vertical"),
      TagSpec("wide_ellipse", "orientation", "a tagged disk stretched by >= 1.75 (aspect), area >= 1.5 %, "
                                             "its long axis within 45 deg of horizontal"),
      TagSpec("upright_triangle", "orientation", "a tagged triangle (aspect < 1.3, area >= 0.5 %) with an "
                                                 "apex within 10 deg of straight up"),
      TagSpec("upside_down_triangle", "orientation", "a tagged triangle (aspect < 1.3, area >= 0.5 %) "
                                                     "with an apex within 10 deg of straight down"),
      TagSpec("upright_star", "orientation", "a tagged star (aspect < 1.25, area >= 0.5 %) with a point "
                                             "within 6 deg of straight up"),
      TagSpec("upright_square", "orientation", "a tagged square (aspect < 1.25, area >= 0.5 %) with sides "
                                               "within 8 deg of the image axes"),
      TagSpec("diamond", "orientation", "a tagged square (aspect < 1.25, area >= 0.5 %) turned 45 +- 8 deg"),
      TagSpec("plus_sign", "orientation", "a tagged cross (aspect < 1.25, area >= 0.5 %) with arms within "
                                          "8 deg of the image axes"),
      TagSpec("x_sign", "orientation", "a tagged cross (aspect < 1.25, area >= 0.5 %) turned 45 +- 8 deg"),
      TagSpec("dark_background", "background", "background value < 0.32"),
      TagSpec("bright_background", "background", "background value > 0.88"),
      TagSpec("grey_background", "background", "background saturation < 0.06"),
      TagSpec("colourful_background", "background", "background saturation > 0.335"),
      TagSpec("shaded_background", "background", "background brightness gradient amplitude > 0.145 "
                                                 "(brightness changes by >= 29 % across the image)"),
  ]
  for colour, hue in zip(_COLOURS, scenes_lib.COLOUR_HUES):
    specs.append(TagSpec(_HUE_TAGS[colour], "background",
                         f"background saturation >= 0.2 and hue within 0.03 of {colour}'s "
                                       f"({hue:.3g})"))
  specs += [
      TagSpec("plain_background", "clutter", "no distractor blobs (clutter < 1/96)"),
      TagSpec("cluttered", "clutter", "clutter >= 0.75 (>= 36 distractor blobs, noise std >= 0.065)"),
      TagSpec("very_cluttered", "clutter", "clutter >= 0.85 (>= 41 blobs, noise std >= 0.071)"),
      TagSpec("filled", "layout", "objects cover >= 35 % of the image"),
  ]
  return tuple(specs)


TAG_SPECS: tuple[TagSpec, ...] = _specs()
TAG_NAMES: tuple[str, ...] = tuple(spec.name for spec in TAG_SPECS)
TAG_GROUPS: tuple[str, ...] = tuple(spec.group for spec in TAG_SPECS)
NUM_TAGS = len(TAG_NAMES)
_TAG_INDEX = {name: k for k, name in enumerate(TAG_NAMES)}
assert len(_TAG_INDEX) == NUM_TAGS, "duplicate tag name"


def _angle_offset(angle: float, period: float) -> float:
  """Distance of ``angle`` from the nearest multiple of ``period`` (radians, signed)."""
  return (angle + period / 2.0) % period - period / 2.0


@dataclasses.dataclass(frozen=True)
class _Visible:
  obj: scenes_lib.SceneObject
  order: int          # position in the back-to-front list
  area: float         # visible in-frame area, fraction of the image
  centroid: tuple[float, float]
  mask: np.ndarray    # full in-frame mask of the object (visible or not), bool [cells]
  hidden: float       # fraction of the in-frame area hidden by objects in front


_GRID_X, _GRID_Y, _INSIDE, _CELL_AREA = scenes_lib._GRID  # pylint: disable=protected-access  # scenes' grid


def _visible_objects(scene: scenes_lib.Scene) -> tuple[list[_Visible], float]:
  """Per-object in-frame masks, visible areas and centroids, and the fraction of the image covered."""
  x, y = _GRID_X[_INSIDE], _GRID_Y[_INSIDE]
  in_front = np.zeros(x.shape, bool)
  result = []
  for order in range(len(scene.objects) - 1, -1, -1):
    obj = scene.objects[order]
    mask = scenes_lib._shape_mask(  # pylint: disable=protected-access
        obj.shape, *scenes_lib._object_coordinates(obj, x, y))  # pylint: disable=protected-access
    visible = mask & ~in_front
    in_front |= mask
    count = int(visible.sum())
    in_frame = int(mask.sum())
    centroid = (float(x[visible].mean()), float(y[visible].mean())) if count else (0.5, 0.5)
    result.append(_Visible(obj, order, count * _CELL_AREA, centroid, mask,
                           1.0 - count / in_frame if in_frame else 0.0))
  return result[::-1], float(in_front.mean())


def scene_tags(scene: scenes_lib.Scene) -> np.ndarray:
  """The tags of a scene: bool ``[NUM_TAGS]`` in :data:`TAG_NAMES` order (see the module docstring).

  >>> tags = scene_tags(scenes_lib.make_scene(0, 3))
  >>> tags.shape, bool(tags.any()), int(tags[:6].sum())  # at least one tag; exactly one count tag
  ((80,), True, 1)
  """
  visible, coverage = _visible_objects(scene)
  hue, saturation, value = scene.background_hsv
  tagged = [v for v in visible if v.obj.visible and v.area >= MIN_TAGGED_AREA]
  on = set()
  count = len(tagged)
  on.add(_COUNT_TAGS[min(count, len(_COUNT_TAGS) - 1)])
  if count >= 6:
    on.add("crowd")
  classes = [v.obj.class_id for v in tagged]
  shapes = [v.obj.shape for v in tagged]
  colours = [scenes_lib.CLASS_COLOUR[c] for c in classes]
  areas = [v.area for v in tagged]
  for c in classes:
    on.add(scenes_lib.CLASS_NAMES[c].replace(" ", "_"))
  kinds = [scenes_lib.CLASS_NAMES[c] for c in classes]
  if any(kinds.count(kind) >= 3 for kind in set(kinds)):
    on.add("three_of_a_kind")
  if count >= 3 and len(set(colours)) == 1:
    on.add("one_colour")
  if len(set(colours)) == len(_COLOURS):
    on.add("all_colours")
  if count >= 3 and len(set(shapes)) == count:
    on.add("all_different_shapes")
  if count:
    if max(areas) >= 0.25:
      on.add("huge_object")
    if max(areas) >= 0.15:
      on.add("large_object")
    if min(areas) < 0.0035:
      on.add("tiny_object")
    if max(areas) < 0.005:
      on.add("only_small_objects")
    if count >= 2 and max(areas) >= 30.0 * min(areas):
      on.add("big_and_small")
    for v in tagged:
      if v.area >= 0.15:
        on.add(f"large_{_COLOURS[scenes_lib.CLASS_COLOUR[v.obj.class_id]]}")
    cx, cy = tagged[int(np.argmax(areas))].centroid
    if abs(cx - 0.5) < 0.1 and abs(cy - 0.5) < 0.1:
      on.add("centred")
    for corner, (x0, y0) in _CORNERS.items():
      if abs(cx - x0) < 0.15 and abs(cy - y0) < 0.15:
        on.add(f"{corner}_corner")
  if count == 2 and math.dist(tagged[0].centroid, tagged[1].centroid) >= 0.75:
    on.add("far_apart")
  if count >= 2 and all(v.obj.striped for v in tagged):
    on.add("all_striped")
  if count >= 3:
    xs = np.array([v.centroid[0] for v in tagged])
    ys = np.array([v.centroid[1] for v in tagged])
    for side, inside in (("left", xs < 0.5), ("right", xs > 0.5), ("top", ys < 0.5), ("bottom", ys > 0.5)):
      if inside.all():
        on.add(f"all_{side}")
    if np.ptp(xs) >= 0.4 and ys.std() < 0.06:
      on.add("in_a_row")
  for v in tagged:
    obj = v.obj
    if obj.truncated_fraction >= 0.6:
      on.add("cut_off")
    if v.hidden >= 0.5:
      on.add("overlapping")
    if v.hidden >= 0.75:
      on.add("mostly_hidden")
    in_frame = int(v.mask.sum())
    if in_frame and any(int((v.mask & w.mask).sum()) >= 0.95 * in_frame for w in visible[:v.order]):
      on.add("object_on_object")
    if obj.striped and v.area >= _MIN_STRIPED_AREA:
      on.add(f"striped_{_SHAPES[obj.shape]}")
    if obj.shape == 0 and obj.aspect >= 1.75 and v.area >= _MIN_ELLIPSE_AREA:
      # v is squashed by the aspect, so the long axis is u = (cos r, sin r) in image (x, y)
      on.add("wide_ellipse" if abs(math.cos(obj.rotation)) >= math.sqrt(0.5) else "tall_ellipse")
    if saturation >= 0.28:
      object_hue = augment.rgb_to_hsv(np.asarray(obj.colour, np.float32))[0]
      if abs(_angle_offset(float(object_hue) - hue, 1.0)) < 0.04:
        on.add("camouflaged")
    if v.area >= _MIN_ORIENTED_AREA:
      # rotation pi turns the apex-up triangle apex-down; it has 3-fold symmetry
      if (obj.shape == 2 and obj.aspect < 1.3
          and abs(_angle_offset(obj.rotation - math.pi, 2.0 * math.pi / 3.0)) < math.radians(10)):
        on.add("upside_down_triangle")
      if (obj.shape == 2 and obj.aspect < 1.3
          and abs(_angle_offset(obj.rotation, 2.0 * math.pi / 3.0)) < math.radians(10)):
        on.add("upright_triangle")
      # the star's points are at multiples of 72 deg, the first straight up at rotation 0
      if (obj.shape == 4 and obj.aspect < 1.25
          and abs(_angle_offset(obj.rotation, 2.0 * math.pi / 5.0)) < math.radians(6)):
        on.add("upright_star")
      quarter_turn = _angle_offset(obj.rotation, math.pi / 2.0)
      eighth_turn = _angle_offset(obj.rotation - math.pi / 4.0, math.pi / 2.0)
      if obj.shape == 1 and obj.aspect < 1.25 and abs(eighth_turn) < math.radians(8):
        on.add("diamond")
      if obj.shape == 1 and obj.aspect < 1.25 and abs(quarter_turn) < math.radians(8):
        on.add("upright_square")
      if obj.shape == 3 and obj.aspect < 1.25 and abs(quarter_turn) < math.radians(8):
        on.add("plus_sign")
      if obj.shape == 3 and obj.aspect < 1.25 and abs(eighth_turn) < math.radians(8):
        on.add("x_sign")
  if value < 0.32:
    on.add("dark_background")
  if value > 0.88:
    on.add("bright_background")
  if saturation < 0.06:
    on.add("grey_background")
  if saturation > 0.335:
    on.add("colourful_background")
  if scene.gradient[2] > 0.145:
    on.add("shaded_background")
  if saturation >= 0.2:
    for colour, colour_hue in zip(_COLOURS, scenes_lib.COLOUR_HUES):
      if abs(_angle_offset(hue - colour_hue, 1.0)) < 0.03:
        on.add(_HUE_TAGS[colour])
  if len(scene.distractors) == 0:
    on.add("plain_background")
  if scene.clutter >= 0.75:
    on.add("cluttered")
  if scene.clutter >= 0.85:
    on.add("very_cluttered")
  if coverage >= 0.35:
    on.add("filled")
  tags = np.zeros(NUM_TAGS, bool)
  tags[[_TAG_INDEX[name] for name in on]] = True
  return tags


class SceneTagsSource(sources.ExampleSource):
  """Random-access scenes with multi-hot tags: ``{"image", "labels", "index"}``.

  ``source[index_array]`` returns ``image`` float32 ``[n, H, W, 3]`` in ``[0, 1]``, ``labels`` float32
  multi-hot ``[n, NUM_TAGS]`` (:data:`TAG_NAMES` order) and ``index`` int64 ``[n]``; a scalar index gives
  the same without the batch axis. Example ``i`` is scene ``offset + i`` of generator ``seed`` (see
  :class:`ranking_jax.data.scenes.ScenesSource`, whose keyword options it takes), so any example can be
  read in any order.

  >>> source = SceneTagsSource(10, seed=0, image_size=32)
  >>> batch = source[np.arange(3)]
  >>> batch["image"].shape, batch["labels"].shape, batch["labels"].dtype
  ((3, 32, 32, 3), (3, 80), dtype('float32'))
  """

  def __init__(self, num_examples: int, *, seed: int = 0, offset: int = 0, image_size: int = 64,
               **scene_options: Any):
    self.scenes = scenes_lib.ScenesSource(num_examples, seed=seed, offset=offset, image_size=image_size,
                                          **scene_options)

  def __len__(self) -> int:
    return len(self.scenes)

  def __repr__(self) -> str:
    return f"SceneTagsSource({self.scenes!r})"

  @property
  def image_size(self) -> int:
    return self.scenes.image_size

  def cache_key(self) -> str:
    """Every option that changes pixels or tags (a ``cache_key`` for :func:`ranking_jax.data.rendered.render`)."""
    s = self.scenes
    return json.dumps([TAGS_VERSION, s.seed, s.offset, len(s), s.image_size, s.clutter_range,
                       s.max_objects], sort_keys=True)

  def labels(self, indices: Union[int, Sequence[int], np.ndarray]) -> np.ndarray:
    """float32 multi-hot tags ``[n, NUM_TAGS]`` (or ``[NUM_TAGS]``) without rendering (fast)."""
    if np.ndim(indices) == 0:
      return scene_tags(self.scenes.scene(int(indices))).astype(np.float32)
    return np.stack([scene_tags(self.scenes.scene(int(i))) for i in np.asarray(indices).reshape(-1)]
                    ).astype(np.float32).reshape((-1, NUM_TAGS))

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    scene = self.scenes.scene(index)
    return {"image": self.scenes.render(scene), "labels": scene_tags(scene).astype(np.float32),
            "index": np.int64(index)}


def make_scene_tags_splits(num_train: int = 4000, num_validation: int = 1000, num_test: int = 2000, *,
                           seed: int = 0, **options: Any) -> dict[str, SceneTagsSource]:
  """Train / validation / test :class:`SceneTagsSource` over disjoint scene ranges of one seed.

  >>> splits = make_scene_tags_splits(10, 5, 5)
  >>> [len(splits[k]) for k in ("train", "validation", "test")]
  [10, 5, 5]
  """
  return {
      "train": SceneTagsSource(num_train, seed=seed, offset=0, **options),
      "validation": SceneTagsSource(num_validation, seed=seed, offset=num_train, **options),
      "test": SceneTagsSource(num_test, seed=seed, offset=num_train + num_validation, **options),
  }


class TagStatistics(NamedTuple):
  """Tag statistics of a multi-hot label matrix ``[images, tags]``."""
  count: np.ndarray           # int64 [tags]: images carrying each tag
  frequency: np.ndarray       # float64 [tags]: count / images
  tags_per_image: np.ndarray  # int64 [images]
  histogram: np.ndarray       # int64 [max + 1]: images with 0, 1, 2, ... tags
  mean_tags: float
  median_tags: float
  fraction_untagged: float    # images without any tag
  fraction_2_to_5: float      # images with 2-5 tags


def tag_statistics(labels: np.ndarray) -> TagStatistics:
  """Frequency per tag and tags per image of a multi-hot ``labels`` array ``[images, tags]`` (> 0 = on).

  >>> stats = tag_statistics(np.array([[1, 0, 1], [0, 0, 1]]))
  >>> stats.frequency.tolist(), stats.tags_per_image.tolist(), stats.mean_tags
  ([0.5, 0.0, 1.0], [2, 1], 1.5)
  """
  on = np.asarray(labels) > 0
  if on.ndim != 2 or on.shape[0] == 0:
    raise ValueError(f"`labels` must be a non-empty [images, tags] array, got shape {on.shape}.")
  count = on.sum(axis=0).astype(np.int64)
  per_image = on.sum(axis=1).astype(np.int64)
  return TagStatistics(
      count=count, frequency=count / on.shape[0], tags_per_image=per_image,
      histogram=np.bincount(per_image), mean_tags=float(per_image.mean()),
      median_tags=float(np.median(per_image)), fraction_untagged=float(np.mean(per_image == 0)),
      fraction_2_to_5=float(np.mean((per_image >= 2) & (per_image <= 5))))


def format_tag_statistics(stats: TagStatistics, names: Sequence[str] = TAG_NAMES) -> str:
  """A plain-text report: tags by decreasing frequency, then the tags-per-image summary."""
  if len(names) != len(stats.count):
    raise ValueError(f"{len(names)} names for {len(stats.count)} tags.")
  order = np.argsort(-stats.frequency, kind="stable")
  lines = [f"{'tag':<24} {'images':>7} {'%':>7}"]
  lines += [f"{names[j]:<24} {stats.count[j]:>7d} {100 * stats.frequency[j]:>7.2f}" for j in order]
  lines.append(f"tags per image: mean {stats.mean_tags:.2f}, median {stats.median_tags:g}, "
               f"min {stats.tags_per_image.min()}, max {stats.tags_per_image.max()}, "
               f"2-5 tags on {100 * stats.fraction_2_to_5:.1f} %, "
               f"untagged {100 * stats.fraction_untagged:.2f} %; "
               f"histogram {stats.histogram.tolist()}")
  return "\n".join(lines)


def _docstring_table(labels: np.ndarray) -> str:
  """The tag list of the module docstring for measured ``labels`` (developer tool: regenerate the table
  after changing a definition, from ``make_scene_tags_splits()["train"].labels(np.arange(4000))``)."""
  import textwrap  # pylint: disable=g-import-not-at-top

  stats = tag_statistics(labels)
  lines = []
  for j, spec in enumerate(TAG_SPECS):
    text = f"* ``{spec.name}`` ({spec.group}, {100 * stats.frequency[j]:.2f} %): {spec.definition}."
    lines += textwrap.wrap(text, width=110, subsequent_indent="  ", break_on_hyphens=False)
  return "\n".join(lines)
