"""Deterministic, index-based batching for any random-access source (numpy only, no TensorFlow).

A *source* is anything with ``len(source)`` and ``source[index_array] -> dict of numpy arrays`` with a
leading batch axis (:class:`ranking_jax.data.scenes.ScenesSource`,
:class:`ranking_jax.projects.ide_ranknet.voc_difficulty.VocDifficultySource`, or a user's own).

Training order is a pure function of ``(seed, step)``: the examples are reshuffled at every epoch with a
permutation drawn from ``(seed, epoch)``, global step ``s`` takes the ``s mod steps_per_epoch``-th slice of
``batch_size`` indices of that permutation (the incomplete last slice of an epoch is dropped), and process
``p`` of ``P`` keeps the ``p``-th of ``P`` equal parts. A run resumed at ``start_step`` therefore sees exactly
the batches it would have seen, on any number of hosts, and augmentation randomness is drawn from
``(seed, step, process_index)`` for the same reason.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator, Mapping, Optional, Protocol

import numpy as np
from ranking_jax.errors import ConfigValueError

Batch = dict[str, np.ndarray]
Transform = Callable[[Batch, np.random.Generator], Batch]

# Stream tags: keep the shuffling and augmentation generators independent for the same seed.
_SHUFFLE_STREAM = 0
_AUGMENT_STREAM = 1


class Source(Protocol):
  """What the pipeline needs from a data source."""

  def __len__(self) -> int:
    ...

  def __getitem__(self, indices: np.ndarray) -> Mapping[str, np.ndarray]:
    ...


def _check_batching(num_examples: int, batch_size: int, process_index: int, process_count: int) -> None:
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"need 0 <= process_index < process_count, got {process_index}, {process_count}.")
  if batch_size < 1 or batch_size % process_count:
    raise ConfigValueError(f"`batch_size` (the global batch size) must be a positive multiple of process_count="
                     f"{process_count}, got {batch_size}.")
  if num_examples < 1:
    raise ValueError(f"the source is empty (num_examples={num_examples}).")


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Number of full global batches in one epoch (the remainder is dropped in training).

  >>> steps_per_epoch(10, 4)
  2
  """
  if batch_size > num_examples:
    raise ConfigValueError(f"`batch_size`={batch_size} is larger than the {num_examples} training examples.")
  return num_examples // batch_size


def epoch_permutation(num_examples: int, *, seed: int, epoch: int) -> np.ndarray:
  """The shuffled order of epoch ``epoch``: a pure function of ``(seed, epoch)``."""
  rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, _SHUFFLE_STREAM, int(epoch)])
  return rng.permutation(num_examples)


def batch_indices(num_examples: int, batch_size: int, *, seed: int, step: int, process_index: int = 0,
                  process_count: int = 1) -> np.ndarray:
  """The example indices of global training step ``step`` that process ``process_index`` loads.

  Args:
    num_examples: size of the training source.
    batch_size: the *global* batch size (all processes together); a multiple of ``process_count``.
    seed: shuffling seed.
    step: global step (0-based); epoch ``step // steps_per_epoch`` is reshuffled from ``(seed, epoch)``.
    process_index: this process (``jax.process_index()``).
    process_count: number of processes (``jax.process_count()``).

  Returns:
    int64 array of ``batch_size // process_count`` indices. The processes' parts are disjoint and
    together form the global batch; within an epoch no index repeats.

  >>> batch_indices(10, 4, seed=0, step=0).shape
  (4,)
  >>> a = batch_indices(10, 4, seed=0, step=3, process_index=0, process_count=2)
  >>> b = batch_indices(10, 4, seed=0, step=3, process_index=1, process_count=2)
  >>> bool(np.array_equal(np.concatenate([a, b]), batch_indices(10, 4, seed=0, step=3)))
  True
  """
  _check_batching(num_examples, batch_size, process_index, process_count)
  if step < 0:
    raise ValueError(f"`step` must be >= 0, got {step}.")
  per_epoch = steps_per_epoch(num_examples, batch_size)
  epoch, position = divmod(int(step), per_epoch)
  order = epoch_permutation(num_examples, seed=seed, epoch=epoch)
  global_batch = order[position * batch_size:(position + 1) * batch_size]
  local = batch_size // process_count
  return global_batch[process_index * local:(process_index + 1) * local].astype(np.int64)


def augmentation_rng(*, seed: int, step: int, process_index: int = 0) -> np.random.Generator:
  """The generator a train transform receives at ``step``: a pure function of its arguments."""
  return np.random.default_rng([int(seed) & 0xFFFFFFFF, _AUGMENT_STREAM, int(step), int(process_index)])


def make_train_iterator(source: Source, batch_size: int, *, seed: int, start_step: int = 0,
                        process_index: int = 0, process_count: int = 1,
                        transform: Optional[Transform] = None, num_steps: Optional[int] = None
                        ) -> Iterator[Batch]:
  """Yields training batches from ``start_step`` on (forever unless ``num_steps`` is given).

  Args:
    source: a random-access source (``len`` and ``source[index_array]``).
    batch_size: global batch size; each process yields ``batch_size // process_count`` examples.
    seed: shuffling and augmentation seed.
    start_step: the first global step to produce (use the restored step to resume).
    process_index: this process.
    process_count: number of processes.
    transform: optional ``transform(batch, rng) -> batch`` (e.g.
      :func:`ranking_jax.data.augment.make_augment_transform`); ``rng`` comes from
      :func:`augmentation_rng`, so it is reproducible too.
    num_steps: stop after this many batches.

  Yields:
    dicts of numpy arrays with a leading per-process batch axis.

  >>> from ranking_jax.data.scenes import ScenesSource
  >>> it = make_train_iterator(ScenesSource(20), 8, seed=0, start_step=5)
  >>> next(it)["image"].shape
  (8, 64, 64, 3)
  """
  num_examples = len(source)
  _check_batching(num_examples, batch_size, process_index, process_count)
  steps_per_epoch(num_examples, batch_size)
  step = int(start_step)
  produced = 0
  while num_steps is None or produced < num_steps:
    indices = batch_indices(num_examples, batch_size, seed=seed, step=step, process_index=process_index,
                            process_count=process_count)
    batch = dict(source[indices])
    if transform is not None:
      batch = dict(transform(batch, augmentation_rng(seed=seed, step=step, process_index=process_index)))
    yield batch
    step += 1
    produced += 1


def eval_batch_indices(num_examples: int, batch_size: int, *, process_index: int = 0,
                       process_count: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
  """``(indices, mask)`` pairs covering this process's contiguous part of ``range(num_examples)``.

  Batches hold ``batch_size // process_count`` examples, the last one fewer; no padding (the trainer pads
  every eval batch, in one place). Every process gets the same number of batches, as a pmapped evaluation
  with collectives needs: a process whose part runs out first yields one-example batches repeating a
  valid index with ``mask`` False.

  >>> [(i.tolist(), m.tolist()) for i, m in eval_batch_indices(5, 2)]
  [([0, 1], [True, True]), ([2, 3], [True, True]), ([4], [True])]
  >>> [(i.tolist(), m.tolist()) for i, m in eval_batch_indices(5, 4, process_index=1, process_count=2)]
  [([3, 4], [True, True]), ([4], [False])]
  """
  _check_batching(num_examples, batch_size, process_index, process_count)
  local = batch_size // process_count
  parts = np.array_split(np.arange(num_examples, dtype=np.int64), process_count)
  longest = max(len(p) for p in parts)
  num_batches = -(-longest // local)
  mine = parts[process_index]
  filler = mine[-1] if len(mine) else 0
  out = []
  for b in range(num_batches):
    indices = mine[b * local:(b + 1) * local]
    if len(indices):
      out.append((indices, np.ones(len(indices), bool)))
    else:
      out.append((np.array([filler], np.int64), np.zeros(1, bool)))
  return out


def make_eval_iterator(source: Source, batch_size: int, *, process_index: int = 0, process_count: int = 1,
                       transform: Optional[Callable[[Batch], Batch]] = None) -> Iterator[Batch]:
  """Yields every example once, in order, in batches of ``batch_size // process_count`` (the last shorter).

  ``transform(batch) -> batch`` (deterministic, no ``rng``) is applied to each batch if given. A
  ``"mask"`` entry is added only to filler batches of a process whose part ran out (see
  :func:`eval_batch_indices`); the trainer pads short batches and masks the padding.

  >>> from ranking_jax.data.scenes import ScenesSource
  >>> [len(b["difficulty"]) for b in make_eval_iterator(ScenesSource(5), 4)]
  [4, 1]
  """
  for indices, mask in eval_batch_indices(len(source), batch_size, process_index=process_index,
                                          process_count=process_count):
    batch = dict(source[indices])
    if transform is not None:
      batch = dict(transform(batch))
    if not mask.all():
      batch["mask"] = mask
    yield batch


def prefetch(iterator: Iterator[Batch], size: int = 2) -> Iterator[Batch]:
  """Runs ``iterator`` in a background thread, ``size`` batches ahead; order and content are unchanged.

  >>> list(prefetch(iter(range(3))))
  [0, 1, 2]
  """
  buffer: queue.Queue = queue.Queue(maxsize=max(int(size), 1))
  done = object()
  stop = threading.Event()

  def producer() -> None:
    try:
      for item in iterator:
        while not stop.is_set():
          try:
            buffer.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if stop.is_set():
          return
      buffer.put(done)
    except BaseException as error:  # pylint: disable=broad-except
      buffer.put(error)  # re-raised in the consumer

  thread = threading.Thread(target=producer, daemon=True)
  thread.start()
  try:
    while True:
      item = buffer.get()
      if item is done:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()

