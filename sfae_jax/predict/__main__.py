"""Faces in photos and videos -> per-frame AU table.

  python -m sfae_jax.predict --workdir runs/synthetic VIDEO_OR_IMAGE... --out out.csv
      [--every N] [--detect-every K] [--backend auto|dlib|face_alignment]
      [--workers N] [--batch-size B] [--overlays DIR]
  python -m sfae_jax.predict --workdir RUN VIDEOS... --out tracks/   # one CSV per input
      [--format parquet]                                 # ... or one Parquet file
  python -m sfae_jax.predict --workdir RUN VIDEOS... --out gs://BUCKET/tracks/ \
      [--ray [ADDRESS]]             # staged, copied to a bucket; on a Ray cluster

  from sfae_jax.predict import Detector                  # the same, as an API
  df = Detector("runs/synthetic").detect("clip.mp4")     # pandas.DataFrame

Every decoded frame (every N-th with --every) gives at least one row: one per face,
or one with success=0 when no face is found. Faces are aligned exactly as the
training data were (JAA-Net's similarity transform to 200x200, centre crop), and
keep a stable `face_id` across frames (IoU tracking). In videos the face detector
runs on every K-th decoded frame (5 by default) and on every frame after one
without a face; in between, the 68 landmarks are refit in the tracked boxes.
Columns, OpenFace/py-feat style: input, frame, timestamp, face_id, success,
confidence, face_x, face_y, face_w, face_h, x_0..x_67, y_0..y_67, AU01..AU24
(probability), AU01_c..AU24_c (occurrence at the run's threshold), decode_error,
and for a run with an intensity head AU06_r.. (intensity, a float in [0, 5], for
the AUs its training data coded intensity for: BP4D's 6, 10, 12, 14, 17).

The work is streamed (docs/predict.md): --workers processes detect faces while the
model runs on batches of --batch-size faces, and rows are written in chunks as
they come, so memory stays flat however long the video. Killed or stopped
(Ctrl-C, SIGTERM: the run ends at the next segment and keeps what it did), the
same command continues where it stopped; inputs already complete are skipped. An
output made with other settings (run, step, backend, threshold, --every,
--detect-every, AUs) is refused, naming what differs; --fresh redoes it.

`--out DIR/` (a folder) gives `DIR/<input>.csv` per input, each with its
`.provenance.json`; `--out table.csv` joins them into one CSV at the end (its
chunks wait in `table.csv.parts/` until then). `--format parquet` (or `--out
table.parquet`) writes the same rows as Parquet, for corpora (docs/cluster.md).
The provenance records the run, checkpoint step, training dataset and config,
landmark backend, the settings, package version and date; a run trained on the
synthetic dataset is flagged there and on stderr (its AU values on real faces
mean nothing). An unreadable input is
named on stderr, gives no rows, and makes the exit status 1; a video cut
part-way keeps the rows before the break and ends with a row flagged
decode_error=2 (1 marks a frame decoded with errors), and is named and makes
the exit status 1 too. The other inputs are still written. A second run on an
output that another run is writing refuses the inputs it holds, naming it.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import sys

from etils import epath

from sfae_jax.face import backends, media
from sfae_jax.predict import (cluster, forward, outputs, provenance, publish,
                              shards, stream)
from sfae_jax.predict.detector import DETECTION, Detector
from sfae_jax.runtime import compilation_cache, devices, host, signals
from sfae_jax.training import trained_run


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m sfae_jax.predict",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("inputs", nargs="+", help="images, videos or folders")
  parser.add_argument("--workdir", required=True, help="a training run folder")
  parser.add_argument("--out", required=True,
                      help="a CSV (or .parquet) to write, or a folder (ending in "
                      "/, or existing) for one file per input")
  parser.add_argument("--format", choices=outputs.FORMATS,
                      help="csv (OpenFace's convention) or parquet (for a "
                      "corpus: on tracks of minutes ~1.6x smaller and read ~4x "
                      "faster, docs/cluster.md); default: --out's suffix, csv "
                      "for a folder")
  parser.add_argument("--every", type=int, default=1, help="every N-th frame")
  parser.add_argument("--detect-every", type=int, default=5,
                      help="videos: run the face detector on every N-th decoded "
                      "frame and refit landmarks in the tracked face boxes in "
                      "between (1: detect on every frame; a frame without faces "
                      "is always followed by a detection)")
  parser.add_argument("--detection", choices=DETECTION, default="fast",
                      help="videos, dlib backend: 'fast' looks for faces from "
                      "~110 px first (the full search's boxes, a third of its "
                      "CPU) and runs the full search only where it finds none, "
                      "so a smaller face beside a larger one is missed; "
                      "'exact': the full search on every detection frame "
                      "(default: %(default)s)")
  parser.add_argument("--backend", default="auto",
                      choices=("auto",) + backends.BACKENDS)
  parser.add_argument("--workers", type=int, default=host.cores(),
                      help="face-detection processes (default: one per core "
                      "available, here %(default)s; 0: in this process)")
  parser.add_argument("--batch-size", type=int, default=None,
                      help="faces per model batch (default: 32 on a CPU, 256 on "
                      "an accelerator)")
  parser.add_argument("--threshold", type=float, help="default: the run's")
  parser.add_argument("--step", type=int,
                      help="checkpoint step (default: the newest readable)")
  parser.add_argument("--overlays", help="folder for PNG overlays per frame")
  parser.add_argument("--fresh", action="store_true",
                      help="redo inputs whose output exists (finished or not) "
                      "instead of continuing or skipping them")
  parser.add_argument("--shard", metavar="K/N",
                      help="this is task K (from 0) of N, e.g. a SLURM array's: "
                      "predict this task's share of the inputs (balanced by "
                      "frames) into --out DIR/, where N tasks leave what one "
                      "command leaves (default: SLURM_ARRAY_TASK_ID of "
                      "SLURM_ARRAY_TASK_COUNT when set)")
  parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                      help="spread videos' spans (decoding, faces, the model) "
                      "over a Ray cluster's CPUs and GPUs (its address, or none "
                      "for $RAY_ADDRESS or the cluster on this machine); this "
                      "process numbers the faces and writes (docs/cluster.md)")
  parser.add_argument("--stage", metavar="DIR",
                      help="write and resume here, then copy each finished file "
                      "to --out (default for a bucket, --out gs://...: a folder "
                      "under ~/.cache/sfae_jax/stage; docs/cluster.md)")
  parser.add_argument("--chunk-frames", type=int, default=stream.CHUNK_FRAMES,
                      help="decoded frames per written chunk: what a rerun after "
                      "a kill may redo at most")
  args = parser.parse_args(argv)
  for flag in ("every", "detect_every", "chunk_frames"):
    if getattr(args, flag) < 1:
      parser.error(f"--{flag.replace('_', '-')} must be >= 1")
  if args.batch_size is not None and args.batch_size < 1:
    parser.error("--batch-size must be >= 1")
  if args.workers < 0:
    parser.error("--workers must be >= 0")
  if args.threshold is not None and not 0.0 < args.threshold < 1.0:
    parser.error(f"--threshold is a probability in (0, 1), got {args.threshold}")
  try:
    shard = shards.from_args(args.shard, os.environ)
  except ValueError as e:
    parser.error(str(e))
  remote = publish.is_remote(args.out)
  folder = (args.out.endswith((os.sep, "/"))
            or (not remote and os.path.isdir(args.out)))
  stage = args.stage or (publish.default_stage(args.out) if remote else None)
  if shard is not None and not folder:
    parser.error(f"--out {args.out}: the tasks of a sharded run each write their "
                 f"inputs' CSVs into one folder: give --out DIR{os.sep}")
  if shard is not None and args.ray is not None:
    parser.error("--shard and --ray: a cluster spreads one command's inputs "
                 "itself; give one of them")
  suffix = os.path.splitext(args.out)[1].lower().lstrip(".")
  if not folder and suffix not in outputs.FORMATS:
    parser.error(f"--out {args.out}: name a .csv or .parquet file, or a folder "
                 f"ending in {os.sep} for one file per input")
  if not folder and args.format not in (None, suffix):
    parser.error(f"--out {args.out} with --format {args.format}: name a "
                 f".{args.format} file, or drop --format")
  fmt = args.format or (suffix if not folder else "csv")
  compilation_cache.enable()
  print(f"model on {devices.describe()}", file=sys.stderr)
  warning = devices.unused_accelerator_warning()
  if warning:
    print(warning, file=sys.stderr)
  batch_size = args.batch_size or forward.default_batch_size()
  try:
    det = Detector(args.workdir, args.backend, batch_size, args.threshold,
                   step=args.step, detect_every=args.detect_every,
                   detection=args.detection)
    det.backend_name  # pylint: disable=pointless-statement  (fail before reading media)
  except (*trained_run.LOAD_ERRORS, backends.BackendUnavailable) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  where = ("face work on a Ray cluster" if args.ray is not None
           else f"{args.workers} face worker(s)")
  print(f"{args.workdir}: checkpoint step {det.step}; {where}, batches of "
        f"{batch_size}", file=sys.stderr)
  if det.trained_on_synthetic:
    print(provenance.SYNTHETIC_WARNING, file=sys.stderr)
  paths = det.expand(args.inputs, on_error="skip")
  if not paths and not det.failures:
    print("error: no image or video among the inputs: nothing to write.",
          file=sys.stderr)
    return 1
  names = outputs.names_for(paths, fmt)  # of every input: the same in every task
  if shard is not None:
    paths = _shard(paths, shard, det)
    if not paths and not det.failures:
      return 0
  if stage is not None:
    try:
      paths = _complete_at_destination(paths, names, args, det, folder)
    except (outputs.SettingsMismatch, publish.DestinationError) as e:
      print(f"error: {e}", file=sys.stderr)
      return 1
  # where the files are written: --out, or the stage they are copied from
  local = args.out if stage is None else os.path.join(
      stage, "" if folder else os.path.basename(args.out))
  root = local if folder else local + outputs.PARTS
  store = outputs.ChunkStore(root, names.__getitem__, float_format="%.4f", fmt=fmt)
  stop = signals.StopRequest("\n{name}: finishing the frames in flight, then "
                             "stopping (again to stop at once)")
  copied = []
  try:
    os.makedirs(root, exist_ok=True)
    with stop:
      report = det.run(paths, args.every, store=store, workers=args.workers,
                       progress=True, overlays=args.overlays, on_error="skip",
                       fresh=args.fresh, stop=stop.event,
                       chunk_frames=args.chunk_frames, cluster=args.ray)
    if not folder and not report.stopped:
      _join(local, root, report, det, args.every)
    if stage is not None and not report.stopped:
      copied = _copy_out(report, local, folder, args.out)
  except (outputs.SettingsMismatch, cluster.ClusterUnavailable) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  except publish.DestinationError as e:
    print(f"error: cannot copy the finished files to --out: {e}. They stay in "
          f"{stage}; the same command copies them once --out can be written.",
          file=sys.stderr)
    return 1
  except OSError as e:
    print(f"error: cannot write {e.filename or args.out}: {e.strerror or e}. "
          f"{_kept(root)}; once the cause is fixed (space freed, say), the same "
          "command continues from there.", file=sys.stderr)
    return 1
  _summary(report, args.out,
           written=bool(copied) if stage is not None else os.path.exists(args.out))
  if report.stopped:
    print(f"stopped: what was done is kept in {root}; run the same command to "
          "continue.", file=sys.stderr)
    return 128 + (stop.signum or signal.SIGINT)
  if det.failures:
    print(f"{len(det.failures)} input(s) failed:\n  " + "\n  ".join(det.failures),
          file=sys.stderr)
    return 1
  return 0


def _shard(paths, shard, det) -> list[str]:
  """Task K's inputs; inputs that could not be expanded are reported by task
  0 only (the others report only their own)."""
  k, n = shard
  declared = {p: media.declared_frames(p) for p in paths}
  parts = shards.partition(paths, n, declared.__getitem__)
  frames = [sum(shards.weight(declared[p]) for p in part) for part in parts]
  print(f"shard {k}/{n}: {len(parts[k])} of {len(paths)} input(s), {frames[k]} of "
        f"{sum(frames)} declared frames", file=sys.stderr)
  if k:
    det.failures = []
  return parts[k]


def _join(out, root, report, det, every) -> None:
  """The per-input files in input order as one file, then its provenance; the
  parts folder goes once the file is in place."""
  parts = [r.output for r in report.inputs.values() if r.output]
  if not parts:
    shutil.rmtree(root, ignore_errors=True)
    return
  outputs.join(out, parts)
  done = [r for r in report.inputs.values() if r.output]
  record = dict(det.provenance, settings=det.settings(every).as_dict(),
                inputs=[r.path for r in done])
  incomplete = {r.path: r.error for r in done if r.error}
  if incomplete:  # inputs whose CSV ends where their decoding broke
    record["incomplete"] = incomplete
  provenance.write(out, record)
  shutil.rmtree(root, ignore_errors=True)


def _kept(root) -> str:
  """What a rerun finds in `root`: complete inputs and chunks of the others."""
  done = [p for fmt in outputs.FORMATS
          for p in glob.glob(os.path.join(glob.escape(root), f"*.{fmt}"))]
  chunks = glob.glob(os.path.join(glob.escape(root), "*" + outputs.PARTIAL,
                                  "[0-9]*.json"))
  return (f"Kept in {root}: {len(done)} complete input(s) and {len(chunks)} "
          "complete chunk(s) of others")


def _complete_at_destination(paths, names, args, det, folder) -> list[str]:
  """`paths` without the inputs whose file is complete at --out already (a
  staged run: the stage may have been emptied since)."""
  if not folder:
    return paths
  done = set(publish.complete_at(args.out, {p: names[p] for p in paths},
                                 det.settings(args.every).as_dict(), args.fresh))
  if done:
    print(f"{len(done)} input(s) complete in {args.out} already: skipped",
          file=sys.stderr)
  return [p for p in paths if p not in done]


def _copy_out(report, local, folder, out) -> list[str]:
  """A staged run's finished files (and records) copied to --out."""
  if folder:
    return publish.copy_out([r.output for r in report.inputs.values() if r.output],
                            out)
  if os.path.exists(local):
    return publish.copy_out([local], str(epath.Path(out).parent))
  return []


def _summary(report, out, written: bool) -> None:
  took = report.seconds.get("total", 0.0)
  frames = sum(r.frames for r in report.inputs.values())
  faces = sum(r.faces for r in report.inputs.values())
  skipped = sum(r.status == "skipped" for r in report.inputs.values())
  breakdown = ", ".join(f"{k} {report.seconds[k]:.1f}" for k in (
      "decode", "detect", "wait", "forward", "rows", "write") if k in report.seconds)
  written = f"-> {out}" if written else "nothing written"
  print(f"{frames} frames, {faces} face rows in {took:.1f} s "
        f"({frames / max(took, 1e-9):.1f} frames/s end to end)"
        f"{f', {skipped} input(s) already complete' if skipped else ''} {written}"
        f"\nseconds: {breakdown}", file=sys.stderr)


if __name__ == "__main__":
  sys.exit(main())
