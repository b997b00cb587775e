"""`Detector`: a trained run plus a face backend, photos and videos -> AU table.

  from sfae_jax.predict import Detector
  df = Detector("runs/synthetic").detect("clip.mp4")     # pandas.DataFrame
  Detector(...).provenance                               # where the numbers came from

The rows and columns are `sfae_jax.predict.rows`'s (the command's docstring,
`python -m sfae_jax.predict --help`, describes them).
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

import numpy as np
import tqdm

from sfae_jax.face import align, backends, media, schemes
from sfae_jax.predict import forward, provenance, rows, stream


DETECTION = ("fast", "exact")


class Detector:
  """A trained run plus a face backend: `detect(paths) -> DataFrame`."""

  def __init__(self, workdir: str, backend: str | backends.Backend | None = "auto",
               batch_size: int = 32, threshold: Optional[float] = None,
               step: Optional[int] = None, detect_every: int = 5,
               detection: str = "fast"):
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if threshold is not None and not 0.0 < threshold < 1.0:
      raise ValueError(f"threshold is a probability in (0, 1), got {threshold}.")
    self.workdir = workdir
    run, self.model = forward.load(workdir, step, batch_size)
    self.info, self.step = run.info, run.step
    self.config = self.info.config
    self.au_ids = list(self.info.au_ids)
    # AUs with an intensity (`AUxx_r`) column: the run's intensity head's.
    self.intensity_au_ids = list(self.info.intensity_au_ids)
    self.threshold = self.info.threshold if threshold is None else threshold
    self.batch_size = batch_size
    # Videos: run the face detector on every detect_every-th decoded frame and
    # refit the landmarks in the tracked boxes in between (backends with refit).
    if detect_every < 1:
      raise ValueError(f"detect_every must be >= 1, got {detect_every}.")
    self.detect_every = detect_every
    # Videos, dlib's HOG: "fast" searches for faces from ~110 px first, with the
    # full search's boxes (backends.DlibBackend.detect_video); "exact": the full
    # search on every detection frame.
    if detection not in DETECTION:
      raise ValueError(f"detection must be one of {DETECTION}, got {detection!r}.")
    self.detection = detection
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
    return provenance.prediction_record(self.workdir, self.info, self.step,
                                        self.backend_name, self.threshold)

  @property
  def backend_name(self) -> str:
    """The face backend's name, as `backends.load_backend` takes it; found
    without loading the backend when it is given by name (worker processes
    load it; this one need not)."""
    if self._backend is not None:
      return getattr(self._backend, "name", type(self._backend).__name__)
    return backends.resolve(self._backend_spec or "auto")

  def settings(self, every: int) -> stream.Settings:
    """What the rows depend on: a rerun continues an output only with these."""
    return stream.Settings(
        run=self.provenance["run"], step=int(self.step),
        landmark_backend=self.backend_name, threshold=float(self.threshold),
        every=int(every), detect_every=int(self.detect_every),
        detection=self.detection,
        au_ids=tuple(self.au_ids), intensity_au_ids=tuple(self.intensity_au_ids))

  @property
  def backend(self) -> backends.Backend:
    if self._backend is None:
      self._backend = backends.load_backend(self._backend_spec or "auto",
                                            fast_video=self.detection == "fast")
    return self._backend

  def predict_aligned(self, faces: np.ndarray) -> np.ndarray:
    """The outputs `[N, A + K]` for aligned 200x200 faces `[N, 200, 200, 3]`:
    A probabilities, then the K intensities of an intensity head."""
    return self.model(faces)

  def predict_faces(self, images: Sequence[np.ndarray],
                    landmarks: Sequence[np.ndarray],
                    scheme: str = schemes.IBUG68) -> np.ndarray:
    """AU probabilities for faces given by their landmarks (e.g. ground truth):
    the same alignment and model path as `detect`, without the detector."""
    aligned = np.stack([align.align_face(im, lm, scheme).image
                        for im, lm in zip(images, landmarks)])
    return self.predict_aligned(aligned)[:, :len(self.au_ids)]

  def detect(self, inputs, every: int = 1, progress: bool = False,
             overlays: Optional[str] = None, on_error: str = "raise",
             workers: int = 0):
    """Rows for every frame of every input (a path or a list; folders expand to
    their images and videos). An input that cannot be read (missing, corrupt,
    truncated, a folder without media) raises media.MediaError naming it
    (`on_error='raise'`, the default), or with `on_error='skip'` is reported on
    stderr, recorded in `self.failures` and gives no rows while the other inputs
    are read. `workers`: face-detection processes (0: this one); the rows are
    the same. For long videos, `python -m sfae_jax.predict --out DIR/` writes the
    rows as they come instead of holding them."""
    report = self.run(self.expand(inputs, on_error), every, progress=progress,
                      overlays=overlays, on_error=on_error, workers=workers)
    return rows.concat([r.table for r in report.inputs.values()
                        if r.table is not None], self.au_ids,
                       self.intensity_au_ids)

  def expand(self, inputs, on_error: str = "raise") -> list[str]:
    """Files of `inputs` (a path or a list; folders expanded); see `detect`."""
    self._check_on_error(on_error)
    self.failures = []
    paths = []
    for item in [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs:
      try:
        paths += media.expand_inputs([os.fspath(item)])
      except media.MediaError as e:
        self._failed(e, on_error)
    return paths

  def run(self, paths, every: int = 1, *, store=None, workers: int = 0,
          progress: bool = False, overlays: Optional[str] = None,
          on_error: str = "raise", fresh: bool = False, stop=None,
          chunk_frames: int = stream.CHUNK_FRAMES,
          cluster: Optional[str] = None) -> stream.Report:
    """`stream.run` over files, failures handled as `detect` says."""
    self._check_on_error(on_error)
    elsewhere = workers > 0 or cluster is not None
    if elsewhere and not isinstance(self._backend_spec, (str, type(None))):
      raise ValueError("workers > 0 and a cluster load the face backend by name "
                       "in each worker process: give the backend's name, not an "
                       "object.")
    return stream.run(paths, self.model, self.settings(every),
                      None if elsewhere else self.backend,
                      self.provenance, store=store, workers=workers,
                      progress=progress, overlays=overlays, fresh=fresh, stop=stop,
                      chunk_frames=chunk_frames, cluster=cluster,
                      on_failure=lambda path, e: self._failed(e, on_error))

  @staticmethod
  def _check_on_error(on_error):
    if on_error not in ("raise", "skip"):
      raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")

  def _failed(self, e: Exception, on_error: str) -> None:
    if on_error == "raise":
      raise e
    # above the progress bars, on a line of its own
    tqdm.tqdm.write(f"error: {e}", file=sys.stderr)
    self.failures.append(str(e))
