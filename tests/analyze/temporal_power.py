"""Power and false-positive rate of both first-language models (issue 16).

  python -m tests.analyze.temporal_power --seeds 10 --permutations 39 \\
      --out runs/temporal_power.json

For each generator seed, a planted data set (`synthetic_tracks.temporal_study`:
24 speakers, 12 per language, a temporal-only difference) and a null one (each
speaker's onset order a coin flip): the average-feature classifier
(`analyze.classify`) and the temporal model (`analyze.temporal`), each with its
permutation test. Results are appended to --out as they come (a rerun skips
what is there) and tabulated: how often p < 0.05, mean balanced accuracy.

  python -m tests.analyze.temporal_power --write DIR [--seed 0] [--null]

writes one such data set (DIR/manifest.csv and its track CSVs) for
`python -m sfae_jax.analyze --manifest DIR/manifest.csv --out R --temporal`.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from sfae_jax import analyze
from sfae_jax.analyze import classify, temporal
from tests.analyze import synthetic_tracks

ALPHA = 0.05


def one(seed: int, planted: bool, permutations: int) -> dict:
  manifest, tracks = synthetic_tracks.temporal_study(seed, planted=planted)
  videos = analyze.video_table(manifest, tracks)
  cols = [c for c in videos.columns if c.startswith(("AU", "co_"))]
  t0 = time.time()
  avg = classify.classify(videos, cols, n_permutations=permutations, seed=seed)
  t1 = time.time()
  tmp = temporal.classify(manifest, tracks, n_permutations=permutations,
                          seed=seed)
  t2 = time.time()
  return {"seed": seed, "planted": planted, "permutations": permutations,
          "averages": {"balanced_accuracy": avg.balanced_accuracy,
                       "p": avg.p_value, "seconds": t1 - t0},
          "temporal": {"balanced_accuracy": tmp.balanced_accuracy,
                       "p": tmp.p_value, "seconds": t2 - t1}}


def table(results: list) -> str:
  lines = ["| data | model | p < 0.05 (of seeds) | mean balanced accuracy | "
           "median p | seconds per data set |", "|---|---|---:|---:|---:|---:|"]
  for planted in (True, False):
    rows = [r for r in results if r["planted"] == planted]
    if not rows:
      continue
    for model in ("averages", "temporal"):
      ps = np.array([r[model]["p"] for r in rows])
      ba = np.array([r[model]["balanced_accuracy"] for r in rows])
      secs = np.mean([r[model]["seconds"] for r in rows])
      name = ("average features + logistic regression" if model == "averages"
              else "temporal model")
      lines.append(f"| {'planted (temporal only)' if planted else 'null'} | "
                   f"{name} | {int((ps < ALPHA).sum())} / {len(rows)} | "
                   f"{ba.mean():.3f} | {np.median(ps):.3f} | {secs:.0f} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m tests.analyze.temporal_power")
  parser.add_argument("--seeds", type=int, default=10)
  parser.add_argument("--permutations", type=int, default=39)
  parser.add_argument("--out", default="runs/temporal_power.json")
  parser.add_argument("--write", help="write one data set here and stop")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--null", action="store_true")
  args = parser.parse_args(argv)
  if args.write:
    import pathlib  # pylint: disable=g-import-not-at-top
    os.makedirs(args.write, exist_ok=True)
    manifest, tracks = synthetic_tracks.temporal_study(args.seed,
                                                       planted=not args.null)
    print(synthetic_tracks.write(pathlib.Path(args.write), manifest, tracks))
    return 0
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  results = json.load(open(args.out)) if os.path.exists(args.out) else []
  done = {(r["seed"], r["planted"]) for r in results
          if r["permutations"] == args.permutations}
  todo = [(s, p) for s in range(args.seeds) for p in (True, False)
          if (s, p) not in done]
  t0 = time.time()
  for k, (seed, planted) in enumerate(todo):
    results.append(one(seed, planted, args.permutations))
    with open(args.out + ".tmp", "w") as f:
      json.dump(results, f, indent=1)
    os.replace(args.out + ".tmp", args.out)
    r = results[-1]
    eta = (time.time() - t0) / (k + 1) * (len(todo) - k - 1) / 60
    print(f"[{k + 1}/{len(todo)}] seed {seed} {'planted' if planted else 'null'}: "
          f"averages p={r['averages']['p']:.3f}, temporal p={r['temporal']['p']:.3f} "
          f"(BA {r['temporal']['balanced_accuracy']:.2f}); ETA {eta:.0f} min",
          file=sys.stderr, flush=True)
  print(table([r for r in results if r["permutations"] == args.permutations]))
  return 0


if __name__ == "__main__":
  sys.exit(main())
