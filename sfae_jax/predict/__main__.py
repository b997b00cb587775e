"""Faces in photos and videos -> per-frame AU table.

  python -m sfae_jax.predict --workdir runs/synthetic VIDEO_OR_IMAGE... --out out.csv
      [--every N] [--detect-every K] [--backend auto|dlib|face_alignment]
      [--overlays DIR]

  from sfae_jax.predict import Detector                  # the same, as an API
  df = Detector("runs/synthetic").detect("clip.mp4")     # pandas.DataFrame

Every decoded frame (every N-th with --every) gives at least one row: one per face,
or one with success=0 when no face is found. Faces are aligned exactly as the
training data were (JAA-Net's similarity transform to 200x200, centre crop), and
keep a stable `face_id` across frames (IoU tracking). In videos the face detector
runs on every K-th decoded frame (5 by default) and on every frame after one
without a face; in between, the 68 landmarks are refit in the tracked boxes. Columns, OpenFace/py-feat
style: input, frame, timestamp, face_id, success, confidence, face_x, face_y,
face_w, face_h, x_0..x_67, y_0..y_67, AU01..AU24 (probability), AU01_c..AU24_c
(occurrence at the run's threshold).

Beside the CSV, `OUT.provenance.json` records the run, checkpoint step, training
dataset and config, landmark backend, package version and date; a run trained on
the synthetic dataset is flagged there and on stderr (its AU values on real faces
mean nothing). An unreadable or truncated input is named on stderr, gives no rows,
and makes the exit status 1; the other inputs are still written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from sfae_jax.face import detectors
from sfae_jax.predict.detector import Detector
from sfae_jax.runtime import compilation_cache, files
from sfae_jax.training import checkpoints, provenance


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m sfae_jax.predict",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("inputs", nargs="+", help="images, videos or folders")
  parser.add_argument("--workdir", required=True, help="a training run folder")
  parser.add_argument("--out", required=True, help="CSV to write")
  parser.add_argument("--every", type=int, default=1, help="every N-th frame")
  parser.add_argument("--detect-every", type=int, default=5,
                      help="videos: run the face detector on every N-th decoded "
                      "frame and refit landmarks in the tracked face boxes in "
                      "between (1: detect on every frame; a frame without faces "
                      "is always followed by a detection)")
  parser.add_argument("--backend", default="auto",
                      choices=("auto",) + detectors.BACKENDS)
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--threshold", type=float, help="default: the run's")
  parser.add_argument("--step", type=int,
                      help="checkpoint step (default: the newest readable)")
  parser.add_argument("--overlays", help="folder for PNG overlays per frame")
  args = parser.parse_args(argv)
  if args.every < 1:
    parser.error("--every must be >= 1")
  if args.detect_every < 1:
    parser.error("--detect-every must be >= 1")
  if args.batch_size < 1:
    parser.error("--batch-size must be >= 1")
  if args.threshold is not None and not 0.0 < args.threshold < 1.0:
    parser.error(f"--threshold is a probability in (0, 1), got {args.threshold}")
  if os.path.isdir(args.out):
    parser.error(f"--out {args.out} is a folder; name the CSV file to write, "
                 f"e.g. {os.path.join(args.out, 'aus.csv')}")
  compilation_cache.enable()
  try:
    det = Detector(args.workdir, args.backend, args.batch_size, args.threshold,
                   step=args.step, detect_every=args.detect_every)
    det.backend  # pylint: disable=pointless-statement  (fail before reading media)
  except (FileNotFoundError, detectors.BackendUnavailable, ValueError,
          checkpoints.CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"{args.workdir}: checkpoint step {det.step}", file=sys.stderr)
  if det.trained_on_synthetic:
    print(provenance.SYNTHETIC_WARNING, file=sys.stderr)
  start = time.perf_counter()
  table = det.detect(args.inputs, args.every, progress=True, overlays=args.overlays,
                     on_error="skip")
  if len(table):
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    try:
      files.write_atomically(args.out, table.to_csv(index=False,
                                                    float_format="%.4f"))
    except OSError as e:
      print(f"error: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
      return 1
    provenance.write(args.out, det.provenance)
    took = time.perf_counter() - start
    frames = table.groupby("input")["frame"].nunique().sum()
    print(f"wrote {len(table)} rows ({frames} frames, {frames / took:.1f} frames/s "
          "end to end: decoding, alignment, the model's compile and forward) "
          f"to {args.out} (provenance: {provenance.path_for(args.out)})",
          file=sys.stderr)
  elif not det.failures:
    print("error: no image or video among the inputs: nothing to write.",
          file=sys.stderr)
    return 1
  if det.failures:
    print(f"{len(det.failures)} input(s) failed:\n  " + "\n  ".join(det.failures),
          file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
