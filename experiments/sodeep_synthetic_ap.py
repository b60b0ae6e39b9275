"""SoDeep synthetic mAP experiment (Figure 6): trains the student with one loss, reports its test AP.

  python -m experiments.sodeep_synthetic_ap --config=configs/sodeep_synthetic_ap.py:<variant>,seed=<s> --workdir=DIR

Variants: ``cross_entropy``, ``hinge_ap``, ``map_lstm``, ``map_handcrafted``, ``map_handcrafted_standardized``,
``map_soft_ranks`` (see ``configs/sodeep_synthetic_ap.py``). Runs ``ranking_jax.projects.sodeep.sodeep_synthetic_ap``
through the shared trainer: ``metrics.jsonl`` (train and test AP every epoch), ``results.json`` (the report
with the test-AP curve under ``"report"``), ``results.md`` and ``figure6.png``. Aggregate several runs with
``experiments/sodeep_synthetic_ap_tables.py``.
"""

from experiments import main_lib

if __name__ == "__main__":
  main_lib.run("ranking_jax.projects.sodeep.sodeep_synthetic_ap")
