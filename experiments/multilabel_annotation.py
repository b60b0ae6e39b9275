"""Multilabel annotation (Gong et al.): trains one loss, then writes Tables 1-2 for it on the test split.

  python -m experiments.multilabel_annotation --config=configs/multilabel_annotation.py:<variant>[,nuswide|,voc2007] \
      --workdir=DIR

Variants: ``softmax``, ``pairwise``, ``warp`` (sampled ranks), ``warp_exact``; see
``configs/multilabel_annotation.py``. Runs ``ranking_jax.projects.multilabel_annotation.multilabel_annotation`` through the shared
trainer: checkpoints, ``metrics.jsonl`` (``validation`` every few epochs), and at the end the ``test``
evaluation, ``results.json`` (report under ``"report"``), ``results.md`` (Tables 1-2 at k = 3 and 5 with
the upper-bound and kNN rows and the paper's beside) and ``recall_vs_frequency.png``. Relaunching resumes.
``experiments/multilabel_annotation_tables.py`` gathers several runs into one table.
"""

from experiments import main_lib

if __name__ == "__main__":
  main_lib.run("ranking_jax.projects.multilabel_annotation.multilabel_annotation")
