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
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Union

import numpy as np

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
  expected = _backbone_view(variables, backbone)
  unknown = sorted(set(loaded) - set(expected))
  missing = sorted(set(expected) - set(loaded))
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
    raise ValueError(f"cannot load {path!r} into this backbone: " + "; ".join(problems) + ".")
  flat = flatten_variables(variables)
  for key, value in loaded.items():
    collection, _, rest = key.partition("/")
    full = f"{collection}/{backbone}/{rest}" if backbone else key
    flat[full] = value.astype(flat[full].dtype)
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
