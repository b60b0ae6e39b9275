"""SoDeep Recall@K experiment (Table 3): trains a joint embedding variant, then reports R@K.

  python -m experiments.sodeep_recall --config=configs/sodeep_recall.py:<variant>[,coco] --workdir=DIR

Variants: ``triplet_hard``, ``recall_lstm``, ``recall_soft_ranks``; see ``configs/sodeep_recall.py``.
Runs ``ranking_jax.projects.sodeep.sodeep_recall`` through the shared trainer: checkpoints, ``metrics.jsonl``
(``validation`` R@K every few epochs), and at the end the ``test`` evaluation (R@1/5/10 and median rank of
caption and image retrieval averaged over folds), ``results.json`` (with the report under ``"report"``) and
``results.md`` (beside Table 3). Relaunching resumes.
"""

from experiments import main_lib

if __name__ == "__main__":
  main_lib.run("ranking_jax.projects.sodeep.sodeep_recall")
