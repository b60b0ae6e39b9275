"""Tests of the feature cache: computed once, read back, recomputed on a key change, resumed after a kill,
corrupted chunks detected, foreign manifests refused.

The trunk is a tiny jitted Flax Dense + tanh; the reference features are the same map written in numpy.
"""

from __future__ import annotations

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ranking_jax.data import feature_cache as fc
from ranking_jax.data import sources

N, SIDE, DIM, BATCH = 10, 3, 5, 4


class TinySource(sources.ExampleSource):
  """``N`` random 3x3 RGB images with a label and an index."""

  def __init__(self, num: int = N, seed: int = 0):
    rng = np.random.default_rng(seed)
    self.images = rng.random((num, SIDE, SIDE, 3), dtype=np.float32)
    self.labels = rng.integers(0, 2, (num, 2)).astype(np.int32)

  def __len__(self):
    return len(self.images)

  def read_example(self, index):
    return {"image": self.images[index], "attributes": self.labels[index], "index": np.int64(index)}


class Trunk(nn.Module):

  @nn.compact
  def __call__(self, x):
    return jnp.tanh(nn.Dense(DIM)(x.reshape(x.shape[0], -1)))


VARIABLES = Trunk().init(jax.random.PRNGKey(0), jnp.zeros((1, SIDE, SIDE, 3)))
JITTED = jax.jit(Trunk().apply)


def reference(images, variables=VARIABLES):
  dense = variables["params"]["Dense_0"]
  return np.tanh(images.reshape(len(images), -1) @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"]))


class Counting:
  """The jitted trunk, counting calls and input shapes; raises after ``fail_after`` calls (a kill)."""

  def __init__(self, variables=VARIABLES, fail_after=None):
    self.variables, self.fail_after, self.shapes = variables, fail_after, []

  def __call__(self, images):
    if self.fail_after is not None and len(self.shapes) == self.fail_after:
      raise KeyboardInterrupt("simulated kill")
    self.shapes.append(images.shape)
    return JITTED(self.variables, images)


def key(**changes):
  return {"dataset": "tiny", "split": "train", "backbone": "dense_tanh", "weights": fc.params_hash(VARIABLES),
          "image_size": [SIDE, SIDE], "preprocessing": {"scale": "[0, 1]"}, **changes}


def run(source, apply_fn, cache_dir, **options):
  return fc.compute_feature_cache(source, apply_fn, cache_dir=str(cache_dir), key_fields=options.pop(
      "key_fields", key()), batch_size=options.pop("batch_size", BATCH), **options)


def test_computes_once_then_reads(tmp_path, caplog):
  source, trunk = TinySource(), Counting()
  with caplog.at_level("INFO"):
    arrays = run(source, trunk, tmp_path, log_every_s=0.0)
  assert trunk.shapes == [(BATCH, SIDE, SIDE, 3)] * 3  # ceil(10 / 4) calls; the short batch padded to 4
  assert "ETA" in caplog.text and "examples/s" in caplog.text
  np.testing.assert_allclose(arrays["features"], reference(source.images), rtol=1e-5, atol=1e-6)
  assert arrays["features"].dtype == np.float32 and arrays["features"].shape == (N, DIM)
  np.testing.assert_array_equal(arrays["attributes"], source.labels)
  np.testing.assert_array_equal(arrays["index"], np.arange(N))
  again = Counting()
  second = run(source, again, tmp_path)
  assert again.shapes == []
  for name in arrays:
    np.testing.assert_array_equal(second[name], arrays[name])
  np.testing.assert_array_equal(fc.cached_features(source, again, cache_dir=str(tmp_path), key_fields=key(),
                                                   batch_size=BATCH), arrays["features"])
  assert again.shapes == []
  folders = os.listdir(tmp_path)
  assert len(folders) == 1 and folders[0].startswith("tiny-train-dense_tanh-")


def test_any_key_change_recomputes_into_another_folder(tmp_path):
  source = TinySource()
  run(source, Counting(), tmp_path)
  changed = jax.tree_util.tree_map(lambda x: x * 1.5, VARIABLES)
  for changes, variables in [({"weights": fc.params_hash(changed)}, changed), ({"image_size": [6, 6]}, VARIABLES),
                             ({"preprocessing": {"scale": "[-1, 1]"}}, VARIABLES), ({"split": "test"}, VARIABLES)]:
    trunk = Counting(variables)
    arrays = run(source, trunk, tmp_path, key_fields=key(**changes))
    assert len(trunk.shapes) == 3, changes
    np.testing.assert_allclose(arrays["features"], reference(source.images, variables), rtol=1e-5, atol=1e-6)
  assert len(os.listdir(tmp_path)) == 5
  trunk = Counting()  # another number of examples: another folder too
  run(TinySource(num=7), trunk, tmp_path)
  assert len(trunk.shapes) == 2


def test_resume_after_a_kill_computes_only_missing_chunks(tmp_path):
  source = TinySource()
  with pytest.raises(KeyboardInterrupt):
    run(source, Counting(fail_after=2), tmp_path)
  trunk = Counting()
  arrays = run(source, trunk, tmp_path, batch_size=3)  # a new batch size: the cache keeps its chunks of 4
  assert trunk.shapes == [(BATCH, SIDE, SIDE, 3)]  # only the third chunk
  np.testing.assert_allclose(arrays["features"], reference(source.images), rtol=1e-5, atol=1e-6)


def test_a_chunk_written_but_not_in_the_manifest_is_recomputed(tmp_path):
  source = TinySource()
  run(source, Counting(), tmp_path)
  folder = tmp_path / os.listdir(tmp_path)[0]
  manifest = json.loads((folder / fc.MANIFEST).read_text())
  del manifest["chunks"]["1"]  # killed between the chunk's rename and the manifest's
  (folder / fc.MANIFEST).write_text(json.dumps(manifest))
  trunk = Counting()
  run(source, trunk, tmp_path)
  assert len(trunk.shapes) == 1


@pytest.mark.parametrize("damage", ["flip_byte", "delete", "truncate"])
def test_corrupted_chunk_is_detected_and_recomputed(tmp_path, caplog, damage):
  source = TinySource()
  first = run(source, Counting(), tmp_path)
  folder = tmp_path / os.listdir(tmp_path)[0]
  chunk = folder / "chunk-000001.npz"
  data = bytearray(chunk.read_bytes())
  if damage == "flip_byte":
    data[-100] ^= 0xFF
    chunk.write_bytes(bytes(data))
  elif damage == "delete":
    chunk.unlink()
  else:
    chunk.write_bytes(bytes(data[:50]))
  trunk = Counting()
  with caplog.at_level("WARNING"):
    second = run(source, trunk, tmp_path)
  assert len(trunk.shapes) == 1 and "chunk 1" in caplog.text
  np.testing.assert_array_equal(second["features"], first["features"])


def test_a_foreign_manifest_is_refused(tmp_path):
  source = TinySource()
  run(source, Counting(), tmp_path)
  folder = tmp_path / os.listdir(tmp_path)[0]
  manifest = json.loads((folder / fc.MANIFEST).read_text())
  manifest["key"]["weights"] = "0" * 64
  (folder / fc.MANIFEST).write_text(json.dumps(manifest))
  with pytest.raises(fc.FeatureCacheError, match="copied or edited"):
    run(source, Counting(), tmp_path)
  manifest["format"] = fc.FORMAT_VERSION + 1  # another format: discarded and recomputed
  (folder / fc.MANIFEST).write_text(json.dumps(manifest))
  trunk = Counting()
  run(source, trunk, tmp_path)
  assert len(trunk.shapes) == 3
  (folder / fc.MANIFEST).write_text("{not json")  # unreadable: recomputed
  trunk = Counting()
  run(source, trunk, tmp_path)
  assert len(trunk.shapes) == 3


def test_bad_inputs_raise_clear_errors(tmp_path):
  source = TinySource()
  incomplete = key()
  del incomplete["weights"]
  with pytest.raises(ValueError, match="weights"):
    run(source, Counting(), tmp_path, key_fields=incomplete)
  with pytest.raises(TypeError, match="JSON"):
    run(source, Counting(), tmp_path, key_fields=key(preprocessing=object()))
  with pytest.raises(ValueError, match="non-finite"):
    run(source, lambda x: np.full((len(x), 2), np.nan), tmp_path)
  assert os.listdir(fc.cache_folder(str(tmp_path), key(), N)) == []  # nothing of the bad chunk was kept
  with pytest.raises(ValueError, match="shape"):
    run(source, lambda x: np.zeros((1, 2)), tmp_path, key_fields=key(backbone="bad"))
  with pytest.raises(KeyError, match="pixels"):
    run(source, Counting(), tmp_path, image_key="pixels")


def test_params_hash_sees_values_names_and_shapes():
  base = fc.params_hash(VARIABLES)
  assert base == fc.params_hash(jax.tree_util.tree_map(np.array, VARIABLES))
  bumped = jax.tree_util.tree_map(lambda x: x, VARIABLES)
  bumped["params"]["Dense_0"]["bias"] = bumped["params"]["Dense_0"]["bias"].at[0].add(1e-6)
  renamed = {"params": {"Dense_1": VARIABLES["params"]["Dense_0"]}}
  reshaped = {"params": {"Dense_0": {"bias": VARIABLES["params"]["Dense_0"]["bias"].reshape(1, DIM),
                                     "kernel": VARIABLES["params"]["Dense_0"]["kernel"]}}}
  assert len({base, fc.params_hash(bumped), fc.params_hash(renamed), fc.params_hash(reshaped)}) == 4


def test_feature_source_indexing(tmp_path):
  arrays = run(TinySource(), Counting(), tmp_path)
  source = fc.FeatureSource(arrays, names=("a", "b"))
  assert len(source) == N and source.names == ("a", "b")
  batch = source[np.array([4, -1])]
  np.testing.assert_array_equal(batch["features"], arrays["features"][[4, 9]])
  assert source[3]["attributes"].shape == (2,)
  with pytest.raises(IndexError):
    source[np.array([N])]
  with pytest.raises(ValueError, match="common length"):
    fc.FeatureSource({"a": np.zeros(3), "b": np.zeros(4)})


def test_parse_trunk_mode():
  assert fc.parse_trunk_mode("frozen") == fc.TrunkMode("frozen", 0)
  assert fc.parse_trunk_mode("scratch") == fc.TrunkMode("scratch", None)
  assert not fc.parse_trunk_mode("scratch").pretrained
  assert fc.parse_trunk_mode("finetune:3", num_blocks=7).trainable_blocks == 3
  for bad in ("finetune:0", "finetune:8", "finetune", "fine"):
    with pytest.raises(ValueError, match="trunk mode"):
      fc.parse_trunk_mode(bad, num_blocks=7)
