"""A synthetic BP4D in BP4D's exact on-disk layout, so the real builder runs on it.

  python -m tfds_bp4d.synthetic.bp4d --out scratch/bp4d_syn --subjects 6 --tasks 2 --frames 40

Writes `Sequences/<subject>/<task>/<frame>.jpg` (frames 1..n; every fourth subject
uses 3-digit names as some BP4D copies do), `AUCoding/AU_OCC/<subject>_<task>.csv`
(header 0..99, values 0/1/9, the coded segment starting a few frames in),
`AUCoding/AU_INT/AUNN/<subject>_<task>_AUNN.csv` for AUs 6, 10, 12, 14, 17 (lines
`frame,intensity`, codes 0..5 from the same latent as the occurrence, 9 where the
occurrence is 9) and `2DFeatures/<subject>_<task>.mat` (MATLAB v7.3, 49 points, 1-based; about 1 % of
frames lost by the "tracker"). Subjects are BP4D's own IDs, taken in turn from the
three parts so the folds split them as they split BP4D. The same seed gives the same
bytes. Labels: `labels`; faces: `face` and `render` (this package's modules).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import sys
import time

import cv2
import numpy as np

from sfae_jax.face import schemes
from tfds_bp4d import layout as shared_layout
from tfds_bp4d.bp4d import layout
from tfds_bp4d.synthetic import labels as synthetic_labels
from tfds_bp4d.synthetic.progress import RecentEta
from tfds_bp4d.synthetic.face import Identity, Pose, deform, neutral_landmarks
from tfds_bp4d.synthetic.render import render

INTENSITY_DIR = layout.INT_DIRS[0]
LOST_FRAME_PROB = 0.01
TRACKER_NOISE_PX = 0.5


def pick_subjects(n: int, seed: int) -> list[str]:
  """n BP4D subject IDs, drawn from part1, part2, part3 in turn."""
  if not 1 <= n <= sum(len(v) for v in layout.PARTS.values()):
    raise ValueError(f"--subjects must be 1..41 (BP4D has 41), got {n}.")
  rng = np.random.default_rng([seed, 0])
  pools = [list(rng.permutation(v)) for v in layout.PARTS.values()]
  out = []
  while len(out) < n:
    for pool in pools:
      if pool and len(out) < n:
        out.append(str(pool.pop(0)))
  return out


def _smooth(rng, n, phi=0.9):
  return synthetic_labels.ar1(rng, n, phi, 1)[:, 0]


def poses(rng, n: int, size_wh) -> list[Pose]:
  w, h = size_wh
  unit = 0.2 * min(w, h)
  roll = np.radians(15) * np.tanh(0.5 * rng.normal() + 0.6 * _smooth(rng, n))
  yaw = np.radians(15) * np.tanh(0.6 * _smooth(rng, n))
  scale = unit * (1 + 0.08 * np.tanh(_smooth(rng, n)))
  cx = w / 2 + 0.06 * w * np.tanh(rng.normal() + _smooth(rng, n))
  cy = h / 2 + 0.05 * h * np.tanh(rng.normal() + _smooth(rng, n))
  return [Pose(*v) for v in zip(roll, scale, cx, cy, yaw)]


def write_task(root: str, subject: str, task: str, idn: Identity, n_coded: int,
               rng: np.random.Generator, size_wh, digits: int) -> int:
  """Writes one task's frames, labels and landmarks; returns frames written."""
  lead = int(rng.integers(3, 8))
  n = lead + n_coded
  occ, intensity = synthetic_labels.sample_task(rng, n)
  mouth = np.maximum(0, 0.12 * _smooth(rng, n, 0.7))
  task_dir = os.path.join(root, "Sequences", subject, task)
  os.makedirs(task_dir, exist_ok=True)
  keep49 = list(schemes.get_scheme(schemes.BP4D49).from_68)
  mats = []
  for t, pose in enumerate(poses(rng, n, size_wh)):
    au = dict(zip(synthetic_labels.AUS, intensity[t]))
    canon = deform(neutral_landmarks(idn, mouth[t]), au)
    img, lm68 = render(rng, idn, canon, au, pose, size_wh)
    quality = int(rng.integers(85, 96))
    cv2.imwrite(os.path.join(task_dir, f"{t + 1:0{digits}d}.jpg"), img,
                [cv2.IMWRITE_JPEG_QUALITY, quality])
    tracked = lm68[keep49] + rng.normal(0, TRACKER_NOISE_PX, (49, 2)) + 1.0
    mats.append(None if rng.random() < LOST_FRAME_PROB else tracked)
  layout.write_landmarks_mat(
      os.path.join(root, "2DFeatures", f"{subject}_{task}.mat"), mats)
  rows = [",".join(str(c) for c in range(100))]
  for t in range(lead, n):
    values = ["9"] * 100
    values[0] = str(t + 1)
    for i, au_id in enumerate(synthetic_labels.AUS):
      values[au_id] = str(int(occ[t, i]))
    rows.append(",".join(values))
  with open(os.path.join(root, "AUCoding", "AU_OCC", f"{subject}_{task}.csv"),
            "w") as f:
    f.write("\n".join(rows) + "\n")
  codes = synthetic_labels.intensity_codes(occ, intensity)
  for au in layout.INTENSITY_AUS:
    i = synthetic_labels.AUS.index(au)
    folder = os.path.join(root, INTENSITY_DIR, f"AU{au:02d}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{subject}_{task}_AU{au:02d}.csv"), "w") as f:
      f.write("".join(f"{t + 1},{codes[t, i]}\n" for t in range(lead, n)))
  return n


def task_jobs(out: str, subjects: int = 6, tasks: int = 2, frames: int = 40,
              size_wh=(640, 480), seed: int = 0) -> list[tuple]:
  """Creates the layout's folders and returns one argument tuple per task, for
  `generate_task`; tasks are independent, so they can run in any process."""
  if not 1 <= tasks <= 8:
    raise ValueError(f"--tasks must be 1..8 (BP4D has T1..T8), got {tasks}.")
  if frames < 1:
    raise ValueError(f"--frames must be positive, got {frames}.")
  for d in ("AUCoding/AU_OCC", "2DFeatures", "Sequences"):
    os.makedirs(os.path.join(out, d), exist_ok=True)
  # The builder reads this marker and records the dataset as synthetic, so that
  # every run and prediction made from it says so (sfae_jax.training.provenance).
  with open(os.path.join(out, shared_layout.SYNTHETIC_MARKER), "w") as f:
    f.write("Generated by tfds_bp4d.synthetic: rendered faces in BP4D's layout, not "
            f"BP4D. subjects={subjects} tasks={tasks} frames={frames} seed={seed}\n")
  jobs = []
  for s, subject in enumerate(pick_subjects(subjects, seed)):
    digits = 3 if s % 4 == 3 and frames + 8 < 1000 else 4
    for k in range(tasks):
      jobs.append((out, subject, s, k, frames, tuple(size_wh), seed, digits))
  return jobs


def generate_task(out, subject, s, k, frames, size_wh, seed, digits) -> int:
  """Writes task T{k+1} of the s-th subject; returns the frames written."""
  idn = Identity.sample(np.random.default_rng([seed, 1, s]))
  rng = np.random.default_rng([seed, 2, s, k])
  return write_task(out, subject, f"T{k + 1}", idn, frames, rng, size_wh, digits)


def _run_job(job) -> int:
  return generate_task(*job)


def generate(out: str, subjects: int = 6, tasks: int = 2, frames: int = 40,
             size_wh=(640, 480), seed: int = 0, progress: bool = True,
             workers: int = 1) -> list[str]:
  """Writes the synthetic BP4D under `out`; returns the subject IDs. Tasks are
  independent: `workers` > 1 writes them in that many processes (spawned, since
  JAX's threads do not survive a fork), with the same bytes."""
  jobs = task_jobs(out, subjects, tasks, frames, size_wh, seed)
  start = time.perf_counter()
  if workers > 1:
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"))
    results = pool.map(_run_job, jobs)
  else:
    pool, results = None, map(_run_job, jobs)
  eta = RecentEta(len(jobs))
  try:
    for done, (job, n) in enumerate(zip(jobs, results), 1):
      eta.done(done)
      if progress:
        left = eta.seconds()
        print(f"\rsynthetic BP4D: {done}/{len(jobs)} tasks ({job[1]} T{job[3] + 1}, "
              f"{n} frames), ETA {'?' if left is None else f'{left:.0f}s'}",
              end="", file=sys.stderr, flush=True)
  finally:
    if pool is not None:
      pool.shutdown()
  if progress:
    print(f"\nsynthetic BP4D: wrote {len(jobs)} tasks of {subjects} subjects to "
          f"{out} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
  return list(dict.fromkeys(job[1] for job in jobs))


def _size(text: str) -> tuple[int, int]:
  try:
    w, h = (int(v) for v in text.lower().split("x"))
  except ValueError:
    raise argparse.ArgumentTypeError(f"--size must be WxH, e.g. 640x480, got {text!r}")
  if w < 160 or h < 160:
    raise argparse.ArgumentTypeError(f"--size {text} is too small (min 160x160)")
  return w, h


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m tfds_bp4d.synthetic.bp4d",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True, help="folder to write (manual_dir)")
  parser.add_argument("--subjects", type=int, default=6)
  parser.add_argument("--tasks", type=int, default=2)
  parser.add_argument("--frames", type=int, default=40,
                      help="AU-coded frames per task (a few uncoded ones precede)")
  parser.add_argument("--size", type=_size, default=(640, 480),
                      help="WxH; BP4D's own is 1040x1392")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  try:
    generate(args.out, args.subjects, args.tasks, args.frames, args.size, args.seed)
  except ValueError as e:
    parser.error(str(e))


if __name__ == "__main__":
  main()
