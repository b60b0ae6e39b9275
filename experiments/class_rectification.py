"""Class Rectification Loss experiment: trains one variant, then reports it on the test split.

  python -m experiments.class_rectification --config=configs/class_rectification.py:<variant>[,celeba|,xdomain] \
      --workdir=DIR

Variants: ``ce``, ``oversampling``, ``downsampling``, ``cost_sensitive``, ``logit_adjusted`` and the six CRL
variants ``crl_{class,instance}_{relative,absolute,distribution}``; see ``configs/class_rectification.py``.
Prints the imbalance ratio of every attribute of the training split, then runs
``ranking_jax.projects.class_rectification.class_rectification`` through the shared trainer: checkpoints, ``metrics.jsonl``
(``validation`` every few epochs), the ``test`` evaluation, ``results.json`` (the run's per-attribute
class-balanced accuracies under ``"report"``) and ``results.md``. Several runs are gathered into the
Table 2/3 and Table 4 tables and Figure 5 by ``experiments/class_rectification_tables.py``. Relaunching
resumes.
"""

from experiments import main_lib

if __name__ == "__main__":
  main_lib.run("ranking_jax.projects.class_rectification.class_rectification")
