"""Power and false alarms of the first-language analysis on planted timing
differences: the temporal power table.

  python -m sfae_jax.analyze.power --out runs/temporal_power [--workers 2]

For every cell of the grid (lag x episode length) and every seed, two data sets
of `planted.pair_timing_study` (24 speakers, 12 per language, 2 videos of
30-80 s at 30 fps each): a planted one (AU12 leads AU10 by the lag in language
A, follows it in B) and its null (each speaker's order a coin flip). On each:

* the temporal model (`temporal.predict_language`) and its permutation test;
* the lead-lag features (`features.LEAD`, speaker as the unit, BH-FDR across
  the family of pairs x lags): found when the planted pair is at q < 0.05 at
  some lag, a false alarm when any pair is;
* the average features + logistic regression (`classify.classify`) and its
  permutation test.

Found means p < 0.05 on planted data, a false alarm p < 0.05 on its null.
Each data set's results are a file in --out, written as it finishes (a rerun
skips what is there, so a killed run resumes); then the table is printed.

Seeds and settings are fixed here, before any result: seeds FIRST_SEED..
(`--first-seed`), 39 permutations (p cannot go below 0.025), the models'
default settings (`--temporal FIELD=VALUE` changes one; the folder records
them all and refuses results of others).

`--noise S` repeats the grid with a less reliable detector (per-frame noise of
sd S on the planted AUs' logits instead of 1): its data sets are named
apart, so they can share the folder.

  python -m sfae_jax.analyze.power --write DIR --lag 0.25 --episode 0.33 [--null]

writes one such data set (DIR/manifest.csv and its track CSVs) for
`python -m sfae_jax.analyze --manifest DIR/manifest.csv --out R --temporal`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import pathlib
import sys
import time

import numpy as np

from sfae_jax.analyze import classify, features, planted, stats, temporal
from sfae_jax.analyze import job
from sfae_jax.runtime import files

ALPHA = 0.05
LAGS_S = (0.1, 0.25, 0.5)
EPISODES_S = (0.2, 0.33, 1.0)
FIRST_SEED = 2000   # the pilot runs that chose the settings used seeds below 100
MODELS = ("temporal", "lead_lag", "averages")
PLANTED_PAIR = f"AU{min(planted.FIRST, planted.SECOND):02d}-AU" \
               f"{max(planted.FIRST, planted.SECOND):02d}"


def _settings(permutations: int, config: temporal.TemporalConfig) -> dict:
  return {"permutations": permutations, "temporal": dataclasses.asdict(config)}


def one(lag_s: float, episode_s: float, with_effect: bool, seed: int,
        permutations: int, noise: float = 1.0,
        config: temporal.TemporalConfig | None = None) -> dict:
  """The three analyses of one data set (`with_effect`: planted, else its null)."""
  manifest, tracks = planted.pair_timing_study(seed, lag_s, episode_s, with_effect,
                                               noise=noise)
  out = {"lag_s": lag_s, "episode_s": episode_s, "planted": with_effect,
         "seed": seed, "noise": noise,
         **_settings(permutations, config or temporal.TemporalConfig())}
  t0 = time.time()
  deep = temporal.predict_language(manifest, tracks, config,
                                  n_permutations=permutations, seed=seed)
  out["temporal"] = {"p": deep.p_value, "balanced_accuracy":
                     deep.balanced_accuracy, "seconds": time.time() - t0}
  t0 = time.time()
  videos = job.video_table(manifest, tracks)
  lead = stats.group_tests(features.speaker_table(videos), features.LEAD,
                           n_boot=0, seed=seed)
  hits = lead[lead["q"] < ALPHA]
  out["lead_lag"] = {
      "found": bool((hits["au"] == PLANTED_PAIR).any()),
      "any": bool(len(hits)), "family": int(lead["p"].notna().sum()),
      "min_q_planted_pair": float(lead.loc[lead["au"] == PLANTED_PAIR,
                                           "q"].min()),
      "seconds": time.time() - t0}
  t0 = time.time()
  cols = [c for c in videos.columns if c.startswith(("AU", "co_"))]
  avg = classify.classify(videos, cols, n_permutations=permutations, seed=seed)
  out["averages"] = {"p": avg.p_value, "balanced_accuracy":
                     avg.balanced_accuracy, "seconds": time.time() - t0}
  return out


def _positive(result: dict, model: str) -> bool:
  """A find on planted data, a false alarm on a null."""
  r = result[model]
  if model == "lead_lag":
    return r["found"] if result["planted"] else r["any"]
  return r["p"] < ALPHA


def table(results: list, lags=LAGS_S, episodes=EPISODES_S, noise=1.0) -> str:
  """Markdown: per cell, planted found and null false alarms of each model."""
  results = [r for r in results if r.get("noise", 1.0) == noise]
  head = ["lag (s)", "episode (s)"]
  for name in ("temporal model", "lead-lag features", "average features"):
    head += [f"{name}: found", "false alarms"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
  for lag in lags:
    for ep in episodes:
      cell = [r for r in results if r["lag_s"] == lag and r["episode_s"] == ep]
      row = [f"{lag:g}", f"{ep:g}"]
      for model in MODELS:
        for with_effect in (True, False):
          rs = [r for r in cell if r["planted"] == with_effect]
          hits = sum(_positive(r, model) for r in rs)
          row.append(f"{hits} / {len(rs)}" if rs else "")
      lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


def summary(results: list) -> str:
  """Mean balanced accuracies and seconds per data set."""
  lines = []
  for model in ("temporal", "averages"):
    for with_effect in (True, False):
      rs = [r[model] for r in results if r["planted"] == with_effect]
      if rs:
        lines.append(f"{model}, {'planted' if with_effect else 'null'}: mean "
                     f"balanced accuracy {np.mean([r['balanced_accuracy'] for r in rs]):.3f}")
  for model in MODELS:
    secs = [r[model]["seconds"] for r in results]
    if secs:
      lines.append(f"{model}: {np.mean(secs):.1f} s per data set")
  family = {r["lead_lag"]["family"] for r in results}
  if family:
    lines.append(f"lead-lag family: {sorted(family)} tests (pairs x lags)")
  return "\n".join(lines)


def _key(lag_s, episode_s, with_effect, seed, noise=1.0) -> str:
  return (f"lag{lag_s:g}_episode{episode_s:g}_{'planted' if with_effect else 'null'}"
          f"_seed{seed}" + (f"_noise{noise:g}" if noise != 1.0 else ""))


def _read(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise SystemExit(f"error: {path} cannot be read ({e}); delete it to "
                     "recompute that data set") from e


def _write(path: str, value) -> None:
  files.write_atomically(path, json.dumps(value, indent=1))


def _one_task(task) -> tuple:
  key, args, path = task
  result = one(*args)
  _write(path, result)
  return key, result


def _single_threaded_workers() -> None:
  """Worker processes share the cores: one XLA thread each."""
  flags = os.environ.get("XLA_FLAGS", "")
  if "intra_op_parallelism_threads" not in flags:
    os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                               "intra_op_parallelism_threads=1").strip()


def run(out: str, seeds: int, permutations: int, lags=LAGS_S,
        episodes=EPISODES_S, workers: int = 1, noise: float = 1.0,
        config: temporal.TemporalConfig | None = None,
        first_seed: int = FIRST_SEED) -> list:
  """Every data set of the grid not yet in the folder `out` (one JSON file
  each, written when it finishes, so a killed run resumes), over `workers`
  processes; returns all of the grid's results."""
  os.makedirs(out, exist_ok=True)
  config = config or temporal.TemporalConfig()
  settings = _settings(permutations, config)
  settings_path = os.path.join(out, "settings.json")
  if os.path.exists(settings_path) and _read(settings_path) != settings:
    raise SystemExit(f"error: {out} holds results computed with other settings "
                     f"({settings_path}); pass another --out")
  _write(settings_path, settings)
  grid = [(lag, ep, planted, first_seed + s, noise) for s in range(seeds)
          for lag in lags for ep in episodes for planted in (True, False)]
  paths = {_key(*g): os.path.join(out, _key(*g) + ".json") for g in grid}
  results = {k: _read(p) for k, p in paths.items() if os.path.exists(p)}
  todo = [(_key(*g), (*g[:4], permutations, noise, config), paths[_key(*g)])
          for g in grid if _key(*g) not in results]
  if results:
    print(f"{len(results)} data sets already in {out}; {len(todo)} to go",
          file=sys.stderr)
  t0 = time.time()
  if workers > 1:
    _single_threaded_workers()
    pool = multiprocessing.get_context("spawn").Pool(workers)
    finished = pool.imap_unordered(_one_task, todo)
  else:
    pool, finished = None, map(_one_task, todo)
  try:
    for k, (key, r) in enumerate(finished):
      results[key] = r
      eta = (time.time() - t0) / (k + 1) * (len(todo) - k - 1) / 60
      print(f"[{k + 1}/{len(todo)}] {key}: temporal p={r['temporal']['p']:.3f}, "
            f"lead-lag {'found' if r['lead_lag']['found'] else '-'}"
            f"{' (any)' if r['lead_lag']['any'] else ''}, averages "
            f"p={r['averages']['p']:.3f}; ETA {eta:.0f} min",
            file=sys.stderr, flush=True)
  finally:
    if pool is not None:
      pool.terminate()
  return [results[_key(*g)] for g in grid]


def _config(parser, overrides: list) -> temporal.TemporalConfig:
  """TemporalConfig with FIELD=VALUE overrides, each of its field's type."""
  fields = {f.name: f for f in dataclasses.fields(temporal.TemporalConfig)}
  values = {}
  for item in overrides:
    name, _, value = item.partition("=")
    if name not in fields or not value:
      parser.error(f"--temporal {item!r}: expected FIELD=VALUE with FIELD one of "
                   f"{', '.join(fields)}")
    kind = type(getattr(temporal.TemporalConfig(), name))
    try:
      values[name] = kind(value)
    except ValueError:
      parser.error(f"--temporal {item!r}: {name} takes a {kind.__name__}")
  return temporal.TemporalConfig(**values)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m sfae_jax.analyze.power",
      description="Power and false alarms on planted AU timing differences.")
  parser.add_argument("--out", default="runs/temporal_power",
                      help="results folder, one file per data set (resumable)")
  parser.add_argument("--workers", type=int, default=1,
                      help="processes (each single-threaded when more than 1)")
  parser.add_argument("--seeds", type=int, default=10, help="per cell")
  parser.add_argument("--permutations", type=int, default=39)
  parser.add_argument("--lags", default=",".join(map(str, LAGS_S)),
                      help="seconds, comma-separated")
  parser.add_argument("--episodes", default=",".join(map(str, EPISODES_S)),
                      help="seconds, comma-separated")
  parser.add_argument("--noise", type=float, default=1.0,
                      help="sd of the per-frame noise on the planted AUs' logits")
  parser.add_argument("--write", help="write one data set here and stop")
  parser.add_argument("--lag", type=float, default=0.25)
  parser.add_argument("--episode", type=float, default=0.33)
  parser.add_argument("--first-seed", type=int, default=FIRST_SEED,
                      help="seeds first-seed .. first-seed + seeds - 1 per cell")
  parser.add_argument("--temporal", action="append", default=[],
                      metavar="FIELD=VALUE",
                      help="a temporal.TemporalConfig field, e.g. rank=4")
  parser.add_argument("--seed", type=int, default=FIRST_SEED)
  parser.add_argument("--null", action="store_true")
  args = parser.parse_args(argv)
  if args.write:
    os.makedirs(args.write, exist_ok=True)
    manifest, tracks = planted.pair_timing_study(
        args.seed, args.lag, args.episode, planted=not args.null,
        noise=args.noise)
    print(planted.write(pathlib.Path(args.write), manifest, tracks))
    return 0
  try:
    lags = tuple(float(v) for v in args.lags.split(","))
    episodes = tuple(float(v) for v in args.episodes.split(","))
  except ValueError:
    parser.error(f"--lags/--episodes take comma-separated seconds, got "
                 f"{args.lags!r} / {args.episodes!r}")
  results = run(args.out, args.seeds, args.permutations, lags, episodes,
                args.workers, args.noise, _config(parser, args.temporal),
                args.first_seed)
  print(table(results, lags, episodes, args.noise))
  print(summary(results))
  return 0


if __name__ == "__main__":
  sys.exit(main())
