"""Speed of what users run: the real train step, the eval forward, the input pipeline.

  python -m sfae_jax.tools.benchmark --batch 16      # configs/default.py: the real
                                                     # train step, forward, components
  python -m sfae_jax.tools.benchmark --config configs/synthetic.py \
      --data_dir data/tfds                           # + end to end through grain

It times

* the train step of `sfae_jax.training.train_step.make_train_step` (on-device augmentation,
  the full loss, `shard_map` over every local device, donation), compiled once;
* the eval forward of `make_eval_step` (centre crop, model, sigmoid);
* optionally (`data_dir`) the train loop end to end, batches coming from the real
  grain pipeline, and the ratio of the two;
* per component (stem, LRL landmark branch, per-AU local learning, MSL), each
  compiled and timed alone at the shapes the model gives it; what is left of the
  step is augmentation, loss, optimiser update and glue.

FLOPs are XLA's cost analysis of the compiled programs (a multiply-add is two), so
GFLOP/s is the achieved rate; MFU divides it by the device's peak (known for
H100/H200/A100 and TPU v4/v5e/v5p/v6e, or `peak_tflops`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import time
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sfae_jax.data import loader, registry, sources
from sfae_jax.face import align, schemes
from sfae_jax.models import conv
from sfae_jax.models.lrl import (AttentionRefinement, LandmarkBranch,
                                 LightLocalAUBranch, LocalAUBranch)
from sfae_jax.models.multiscale import MultiScaleRegionLearning
from sfae_jax.models.region_conv import HierarchicalRegionBlock
from sfae_jax.runtime import chips, cli, sharding
from sfae_jax.tools.summary import flops_of
from sfae_jax.training import loop, train_step, trained_run


def peak_tflops(dtype: str, given: Optional[float] = None) -> Optional[float]:
  """The device's dense peak for `dtype` (`sfae_jax.runtime.chips`: float32 as XLA runs
  it by default, TF32 on NVIDIA GPUs and bf16 passes on TPU), `given` if set,
  None if unknown (CPU)."""
  if given:
    return given
  chip = chips.chip_of_kind(jax.devices()[0].device_kind)
  return chip.peak(dtype) if chip is not None else None


@dataclasses.dataclass
class Timing:
  name: str
  seconds: float        # per call
  images: int           # per call
  flops: Optional[float] = None  # per call, XLA's count

  @property
  def images_per_s(self) -> float:
    return self.images / self.seconds

  def line(self, peak: Optional[float]) -> str:
    text = (f"{self.name:<34} {self.seconds * 1e3:9.1f} ms {self.images_per_s:9.1f} "
            "images/s")
    if self.flops:
      rate = self.flops / self.seconds
      text += f" {rate / 1e9:9.1f} GFLOP/s"
      if peak:
        text += f"  MFU {100 * rate / (peak * 1e12):5.1f} %"
    return text


def time_calls(fn: Callable[[], object], steps: int) -> float:
  """Seconds per call of `fn`, after one untimed warm-up call. Calls are
  dispatched back to back, as a training loop does, and the clock stops when the
  last one's result is ready."""
  jax.block_until_ready(fn())
  start = time.perf_counter()
  out = None
  for _ in range(steps):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / steps


def random_batch(model, n: int, seed: int = 0) -> dict:
  """A host batch shaped like the pipeline's for `model`: stored faces,
  landmarks of its scheme, AU labels and, for an intensity head, intensities."""
  rng = np.random.default_rng(seed)
  size = align.ALIGNED_SIZE
  points = schemes.get_scheme(model.landmark_scheme).num_points
  lms = rng.uniform(0.3 * size, 0.7 * size, (n, points, 2))
  batch = {"image": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
           "landmarks": lms.astype(np.float32),
           "au": (rng.random((n, len(model.au_ids))) < 0.3).astype(np.int8)}
  if model.intensity_au_ids:
    batch["intensity"] = rng.integers(0, 6, (n, len(model.intensity_au_ids)),
                                      dtype=np.int8)
  return batch


class Setup:
  """Model, mesh, state and compiled steps for `config` on every local device."""

  def __init__(self, config):
    self.config = config
    self.mesh = sharding.make_mesh()
    self.model, aus = trained_run.model_for(config)
    schedule, tx, init = train_step.train_setup(self.model, config, 1000)
    self.state = jax.jit(init, out_shardings=sharding.replicated(self.mesh))(
        jax.random.key(0))
    self.key = jax.device_put(jax.random.key(1), sharding.replicated(self.mesh))
    weights = np.ones(len(aus), np.float32)
    self.train = train_step.make_train_step(self.model, tx, schedule, config,
                                            weights, self.mesh)
    self.eval = train_step.make_eval_step(self.model, config, self.mesh)
    self._compiled_train = None
    # FLOPs are counted on the 'xla' form of the same maths: XLA's cost analysis
    # sees one iteration of the 'cpu' form's group loops and none of its
    # hand-written backward's structure.
    counted = self.model.clone(conv_impl="xla")
    self.train_for_flops = train_step.make_train_step(counted, tx, schedule, config,
                                                      weights, self.mesh)
    self.eval_for_flops = train_step.make_eval_step(counted, config, self.mesh)

  def put(self, batch: dict) -> dict:
    return sharding.put_batch(batch, self.mesh)

  def compiled_train(self, batch):
    """The train step compiled for `batch`'s shapes, once per Setup (the full
    model takes minutes to compile on a CPU)."""
    if self._compiled_train is None:
      self._compiled_train = self.train.lower(self.state, batch, self.key).compile()
    return self._compiled_train

  def time_train(self, steps: int) -> Timing:
    c = self.config
    batch = self.put(random_batch(self.model, c.batch_size))
    compiled = self.compiled_train(batch)

    def run():
      self.state, out = compiled(self.state, batch, self.key)
      return out["loss"]

    seconds = time_calls(run, steps)
    flops = flops_of(self.train_for_flops.lower(self.state, batch, self.key))
    return Timing("train step (real: augment+loss+update)", seconds, c.batch_size,
                  flops)

  def time_eval(self, batch_size: int, steps: int) -> Timing:
    batch = random_batch(self.model, batch_size)
    batch = self.put({k: batch[k] for k in ("image", "landmarks")})
    variables = {"params": self.state.params, "batch_stats": self.state.batch_stats}
    compiled = self.eval.lower(variables, batch).compile()
    seconds = time_calls(lambda: compiled(variables, batch), steps)
    return Timing("forward (eval, centre crop)", seconds, batch_size,
                  flops_of(self.eval_for_flops.lower(variables, batch)))

  def time_end_to_end(self, data_iter, steps: int) -> Timing:
    """The train loop's step as `train.py` runs it (`loop.LoopStep`): next
    batch, put, step, and the previous step's loss read back one step late."""
    loop_step = loop.LoopStep(self.train, self.mesh, self.key,
                              bool(self.model.intensity_au_ids),
                              compiled=self._compiled_train)
    count = itertools.count()

    def run():
      self.state, out = loop_step(self.state, data_iter, next(count))
      return out["loss"]

    seconds = time_calls(run, steps)
    return Timing("train loop end to end (grain + step)", seconds,
                  self.config.batch_size)


def _component_modules(model, size: int):
  """(name, module factory taking `train`, input shapes) for each component of
  `model`, built from its own fields exactly as `SFAENet.__call__` builds them."""
  dt, impl = model.dtype, model.conv_impl

  def norm(train):
    return functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=model.bn_momentum, epsilon=1e-5, dtype=dt)

  class Stem(nn.Module):
    train: bool

    @nn.compact
    def __call__(self, x):
      x = x.astype(dt) / 127.5 - 1.0
      for f in model.stem_features:
        x = HierarchicalRegionBlock(f, norm(self.train), model.region_grids,
                                    dtype=dt, conv_impl=impl)(x)
        x = nn.max_pool(x, (2, 2), (2, 2))
      return x

  side = size // 4
  shared = (side, side, model.stem_features[-1])
  out = [("stem (region-conv blocks)", lambda t: Stem(t), [(size, size, 3)])]
  if model.use_lrl:
    out.append(("LRL landmark branch (f2)", lambda t: LandmarkBranch(
        model.num_points, (size, size), norm(t), model.landmark_features,
        model.landmark_hidden, dtype=dt, conv_impl=impl),
                [shared]))
    maps = (len(model.au_ids), side, side)
    if model.attention_refine:
      out.append(("LRL attention refinement", lambda t: AttentionRefinement(
          norm(t), model.refine_features, dtype=dt, conv_impl=impl), [maps]))
    if model.local_branch == "deep":
      local = lambda t: LocalAUBranch(model.local_features, norm(t), dtype=dt,
                                      conv_impl=impl)
    else:
      local = lambda t: LightLocalAUBranch(model.light_local_features, norm(t),
                                           dtype=dt, conv_impl=impl)
    out.append((f"LRL per-AU local learning (f1, {model.local_branch})", local,
                [shared, maps]))
  if model.use_msl:
    out.append(("MSL (f3)", lambda t: MultiScaleRegionLearning(
        model.msl_features, norm(t), model.msl_expansion, dtype=dt,
        conv_impl=impl), [shared]))
  return out


def time_components(model, size: int, batch: int, eval_batch: int, steps: int
                    ) -> list[tuple[Timing, Timing]]:
  """(train fwd+bwd, eval forward) timings of each component, one device."""
  results = []
  counted = dict((name, make) for name, make, _ in
                 _component_modules(model.clone(conv_impl="xla"), size))
  for name, make, shapes in _component_modules(model, size):
    key = jax.random.key(0)
    def inputs(n):
      return [jax.random.uniform(key, (n,) + s, jnp.float32) for s in shapes]
    train_mod, eval_mod = make(True), make(False)
    variables = jax.jit(eval_mod.init)(key, *inputs(1))

    def loss(params, *xs, mod=train_mod):
      out, _ = mod.apply({**variables, "params": params}, *xs,
                         mutable=["batch_stats"])
      return sum(jnp.sum(o.astype(jnp.float32)) for o in jax.tree.leaves(out))

    # The stem's input is the image: no input gradient, as in the model.
    argnums = (0,) if name.startswith("stem") else (0, 1)
    xs = inputs(batch)
    grad = jax.jit(jax.grad(loss, argnums=argnums)).lower(
        variables["params"], *xs).compile()
    grad_flops = flops_of(jax.jit(jax.grad(
        functools.partial(loss, mod=counted[name](True)), argnums=argnums)).lower(
            variables["params"], *xs))
    t_train = time_calls(lambda: grad(variables["params"], *xs), steps)
    xe = inputs(eval_batch)
    fwd = jax.jit(eval_mod.apply).lower(variables, *xe).compile()
    fwd_flops = flops_of(jax.jit(counted[name](False).apply).lower(variables, *xe))
    t_eval = time_calls(lambda: fwd(variables, *xe), steps)
    results.append((Timing(name, t_train, batch, grad_flops),
                    Timing(name, t_eval, eval_batch, fwd_flops)))
  return results


def report(config, *, eval_batch: int, steps: int, breakdown: bool,
           data_iter=None, peak: Optional[float] = None, out=print) -> dict:
  """Runs the benchmark for `config` and prints it; returns the timings by name."""
  dev = jax.devices()[0]
  dtype = config.dtype
  peak = peak_tflops(dtype, peak)
  setup = Setup(config)
  model = setup.model
  out(f"{config.model_name} (conv {conv.resolve_impl(model.conv_impl)}), {config.input_size}x"
      f"{config.input_size} input, {dtype}; {jax.device_count()} x {dev.device_kind} "
      f"({dev.platform}); peak {f'{peak:g} TFLOP/s per device' if peak else 'unknown (--peak_tflops)'}")
  n = jax.device_count()
  results = {}
  train = setup.time_train(steps)
  train.flops = train.flops and train.flops * n  # cost analysis is per device
  results["train"] = train
  out(f"batch {config.batch_size} (global):")
  out("  " + train.line(peak and peak * n))
  ev = setup.time_eval(eval_batch, steps)
  ev.flops = ev.flops and ev.flops * n
  results["eval"] = ev
  out(f"batch {eval_batch} (global):")
  out("  " + ev.line(peak and peak * n))
  if data_iter is not None:
    e2e = setup.time_end_to_end(data_iter, steps)
    results["end_to_end"] = e2e
    out(f"  {e2e.line(None)}  = {100 * train.seconds / e2e.seconds:.0f} % of the "
        "step alone")
  if breakdown:
    per_device = config.batch_size // n
    comps = time_components(model, config.input_size, per_device,
                            max(1, eval_batch // n), steps)
    out(f"per component on one device (train: fwd+bwd at batch {per_device}; "
        f"eval: forward at batch {max(1, eval_batch // n)}):")
    out(f"  {'component':<34} {'train ms':>9} {'share':>6} {'GFLOP/s':>8}   "
        f"{'eval ms':>8} {'share':>6} {'GFLOP/s':>8}")
    train_ms = train.seconds * 1e3
    eval_ms = ev.seconds * 1e3 * (max(1, eval_batch // n) * n / eval_batch)
    rest_t, rest_e = train_ms, eval_ms
    for t, e in comps:
      rest_t -= t.seconds * 1e3
      rest_e -= e.seconds * 1e3
      out(f"  {t.name:<34} {t.seconds * 1e3:9.1f} {100 * t.seconds * 1e3 / train_ms:5.0f}%"
          f" {(t.flops or 0) / t.seconds / 1e9:8.1f}   {e.seconds * 1e3:8.1f}"
          f" {100 * e.seconds * 1e3 / eval_ms:5.0f}% {(e.flops or 0) / e.seconds / 1e9:8.1f}")
      results[t.name] = (t, e)
    out(f"  {'rest: augment, loss, update, head':<34} {rest_t:9.1f} "
        f"{100 * rest_t / train_ms:5.0f}%          {rest_e:8.1f} "
        f"{100 * rest_e / eval_ms:5.0f}%")
  return results


def run_benchmark(config, args) -> None:
  config.unlock()
  if args.batch:
    config.batch_size = args.batch
  if args.dtype:
    config.dtype = args.dtype
  if args.conv_impl:
    config.conv_impl = args.conv_impl
  steps = args.steps
  data_iter = None
  if args.data_dir:
    workers = (config.grain_workers if args.grain_workers is None
               else args.grain_workers)
    train_split, _ = sources.splits(config)
    source = sources.open_split(args.data_dir, config.dataset_config, train_split,
                                dataset=registry.of_config(config).name)
    host_batch = sharding.local_batch_size(config.batch_size, sharding.make_mesh())
    data_iter = loader.Prefetch(iter(loader.train_loader(
        source, host_batch, config.seed, workers)))
  report(config, eval_batch=args.eval_batch, steps=steps,
                   breakdown=not args.no_breakdown, data_iter=data_iter,
                   peak=args.peak_tflops)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m sfae_jax.tools.benchmark", description=__doc__.splitlines()[0],
      epilog="--config.FIELD=VALUE overrides a field of the config, as train's "
      "flags do (e.g. --config.input_size=96).")
  parser.add_argument("--config", default="configs/default.py",
                      help="benchmark this config's model and recipe (path[:arg])")
  parser.add_argument("--batch", type=int, help="global train batch "
                      "(default: the config's batch_size)")
  parser.add_argument("--eval_batch", type=int, default=32,
                      help="global batch of the forward pass")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"),
                      help="default: the config's dtype")
  parser.add_argument("--conv_impl", choices=("auto",) + conv.IMPLS,
                      help="convolution implementation (sfae_jax.models.conv)")
  parser.add_argument("--steps", type=int, default=5, help="timed calls of each")
  parser.add_argument("--data_dir", help="a built TFDS folder: also time the train "
                      "loop end to end through the config's grain pipeline")
  parser.add_argument("--grain_workers", type=int,
                      help="with --data_dir; default: the config's")
  parser.add_argument("--peak_tflops", type=float,
                      help="device peak for MFU where it is not known")
  parser.add_argument("--no_breakdown", action="store_true",
                      help="skip the per-component timings")
  args, overrides = parser.parse_known_args(argv)
  try:
    config = cli.config_from_args(args.config, overrides)
  except (OSError, ValueError) as e:
    parser.error(str(e))
  run_benchmark(config, args)


if __name__ == "__main__":
  main()
