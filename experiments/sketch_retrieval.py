"""FG-SBIR multi-task attribute-driven ranking: trains a variant, then reports it on the test split.

  python -m experiments.sketch_retrieval --config=configs/sketch_retrieval.py:<variant>[,shoes|,chairs] \
      --workdir=DIR

Variants: ``mtl``, ``triplet`` (Table 1), ``no_ap``, ``no_ar``, ``no_ap_ar`` (Table 2), ``auto_exhaustive``,
``auto_hard``, ``human_optimised_exhaustive``, ``human_optimised_hard``, ``human_original`` (Table 3),
``easy``, ``medium``, ``hard`` (Table 4); see ``configs/sketch_retrieval.py``. Runs
``ranking_jax.projects.sketch_retrieval.sketch_retrieval`` through the shared trainer: checkpoints, ``metrics.jsonl``, and at
the end the ``test`` evaluation (acc@1, acc@10, triplet accuracy), ``results.json`` (report under
``"report"``), ``results.md`` (the row beside the paper's) and ``retrieval_examples.png`` (Figure 3).
``experiments/sketch_retrieval_tables.py`` builds Tables 1-4 across runs. Relaunching resumes.
"""

from experiments import main_lib

if __name__ == "__main__":
  main_lib.run("ranking_jax.projects.sketch_retrieval.sketch_retrieval")
