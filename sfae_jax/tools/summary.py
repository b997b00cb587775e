"""Model size: parameters and forward GFLOPs per image of a config's model and its
ablation variants.

  python -m sfae_jax.tools.summary                        # configs/default.py's model
  python -m sfae_jax.tools.summary --config configs/synthetic.py [--size 96]

FLOPs are XLA's count (a multiply-add is two FLOPs). Speed is
`python -m sfae_jax.tools.benchmark`'s.
"""

from __future__ import annotations

import argparse
import functools
from typing import Optional

import jax
import jax.numpy as jnp

from sfae_jax.face import schemes
from sfae_jax.runtime import cli
from sfae_jax.tools.ablate import applies, variant_config
from sfae_jax.training import checkpoints, trained_run

# Ablation variants that change the model (sfae_jax.tools.ablate.VARIANTS has the rest).
SUMMARY_VARIANTS = ("full", "light_local", "refine", "relation", "no_lrl",
                    "no_msl", "stem_only")


def flops_of(program) -> Optional[float]:
  """XLA's FLOP count of a lowered or compiled program."""
  cost = program.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost["flops"]) if cost and "flops" in cost else None


def count_params(model, size: int) -> int:
  variables = checkpoints.abstract_variables(model, size, None)
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


def forward_flops(model, size: int) -> float:
  """XLA's FLOP count of one image's eval-mode forward pass, counted on the 'xla'
  convolutions (the 'cpu' form's group loops would be counted once)."""
  model = model.clone(conv_impl="xla")
  variables = checkpoints.abstract_variables(model, size, None)
  fwd = jax.jit(functools.partial(model.apply, train=False))
  return flops_of(fwd.lower(variables, jax.ShapeDtypeStruct((1, size, size, 3),
                                                            jnp.float32)))


def summary(config, size: int | None = None) -> None:
  """Parameters and forward GFLOPs per image of `config`'s model and of the
  ablation variants that apply to it, as a run of `config` builds it: its
  dataset's AUs and intensity head, its landmark scheme, its input size."""
  size = size or config.input_size
  model, aus = trained_run.model_for(config)
  points = schemes.get_scheme(model.landmark_scheme).num_points
  print(f"{config.model_name}, {points} landmarks, {len(aus)} AUs "
        f"({len(model.intensity_au_ids)} with intensity), {size}x{size} input")
  print(f"{'variant':<12} {'params':>12} {'GFLOPs/image':>13}")
  for name in SUMMARY_VARIANTS:
    if not applies(config, name):
      continue
    model, _ = trained_run.model_for(variant_config(config, name, 0))
    print(f"{name:<12} {count_params(model, size):>12,} "
          f"{forward_flops(model, size) / 1e9:>13.2f}")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m sfae_jax.tools.summary", description=__doc__.splitlines()[0],
      epilog="--config.FIELD=VALUE overrides a field of the config, as train's "
      "flags do (e.g. --config.input_size=96).")
  parser.add_argument("--config", default="configs/default.py",
                      help="summarise this config's model (path[:arg])")
  parser.add_argument("--tiny", action="store_true",
                      help="the tiny test variant of the config's model")
  parser.add_argument("--size", type=int,
                      help="input side in pixels (default: the config's)")
  args, overrides = parser.parse_known_args(argv)
  try:
    config = cli.config_from_args(args.config, overrides)
  except (OSError, ValueError) as e:
    parser.error(str(e))
  if args.tiny:
    config.unlock()
    config.model_name = "sfae_net_tiny"
  summary(config, args.size)


if __name__ == "__main__":
  main()
