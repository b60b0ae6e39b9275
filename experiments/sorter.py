"""Trains a SoDeep sorter on synthetic data and reports it beside the paper's Table 1.

  python -m experiments.sorter --config=configs/sorter.py[:<lstm|lstm_long|lstm_paper|cnn|pairwise>] \
      --workdir=/tmp/rj-runs/sorter [--config.export_pretrained=NAME]

Runs ``ranking_jax.sorters.task`` through the shared trainer (``ranking_jax.train``): checkpoints and
resume in --workdir, then ``results.json``, ``results.md`` (beside Table 1) and ``figure5.png``. With
``--config.export_pretrained=NAME`` the trained sorter is written into ranking_jax/sorters/pretrained/.
"""

from experiments import main_lib

if __name__ == "__main__":
  main_lib.run("ranking_jax.sorters.task")
