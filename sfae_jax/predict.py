"""Faces in photos and videos -> per-frame AU table.

  python -m sfae_jax.predict --workdir runs/synthetic VIDEO_OR_IMAGE... --out out.csv
      [--every N] [--detect-every K] [--backend auto|dlib|face_alignment]
      [--overlays DIR]

  from sfae_jax import Detector
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
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

import jax
import numpy as np

from sfae_jax import checkpoints, compilation_cache, media, run_info, sharding
from sfae_jax.data import augment
from sfae_jax.face import align, detectors, schemes, tracking
from sfae_jax.models import create_model


class Detector:
  """A trained run plus a face backend: `detect(paths) -> DataFrame`."""

  def __init__(self, workdir: str, backend: str | detectors.Backend | None = "auto",
               batch_size: int = 32, threshold: Optional[float] = None,
               step: Optional[int] = None, detect_every: int = 5):
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
    self._spec = augment.AugmentSpec.from_config(self.config,
                                                self.info.landmark_scheme)
    self._forward = jax.jit(self._apply)
    self._backend_spec = backend
    self._backend = backend if not isinstance(backend, (str, type(None))) else None
    self.failures: list[str] = []

  @property
  def backend(self) -> detectors.Backend:
    if self._backend is None:
      self._backend = detectors.load_backend(self._backend_spec or "auto")
    return self._backend

  def _apply(self, variables, images):
    crops, _ = augment.centre_crop(images, np.zeros((images.shape[0], 1, 2),
                                                    np.float32), self._spec)
    out = self._model.apply(variables, crops, train=False)
    return jax.nn.sigmoid(out.au_logits), out.attention

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
             overlays: Optional[str] = None):
    """Rows for every frame of every input (str or list). Inputs that fail are
    reported on stderr, recorded in `self.failures`, and give no rows."""
    from sfae_jax import predict_table  # pylint: disable=g-import-not-at-top
    paths = media.expand_inputs([inputs] if isinstance(inputs, str) else inputs)
    self.failures = []
    tables = []
    for path in paths:
      try:
        tables.append(predict_table.run_input(self, path, every, progress, overlays))
      except media.MediaError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        self.failures.append(str(e))
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
  parser.add_argument("--overlays", help="folder for PNG overlays per frame")
  args = parser.parse_args(argv)
  if args.every < 1:
    parser.error("--every must be >= 1")
  if args.detect_every < 1:
    parser.error("--detect-every must be >= 1")
  compilation_cache.enable()
  try:
    det = Detector(args.workdir, args.backend, args.batch_size, args.threshold,
                   detect_every=args.detect_every)
    det.backend  # pylint: disable=pointless-statement  (fail before reading media)
  except (FileNotFoundError, detectors.BackendUnavailable, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  start = time.perf_counter()
  table = det.detect(args.inputs, args.every, progress=True, overlays=args.overlays)
  if len(table):
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    table.to_csv(tmp, index=False, float_format="%.4f")
    os.replace(tmp, args.out)
    took = time.perf_counter() - start
    frames = table.groupby("input")["frame"].nunique().sum()
    print(f"wrote {len(table)} rows ({frames} frames, {frames / took:.1f} frames/s) "
          f"to {args.out}", file=sys.stderr)
  if det.failures:
    print(f"{len(det.failures)} input(s) failed:\n  " + "\n  ".join(det.failures),
          file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
