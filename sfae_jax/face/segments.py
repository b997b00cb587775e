"""The faces of a segment of frames: detection, landmark refit, alignment.

A video is cut into segments that start on a detection frame (a multiple of
`detect_every` decoded frames). Inside a segment the detector runs on every
`detect_every`-th frame and on every frame after one without a face; in between,
a backend with `refit` re-places the landmarks in the last boxes. Because the
first frame of a segment always runs the detector, a segment's faces do not
depend on the frames before it: segments can be computed in any order, by any
process, and give the faces one sequential pass would. (Face ids, which do depend
on the past, are assigned afterwards in frame order: `tracking.IoUTracker`.)

`faces_in_segment(backend, frames, ...)` does the work here; `start_worker` and
`in_worker` do it in worker processes (`concurrent.futures` with the spawn
start method: this module imports neither JAX nor the model).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from typing import Optional, Sequence

import cv2
import numpy as np

from sfae_jax.face import align, backends
from sfae_jax.face.media import Frame


@dataclasses.dataclass(frozen=True)
class FoundFace:
  face: backends.Face
  aligned: Optional[np.ndarray]  # [200, 200, 3] uint8; None: degenerate landmarks


@dataclasses.dataclass(frozen=True)
class FrameFaces:
  index: int
  timestamp: float
  corrupt: bool                  # decoded with errors: flagged, not analysed
  faces: tuple[FoundFace, ...]   # best detector score first


def segment_length(detect_every: int, frames: int = 16) -> int:
  """About `frames` decoded frames, a whole number of detection periods."""
  return detect_every * max(1, round(frames / detect_every))


def faces_in_segment(backend: backends.Backend, frames: Sequence[Frame],
                     detect_every: int, video: bool) -> list[FrameFaces]:
  """The faces of consecutive decoded frames whose first one is a detection frame
  (for a video, its position among the decoded frames is a multiple of
  `detect_every`)."""
  refit = getattr(backend, "refit", None) if video else None
  detect = getattr(backend, "detect_video", backend.detect) if video else backend.detect
  out, found = [], []
  for k, frame in enumerate(frames):
    if frame.corrupt:  # its pixels are partly invented: not analysed
      found = []
      out.append(FrameFaces(frame.index, frame.timestamp, True, ()))
      continue
    if refit is not None and found and k % detect_every:
      found = refit(frame.rgb, found)
    else:
      found = detect(frame.rgb)
    out.append(FrameFaces(frame.index, frame.timestamp, False,
                          tuple(FoundFace(f, _aligned(frame.rgb, f)) for f in found)))
  return out


_TAKEN = np.zeros((0, 0, 3), np.uint8)


def images_taken(found: Sequence[FrameFaces]
                 ) -> tuple[list[FrameFaces], list[np.ndarray]]:
  """The aligned images taken out of `found`, in face order (for the model
  where they were made, so that only the faces travel back): each face keeps an
  empty image `[0, 0, 3]` in their place, and `aligned is None` still marks
  those that could not be aligned."""
  images, out = [], []
  for ff in found:
    faces = []
    for f in ff.faces:
      if f.aligned is not None:
        images.append(f.aligned)
        f = dataclasses.replace(f, aligned=_TAKEN)
      faces.append(f)
    out.append(dataclasses.replace(ff, faces=tuple(faces)))
  return out, images


def _aligned(rgb: np.ndarray, face: backends.Face) -> Optional[np.ndarray]:
  try:
    return align.align_face(rgb, face.landmarks).image
  except ValueError:  # degenerate landmarks: the row is flagged, not dropped
    return None


_WORKER_BACKEND: Optional[backends.Backend] = None
_WORKER_SPEC: Optional[tuple[str, bool]] = None


def start_worker(backend: str, parent: int, fast_video: bool = False) -> None:
  """A worker process's initializer: load the named face backend once
  (`backends.load_backend(backend, fast_video)`). One
  thread per worker for OpenCV, whose own pool would compete with the others.
  Ctrl-C and SIGTERM are the main process's to handle (it ends the run at a
  segment boundary, which needs the workers alive until then); a worker whose
  main process (pid `parent`) is gone exits (`_exit_with_parent`)."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True,
                   name="exit-with-parent").start()
  cv2.setNumThreads(1)
  use_backend(backend, fast_video)


def use_backend(backend: str, fast_video: bool = False) -> None:
  """Makes the named face backend this process's (`in_worker`), loading it
  only the first time: a process that runs many tasks (a Ray worker) loads it
  once."""
  global _WORKER_BACKEND, _WORKER_SPEC
  if _WORKER_SPEC != (backend, fast_video):
    _WORKER_BACKEND = backends.load_backend(backend, fast_video)
    _WORKER_SPEC = (backend, fast_video)


def _exit_with_parent(parent: int, every_s: float = 0.5) -> None:
  """Ends this process once its parent, pid `parent`, is gone. A main process
  killed outright (SIGKILL, the out-of-memory killer) runs no clean-up, and a
  worker, which ignores SIGTERM and waits on a queue its siblings keep open,
  would otherwise live on. Polling the parent pid works whichever thread
  started the worker (PR_SET_PDEATHSIG fires when that thread ends, not the
  process) and on macOS. The pid comes from the parent, not from getppid() at
  start: a parent killed while the worker was still importing is noticed too."""
  while os.getppid() == parent:
    time.sleep(every_s)
  os._exit(1)  # pylint: disable=protected-access


def timed(backend: backends.Backend, frames: Sequence[Frame], detect_every: int,
          video: bool) -> tuple[list[FrameFaces], float]:
  """`faces_in_segment` and the seconds it took."""
  start = time.perf_counter()
  found = faces_in_segment(backend, frames, detect_every, video)
  return found, time.perf_counter() - start


def in_worker(frames: Sequence[Frame], detect_every: int,
              video: bool) -> tuple[list[FrameFaces], float]:
  """`timed` with the worker's backend (see `start_worker`)."""
  if _WORKER_BACKEND is None:
    raise RuntimeError("start_worker(backend, parent) or use_backend(backend) "
                       "must run in this process first.")
  return timed(_WORKER_BACKEND, frames, detect_every, video)
