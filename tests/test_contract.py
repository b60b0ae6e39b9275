"""One contract test over every public loss, rank function and pairwise distance (in the style of rax's
``rax/_src/losses_test.py``).

Every public function of :mod:`ranking_jax.losses` and :mod:`ranking_jax.ranks` (and ``fused_distance``,
``utils.squared_distances``, and the rank_fns of the learned sorters) must, on tiny inputs:

* run under ``jax.jit`` and ``jax.vmap`` (vmap over two stacked problems equals them one by one);
* accept bfloat16 and int32 inputs and compute in float32: the values of the float32 inputs, which are
  integer-valued, hence exact in both;
* give a fully masked list the value 0 with zero gradients, and a list with one valid item and lists of
  one item finite values and gradients;
* treat NaN and +inf inputs as masked: finite values, and zero gradient at those entries;
* give a zero-size list or batch axis the value of a fully masked one (0, zero gradients of the inputs'
  shapes), also as a hypothesis property over zero-size shapes with an extra leading axis;
* have gradients that match float64 central finite differences on a tiny input;
* (losses) give finite values and gradients for extreme finite inputs, up to the float32, bfloat16 and
  float64 maxima (a hypothesis property; issue 29, item 9);
* (rank functions, the sorters' rank_fns included) share ties and give an all-equal list of m items the
  tie value (m + 1) / 2, so a one-item list ranks 1 (a hypothesis property; issue 29, item 4).

The per-file tests keep the equation-specific reference checks. To stay fast, all float32 checks of one
function run in ONE jitted program (one compilation), the float64 finite differences in a second one.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import hypothesis
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from ranking_jax import losses
from ranking_jax import ranks
from ranking_jax import sorters
from ranking_jax import utils

L, N = 4, 5  # lists per batch and items per list of the main case
FD_EPS = 1e-6
# Tiny inputs: compilation dominates. Without LLVM's optimisations and XLA's MLIR fusion emitters it is
# about 3x faster (same values, the HLO passes still run).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                "xla_cpu_use_fusion_emitters": False}
jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE)


# ----------------------------------------------------------------------------------------------------------
# Specs: how to build tiny inputs for each public function and call it in the common form.


@dataclasses.dataclass(frozen=True)
class Spec:
  """``make(rng, (lists, items)) -> (args, static)``: ``args`` are the differentiable float inputs (a tuple of
  numpy arrays with leading shape ``(lists, items)``), ``static`` a dict of other array inputs (labels).
  ``call(args, static, where, reduce_fn)`` evaluates the function with ``where`` of shape ``(lists, items)``.
  """
  name: str
  make: Callable[[np.random.Generator, tuple], tuple]
  call: Callable[..., Any]
  fn: Callable[..., Any]  # the public function covered (for the completeness check)
  random: bool = False  # draws depend on the list's position: vmap a copy, not the reversed batch


def _binary(rng, shape):
  labels = (rng.random(shape) < 0.5).astype(np.float32)
  if shape[-1] >= 2:  # a positive and a negative in every list
    labels[..., 0], labels[..., 1] = 1.0, 0.0
  return labels


def _scores(rng, shape, scale=1.0):
  return (scale * rng.normal(size=shape)).astype(np.float32)


def _listwise(name, fn, labels="float", random=False, **options):
  """A loss ``fn(scores, labels, *, where, reduce_fn, **options)`` with lists on the last axis."""

  def make(rng, shape):
    if labels == "float":
      static = {"labels": rng.normal(size=shape).astype(np.float32)}
    elif labels == "binary":
      static = {"labels": _binary(rng, shape)}
    else:  # boolean relevance
      static = {"labels": _binary(rng, shape) > 0}
    return (_scores(rng, shape, 0.5),), static

  def call(args, static, where, reduce_fn):
    return fn(args[0], static["labels"], where=where, reduce_fn=reduce_fn, **options)

  return Spec(name, make, call, fn, random)


def _features(rng, shape, dim):
  return _scores(rng, shape + (dim,))


def _triplet_ranking():
  def make(rng, shape):
    anchor = _features(rng, shape, 3)
    return (anchor, anchor + 0.3 * _features(rng, shape, 3), anchor + 0.6 * _features(rng, shape, 3)), {}

  def call(args, static, where, reduce_fn):
    return losses.triplet_ranking_loss(*args, margin=0.5, where=where, reduce_fn=reduce_fn)

  return Spec("triplet_ranking_loss", make, call, losses.triplet_ranking_loss)


def _attribute_similarity(triplet_form):
  def make(rng, shape):
    return tuple(2 * _features(rng, shape, 3) for _ in range(3 if triplet_form else 2)), {}

  def call(args, static, where, reduce_fn):
    return losses.attribute_similarity_loss(*args, margin=0.3, where=where, reduce_fn=reduce_fn)

  name = "attribute_similarity_loss" + ("_triplet" if triplet_form else "")
  return Spec(name, make, call, losses.attribute_similarity_loss)


def _attribute_prediction():
  def make(rng, shape):
    return (2 * _scores(rng, shape),), {"attributes": _binary(rng, shape)}

  def call(args, static, where, reduce_fn):
    return losses.attribute_prediction_loss(args[0], static["attributes"], where=where, reduce_fn=reduce_fn)

  return Spec("attribute_prediction_loss", make, call, losses.attribute_prediction_loss)


def _sbir_multitask():
  def make(rng, shape):
    sketch = _features(rng, shape, 3)
    args = (sketch, sketch + 0.3 * _features(rng, shape, 3), sketch + 0.6 * _features(rng, shape, 3),
            *(2 * _features(rng, shape, 2) for _ in range(3)))
    static = {k: _binary(rng, shape + (2,)) for k in ("sketch", "positive", "negative")}
    return args, static

  def call(args, static, where, reduce_fn):
    sketch, positive, negative, sketch_logits, positive_logits, negative_logits = args
    total, _ = losses.sbir_multitask_loss(
        sketch, positive, negative, sketch_logits=sketch_logits, positive_logits=positive_logits,
        negative_logits=negative_logits, sketch_attributes=static["sketch"],
        positive_attributes=static["positive"], negative_attributes=static["negative"], margin=0.5,
        where=where, reduce_fn=reduce_fn)
    return total

  return Spec("sbir_multitask_loss", make, call, losses.sbir_multitask_loss)


def _distance_pair(name, fn, **options):
  """``fn(positive_distances, negative_distances, ...)`` on ``[lists, items]`` distances."""

  def make(rng, shape):
    return (np.abs(_scores(rng, shape)) + 0.2, np.abs(_scores(rng, shape)) + 0.4), {}

  def call(args, static, where, reduce_fn):
    if fn is losses.histogram_loss:
      return fn(*args, positive_where=where, negative_where=where, reduce_fn=reduce_fn, **options)
    return fn(*args, where=where, reduce_fn=reduce_fn, **options)

  return Spec(name, make, call, fn)


def _contrastive():
  def make(rng, shape):
    return (np.abs(_scores(rng, shape)) + 0.1,), {"similar": _binary(rng, shape) > 0}

  def call(args, static, where, reduce_fn):
    return losses.contrastive_loss(args[0], static["similar"], margin=1.5, where=where, reduce_fn=reduce_fn)

  return Spec("contrastive_loss", make, call, losses.contrastive_loss)


def _class_rectification(kind, level):
  def make(rng, shape):
    lists, batch = shape
    # Skewed labels so that every batch of >= 5 images has a minority class with two samples.
    pattern = np.array([0, 0, 0, 1, 1, 0, 2, 0])
    labels = np.stack([np.resize(np.roll(pattern, a), batch) for a in range(2)], axis=-1)
    labels = np.broadcast_to(labels, (lists, batch, 2)).astype(np.int32)
    return (2 * _features(rng, shape + (2,), 3), 0.5 * _features(rng, shape + (2,), 2)), {"labels": labels}

  def call(args, static, where, reduce_fn):
    return losses.class_rectification_loss(args[0], static["labels"], features=args[1], where=where,
                                           reduce_fn=reduce_fn, kind=kind, level=level, top_k=2,
                                           num_bins=9, histogram_range=(0.0, 4.0))

  return Spec(f"class_rectification_loss_{kind}_{level}", make, call, losses.class_rectification_loss)


LOSS_SPECS = [
    _listwise("kendall_rank_loss", losses.kendall_rank_loss),
    _listwise("mse_loss", losses.mse_loss),
    _listwise("multilabel_softmax_loss", losses.multilabel_softmax_loss, labels="binary"),
    _listwise("pairwise_ranking_loss", losses.pairwise_ranking_loss, labels="binary"),
    _listwise("warp_loss_exact", losses.warp_loss_exact, labels="binary"),
    _listwise("warp_loss", functools.partial(losses.warp_loss, key=jax.random.key(0)), labels="binary",
              random=True),
    _listwise("warp_loss_single_violator", functools.partial(losses.warp_loss_single_violator,
                                                             key=jax.random.key(0)),
              labels="binary", random=True),
    _listwise("spearman_loss", losses.spearman_loss),
    _listwise("map_rank_loss", losses.map_rank_loss, labels="binary"),
    _listwise("map_rank_loss_normalized", losses.map_rank_loss, labels="binary", form="normalized_rank_sum"),
    _listwise("map_rank_loss_ap", losses.map_rank_loss, labels="binary", form="average_precision"),
    _listwise("recall_rank_loss", losses.recall_rank_loss, labels="bool", k=2),
    _triplet_ranking(),
    _attribute_prediction(),
    _attribute_similarity(triplet_form=False),
    _attribute_similarity(triplet_form=True),
    _sbir_multitask(),
    _distance_pair("triplet_margin_loss", losses.triplet_margin_loss, margin=0.5),
    _contrastive(),
    _distance_pair("histogram_loss", losses.histogram_loss, num_bins=11, value_range=(0.0, 3.0)),
    _class_rectification("relative", "instance"),  # the other kinds: test_losses_rectification.py
]
if "hinge_ap_loss" in losses.__all__:
  LOSS_SPECS.append(_listwise("hinge_ap_loss", losses.hinge_ap_loss, labels="binary"))
LOSS_SPECS = {spec.name: spec for spec in LOSS_SPECS}

# Public names of ranking_jax.losses that are not losses of the common form, and where they are tested.
NOT_LOSSES = {
    "pairs": "module", "pairwise_row_sums": "test_losses_pairs.py", "pairwise_sum": "test_losses_pairs.py",
    "HardMining": "a result type", "SBIR_TASK_WEIGHTS": "a constant",
    "minority_classes": "test_losses_rectification.py (selection, not a loss)",
    "class_level_hard_mining": "test_losses_rectification.py (selection, not a loss)",
    "instance_level_hard_mining": "test_losses_rectification.py (selection, not a loss)",
    "fused_distance": "DISTANCE_SPECS below", "tie_averaged_ranks": "RANK_SPECS below",
}


def test_every_public_loss_has_a_contract_spec():
  covered = {spec.fn.func if isinstance(spec.fn, functools.partial) else spec.fn
             for spec in LOSS_SPECS.values()}
  for name in losses.__all__:
    if name not in NOT_LOSSES:
      assert getattr(losses, name) in covered, f"losses.{name} has no contract spec in {__file__}"


# ----------------------------------------------------------------------------------------------------------
# The float32 program: every check of one spec in one compilation.
#
# The main case has integer-valued inputs, so that its bfloat16 and int32 copies are exact and compare with
# it directly. Its lists: 0 ordinary, 1 fully masked, 2 one valid item, 3 a NaN and a +inf item.


def _main_case(spec: Spec, shape=(L, N)):
  rng = np.random.default_rng(sum(map(ord, spec.name)))
  args, static = spec.make(rng, shape)
  args = tuple(np.round(4 * a) for a in args)
  where = np.ones(shape, bool)
  where[1] = False
  where[2, 1:] = False
  first = args[0].copy()
  first[3, 0], first[3, 1] = np.nan, np.inf
  return (first,) + args[1:], static, where


def _one_item_case(spec: Spec):
  args, static = spec.make(np.random.default_rng(1), (L, 1))
  return tuple(np.round(4 * a) for a in args), static, np.ones((L, 1), bool)


def _reverse_lists(case):
  return jax.tree.map(lambda x: x[::-1], case)


@functools.lru_cache(maxsize=None)
def _results(name: str):
  spec = LOSS_SPECS[name]
  values_fn = lambda args, static, where: spec.call(args, static, where, None)
  # The gradient of the sum of the per-list values is that of reduce_fn=jnp.sum: one trace for both.
  def sum_and_values(*case):
    values = values_fn(*case)
    return jnp.sum(values), values

  values_and_grad = jax.value_and_grad(sum_and_values, has_aux=True)
  mean_and_grad = jax.value_and_grad(lambda args, static, where: spec.call(args, static, where, jnp.mean))

  @jit
  def program(cases):
    out = {}
    for key in ("main", "one_item"):
      (_, values), grads = values_and_grad(*cases[key])
      out[key] = values, grads
    out["bf16"] = values_fn(*cases["bf16"])
    # vmap over two stacked int32 problems (the batch and its lists reversed) must equal them one by one.
    second = cases["int"] if spec.random else _reverse_lists(cases["int"])
    out["vmap_int"] = jax.vmap(values_fn)(*jax.tree.map(lambda a, b: jnp.stack([a, b]), cases["int"], second))
    for key in ("empty_batch", "empty_list"):  # reduced with jnp.mean: 0, never 0/0
      out[key] = mean_and_grad(*cases[key])
    return out

  args, static, where = _main_case(spec)
  clean = tuple(np.nan_to_num(a, posinf=0.0) for a in args)
  cases = {"main": (args, static, where),
           "bf16": (tuple(jnp.asarray(a, jnp.bfloat16) for a in args), static, where),
           "int": (tuple(a.astype(np.int32) for a in clean), static, where),
           "one_item": _one_item_case(spec)}
  for key, shape in (("empty_batch", (0, N)), ("empty_list", (L, 0))):
    zero_args, zero_static = spec.make(np.random.default_rng(0), shape)
    cases[key] = (zero_args, zero_static, np.ones(shape, bool))
  return cases, jax.device_get(program(cases))


def _assert_finite(tree, what):
  for leaf in jax.tree.leaves(tree):
    assert np.all(np.isfinite(np.asarray(leaf, np.float64))), what


@pytest.mark.parametrize("name", sorted(LOSS_SPECS))
def test_loss_contract(name):
  cases, out = _results(name)
  values, grads = out["main"]
  _assert_finite((values, grads), "main: non-finite value or gradient")
  assert values.dtype == np.float32 and values.shape[:2] == (L, N)[:values.ndim]
  # List 1 is fully masked: value 0 and no gradient. List 2 (one valid item) is finite (checked above).
  np.testing.assert_array_equal(values[1], 0.0, err_msg="fully masked list")
  for g in grads:
    np.testing.assert_array_equal(g[1], 0.0, err_msg="fully masked list gradient")
  # List 3: NaN and +inf count as masked: zero gradient there.
  np.testing.assert_array_equal(grads[0][3, :2], 0.0, err_msg="gradient at NaN/inf input")
  # bfloat16 (exact copies of the inputs): computed in float32 (gradients take the inputs' dtype in JAX).
  assert out["bf16"].dtype == np.float32
  np.testing.assert_allclose(out["bf16"], values, rtol=1e-6, atol=1e-6, err_msg="bfloat16")
  # int32 copies under vmap, stacked with their lists reversed: the values of lists 0-2 (3 had NaN/inf).
  first, second = out["vmap_int"]
  assert first.dtype == np.float32
  np.testing.assert_allclose(first[:3], values[:3], rtol=1e-5, atol=1e-6, err_msg="int32 inputs, vmap")
  random = LOSS_SPECS[name].random  # a random loss is stacked with a copy: the reversed one would draw anew
  np.testing.assert_allclose(second[:3] if random else second[1:], values[:3] if random else values[2::-1],
                             rtol=1e-5, atol=1e-6, err_msg="vmap of the reversed batch")
  # One-item lists: finite values and gradients.
  _assert_finite(out["one_item"], "one-item lists")
  # Zero-size batch or list axis: the fully masked value, 0 with zero gradients of the inputs' shapes.
  for key in ("empty_batch", "empty_list"):
    loss, empty_grads = out[key]
    assert float(loss) == 0.0, key
    for g, a in zip(empty_grads, cases[key][0]):
      assert g.shape == a.shape and not np.any(g), key


# ----------------------------------------------------------------------------------------------------------
# Zero-size axes, as a hypothesis property over extra leading axes: any zero-size batch gives 0.


@hypothesis.settings(max_examples=6, deadline=None, derandomize=True)
@hypothesis.given(name=st.sampled_from(sorted(LOSS_SPECS)),
                  shape=st.sampled_from([(2, 0, N), (0, 3, N), (3, 2, 0)]))
def test_zero_size_axes_give_the_fully_masked_value(name, shape):
  spec = LOSS_SPECS[name]
  args, static = spec.make(np.random.default_rng(0), shape[1:])
  args, static = jax.tree.map(lambda x: np.broadcast_to(x, shape[:1] + x.shape), (args, static))
  where = np.ones(shape, bool)
  loss, grads = jit(jax.value_and_grad(lambda a: spec.call(a, static, where, jnp.mean)))(args)
  assert float(loss) == 0.0, (name, shape)
  for g, a in zip(grads, args):
    assert g.shape == a.shape and not np.any(g), (name, shape)


# ----------------------------------------------------------------------------------------------------------
# Extreme finite inputs (issue 29, item 9): values up to the float32 (bfloat16) maximum, mixed with
# ordinary ones, in every float input (scores, float labels, features, logits, distances) give finite
# values and finite gradients: differences, squares and sums used to overflow to inf, then NaN (inf - inf,
# 0 * inf). Losses saturate at utils.magnitude_bound instead (README, "Non-finite inputs").

EXTREME_SPECS = {**LOSS_SPECS, **{spec.name: spec for spec in (
    _class_rectification(kind, level) for kind in ("relative", "absolute", "distribution")
    for level in ("class", "instance")) if spec.name not in LOSS_SPECS}}
_EXTREMES = np.array([3.4028235e38, 3e38, 1e38, 1e30, 2.0 ** 60, 1e15, 1.0, 0.5, 0.0, 1e-30], np.float32)


def _extreme(rng, x, dtype):
  """``x``'s shape, each entry an extreme or ordinary value of random sign, representable in ``dtype``."""
  values = rng.choice(_EXTREMES, size=np.shape(x)) * rng.choice([-1.0, 1.0], size=np.shape(x))
  top = float(jnp.finfo(dtype).max)
  return jnp.asarray(np.clip(values, -top, top).astype(np.float32), dtype)


@functools.lru_cache(maxsize=None)
def _extreme_program(name: str):
  spec = EXTREME_SPECS[name]
  fn = lambda args, static, where: spec.call(args, static, where, jnp.mean)
  # float32 and bfloat16 inputs in one compilation.
  return jit(lambda a32, s32, a16, s16, where: (jax.value_and_grad(fn)(a32, s32, where),
                                                jax.value_and_grad(fn)(a16, s16, where)))


@pytest.mark.parametrize("name", sorted(EXTREME_SPECS))
def test_losses_are_finite_for_extreme_finite_inputs(name):
  spec = EXTREME_SPECS[name]
  args, static = spec.make(np.random.default_rng(0), (2, N))
  program = _extreme_program(name)
  where = np.ones((2, N), bool)

  @hypothesis.settings(max_examples=6, deadline=None, derandomize=True)
  @hypothesis.given(st.integers(0, 2 ** 32 - 1))
  def check(seed):
    rng = np.random.default_rng(seed)
    inputs = {}
    for dtype in (jnp.float32, jnp.bfloat16):
      # Float labels (not 0/1 relevance, not class ids or boolean masks) take extreme values too.
      extreme_static = {k: _extreme(rng, v, dtype) if v.dtype == np.float32 and np.any((v != 0) & (v != 1))
                        else v for k, v in static.items()}
      inputs[dtype] = (tuple(_extreme(rng, a, dtype) for a in args), extreme_static)
    (v32, g32), (v16, g16) = jax.device_get(program(*inputs[jnp.float32], *inputs[jnp.bfloat16], where))
    for what, tree in (("float32 value", v32), ("float32 gradient", g32), ("bfloat16 value", v16),
                       ("bfloat16 gradient", g16)):
      _assert_finite(tree, f"{name}: {what} not finite for extreme finite inputs (seed {seed})")

  check()


@pytest.mark.parametrize("name", sorted(EXTREME_SPECS))
def test_losses_are_finite_for_extreme_finite_float64_inputs(name):
  """The same in float64 (bound 2**496), up to the float64 maximum, on one draw."""
  spec = EXTREME_SPECS[name]
  with jax.enable_x64(True):
    args, static = spec.make(np.random.default_rng(0), (2, N))
    rng = np.random.default_rng(1)
    pool = np.array([np.finfo(np.float64).max, 1e300, 1e200, 1e30, 1.0, 0.0])
    draw = lambda x: jnp.asarray(rng.choice(pool, size=np.shape(x)) * rng.choice([-1.0, 1.0], np.shape(x)))
    args = tuple(draw(a) for a in args)
    static = {k: draw(v) if v.dtype == np.float32 and np.any((v != 0) & (v != 1)) else v
              for k, v in static.items()}
    value, grads = jit(jax.value_and_grad(lambda a: spec.call(a, static, np.ones((2, N), bool), jnp.mean)))(args)
    assert value.dtype == jnp.float64
    _assert_finite((value, grads), f"{name}: float64 value or gradient not finite")


# ----------------------------------------------------------------------------------------------------------
# float64 finite differences on a tiny input (central differences along random directions).


def _check_finite_differences(fn, args, *, rtol=1e-5, atol=1e-7, num_directions=3, seed=0):
  """``fn(args) -> scalar`` in float64: gradient . v against (f(x + eps v) - f(x - eps v)) / (2 eps)."""
  rng = np.random.default_rng(seed)
  directions = [tuple(rng.normal(size=a.shape) for a in args) for _ in range(num_directions)]
  stacked = tuple(np.stack([d[i] for d in directions]) for i in range(len(args)))

  @jit
  def program(args, directions):
    # One vmapped evaluation at the 2 k points x + eps v and x - eps v.
    signs = jnp.repeat(jnp.array([1.0, -1.0]), num_directions)
    points = jax.vmap(lambda sign, *d: tuple(a + sign * FD_EPS * v for a, v in zip(args, d)))(
        signs, *(jnp.concatenate([d, d]) for d in directions))
    return jax.grad(fn)(args), jax.vmap(fn)(points)

  grad, shifted = jax.device_get(program(args, stacked))
  plus, minus = shifted[:num_directions], shifted[num_directions:]
  numeric = (plus - minus) / (2 * FD_EPS)
  analytic = [sum(float(np.vdot(g, d[i])) for i, g in enumerate(grad)) for d in directions]
  np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)
  return grad


@pytest.mark.parametrize("name", sorted(LOSS_SPECS))
def test_loss_gradients_match_float64_finite_differences(name):
  spec = LOSS_SPECS[name]
  with jax.enable_x64(True):
    args, static = spec.make(np.random.default_rng(1), (2, N))
    args = tuple(jnp.asarray(a, jnp.float64) for a in args)
    where = np.ones((2, N), bool)
    where[1, 2] = False
    fn = lambda a: spec.call(a, static, where, jnp.mean)
    grad = _check_finite_differences(fn, args)
    assert any(np.any(g != 0) for g in grad), "the gradient should not vanish on this input"


# ----------------------------------------------------------------------------------------------------------
# Rank functions: the same contract, plus masked items rank 0 and a lone item ranks 1.


def _sorter(module, length):
  """A learned sorter's rank_fn with random weights (the contract does not depend on training)."""
  x = jnp.linspace(-1.0, 1.0, 4 * length).reshape(4, length)
  return sorters.SorterRankFn(module, module.init(jax.random.key(0), x, jnp.ones(x.shape, bool)),
                              max_length=length)


RANK_SPECS = {
    "hard_ranks": (ranks.hard_ranks, False),
    "tie_averaged_ranks": (ranks.tie_averaged_ranks, False),
    "sigmoid_ranks": (ranks.sigmoid_ranks, True),
    "sigmoid_ranks_standardized": (functools.partial(ranks.sigmoid_ranks, standardize=True), True),
    "soft_ranks_l2": (functools.partial(ranks.soft_ranks, regularization_strength=0.5), True),
    "soft_ranks_kl": (functools.partial(ranks.soft_ranks, regularization="kl"), True),
    "soft_sort": (functools.partial(ranks.soft_sort, regularization_strength=0.5), True),
    # The sorters' rank_fns (ranking_jax.sorters) that serve any length, tiny and random (the shipped
    # lstm_h64_d100 runs the same code; it is in TIE_SPECS below and in test_sorters.py).
    "sorter_lstm": (_sorter(sorters.LSTMSorter(hidden_size=4, num_layers=1), 8), True),
    "sorter_pairwise": (_sorter(sorters.PairwiseSorter(hidden=(4,)), 8), True),
}


def test_every_public_rank_function_has_a_contract_spec():
  covered = {fn.func if isinstance(fn, functools.partial) else fn for fn, _ in RANK_SPECS.values()}
  for name in ("hard_ranks", "tie_averaged_ranks", "sigmoid_ranks", "soft_ranks", "soft_sort"):
    assert getattr(ranks, name) in covered, name


@functools.lru_cache(maxsize=None)
def _rank_results(name: str):
  fn, _ = RANK_SPECS[name]
  rng = np.random.default_rng(sum(map(ord, name)))
  # Integer-valued scores: their bfloat16 and int32 copies are exact.
  scores = rng.integers(-20, 21, size=(L, N)).astype(np.float32)
  scores[3, 0], scores[3, 1] = np.nan, np.inf
  where = np.ones((L, N), bool)
  where[1] = False
  where[2, 1:] = False
  weights = rng.normal(size=(L, N)).astype(np.float32)

  def evaluate(s, w):
    cotangent = weights[:s.shape[0], :s.shape[1]]
    return fn(s, where=w), jax.grad(lambda x: jnp.sum(fn(x, where=w) * cotangent))(s)

  @jit
  def program(cases):
    out = {key: evaluate(*cases[key]) for key in ("main", "one_item", "empty_list", "empty_batch")}
    out["bf16"] = fn(cases["bf16"][0], where=cases["bf16"][1])
    # int32 scores under vmap, stacked with their lists reversed.
    out["vmap_int"] = jax.vmap(lambda s, w: fn(s, where=w))(
        *jax.tree.map(lambda a: jnp.stack([a, a[::-1]]), cases["int"]))
    return out

  integers = np.nan_to_num(scores, posinf=0.0).astype(np.int32)
  cases = {"main": (scores, where), "bf16": (jnp.asarray(scores, jnp.bfloat16), where),
           "int": (integers, where),
           "one_item": (np.nan_to_num(scores[:, :1], posinf=0.0), np.ones((L, 1), bool)),
           "empty_list": (scores[:, :0], where[:, :0]), "empty_batch": (scores[:0], where[:0])}
  return jax.device_get(program(cases))


@pytest.mark.parametrize("name", sorted(RANK_SPECS))
def test_rank_function_contract(name):
  out = _rank_results(name)
  r, grad = out["main"]
  assert r.dtype == np.float32 and r.shape == (L, N)
  _assert_finite((r, grad), "non-finite ranks or gradient")
  masked = np.zeros((L, N), bool)
  masked[1] = masked[2, 1:] = masked[3, :2] = True  # the masked, NaN and inf entries
  if name != "soft_sort":  # soft_sort returns sorted values, padded with zeros, not ranks per item
    np.testing.assert_array_equal(r[masked], 0.0, err_msg="masked items")
    np.testing.assert_allclose(r[2, 0], 1.0, err_msg="a lone valid item ranks 1")
    np.testing.assert_allclose(out["one_item"][0], 1.0, err_msg="one-item lists")
  np.testing.assert_array_equal(grad[masked], 0.0, err_msg="gradient at masked items")
  if not RANK_SPECS[name][1]:
    np.testing.assert_array_equal(grad, 0.0, err_msg="exact ranks have a zero gradient")
  assert out["bf16"].dtype == np.float32
  np.testing.assert_allclose(out["bf16"], r, rtol=1e-6, err_msg="bfloat16")
  first, second = out["vmap_int"]
  assert first.dtype == np.float32
  np.testing.assert_allclose(first[:3], r[:3], rtol=1e-6, err_msg="int32 scores, vmap")
  np.testing.assert_allclose(second[1:], r[2::-1], rtol=1e-6, err_msg="vmap of the reversed batch")
  for key, shape in (("empty_list", (L, 0)), ("empty_batch", (0, N))):
    assert out[key][0].shape == shape and out[key][0].dtype == np.float32
    assert out[key][1].shape == shape


@pytest.mark.parametrize("name", sorted(name for name, (_, smooth) in RANK_SPECS.items() if smooth))
def test_rank_function_gradients_match_float64_finite_differences(name):
  fn, _ = RANK_SPECS[name]
  with jax.enable_x64(True):
    rng = np.random.default_rng(2)
    scores = (np.arange(6) * 0.4 + rng.uniform(0, 0.1, 6))[rng.permutation(6)].reshape(1, 6)
    scores = jnp.asarray(np.concatenate([scores, scores[:, ::-1] + 0.05]), jnp.float64)
    where = np.ones((2, 6), bool)
    where[1, 3] = False
    weights = jnp.asarray(rng.normal(size=(2, 6)))
    assert jax.eval_shape(lambda s: fn(s, where=where), scores).dtype == jnp.float64
    grad = _check_finite_differences(lambda a: jnp.sum(fn(a[0], where=where) * weights), (scores,))
    assert np.any(grad[0] != 0)


# ----------------------------------------------------------------------------------------------------------
# Ties (issue 29, item 4): every rank function but hard_ranks (ties by index) gives tied valid scores equal
# ranks, and an all-equal list of m valid items the tie value (m + 1) / 2 for each, so a one-item list
# ranks 1. Where the ranks are discontinuous there (exact ranks, standardised scores, the learned sorters)
# the gradient is zero; the smooth raw-score functions keep their gradient, finite and shift invariant.
# Lists of 6 with masks (the fixed-length CNN sorter takes only its own length).

TIE_LENGTH = 6
TIE_SPECS = {name: fn for name, (fn, _) in RANK_SPECS.items() if name not in ("hard_ranks", "soft_sort")}
TIE_SPECS["sorter_cnn"] = _sorter(sorters.CNNSorter(length=TIE_LENGTH, features=(4, 4), kernel_sizes=(2, 2)),
                                  TIE_LENGTH)
TIE_SPECS["sorter_lstm_h64_d100"] = sorters.load_pretrained("lstm_h64_d100")  # the reported case
SMOOTH_AT_TIES = ("sigmoid_ranks", "soft_ranks_l2", "soft_ranks_kl")  # raw scores: differentiable there


def test_every_sorter_has_a_tie_spec():
  kinds = {type(fn.module) for fn in TIE_SPECS.values() if isinstance(fn, sorters.SorterRankFn)}
  assert kinds == {sorters.LSTMSorter, sorters.PairwiseSorter, sorters.CNNSorter}


@functools.lru_cache(maxsize=None)
def _tie_program(name: str):
  fn = TIE_SPECS[name]
  weights = np.random.default_rng(7).normal(size=(TIE_LENGTH + 1, TIE_LENGTH)).astype(np.float32)
  return jit(lambda s, w: (fn(s, where=w), jax.grad(lambda x: jnp.sum(fn(x, where=w) * weights))(s)))


@pytest.mark.parametrize("name", sorted(TIE_SPECS))
def test_rank_functions_share_ties_and_give_all_equal_lists_the_tie_value(name):
  program = _tie_program(name)

  @hypothesis.settings(max_examples=8, deadline=None, derandomize=True)
  @hypothesis.given(value=st.sampled_from([0.0, 14.62, -3e38, 1e-30, 7.0, 2.5]),
                    positions=st.permutations(list(range(TIE_LENGTH))), groups=st.sampled_from(
                        [(1, 2, 2, 3, 3, 3), (4, 4, 1, 1, 1, 0), (5, 5, 5, 5, 5, -1)]))
  def check(value, positions, groups):
    positions = np.asarray(positions)
    # Rows m - 1 = 0..5: m valid items all equal to `value` (at scattered positions; masked items hold
    # other values); row 6: the tie groups `groups`, permuted.
    scores = np.tile(np.arange(TIE_LENGTH, dtype=np.float32), (TIE_LENGTH + 1, 1))
    where = np.zeros(scores.shape, bool)
    for m in range(1, TIE_LENGTH + 1):
      scores[m - 1, positions[:m]] = value
      where[m - 1, positions[:m]] = True
    scores[TIE_LENGTH] = np.asarray(groups, np.float32)[positions]
    where[TIE_LENGTH] = True
    r, grad = jax.device_get(program(scores, where))
    _assert_finite((r, grad), "ranks or gradient")
    counts = where.sum(-1, keepdims=True)
    np.testing.assert_allclose(r[:TIE_LENGTH], np.where(where, (counts + 1) / 2, 0.0)[:TIE_LENGTH], rtol=1e-6,
                               err_msg="all-equal lists: the tie value (m + 1) / 2 (one item: rank 1)")
    if name in SMOOTH_AT_TIES:  # shift invariant: the gradient of any cotangent sums to 0 over a list
      np.testing.assert_allclose(grad[:TIE_LENGTH].sum(-1), 0.0, atol=1e-4)
    else:
      np.testing.assert_array_equal(grad[:TIE_LENGTH], 0.0, err_msg="all-equal lists: zero gradient")
    last = scores[TIE_LENGTH]
    for group in np.unique(last):
      tied = r[TIE_LENGTH][last == group]
      np.testing.assert_allclose(tied, tied[0], rtol=1e-6, err_msg=f"tied scores {group}: one rank")
    if name == "tie_averaged_ranks":
      np.testing.assert_array_equal(r[TIE_LENGTH], scipy.stats.rankdata(-last))

  check()


# ----------------------------------------------------------------------------------------------------------
# Pairwise distances: the same checks, and a NaN row gives +inf distances (fused) without NaN gradients.


def _fused(args, where):
  sketch, photo, sketch_logits, photo_logits = args
  return losses.fused_distance(sketch, photo, sketch_logits, photo_logits, attribute_weight=0.5)


def _squared(args, where):
  return utils.squared_distances(args[0], args[1], x_where=where[0], y_where=where[1])


DISTANCE_SPECS = {"fused_distance": (_fused, 4), "squared_distances": (_squared, 2)}


@functools.lru_cache(maxsize=None)
def _distance_results(name: str):
  fn, num_args = DISTANCE_SPECS[name]
  rng = np.random.default_rng(3)
  shapes = [(3, 4), (5, 4), (3, 2), (5, 2)][:num_args]
  # Integer-valued features 100 away from the origin (exact in bfloat16 and int32), logits near 0.
  offsets = [100.0, 100.0, 0.0, 0.0]
  args = tuple(np.round(4 * rng.normal(size=shape)) + offset for shape, offset in zip(shapes, offsets))
  if name == "fused_distance":
    args[0][2, 1] = np.nan  # a non-finite sketch: +inf distances, never retrieved
  where = (np.isfinite(args[0]).all(-1), np.ones(5, bool))

  def evaluate(a, w):
    d = fn(a, w)
    return d, jax.grad(lambda x: jnp.sum(jnp.where(jnp.isfinite(d), fn(x, w), 0.0)))(a)

  @jit
  def program(cases):
    out = {key: evaluate(*cases[key]) for key in ("main", "empty_queries", "empty_gallery")}
    out["bf16"] = fn(*cases["bf16"])
    # int32 features under vmap, stacked with their queries reversed.
    reverse = lambda a: tuple(x[::-1] if i % 2 == 0 else x for i, x in enumerate(a))
    out["vmap_int"] = jax.vmap(fn)(*jax.tree.map(lambda x, y: jnp.stack([x, y]), cases["int"],
                                                 (reverse(cases["int"][0]), (where[0][::-1], where[1]))))
    return out

  queries_only = lambda a, keep: tuple(x[:keep] if i % 2 == 0 else x for i, x in enumerate(a))
  gallery_only = lambda a, keep: tuple(x[:keep] if i % 2 == 1 else x for i, x in enumerate(a))
  cases = {"main": (args, where), "bf16": (tuple(jnp.asarray(a, jnp.bfloat16) for a in args), where),
           "int": (tuple(np.nan_to_num(a).astype(np.int32) for a in args), where),
           "empty_queries": (queries_only(args, 0), (where[0][:0], where[1])),
           "empty_gallery": (gallery_only(args, 0), (where[0], where[1][:0]))}
  return args, jax.device_get(program(cases))


@pytest.mark.parametrize("name", sorted(DISTANCE_SPECS))
def test_distance_contract(name):
  args, out = _distance_results(name)
  d, grads = out["main"]
  assert d.shape == (3, 5) and d.dtype == np.float32
  _assert_finite(grads, "gradients")
  if name == "fused_distance":
    assert np.all(np.isinf(d[2])) and np.all(np.isfinite(d[:2]))
    np.testing.assert_array_equal(grads[0][2], 0.0)
  else:  # accurate although the features sit 100 away from the origin (float64 differences)
    squared = ((args[0][:, None, :] - args[1][None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(d, squared, rtol=1e-6)
  assert out["bf16"].dtype == np.float32
  np.testing.assert_allclose(out["bf16"], d, rtol=1e-6, err_msg="bfloat16")
  first, second = out["vmap_int"]
  assert first.dtype == np.float32
  np.testing.assert_allclose(first[:2], d[:2], rtol=1e-6, err_msg="int32 features, vmap")
  np.testing.assert_allclose(second[1:], d[1::-1], rtol=1e-6, err_msg="vmap of the reversed queries")
  assert out["empty_queries"][0].shape == (0, 5) and out["empty_gallery"][0].shape == (3, 0)


@pytest.mark.parametrize("name", sorted(DISTANCE_SPECS))
def test_distance_gradients_match_float64_finite_differences(name):
  fn, num_args = DISTANCE_SPECS[name]
  with jax.enable_x64(True):
    rng = np.random.default_rng(4)
    args = tuple(jnp.asarray(rng.normal(size=s)) for s in [(3, 4), (5, 4), (3, 2), (5, 2)][:num_args])
    where = (np.ones(3, bool), np.ones(5, bool))
    weights = jnp.asarray(rng.normal(size=(3, 5)))
    _check_finite_differences(lambda a: jnp.sum(fn(a, where) * weights), args)


def test_host_distances_do_not_depend_on_a_common_offset():
  """The numpy distances of the sketch experiment (triplet generation, descriptors, retrieval) are exact
  far from the origin: 512695 vs 512804 is 109² = 11881, where |a|²+|b|²-2ab in float64 loses digits."""
  from ranking_jax.projects.sketch_retrieval import sketch_triplets, sketches  # pylint: disable=g-import-not-at-top
  from ranking_jax.projects.sketch_retrieval import sketch_retrieval  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(5)
  a, b = rng.normal(size=(4, 3)), rng.normal(size=(6, 3))
  reference = np.array([[np.sum((x - y) ** 2) for y in b] for x in a])  # the definition, as a loop
  for offset in (0.0, 1e9):
    for fn in (sketch_triplets.squared_distances, sketches.descriptor_distances,
               lambda x, y: sketch_retrieval.retrieval_distances({"embedding": x}, {"embedding": y})):
      np.testing.assert_allclose(fn(a + offset, b + offset), reference, rtol=1e-5, atol=1e-6)
  assert sketch_triplets.squared_distances(np.array([[512695.0]]), np.array([[512804.0]]))[0, 0] == 11881.0
  assert sketch_triplets.squared_distances(np.zeros((0, 3)), b).shape == (0, 6)
  with pytest.raises(ValueError, match="NaN or inf"):
    sketch_triplets.squared_distances(np.array([[np.nan, 0.0, 0.0]]), b)
  with pytest.raises(ValueError, match="same D"):
    sketch_triplets.squared_distances(a, b[:, :2])
