r"""Procedural shoes drawn twice: the embedded default data of the fine-grained sketch-retrieval experiment.

A within-category, instance-level benchmark in the image of QMUL-Shoe ("Sketch me that shoe", Yu et al.,
CVPR 2016; used by "Deep Multi-task Attribute-driven Ranking for Fine-grained Sketch-based Image
Retrieval", Song et al., BMVC 2016): every example is one *shoe instance*, rendered as a clean "photo"
edge map and as a free-hand-style *sketch* of the same instance, with its binary attribute vector. No
download, no TensorFlow; example ``i`` is regenerated from ``(seed, offset + i)`` alone.

**The category.** A shoe in side view, toe to the left, as in QMUL-Shoe. An instance is drawn from one of
:data:`STYLE_NAMES` (pump, sandal, sneaker, lace-up, loafer, ankle boot, knee boot, wedge, ballet flat;
the style is a latent label, not an attribute), then gets binary attributes with style-dependent
probabilities and 20 continuous shape parameters (:data:`PARAMETER_NAMES`: length, heel height, sole and
platform thickness, toe height / length / pointedness, vamp length, throat and collar height, top-line dip,
shaft height and flare, heel width and set-back, strap height, lace and strap counts, ornament size,
stripe angle). Instances of one style with equal attributes differ only in these fine details, while all
instances share the coarse structure (sole, heel, toe box, vamp, opening).

**The parts** (up to 25 strokes groups, :data:`PART_NAMES`): outsole, sole top (foot line), heel (breast,
back, top lift), toe box, vamp, top line (opening), heel counter, shaft (front, back, top), toe cap,
welt stitching, laces, eyelet stay, tongue, ankle strap, buckle, zip, vamp straps, bow ornament, side
stripes, perforations, pull tab, visible insole, open-toe / open-back edges.

**The attributes** (:data:`ATTRIBUTE_NAMES`, 21 binary, as many as QMUL-Shoe's): ``pointed_toe``,
``open_toe``, ``toe_cap``, ``flat_heel`` (heel height < 0.03, not a wedge), ``high_heel`` (>= 0.1),
``stiletto_heel``, ``wedge_heel``, ``platform``, ``ankle_high``, ``knee_high``, ``open_back``, ``laces``,
``ankle_strap``, ``buckle``, ``zip``, ``vamp_straps``, ``ornament``, ``stitching``, ``side_stripe``,
``perforation``, ``pull_tab``. Each is a visible part or a threshold on a drawn dimension. They are shared
rather than unique: about 84 distinct attribute vectors among 115 instances (seed 0).

**The photo** is the clean line drawing of every part (line width ``photo_line_width`` pixels at 128 px,
scaled with the image size), centred and scaled to fit, with what an edge detector adds to a product photo:
lines broken by small gaps and a few short texture edges inside the shoe.

**The sketch** is drawn from the same instance the way people sketch from memory ("jittered, simplified,
partly missing and exaggerated strokes"): the salient dimensions are exaggerated (heel, toe, shaft, collar
heights scaled by up to ``1 + exaggeration``; pointedness pushed to its extreme), the whole drawing is
rescaled, stretched, rotated and shifted, every stroke is re-sampled to a few control points (simplified)
and displaced by smooth low-frequency noise (``jitter``), detail parts are left out with per-part
probabilities (stitching, perforations and eyelets most often) and outline strokes are shortened at a random
end, some strokes are traced twice, and lines are thicker (``sketch_line_width``).

Images are float32 ``[H, W, 1]`` in ``[0, 1]`` with a white background (1) and dark strokes (0), the
convention of the QMUL ``.mat`` files (:mod:`ranking_jax.projects.sketch_retrieval.qmul`).

**Ground truth similarity.** ``descriptor`` = the 21 attributes times ``sqrt(GROUND_TRUTH_ATTRIBUTE_WEIGHT)``
followed by the 20 shape parameters normalised to ``[0, 1]`` (0 for a part the instance lacks); the squared
Euclidean distance between descriptors (:func:`descriptor_distances`) is the generator's notion of "how
similar two shoes are", used for ground-truth triplets and simulated annotators
(:mod:`ranking_jax.projects.sketch_retrieval.sketch_triplets`).

**Difficulty** (measured on the default 304 / 115 split of seed 0, 64-pixel images): sketch-to-photo nearest
neighbour with the HOG features of :func:`ranking_jax.projects.sketch_retrieval.sketch_triplets.edge_hog_features` (4, 6, 8
cells) reaches acc@1 0.27 / 0.21 / 0.25 and acc@10 0.72 / 0.79 / 0.77 on the 115 test pairs, and with
blurred raw pixels 0.17 / 0.66: a little harder than the real QMUL-Shoe test split for the same features
(HOG acc@1 0.26-0.37, acc@10 0.78-0.81 at 64 pixels). Knowing the true attributes and then ranking by HOG
gives 0.84 / 1.0, the true descriptors 1.0.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Sequence, Union

import numpy as np
from PIL import Image
from PIL import ImageDraw

from ranking_jax.projects.sketch_retrieval import sketch_triplets

STYLE_NAMES = ("pump", "sandal", "sneaker", "lace_up", "loafer", "ankle_boot", "knee_boot", "wedge",
               "ballet_flat")
STYLE_PROBABILITIES = (0.14, 0.12, 0.12, 0.11, 0.1, 0.12, 0.1, 0.1, 0.09)

ATTRIBUTE_NAMES = ("pointed_toe", "open_toe", "toe_cap", "flat_heel", "high_heel", "stiletto_heel",
                   "wedge_heel", "platform", "ankle_high", "knee_high", "open_back", "laces", "ankle_strap",
                   "buckle", "zip", "vamp_straps", "ornament", "stitching", "side_stripe", "perforation",
                   "pull_tab")
NUM_ATTRIBUTES = len(ATTRIBUTE_NAMES)

# (name, low, high): the range that normalises each shape parameter to [0, 1] in `descriptor`.
PARAMETER_RANGES = (
    ("length", 0.60, 0.84), ("heel_height", 0.0, 0.26), ("sole_thickness", 0.012, 0.05),
    ("platform_height", 0.0, 0.07), ("toe_height", 0.08, 0.19), ("toe_length", 0.10, 0.26),
    ("toe_point", 0.0, 1.0), ("vamp_length", 0.28, 0.62), ("throat_height", 0.12, 0.34),
    ("collar_height", 0.12, 0.3), ("top_line_dip", 0.0, 0.07), ("shaft_height", 0.0, 0.5),
    ("shaft_flare", 0.0, 0.07), ("heel_width", 0.0, 0.14), ("heel_setback", 0.0, 0.05),
    ("strap_height", 0.0, 0.1), ("lace_count", 0.0, 7.0), ("vamp_strap_count", 0.0, 3.0),
    ("ornament_size", 0.0, 0.06), ("stripe_angle", 0.0, 1.0),
)
PARAMETER_NAMES = tuple(name for name, _, _ in PARAMETER_RANGES)
NUM_PARAMETERS = len(PARAMETER_NAMES)
# A differing attribute counts as much as a shape parameter differing by 0.5 of its range.
GROUND_TRUTH_ATTRIBUTE_WEIGHT = 0.25

PART_NAMES = ("outsole", "sole_top", "heel", "heel_lift", "toe_box", "vamp", "top_line", "counter",
              "shaft", "shaft_top", "toe_cap", "stitching", "laces", "eyelet_stay", "tongue", "ankle_strap",
              "buckle", "zip", "vamp_straps", "ornament", "side_stripe", "perforation", "pull_tab", "insole",
              "opening_edge")
# Probability that a sketch leaves a part out: outline parts rarely, small details often.
SKETCH_DROP_PROBABILITY = {
    "outsole": 0.03, "sole_top": 0.15, "heel": 0.03, "heel_lift": 0.6, "toe_box": 0.02, "vamp": 0.05,
    "top_line": 0.05, "counter": 0.08, "shaft": 0.02, "shaft_top": 0.2, "toe_cap": 0.35,
    "stitching": 0.75, "laces": 0.25, "eyelet_stay": 0.55, "tongue": 0.45, "ankle_strap": 0.12,
    "buckle": 0.35, "zip": 0.3, "vamp_straps": 0.1, "ornament": 0.25, "side_stripe": 0.35,
    "perforation": 0.7, "pull_tab": 0.5, "insole": 0.5, "opening_edge": 0.1,
}
_OUTLINE_PARTS = ("outsole", "sole_top", "heel", "toe_box", "vamp", "top_line", "counter", "shaft")

_GROUND = 0.8
_RENDER_REFERENCE_SIZE = 128  # line widths are given in pixels of a 128-pixel image


@dataclasses.dataclass(frozen=True)
class ShoeInstance:
  """One shoe: its style, binary attributes and raw shape parameters (fractions of the image side)."""
  index: int
  style: int
  attributes: np.ndarray  # bool [NUM_ATTRIBUTES]
  parameters: dict[str, float]

  def has(self, name: str) -> bool:
    """Whether the shoe has attribute ``name``."""
    return bool(self.attributes[ATTRIBUTE_NAMES.index(name)])

  @property
  def normalized_parameters(self) -> np.ndarray:
    """float32 ``[NUM_PARAMETERS]`` in ``[0, 1]`` (0 for an absent part)."""
    values = [(self.parameters[name] - low) / (high - low) for name, low, high in PARAMETER_RANGES]
    return np.clip(np.asarray(values, np.float32), 0.0, 1.0)

  @property
  def descriptor(self) -> np.ndarray:
    """Ground-truth similarity descriptor, float32 ``[NUM_ATTRIBUTES + NUM_PARAMETERS]``."""
    weight = math.sqrt(GROUND_TRUTH_ATTRIBUTE_WEIGHT)
    return np.concatenate([self.attributes.astype(np.float32) * weight, self.normalized_parameters])


@dataclasses.dataclass
class Stroke:
  """A polyline of one part in unit coordinates (``x`` right, ``y`` down); ``kind``: line, dots, dashes."""
  part: str
  points: np.ndarray  # float64 [K, 2]
  kind: str = "line"


# ----------------------------------------------------------------------------------------------------------
# Instances.

# Per style: attribute probabilities (unlisted: 0) and heel kind probabilities (flat, low, high, wedge).
_STYLE_ATTRIBUTES: dict[str, dict[str, float]] = {
    "pump": {"pointed_toe": 0.75, "open_toe": 0.15, "open_back": 0.15, "ankle_strap": 0.2, "ornament": 0.15,
             "platform": 0.1},
    "sandal": {"open_toe": 1.0, "vamp_straps": 1.0, "ankle_strap": 0.85, "open_back": 0.85, "platform": 0.15},
    "sneaker": {"laces": 1.0, "stitching": 0.9, "side_stripe": 0.75, "perforation": 0.15, "pull_tab": 0.85,
                "toe_cap": 0.85, "platform": 0.1},
    "lace_up": {"laces": 1.0, "toe_cap": 0.8, "stitching": 0.85, "perforation": 0.3, "pointed_toe": 0.15},
    "loafer": {"ornament": 0.5, "stitching": 0.85, "buckle": 0.15, "toe_cap": 0.15, "pointed_toe": 0.1},
    "ankle_boot": {"ankle_high": 1.0, "zip": 0.7, "laces": 0.15, "buckle": 0.1, "pull_tab": 0.15,
                   "pointed_toe": 0.2, "stitching": 0.15},
    "knee_boot": {"knee_high": 1.0, "zip": 0.8, "buckle": 0.15, "pointed_toe": 0.3},
    "wedge": {"open_toe": 0.7, "ankle_strap": 0.7, "vamp_straps": 0.6, "platform": 0.7, "open_back": 0.3},
    "ballet_flat": {"ornament": 0.7, "pointed_toe": 0.15, "toe_cap": 0.1},
}
# Buckles sit on ankle straps: a strapped shoe of these styles has one with this probability.
_STRAP_BUCKLE_PROBABILITY = 0.7
_STYLE_HEELS: dict[str, tuple[float, float, float, float]] = {
    "pump": (0.0, 0.15, 0.85, 0.0), "sandal": (0.4, 0.2, 0.3, 0.1), "sneaker": (1.0, 0.0, 0.0, 0.0),
    "lace_up": (0.6, 0.4, 0.0, 0.0), "loafer": (0.7, 0.3, 0.0, 0.0), "ankle_boot": (0.3, 0.35, 0.3, 0.05),
    "knee_boot": (0.2, 0.3, 0.45, 0.05), "wedge": (0.0, 0.0, 0.0, 1.0), "ballet_flat": (1.0, 0.0, 0.0, 0.0),
}


def _instance_rng(seed: int, index: int, stream: int) -> np.random.Generator:
  return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), stream])


def make_instance(seed: int, index: int) -> ShoeInstance:
  """The shoe instance ``index`` of generator ``seed`` (pure function of both).

  >>> shoe = make_instance(0, 3)
  >>> shoe.attributes.shape, len(shoe.parameters), shoe.descriptor.shape
  ((21,), 20, (41,))
  """
  rng = _instance_rng(seed, index, 0)
  style = int(rng.choice(len(STYLE_NAMES), p=STYLE_PROBABILITIES))
  name = STYLE_NAMES[style]
  probabilities = _STYLE_ATTRIBUTES[name]
  draws = rng.random(NUM_ATTRIBUTES)
  on = {a: bool(draws[k] < probabilities.get(a, 0.0)) for k, a in enumerate(ATTRIBUTE_NAMES)}
  heel_kind = int(rng.choice(4, p=_STYLE_HEELS[name]))  # flat, low, high, wedge
  u = rng.random(32)  # one uniform per continuous choice, in a fixed order
  if on["ankle_strap"] and u[21] < _STRAP_BUCKLE_PROBABILITY:
    on["buckle"] = True
  p: dict[str, float] = {key: 0.0 for key in PARAMETER_NAMES}
  p["length"] = 0.6 + 0.24 * u[0]
  p["sole_thickness"] = (0.025 + 0.025 * u[1]) if name == "sneaker" else (0.012 + 0.02 * u[1])
  if heel_kind == 0:
    p["heel_height"] = 0.022 * u[2]
  elif heel_kind == 1:
    p["heel_height"] = 0.04 + 0.05 * u[2]
  elif heel_kind == 2:
    p["heel_height"] = 0.11 + 0.15 * u[2]
  else:
    p["heel_height"] = 0.06 + 0.16 * u[2]
  on["wedge_heel"] = heel_kind == 3
  on["stiletto_heel"] = heel_kind == 2 and u[3] < (0.7 if name == "pump" else 0.4)
  if heel_kind in (1, 2) and not on["wedge_heel"]:
    p["heel_width"] = 0.012 + 0.012 * u[4] if on["stiletto_heel"] else 0.045 + 0.09 * u[4]
    p["heel_setback"] = 0.05 * u[5]
  if on["platform"]:
    p["platform_height"] = 0.025 + 0.045 * u[6]
  low_cut = name in ("pump", "ballet_flat", "sandal", "wedge")
  p["toe_height"] = (0.09 + 0.05 * u[7]) if low_cut else (0.12 + 0.06 * u[7])
  p["toe_point"] = 0.65 + 0.35 * u[8] if on["pointed_toe"] else 0.45 * u[8]
  p["toe_length"] = 0.1 + 0.1 * u[9] + (0.06 * p["toe_point"] if on["pointed_toe"] else 0.0)
  p["vamp_length"] = (0.28 + 0.14 * u[10]) if low_cut else (0.42 + 0.2 * u[10])
  p["throat_height"] = (0.13 + 0.09 * u[11]) if low_cut else (0.21 + 0.12 * u[11])
  p["collar_height"] = (0.14 + 0.1 * u[12]) if low_cut else (0.2 + 0.1 * u[12])
  if not (on["ankle_high"] or on["knee_high"]):
    p["top_line_dip"] = 0.07 * u[13]
  if on["ankle_high"]:
    p["shaft_height"] = 0.08 + 0.12 * u[14]
  elif on["knee_high"]:
    p["shaft_height"] = 0.3 + 0.2 * u[14]
  if on["ankle_high"] or on["knee_high"]:
    p["shaft_flare"] = 0.07 * u[15]
  if on["ankle_strap"]:
    p["strap_height"] = 0.01 + 0.09 * u[16]
  if on["laces"]:
    p["lace_count"] = float(3 + int(u[17] * 5))
  if on["vamp_straps"]:
    p["vamp_strap_count"] = float(1 + int(u[18] * 3))
  if on["ornament"]:
    p["ornament_size"] = 0.02 + 0.04 * u[19]
  if on["side_stripe"]:
    p["stripe_angle"] = u[20]
  on["flat_heel"] = p["heel_height"] < 0.03 and not on["wedge_heel"]
  on["high_heel"] = p["heel_height"] >= 0.1
  attributes = np.asarray([on[a] for a in ATTRIBUTE_NAMES], dtype=bool)
  return ShoeInstance(index=int(index), style=style, attributes=attributes, parameters=p)


def exaggerate(shoe: ShoeInstance, rng: np.random.Generator, amount: float) -> ShoeInstance:
  """The shoe as a sketcher remembers it: salient dimensions scaled by up to ``1 + amount``."""
  p = dict(shoe.parameters)
  for key in ("heel_height", "toe_height", "shaft_height", "collar_height", "throat_height",
              "platform_height", "top_line_dip", "ornament_size"):
    p[key] *= 1.0 + amount * rng.uniform(-0.25, 1.0)
  p["toe_point"] = float(np.clip(0.5 + (p["toe_point"] - 0.5) * (1.0 + amount * rng.uniform(0, 1.5)),
                                 0.0, 1.0))
  p["length"] *= 1.0 + 0.3 * amount * rng.uniform(-1.0, 1.0)
  p["vamp_length"] *= 1.0 + 0.3 * amount * rng.uniform(-1.0, 1.0)
  if p["lace_count"] > 0:
    p["lace_count"] = float(max(2, p["lace_count"] + rng.integers(-2, 2)))
  return dataclasses.replace(shoe, parameters=p)


# ----------------------------------------------------------------------------------------------------------
# Geometry: every part as polylines.


def _bezier(control: Sequence[Sequence[float]], n: int = 24) -> np.ndarray:
  """Points of the Bezier curve with the given control points (de Casteljau), ``[n, 2]``."""
  c = np.asarray(control, np.float64)
  t = np.linspace(0.0, 1.0, n)[:, None, None]
  points = np.broadcast_to(c[None], (n,) + c.shape).copy()
  while points.shape[1] > 1:
    points = (1.0 - t) * points[:, :-1] + t * points[:, 1:]
  return points[:, 0]


def _smoothstep(x: np.ndarray) -> np.ndarray:
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3.0 - 2.0 * x)


class _ShoeFrame:
  """The foot line (top of the sole) and the outsole bottom of one shoe, as functions of the fraction f."""

  def __init__(self, shoe: ShoeInstance):
    p = shoe.parameters
    self.p = p
    self.length = p["length"]
    self.x_toe = 0.5 - self.length / 2.0
    self.heeled = p["heel_height"] > 0.0 and not shoe.has("wedge_heel")
    self.wedge = shoe.has("wedge_heel")
    self.spring = 0.012 + 0.01 * p["toe_point"]

  def x(self, f: np.ndarray) -> np.ndarray:
    return self.x_toe + np.asarray(f) * self.length

  def arch(self, f: np.ndarray) -> np.ndarray:
    return _smoothstep((np.asarray(f) - 0.4) / 0.35)

  def bottom(self, f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, np.float64)
    toe_lift = self.spring * np.clip((0.12 - f) / 0.12, 0.0, 1.0) ** 2
    lift = self.p["heel_height"] * self.arch(f) if self.heeled else 0.0
    return _GROUND - toe_lift - lift

  def foot(self, f: np.ndarray) -> np.ndarray:
    """y of the foot line (sole top): bottom minus sole and platform, and the wedge's rise."""
    f = np.asarray(f, np.float64)
    front = 1.0 - _smoothstep((f - 0.45) / 0.25)
    y = self.bottom(f) - self.p["sole_thickness"] - self.p["platform_height"] * front
    if self.wedge:
      y = y - self.p["heel_height"] * self.arch(f)
    return y

  def point(self, f: float, height: float) -> tuple[float, float]:
    return float(self.x(f)), float(self.foot(f) - height)


def _upper_height(shoe: ShoeInstance, f: np.ndarray) -> np.ndarray:
  """Height of the upper's top edge above the foot line, from the toe tip to the throat."""
  p = shoe.parameters
  f = np.asarray(f, np.float64)
  toe_u = np.clip(f / p["toe_length"], 0.0, 1.0)
  round_profile = np.sqrt(np.clip(1.0 - (1.0 - toe_u) ** 2, 0.0, 1.0))
  point = p["toe_point"]
  toe = p["toe_height"] * ((1.0 - point) * round_profile + point * toe_u ** 0.9)
  vamp_u = np.clip((f - p["toe_length"]) / max(p["vamp_length"] - p["toe_length"], 1e-3), 0.0, 1.0)
  return toe + (p["throat_height"] - p["toe_height"]) * vamp_u ** 1.3


def shoe_strokes(shoe: ShoeInstance) -> list[Stroke]:
  """Every part of ``shoe`` as polylines in unit coordinates, before centring (see :data:`PART_NAMES`)."""
  p = shoe.parameters
  frame = _ShoeFrame(shoe)
  strokes: list[Stroke] = []

  def add(part: str, points: Any, kind: str = "line") -> None:
    points = np.asarray(points, np.float64)
    if len(points) >= 2 or kind == "dots":
      strokes.append(Stroke(part, points, kind))

  def curve(f: np.ndarray, height: Any) -> np.ndarray:
    return np.stack([frame.x(f), frame.foot(f) - height], axis=1)

  # Sole: the outsole bottom (from the toe tip round the back), the foot line above it.
  f = np.linspace(0.0, 1.0, 48)
  back_bottom = frame.bottom(1.0)
  bottom = np.stack([frame.x(f), frame.bottom(f)], axis=1)
  toe_tip = (frame.x(0.0) - 0.012, 0.5 * (frame.bottom(0.0) + frame.foot(0.0)))
  add("outsole", np.concatenate([[toe_tip], bottom, [(frame.x(1.0) + 0.006, back_bottom - 0.006)],
                                 [(frame.x(1.0) + 0.006, frame.foot(1.0))]]))
  add("sole_top", np.concatenate([[toe_tip], np.stack([frame.x(f), frame.foot(f)], axis=1)]))
  if frame.heeled and p["heel_height"] > 0.025:
    back = frame.x(1.0) - p["heel_setback"]
    top_front = frame.x(0.8)
    bottom_front = back - max(p["heel_width"], 0.012)
    breast = _bezier([(top_front, frame.bottom(0.8)), (bottom_front - 0.2 * (top_front - bottom_front),
                                                       _GROUND - 0.5 * p["heel_height"]),
                      (bottom_front, _GROUND)], 16)
    add("heel", np.concatenate([breast, [(back, _GROUND)], _bezier(
        [(back, _GROUND), (back + 0.5 * p["heel_setback"], _GROUND - 0.5 * p["heel_height"]),
         (frame.x(1.0), back_bottom)], 12)]))
    add("heel_lift", [(bottom_front + 0.002, _GROUND - 0.012), (back - 0.002, _GROUND - 0.012)])

  # Upper: the toe box and vamp up to the throat; an open toe starts behind the toe tip.
  throat_f = p["vamp_length"]
  start_f = 0.55 * p["toe_length"] if shoe.has("open_toe") else 0.0
  f_toe = np.linspace(start_f, p["toe_length"], 20)
  f_vamp = np.linspace(p["toe_length"], throat_f, 20)
  add("toe_box", curve(f_toe, _upper_height(shoe, f_toe)))
  add("vamp", curve(f_vamp, _upper_height(shoe, f_vamp)))
  if shoe.has("open_toe"):
    add("insole", curve(np.linspace(0.0, start_f + 0.05, 10), np.full(10, 0.004)))
    add("opening_edge", _bezier([frame.point(start_f, 0.0), frame.point(start_f + 0.06, 0.35 * p[
        "toe_height"]), frame.point(p["toe_length"], _upper_height(shoe, p["toe_length"]))], 12))
  throat = frame.point(throat_f, p["throat_height"])
  boot = shoe.has("ankle_high") or shoe.has("knee_high")
  back_f = 0.62 + 0.08 * p["collar_height"] / 0.24 if shoe.has("open_back") else 1.0
  collar = frame.point(back_f, p["collar_height"])
  if boot:
    top_y = throat[1] - p["shaft_height"]
    front_top = (throat[0] + 0.03 + 0.5 * p["shaft_flare"], top_y)
    back_top = (frame.x(1.0) + 0.01 + p["shaft_flare"], top_y + 0.01)
    add("shaft", _bezier([throat, (throat[0] + 0.04, 0.5 * (throat[1] + top_y)), front_top], 16))
    add("shaft", _bezier([(frame.x(1.0), frame.foot(1.0)), (frame.x(1.0) + 0.03, collar[1]),
                          (frame.x(1.0) - 0.01, 0.5 * (collar[1] + top_y)), back_top], 20))
    add("shaft_top", _bezier([front_top, (0.5 * (front_top[0] + back_top[0]), top_y - 0.015), back_top], 10))
  else:
    dip = p["top_line_dip"]
    mid = (0.5 * (throat[0] + collar[0]), 0.5 * (throat[1] + collar[1]) + 2.0 * dip)
    add("top_line", _bezier([throat, mid, collar], 20))
    if shoe.has("open_back"):
      add("opening_edge", _bezier([collar, (collar[0] + 0.02, 0.5 * (collar[1] + frame.foot(back_f))),
                                   frame.point(back_f + 0.04, 0.0)], 10))
      add("insole", curve(np.linspace(back_f, 1.0, 10), np.full(10, 0.004)))
    else:
      add("counter", _bezier([collar, (frame.x(1.0) + 0.035, 0.5 * (collar[1] + frame.foot(1.0))),
                              (frame.x(1.0), frame.foot(1.0))], 16))

  # Details.
  if shoe.has("toe_cap"):
    cap_f = 0.8 * p["toe_length"]
    add("toe_cap", _bezier([frame.point(cap_f + 0.03, 0.0), frame.point(cap_f + 0.01, 0.5 * p["toe_height"]),
                            frame.point(cap_f - 0.03, 0.95 * _upper_height(shoe, cap_f - 0.03))], 12))
  if shoe.has("stitching"):
    f = np.arange(0.03, 0.97, 0.025)
    add("stitching", curve(f, np.full(f.shape, 0.012)), kind="dots")
  if shoe.has("perforation"):
    f = np.linspace(0.3 * p["toe_length"], throat_f - 0.05, 9)
    add("perforation", curve(f, 0.6 * _upper_height(shoe, f)), kind="dots")
  if shoe.has("laces"):
    n = int(p["lace_count"])
    lace_f = np.linspace(p["toe_length"] + 0.6 * (throat_f - p["toe_length"]), throat_f, n)
    lace_top = _upper_height(shoe, lace_f)
    for k, fk in enumerate(lace_f):
      add("laces", [frame.point(fk - 0.02, lace_top[k] - 0.01), frame.point(fk + 0.025, lace_top[k] - 0.035)])
    add("eyelet_stay", curve(np.linspace(lace_f[0] - 0.03, throat_f + 0.05, 12),
                             np.linspace(lace_top[0] - 0.04, p["throat_height"] - 0.05, 12)))
    tx, ty = throat
    add("tongue", _bezier([throat, (tx - 0.01, ty - 0.05), (tx + 0.04, ty - 0.045), (tx + 0.035, ty + 0.005)], 12))
  strap_end = None
  if shoe.has("ankle_strap"):
    # A band round the ankle: from the back of the collar up and forward over the instep.
    front_f = min(throat_f + 0.1, 0.9)
    front_height = max(p["throat_height"], p["collar_height"]) + p["strap_height"]
    for offset in (0.0, 0.02):
      add("ankle_strap", _bezier([frame.point(1.0, p["collar_height"] + offset),
                                  frame.point(0.95, p["collar_height"] + p["strap_height"] + 0.02 + offset),
                                  frame.point(front_f, front_height + offset)], 12))
    strap_end = frame.point(front_f, front_height + 0.01)
  if shoe.has("vamp_straps"):
    n = int(p["vamp_strap_count"])
    for fk in np.linspace(0.55 * p["toe_length"] + 0.06, throat_f, n + 1)[1:]:
      for offset in (-0.015, 0.015):
        add("vamp_straps", [frame.point(fk + offset, 0.0),
                            frame.point(fk + offset - 0.03, _upper_height(shoe, fk) + 0.005)])
  if shoe.has("buckle"):
    cx, cy = strap_end if strap_end is not None else frame.point(throat_f - 0.08, 0.7 * p["throat_height"])
    s = 0.018
    add("buckle", [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s), (cx - s, cy - s)])
  if shoe.has("zip"):
    if boot:
      x0, y0, y1 = frame.x(0.93), frame.foot(0.93) - 0.02, throat[1] - 0.85 * p["shaft_height"]
    else:
      x0, y0, y1 = frame.x(0.85), frame.foot(0.85) - 0.01, frame.foot(0.85) - 0.8 * p["collar_height"]
    add("zip", [(x0, y0), (x0 + 0.01, y1)])
    ticks = np.linspace(0.0, 1.0, max(int(abs(y0 - y1) / 0.02), 2))
    for t in ticks:
      add("zip", [(x0 + 0.01 * t - 0.007, y0 + t * (y1 - y0)), (x0 + 0.01 * t + 0.007, y0 + t * (y1 - y0))])
  if shoe.has("ornament"):
    size = p["ornament_size"]
    cx, cy = frame.point(throat_f - 0.02, _upper_height(shoe, throat_f - 0.02) + 0.3 * size)
    add("ornament", [(cx, cy), (cx - size, cy - 0.6 * size), (cx - size, cy + 0.6 * size), (cx, cy)])
    add("ornament", [(cx, cy), (cx + size, cy - 0.6 * size), (cx + size, cy + 0.6 * size), (cx, cy)])
  if shoe.has("side_stripe"):
    angle = 0.3 + 0.6 * p["stripe_angle"]
    for offset in (0.0, 0.035):
      f0 = throat_f + offset
      add("side_stripe", [frame.point(f0, 0.01), frame.point(f0 + 0.2 * angle, 0.8 * p["collar_height"])])
  if shoe.has("pull_tab"):
    top = collar if not boot else (frame.x(1.0) + 0.01, throat[1] - p["shaft_height"])
    add("pull_tab", [top, (top[0] + 0.012, top[1] - 0.03), (top[0] + 0.03, top[1] - 0.025),
                     (top[0] + 0.022, top[1] + 0.01)])
  return strokes


def _fit(strokes: list[Stroke], margin: float = 0.07) -> list[Stroke]:
  """Centres the drawing and scales it down (never up) to fit inside ``[margin, 1 - margin]``."""
  points = np.concatenate([s.points for s in strokes])
  lo, hi = points.min(axis=0), points.max(axis=0)
  scale = min(1.0, (1.0 - 2.0 * margin) / max(float((hi - lo).max()), 1e-6))
  centre = 0.5 * (lo + hi)
  return [dataclasses.replace(s, points=(s.points - centre) * scale + 0.5) for s in strokes]


# ----------------------------------------------------------------------------------------------------------
# Photo and sketch styles.


def _resample(points: np.ndarray, n: int) -> np.ndarray:
  """``n`` points equally spaced along the polyline."""
  if len(points) < 2:
    return points
  steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
  arc = np.concatenate([[0.0], np.cumsum(steps)])
  if arc[-1] <= 0:
    return np.repeat(points[:1], n, axis=0)
  t = np.linspace(0.0, arc[-1], n)
  return np.stack([np.interp(t, arc, points[:, 0]), np.interp(t, arc, points[:, 1])], axis=1)


def _sub_polyline(points: np.ndarray, start: float, stop: float) -> np.ndarray:
  """The part of the polyline between arc-length fractions ``start`` and ``stop``."""
  dense = _resample(points, max(4 * len(points), 16))
  n = len(dense)
  return dense[int(start * (n - 1)):int(math.ceil(stop * (n - 1))) + 1]


def photo_strokes(shoe: ShoeInstance, rng: np.random.Generator, *, gaps: float = 1.5,
                  texture_edges: float = 6.0) -> list[Stroke]:
  """The clean line drawing plus edge-detector artefacts: broken lines and short texture edges."""
  strokes = _fit(shoe_strokes(shoe))
  out: list[Stroke] = []
  for stroke in strokes:
    pieces = [stroke.points]
    if stroke.kind == "line" and len(stroke.points) > 8:
      cuts = np.sort(rng.uniform(0.1, 0.9, size=rng.poisson(gaps)))
      ends = np.concatenate([[0.0], cuts, [1.0]])
      widths = rng.uniform(0.01, 0.05, size=len(cuts))
      starts = np.concatenate([[0.0], cuts + widths])
      pieces = [_sub_polyline(stroke.points, s, e) for s, e in zip(starts, ends[1:]) if e > s]
    out.extend(Stroke(stroke.part, piece, stroke.kind) for piece in pieces if len(piece) >= 2)
  points = np.concatenate([s.points for s in strokes])
  lo, hi = points.min(axis=0), points.max(axis=0)
  for _ in range(rng.poisson(texture_edges)):
    start = lo + rng.random(2) * (hi - lo)
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-9
    length = rng.uniform(0.02, 0.07)
    bend = rng.normal(scale=0.01, size=2)
    out.append(Stroke("texture", _bezier([start, start + 0.5 * length * direction + bend,
                                          start + length * direction], 6)))
  return out


def _smooth_noise(rng: np.random.Generator, n: int, amplitude: float) -> np.ndarray:
  """Low-frequency 2-D displacement along a stroke: two random sinusoids per axis, ``[n, 2]``."""
  t = np.linspace(0.0, 1.0, n)[:, None]
  frequency = rng.uniform(0.2, 1.2, size=(2, 2))
  phase = rng.uniform(0, 2 * math.pi, size=(2, 2))
  weight = rng.normal(size=(2, 2)) * amplitude / math.sqrt(2.0)
  return sum(weight[k] * np.sin(2 * math.pi * frequency[k] * t + phase[k]) for k in range(2))


def sketch_strokes(shoe: ShoeInstance, rng: np.random.Generator, *, exaggeration: float = 0.5,
                   jitter: float = 0.015, drop_scale: float = 1.3, rotation_degrees: float = 7.0,
                   retrace: float = 0.2) -> list[Stroke]:
  """A free-hand-style sketch of ``shoe``: exaggerated, re-framed, simplified, jittered, partial.

  Args:
    shoe: the instance.
    rng: the sketch's random stream.
    exaggeration: how much salient dimensions grow (see :func:`exaggerate`).
    jitter: amplitude of the smooth displacement of each stroke (fraction of the image side).
    drop_scale: multiplies :data:`SKETCH_DROP_PROBABILITY` (0: nothing is left out).
    rotation_degrees: standard deviation of the whole drawing's rotation.
    retrace: probability that a stroke is traced a second time.
  """
  remembered = exaggerate(shoe, rng, exaggeration)
  strokes = _fit(shoe_strokes(remembered))
  angle = math.radians(rng.normal(0.0, rotation_degrees))
  scale = rng.uniform(0.82, 1.05) * np.array([rng.uniform(0.92, 1.1), 1.0])
  rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
  shift = rng.uniform(-0.05, 0.05, size=2)
  out: list[Stroke] = []
  for stroke in strokes:
    if rng.random() < drop_scale * SKETCH_DROP_PROBABILITY.get(stroke.part, 0.3):
      continue
    points = (stroke.points - 0.5) * scale @ rotation.T + 0.5 + shift
    if stroke.kind == "dots":  # stitching and perforations become a dashed line, if drawn at all
      points = _resample(points, max(len(points) // 2, 2))
    elif len(points) > 6:
      if stroke.part in _OUTLINE_PARTS and rng.random() < 0.5:
        cut = rng.uniform(0.0, 0.25)
        start, stop = (cut, 1.0) if rng.random() < 0.5 else (0.0, 1.0 - cut)
        points = _sub_polyline(points, start, stop)
      points = _resample(points, int(rng.integers(4, 8)))  # simplification: a few control points
      points = _bezier(points[[0, len(points) // 3, 2 * len(points) // 3, -1]], 16) if rng.random() < 0.3 \
          else points
    points = _resample(points, max(len(points), 12)) if stroke.kind == "line" else points
    # Short strokes (laces, zip teeth) wobble less: the displacement scales with the stroke's length.
    length = float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum()) if len(points) > 1 else 0.0
    amplitude = jitter * min(1.0, length / 0.15)
    points = points + _smooth_noise(rng, len(points), amplitude) + rng.normal(0, 0.05 * amplitude,
                                                                              points.shape)
    if len(points) >= 2 and stroke.kind == "line":  # overshoot at the ends, as quick strokes do
      ends = []
      for tip, before in ((points[0], points[1]), (points[-1], points[-2])):
        direction = (tip - before) / (np.linalg.norm(tip - before) + 1e-9)
        ends.append(tip + direction * rng.uniform(0.0, 0.02) * min(1.0, length / 0.1))
      points = np.concatenate([[ends[0]], points, [ends[1]]])
    kind = "dashes" if stroke.kind == "dots" else stroke.kind
    out.append(Stroke(stroke.part, points, kind))
    if rng.random() < retrace:
      out.append(Stroke(stroke.part, points + rng.normal(0, 0.004, size=2) + _smooth_noise(
          rng, len(points), 0.5 * amplitude), kind))
  return out


def rasterize(strokes: Sequence[Stroke], image_size: int, line_width: float) -> np.ndarray:
  """Draws strokes in black on white: float32 ``[image_size, image_size, 1]`` in ``[0, 1]``.

  ``line_width`` is in pixels of a 128-pixel image (scaled with ``image_size``); the drawing is
  super-sampled (up to 4x) and area-averaged, so thin lines come out grey rather than aliased.
  """
  supersample = max(1, min(4, 256 // max(image_size, 1)))
  size = image_size * supersample
  width = max(1, int(round(line_width * size / _RENDER_REFERENCE_SIZE)))
  canvas = Image.new("L", (size, size), 255)
  draw = ImageDraw.Draw(canvas)
  for stroke in strokes:
    points = stroke.points * size
    if stroke.kind == "dots":
      radius = max(0.6 * width, 1.0)
      for x, y in points:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=0)
    elif stroke.kind == "dashes":
      for k in range(0, len(points) - 1, 2):
        draw.line([tuple(points[k]), tuple(points[k + 1])], fill=0, width=width)
    else:
      draw.line([tuple(p) for p in points], fill=0, width=width, joint="curve")
  if supersample > 1:
    canvas = canvas.resize((image_size, image_size), Image.Resampling.BOX)
  return (np.asarray(canvas, np.float32) / 255.0)[..., None]


# ----------------------------------------------------------------------------------------------------------
# The source.


class SketchPhotoSource:
  """Random-access source of procedural shoe sketch/photo pairs: ``len(source)``, ``source[index_array]``.

  Args:
    num_examples: number of instances (sketch/photo pairs).
    seed: generator seed; example ``i`` is instance ``offset + i`` of this seed.
    offset: first instance index (disjoint ranges for train / test, see :func:`make_sketch_splits`).
    image_size: side of the square images (64 by default, for the CPU; 256 as QMUL).
    photo_line_width, sketch_line_width: line widths in pixels of a 128-pixel image.
    exaggeration, jitter, drop_scale, rotation_degrees, retrace: sketch style (:func:`sketch_strokes`).
    photo_gaps, photo_texture_edges: mean numbers of gaps per photo line and of texture edges per photo.
    cache: keep rendered images in memory (a few MB at the default sizes).

  ``source[i]`` returns a dict of numpy arrays: ``sketch`` and ``photo`` float32 ``[H, W, 1]`` in
  ``[0, 1]`` (white background, dark strokes), ``attributes`` float32 0/1 ``[21]``, ``parameters`` float32
  ``[20]`` in ``[0, 1]``, ``descriptor`` float32 ``[41]``, ``style`` int32, ``index`` int64. An index array
  gives the same keys with a leading batch axis. The pair-source protocol of
  :mod:`ranking_jax.projects.sketch_retrieval.sketch_triplets` is :meth:`sketch_images`, :meth:`photo_images`,
  :attr:`attributes` and :attr:`sketch_attributes` (the sketch of a generated pair shows the same
  attributes as its photo).

  >>> source = SketchPhotoSource(20, seed=0, image_size=32)
  >>> batch = source[np.arange(3)]
  >>> batch["sketch"].shape, batch["photo"].shape, batch["attributes"].shape
  ((3, 32, 32, 1), (3, 32, 32, 1), (3, 21))
  >>> bool(np.array_equal(source[2]["sketch"], batch["sketch"][2]))
  True
  """

  def __init__(self, num_examples: int, *, seed: int = 0, offset: int = 0, image_size: int = 64,
               photo_line_width: float = 1.0, sketch_line_width: float = 1.8, exaggeration: float = 0.5,
               jitter: float = 0.015, drop_scale: float = 1.3, rotation_degrees: float = 7.0,
               retrace: float = 0.2, photo_gaps: float = 1.5, photo_texture_edges: float = 6.0,
               cache: bool = True):
    if num_examples < 0 or offset < 0:
      raise ValueError(f"`num_examples` and `offset` must be >= 0, got {num_examples}, {offset}.")
    if image_size < 16:
      raise ValueError(f"`image_size` must be >= 16, got {image_size}.")
    if min(photo_line_width, sketch_line_width) <= 0:
      raise ValueError("line widths must be > 0.")
    if min(exaggeration, jitter, drop_scale, rotation_degrees, retrace, photo_gaps, photo_texture_edges) < 0:
      raise ValueError("sketch and photo style options must be >= 0.")
    self.num_examples = int(num_examples)
    self.seed = int(seed)
    self.offset = int(offset)
    self.image_size = int(image_size)
    self.photo_line_width = float(photo_line_width)
    self.sketch_line_width = float(sketch_line_width)
    self.sketch_options = dict(exaggeration=float(exaggeration), jitter=float(jitter),
                               drop_scale=float(drop_scale), rotation_degrees=float(rotation_degrees),
                               retrace=float(retrace))
    self.photo_options = dict(gaps=float(photo_gaps), texture_edges=float(photo_texture_edges))
    self.cache = bool(cache)
    self._images: dict[tuple[str, int], np.ndarray] = {}
    self._attributes: Optional[np.ndarray] = None

  def __len__(self) -> int:
    return self.num_examples

  def __repr__(self) -> str:
    return (f"SketchPhotoSource(num_examples={self.num_examples}, seed={self.seed}, offset={self.offset}, "
            f"image_size={self.image_size})")

  def _check_index(self, index: int) -> int:
    index = int(index)
    if index < 0:
      index += self.num_examples
    if not 0 <= index < self.num_examples:
      raise IndexError(f"index {index} out of range for a source of {self.num_examples} examples.")
    return index

  def instance(self, index: int) -> ShoeInstance:
    """The structured description of example ``index``."""
    return make_instance(self.seed, self.offset + self._check_index(index))

  def _render(self, kind: str, index: int) -> np.ndarray:
    key = (kind, index)
    if key in self._images:
      return self._images[key]
    shoe = self.instance(index)
    if kind == "photo":
      rng = _instance_rng(self.seed, self.offset + index, 1)
      image = rasterize(photo_strokes(shoe, rng, **self.photo_options), self.image_size,
                        self.photo_line_width)
    else:
      rng = _instance_rng(self.seed, self.offset + index, 2)
      image = rasterize(sketch_strokes(shoe, rng, **self.sketch_options), self.image_size,
                        self.sketch_line_width)
    if self.cache:
      self._images[key] = image
    return image

  def _indices(self, indices: Union[int, Sequence[int], np.ndarray]) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.ndim != 1 or not (indices.size == 0 or np.issubdtype(indices.dtype, np.integer)):
      raise TypeError(f"indices must be a 1-D integer array, got {indices!r}.")
    return np.asarray([self._check_index(i) for i in indices], np.int64)

  def sketch_images(self, indices: Union[Sequence[int], np.ndarray]) -> np.ndarray:
    """Sketches of ``indices``: float32 ``[B, H, W, 1]`` in ``[0, 1]``."""
    return np.stack([self._render("sketch", i) for i in self._indices(indices)]) if len(indices) else \
        np.zeros((0, self.image_size, self.image_size, 1), np.float32)

  def photo_images(self, indices: Union[Sequence[int], np.ndarray]) -> np.ndarray:
    """Photo edge maps of ``indices``: float32 ``[B, H, W, 1]`` in ``[0, 1]``."""
    return np.stack([self._render("photo", i) for i in self._indices(indices)]) if len(indices) else \
        np.zeros((0, self.image_size, self.image_size, 1), np.float32)

  @property
  def attributes(self) -> np.ndarray:
    """float32 0/1 ``[num_examples, 21]``: the attributes of every photo (and of its sketch)."""
    if self._attributes is None:
      self._attributes = np.stack([self.instance(i).attributes for i in range(self.num_examples)]
                                  ).astype(np.float32).reshape(self.num_examples, NUM_ATTRIBUTES)
    return self._attributes

  @property
  def sketch_attributes(self) -> np.ndarray:
    return self.attributes

  @property
  def attribute_names(self) -> tuple[str, ...]:
    return ATTRIBUTE_NAMES

  def descriptors(self) -> np.ndarray:
    """Ground-truth similarity descriptors of every instance, float32 ``[num_examples, 41]``."""
    return np.stack([self.instance(i).descriptor for i in range(self.num_examples)]).reshape(
        self.num_examples, NUM_ATTRIBUTES + NUM_PARAMETERS)

  def _example(self, index: int) -> dict[str, np.ndarray]:
    shoe = self.instance(index)
    return {
        "sketch": self._render("sketch", index),
        "photo": self._render("photo", index),
        "attributes": shoe.attributes.astype(np.float32),
        "parameters": shoe.normalized_parameters,
        "descriptor": shoe.descriptor,
        "style": np.int32(shoe.style),
        "index": np.int64(index),
    }

  def __getitem__(self, indices: Union[int, Sequence[int], np.ndarray]) -> dict[str, np.ndarray]:
    if isinstance(indices, slice):
      indices = np.arange(self.num_examples)[indices]
    if np.ndim(indices) == 0:
      return self._example(self._check_index(indices))
    examples = [self._example(i) for i in self._indices(indices)]
    if not examples:
      raise ValueError("cannot build a batch from zero indices.")
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def make_sketch_splits(num_train: int = 304, num_test: int = 115, *, seed: int = 0,
                       **options: Any) -> dict[str, SketchPhotoSource]:
  """Train / test sources over disjoint instance ranges of one seed; QMUL-Shoe's sizes by default.

  >>> splits = make_sketch_splits(10, 5, image_size=32)
  >>> len(splits["train"]), len(splits["test"]), splits["test"].offset
  (10, 5, 10)
  """
  return {
      "train": SketchPhotoSource(num_train, seed=seed, offset=0, **options),
      "test": SketchPhotoSource(num_test, seed=seed, offset=num_train, **options),
  }


def descriptor_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Squared Euclidean distances between descriptor rows: ``[Na, D] x [Nb, D] -> [Na, Nb]`` float64.

  The generator's name for :func:`ranking_jax.projects.sketch_retrieval.sketch_triplets.squared_distances` (translation
  invariant; raises ``ValueError`` on wrong shapes or non-finite values).

  >>> descriptor_distances(np.zeros((1, 2)), np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
  [[25.0, 0.0]]
  """
  return sketch_triplets.squared_distances(a, b)
