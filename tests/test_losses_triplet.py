"""Tests of the sketch-retrieval losses (Song et al., BMVC 2016, eq. 1-6) against numpy loops and sklearn.

The generic checks of every loss and of fused_distance (jit, vmap, bfloat16 and integer inputs, masks,
one-item and zero-size inputs, float64 finite differences) are in test_contract.py.
"""

from __future__ import annotations

import json
import pathlib

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.metrics

from ranking_jax.losses import triplet

import testing_utils

DATA = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SETTINGS = hypothesis.settings(max_examples=25, deadline=None, derandomize=True)


triplet_ranking_loss = testing_utils.jitted(triplet.triplet_ranking_loss)
attribute_prediction_loss = testing_utils.jitted(triplet.attribute_prediction_loss)
attribute_similarity_loss = testing_utils.jitted(triplet.attribute_similarity_loss)
fused_distance = testing_utils.jitted(triplet.fused_distance)


# ---------------------------------------------------------------------------------------------------
# Independent numpy references written from the equations (float64, naive formulas).


def np_sigmoid(z):
  return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def np_sq_dist(a, b):
  return float(sum((x - y) ** 2 for x, y in zip(np.asarray(a, np.float64), np.asarray(b, np.float64))))


def np_triplet(a, p, n, margin):
  """Eq. 1: max(0, Delta + D(s, p+) - D(s, p-)), D squared Euclidean."""
  return np.array([max(0.0, margin + np_sq_dist(x, y) - np_sq_dist(x, z)) for x, y, z in zip(a, p, n)])


def np_bce(logits, targets):
  """Eq. 2 with the naive log formula: -(1/N) sum t log f + (1 - t) log(1 - f)."""
  f = np_sigmoid(logits)
  t = np.asarray(targets, np.float64)
  return -np.mean(t * np.log(f) + (1 - t) * np.log(1 - f), axis=-1)


def np_cross_entropy(a_logits, b_logits):
  """H(f(a), f(b)) = -(1/N) sum f(a) log f(b) + (1 - f(a)) log(1 - f(b))."""
  a, b = np_sigmoid(a_logits), np_sigmoid(b_logits)
  return -np.mean(a * np.log(b) + (1 - a) * np.log(1 - b), axis=-1)


def np_fused(sketch_f, photo_f, sketch_z, photo_z, weight):
  """Eq. 6 for every (sketch, photo) pair, double loop."""
  out = np.zeros((len(sketch_f), len(photo_f)))
  for q in range(len(sketch_f)):
    for g in range(len(photo_f)):
      out[q, g] = np_sq_dist(sketch_f[q], photo_f[g]) + weight * float(
          np_cross_entropy(sketch_z[q], photo_z[g]))
  return out


def make_batch(rng, triplets=6, dim=5, attributes=4):
  f = lambda *shape: rng.normal(size=shape).astype(np.float32)
  return dict(
      sketch=f(triplets, dim), positive=f(triplets, dim), negative=f(triplets, dim),
      sketch_logits=2 * f(triplets, attributes), positive_logits=2 * f(triplets, attributes),
      negative_logits=2 * f(triplets, attributes),
      sketch_attributes=(rng.random((triplets, attributes)) < 0.5).astype(np.float32),
      positive_attributes=(rng.random((triplets, attributes)) < 0.5).astype(np.float32),
      negative_attributes=(rng.random((triplets, attributes)) < 0.5).astype(np.float32))


# ---------------------------------------------------------------------------------------------------
# triplet_ranking_loss (eq. 1)


def test_triplet_ranking_matches_numpy_loop_with_masks_and_weights():
  rng = np.random.default_rng(0)
  a, p, n = (rng.normal(size=(8, 5)).astype(np.float32) for _ in range(3))
  where = rng.random(8) > 0.3
  weights = rng.random(8).astype(np.float32)
  want = np_triplet(a, p, n, 1.5)
  np.testing.assert_allclose(triplet_ranking_loss(a, p, n, margin=1.5, reduce_fn=None), want, rtol=1e-5)
  got = triplet_ranking_loss(a, p, n, margin=1.5, where=where, weights=weights)
  np.testing.assert_allclose(got, np.mean((want * weights)[where]), rtol=1e-5)
  got = triplet_ranking_loss(a, p, n, margin=1.5, where=where, reduce_fn=jnp.sum)
  np.testing.assert_allclose(got, np.sum(want[where]), rtol=1e-5)
  # Leading batch axes: [2, 4] triplets.
  got = triplet_ranking_loss(a.reshape(2, 4, 5), p.reshape(2, 4, 5), n.reshape(2, 4, 5), margin=1.5,
                             reduce_fn=None)
  np.testing.assert_allclose(got, want.reshape(2, 4), rtol=1e-5)


def test_triplet_ranking_on_real_qmul_shoe_triplets():
  path = DATA / "qmul_shoes" / "shoes_annotation.json"
  if not path.exists():
    pytest.skip("shared data absent")
  split = json.loads(path.read_text())["test"]
  rng = np.random.default_rng(1)
  images = rng.normal(size=(len(split["images"]), 16)).astype(np.float32)
  sketches = rng.normal(size=(len(split["sketches"]), 16)).astype(np.float32)
  index = np.array([(i, pos, neg) for i in range(10) for pos, neg in split["triplets"][i]])
  assert len(index) == 10 * 45  # 45 human triplets per test sketch
  s, p, n = sketches[index[:, 0]], images[index[:, 1]], images[index[:, 2]]
  np.testing.assert_allclose(triplet_ranking_loss(s, p, n), np.mean(np_triplet(s, p, n, 1.0)), rtol=1e-5)


def test_triplet_ranking_edge_cases():
  a = jnp.array([[0.0, 0.0], [0.0, jnp.nan], [1.0, 1.0]])
  p = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  n = jnp.array([[0.5, 0.0], [2.0, 0.0], [1.0, jnp.inf]])
  per_triplet = triplet_ranking_loss(a, p, n, reduce_fn=None)
  np.testing.assert_allclose(per_triplet, [1.75, 0.0, 0.0])  # non-finite triplets are masked
  np.testing.assert_allclose(triplet_ranking_loss(a, p, n), 1.75)  # mean over the valid one only
  grads = jax.jit(jax.grad(lambda *x: triplet.triplet_ranking_loss(*x), argnums=(0, 1, 2)))(a, p, n)
  for g in grads:
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g[1:]) == 0.0)
  none = jnp.zeros(3, bool)
  assert float(triplet_ranking_loss(a, p, n, where=none)) == 0.0
  grads = jax.grad(lambda x: triplet.triplet_ranking_loss(x, p, n, where=none))(a)
  assert np.all(np.asarray(grads) == 0.0)
  # One triplet, no batch axis.
  np.testing.assert_allclose(triplet_ranking_loss(a[0], p[0], n[0]), 1.75)


# ---------------------------------------------------------------------------------------------------
# attribute_prediction_loss (eq. 2)


def test_attribute_prediction_matches_sklearn_log_loss_and_numpy():
  rng = np.random.default_rng(2)
  logits = (3 * rng.normal(size=(5, 7))).astype(np.float32)
  targets = (rng.random((5, 7)) < 0.5).astype(np.float32)
  got = attribute_prediction_loss(logits, targets, reduce_fn=None)
  want = [sklearn.metrics.log_loss(t, np_sigmoid(z), labels=[0, 1]) for z, t in zip(logits, targets)]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(got, np_bce(logits, targets), rtol=1e-5)
  # Soft targets, masks and weights.
  soft = rng.random((5, 7)).astype(np.float32)
  where = rng.random((5, 7)) > 0.3
  where[0] = False
  weights = rng.random((5, 7)).astype(np.float32)
  got = attribute_prediction_loss(logits, soft, where=where, weights=weights, reduce_fn=None)
  f = np_sigmoid(logits)
  terms = -(soft * np.log(f) + (1 - soft) * np.log(1 - f)) * weights
  want = [terms[i][where[i]].sum() / max(where[i].sum(), 1) for i in range(5)]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(attribute_prediction_loss(logits, soft, where=where, weights=weights),
                             np.mean(want[1:]), rtol=1e-5)  # the sample without attributes is left out


def test_attribute_prediction_is_stable_for_saturated_logits():
  logits = jnp.array([[1e4, -1e4, 1e4, -1e4, 50.0]])
  targets = jnp.array([[1.0, 0.0, 0.0, 1.0, 1.0]])
  got = attribute_prediction_loss(logits, targets)
  np.testing.assert_allclose(got, (0 + 0 + 1e4 + 1e4 + np.log1p(np.exp(-50.0))) / 5, rtol=1e-6)
  grad = jax.grad(lambda z: triplet.attribute_prediction_loss(z, targets))(logits)
  np.testing.assert_allclose(grad, [[0.0, 0.0, 0.2, -0.2, 0.0]], atol=1e-7)
  nan = attribute_prediction_loss(jnp.array([[jnp.nan, 0.0]]), jnp.array([[1.0, 1.0]]))
  np.testing.assert_allclose(nan, np.log(2.0), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------
# attribute_similarity_loss (eq. 3-4)


def test_attribute_similarity_matches_numpy_loops():
  rng = np.random.default_rng(3)
  s, p, n = ((2 * rng.normal(size=(6, 4))).astype(np.float32) for _ in range(3))
  h_pos, h_neg = np_cross_entropy(s, p), np_cross_entropy(s, n)
  np.testing.assert_allclose(attribute_similarity_loss(s, p, reduce_fn=None), h_pos, rtol=1e-5)
  got = attribute_similarity_loss(s, p, n, margin=0.3, reduce_fn=None)
  np.testing.assert_allclose(got, np.maximum(0.0, 0.3 + h_pos - h_neg), rtol=1e-5, atol=1e-6)
  where = np.array([True, False, True, True, False, True])
  got = attribute_similarity_loss(s, p, where=where, weights=np.arange(6, dtype=np.float32))
  np.testing.assert_allclose(got, np.mean((h_pos * np.arange(6))[where]), rtol=1e-5)
  # H(a, a) is the entropy of a, not 0.
  f = np_sigmoid(s)
  entropy = -np.mean(f * np.log(f) + (1 - f) * np.log(1 - f), axis=-1)
  np.testing.assert_allclose(attribute_similarity_loss(s, s, reduce_fn=None), entropy, rtol=1e-5)


def test_attribute_similarity_saturated_and_nonfinite():
  s = jnp.array([[1e4, -1e4], [0.0, jnp.nan]])
  p = jnp.array([[-1e4, 1e4], [0.0, 0.0]])
  got = attribute_similarity_loss(s, p, reduce_fn=None)
  np.testing.assert_allclose(got, [1e4, 0.0], rtol=1e-6)
  grad = jax.grad(lambda x: triplet.attribute_similarity_loss(x, p))(s)
  assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad[1]) == 0.0)


# ---------------------------------------------------------------------------------------------------
# sbir_multitask_loss (eq. 5)


def np_multitask(batch, lambdas, margin=1.0, form="similarity", params=None):
  terms = {
      "triplet": np_triplet(batch["sketch"], batch["positive"], batch["negative"], margin).mean(),
      "sketch_attributes": np_bce(batch["sketch_logits"], batch["sketch_attributes"]).mean(),
      "positive_attributes": np_bce(batch["positive_logits"], batch["positive_attributes"]).mean(),
      "negative_attributes": np_bce(batch["negative_logits"], batch["negative_attributes"]).mean(),
      "weight_decay": 0.0 if params is None else sum(float(np.sum(np.square(x))) for x in params),
  }
  h_pos = np_cross_entropy(batch["sketch_logits"], batch["positive_logits"])
  h_neg = np_cross_entropy(batch["sketch_logits"], batch["negative_logits"])
  ranking = h_pos if form == "similarity" else np.maximum(0, margin + h_pos - h_neg)
  terms["attribute_ranking"] = ranking.mean()
  return sum(lambdas[k] * v for k, v in terms.items()), terms


def test_sbir_multitask_matches_numpy_composition():
  batch = make_batch(np.random.default_rng(4))
  params = {"w": np.ones((3, 2), np.float32), "b": np.full((2,), 2.0, np.float32)}
  paper = dict(triplet.SBIR_TASK_WEIGHTS)
  assert paper == {"triplet": 1.0, "attribute_ranking": 1.0, "sketch_attributes": 0.01,
                   "positive_attributes": 0.01, "negative_attributes": 0.01, "weight_decay": 0.0005}
  fn = jax.jit(lambda b, prm: triplet.sbir_multitask_loss(**b, params=prm))
  total, terms = fn(batch, params)
  want_total, want_terms = np_multitask(batch, paper, params=[params["w"], params["b"]])
  np.testing.assert_allclose(total, want_total, rtol=1e-5)
  assert set(terms) == set(want_terms)
  for k in terms:
    np.testing.assert_allclose(terms[k], want_terms[k], rtol=1e-5, atol=1e-7, err_msg=k)
  # Triplet form of the attribute ranking task (eq. 3), custom and traced task weights, no params.
  custom = {"attribute_ranking": 0.5, "negative_attributes": 0.0}
  fn = jax.jit(lambda b, w: triplet.sbir_multitask_loss(**b, task_weights=w, margin=2.0,
                                                        attribute_ranking="triplet"))
  total, terms = fn(batch, {k: jnp.float32(v) for k, v in custom.items()})
  want_total, want_terms = np_multitask(batch, {**paper, **custom}, margin=2.0, form="triplet")
  np.testing.assert_allclose(total, want_total, rtol=1e-5)
  np.testing.assert_allclose(terms["attribute_ranking"], want_terms["attribute_ranking"], rtol=1e-5,
                             atol=1e-7)
  assert float(terms["weight_decay"]) == 0.0


def test_sbir_multitask_masks_and_per_triplet_values():
  batch = make_batch(np.random.default_rng(5))
  batch["negative"][2, 0] = np.nan  # a broken triplet is dropped from every term
  where = np.array([True, True, True, False, True, True])
  attribute_where = np.ones((6, 4), bool)
  attribute_where[:, 3] = False
  fn = jax.jit(lambda b, w, aw: triplet.sbir_multitask_loss(**b, where=w, attribute_where=aw,
                                                            reduce_fn=None))
  total, terms = fn(batch, where, attribute_where)
  assert total.shape == (6,) and all(v.shape == (6,) for k, v in terms.items() if k != "weight_decay")
  keep = where & np.array([True, True, False, True, True, True])
  np.testing.assert_allclose(np.asarray(total)[~keep], 0.0)
  clean = {k: v[keep] for k, v in batch.items()}
  for name in ("sketch", "positive", "negative"):
    want = np_bce(clean[name + "_logits"][:, :3], clean[name + "_attributes"][:, :3])
    np.testing.assert_allclose(np.asarray(terms[name + "_attributes"])[keep], want, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(terms["triplet"])[keep],
                             np_triplet(clean["sketch"], clean["positive"], clean["negative"], 1.0),
                             rtol=1e-5)
  grads = jax.jit(jax.grad(lambda b: triplet.sbir_multitask_loss(**b, where=where)[0]))(batch)
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


def test_sbir_multitask_errors():
  batch = make_batch(np.random.default_rng(6))
  with pytest.raises(ValueError, match="Unknown task weight"):
    triplet.sbir_multitask_loss(**batch, task_weights={"lambda_a": 1.0})
  with pytest.raises(ValueError, match="attribute_ranking"):
    triplet.sbir_multitask_loss(**batch, attribute_ranking="contrastive")
  with pytest.raises(ValueError, match="weight decay"):
    triplet.sbir_multitask_loss(**batch, params={"w": jnp.ones(2)}, reduce_fn=None)
  bad = dict(batch, negative_logits=batch["negative_logits"][:5])
  with pytest.raises(ValueError, match="negative_logits"):
    triplet.sbir_multitask_loss(**bad)


# ---------------------------------------------------------------------------------------------------
# fused_distance (eq. 6)


def test_fused_distance_matches_numpy_double_loop():
  rng = np.random.default_rng(7)
  f = lambda *shape: rng.normal(size=shape).astype(np.float32)
  sketch_f, photo_f, sketch_z, photo_z = f(4, 6), f(9, 6), 2 * f(4, 3), 2 * f(9, 3)
  got = fused_distance(sketch_f, photo_f, sketch_z, photo_z, attribute_weight=0.7)
  np.testing.assert_allclose(got, np_fused(sketch_f, photo_f, sketch_z, photo_z, 0.7), rtol=1e-5, atol=1e-5)
  # Diagonal agrees with the training-time terms: D of eq. 1 and H of eq. 4.
  square = fused_distance(sketch_f, photo_f[:4], sketch_z, photo_z[:4], attribute_weight=1.0)
  d = jnp.sum((sketch_f - photo_f[:4]) ** 2, -1)
  h = triplet.attribute_similarity_loss(sketch_z, photo_z[:4], reduce_fn=None)
  np.testing.assert_allclose(jnp.diagonal(square), d + h, rtol=1e-5)
  # Leading batch axes broadcast.
  batched = fused_distance(np.stack([sketch_f, sketch_f + 1]), photo_f, np.stack([sketch_z, sketch_z]),
                           photo_z, attribute_weight=0.7)
  assert batched.shape == (2, 4, 9)
  np.testing.assert_allclose(batched[1], np_fused(sketch_f + 1, photo_f, sketch_z, photo_z, 0.7),
                             rtol=1e-5, atol=1e-5)


def test_fused_distance_nonfinite_and_errors():
  sketch_f = jnp.array([[0.0, 0.0], [jnp.nan, 0.0]])
  photo_f = jnp.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
  sketch_z, photo_z = jnp.zeros((2, 1)), jnp.zeros((3, 1)).at[2, 0].set(jnp.inf)
  got = np.asarray(fused_distance(sketch_f, photo_f, sketch_z, photo_z, attribute_weight=0.0))
  np.testing.assert_allclose(got[0, :2], [1.0, 4.0])
  assert np.all(np.isinf(got[1])) and np.isinf(got[0, 2])
  grad = jax.grad(lambda f: jnp.sum(jnp.where(jnp.isfinite(got), triplet.fused_distance(
      f, photo_f, sketch_z, photo_z), 0.0)))(sketch_f)
  assert np.all(np.isfinite(grad))
  with pytest.raises(ValueError, match="Feature sizes"):
    triplet.fused_distance(sketch_f, jnp.zeros((3, 5)), sketch_z, photo_z)
  with pytest.raises(ValueError, match="Attribute counts"):
    triplet.fused_distance(sketch_f, photo_f, sketch_z, jnp.zeros((3, 2)))
  with pytest.raises(ValueError, match="at least 2"):
    triplet.fused_distance(sketch_f[0], photo_f, sketch_z, photo_z)


def test_fused_distance_does_not_cancel_far_from_the_origin():
  """Issue 9, fault 5: ||a||^2 + ||b||^2 - 2 a.b in float32 gave 0 instead of 109^2 = 11881."""
  got = fused_distance(np.array([[512695.0]], np.float32), np.array([[512804.0], [512695.0]], np.float32),
                       np.zeros((1, 1), np.float32), np.zeros((2, 1), np.float32), attribute_weight=0.0)
  np.testing.assert_array_equal(got, [[109 ** 2, 0]])  # exact integer arithmetic; zero self-distance
  # The difference form of the training loss (eq. 1) agrees at test time.
  a, p = np.array([[512695.0, 3.0]], np.float32), np.array([[512804.0, 5.0]], np.float32)
  d = fused_distance(a, p, np.zeros((1, 1)), np.zeros((1, 1)), attribute_weight=0.0)[0, 0]
  assert float(d) == 109 ** 2 + 4 == float(triplet_ranking_loss(a, p, a, margin=0.0, reduce_fn=None)[0])


_JIT_FUSED = jax.jit(lambda s, p, zs, zp: triplet.fused_distance(s, p, zs, zp, attribute_weight=0.7))


@SETTINGS
@hypothesis.given(sketches=hnp.arrays(np.float32, (3, 4), elements=st.integers(-8, 8).map(float)),
                  photos=hnp.arrays(np.float32, (5, 4), elements=st.integers(-8, 8).map(float)),
                  offset=hnp.arrays(np.float32, (4,), elements=st.integers(-2 ** 20, 2 ** 20).map(float)))
def test_fused_distance_is_translation_invariant(sketches, photos, offset):
  # Integer features with an offset up to 2^20 are exact in float32: the distances must be too.
  logits = np.linspace(-2, 2, 3 * 2, dtype=np.float32).reshape(3, 2)
  photo_logits = np.linspace(2, -2, 5 * 2, dtype=np.float32).reshape(5, 2)
  want = np_fused(sketches, photos, logits, photo_logits, 0.7)  # float64, difference form
  np.testing.assert_allclose(_JIT_FUSED(sketches, photos, logits, photo_logits), want, rtol=1e-6, atol=1e-5)
  np.testing.assert_allclose(_JIT_FUSED(sketches + offset, photos + offset, logits, photo_logits), want,
                             rtol=1e-6, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# Shared: shapes and invariances.


def test_wrong_shapes_raise():
  x = jnp.zeros((3, 4))
  with pytest.raises(ValueError, match="same shape"):
    triplet.triplet_ranking_loss(x, x, jnp.zeros((3, 5)))
  with pytest.raises(ValueError, match="same shape"):
    triplet.attribute_prediction_loss(x, jnp.zeros((4, 3)))
  with pytest.raises(ValueError, match="same shape"):
    triplet.attribute_similarity_loss(x, x, jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match="at least 1"):
    triplet.triplet_ranking_loss(jnp.float32(0), jnp.float32(0), jnp.float32(0))
  with pytest.raises(ValueError, match="broadcast"):
    triplet.triplet_ranking_loss(x, x, x, where=jnp.ones(4, bool))
  with pytest.raises(TypeError, match="boolean"):
    triplet.triplet_ranking_loss(x, x, x, where=jnp.ones(3))


_JIT_TRIPLET = jax.jit(lambda a, p, n: triplet.triplet_ranking_loss(a, p, n, margin=0.5))
_JIT_PREDICTION = jax.jit(triplet.attribute_prediction_loss)
_JIT_SIMILARITY = jax.jit(lambda a, p, n: triplet.attribute_similarity_loss(a, p, n, margin=0.5))
_floats = st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False, width=32)


@SETTINGS
@hypothesis.given(features=hnp.arrays(np.float32, (3, 5, 4), elements=_floats),
                  logits=hnp.arrays(np.float32, (3, 5, 4), elements=_floats),
                  triplet_order=st.permutations(range(5)), feature_order=st.permutations(range(4)),
                  shift=hnp.arrays(np.float32, (4,), elements=_floats))
def test_invariances(features, logits, triplet_order, feature_order, shift):
  a, p, n = features
  base = _JIT_TRIPLET(a, p, n)
  # Reordering the triplets of a batch, or the feature dimensions, leaves the mean loss unchanged.
  np.testing.assert_allclose(_JIT_TRIPLET(a[triplet_order], p[triplet_order], n[triplet_order]), base,
                             rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(_JIT_TRIPLET(a[:, feature_order], p[:, feature_order], n[:, feature_order]),
                             base, rtol=1e-5, atol=1e-4)
  # Squared Euclidean distances are translation invariant.
  np.testing.assert_allclose(_JIT_TRIPLET(a + shift, p + shift, n + shift), base, rtol=1e-4, atol=1e-3)
  # Attribute losses do not depend on the order of the attributes.
  s, q, r = logits
  targets = (features[0] > 0).astype(np.float32)
  np.testing.assert_allclose(_JIT_PREDICTION(s[:, feature_order], targets[:, feature_order]),
                             _JIT_PREDICTION(s, targets), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(_JIT_SIMILARITY(s[:, feature_order], q[:, feature_order], r[:, feature_order]),
                             _JIT_SIMILARITY(s, q, r), rtol=1e-5, atol=1e-6)
