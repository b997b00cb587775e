"""Speed and quality of `predict` as a user runs it: CPU per frame per stage, wall
time, frames/s, and the rows against a reference CSV.

  python -m sfae_jax.tools.predict_benchmark --workdir RUN CLIP.mp4 \
      --write-reference ref.csv                 # today's rows, to compare with later
  python -m sfae_jax.tools.predict_benchmark --workdir RUN CLIP.mp4 \
      --reference ref.csv [-- --detection exact]  # flags after -- go to predict

It runs `python -m sfae_jax.predict --workdir RUN INPUTS --out CSV` as a child
process (start-up included) and prints

* CPU ms per frame of the whole command, every process included (`getrusage`
  of the finished child and its workers), and each stage's ms per frame from
  predict's own breakdown (decode: the decoder thread; detect: detection,
  landmark refit and alignment summed over the face workers; forward; rows;
  write; each timed by its thread, so waiting for the GIL or a core counts);
* wall time, frames/s end to end, and the start-up (wall before the first frame);
* against `--reference`: whether `success` and `face_id` are identical row for
  row, the landmarks' mean point error per face as a fraction of the
  inter-ocular distance (median and max), and the largest AU probability
  difference.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from sfae_jax.runtime import cli

STAGES = ("decode", "detect", "wait", "forward", "rows", "write")
_LEFT_EYE, _RIGHT_EYE = range(36, 42), range(42, 48)


def run_predict(workdir: str, inputs, out_csv: str, extra=()) -> dict:
  """One `predict` command: its wall and CPU seconds, frames and stage seconds."""
  cmd = [sys.executable, "-m", "sfae_jax.predict", "--workdir", workdir, *inputs,
         "--out", out_csv, *extra]
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True)
  wall = time.perf_counter() - start
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                       f"{proc.stderr[-3000:]}")
  found = re.search(r"(\d+) frames, (\d+) face rows in ([\d.]+) s", proc.stderr)
  stages = dict(re.findall(r"(\w+) ([\d.]+)", proc.stderr.rsplit("seconds:", 1)[-1]))
  if not found:
    raise RuntimeError(f"no summary line in predict's output:\n{proc.stderr[-3000:]}")
  return {"wall": wall, "frames": int(found[1]), "faces": int(found[2]),
          "streamed": float(found[3]),
          "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
          "stages": {k: float(v) for k, v in stages.items() if k in STAGES}}


def _points(df: pd.DataFrame) -> np.ndarray:
  xs = df[[f"x_{i}" for i in range(68)]].to_numpy(float)
  ys = df[[f"y_{i}" for i in range(68)]].to_numpy(float)
  return np.stack([xs, ys], axis=-1)


def quality(ours: pd.DataFrame, reference: pd.DataFrame) -> dict:
  """The quality deltas of `ours` against `reference` (same inputs)."""
  if len(ours) != len(reference):
    return {"same_rows": False, "rows": (len(ours), len(reference))}
  same = {c: bool((ours[c].to_numpy() == reference[c].to_numpy()).all())
          for c in ("frame", "success", "face_id")}
  both = (ours["success"].to_numpy() == 1) & (reference["success"].to_numpy() == 1)
  out = {"same_rows": True, **same, "faces_compared": int(both.sum())}
  if both.any():
    ref, got = _points(reference[both]), _points(ours[both])
    iod = np.linalg.norm(ref[:, list(_LEFT_EYE)].mean(1)
                         - ref[:, list(_RIGHT_EYE)].mean(1), axis=-1)
    err = np.linalg.norm(got - ref, axis=-1).mean(1) / iod
    aus = [c for c in reference.columns if re.fullmatch(r"AU\d\d", c)]
    out.update(landmark_median=float(np.median(err)), landmark_max=float(err.max()),
               au_max=float(np.abs(ours.loc[both, aus].to_numpy(float)
                                   - reference.loc[both, aus].to_numpy(float)).max()))
  return out


def report(result: dict, deltas: dict | None, out=print) -> None:
  frames = max(result["frames"], 1)
  out(f"{result['frames']} frames ({result['faces']} face rows): wall "
      f"{result['wall']:.1f} s, {result['frames'] / result['wall']:.1f} frames/s "
      f"end to end; start-up {result['wall'] - result['streamed']:.1f} s")
  stages = result["stages"]
  out("ms per frame: CPU of the whole command, all processes "
      f"{1e3 * result['cpu'] / frames:.1f}; each stage's thread time "
      + ", ".join(f"{k} {1e3 * v / frames:.1f}" for k, v in stages.items()
                  if k != "wait")
      + f" (the main thread waited for faces {1e3 * stages.get('wait', 0) / frames:.1f})")
  if deltas is None:
    return
  if not deltas["same_rows"]:
    out(f"rows differ in number: {deltas['rows'][0]} against the reference's "
        f"{deltas['rows'][1]}")
    return
  out(f"against the reference: frame {'same' if deltas['frame'] else 'DIFFERENT'}, "
      f"success {'identical' if deltas['success'] else 'DIFFERENT'}, face_id "
      f"{'identical' if deltas['face_id'] else 'DIFFERENT'}"
      + (f"; landmarks (of the inter-ocular distance) median "
         f"{100 * deltas['landmark_median']:.2f} %, max "
         f"{100 * deltas['landmark_max']:.2f} %; AU probabilities max |diff| "
         f"{deltas['au_max']:.4f} over {deltas['faces_compared']} faces"
         if deltas.get("faces_compared") else ""))


def main(argv=None) -> int:
  argv, extra = cli.split_at_dashes(argv)
  parser = argparse.ArgumentParser(prog="python -m sfae_jax.tools.predict_benchmark",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="a trained run")
  parser.add_argument("inputs", nargs="+", help="photos, videos or folders")
  parser.add_argument("--reference", help="compare the rows with this CSV")
  parser.add_argument("--write-reference", help="keep the rows as this CSV")
  args = parser.parse_args(argv)
  missing = [p for p in args.inputs + [args.reference or "."] if not os.path.exists(p)]
  if missing:
    parser.error(f"no such file: {', '.join(missing)}")
  with tempfile.TemporaryDirectory() as tmp:
    csv = os.path.join(tmp, "rows.csv")  # new: predict would continue an old one
    try:
      result = run_predict(args.workdir, args.inputs, csv, extra)
    except RuntimeError as e:
      print(f"error: {e}", file=sys.stderr)
      return 1
    if args.write_reference:
      shutil.copyfile(csv, args.write_reference)
    deltas = (quality(pd.read_csv(csv), pd.read_csv(args.reference))
              if args.reference else None)
  report(result, deltas)
  return 0


if __name__ == "__main__":
  sys.exit(main())
