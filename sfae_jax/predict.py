"""Faces in photos and videos -> per-frame AU table.

  python -m sfae_jax.predict --workdir runs/synthetic VIDEO_OR_IMAGE... --out out.csv
      [--every N] [--detect-every K] [--backend auto|dlib|face_alignment]
      [--overlays DIR]

  from sfae_jax import Detector
  df = Detector("runs/synthetic").detect("clip.mp4")     # pandas.DataFrame
  Detector(...).provenance                               # where the numbers came from

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
from typing import Optional, Sequence

import jax
import numpy as np

from sfae_jax import checkpoints, compilation_cache, media, provenance, run_info
from sfae_jax import sharding, train_step
from sfae_jax.data import augment
from sfae_jax.face import align, detectors, schemes, tracking
from sfae_jax.models import create_model


class Detector:
  """A trained run plus a face backend: `detect(paths) -> DataFrame`."""

  def __init__(self, workdir: str, backend: str | detectors.Backend | None = "auto",
               batch_size: int = 32, threshold: Optional[float] = None,
               step: Optional[int] = None, detect_every: int = 5):
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if threshold is not None and not 0.0 < threshold < 1.0:
      raise ValueError(f"threshold is a probability in (0, 1), got {threshold}.")
    self.workdir = workdir
    self.info = run_info.read(workdir)
    self.config = self.info.config
    self.au_ids = list(self.info.au_ids)
    self.threshold = self.info.threshold if threshold is None else threshold
    self.batch_size = batch_size
    # Videos: run the face detector on every detect_every-th decoded frame and
    # refit the landmarks in the tracked boxes in between (backends with refit).
    self.detect_every = detect_every
    self._model = create_model(self.config, self.au_ids, self.info.landmark_scheme)
    one_device = sharding.replicated(sharding.make_mesh(jax.devices()[:1]))
    self._variables, self.step = checkpoints.restore_variables(
        workdir, self._model, self.config.input_size, one_device, step)
    self._forward = jax.jit(train_step.make_inference_fn(
        self._model, augment.AugmentSpec.from_config(self.config,
                                                     self.info.landmark_scheme)))
    self._backend_spec = backend
    self._backend = backend if not isinstance(backend, (str, type(None))) else None
    self.failures: list[str] = []

  @property
  def trained_on_synthetic(self) -> bool:
    return provenance.is_synthetic(self.info)

  @property
  def provenance(self) -> dict:
    """Where this detector's numbers come from: run, checkpoint step, training
    dataset and config, landmark backend, package version, date (and a warning
    when the run was trained on the synthetic dataset)."""
    backend = self._backend or self._backend_spec
    name = getattr(backend, "name", None) or (
        backend if isinstance(backend, str) else type(backend).__name__)
    return provenance.prediction_record(self.workdir, self.info, self.step,
                                        str(name), self.threshold)

  @property
  def backend(self) -> detectors.Backend:
    if self._backend is None:
      self._backend = detectors.load_backend(self._backend_spec or "auto")
    return self._backend

  def predict_aligned(self, faces: np.ndarray, with_attention: bool = False):
    """AU probabilities `[N, A]` for aligned 200x200 faces `[N, 200, 200, 3]`."""
    probs, maps = [], []
    for i in range(0, len(faces), self.batch_size):
      chunk = faces[i:i + self.batch_size]
      pad = self.batch_size - len(chunk)  # fixed shape: one compilation
      batch = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], np.uint8)])
      p, a = self._forward(self._variables, batch)
      probs.append(np.asarray(p)[:len(chunk)])
      if with_attention and a is not None:
        maps.append(np.asarray(a)[:len(chunk)])
    n = len(self.au_ids)
    probs = np.concatenate(probs) if probs else np.zeros((0, n), np.float32)
    return (probs, np.concatenate(maps) if maps else None) if with_attention else probs

  def predict_faces(self, images: Sequence[np.ndarray],
                    landmarks: Sequence[np.ndarray],
                    scheme: str = schemes.IBUG68) -> np.ndarray:
    """AU probabilities for faces given by their landmarks (e.g. ground truth):
    the same alignment and model path as `detect`, without the detector."""
    aligned = np.stack([align.align_face(im, lm, scheme).image
                        for im, lm in zip(images, landmarks)])
    return self.predict_aligned(aligned)

  def detect(self, inputs, every: int = 1, progress: bool = False,
             overlays: Optional[str] = None, on_error: str = "raise"):
    """Rows for every frame of every input (a path or a list; folders expand to
    their images and videos). An input that cannot be read (missing, corrupt,
    truncated, a folder without media) raises media.MediaError naming it
    (`on_error='raise'`, the default), or with `on_error='skip'` is reported on
    stderr, recorded in `self.failures` and gives no rows while the other inputs
    are read."""
    from sfae_jax import predict_table  # pylint: disable=g-import-not-at-top
    if on_error not in ("raise", "skip"):
      raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    self.failures = []
    tables = []
    def failed(e):
      if on_error == "raise":
        raise e
      print(f"error: {e}", file=sys.stderr, flush=True)
      self.failures.append(str(e))
    paths = []
    for item in [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs:
      try:
        paths += media.expand_inputs([os.fspath(item)])
      except media.MediaError as e:
        failed(e)
    for path in paths:
      try:
        tables.append(predict_table.run_input(self, path, every, progress, overlays))
      except media.MediaError as e:
        failed(e)
    return predict_table.concat(tables, self.au_ids)


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
    tmp = args.out + ".tmp"
    try:
      table.to_csv(tmp, index=False, float_format="%.4f")
      os.replace(tmp, args.out)
    except OSError as e:
      if os.path.exists(tmp):
        os.remove(tmp)
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
