"""Tests of the Class Rectification Loss (Dong, Gong, Zhu, ICCV 2017) against plain numpy/python loops.

The generic checks of every loss (jit, vmap, bfloat16 and integer inputs, masks, one-item and zero-size
batches, float64 finite differences) are in test_contract.py; here are the paper's equations, the mining,
and issue 9's regressions (zero-size inputs, integer scores, translated features).
"""

from __future__ import annotations

import collections
import functools
import math

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ranking_jax.losses import rectification as crl

KINDS = ("relative", "absolute", "distribution")
LEVELS = ("class", "instance")


# ----------------------------------------------------------------------------------------------------------
# Independent references, written from the paper's equations with python loops.


def ref_minority(labels, num_classes, valid=None):
  """Eq. 3 + footnote 1: smallest classes (ties by index) while their running total < n/2; >= 2 samples."""
  labels = list(np.asarray(labels))
  valid = [True] * len(labels) if valid is None else list(np.asarray(valid))
  kept = [l for l, v in zip(labels, valid) if v and 0 <= l < num_classes]
  counts = collections.Counter(kept)
  n = len(kept)
  minority, total = set(), 0
  for k in sorted(range(num_classes), key=lambda k: (counts[k], k)):
    total += counts[k]
    if total < 0.5 * n:
      minority.add(k)
    else:
      break
  return {k for k in minority if counts[k] >= 2}


def ref_class_mining(probs, labels, valid, k):
  """Per anchor: (positive index set, negative index set) from eq. 4-5 by sorting."""
  n, c = probs.shape
  minority = ref_minority(labels, c, valid)
  out = {}
  for a in range(n):
    if not valid[a] or labels[a] not in minority:
      continue
    cls = labels[a]
    members = sorted((i for i in range(n) if valid[i] and labels[i] == cls), key=lambda i: probs[i, cls])
    others = sorted((i for i in range(n) if valid[i] and labels[i] != cls), key=lambda i: -probs[i, cls])
    out[a] = (set(members[:k]) - {a}, set(others[:k]))
  return out


def ref_instance_mining(probs, labels, feats, valid, k):
  """Per anchor: (positive index set, negative index set) from eq. 6-7 by sorting L2 distances."""
  n, c = probs.shape
  minority = ref_minority(labels, c, valid)
  predicted = [int(np.argmax(probs[i])) for i in range(n)]
  out = {}
  for a in range(n):
    if not valid[a] or labels[a] not in minority:
      continue
    dist = lambda i: float(np.linalg.norm(feats[a] - feats[i]))
    pos = [i for i in range(n)
           if valid[i] and i != a and labels[i] == labels[a] and predicted[i] != labels[i]]
    neg = [i for i in range(n) if valid[i] and labels[i] != labels[a]]
    out[a] = (set(sorted(pos, key=lambda i: -dist(i))[:k]), set(sorted(neg, key=dist)[:k]))
  return out


def ref_histogram(dists, num_bins, low, high, weights=None):
  """Eq. 12-13 with explicit piecewise bin contributions."""
  delta = (high - low) / (num_bins - 1)
  b = [low + t * delta for t in range(num_bins)]
  h = [0.0] * num_bins
  weights = [1.0] * len(dists) if weights is None else list(weights)
  for d, w in zip(dists, weights):
    d = min(max(d, low), high)
    for t in range(num_bins):
      if t > 0 and b[t - 1] <= d <= b[t]:
        h[t] += w * (d - b[t - 1]) / delta
      elif t + 1 < num_bins and b[t] <= d <= b[t + 1]:
        h[t] += w * (b[t + 1] - d) / delta
  total = sum(weights)
  return [x / total for x in h]


def ref_histogram_loss(pos, neg, num_bins, low, high, pos_w=None, neg_w=None):
  """Eq. 14: sum_t h+_t sum_{k <= t} h-_k."""
  if len(pos) == 0 or len(neg) == 0:
    return 0.0
  hp = ref_histogram(pos, num_bins, low, high, pos_w)
  hn = ref_histogram(neg, num_bins, low, high, neg_w)
  return sum(hp[t] * sum(hn[:t + 1]) for t in range(num_bins))


def ref_crl(logits, labels, feats, valid, *, kind, level, k, margins, num_classes, weights=None,
            num_bins=201, hist_range=(0.0, 2.0)):
  """Eq. 8 for one batch: logits [B, A, C], labels [B, A], feats [B, A, D], valid [B, A] (numpy)."""
  b, a_count, _ = logits.shape
  weights = np.ones((b, a_count)) if weights is None else weights
  ce_sum = 0.0
  trip_sum = trip_n = pos_sum = pos_n = neg_sum = neg_n = 0.0
  hist_values = []
  for j in range(a_count):
    cj = num_classes[j]
    z = logits[:, j, :cj]
    probs = np.exp(z - z.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    for i in range(b):
      if valid[i, j]:
        ce_sum -= weights[i, j] * math.log(probs[i, labels[i, j]])
    lab = [int(x) if v else -1 for x, v in zip(labels[:, j], valid[:, j])]
    if level == "class":
      mined = ref_class_mining(probs, lab, valid[:, j], k)
    else:
      mined = ref_instance_mining(probs, lab, feats[:, j], valid[:, j], k)
    dist = lambda p, q: float(np.linalg.norm(feats[p, j] - feats[q, j]))
    pos_d, neg_d, pos_w, neg_w = [], [], [], []
    for anchor, (pos, neg) in mined.items():
      w = weights[anchor, j]
      for p in pos:
        for n in neg:
          trip_sum += w * max(0.0, margins[j] + dist(anchor, p) - dist(anchor, n))
          trip_n += 1
      for p in pos:
        pos_sum += w * 0.5 * dist(anchor, p) ** 2
        pos_n += 1
        pos_d.append(dist(anchor, p))
        pos_w.append(w)
      for n in neg:
        neg_sum += w * 0.5 * max(margins[j] - dist(anchor, n), 0.0) ** 2
        neg_n += 1
        neg_d.append(dist(anchor, n))
        neg_w.append(w)
    if pos_d and neg_d:
      hist_values.append(ref_histogram_loss(pos_d, neg_d, num_bins, *hist_range, pos_w, neg_w))
  n_bs = int(np.sum(np.any(valid, axis=1)))
  l_ce = ce_sum / n_bs if n_bs else 0.0
  if kind == "relative":
    l_crl = trip_sum / trip_n if trip_n else 0.0
  elif kind == "absolute":
    l_crl = (pos_sum / pos_n if pos_n else 0.0) + (neg_sum / neg_n if neg_n else 0.0)
  else:
    l_crl = float(np.mean(hist_values)) if hist_values else 0.0
  return l_ce + l_crl


def mining_to_sets(m, n):
  """JAX HardMining (one batch) -> {anchor: (positive set, negative set)}."""
  out = {}
  anchors = np.asarray(m.anchors)
  for a in range(n):
    if anchors[a]:
      pos = {int(i) for i, ok in zip(m.positives[a], m.positive_mask[a]) if ok}
      neg = {int(i) for i, ok in zip(m.negatives[a], m.negative_mask[a]) if ok}
      out[a] = (pos, neg)
    else:
      assert not np.any(m.positive_mask[a]) and not np.any(m.negative_mask[a])
  return out


def imbalanced_batch(rng, b=24, a=3, c=4, d=3, num_classes=None):
  """Random multi-attribute batch whose labels are skewed so that minority classes exist."""
  num_classes = num_classes or (c,) * a
  labels = np.stack([rng.choice(nc, size=b, p=np.arange(nc, 0, -1) ** 3 / np.sum(np.arange(nc, 0, -1) ** 3))
                     for nc in num_classes], axis=1)
  logits = rng.normal(size=(b, a, c)) * 2.0
  feats = rng.normal(size=(b, a, d)) * 0.6
  return logits, labels, feats


# ----------------------------------------------------------------------------------------------------------
# Minority profiling.


@pytest.mark.parametrize("labels,num_classes,expected", [
    ([0, 0, 0, 0, 0, 0, 1, 1, 2, 3], 4, {1}),  # 2 and 3 (singletons) use budget; 1 fits (4 < 5), >= 2
    ([0, 0, 0, 0, 1, 1, 1, 1], 2, set()),  # balanced binary: 4 is not < 4
    ([0, 0, 0, 0, 0, 1, 1, 1], 2, {1}),  # 3 < 4
    ([0, 0, 0, 0, 0, 0, 0, 1], 2, set()),  # the minority class has one sample
    ([0, 0, 1, 1, 2, 2, 3, 3, 4, 4], 5, {0, 1}),  # ties broken by class index: 2 + 2 < 5, + 2 = 6 is not
    ([2, 2, 2, 2, 0, 0, 1, 1, 1], 3, {0}),  # 2 < 4.5; 2 + 3 = 5 is not
    ([0, 1, 2, 3, 4, 5], 6, set()),  # all singletons
])
def test_minority_classes_hand_made(labels, num_classes, expected):
  got = crl.minority_classes(jnp.array(labels), num_classes)
  assert set(np.flatnonzero(np.asarray(got)).tolist()) == expected
  assert ref_minority(labels, num_classes) == expected


def test_minority_classes_random_vs_reference():
  rng = np.random.default_rng(0)
  num_classes, n_batches, b = 6, 40, 20
  probs = rng.dirichlet(np.ones(num_classes) * 0.5, size=n_batches)
  labels = np.stack([rng.choice(num_classes, size=b, p=p) for p in probs])
  labels[rng.random(labels.shape) < 0.1] = -1  # ignored labels
  where = rng.random(labels.shape) < 0.85
  got = np.asarray(crl.minority_classes(jnp.array(labels), num_classes, where=jnp.array(where)))
  assert got.shape == (n_batches, num_classes)
  for row in range(n_batches):
    assert set(np.flatnonzero(got[row]).tolist()) == ref_minority(labels[row], num_classes, where[row])


def test_minority_classes_multi_attribute_layout():
  labels = jnp.array([[0, 1], [0, 1], [0, 0], [0, 0], [1, 0], [1, 0], [0, 0], [0, 0]])  # [B=8, A=2]
  got = crl.minority_classes(labels.T, 2)
  np.testing.assert_array_equal(got, [[False, True], [False, True]])


def test_minority_classes_errors():
  with pytest.raises(TypeError, match="integer"):
    crl.minority_classes(jnp.zeros(4), 2)
  with pytest.raises(ValueError, match="num_classes"):
    crl.minority_classes(jnp.zeros(4, int), 0)
  with pytest.raises(TypeError, match="boolean"):
    crl.minority_classes(jnp.zeros(4, int), 2, where=jnp.ones(4))


# ----------------------------------------------------------------------------------------------------------
# Hard mining.


@pytest.mark.parametrize("top_k", [1, 3, 30])
def test_class_level_mining_vs_brute_force(top_k):
  rng = np.random.default_rng(1)
  n_batches, b, c = 6, 20, 4
  probs = rng.dirichlet(np.ones(c), size=(n_batches, b))
  labels = np.stack([rng.choice(c, size=b, p=[0.6, 0.25, 0.1, 0.05]) for _ in range(n_batches)])
  where = rng.random((n_batches, b)) < 0.9
  m = crl.class_level_hard_mining(jnp.array(probs), jnp.array(labels), top_k=top_k, where=jnp.array(where))
  assert m.positives.shape == (n_batches, b, top_k) and m.negatives.dtype == jnp.int32
  n_anchors = 0
  for row in range(n_batches):
    one = jax.tree_util.tree_map(lambda x: np.asarray(x[row]), m)
    ref = ref_class_mining(probs[row], list(labels[row]), where[row], top_k)
    assert mining_to_sets(one, b) == ref
    n_anchors += len(ref)
  assert n_anchors > 0


@pytest.mark.parametrize("top_k", [2, 30])
def test_instance_level_mining_vs_brute_force(top_k):
  rng = np.random.default_rng(2)
  n_batches, b, c, d = 6, 20, 3, 4
  scores = rng.normal(size=(n_batches, b, c))
  labels = np.stack([rng.choice(c, size=b, p=[0.7, 0.2, 0.1]) for _ in range(n_batches)])
  feats = rng.normal(size=(n_batches, b, d))
  where = rng.random((n_batches, b)) < 0.9
  m = crl.instance_level_hard_mining(jnp.array(scores), jnp.array(labels), features=jnp.array(feats),
                                     top_k=top_k, where=jnp.array(where))
  n_pos = 0
  for row in range(n_batches):
    one = jax.tree_util.tree_map(lambda x: np.asarray(x[row]), m)
    ref = ref_instance_mining(scores[row], list(labels[row]), feats[row], where[row], top_k)
    assert mining_to_sets(one, b) == ref
    n_pos += sum(len(p) for p, _ in ref.values())
  assert n_pos > 0


def test_mining_order_is_hardest_first():
  p1 = jnp.array([.1, .2, .3, .4, .9, .8, .7, .6, .55])
  labels = jnp.array([0, 0, 0, 0, 0, 1, 1, 1, 0])
  m = crl.class_level_hard_mining(jnp.stack([1 - p1, p1], -1), labels, top_k=3)
  # Class 1 (3 of 9) is the minority. Hard positives: lowest p1 first; hard negatives: highest p1 first.
  np.testing.assert_array_equal(m.positives[5], [7, 6, 5])
  np.testing.assert_array_equal(m.positive_mask[5], [True, True, False])  # the anchor itself is masked
  np.testing.assert_array_equal(m.negatives[5], [4, 8, 3])


def test_mining_with_fewer_than_k_and_singleton_class():
  labels = jnp.array([0, 0, 0, 0, 0, 0, 1, 1, 2])  # class 2 has one sample: not a minority anchor
  scores = jax.nn.one_hot(jnp.zeros(9, int), 3)  # everything predicted as class 0
  feats = jnp.arange(9.0)[:, None]
  m = crl.instance_level_hard_mining(scores, labels, features=feats, top_k=20)
  np.testing.assert_array_equal(m.anchors, [0, 0, 0, 0, 0, 0, 1, 1, 0])
  assert m.positives.shape == (9, 20)
  np.testing.assert_array_equal(m.positive_mask.sum(-1), [0, 0, 0, 0, 0, 0, 1, 1, 0])
  np.testing.assert_array_equal(m.negative_mask.sum(-1), [0, 0, 0, 0, 0, 0, 7, 7, 0])
  assert int(m.positives[6, 0]) == 7 and int(m.negatives[6, 0]) == 5


def test_mining_fully_masked_and_nan():
  scores = jnp.full((5, 2), 0.5)
  labels = jnp.array([0, 0, 0, 1, 1])
  m = crl.class_level_hard_mining(scores, labels, top_k=2, where=jnp.zeros(5, bool))
  assert not np.any(m.anchors) and not np.any(m.positive_mask) and not np.any(m.negative_mask)
  feats = jnp.array([[0.], [1.], [2.], [jnp.nan], [4.]])
  m = crl.instance_level_hard_mining(scores, labels, features=feats, top_k=2)
  assert not np.any(m.anchors)  # sample 3 masked: class 1 has a single valid sample


def test_mining_accepts_integer_scores_and_zero_size_batches():
  """Issue 9, fault 1: eq. 4 negates the scores, which wrapped for unsigned integer scores."""
  rng = np.random.default_rng(12)
  counts = rng.integers(0, 256, size=(20, 3)).astype(np.uint8)  # e.g. quantised class scores
  labels = rng.choice(3, size=20, p=[0.7, 0.2, 0.1])
  m = crl.class_level_hard_mining(jnp.asarray(counts), jnp.asarray(labels), top_k=3)
  want = ref_class_mining(counts.astype(np.float64), list(labels), np.ones(20, bool), 3)
  assert want and mining_to_sets(jax.tree_util.tree_map(np.asarray, m), 20) == want
  # Zero images (or zero batches): empty results of the documented shapes.
  for shape in ((0,), (3, 0)):
    scores, labels = jnp.zeros(shape + (2,)), jnp.zeros(shape, int)
    assert crl.minority_classes(labels, 2).shape == shape[:-1] + (2,)
    assert not np.any(crl.minority_classes(labels, 2))
    for m in (crl.class_level_hard_mining(scores, labels, top_k=2),
              crl.instance_level_hard_mining(scores, labels, features=jnp.zeros(shape + (4,)), top_k=2)):
      assert m.anchors.shape == shape and m.positives.shape == m.negative_mask.shape == shape + (2,)


@hypothesis.settings(max_examples=10, deadline=None, derandomize=True)
@hypothesis.given(seed=st.integers(0, 2 ** 31 - 1), offset=st.integers(-2 ** 20, 2 ** 20))
def test_instance_mining_is_translation_invariant(seed, offset):
  """Issue 9, fault 5: the expanded squared distances cancelled for features far from the origin."""
  rng = np.random.default_rng(seed)
  b, c = 20, 3
  scores = rng.normal(size=(b, c))
  labels = rng.choice(c, size=b, p=[0.7, 0.2, 0.1])
  # Integer features: exact in float32 with an offset up to 2^20 (ties break by index on both sides).
  feats = (rng.permutation(10 * b)[:b, None] * np.array([[1.0, 37.0]]) % 97).astype(np.float32)
  shifted = feats + np.float32(offset)
  m = _JIT_INSTANCE_MINING(jnp.asarray(scores), jnp.asarray(labels), jnp.asarray(shifted))
  want = ref_instance_mining(scores, list(labels), shifted.astype(np.float64), np.ones(b, bool), 3)
  assert mining_to_sets(jax.tree_util.tree_map(np.asarray, m), b) == want


_JIT_INSTANCE_MINING = jax.jit(lambda s, l, f: crl.instance_level_hard_mining(s, l, features=f, top_k=3))


def test_mining_shape_errors():
  with pytest.raises(ValueError, match="scores"):
    crl.class_level_hard_mining(jnp.zeros((4, 2)), jnp.zeros(5, int), top_k=2)
  with pytest.raises(ValueError, match="features"):
    crl.instance_level_hard_mining(jnp.zeros((4, 2)), jnp.zeros(4, int), features=jnp.zeros((5, 3)),
                                   top_k=2)
  with pytest.raises(ValueError, match="top_k"):
    crl.class_level_hard_mining(jnp.zeros((4, 2)), jnp.zeros(4, int), top_k=0)


# ----------------------------------------------------------------------------------------------------------
# Building blocks on distances.


def test_triplet_margin_loss_vs_numpy():
  rng = np.random.default_rng(3)
  dp, dn = rng.random((5, 4)) * 2, rng.random((5, 3)) * 2
  where = rng.random((5, 4, 3)) < 0.7
  got = crl.triplet_margin_loss(jnp.array(dp)[:, :, None], jnp.array(dn)[:, None, :], margin=0.7,
                                where=jnp.array(where))
  terms = [max(0.0, 0.7 + dp[a, p] - dn[a, n]) for a in range(5) for p in range(4) for n in range(3)
           if where[a, p, n]]
  np.testing.assert_allclose(got, np.mean(terms), rtol=1e-6)
  per = crl.triplet_margin_loss(jnp.array(dp)[:, :, None], jnp.array(dn)[:, None, :], margin=0.7,
                                where=jnp.array(where), reduce_fn=None)
  assert per.shape == (5, 4, 3) and float(per[~where].sum()) == 0.0


def test_contrastive_loss_vs_numpy():
  rng = np.random.default_rng(4)
  d = rng.random(12) * 2
  y = rng.random(12) < 0.5
  w = rng.random(12)
  got = crl.contrastive_loss(jnp.array(d), jnp.array(y), margin=1.0, weights=jnp.array(w), reduce_fn=jnp.sum)
  want = sum(wi * 0.5 * (di ** 2 if yi else max(1.0 - di, 0.0) ** 2) for di, yi, wi in zip(d, y, w))
  np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("num_bins,value_range", [(5, (0.0, 2.0)), (21, (0.0, 3.0)), (201, (0.0, 2.0))])
def test_histogram_loss_vs_numpy(num_bins, value_range):
  rng = np.random.default_rng(num_bins)
  pos = rng.random((3, 7)) * 2.4  # some beyond the range: clipped into the last bin
  neg = rng.random((3, 9)) * 2.4 + 0.3
  neg_where = rng.random((3, 9)) < 0.8
  got = crl.histogram_loss(jnp.array(pos), jnp.array(neg), negative_where=jnp.array(neg_where),
                           num_bins=num_bins, value_range=value_range, reduce_fn=None)
  want = [ref_histogram_loss(list(pos[r]), list(neg[r][neg_where[r]]), num_bins, *value_range)
          for r in range(3)]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_histogram_loss_extremes_and_empty():
  assert float(crl.histogram_loss(jnp.array([0.1, 0.2]), jnp.array([1.0, 1.5]))) == 0.0
  np.testing.assert_allclose(crl.histogram_loss(jnp.array([1.5]), jnp.array([0.1])), 1.0, rtol=1e-5)
  # No negative pair: the list is skipped (0, not NaN) and its gradient is 0.
  f = lambda p: crl.histogram_loss(p, jnp.array([0.3]), negative_where=jnp.array([False]))
  assert float(f(jnp.array([0.5]))) == 0.0
  assert np.all(np.isfinite(jax.grad(f)(jnp.array([0.5]))))
  with pytest.raises(ValueError, match="num_bins"):
    crl.histogram_loss(jnp.array([0.5]), jnp.array([0.5]), num_bins=1)
  with pytest.raises(ValueError, match="leading"):
    crl.histogram_loss(jnp.zeros((2, 3)), jnp.zeros((3, 3)))


def test_distance_losses_accept_integer_distances_and_empty_pair_sets():
  """Issue 9, fault 4: an empty array of positive distances raised ZeroDivisionError (masked: 0)."""
  for pos, neg in ((np.zeros((0,)), np.array([0.5, 1.0])), (np.array([0.5]), np.zeros((0,))),
                   (np.zeros((3, 0)), np.ones((3, 2)))):
    f = lambda p: crl.histogram_loss(p, jnp.asarray(neg, jnp.float32), num_bins=5)
    value, grad = jax.value_and_grad(f)(jnp.asarray(pos, jnp.float32))
    assert float(value) == ref_histogram_loss([], [0.5], 5, 0.0, 2.0) == 0.0
    assert grad.shape == pos.shape and not np.any(np.asarray(grad))
  # Integer distances (e.g. Hamming) are promoted to float32, not refused.
  d_pos, d_neg = np.array([1, 3, 0]), np.array([2, 2, 4])
  np.testing.assert_allclose(crl.triplet_margin_loss(d_pos, d_neg, margin=1.0),
                             np.mean(np.maximum(0.0, 1.0 + d_pos - d_neg)))
  np.testing.assert_allclose(crl.contrastive_loss(d_pos, np.array([True, False, False]), margin=2.0),
                             np.mean([0.5, 0.0, 2.0]))
  np.testing.assert_allclose(crl.histogram_loss(np.array([[0, 1]], np.uint8), np.array([[2, 1]], np.uint8),
                                                num_bins=3, reduce_fn=None),
                             [ref_histogram_loss([0, 1], [2, 1], 3, 0.0, 2.0)], rtol=1e-6)


# ----------------------------------------------------------------------------------------------------------
# The combined loss.


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("level", LEVELS)
def test_class_rectification_loss_vs_numpy(kind, level):
  rng = np.random.default_rng(hash((kind, level)) % 2 ** 32)
  num_classes = (4, 2, 3)
  logits, labels, feats = imbalanced_batch(rng, b=24, a=3, c=4, d=3, num_classes=num_classes)
  where = rng.random((24, 3)) < 0.9
  weights = rng.random((24, 3)) + 0.5
  hist_range = (0.0, 3.0)
  margins = [2 * math.pi / c for c in num_classes] if kind == "relative" else [1.0] * 3
  with jax.enable_x64(True):
    got = crl.class_rectification_loss(
        jnp.array(logits), jnp.array(labels), features=jnp.array(feats), where=jnp.array(where),
        weights=jnp.array(weights), kind=kind, level=level, top_k=3, num_classes=num_classes,
        num_bins=31, histogram_range=hist_range)
  want = ref_crl(logits, labels, feats, where, kind=kind, level=level, k=3, margins=margins,
                 num_classes=num_classes, weights=weights, num_bins=31, hist_range=hist_range)
  np.testing.assert_allclose(got, want, rtol=1e-9)
  # The regulariser is actually active in this batch.
  with jax.enable_x64(True):
    ce = crl.class_rectification_loss(
        jnp.array(logits), jnp.array(labels), features=jnp.array(feats), where=jnp.array(where),
        weights=jnp.array(weights), kind=kind, level=level, top_k=3, num_classes=num_classes,
        num_bins=31, histogram_range=hist_range, regularizer_weight=0.0)
  assert float(got) > float(ce)


def test_a_batch_of_zero_images_is_zero():
  """Issue 9, fault 4: a batch of zero images raised ZeroDivisionError; it is a fully masked batch."""
  for b, a, c in ((0, 2, 3), (4, 0, 3), (4, 2, 0)):
    logits, labels, feats = jnp.zeros((b, a, c)), jnp.zeros((b, a), int), jnp.zeros((b, a, 2))
    for kind in KINDS if b == 0 else ("relative",):
      f = lambda lo, fe: crl.class_rectification_loss(lo, labels, features=fe, kind=kind, top_k=2)
      value, grads = jax.value_and_grad(f, argnums=(0, 1))(logits, feats)
      if a and c:  # the reference on an empty batch: no image, no cross-entropy, no pair
        empty = ref_crl(np.zeros((b, a, c)), np.zeros((b, a), int), np.zeros((b, a, 2)),
                        np.zeros((b, a), bool), kind=kind, level="class", k=2, margins=[1.0] * a,
                        num_classes=(c,) * a)
        assert empty == 0.0
      assert float(value) == 0.0, (b, a, c, kind)
      assert all(not np.any(np.asarray(g)) for g in grads)


@hypothesis.settings(max_examples=4, deadline=None, derandomize=True)
@hypothesis.given(seed=st.integers(0, 2 ** 31 - 1), offset=st.integers(-2 ** 16, 2 ** 16))
def test_instance_level_loss_is_translation_invariant(seed, offset):
  # Features on a 1/8 grid with an offset up to 2^16: exact in float32; the reference sees the offset too.
  logits, labels, feats, _ = _permutation_case(seed)
  feats = np.round(np.asarray(feats) * 8) / 8 + offset
  f = functools.partial(crl.class_rectification_loss, kind="relative", level="instance", **COMMON)
  want = ref_crl(np.asarray(logits), np.asarray(labels), feats, np.ones((16, 2), bool), kind="relative",
                 level="instance", k=3, margins=[2 * math.pi / 3] * 2, num_classes=(3, 3), num_bins=21,
                 hist_range=(0.0, 4.0))
  np.testing.assert_allclose(f(logits, labels, features=jnp.asarray(feats, jnp.float32)), want, rtol=2e-5)


def test_per_image_where_and_leading_axes_reduce():
  rng = np.random.default_rng(5)
  batches = [imbalanced_batch(rng, b=16, a=2, c=3, d=2) for _ in range(3)]
  logits, labels, feats = (np.stack(x) for x in zip(*batches))
  where = rng.random((3, 16)) < 0.9  # per image
  where[2] = False  # a fully masked batch
  kw = dict(features=jnp.array(feats), where=jnp.array(where), top_k=2)
  per = crl.class_rectification_loss(jnp.array(logits), jnp.array(labels), reduce_fn=None, **kw)
  assert per.shape == (3,)
  for g in range(2):
    want = ref_crl(logits[g], labels[g], feats[g], np.repeat(where[g][:, None], 2, 1), kind="relative",
                   level="class", k=2, margins=[2 * math.pi / 3] * 2, num_classes=(3, 3))
    np.testing.assert_allclose(per[g], want, rtol=1e-5)
  assert float(per[2]) == 0.0
  mean = crl.class_rectification_loss(jnp.array(logits), jnp.array(labels), **kw)
  np.testing.assert_allclose(mean, (per[0] + per[1]) / 2, rtol=1e-6)
  total = crl.class_rectification_loss(jnp.array(logits), jnp.array(labels), reduce_fn=jnp.sum, **kw)
  np.testing.assert_allclose(total, per[0] + per[1], rtol=1e-6)


# (relative/instance: test_contract.py.)
@pytest.mark.parametrize("kind,level", [("absolute", "instance"), ("distribution", "class")])
def test_gradients_finite_differences(kind, level):
  rng = np.random.default_rng(6)
  logits, labels, feats = imbalanced_batch(rng, b=12, a=2, c=3, d=2)
  with jax.enable_x64(True):
    def f(lo, fe):
      return crl.class_rectification_loss(lo, jnp.array(labels), features=fe, kind=kind, level=level,
                                          top_k=2, histogram_range=(0.0, 4.0), num_bins=9)
    f_jit, grad_jit = jax.jit(f), jax.jit(jax.grad(f, argnums=(0, 1)))
    args = (jnp.array(logits), jnp.array(feats))
    grads = grad_jit(*args)
    assert np.any(np.asarray(grads[1]) != 0)  # the regulariser reaches the features
    eps = 1e-6
    for seed in range(3):  # central differences along random directions, in float64
      dirs = [jnp.array(np.random.default_rng(seed).normal(size=a.shape)) for a in args]
      plus = f_jit(*(a + eps * v for a, v in zip(args, dirs)))
      minus = f_jit(*(a - eps * v for a, v in zip(args, dirs)))
      numeric = (plus - minus) / (2 * eps)
      analytic = sum(jnp.vdot(g, v) for g, v in zip(grads, dirs))
      np.testing.assert_allclose(numeric, analytic, rtol=1e-6, atol=1e-8)


def _permutation_case(seed):
  rng = np.random.default_rng(seed)
  logits, labels, feats = imbalanced_batch(rng, b=16, a=2, c=3, d=2)
  return jnp.array(logits), jnp.array(labels), jnp.array(feats), rng.permutation(16)


# Shared options and shapes ([16, 2, 3] logits) so that tests reuse the compiled loss.
COMMON = dict(top_k=3, num_bins=21, histogram_range=(0.0, 4.0))


@hypothesis.settings(max_examples=12, deadline=None, derandomize=True)
@hypothesis.given(seed=st.integers(0, 2 ** 31 - 1),
                  kind_level=st.sampled_from([("relative", "instance"), ("absolute", "class"),
                                              ("distribution", "instance"), ("relative", "class")]))
def test_invariant_to_permuting_the_batch(seed, kind_level):
  kind, level = kind_level
  logits, labels, feats, perm = _permutation_case(seed)
  f = functools.partial(crl.class_rectification_loss, kind=kind, level=level, **COMMON)
  a = f(logits, labels, features=feats)
  b = f(logits[perm], labels[perm], features=feats[perm])
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_no_minority_class_gives_cross_entropy_only(kind):
  labels = jnp.array([0, 0, 0, 1, 1, 1])[:, None]  # balanced: no minority class
  logits = jnp.array(np.random.default_rng(7).normal(size=(6, 1, 2)))
  feats = jnp.array(np.random.default_rng(8).normal(size=(6, 1, 3)))
  f = lambda fe: crl.class_rectification_loss(logits, labels, features=fe, kind=kind)
  loss, g = jax.jit(jax.value_and_grad(f))(feats)
  z = np.asarray(logits[:, 0], np.float64)
  ce = np.mean([np.log(np.exp(z[i]).sum()) - z[i, labels[i, 0]] for i in range(6)])
  np.testing.assert_allclose(loss, ce, rtol=1e-6)
  assert np.all(np.asarray(g) == 0.0)


def test_instance_level_without_misclassified_positives():
  labels = jnp.array([0, 0, 0, 0, 0, 1, 1])[:, None]
  logits = jnp.where(jax.nn.one_hot(labels, 2) > 0, 5.0, 0.0)  # everything correctly classified
  feats = 0.5 * jnp.arange(7.0).reshape(7, 1, 1)
  ce = math.log(1.0 + math.exp(-5.0))
  # No positive pair: no triplet, so the relative CRL is 0.
  got = crl.class_rectification_loss(logits, labels, features=feats, level="instance", top_k=2)
  np.testing.assert_allclose(got, ce, rtol=1e-5)
  # Absolute comparison still has the negative pairs (eq. 11 averages each set on its own).
  got = crl.class_rectification_loss(logits, labels, features=feats, level="instance", kind="absolute",
                                     top_k=2)
  # Anchor 5 (x = 2.5): negatives at distances 0.5 and 1; anchor 6 (x = 3): 1 and 1.5 (m_apc = 1).
  np.testing.assert_allclose(got, ce + 0.5 * 0.5 ** 2 / 4, rtol=1e-5)


def test_nan_features_are_masked(kind="distribution", level="class"):
  rng = np.random.default_rng(9)
  logits, labels, feats = imbalanced_batch(rng, b=16, a=2, c=3, d=2)
  feats[3, 1, 0] = np.nan
  logits[5, 0, 1] = np.inf
  where = np.ones((16, 2), bool)
  where[3, 1] = where[5, 0] = False
  kw = dict(kind=kind, level=level, top_k=2, histogram_range=(0.0, 4.0))
  f = lambda lo, fe: crl.class_rectification_loss(lo, jnp.array(labels), features=fe, **kw)
  got, grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(jnp.array(logits), jnp.array(feats))
  clean_logits, clean_feats = logits.copy(), feats.copy()
  clean_feats[3, 1, 0] = 123.0
  clean_logits[5, 0, 1] = -7.0
  want = crl.class_rectification_loss(jnp.array(clean_logits), jnp.array(labels),
                                      features=jnp.array(clean_feats), where=jnp.array(where), **kw)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert all(np.all(np.isfinite(np.asarray(x))) for x in grads)


def test_duplicate_features_have_finite_gradients():
  labels = jnp.array([0, 0, 0, 0, 0, 1, 1])[:, None]
  logits = jnp.zeros((7, 1, 2))
  feats = jnp.zeros((7, 1, 2))  # every distance is 0
  for kind in ("relative", "absolute"):
    g = jax.jit(jax.grad(lambda fe: crl.class_rectification_loss(logits, labels, features=fe, kind=kind,
                                                                 level="instance")))(feats)
    assert np.all(np.isfinite(np.asarray(g)))


def test_shape_and_option_errors():
  logits, labels, feats = jnp.zeros((6, 2, 3)), jnp.zeros((6, 2), int), jnp.zeros((6, 2, 4))
  loss = crl.class_rectification_loss
  with pytest.raises(ValueError, match="labels"):
    loss(logits, jnp.zeros((6, 3), int), features=feats)
  with pytest.raises(ValueError, match="features"):
    loss(logits, labels, features=jnp.zeros((6, 4)))
  with pytest.raises(ValueError, match="logits"):
    loss(jnp.zeros((6, 3)), jnp.zeros((6,), int), features=jnp.zeros((6, 4)))
  with pytest.raises(TypeError, match="integer"):
    loss(logits, labels.astype(float), features=feats)
  with pytest.raises(ValueError, match="kind"):
    loss(logits, labels, features=feats, kind="quadruplet")
  with pytest.raises(ValueError, match="level"):
    loss(logits, labels, features=feats, level="batch")
  with pytest.raises(ValueError, match="num_classes"):
    loss(logits, labels, features=feats, num_classes=(3, 4))
  with pytest.raises(ValueError, match="margin"):
    loss(logits, labels, features=feats, kind="distribution", margin=1.0)
  with pytest.raises(ValueError, match="margin"):
    loss(logits, labels, features=feats, margin=(1.0, 2.0, 3.0))
  with pytest.raises(ValueError, match="where"):
    loss(logits, labels, features=feats, where=jnp.ones((5,), bool))
  with pytest.raises(TypeError, match="boolean"):
    loss(logits, labels, features=feats, where=jnp.ones((6,)))


def test_mining_under_vmap_matches_leading_axes():
  rng = np.random.default_rng(10)
  batches = [imbalanced_batch(rng, b=12, a=2, c=3, d=2) for _ in range(3)]
  logits, labels, feats = (jnp.array(np.stack(x)) for x in zip(*batches))
  m = jax.jit(jax.vmap(functools.partial(crl.class_level_hard_mining, top_k=2)))(
      jax.nn.softmax(logits[:, :, 0]), labels[:, :, 0])
  m2 = crl.class_level_hard_mining(jax.nn.softmax(logits[:, :, 0]), labels[:, :, 0], top_k=2)
  np.testing.assert_array_equal(m.positives * m.positive_mask, m2.positives * m2.positive_mask)
