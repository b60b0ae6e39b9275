"""The Class Rectification Loss on multi-valued attributes (|Z_j| > 2), as the X-Domain-like scene attributes
and the DeepID2 model's padded logits use it, against numpy loops written from the paper's equations 3-14
("Class Rectification Hard Mining for Imbalanced Deep Learning", Dong, Gong, Zhu, ICCV 2017)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from ranking_jax.losses import rectification as crl
from ranking_jax.projects.class_rectification.deepid2 import LOGIT_PAD

NUM_VALUES = (6, 9, 21, 2)  # |Z_j|: three multi-valued attributes and a binary one
TOP_K = 3
HISTOGRAM = dict(num_bins=41, histogram_range=(0.0, 4.0))


# ----------------------------------------------------------------------------------------------------------
# Reference, one batch, plain loops.


def minority_set(values, num_values):
  """Eq. 3: the smallest classes whose samples total < n_bs / 2 (ties: lower class first); footnote 1:
  keep those with >= 2 samples."""
  counts = [sum(1 for v in values if v == c) for c in range(num_values)]
  running, chosen = 0, []
  for c in sorted(range(num_values), key=lambda c: (counts[c], c)):
    running += counts[c]
    if 2 * running >= len(values):
      break
    chosen.append(c)
  return {c for c in chosen if counts[c] >= 2}


def mined_pairs(probs, values, x, level, k):
  """Eq. 4-7 for one attribute: {anchor: (hard positives, hard negatives)} in positions of `values`."""
  n, num_values = probs.shape
  minority = minority_set(values, num_values)
  predicted = probs.argmax(axis=1)
  dist = lambda i, q: math.sqrt(sum((x[i, d] - x[q, d]) ** 2 for d in range(x.shape[1])))
  out = {}
  for a in range(n):
    c = values[a]
    if c not in minority:
      continue
    if level == "class":
      # Eq. 4: bottom-K scored on c among class c (the anchor is not its own positive); eq. 5: top-K on c.
      members = sorted((i for i in range(n) if values[i] == c), key=lambda i: probs[i, c])[:k]
      positives = [i for i in members if i != a]
      negatives = sorted((i for i in range(n) if values[i] != c), key=lambda i: -probs[i, c])[:k]
    else:
      # Eq. 6: misclassified class-c samples, farthest first; eq. 7: other-class samples, closest first.
      positives = sorted((i for i in range(n) if i != a and values[i] == c and predicted[i] != c),
                         key=lambda i: -dist(a, i))[:k]
      negatives = sorted((i for i in range(n) if values[i] != c), key=lambda i: dist(a, i))[:k]
    out[a] = ([dist(a, p) for p in positives], [dist(a, q) for q in negatives])
  return out


def histogram(distances, num_bins, low, high):
  """Eq. 12-13: linear votes into the two bins around each distance, normalised by the pair count."""
  delta = (high - low) / (num_bins - 1)
  bins = [low + t * delta for t in range(num_bins)]
  h = [0.0] * num_bins
  for d in distances:
    for t in range(num_bins):
      if t > 0 and bins[t - 1] <= d <= bins[t]:
        h[t] += (d - bins[t - 1]) / delta
      elif t < num_bins - 1 and bins[t] <= d <= bins[t + 1]:
        h[t] += (bins[t + 1] - d) / delta
  return [v / len(distances) for v in h]


def reference_loss(logits, labels, features, *, kind, level, k, num_values, num_bins, histogram_range):
  """Eq. 8 = eq. 2 (cross-entropy) + eq. 9 / 11 / 14, with eq. 10's margins 2 pi / |Z_j| and m_apc = 1."""
  num_images, num_attributes, _ = logits.shape
  ce = 0.0
  triplets, positives, negatives, histogram_losses = [], [], [], []
  annotated = np.zeros(num_images, bool)
  for j in range(num_attributes):
    z = num_values[j]
    rows = [i for i in range(num_images) if 0 <= labels[i, j] < z]
    annotated[rows] = True
    logit_rows = logits[rows, j, :z].astype(np.float64)
    probs = np.exp(logit_rows - logit_rows.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    values = [int(labels[i, j]) for i in rows]
    ce -= sum(math.log(probs[r, v]) for r, v in enumerate(values))
    margin = 2 * math.pi / z if kind == "relative" else 1.0
    all_pos, all_neg = [], []
    for d_pos, d_neg in mined_pairs(probs, values, features[rows, j].astype(np.float64), level, k).values():
      triplets += [max(0.0, margin + dp - dn) for dp in d_pos for dn in d_neg]
      positives += [dp ** 2 for dp in d_pos]
      negatives += [max(margin - dn, 0.0) ** 2 for dn in d_neg]
      all_pos += d_pos
      all_neg += d_neg
    if all_pos and all_neg:
      h_pos = histogram(all_pos, num_bins, *histogram_range)
      h_neg = histogram(all_neg, num_bins, *histogram_range)
      histogram_losses.append(sum(h_pos[t] * sum(h_neg[:t + 1]) for t in range(num_bins)))
  mean = lambda terms: sum(terms) / len(terms) if terms else 0.0
  if kind == "relative":
    regulariser = mean(triplets)
  elif kind == "absolute":
    regulariser = 0.5 * (mean(positives) + mean(negatives))
  else:
    regulariser = mean(histogram_losses)
  return ce / annotated.sum() + regulariser


# ----------------------------------------------------------------------------------------------------------
# Data like the scene attributes: a dominant value and a geometric tail, some labels missing.


def power_law_labels(rng, batch, num_values, missing=0.08):
  columns = []
  for z in num_values:
    p = 0.55 ** np.arange(z)
    column = rng.choice(z, size=batch, p=p / p.sum())
    column[rng.uniform(size=batch) < missing] = -1
    columns.append(column)
  return np.stack(columns, axis=1).astype(np.int32)


def padded_batch(seed, batch=40):
  rng = np.random.default_rng([seed, 11])
  labels = power_law_labels(rng, batch, NUM_VALUES)
  width = max(NUM_VALUES)
  logits = rng.normal(size=(batch, len(NUM_VALUES), width)).astype(np.float32) * 1.5
  mask = np.arange(width)[None, :] < np.array(NUM_VALUES)[:, None]
  logits = np.where(mask[None], logits, np.float32(LOGIT_PAD))  # the DeepID2 model's layout
  features = (rng.normal(size=(batch, len(NUM_VALUES), 4)) * 0.5).astype(np.float32)
  return logits, labels, features


@pytest.fixture(scope="module")
def batch():
  return padded_batch(0)


def test_the_batch_exercises_multi_valued_minorities(batch):
  _, labels, _ = batch
  for j, z in enumerate(NUM_VALUES[:3]):
    values = [int(v) for v in labels[:, j] if v >= 0]
    assert len(minority_set(values, z)) >= 2  # several minority classes per multi-valued attribute
  assert len(set(labels[:, 2].tolist()) - {-1}) < NUM_VALUES[2]  # and absent classes


# Each kind and each mining level at least once (every (kind, level) pair is one more ~3 s compile; all six
# pairs are covered on |Z_j| <= 4 by test_losses_rectification.py).
@pytest.mark.parametrize("kind,level", [("relative", "instance"), ("relative", "class"),
                                        ("absolute", "class"), ("distribution", "instance")])
def test_multi_valued_loss_vs_reference(batch, kind, level):
  logits, labels, features = batch
  options = dict(kind=kind, level=level, top_k=TOP_K, num_classes=NUM_VALUES, **HISTOGRAM)
  got = crl.class_rectification_loss(jnp.asarray(logits), jnp.asarray(labels), features=jnp.asarray(features),
                                     **options)
  expected = reference_loss(logits, labels, features, kind=kind, level=level, k=TOP_K, num_values=NUM_VALUES,
                            num_bins=HISTOGRAM["num_bins"], histogram_range=HISTOGRAM["histogram_range"])
  cross_entropy_only = reference_loss(logits, labels, features, kind="absolute", level=level, k=0,
                                      num_values=NUM_VALUES, num_bins=2, histogram_range=(0.0, 1.0))
  assert expected > cross_entropy_only + 0.05  # the regulariser is not zero on this batch
  np.testing.assert_allclose(float(got), expected, rtol=2e-5)
  # The regulariser alone (eq. 9 / 11 / 14), so that a small error in it is not hidden by the cross-entropy.
  np.testing.assert_allclose(float(got) - cross_entropy_only, expected - cross_entropy_only, rtol=1e-4,
                             atol=2e-5)
  # Whatever the padded slots hold, they do not count (the same compiled function: same shapes).
  garbage = np.where(logits == LOGIT_PAD, np.float32(7.0), logits)
  again = crl.class_rectification_loss(jnp.asarray(garbage), jnp.asarray(labels),
                                       features=jnp.asarray(features), **options)
  np.testing.assert_allclose(float(again), float(got), rtol=1e-6)


def test_minority_classes_with_many_values_vs_reference():
  rng = np.random.default_rng(5)
  labels = np.stack([power_law_labels(rng, 30, (21,), missing=0.0)[:, 0] for _ in range(25)])
  got = np.asarray(crl.minority_classes(jnp.asarray(labels), 21))
  for row in range(len(labels)):
    assert set(np.flatnonzero(got[row]).tolist()) == minority_set(labels[row].tolist(), 21)
  assert sum(len(minority_set(r.tolist(), 21)) for r in labels) > 25  # not all trivially empty
