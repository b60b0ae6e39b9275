r"""Five generated captions per embedded scene, a word vocabulary, and captions as padded token arrays.

The embedded stand-in for MS-COCO in SoDeep's cross-modal retrieval experiment ("SoDeep: a Sorting Deep
net to learn ranking loss surrogates", §4.2.3, Table 3): every scene of :mod:`ranking_jax.data.scenes`
gets :data:`CAPTIONS_PER_IMAGE` = 5 distinct English captions, drawn from ``(seed, scene index)`` alone.

A caption describes the *visible* objects of the scene (at least 15 % of an object visible) with varied
templates and word orders: object mentions (``a large striped red disk``: optional size and texture,
colour, shape or a synonym), groups with counts (``two blue stars``), the number of objects, spatial
relations between two objects (``to the left of``, ``right of``, ``above``, ``below``, ``under``,
``in front of``, ``behind``, ``next to``, ...), positions in the image (``in the top left corner``,
``at the bottom``, ``in the centre``, ...) and the background (``on a cluttered dark green background``).
Each caption mentions only some of the scene's content, so a caption matches its own scene best while
other scenes match it partly (same objects, other relations; same colours, other shapes ...).

Every statement is true of the scene, computed from its description (image coordinates, ``y`` down):

* ``A left of B``: :math:`x_A \le x_B - m`; ``right of``, ``above`` (:math:`y_A \le y_B - m`) and
  ``below`` likewise, with the margin :math:`m` = :data:`RELATION_MARGIN` between the object centres;
* ``A in front of B`` (``B behind A``): A is drawn after B (later in the back-to-front order) and their
  shapes overlap inside the image (at least :data:`MIN_OVERLAP_CELLS` cells of the 64-per-side analysis
  grid of :mod:`ranking_jax.data.scenes`);
* ``A next to B``: the gap between their bounding circles, :math:`|c_A - c_B| - r_A - r_B`, is at most
  :data:`NEAR_GAP`;
* positions: the object centre in the thirds of the image (``top`` :math:`y < 1/3`, ``left``
  :math:`x < 1/3` ...); sizes: ``small``/``little`` for radius < :data:`SMALL_RADIUS`, ``large``/``big``
  for radius > :data:`LARGE_RADIUS`; ``striped`` for a striped object; counts are exact.

Words are lower-case ASCII; :func:`tokenize` splits a caption (or a COCO caption) into words,
:class:`Vocabulary` maps words to ids (``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2, ``<eos>`` = 3, then the
words by decreasing training frequency) and encodes captions as padded ``int32`` arrays with lengths.
:class:`SceneCaptionsSource` yields ``{"image", "captions", "caption_lengths", "index"}`` batches.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from ranking_jax.data import scenes
from ranking_jax.data import sources

CAPTIONS_PER_IMAGE = 5
PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
DEFAULT_MAX_LEN = 32  # tokens with <bos> and <eos>; the longest generated caption has 29

RELATION_MARGIN = 0.05  # fractions of the image side
NEAR_GAP = 0.05
MIN_OVERLAP_CELLS = 3
SMALL_RADIUS = 0.08
LARGE_RADIUS = 0.17

# Relation -> the phrases that say it; `relation_holds` defines when each is true.
RELATION_PHRASES = {
    "left": ("to the left of", "left of"),
    "right": ("to the right of", "right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
    "front": ("in front of",),
    "behind": ("behind",),
    "near": ("next to", "near", "beside"),
}
# (vertical, horizontal) third of the image -> the phrases that say it.
POSITION_PHRASES = {
    ("top", "left"): ("in the top left corner",),
    ("top", "right"): ("in the top right corner",),
    ("bottom", "left"): ("in the bottom left corner",),
    ("bottom", "right"): ("in the bottom right corner",),
    ("top", "middle"): ("at the top",),
    ("bottom", "middle"): ("at the bottom",),
    ("middle", "left"): ("on the left",),
    ("middle", "right"): ("on the right",),
    ("middle", "middle"): ("in the centre", "in the middle"),
}
SHAPE_WORDS = {"disk": ("disk", "circle"), "square": ("square",), "triangle": ("triangle",),
               "cross": ("cross",), "star": ("star",)}
PLURALS = {"disk": "disks", "circle": "circles", "square": "squares", "triangle": "triangles",
           "cross": "crosses", "star": "stars"}
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")
# Background hue names by upper hue bound (HSV hue in [0, 1)); unsaturated backgrounds are "grey".
_BACKGROUND_HUES = ((0.05, "red"), (0.11, "orange"), (0.19, "yellow"), (0.45, "green"), (0.55, "cyan"),
                    (0.72, "blue"), (0.83, "purple"), (0.92, "pink"), (1.01, "red"))
_BACKGROUND_MIN_SATURATION = 0.2
_DARK_VALUE, _BRIGHT_VALUE = 0.5, 0.72
_PLAIN_CLUTTER, _CLUTTERED_CLUTTER = 0.25, 0.5

_CAPTION_STREAM = 1000  # rng stream tag: independent of the scene generator's streams 0 and 1
_MAX_ATTEMPTS = 400
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: Union[str, bytes]) -> list[str]:
  """Lower-cased words of a caption: runs of letters and digits (``'s`` stays attached); punctuation goes.

  >>> tokenize("A man's red Frisbee, on the grass.")
  ['a', "man's", 'red', 'frisbee', 'on', 'the', 'grass']
  """
  if isinstance(text, bytes):
    text = text.decode("utf-8", errors="replace")
  return _TOKEN.findall(str(text).lower().replace("\u2019", "'"))


class Vocabulary:
  """Words <-> integer ids: :data:`SPECIAL_TOKENS` first (``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2,
  ``<eos>`` = 3), then the words.

  Build it from the *training* captions with :meth:`from_texts`; words it does not hold encode as
  ``<unk>``.

  >>> vocabulary = Vocabulary.from_texts(["a red disk", "a blue disk"])
  >>> vocabulary.words
  ('<pad>', '<unk>', '<bos>', '<eos>', 'a', 'disk', 'blue', 'red')
  >>> ids, lengths = vocabulary.encode(["a green disk"], max_len=6)
  >>> ids.tolist(), lengths.tolist()
  ([[2, 4, 1, 5, 3, 0]], [5])
  >>> vocabulary.decode(ids[0])
  'a <unk> disk'
  """

  def __init__(self, words: Sequence[str]):
    words = tuple(str(w) for w in words)
    if words[:len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
      raise ValueError(f"a vocabulary starts with {SPECIAL_TOKENS}, got {words[:4]}.")
    if len(set(words)) != len(words):
      duplicated = sorted(w for w, c in collections.Counter(words).items() if c > 1)
      raise ValueError(f"duplicated words in the vocabulary: {duplicated[:10]}.")
    self.words = words
    self._ids = {w: i for i, w in enumerate(words)}

  @classmethod
  def from_texts(cls, texts: Iterable[Union[str, bytes]], *, min_count: int = 1,
                 max_size: Optional[int] = None) -> "Vocabulary":
    """The words of ``texts`` seen at least ``min_count`` times, by decreasing count (ties: alphabetical).

    Args:
      texts: training captions.
      min_count: rarer words are left out (they encode as ``<unk>``); VSE++ uses 4 on COCO.
      max_size: keep at most this many entries, special tokens included.
    """
    if min_count < 1:
      raise ValueError(f"`min_count` must be >= 1, got {min_count}.")
    counts = collections.Counter(word for text in texts for word in tokenize(text))
    kept = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
                  key=lambda w: (-counts[w], w))
    if max_size is not None:
      if max_size < len(SPECIAL_TOKENS):
        raise ValueError(f"`max_size` must be >= {len(SPECIAL_TOKENS)}, got {max_size}.")
      kept = kept[:max_size - len(SPECIAL_TOKENS)]
    return cls(SPECIAL_TOKENS + tuple(kept))

  def __len__(self) -> int:
    return len(self.words)

  def __contains__(self, word: object) -> bool:
    return word in self._ids

  def __eq__(self, other: object) -> bool:
    return isinstance(other, Vocabulary) and self.words == other.words

  def __hash__(self) -> int:
    return hash(self.words)

  def __repr__(self) -> str:
    return f"Vocabulary({len(self)} entries: {', '.join(self.words[4:12])}, ...)"

  def token_ids(self, text: Union[str, bytes]) -> list[int]:
    """Ids of the words of ``text`` (``<unk>`` for unknown words), without ``<bos>`` / ``<eos>``."""
    return [self._ids.get(word, UNK_ID) for word in tokenize(text)]

  def encode(self, texts: Sequence[Union[str, bytes]], max_len: int, *, add_boundaries: bool = True
             ) -> tuple[np.ndarray, np.ndarray]:
    """Encodes captions as ``ids`` int32 ``[n, max_len]`` (``<pad>``-padded) and ``lengths`` int32 ``[n]``.

    With ``add_boundaries`` a caption is ``<bos> words <eos>`` (its length counts both); a caption longer
    than ``max_len`` keeps its first words and still ends with ``<eos>``.

    Raises:
      ValueError: ``max_len`` is too small to hold ``<bos> <eos>`` (or one word without them).
    """
    extra = 2 if add_boundaries else 0
    if max_len < extra + 1:
      raise ValueError(f"`max_len` must be >= {extra + 1}, got {max_len}.")
    if isinstance(texts, (str, bytes)):
      raise TypeError("`texts` must be a sequence of captions, not a single string.")
    ids = np.full((len(texts), max_len), PAD_ID, np.int32)
    lengths = np.zeros(len(texts), np.int32)
    for row, text in enumerate(texts):
      tokens = self.token_ids(text)[:max_len - extra]
      if add_boundaries:
        tokens = [BOS_ID] + tokens + [EOS_ID]
      ids[row, :len(tokens)] = tokens
      lengths[row] = len(tokens)
    return ids, lengths

  def decode(self, ids: Sequence[int], length: Optional[int] = None) -> str:
    """The words of ``ids[:length]`` joined by spaces, without ``<pad>``, ``<bos>`` and ``<eos>``."""
    ids = np.asarray(ids).reshape(-1)[:length]
    skip = (PAD_ID, BOS_ID, EOS_ID)
    return " ".join(self.words[int(i)] for i in ids if int(i) not in skip)

  def save(self, path: Union[str, os.PathLike]) -> None:
    """Writes the word list as JSON (load it back with :meth:`load`)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
      json.dump(list(self.words), f)

  @classmethod
  def load(cls, path: Union[str, os.PathLike]) -> "Vocabulary":
    """Reads a vocabulary written by :meth:`save`."""
    with open(os.fspath(path)) as f:
      return cls(json.load(f))


# ----------------------------------------------------------------------------------------------------------
# What is true of a scene.


def visible_objects(scene: scenes.Scene) -> list[int]:
  """Indices (in the back-to-front order of ``scene.objects``) of the visible objects."""
  return [i for i, o in enumerate(scene.objects) if o.visible]


def size_class(obj: scenes.SceneObject) -> Optional[str]:
  """``"small"`` (radius < :data:`SMALL_RADIUS`), ``"large"`` (radius > :data:`LARGE_RADIUS`) or None."""
  if obj.radius < SMALL_RADIUS:
    return "small"
  if obj.radius > LARGE_RADIUS:
    return "large"
  return None


def position_of(obj: scenes.SceneObject) -> tuple[str, str]:
  """``(vertical, horizontal)`` third of the image holding the object's centre, e.g. ``("top", "left")``."""
  x, y = obj.center

  def third(value: float, low: str, high: str) -> str:
    return low if value < 1.0 / 3.0 else high if value > 2.0 / 3.0 else "middle"

  return third(y, "top", "bottom"), third(x, "left", "right")


def overlap_matrix(scene: scenes.Scene) -> np.ndarray:
  """bool ``[n, n]``: objects ``i`` and ``j`` share at least :data:`MIN_OVERLAP_CELLS` cells in the image."""
  # pylint: disable=protected-access  # the analysis grid and shapes every scene label is measured with
  x, y, inside, _ = scenes._GRID
  masks = np.stack([scenes._shape_mask(o.shape, *scenes._object_coordinates(o, x, y)) & inside
                    for o in scene.objects]).reshape(len(scene.objects), -1).astype(np.int32)
  # pylint: enable=protected-access
  shared = masks @ masks.T
  overlap = shared >= MIN_OVERLAP_CELLS
  np.fill_diagonal(overlap, False)
  return overlap


def relation_holds(scene: scenes.Scene, a: int, b: int, relation: str,
                   overlap: Optional[np.ndarray] = None) -> bool:
  """Whether ``objects[a] <relation> objects[b]`` is true (see the module docstring for each relation).

  Args:
    scene: the scene.
    a, b: object indices in ``scene.objects`` (back to front).
    relation: a key of :data:`RELATION_PHRASES`.
    overlap: :func:`overlap_matrix` of the scene, if already computed.
  """
  if relation not in RELATION_PHRASES:
    raise ValueError(f"unknown relation {relation!r}; choose one of {sorted(RELATION_PHRASES)}.")
  if a == b:
    return False
  obj_a, obj_b = scene.objects[a], scene.objects[b]
  dx = obj_b.center[0] - obj_a.center[0]
  dy = obj_b.center[1] - obj_a.center[1]
  if relation == "left":
    return dx >= RELATION_MARGIN
  if relation == "right":
    return -dx >= RELATION_MARGIN
  if relation == "above":
    return dy >= RELATION_MARGIN
  if relation == "below":
    return -dy >= RELATION_MARGIN
  if relation == "near":
    return math.hypot(dx, dy) - obj_a.radius - obj_b.radius <= NEAR_GAP
  overlaps = bool((overlap_matrix(scene) if overlap is None else overlap)[a, b])
  return overlaps and (a > b if relation == "front" else a < b)


def background_words(scene: scenes.Scene) -> dict[str, Optional[str]]:
  """``{"brightness": "dark" | "bright" | None, "hue": colour name or "grey", "clutter": "plain" |
  "cluttered" | None}`` of the scene's background."""
  hue, saturation, value = scene.background_hsv
  if saturation < _BACKGROUND_MIN_SATURATION:
    hue_name = "grey"
  else:
    hue_name = next(name for bound, name in _BACKGROUND_HUES if hue % 1.0 < bound)
  brightness = "dark" if value < _DARK_VALUE else "bright" if value > _BRIGHT_VALUE else None
  clutter = ("plain" if scene.clutter < _PLAIN_CLUTTER else "cluttered" if scene.clutter > _CLUTTERED_CLUTTER
             else None)
  return {"brightness": brightness, "hue": hue_name, "clutter": clutter}


# ----------------------------------------------------------------------------------------------------------
# Caption templates.


def _with_article(phrase: str) -> str:
  return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


class _Writer:
  """Random phrasings of one scene's true statements (one instance per scene)."""

  def __init__(self, scene: scenes.Scene, rng: np.random.Generator):
    self.scene = scene
    self.rng = rng
    self.visible = visible_objects(scene)
    self.overlap = overlap_matrix(scene)
    self.background = background_words(scene)
    self.groups: dict[int, list[int]] = collections.defaultdict(list)  # class -> visible objects
    for i in self.visible:
      self.groups[scene.objects[i].class_id].append(i)
    # Ordered pairs of visible objects with at least one true relation, and those relations.
    self.relations = {(a, b): [r for r in RELATION_PHRASES if relation_holds(scene, a, b, r, self.overlap)]
                      for a in self.visible for b in self.visible if a != b}
    self.pairs = [p for p, holds in self.relations.items() if holds]

  def choice(self, options: Sequence[Any]) -> Any:
    return options[int(self.rng.integers(len(options)))]

  def chance(self, p: float) -> bool:
    return bool(self.rng.uniform() < p)

  def shape_word(self, obj: scenes.SceneObject) -> str:
    return self.choice(SHAPE_WORDS[scenes.SHAPE_NAMES[obj.shape]])

  def mention(self, i: int, detail: float = 0.6) -> str:
    """``a [size] [striped] <colour> <shape>`` of object ``i``."""
    obj = self.scene.objects[i]
    words = ["a"]
    size = size_class(obj)
    if size and self.chance(detail):
      words.append(self.choice(SIZE_WORDS[size]))
    if obj.striped and self.chance(detail + 0.2):
      words.append("striped")
    words += [scenes.COLOUR_NAMES[scenes.CLASS_COLOUR[obj.class_id]], self.shape_word(obj)]
    return " ".join(words)

  def group(self, class_id: int) -> str:
    """All visible objects of a class: ``a red disk`` or ``three red disks``."""
    members = self.groups[class_id]
    if len(members) == 1:
      return self.mention(members[0], detail=0.3)
    obj = self.scene.objects[members[0]]
    return (f"{NUMBER_WORDS[len(members)] if len(members) < len(NUMBER_WORDS) else 'many'} "
            f"{scenes.COLOUR_NAMES[scenes.CLASS_COLOUR[class_id]]} {PLURALS[self.shape_word(obj)]}")

  def background_phrase(self, article: bool = True, detail: float = 0.7) -> str:
    """``a [dark | bright] [plain | cluttered] <hue> background`` (``an`` before a vowel)."""
    words = [self.background["brightness"] if self.chance(detail) else None,
             self.background["clutter"] if self.chance(detail) else None,
             self.background["hue"], "background"]
    phrase = " ".join(w for w in words if w)
    return _with_article(phrase) if article else phrase

  def position(self, i: int) -> str:
    return self.choice(POSITION_PHRASES[position_of(self.scene.objects[i])])

  def count_phrase(self) -> str:
    n = len(self.visible)
    return f"{NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else 'many'} {self.choice(('objects', 'shapes'))}"

  def relation(self, a: int, b: int) -> str:
    """A phrase of a relation that holds between objects ``a`` and ``b`` (a pair of ``self.pairs``)."""
    holds = self.relations[(a, b)]
    depth = [r for r in holds if r in ("front", "behind")]
    obj_a, obj_b = self.scene.objects[a], self.scene.objects[b]
    horizontal = abs(obj_b.center[0] - obj_a.center[0]) >= abs(obj_b.center[1] - obj_a.center[1])
    dominant = [r for r in holds if r in (("left", "right") if horizontal else ("above", "below"))]
    if depth and self.chance(0.5):
      chosen = depth[0]
    elif dominant and self.chance(0.7):
      chosen = dominant[0]
    else:
      chosen = self.choice(holds)
    return self.choice(RELATION_PHRASES[chosen])

  def pair(self) -> tuple[int, int, str]:
    """Two distinct visible objects and a true relation phrase between them (overlapping pairs first)."""
    overlapping = [p for p in self.pairs if self.overlap[p]]
    a, b = self.choice(overlapping if overlapping and self.chance(0.4) else self.pairs)
    return a, b, self.relation(a, b)

  def empty(self) -> str:
    # Only the background tells empty scenes apart: describe all of it.
    bg = self.background_phrase(detail=1.0)
    return self.choice((
        f"an empty {self.background_phrase(article=False, detail=1.0)}", f"no objects on {bg}",
        f"nothing but {bg}", f"{bg} without any shapes", f"an image showing only {bg}", f"just {bg}",
        f"{bg} with no objects"))

  def single(self) -> str:
    # Nearly half the scenes hold one visible object: say where it is and what is around it.
    a = self.visible[0]
    mention = self.mention(a, detail=0.8)
    bg = self.background_phrase(detail=0.8)
    return self.choice((
        f"{mention} {self.position(a)} on {bg}",
        f"{mention} is {self.position(a)} on {bg}",
        f"{self.choice(('a single', 'only one', 'just one'))} {mention[2:]} {self.position(a)}",
        f"{self.choice(('a single', 'only one', 'just one'))} {mention[2:]} on {bg}",
        f"{self.choice(('there is', 'an image of', 'a picture of'))} {mention} {self.position(a)}",
        f"{bg} with {mention} {self.position(a)}",
        f"{mention} on {bg}"))

  def several(self) -> str:
    kinds = (0, 1, 2, 3, 4, 5, 6) if len(self.visible) >= 3 else (0, 1, 2, 3, 4, 5)
    kind = self.choice(kinds if self.pairs else (2, 3, 4))
    if kind == 0:  # relation
      a, b, rel = self.pair()
      lead = self.choice(("", "there is ", "an image of ", "a picture with "))
      return f"{lead}{self.mention(a)} {rel} {self.mention(b)}"
    if kind == 1:  # relation with "is" and the background
      a, b, rel = self.pair()
      return f"{self.mention(a)} is {rel} {self.mention(b)} on {self.background_phrase()}"
    if kind == 2:  # list of the class groups
      classes = list(self.groups)
      order = self.rng.permutation(len(classes))
      shown = [self.group(classes[k]) for k in order[:4]]
      listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
      if len(classes) > 4:
        return f"{self.count_phrase()} including {listed}"
      return self.choice((listed, f"an image of {listed}", f"{listed} on {self.background_phrase()}"))
    if kind == 3:  # count and one object
      a = self.choice(self.visible)
      return self.choice((f"{self.count_phrase()} including {self.mention(a)} {self.position(a)}",
                          f"{self.count_phrase()} on {self.background_phrase()}",
                          f"{self.count_phrase()} , one of them {self.mention(a)}"))
    if kind == 4:  # two positions
      a, b = (self.visible[k] for k in self.rng.permutation(len(self.visible))[:2])
      return f"{self.mention(a)} {self.position(a)} and {self.mention(b)} {self.position(b)}"
    if kind == 5:  # relation then a position
      a, b, rel = self.pair()
      c = self.choice(self.visible)
      return f"{self.mention(a)} {rel} {self.mention(b)} , {self.mention(c)} {self.position(c)}"
    # two relations about two different pairs of objects
    a, b, rel = self.pair()
    others = [p for p in self.pairs if set(p) != {a, b}]
    c, d = self.choice(others) if others else self.pair()[:2]
    rel2 = self.relation(c, d)
    return f"{self.mention(a)} {rel} {self.mention(b)} and {self.mention(c)} {rel2} {self.mention(d)}"

  def caption(self) -> str:
    if not self.visible:
      return self.empty()
    return self.single() if len(self.visible) == 1 else self.several()


def scene_captions(scene: scenes.Scene, seed: int, *, num_captions: int = CAPTIONS_PER_IMAGE) -> list[str]:
  """``num_captions`` distinct captions of ``scene``, a pure function of ``(seed, scene.index)``.

  Args:
    scene: a scene of :func:`ranking_jax.data.scenes.make_scene` (its ``index`` seeds the captions).
    seed: the scene generator's seed.
    num_captions: how many captions (at most 20).

  Returns:
    Lower-case captions, words separated by single spaces (commas are separate tokens that
    :func:`tokenize` drops).

  >>> captions = scene_captions(scenes.make_scene(0, 3), seed=0)
  >>> len(captions), len(set(captions)), captions == scene_captions(scenes.make_scene(0, 3), seed=0)
  (5, 5, True)
  """
  if not 1 <= num_captions <= 20:
    raise ValueError(f"`num_captions` must be in [1, 20], got {num_captions}.")
  writer = _Writer(scene, np.random.default_rng([int(seed) & 0xFFFFFFFF, int(scene.index), _CAPTION_STREAM]))
  captions: list[str] = []
  for _ in range(_MAX_ATTEMPTS):
    text = writer.caption()
    if text not in captions:
      captions.append(text)
      if len(captions) == num_captions:
        return captions
  # A scene with few phrasings: tell the remaining captions apart by a neutral ending (true of any scene).
  endings = ("in this image", "in the picture", "seen here", "in this scene", "in the photo")
  base = list(captions)
  for ending in endings:
    for text in base:
      if len(captions) < num_captions and f"{text} {ending}" not in captions:
        captions.append(f"{text} {ending}")
  return captions


# ----------------------------------------------------------------------------------------------------------
# Source.


class SceneCaptionsSource(sources.ExampleSource):
  """Random-access scenes with five encoded captions each: ``len(source)``, ``source[index_array]``.

  Example ``i`` is scene ``offset + i`` of :class:`ranking_jax.data.scenes.ScenesSource` with generator
  ``seed``; its captions come from :func:`scene_captions` with the same seed.

  Args:
    num_examples: number of examples.
    vocabulary: encodes the captions (build it from the training split's captions: see
      :func:`make_scene_captions_splits`); None builds one from this source's own captions.
    max_len: caption length in tokens, ``<bos>`` and ``<eos>`` included (longer captions are cut).
    seed, offset, image_size, **scene_options: as for :class:`~ranking_jax.data.scenes.ScenesSource`.

  ``source[index_array]`` returns ``image`` float32 ``[n, S, S, 3]`` in ``[0, 1]``, ``captions`` int32
  ``[n, 5, max_len]`` (``<bos> words <eos>``, padded with ``<pad>`` = 0), ``caption_lengths`` int32
  ``[n, 5]`` and ``index`` int64 ``[n]``; an int index gives the same without the leading axis.

  >>> source = SceneCaptionsSource(4, seed=0)
  >>> batch = source[np.arange(2)]
  >>> batch["image"].shape, batch["captions"].shape, batch["caption_lengths"].shape
  ((2, 64, 64, 3), (2, 5, 32), (2, 5))
  """

  def __init__(self, num_examples: int, *, vocabulary: Optional[Vocabulary] = None,
               max_len: int = DEFAULT_MAX_LEN, seed: int = 0, offset: int = 0, image_size: int = 64,
               **scene_options: Any):
    self.scenes = scenes.ScenesSource(num_examples, seed=seed, offset=offset, image_size=image_size,
                                      **scene_options)
    self.max_len = int(max_len)
    self.vocabulary = vocabulary if vocabulary is not None else Vocabulary.from_texts(
        text for i in range(len(self)) for text in self.texts(i))
    self.vocabulary.encode([""], self.max_len)  # validates max_len

  def __len__(self) -> int:
    return len(self.scenes)

  def __repr__(self) -> str:
    return (f"SceneCaptionsSource(num_examples={len(self)}, seed={self.scenes.seed}, "
            f"offset={self.scenes.offset}, image_size={self.scenes.image_size}, max_len={self.max_len}, "
            f"vocabulary={len(self.vocabulary)} entries)")

  def texts(self, index: int) -> list[str]:
    """The five captions of example ``index`` as text."""
    return scene_captions(self.scenes.scene(index), self.scenes.seed)

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    scene = self.scenes.scene(index)
    ids, lengths = self.vocabulary.encode(scene_captions(scene, self.scenes.seed), self.max_len)
    return {"image": self.scenes.render(scene), "captions": ids, "caption_lengths": lengths,
            "index": np.int64(index)}


def build_scene_vocabulary(num_train: int, *, seed: int = 0, offset: int = 0, min_count: int = 1,
                           **scene_options: Any) -> Vocabulary:
  """The vocabulary of the captions of training scenes ``offset .. offset + num_train - 1`` (no pixels)."""
  options = {k: v for k, v in scene_options.items() if k in ("clutter_range", "max_objects")}
  texts = (text for index in range(offset, offset + num_train)
           for text in scene_captions(scenes.make_scene(seed, index, **options), seed))
  return Vocabulary.from_texts(texts, min_count=min_count)


def make_scene_captions_splits(num_train: int = 8000, num_validation: int = 1000, num_test: int = 1000, *,
                               seed: int = 0, image_size: int = 64, max_len: int = DEFAULT_MAX_LEN,
                               min_count: int = 1, vocabulary: Optional[Vocabulary] = None,
                               **scene_options: Any) -> dict[str, SceneCaptionsSource]:
  """Train / validation / test caption sources over disjoint scene ranges, one vocabulary for all.

  The vocabulary is built from the training captions (about 25 s for 8 000 scenes on one core) unless
  one is given. The default 1 000 test scenes make five folds of 200 for
  :func:`ranking_jax.metrics.cross_modal_recall` (the paper's 5 x 1 000 of 5 000, scaled).

  >>> splits = make_scene_captions_splits(20, 5, 5)
  >>> [len(splits[k]) for k in ("train", "validation", "test")], splits["test"].scenes.offset
  ([20, 5, 5], 25)
  >>> splits["test"].vocabulary is splits["train"].vocabulary
  True
  """
  if vocabulary is None:
    vocabulary = build_scene_vocabulary(num_train, seed=seed, min_count=min_count, **scene_options)
  common = dict(vocabulary=vocabulary, max_len=max_len, seed=seed, image_size=image_size, **scene_options)
  return {
      "train": SceneCaptionsSource(num_train, offset=0, **common),
      "validation": SceneCaptionsSource(num_validation, offset=num_train, **common),
      "test": SceneCaptionsSource(num_test, offset=num_train + num_validation, **common),
  }
