"""Checkpoints: bitwise round trip, keep-N, and partial (temporary) checkpoints are never loaded."""

from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ranking_jax.train import checkpoint as checkpoint_lib
from ranking_jax.train import state as state_lib


def _state(step: int, seed: int = 0) -> state_lib.TrainState:
  rng = np.random.default_rng(seed)
  params = {"model": {"w": rng.normal(size=(3, 2)).astype(np.float32)}, "loss_weights": {"rank": np.float32(0.5)}}
  tx = optax.sgd(0.1, momentum=0.9)
  return state_lib.TrainState(step=np.int32(step), params=params,
                              model_state={"batch_stats": {"mean": rng.normal(size=2).astype(np.float32)}},
                              opt_state=tx.init(params), rng=np.asarray(jax.random.PRNGKey(seed)))


def test_round_trip_is_bitwise(tmp_path):
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), async_save=False)
  saved = _state(7, seed=1)
  checkpointer.save(saved)
  checkpointer.wait_until_finished()
  restored, step = checkpointer.restore(_state(0, seed=2))
  assert step == 7
  assert state_lib.fingerprint(restored) == state_lib.fingerprint(saved)
  assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(saved)


def test_keep_n_and_latest(tmp_path):
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), max_to_keep=2, async_save=True)
  for step in (2, 4, 6):
    checkpointer.save(_state(step))
  checkpointer.wait_until_finished()
  assert checkpointer.all_steps() == [4, 6]
  assert checkpointer.latest_step() == 6
  assert not checkpointer.save(_state(6))  # an existing step is not rewritten


def test_temporary_checkpoint_is_ignored(tmp_path):
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), async_save=False)
  checkpointer.save(_state(3, seed=3))
  checkpointer.wait_until_finished()
  checkpointer.close()
  # What a kill in the middle of saving step 9 leaves behind: Orbax's not-yet-renamed temporary directory.
  partial = tmp_path / "9.orbax-checkpoint-tmp-1234"
  (partial / "default").mkdir(parents=True)
  (partial / "default" / "garbage").write_bytes(b"\x00" * 10)
  reopened = checkpoint_lib.Checkpointer(str(tmp_path), async_save=False)
  assert reopened.latest_step() == 3
  restored, step = reopened.restore(_state(0))
  assert step == 3 and state_lib.fingerprint(restored) == state_lib.fingerprint(_state(3, seed=3))


def test_no_checkpoint_returns_template(tmp_path):
  checkpointer = checkpoint_lib.Checkpointer(os.path.join(tmp_path, "new"), async_save=False)
  template = _state(0)
  restored, step = checkpointer.restore(template)
  assert step is None and restored is template


def test_fingerprint_sees_every_bit():
  a = {"w": jnp.asarray([1.0, 2.0], jnp.float32)}
  b = {"w": jnp.asarray([1.0, np.nextafter(np.float32(2.0), np.float32(3.0))], jnp.float32)}
  assert state_lib.fingerprint(a) != state_lib.fingerprint(b)
  assert state_lib.fingerprint(a) == state_lib.fingerprint({"w": np.asarray([1.0, 2.0], np.float32)})


def _damage(step_dir, how):
  """An empty step directory, or a copy of a good one with its array files cut (a half-copied workdir)."""
  if how == "empty":
    step_dir.mkdir()
    return
  shutil.copytree(step_dir.parent / "3", step_dir)
  for path in step_dir.rglob("*"):
    if path.is_file() and path.parent.name == "d":  # the array data of the OCDBT store
      path.write_bytes(b"")


@pytest.mark.parametrize("how", ["empty", "half_copied"])
def test_damaged_newest_step_is_skipped_and_set_aside(tmp_path, how):
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), async_save=False)
  checkpointer.save(_state(3, seed=3))
  checkpointer.wait_until_finished()
  checkpointer.close()
  _damage(tmp_path / "9", how)
  reopened = checkpoint_lib.Checkpointer(str(tmp_path), async_save=False)
  assert reopened.all_steps() == [3, 9]  # Orbax lists it: a plain <step> directory counts as finalised
  restored, step = reopened.restore(_state(0))
  assert step == 3 and state_lib.fingerprint(restored) == state_lib.fingerprint(_state(3, seed=3))
  (skipped,) = reopened.skipped
  assert skipped.step == 9 and skipped.path == str(tmp_path / "9") and skipped.error
  assert skipped.moved_to == str(tmp_path / "9.damaged") and os.path.isdir(skipped.moved_to)
  # The step can be written again (the run that resumed from step 3 reaches step 9).
  assert reopened.all_steps() == [3] and reopened.save(_state(9, seed=9))
  reopened.wait_until_finished()
  assert reopened.restore(_state(0))[1] == 9 and not reopened.skipped
  reopened.close()


def test_read_only_restore_skips_without_moving(tmp_path):
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), async_save=False)
  checkpointer.save(_state(3))
  checkpointer.wait_until_finished()
  (tmp_path / "9").mkdir()
  reopened = checkpoint_lib.Checkpointer(str(tmp_path), async_save=False)
  assert reopened.restore(_state(0), set_aside_damaged=False)[1] == 3
  assert reopened.skipped[0].moved_to is None and (tmp_path / "9").is_dir()


def test_no_readable_step_is_one_error_naming_the_directory(tmp_path):
  (tmp_path / "5").mkdir()
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), async_save=False)
  with pytest.raises(checkpoint_lib.CheckpointReadError) as raised:
    checkpointer.restore(_state(0))
  message = str(raised.value)
  assert str(tmp_path / "5") in message and "\n" not in message
  assert (tmp_path / "5").is_dir()  # nothing is moved when no step can be read
