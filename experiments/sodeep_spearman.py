"""SoDeep Spearman-loss memorability regression (§4.2.1): trains one variant, reports its test Spearman rho.

  python -m experiments.sodeep_spearman --config=configs/sodeep_spearman.py:<variant>[,lamem|,mediaeval] --workdir=DIR

Variants: ``mse``, ``l1``, ``spearman_lstm``, ``spearman_handcrafted``, ``spearman_handcrafted_standardized``,
``spearman_soft_ranks`` (see ``configs/sodeep_spearman.py``). Runs ``ranking_jax.projects.sodeep.sodeep_spearman``
through the shared trainer: ``metrics.jsonl`` (validation rho every epoch), ``results.json`` (the report under
``"report"``), ``results.md`` (test rho beside the paper) and ``validation_rho.png``. Relaunching resumes.
Aggregate seeds and variants with ``experiments/sodeep_spearman_tables.py``.
"""

from experiments import main_lib

if __name__ == "__main__":
  main_lib.run("ranking_jax.projects.sodeep.sodeep_spearman")
