"""Two diagnostics of the CelebA-HQ Table-4 runs (README, Table-4 section), from their work directories.

* :func:`per_class_changes`: each fine-tuned rank variant's paired per-class AP change against the fine-tuned
  soft-margin baseline (mean over seeds) and its Spearman correlation with the class's test positive rate;
* :func:`rank_errors`: how well each rank function ranks the converged baseline's validation logits (lists of
  100 images per class, as in training): mean absolute rank error and Spearman's rho with the exact ranks.

  python -m ranking_jax.projects.sodeep.sodeep_map_analysis RUNS_DIR CELEBA_HQ_DIR FEATURE_CACHE_DIR

``RUNS_DIR`` holds ``base_s<seed>`` and ``ft_<variant>_s<seed>`` (the README's commands).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from ranking_jax import ranks
from ranking_jax.models import weights as weights_lib
from ranking_jax.projects.sodeep import sodeep_map

RANK_VARIANTS = ("soft_margin_map_lstm", "soft_margin_map_soft_ranks")


def per_class_changes(per_class_ap: Mapping[str, Sequence[Mapping[str, float]]], rates: Mapping[str, float]
                      ) -> dict[str, dict[str, float]]:
  """``{variant: {"rho", "p", "gaining", "rarest10", "frequent10"}}`` from per-seed per-class APs (in [0, 1]).

  ``per_class_ap[variant][seed] = {class: AP}`` with ``"soft_margin"`` among the variants (paired by list
  position = seed); ``rates`` the classes' positive rates. AP changes are in points.

  >>> aps = {"soft_margin": [{"a": 0.5, "b": 0.5, "c": 0.5}], "x": [{"a": 0.6, "b": 0.5, "c": 0.4}]}
  >>> out = per_class_changes(aps, {"a": 0.1, "b": 0.2, "c": 0.3})["x"]
  >>> round(out["rho"], 2), out["gaining"]
  (-1.0, 1)
  """
  names = sorted(rates)
  rate = np.array([rates[n] for n in names])
  order = np.argsort(rate)
  out = {}
  for variant, seeds in per_class_ap.items():
    if variant == "soft_margin":
      continue
    base = per_class_ap["soft_margin"]
    delta = np.mean([[100.0 * (run[n] - ref[n]) for n in names] for run, ref in zip(seeds, base)], axis=0)
    rho, p = scipy.stats.spearmanr(rate, delta)
    k = min(10, len(names))
    out[variant] = {"rho": float(rho), "p": float(p), "gaining": int(np.sum(delta > 0)),
                    "rarest10": float(delta[order[:k]].mean()), "frequent10": float(delta[order[-k:]].mean())}
  return out


def rank_errors(logits: np.ndarray, rank_fns: Mapping[str, object], list_length: int = 100
                ) -> dict[str, dict[str, float]]:
  """``{name: {"mae", "rho"}}``: each rank function on the ``[N, C]`` logits cut into lists of ``list_length``
  images per class, against the exact ranks (mean absolute error in positions, mean Spearman rho).

  >>> rank_errors(np.arange(8.0).reshape(4, 2), {"exact": ranks.hard_ranks}, list_length=4)["exact"]["mae"]
  0.0
  """
  n, c = logits.shape
  usable = (n // list_length) * list_length
  lists = logits[:usable].reshape(-1, list_length, c).transpose(0, 2, 1).reshape(-1, list_length)
  exact = np.asarray(ranks.hard_ranks(jnp.asarray(lists)))
  out = {}
  for name, fn in rank_fns.items():
    got = np.asarray(jax.jit(fn)(jnp.asarray(lists)))
    rho = float(np.mean([scipy.stats.spearmanr(a, b)[0] for a, b in zip(got, exact)]))
    out[name] = {"mae": float(np.abs(got - exact).mean()), "rho": rho}
  return out


def main(runs_dir: str, data_dir: str, cache_dir: str) -> None:
  from ranking_jax.data import celeba_hq  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  data_config = ml_collections.ConfigDict({"name": "celeba_hq_classes", "data_dir": data_dir,
                                           "cache_dir": cache_dir, "preload": False})
  test_labels = celeba_hq.build_splits(data_config)["test"].labels()
  rates = dict(zip(celeba_hq.ATTRIBUTE_NAMES, test_labels.mean(axis=0)))
  seeds = sorted(int(d[len("base_s"):]) for d in os.listdir(runs_dir)
                 if d.startswith("base_s") and d[len("base_s"):].isdigit())
  read = lambda name: json.load(open(os.path.join(runs_dir, name, "results.json")))["report"]["per_class_ap"]
  aps = {v: [read(f"ft_{v}_s{s}") for s in seeds] for v in ("soft_margin",) + RANK_VARIANTS}
  for variant, row in per_class_changes(aps, rates).items():
    print(f"{variant}: Spearman(positive rate, paired dAP) {row['rho']:+.2f} (p {row['p']:.2f}); "
          f"{row['gaining']}/40 classes gain; mean dAP of the 10 rarest {row['rarest10']:+.2f}, "
          f"of the 10 most frequent {row['frequent10']:+.2f} pts")
  features = sodeep_map.make_splits(data_config)["validation"]
  x = features[np.arange(len(features))]["features"]
  head = sodeep_map.FeatureHead(num_classes=40, hidden_sizes=(512,))
  variables = weights_lib.load_backbone_weights(
      head.init(jax.random.key(0), x[:1]), os.path.join(runs_dir, f"base_s{seeds[0]}", sodeep_map.FINAL_VARIABLES),
      backbone="")
  logits = np.asarray(head.apply(variables, x))
  errors = rank_errors(logits, {"lstm_h64_d100": sodeep_map.make_rank_fn("lstm_h64_d100", 0.1),
                                "soft_ranks": sodeep_map.make_rank_fn("soft_ranks", 0.1)})
  print(f"baseline seed {seeds[0]} validation logits: per-list std {logits.std(axis=0).mean():.2f}")
  for name, row in errors.items():
    print(f"{name}: mean |f(y) - rk(y)| {row['mae']:.2f} positions, mean Spearman rho {row['rho']:.4f}")


if __name__ == "__main__":
  if len(sys.argv) != 4:
    sys.exit("usage: python -m ranking_jax.projects.sodeep.sodeep_map_analysis RUNS_DIR CELEBA_HQ_DIR CACHE_DIR")
  main(*sys.argv[1:])
