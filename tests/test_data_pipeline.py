"""Tests of deterministic batching, resumption, multi-process slicing, eval padding and augmentation."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ranking_jax.data import augment
from ranking_jax.data import pipeline
from ranking_jax.data.scenes import ScenesSource


class ArraySource:
  """A tiny in-memory source: example i is {"x": i, "image": constant i}."""

  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n

  def __getitem__(self, indices):
    indices = np.asarray(indices)
    return {"index": indices.astype(np.int64),
            "image": np.broadcast_to(indices[:, None, None, None] / max(self.n, 1), indices.shape + (4, 4, 3))
            .astype(np.float32)}


def reference_indices(n, batch_size, seed, step):
  """Plain re-derivation: permutation of epoch, then the step's slice (drop remainder)."""
  per_epoch = n // batch_size
  epoch, pos = step // per_epoch, step % per_epoch
  perm = np.random.default_rng([seed, 0, epoch]).permutation(n)
  return perm[pos * batch_size:(pos + 1) * batch_size]


def test_batch_indices_match_reference_and_cover_each_epoch_once():
  n, bs = 23, 5
  for step in range(12):
    np.testing.assert_array_equal(pipeline.batch_indices(n, bs, seed=3, step=step),
                                  reference_indices(n, bs, 3, step))
  epoch0 = np.concatenate([pipeline.batch_indices(n, bs, seed=3, step=s) for s in range(4)])
  assert len(set(epoch0.tolist())) == 20  # 4 full batches, 3 examples dropped
  epoch1 = np.concatenate([pipeline.batch_indices(n, bs, seed=3, step=s) for s in range(4, 8)])
  assert not np.array_equal(epoch0, epoch1)  # reshuffled


@settings(max_examples=30, deadline=None, derandomize=True)
@given(n=st.integers(8, 200), local=st.integers(1, 4), processes=st.sampled_from([1, 2, 4]),
       step=st.integers(0, 500), seed=st.integers(0, 2 ** 32 - 1))
def test_process_slices_partition_the_global_batch(n, local, processes, step, seed):
  bs = local * processes
  if bs > n:
    return
  parts = [pipeline.batch_indices(n, bs, seed=seed, step=step, process_index=p, process_count=processes)
           for p in range(processes)]
  assert all(len(p) == local for p in parts)
  np.testing.assert_array_equal(np.concatenate(parts), pipeline.batch_indices(n, bs, seed=seed, step=step))
  assert len(set(np.concatenate(parts).tolist())) == bs


def test_resumed_iterator_sees_the_same_batches_with_augmentation():
  source = ScenesSource(40, seed=1, image_size=16)
  transform = augment.make_augment_transform()
  full = list(pipeline.make_train_iterator(source, 8, seed=9, transform=transform, num_steps=8))
  resumed = list(pipeline.make_train_iterator(source, 8, seed=9, start_step=5, transform=transform,
                                              num_steps=3))
  for a, b in zip(full[5:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  # augmentation really changed the images, deterministically
  raw = source[full[0]["index"]]["image"]
  assert not np.allclose(raw, full[0]["image"])


def test_train_iterator_process_batches_stack_to_global_batch():
  source = ArraySource(30)
  whole = next(pipeline.make_train_iterator(source, 8, seed=0, start_step=7))
  halves = [next(pipeline.make_train_iterator(source, 8, seed=0, start_step=7, process_index=p,
                                              process_count=2)) for p in range(2)]
  assert halves[0]["index"].shape == (4,)
  np.testing.assert_array_equal(np.concatenate([h["index"] for h in halves]), whole["index"])


def test_batching_errors():
  with pytest.raises(ValueError, match="multiple of process_count"):
    pipeline.batch_indices(10, 3, seed=0, step=0, process_count=2)
  with pytest.raises(ValueError, match="larger than"):
    pipeline.batch_indices(4, 8, seed=0, step=0)
  with pytest.raises(ValueError, match="empty"):
    next(pipeline.make_train_iterator(ArraySource(0), 2, seed=0))
  with pytest.raises(ValueError):
    pipeline.batch_indices(10, 2, seed=0, step=-1)
  with pytest.raises(ValueError):
    pipeline.batch_indices(10, 2, seed=0, step=0, process_index=2, process_count=2)


@pytest.mark.parametrize("n,bs,processes", [(1, 4, 1), (7, 4, 1), (8, 4, 1), (9, 4, 2), (3, 8, 4), (10, 2, 2)])
def test_eval_iterator_covers_every_example_once(n, bs, processes):
  seen = []
  counts = []
  for p in range(processes):
    batches = list(pipeline.make_eval_iterator(ArraySource(n), bs, process_index=p, process_count=processes))
    counts.append(len(batches))
    for b in batches:
      assert 1 <= len(b["index"]) <= bs // processes  # no padding: the trainer pads, in one place
      mask = b.get("mask", np.ones(len(b["index"]), bool))
      seen.extend(b["index"][mask].tolist())
      assert (b["index"] < n).all()
  assert sorted(seen) == list(range(n))
  assert len(set(counts)) == 1  # same number of batches on every process


def test_prefetch():
  it = pipeline.make_train_iterator(ArraySource(20), 4, seed=2, num_steps=6)
  expected = [b["index"] for b in pipeline.make_train_iterator(ArraySource(20), 4, seed=2, num_steps=6)]
  got = [b["index"] for b in pipeline.prefetch(it, 2)]
  assert len(got) == 6 and all(np.array_equal(a, b) for a, b in zip(got, expected))

  def failing():
    yield 1
    raise RuntimeError("boom")

  with pytest.raises(RuntimeError, match="boom"):
    list(pipeline.prefetch(failing()))


def test_augmentations_each_do_what_they_say():
  rng = np.random.default_rng(0)
  images = rng.uniform(0.2, 0.8, size=(6, 8, 8, 3)).astype(np.float32)
  flipped = augment.random_flip_left_right(images, np.random.default_rng(1), probability=1.0)
  np.testing.assert_array_equal(flipped, images[:, :, ::-1])
  brighter = augment.random_brightness(images, np.random.default_rng(1), 0.1)
  delta = (brighter - images).reshape(6, -1)
  np.testing.assert_allclose(delta, delta[:, :1].repeat(delta.shape[1], 1), atol=1e-6)
  contrast = augment.random_contrast(images, np.random.default_rng(1))
  np.testing.assert_allclose(contrast.mean(axis=(1, 2)), images.mean(axis=(1, 2)), atol=1e-5)
  hs = augment.random_hue_saturation(images, np.random.default_rng(1), 0.0, 1.0, 1.0)
  np.testing.assert_allclose(hs, images, atol=1e-5)  # zero-strength hue/saturation is the identity
  noisy = augment.pixel_noise(images, np.random.default_rng(1), 0.05)
  assert 0.04 < np.std(noisy - images) < 0.06
  with pytest.raises(ValueError):
    augment.augment_images(np.zeros((4, 4)), rng)


def test_scene_batch_generation_speed_reported():
  # Not a timed assertion (the machine is shared): the figure is printed for the report.
  source = ScenesSource(64, seed=0)
  source[np.arange(4)]
  start = time.perf_counter()
  source[np.arange(32)]
  print(f"32 scenes at 64x64: {time.perf_counter() - start:.3f} s")


def test_example_source_indexing_contract():
  from ranking_jax.data import sources  # pylint: disable=g-import-not-at-top

  class Squares(sources.ExampleSource):
    def __len__(self):
      return 5

    def read_example(self, index):
      return {"x": np.float32(index * index), "index": np.int64(index)}

  source = Squares()
  assert source[-1]["x"] == 16.0 and source[np.int64(2)]["index"] == 2
  np.testing.assert_array_equal(source[[0, 4, 1]]["x"], [0.0, 16.0, 1.0])
  np.testing.assert_array_equal(source[1:3]["index"], [1, 2])
  for bad, error in ((5, IndexError), (-6, IndexError), ([], ValueError), ([[0, 1]], TypeError),
                     (1.5, TypeError), ([0.0, 1.0], TypeError)):
    with pytest.raises(error):
      source[bad]  # pylint: disable=pointless-statement
