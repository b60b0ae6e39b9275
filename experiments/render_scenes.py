r"""Writes a grid of example embedded scenes sorted by difficulty (docs/scenes_grid.png).

    python -m experiments.render_scenes --output=docs/scenes_grid.png --num_scenes=400

Draws ``num_scenes`` scenes of the default generator, keeps ``rows * cols`` of them spread evenly over the
difficulty quantiles (so the rare hard scenes appear), and shows them easiest (top left) to hardest, each
titled with its difficulty score.
"""

from __future__ import annotations

from absl import app
from absl import flags
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from ranking_jax.data.scenes import ScenesSource  # pylint: disable=g-import-not-at-top,wrong-import-position

_OUTPUT = flags.DEFINE_string("output", "docs/scenes_grid.png", "PNG file to write.")
_NUM_SCENES = flags.DEFINE_integer("num_scenes", 400, "Scenes to draw before picking the grid.")
_ROWS = flags.DEFINE_integer("rows", 4, "Grid rows.")
_COLS = flags.DEFINE_integer("cols", 8, "Grid columns.")
_SEED = flags.DEFINE_integer("seed", 0, "Generator seed.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Scene side in pixels.")


def render_grid(output: str, *, num_scenes: int = 400, rows: int = 4, cols: int = 8, seed: int = 0,
                image_size: int = 64) -> np.ndarray:
  """Renders the grid to ``output``; returns the difficulties shown, in order."""
  source = ScenesSource(num_scenes, seed=seed, image_size=image_size)
  difficulty = source.labels(np.arange(num_scenes))["difficulty"]
  order = np.argsort(difficulty, kind="stable")
  picks = order[np.linspace(0, num_scenes - 1, rows * cols).round().astype(int)]
  images = source[picks]["image"]
  fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows))
  for ax, image, index in zip(np.ravel(axes), images, picks):
    ax.imshow(image, interpolation="nearest")
    ax.set_title(f"{difficulty[index]:.2f}", fontsize=9)
    ax.axis("off")
  fig.suptitle("Embedded scenes sorted by difficulty (easiest top left)", fontsize=11)
  fig.tight_layout()
  fig.savefig(output, dpi=100)
  plt.close(fig)
  return difficulty[picks]


def main(argv):
  del argv
  shown = render_grid(_OUTPUT.value, num_scenes=_NUM_SCENES.value, rows=_ROWS.value, cols=_COLS.value,
                      seed=_SEED.value, image_size=_IMAGE_SIZE.value)
  print(f"wrote {_OUTPUT.value}: difficulties {shown.min():.2f}-{shown.max():.2f}")


if __name__ == "__main__":
  app.run(main)
