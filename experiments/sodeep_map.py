"""SoDeep mAP experiment (Table 4): trains a WILDCAT variant, then reports its test mAP.

  python -m experiments.sodeep_map --config=configs/sodeep_map.py:<variant>[,voc2007] --workdir=DIR

Variants: ``soft_margin``, ``soft_margin_map_lstm``, ``soft_margin_map_soft_ranks``; see
``configs/sodeep_map.py``. Runs ``ranking_jax.projects.sodeep.sodeep_map`` through the shared trainer: checkpoints,
``metrics.jsonl`` (``validation`` mAP every few epochs), and at the end the ``test`` evaluation,
``results.json`` (with the report under ``"report"``) and ``results.md`` (test mAP, VOC07 11-point and
exact, beside Table 4, and the per-class AP). Relaunching resumes.
"""

from experiments import main_lib

if __name__ == "__main__":
  main_lib.run("ranking_jax.projects.sodeep.sodeep_map")
