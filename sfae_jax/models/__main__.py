"""Model size and speed.

  python -m sfae_jax.models --summary               # params + GFLOPs per image of
                                                    # configs/default.py's model
  python -m sfae_jax.models --benchmark --batch 16  # the real train step, forward,
                                                    # per-component breakdown
  python -m sfae_jax.models --benchmark --config configs/synthetic.py \
      --data_dir data/tfds                          # + end to end through grain

FLOPs are XLA's count (a multiply-add is two FLOPs). The benchmark times what users
run: `train_step.make_train_step` (augmentation, full loss, shard_map, donation) and
`make_eval_step`, for the model and recipe of `--config` (see `sfae_jax.benchmark`).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os

import jax
import jax.numpy as jnp

from sfae_jax.face import schemes
from sfae_jax.models import conv
from sfae_jax.models import landmark_attention as la
from sfae_jax.models.registry import create_model

# Ablation variants that change the model (sfae_jax.ablate.VARIANTS has the rest).
SUMMARY_VARIANTS = ("full", "light_local", "refine", "relation", "no_lrl",
                    "no_msl", "stem_only")


def abstract_variables(model, size: int):
  """The model's variables as shapes only, for a 1 x size x size x 3 input."""
  return jax.eval_shape(functools.partial(model.init, train=False),
                        jax.random.key(0), jnp.zeros((1, size, size, 3)))


def count_params(model, size: int) -> int:
  variables = abstract_variables(model, size)
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


def forward_flops(model, size: int) -> float:
  """XLA's FLOP count of one image's eval-mode forward pass, counted on the 'xla'
  convolutions (the 'cpu' form's group loops would be counted once)."""
  model = model.clone(conv_impl="xla")
  variables = abstract_variables(model, size)
  from sfae_jax.benchmark import flops_of  # pylint: disable=g-import-not-at-top
  fwd = jax.jit(functools.partial(model.apply, train=False))
  return flops_of(fwd.lower(variables, jax.ShapeDtypeStruct((1, size, size, 3),
                                                            jnp.float32)))


def summary(config, size: int | None = None) -> None:
  """Parameters and forward GFLOPs per image of `config`'s model and variants:
  its landmark scheme (49 points for BP4D), its AUs (BP4D's 12) and input size."""
  from sfae_jax.ablate import variant_config  # pylint: disable=g-import-not-at-top
  size = size or config.input_size
  scheme = schemes.IBUG68 if config.dataset_config == "ibug68" else schemes.BP4D49
  points = schemes.get_scheme(scheme).num_points
  print(f"{config.model}, {points} landmarks, {len(la.BP4D_AUS)} AUs, "
        f"{size}x{size} input")
  print(f"{'variant':<12} {'params':>12} {'GFLOPs/image':>13}")
  for name in SUMMARY_VARIANTS:
    model = create_model(variant_config(config, name, 0), la.BP4D_AUS, scheme)
    print(f"{name:<12} {count_params(model, size):>12,} "
          f"{forward_flops(model, size) / 1e9:>13.2f}")


def load_config(spec: str):
  """'configs/x.py[:arg]' -> the ConfigDict its get_config(arg) returns."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise OSError(f"--config {path}: no such file (run from the repository root, "
                  "or give the path to a config such as configs/default.py).")
  module_spec = importlib.util.spec_from_file_location("benchmark_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def run_benchmark(config, args) -> None:
  from sfae_jax import benchmark  # pylint: disable=g-import-not-at-top
  config.unlock()
  if args.batch:
    config.batch_size = args.batch
  if args.dtype:
    config.dtype = args.dtype
  if args.conv_impl:
    config.conv_impl = args.conv_impl
  steps = args.repeats or args.steps
  data_iter = None
  if args.data_dir:
    from sfae_jax import sharding  # pylint: disable=g-import-not-at-top
    from sfae_jax.data import pipeline  # pylint: disable=g-import-not-at-top
    workers = (config.grain_workers if args.grain_workers is None
               else args.grain_workers)
    train_split, _ = pipeline.splits(config)
    source = pipeline.open_split(args.data_dir, config.dataset_config, train_split)
    host_batch = sharding.local_batch_size(config.batch_size, sharding.make_mesh())
    data_iter = pipeline.Prefetch(iter(pipeline.train_loader(
        source, host_batch, config.seed, workers)))
  benchmark.report(config, eval_batch=args.eval_batch, steps=steps,
                   breakdown=not args.no_breakdown, data_iter=data_iter,
                   peak=args.peak_tflops)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m sfae_jax.models",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--summary", action="store_true",
                      help="print parameter count and GFLOPs per image")
  parser.add_argument("--benchmark", action="store_true",
                      help="time the real train step, the eval forward and each "
                      "component (and the input pipeline with --data_dir)")
  parser.add_argument("--tiny", action="store_true",
                      help="--summary of the tiny test variant")
  parser.add_argument("--size", type=int,
                      help="--summary input side in pixels (default: the config's)")
  parser.add_argument("--config", default="configs/default.py",
                      help="summarise / benchmark this config's model (and "
                      "recipe) (path[:arg])")
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
  parser.add_argument("--repeats", type=int, help=argparse.SUPPRESS)  # old name
  args = parser.parse_args(argv)
  if not (args.summary or args.benchmark):
    parser.error("nothing to do: pass --summary and/or --benchmark")
  try:
    config = load_config(args.config)
  except (OSError, ValueError, AttributeError) as e:
    parser.error(str(e))
  if args.summary:
    if args.tiny:
      config.unlock()
      config.model = "sfae_net_tiny"
    summary(config, args.size)
  if args.benchmark:
    run_benchmark(config, args)


if __name__ == "__main__":
  main()
