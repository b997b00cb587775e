"""predict on a Ray cluster (`predict --ray [ADDRESS]`).

A video is cut into spans of a few hundred frames that start on a detection
frame, each a Ray task (`_span`) on one of the cluster's CPUs: it decodes its
frames itself, from a seek point of the container's index
(`media.frame_range`), finds their faces (`face.segments`), and runs the model
on them on its CPU (the model is loaded once per worker process), so only the
faces and their outputs travel back. So the spans of one long video spread over
every node, and the driver (this process) only numbers the faces
(`tracking.IoUTracker`) and writes the rows, chunks and provenance, with the
same code as on one machine: the outputs are those of `predict --out DIR/`.
Where the driver's model is on an accelerator, the spans send the aligned faces
back instead and the model runs there. Photos, videos whose index cannot number
their frames exactly, and runs that write overlays (which need the frames here)
are decoded by the driver, and only their faces become tasks (`_faces`). A span
whose decoded frames differ from the index (`media.IrregularRange`), or whose
node cannot read the file, is reported, and that input is decoded by the
driver from there; a node that cannot load the run sends the aligned faces.

Faults: a task whose worker or node dies is run again elsewhere by Ray (up to
TASK_RETRIES times) with the same result, so the CSVs do not change. A driver
that is killed leaves its chunks (`outputs`): the same command continues them.

`RayPool` is the part of `concurrent.futures.Executor` the stream uses
(`submit`, `shutdown`), plus `submit_span`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import random
import socket
import time
from typing import Optional

import cv2
import numpy as np

from sfae_jax.face import media, segments
from sfae_jax.predict import forward
from sfae_jax.runtime import compilation_cache
from sfae_jax.training import trained_run

TASK_RETRIES = 5   # Ray's retries of a task whose process or node died
# Tasks in flight at most: one per CPU up to this. Spans decode their own
# frames and take seconds each, so this many keeps a large cluster busy. A
# segment decoded by the driver (a photo; a video it decodes itself) holds ~11 MB
# of frames at 640x360 in the object store until its task ends: at most ~3 GB.
MAX_IN_FLIGHT = 256
# ... where the spans send their aligned faces back to the driver's model
# (~120 KB a face): ~1 GB of the object store.
MAX_FACES_IN_FLIGHT = 32
_START = ("`ray start --head` on one node, `ray start --address HEAD:6379` on the "
          "others: docs/cluster.md")


class ClusterUnavailable(RuntimeError):
  """Ray is not installed, or no cluster answers at the address; the message
  says which and what to do."""


def _faces(backend: str, fast_video: bool, fn, *args):
  """A Ray task: `fn(*args)` (`segments.in_worker`) with the named backend,
  loaded once per Ray worker process."""
  cv2.setNumThreads(1)  # one task per CPU: OpenCV's own threads would compete
  segments.use_backend(backend, fast_video)
  return fn(*args)


@dataclasses.dataclass
class SpanResult:
  """A span's faces, a segment at a time: [(its `segments.FrameFaces`, the
  outputs `[aligned faces, A + K]` of its aligned faces, or None where the
  aligned images came back for the driver's model)]. `irregular`: why the
  span's frames could not be taken from its seek point (no segments then)."""
  segments: list
  seconds: dict          # decode, detect (and forward) in the task
  irregular: Optional[str] = None
  note: Optional[str] = None   # why the model did not run here, if it was to


_MODEL: dict = {}


def _model(source: tuple[str, int], batch_size: int) -> forward.BatchedForward:
  """The run's batched forward, loaded once per worker process (from the
  compilation cache where it has the program). XLA keeps its own CPU thread
  pool although a task has one CPU: with the pool limited to one thread (XLA
  started under a one-core affinity), 2 nodes of 1 CPU on a 2-core machine ran
  at 83-85 frames/s, against 95-103 with the pool (launch/ray_benchmark.sh)."""
  key = (source, batch_size)
  if key not in _MODEL:
    _MODEL.clear()
    compilation_cache.enable()
    _MODEL[key] = forward.load(*source, batch_size)[1]
  return _MODEL[key]


class ModelUnavailable(RuntimeError):
  """The model could not be loaded where it was to run."""


@dataclasses.dataclass(frozen=True)
class InWorker:
  """The model in the span's own worker process, on its CPU (`_model`)."""
  source: tuple[str, int]    # `BatchedForward.source`
  batch_size: int

  def __call__(self, images: np.ndarray) -> np.ndarray:
    return _model(self.source, self.batch_size)(images)


class GpuModel:
  """A Ray actor that holds the model on its GPU (`num_gpus=1`), for spans on
  the cluster's CPUs to send their aligned faces to (`OnGpus`)."""

  def __init__(self, source: tuple[str, int], batch_size: int):
    """`batch_size`: the driver's, at least `forward.default_batch_size()`
    here (a driver without a GPU picks the CPU's)."""
    compilation_cache.enable()
    self._model = forward.load(
        *source, max(batch_size, forward.default_batch_size()))[1]

  def outputs(self, images: np.ndarray) -> np.ndarray:
    return self._model(images)


@dataclasses.dataclass(frozen=True)
class OnGpus:
  """The model in the cluster's `GpuModel` actors, one per GPU: a span's faces
  go to one of them, the span waiting (its CPU free meanwhile)."""
  actors: tuple

  def __call__(self, images: np.ndarray) -> np.ndarray:
    import ray  # pylint: disable=g-import-not-at-top  (optional: the cluster extra)
    try:
      return ray.get(random.choice(self.actors).outputs.remote(images))
    except ray.exceptions.RayActorError as e:
      raise ModelUnavailable(f"the GPU actor died: {e}") from None


def _span(backend: str, fast_video: bool, model, path: str,
          span: media.FrameRange, every: int, detect_every: int) -> SpanResult:
  """A Ray task: the faces of a span of `path` (`media.frame_range`), in
  segments of `segments.segment_length(detect_every)` used frames, and with
  `model` (`InWorker` or `OnGpus`: aligned faces -> outputs) their outputs."""
  cv2.setNumThreads(1)
  segments.use_backend(backend, fast_video)
  seconds = collections.defaultdict(float)
  found, frames, length = [], [], segments.segment_length(detect_every)
  decoded = media.frame_range(path, span, every)
  try:
    while True:
      start = time.perf_counter()
      frame = next(decoded, None)
      seconds["decode"] += time.perf_counter() - start
      if frame is not None:
        frames.append(frame)
      if frames and (frame is None or len(frames) == length):
        faces, took = segments.in_worker(frames, detect_every, True)
        seconds["detect"] += took
        found.append(faces)
        frames = []
      if frame is None:
        break
  except media.MediaError as e:  # also a file this node cannot read
    return SpanResult([], dict(seconds), str(e))
  start = time.perf_counter()
  taken = [segments.images_taken(f) for f in found]
  images = [image for _, segment_images in taken for image in segment_images]
  if model is None or not images:  # (no faces: no outputs to wait for)
    return SpanResult([(f, None) for f in found], dict(seconds))
  try:
    outputs = model(np.stack(images))
  except (ModelUnavailable, *trained_run.LOAD_ERRORS) as e:  # e.g. the run not
    # on that node's disk: the driver's model takes them
    note = (f"the model could not be loaded on the cluster ({e}); the driver "
            "computes the faces' outputs instead.")
    return SpanResult([(f, None) for f in found], dict(seconds), note=note)
  seconds["forward"] += time.perf_counter() - start
  out, k = [], 0
  for faces, segment_images in taken:
    out.append((faces, outputs[k:k + len(segment_images)]))
    k += len(segment_images)
  return SpanResult(out, dict(seconds))


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
  """A HOST:PORT that nothing answers on fails here, in seconds: `ray.init`
  would keep retrying it for many minutes."""
  host, _, port = address.rpartition(":")
  if address == "auto" or "://" in address or not port.isdigit():
    return  # found by Ray itself (its own errors are quick)
  try:
    socket.create_connection((host, int(port)), timeout=timeout_s).close()
  except OSError as e:
    raise ClusterUnavailable(
        f"no Ray cluster answers at {address!r} ({e.strerror or e}). Start one "
        f"({_START}) or pass its address to --ray.") from None


class RayPool:
  """Spans (and faces of frames decoded here) as Ray tasks of one CPU each.
  `address`: a running cluster's (`ray start --head` prints it), or None for
  $RAY_ADDRESS, else the cluster started on this machine. `model`: the driver's. When it is on the CPU and
  knows its run (`BatchedForward.source`), it runs on the cluster: in a
  `GpuModel` actor per GPU if the cluster has GPUs, else in the spans'
  workers; when the driver has it on an accelerator, there."""

  def __init__(self, address: Optional[str], backend: str, fast_video: bool,
               model: Optional[forward.BatchedForward] = None):
    try:
      import ray  # pylint: disable=g-import-not-at-top  (optional: the cluster extra)
    except ImportError:
      raise ClusterUnavailable("--ray needs Ray: pip install -e '.[cluster]'.") from None
    self._ray = ray
    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    self._owned = not ray.is_initialized()
    if self._owned:
      _check_reachable(address)
      try:
        ray.init(address=address, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=False)
      except ConnectionError as e:
        raise ClusterUnavailable(
            f"no Ray cluster answers at {address!r} ({e}). Start one ({_START}) "
            "or pass its address to --ray.") from None
    self.slots = min(MAX_IN_FLIGHT, max(1, int(ray.cluster_resources().get("CPU", 1))))
    self._task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_faces)
    self._span = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_span)
    self._spec = (backend, fast_video)
    self._model = None
    if model is not None and model.source and model.on_cpu:
      gpus = int(ray.cluster_resources().get("GPU", 0))
      if gpus:  # waiting on its GPU, an actor needs no CPU of its own
        actor = ray.remote(num_gpus=1, num_cpus=0, max_restarts=-1,
                           max_task_retries=-1)(GpuModel)
        self._model = OnGpus(tuple(actor.remote(model.source, model.batch_size)
                                   for _ in range(gpus)))
      else:
        self._model = InWorker(model.source, model.batch_size)
    if self._model is None:  # spans send their aligned faces back: ~30 MB each
      self.slots = min(self.slots, MAX_FACES_IN_FLIGHT)
    self._pending: set = set()

  def submit(self, fn, *args):
    return self._track(self._task.remote(*self._spec, fn, *args))

  def submit_span(self, path: str, span: media.FrameRange, every: int,
                  detect_every: int):
    """A future of the span's `SpanResult` (the path made absolute: a Ray
    worker's working directory is not this process's)."""
    return self._track(self._span.remote(*self._spec, self._model,
                                         os.path.abspath(path), span, every,
                                         detect_every))

  def _track(self, ref):
    self._pending.add(ref)
    future = ref.future()
    future.add_done_callback(lambda _: self._pending.discard(ref))
    return future

  def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
    del wait  # the results the stream needs are already in; the rest is dropped
    if cancel_futures:
      for ref in list(self._pending):
        self._ray.cancel(ref)
    if self._owned:
      self._ray.shutdown()
