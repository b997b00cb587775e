"""Ablations: train every variant of a config with several seeds, tabulate mean F1.

  python -m sfae_jax.tools.ablate --config configs/ablate.py --workdir runs/ablate
  python -m sfae_jax.tools.ablate --config configs/ablate.py --workdir runs/ablate \
      --variants full,no_lrl --seeds 0,1,2

Every (variant, seed) is an ordinary training run in `WORKDIR/<variant>/seed<k>`
(`sfae_jax.train.train_and_evaluate`: checkpoints, resume, evaluation on the
config's held-out split). A finished run leaves `result.json` and is not run again,
so rerunning the command after a crash or with more seeds only does what is
missing. The table (mean and sample standard deviation of mean F1 over seeds) is
printed and written to `WORKDIR/ablation.md` and `ablation.json`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Sequence

from absl import app, flags, logging
from etils import epath

from sfae_jax import train
from sfae_jax.runtime import cli, compilation_cache
from sfae_jax.training import preemption, workdir_lock

# name -> (what it changes, config overrides). The first is the reference.
VARIANTS: dict[str, tuple[str, dict]] = {
    "full": ("the config as it is", {}),
    "no_lrl": ("without LRL (no f1, f2, landmark loss)", {"model.use_lrl": False}),
    "no_msl": ("without MSL (no f3)", {"model.use_msl": False}),
    "stem_only": ("stem, global pool, FC", {"model.use_lrl": False,
                                            "model.use_msl": False}),
    "light_local": ("light per-AU local branch", {"model.local_branch": "light"}),
    "gt_attention": ("attention on ground-truth landmarks in training",
                     {"gt_landmark_attention": True}),
    "refine": ("+ JAA-Net attention refinement", {"model.attention_refine": True}),
    "jaanet_dice": ("dice as JAA-Net's code (ratio / batch)",
                    {"dice_divide_by_batch": True}),
    "relation": ("+ inter-AU relation head (beyond the paper)",
                 {"model.au_relation": True}),
    "relation_prior": ("+ relation head, matrix from the co-occurrence prior",
                       {"model.au_relation": True, "relation_prior": True}),
}
# The rows the paper's claims need; `refine` and `jaanet_dice` on request.
DEFAULT_VARIANTS = ("full", "no_lrl", "no_msl", "stem_only", "light_local",
                    "gt_attention")

def applies(config, name: str) -> bool:
  """Does variant `name` change fields `config` has (its model's, for a model
  override)? SFAE-Net's variants do not apply to another model family."""
  for key in VARIANTS[name][1]:
    *parents, leaf = key.split(".")
    block = config
    for parent in parents:
      block = block[parent]
    if leaf not in block:
      return False
  return True


def variant_config(config, name: str, seed: int):
  """`config` with variant `name`'s overrides and `seed`."""
  if name not in VARIANTS:
    raise ValueError(f"Unknown variant {name!r}; choose from {sorted(VARIANTS)}.")
  c = config.copy_and_resolve_references()
  c.unlock()
  for key, value in VARIANTS[name][1].items():  # 'model.use_lrl': c.model.use_lrl
    *parents, leaf = key.split(".")
    block = c
    for parent in parents:
      block = block[parent]
    block[leaf] = value
  c.seed = seed
  return c


def table(results: dict[str, list[dict]], seeds: Sequence[int]) -> str:
  """Markdown: one row per variant, mean F1 as mean +- sd over seeds, each seed's
  F1 and the mean accuracy (all in %)."""
  lines = ["| variant | what changes | mean F1 % (mean ± sd) | per seed "
           f"({', '.join(map(str, seeds))}) | accuracy % |",
           "|---|---|---:|---|---:|"]
  for name, runs in results.items():
    f1 = [100 * r["mean_f1"] for r in runs]
    acc = [100 * r["mean_accuracy"] for r in runs]
    sd = statistics.stdev(f1) if len(f1) > 1 else 0.0
    lines.append(f"| {name} | {VARIANTS[name][0]} | {statistics.mean(f1):.1f} ± "
                 f"{sd:.1f} | {', '.join(f'{v:.1f}' for v in f1)} | "
                 f"{statistics.mean(acc):.1f} |")
  return "\n".join(lines)


def run(config, workdir: str, variants: Sequence[str], seeds: Sequence[int],
        train_fn=train.train_and_evaluate) -> dict[str, list[dict]]:
  """Runs what is missing, returns {variant: [result per seed]}, writes the table."""
  for name in variants:
    variant_config(config, name, 0)  # unknown names fail before any training
  root = epath.Path(workdir)
  todo = [(v, s) for v in variants for s in seeds]
  results: dict[str, list[dict]] = {v: [] for v in variants}
  t0, trained = time.perf_counter(), 0
  for i, (name, seed) in enumerate(todo):
    run_dir = root / name / f"seed{seed}"
    done = run_dir / "result.json"
    if not done.exists():
      eta = ""
      if trained:
        left = sum(not (root / v / f"seed{s}" / "result.json").exists()
                   for v, s in todo[i:])
        eta = f", ETA {(time.perf_counter() - t0) / trained * left / 60:.0f} min"
      print(f"== ablation run {i + 1}/{len(todo)}: {name}, seed {seed}{eta}",
            flush=True)
      result = train_fn(variant_config(config, name, seed), str(run_dir))
      keep = {k: result[k] for k in ("mean_f1", "mean_accuracy", "step", "split")}
      keep["f1"] = [float(x) for x in result["f1"]]
      run_dir.mkdir(parents=True, exist_ok=True)
      done.write_text(json.dumps(keep, indent=1))
      trained += 1
    results[name].append(json.loads(done.read_text()))
  text = table(results, seeds)
  (root / "ablation.md").write_text(text + "\n")
  (root / "ablation.json").write_text(json.dumps(
      {"seeds": list(seeds), "results": results}, indent=1))
  print(text, flush=True)
  return results


# --config and --workdir are `sfae_jax.train`'s (the runs are its runs, and absl
# allows one definition per process).
flags.DEFINE_list("variants", list(DEFAULT_VARIANTS),
                  f"Variants to run, of {sorted(VARIANTS)}.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (config.seed) per variant.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  if args.workdir is None or args.config is None:
    raise app.UsageError("Both --config and --workdir are required, e.g. "
                         "--config configs/ablate.py --workdir runs/ablate")
  logging.set_verbosity(logging.WARNING)
  compilation_cache.enable()  # seeds after the first load their compiled steps
  try:
    seeds = [int(s) for s in args.seeds]
    run(args.config, args.workdir, args.variants, seeds)
  except preemption.Preempted as e:
    print(f"{e} Runs already finished are kept.", file=sys.stderr)
    sys.exit(preemption.EXIT_PREEMPTED)
  except (ValueError, workdir_lock.WorkdirError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
