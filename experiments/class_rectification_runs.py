r"""Runs many Class Rectification configs one after another in one process (the data loaded once).

  python -m experiments.class_rectification_runs --arg=celeba_hq --variants=all --seeds=0,1,2 \
      --root=/tmp/rj-runs/crl_celeba_hq --set=data.feature_cache_dir=/work/cache/features

Each run is exactly ``python -m experiments.class_rectification
--config=configs/class_rectification.py:<variant>,<arg>,seed=<seed> --config.<key>=<value>...
--workdir=<root>/<variant>_s<seed>`` (same config, same work directory contents: a relaunch of either
resumes or returns the other's finished run), but the dataset splits (on ``celeba_hq``: 30 000 cached trunk
features, about 20 s to read and verify) and the Python / JAX start-up are paid once instead of per run.
A finished run is skipped. ``--set`` values are parsed like the command line's (Python literals, else
strings). Runs are sequential (one process, no parallel training). A diverged run (FloatingPointError:
no results.json) is reported on a ``DIVERGED:`` line and the next run starts.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging

_ARG = flags.DEFINE_string("arg", "celeba_hq", "Modifiers after the variant in the config argument.")
_VARIANTS = flags.DEFINE_list("variants", ["all"], "Variants to run ('all' = the 11, in table order).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_ROOT = flags.DEFINE_string("root", None, "Parent folder of the work directories <variant>_s<seed>.")
_SET = flags.DEFINE_multi_string("set", [], "Config overrides key=value (dotted keys), for every run.")
_SUFFIX = flags.DEFINE_string("suffix", "", "Appended to each work directory's name.")


def _parse(text: str) -> Any:
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def main(argv: list[str]) -> None:
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # as experiments.main_lib: the trainer's own lines only
  from configs import class_rectification as config_lib  # pylint: disable=g-import-not-at-top
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  from ranking_jax.projects.class_rectification import class_rectification as task_lib  # pylint: disable=g-import-not-at-top
  from ranking_jax.train import preflight  # pylint: disable=g-import-not-at-top
  variants = list(config_lib.VARIANTS) if _VARIANTS.value == ["all"] else list(_VARIANTS.value)
  overrides = [item.split("=", 1) for item in _SET.value]
  splits = None
  for variant in variants:
    for seed in _SEEDS.value:
      config = config_lib.get_config(f"{variant},{_ARG.value},seed={int(seed)}")
      for key, value in overrides:
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
          node = node[parent]
        node[leaf] = _parse(value)
      config.lock()
      workdir = os.path.join(_ROOT.value, f"{variant}_s{int(seed)}{_SUFFIX.value}")
      if os.path.exists(os.path.join(workdir, "results.json")):
        print(f"skip (finished): {workdir}", flush=True)
        continue
      preflight.check_config(config, task_lib)
      if splits is None:
        splits = task_lib.make_splits(config.data)
      start = time.monotonic()
      task = dataclasses.replace(task_lib.make_task(config, splits), name=task_lib.__name__)
      try:
        train.train_and_evaluate(config, workdir, task)
      except FloatingPointError as error:  # a diverged run is never a result; go on with the next
        print(f"DIVERGED: {workdir}: {error}", flush=True)
        continue
      print(f"done: {workdir} in {time.monotonic() - start:.0f} s", flush=True)


if __name__ == "__main__":
  flags.mark_flag_as_required("root")
  app.run(main)
