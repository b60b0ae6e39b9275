"""IDE RankNet image-difficulty experiment: trains a variant, then reports it on the test split.

  python -m experiments.image_difficulty --config=configs/image_difficulty.py:<variant>[,voc] --workdir=DIR

Variants: ``mse``, ``kendall``, ``weighted``, ``alternating`` (Table 2), ``mobilenet``, ``vgg16``,
``resnet101``, ``resnet152`` (Table 1), ``lambda=<value>`` (Figure 3); see ``configs/image_difficulty.py``.
Besides the trainer's outputs (checkpoints, ``metrics.jsonl``, ``results.json``; the eval there is on the
validation split) the run writes ``test_metrics.json``, ``results.md`` (test MSE and Kendall tau_a beside
the paper's figure) and ``figure4.png`` (predicted vs. true with the least-squares line) into DIR.
Restarting the same command resumes from the last checkpoint.
"""

from __future__ import annotations

from absl import app

from experiments import main_lib
from ranking_jax.tasks import image_difficulty


def main(argv: list[str]) -> None:
  config, workdir = main_lib.FLAGS.config, main_lib.FLAGS.workdir
  # The scenes are rendered once and shared by training and the test report.
  splits = image_difficulty.make_splits(config.data)
  main_lib.main(lambda cfg: image_difficulty.make_task(cfg, splits), argv)
  report = image_difficulty.write_report(config, workdir, splits)
  print(f"test ({report['variant']}): MSE {report['mse']:.4f}, Kendall tau_a {report['kendall_tau']:.4f}"
        + (f" | paper: MSE {report['paper']['mse']}, tau {report['paper']['kendall_tau']} "
           f"({report['paper']['row']})" if report["paper"] else ""), flush=True)


if __name__ == "__main__":
  app.run(main)
