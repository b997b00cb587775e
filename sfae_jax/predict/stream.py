"""Inputs -> rows, streamed: decoding, face detection and the model overlap, and
memory stays flat whatever the videos' length.

  decoder thread ──segments──> face workers ──faces──> model (batches) ──> rows
  (PyAV, in order)   (bounded)   (processes:     (this   (async dispatch)  (chunks,
                                 `face.segments`) thread)                   in order)

* The decoder cuts each input into segments (`segments.segment_length`: about 16
  frames, starting on a detection frame) and hands them to `workers` processes
  (0: this process). At most `workers + 2` segments are in flight.
* This thread takes their faces in input and frame order, gives face ids
  (`IoUTracker`), and fills batches of aligned faces. A full batch is sent to the
  device at once; its probabilities are read back only after the next one is
  sent (JAX's asynchronous dispatch), so the device and the CPU stages overlap.
* A segment whose faces all have probabilities becomes rows; rows go to the sink
  a chunk at a time (`outputs.ChunkStore`, or memory for `Detector.detect`).
* `stop` (a threading.Event, set by SIGINT/SIGTERM in the command) ends the run
  at the next segment: what was decoded is finished and written as a chunk.

The rows are those of one sequential pass (the order, `success`, `decode_error`
and face ids included), whatever `workers` and `batch_size` are.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import multiprocessing
import os
import queue
import sys
import threading
import time
from typing import Callable, Optional

import numpy as np
import pandas as pd
import tqdm

from sfae_jax.face import backends, media, segments, tracking
from sfae_jax.predict import cluster as cluster_lib
from sfae_jax.predict import forward as forward_lib
from sfae_jax.predict import outputs, overlays as overlay_pngs, rows

CHUNK_FRAMES = 512     # decoded frames per written chunk: the resume granularity
SPAN_FRAMES = 256      # used frames per span (a cluster task that decodes its own)
_MAX_WAITING = 32      # segments waiting for a partial batch before it is sent
_MAX_WAITING_OVERLAYS = 4  # ... when they hold their frames for the overlays


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the rows depend on, stored beside an output (`as_dict`): a rerun
  continues it only with the same."""
  run: str                 # the trained run (workdir)
  step: int                # its checkpoint
  landmark_backend: str    # the face backend's name (`backends.load_backend`)
  threshold: float
  every: int               # every n-th decoded frame is used
  detect_every: int        # videos: detect on every n-th used frame, refit between
  detection: str           # videos: "exact", or "fast" (`Detector`, `DlibBackend.detect_video`)
  au_ids: tuple[int, ...]
  intensity_au_ids: tuple[int, ...] = ()   # the run's intensity head's AUs

  @property
  def num_outputs(self) -> int:
    """Values per face: probabilities, then intensities."""
    return len(self.au_ids) + len(self.intensity_au_ids)

  def as_dict(self) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()}

  def table(self, frame_rows, outputs) -> pd.DataFrame:
    return rows.table(frame_rows, outputs, self.au_ids, self.threshold,
                      self.intensity_au_ids)

  def concat(self, tables) -> pd.DataFrame:
    return rows.concat(tables, self.au_ids, self.intensity_au_ids)


@dataclasses.dataclass
class InputResult:
  path: str
  status: str = "pending"      # done | skipped (complete before) | failed |
                               # truncated (its CSV ends where decoding broke;
                               # `error` says why) | stopped | redo (a span
                               # that could not be seeked to: `run` decodes
                               # the rest in order)
  frames: int = 0              # rows' frames produced by this run
  faces: int = 0
  error: Optional[str] = None
  table: Optional[pd.DataFrame] = None   # memory sink only
  output: Optional[str] = None           # its file (chunk store only)


@dataclasses.dataclass
class Report:
  inputs: dict[str, InputResult]
  seconds: dict[str, float]    # where the time went (see `run`)
  stopped: bool = False

  @property
  def failures(self) -> list[str]:
    return [r.error for r in self.inputs.values() if r.error]


@dataclasses.dataclass
class _Segment:
  path: str
  n_frames: int
  rows: list                    # `rows.Row`s, frame order
  aligned: list                 # aligned faces, `face_index` order; kept after
                                # batching only for the overlays
  outputs: np.ndarray           # [faces, A + K] (`BatchedForward`), filled as
                                # batches come back
  maps: Optional[list]          # attention maps (overlays only)
  waiting: int                  # faces without outputs yet
  position: int                 # decoded frames of the input after this segment
  tracker: dict                 # the tracker's state after it
  frames: Optional[dict]        # {index: rgb} for the overlays


@dataclasses.dataclass
class _SpanItem:
  path: str
  future: concurrent.futures.Future   # of a `cluster.SpanResult`


@dataclasses.dataclass
class _Marker:
  path: str
  kind: str                     # start | end | truncated | error | stopped |
                                # skipped (completed by another run meanwhile) |
                                # redo (a span that could not be seeked to)
  error: Optional[Exception] = None
  plan: Optional[outputs.Resume] = None   # start: where the input's work starts
                                          # (None: not to be written here)


class _Batches:
  """Aligned faces -> fixed-size device batches, two in flight at most."""

  def __init__(self, model: forward_lib.BatchedForward, with_maps, timing):
    self._model, self._with_maps, self._timing = model, with_maps, timing
    self._images, self._slots = [], []
    self._flight = collections.deque()

  def add(self, image, segment, k):
    self._images.append(image)
    self._slots.append((segment, k))
    if len(self._images) == self._model.batch_size:
      self.send()

  @property
  def partial(self) -> bool:
    return bool(self._images)

  def send(self):
    if not self._images:
      return
    start = time.perf_counter()
    self._flight.append((self._model.send(np.stack(self._images)), self._slots))
    self._images, self._slots = [], []
    self._timing["forward"] += time.perf_counter() - start
    while len(self._flight) > 1:
      self._receive()

  def finish(self):
    self.send()
    while self._flight:
      self._receive()

  def _receive(self):
    start = time.perf_counter()
    (outputs, maps), slots = self._flight.popleft()
    outputs = np.asarray(outputs)
    maps = np.asarray(maps) if self._with_maps and maps is not None else None
    for i, (segment, k) in enumerate(slots):
      segment.outputs[k] = outputs[i]
      if segment.maps is not None and maps is not None:
        segment.maps[k] = maps[i]
      segment.waiting -= 1
    self._timing["forward"] += time.perf_counter() - start


class _InputState:
  def __init__(self, path, resume: outputs.Resume, bar):
    self.path = path
    self.tracker = (tracking.IoUTracker.from_state(resume.tracker)
                    if resume.tracker else tracking.IoUTracker())
    self.flagged = list(resume.flagged)
    self.started = resume.position         # decoded frames written before this run
    self.position = resume.position        # ... in finished rows
    self.arrived = resume.position         # ... in segments taken so far
    self.chunk_tracker = resume.tracker    # the tracker's state at `position`
    self.tables: list[pd.DataFrame] = []   # rows not yet in a chunk
    self.buffered = 0                      # their frames
    self.bar = bar


def run(paths, model: forward_lib.BatchedForward, settings: Settings,
        backend: Optional[backends.Backend], record: dict, *,
        store: Optional[outputs.ChunkStore] = None, workers: int = 0,
        progress: bool = False, overlays: Optional[str] = None,
        fresh: bool = False, stop: Optional[threading.Event] = None,
        chunk_frames: int = CHUNK_FRAMES, cluster: Optional[str] = None,
        on_failure: Optional[Callable[[str, Exception], None]] = None,
        spans: bool = True) -> Report:
  """Rows for `paths` (files): faces found by `backend` (in this process;
  `workers` > 0: in that many processes, each loading
  `settings.landmark_backend`, and `backend` may be None; `cluster`, a Ray
  cluster's address or "" for the default one: as tasks on its CPUs,
  `cluster.RayPool`), their outputs from `model`. With a `store`, each
  input's rows go to its CSV there, a chunk of `chunk_frames` at a time, with
  `record` (where the numbers come from) and the settings as its provenance, and
  a rerun continues where the last one stopped; without one, they are returned
  in memory (`Report.inputs[path].table`). An input that cannot be read gives no
  rows, and one whose decoding breaks part-way keeps the rows before the break
  and a last row flagged `decode_error=2` where it broke: either way
  `on_failure(path, error)` is called (raise there to stop the run). So is it
  for an input whose output another process is writing (`outputs.OutputInUse`).

  On a cluster with a store and without overlays (and `spans`), videos are cut
  into spans that decode their own frames (`cluster`); one whose span cannot
  be seeked to exactly is continued from its chunks by decoding it here.

  `Report.seconds`: decode (the decoder thread, and spans, summed), detect
  (face workers: detection, refit and alignment, summed over processes), wait
  (this thread waiting for faces), forward (sending batches and reading them
  back; and in spans), rows (tracking and tables), write (chunks and
  overlays)."""
  stop, abort = stop or threading.Event(), threading.Event()
  results = {p: InputResult(p) for p in paths}
  plans = _plans(store, paths, settings, fresh, results, on_failure)
  todo = [p for p in paths if p in plans and not plans[p].done]
  report = Report(results, collections.defaultdict(float))
  if not todo:
    return report
  out = _Consumer(model, settings, record, store, results, report.seconds,
                  overlays, chunk_frames, on_failure,
                  {p: _frames_to_do(p, settings.every, plans[p]) for p in todo},
                  progress)
  pool, slots = _pool(settings, workers, cluster, model)
  span_frames = (_span_frames(settings, chunk_frames)
                 if spans and cluster is not None and store is not None
                 and overlays is None else 0)
  items: queue.Queue = queue.Queue(maxsize=max(slots, 1) + 2)
  feeder = threading.Thread(
      target=_feed, daemon=True, name="predict-decoder",
      args=(backend, todo, store, settings, pool, items, stop, abort,
            overlays is not None, report.seconds, span_frames))
  started = time.perf_counter()
  feeder.start()
  try:
    while True:
      start = time.perf_counter()
      item = items.get()
      if item is None:
        break
      if isinstance(item, Exception):
        raise item
      report.seconds["wait"] += time.perf_counter() - start
      if isinstance(item, _Marker) and item.kind == "start":
        out.start(item)
      elif isinstance(item, _Marker):
        if item.path not in out.redo:
          out.waiting.append(item)
      elif isinstance(item, _SpanItem):
        out.take_span(item.path, item.future)
      else:
        out.take(*item)
      out.finish_ready()
    out.batches.finish()
    out.finish_ready()
  finally:
    abort.set()
    _drain(items)
    feeder.join(timeout=60)
    if pool is not None:
      pool.shutdown(wait=True, cancel_futures=True)
    out.close()
  report.seconds["total"] = time.perf_counter() - started
  redo = [p for p, r in results.items() if r.status == "redo"]
  if redo and not stop.is_set():  # continued from their chunks, decoded here
    _merge(report, run(redo, model, settings, backend, record, store=store,
                       workers=workers, progress=progress, stop=stop,
                       chunk_frames=chunk_frames, cluster=cluster,
                       on_failure=on_failure, spans=False))
  for r in results.values():
    if r.status == "redo":
      r.status = "stopped"
  report.stopped = stop.is_set() and any(r.status in ("pending", "stopped")
                                         for r in results.values())
  return report


def _merge(report: Report, again: Report) -> None:
  """`again`'s inputs (continued by a second run) and times into `report`."""
  for path, after in again.inputs.items():
    before = report.inputs[path]
    after.frames += before.frames
    after.faces += before.faces
    report.inputs[path] = after
  for stage, seconds in again.seconds.items():
    report.seconds[stage] += seconds


def _span_frames(settings: Settings, chunk_frames: int) -> int:
  """Used frames per span: about SPAN_FRAMES (or a chunk, if less), whole
  segments, so that each span starts on a detection frame."""
  length = segments.segment_length(max(1, settings.detect_every))
  return length * max(1, -(-min(SPAN_FRAMES, chunk_frames) // length))


class _Consumer:
  """This thread's side of `run`: segments' faces into batches, finished
  segments into rows, rows into chunks, inputs closed in order."""

  def __init__(self, model, settings, record, store, results, timing, overlays,
               chunk_frames, on_failure, totals, progress):
    self.settings, self.record, self.store = settings, record, store
    self.results, self.timing, self.overlays = results, timing, overlays
    self.chunk_frames, self.on_failure, self.totals = chunk_frames, on_failure, totals
    self.progress = progress
    self.batches = _Batches(model, overlays is not None, timing)
    self.waiting: collections.deque = collections.deque()
    self.states: dict[str, _InputState] = {}
    self.redo: dict[str, str] = {}   # inputs to continue in order: why
    self.notes: set[str] = set()      # the spans' warnings, each said once
    self.max_waiting = _MAX_WAITING_OVERLAYS if overlays else _MAX_WAITING
    self.interval = 0.5 if sys.stderr.isatty() else 15  # a log file: a line a while
    self.overall = tqdm.tqdm(total=sum(totals.values()) or None, unit="frame",
                             desc="all inputs", disable=not progress, position=0,
                             dynamic_ncols=True, mininterval=self.interval)

  def start(self, marker: _Marker) -> None:
    path = marker.path
    bar = tqdm.tqdm(total=self.totals[path] or None, unit="frame", leave=False,
                    desc=os.path.basename(path), position=1, dynamic_ncols=True,
                    disable=not self.progress or not media.is_video(path),
                    mininterval=self.interval)
    self.states[path] = _InputState(path, marker.plan or outputs.Resume(), bar)
    if self.store is not None and marker.plan is not None:
      self.store.start(path, self.settings.as_dict())

  def take(self, path, future, frames) -> None:
    """A segment's faces (from the workers): rows, and faces into batches."""
    start = time.perf_counter()
    found, seconds = future.result()
    self.timing["wait"] += time.perf_counter() - start
    self.timing["detect"] += seconds
    self._add(path, found, frames)

  def take_span(self, path, future) -> None:
    """A span's segments (`cluster.SpanResult`), with their outputs or with
    their faces for the batches. A span that could not be seeked to ends the
    input here at its first frame (a "redo" marker); its later spans are
    dropped."""
    start = time.perf_counter()
    result = future.result()
    self.timing["wait"] += time.perf_counter() - start
    for stage, seconds in result.seconds.items():
      self.timing[stage] += seconds
    if result.note and result.note not in self.notes:
      self.notes.add(result.note)
      tqdm.tqdm.write(f"warning: {result.note}", file=sys.stderr)
    if path in self.redo:
      return
    if result.irregular is not None:
      self.redo[path] = result.irregular
      self.waiting.append(_Marker(path, "redo",
                                  media.IrregularRange(result.irregular)))
      return
    for found, values in result.segments:
      self._add(path, found, None, values)

  def _add(self, path, found, frames, values=None) -> None:
    """A segment's rows; `values`: its faces' outputs, found elsewhere (else
    its aligned faces go into batches)."""
    start = time.perf_counter()
    segment = _segment(self.states[path], found, frames, self.overlays is not None,
                       self.settings.num_outputs)
    self.timing["rows"] += time.perf_counter() - start
    if values is not None:
      segment.outputs[:], segment.waiting = values, 0
    else:
      for k, image in enumerate(segment.aligned):
        self.batches.add(image, segment, k)  # timed as forward when a batch is sent
    if not self.overlays:
      segment.aligned = []
    self.waiting.append(segment)
    self.states[path].bar.update(len(found))
    self.overall.update(len(found))
    if sum(isinstance(w, _Segment) for w in self.waiting) > self.max_waiting:
      self.batches.send()

  def finish_ready(self) -> None:
    """Rows for the leading segments whose faces all have outputs; inputs whose
    last segment is done are closed."""
    while self.waiting and (isinstance(self.waiting[0], _Marker)
                            or not self.waiting[0].waiting):
      item = self.waiting.popleft()
      if isinstance(item, _Marker):
        self._close(item)
      else:
        self._rows(item)
      self.overall.set_postfix(
          inputs=f"{sum(r.status != 'pending' for r in self.results.values())}"
                 f"/{len(self.results)}",
          faces=sum(r.faces for r in self.results.values()),
          failed=sum(bool(r.error) for r in self.results.values()), refresh=False)

  def _rows(self, segment: _Segment) -> None:
    state, result = self.states[segment.path], self.results[segment.path]
    start = time.perf_counter()
    table = self.settings.table(segment.rows, segment.outputs)
    if self.overlays:
      overlay_pngs.write(self.overlays, segment.path, table, segment.frames,
                         segment.aligned,
                         np.stack(segment.maps) if segment.maps else None,
                         self.settings.au_ids)
    self.timing["rows"] += time.perf_counter() - start
    state.tables.append(table)
    state.buffered += segment.n_frames
    state.position = segment.position
    state.chunk_tracker = segment.tracker
    if self.store is not None and state.buffered >= self.chunk_frames:
      _write_chunk(self.store, state, self.timing)
    result.frames += segment.n_frames
    result.faces += int(table["success"].sum())

  def _close(self, marker: _Marker) -> None:
    """An input's last segment is done: finish, fail or keep it for a rerun."""
    state = self.states.pop(marker.path)
    state.bar.close()
    try:
      self._finish_input(marker, state, self.results[marker.path])
    finally:
      if self.store is not None:
        self.store.unlock(state.path)
    if self.overall.total is not None:  # None: no input declared a length
      # the containers' declared frames, corrected to the frames decoded
      self.overall.total += state.arrived - state.started - self.totals[marker.path]
    self.overall.refresh()

  def _finish_input(self, marker: _Marker, state: _InputState,
                    result: InputResult) -> None:
    store, on_failure = self.store, self.on_failure
    if marker.kind == "skipped":
      result.status, result.output = "skipped", store.output_path(state.path)
      return
    if marker.kind == "error":
      result.status, result.error = "failed", str(marker.error)
      result.frames = result.faces = 0  # its rows are discarded
      if store is not None and not isinstance(marker.error, outputs.OutputInUse):
        store.discard(state.path)
      if on_failure is not None:
        on_failure(state.path, marker.error)
      return
    record = dict(self.record, settings=self.settings.as_dict())
    if marker.kind == "truncated":  # the rows before the break are kept
      state.tables.append(self._break_row(state.path, marker.error.decoded))
      result.status, result.error = "truncated", str(marker.error)
      record["incomplete"] = result.error
    if store is not None:
      _write_chunk(store, state, self.timing)
    if marker.kind in ("stopped", "redo"):
      result.status = marker.kind
      if marker.kind == "redo":
        tqdm.tqdm.write(f"note: {marker.error} Decoding {state.path} in order "
                        f"from frame {state.position * self.settings.every} on, "
                        "here.", file=sys.stderr)
      return
    if state.flagged:
      shown = ", ".join(map(str, state.flagged[:10]))
      tqdm.tqdm.write(
          f"warning: {state.path}: {len(state.flagged)} frame(s) decoded with "
          f"errors (frames {shown}{' ...' if len(state.flagged) > 10 else ''}): "
          "rows flagged decode_error=1, success=0, not analysed.", file=sys.stderr)
    if marker.kind == "end":
      result.status = "done"
    if store is None:
      result.table = self.settings.concat(state.tables)
    else:
      start = time.perf_counter()
      result.output = store.finish(state.path, record)
      self.timing["write"] += time.perf_counter() - start
    if marker.kind == "truncated" and on_failure is not None:
      on_failure(state.path, marker.error)

  def _break_row(self, path: str, index: int) -> pd.DataFrame:
    """The row of the first frame that could not be decoded (success=0,
    decode_error=2, no timestamp: it was never presented)."""
    frame = segments.FrameFaces(index, float("nan"), True, ())
    return self.settings.table(
        [rows.row(path, frame, -1, None, None, decode_error=2)],
        np.zeros((0, self.settings.num_outputs)))

  def close(self) -> None:
    for state in self.states.values():
      state.bar.close()
      if self.store is not None:
        self.store.unlock(state.path)
    self.overall.close()


def _segment(state: _InputState, found, frames, keep_aligned, n_outputs) -> _Segment:
  """Rows (ids from the input's tracker) for one segment's faces."""
  out, aligned = [], []
  for ff in found:
    if ff.corrupt:
      state.flagged.append(ff.index)
      state.tracker.update([])
      out.append(rows.row(state.path, ff, -1, None, None, decode_error=1))
      continue
    ids = state.tracker.update([f.face.box for f in ff.faces])
    if not ff.faces:
      out.append(rows.row(state.path, ff, -1, None, None))
    for face_id, f in zip(ids, ff.faces):
      if f.aligned is None:
        out.append(rows.row(state.path, ff, face_id, f.face, None))
        continue
      out.append(rows.row(state.path, ff, face_id, f.face, len(aligned)))
      aligned.append(f.aligned)
  n = len(aligned)
  state.arrived += len(found)
  return _Segment(state.path, len(found), out, aligned,
                  np.full((n, n_outputs), np.nan, np.float32),
                  [None] * n if keep_aligned else None, n, state.arrived,
                  state.tracker.state(), frames)


def _write_chunk(store, state: _InputState, timing) -> None:
  if not state.tables:
    return
  start = time.perf_counter()
  store.append(state.path, pd.concat(state.tables, ignore_index=True),
               {"position": state.position, "tracker": state.chunk_tracker,
                "flagged": state.flagged})
  state.tables, state.buffered = [], 0
  timing["write"] += time.perf_counter() - start


def _frames_to_do(path, every, plan: outputs.Resume) -> int:
  if not media.is_video(path):
    return 1
  return max(0, -(-media.declared_frames(path) // every) - plan.position)


def _plans(store, paths, settings, fresh, results, on_failure) -> dict:
  """Where each input's work starts (`outputs.Resume`); inputs complete before
  are marked skipped (or truncated, as their provenance says), and one whose
  output another process is writing is failed, its output left alone. A
  resumed input is announced."""
  if store is None:
    return {p: outputs.Resume() for p in paths}
  plans = {}
  for p in paths:
    try:
      store.lock(p)
    except outputs.OutputInUse as e:
      results[p].status, results[p].error = "failed", str(e)
      if on_failure is not None:
        on_failure(p, e)
      continue
    try:
      plans[p] = plan = store.resume(p, settings.as_dict(), fresh)
    finally:
      store.unlock(p)
    if plan.done:
      results[p].status, results[p].output = "skipped", store.output_path(p)
      if plan.incomplete:
        results[p].error = plan.incomplete
        if on_failure is not None:
          on_failure(p, media.TruncatedMedia(plan.incomplete, 0))
    elif plan.position:
      frame = plan.position * settings.every
      declared = media.declared_frames(p)
      tqdm.tqdm.write(f"continuing {p} at frame {frame}"
                      + (f" of {declared}" if declared else "")
                      + f" ({plan.chunks} chunk(s) kept)", file=sys.stderr)
  return plans


def _pool(settings: Settings, workers: int, cluster: Optional[str], model):
  """Where segments' faces are found, and how many segments it takes at once:
  a Ray cluster (spans there run `model` where `cluster.RayPool` says), `workers`
  local processes, or (None, 0) this process."""
  fast = settings.detection == "fast"
  if cluster is not None:
    pool = cluster_lib.RayPool(cluster or None, settings.landmark_backend, fast,
                               model)
    return pool, pool.slots
  if workers <= 0:
    return None, 0
  return concurrent.futures.ProcessPoolExecutor(
      max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
      initializer=segments.start_worker,
      initargs=(settings.landmark_backend, os.getpid(), fast)), workers


def _feed(backend, paths, store, settings: Settings, pool, items, stop, abort,
          keep_frames, timing, span_frames):
  """The decoder thread: segments of every input, in order, into `items`, each
  input between a start `_Marker` and an end, truncated, error or stopped one.
  With `span_frames` (a cluster), a video the container's index numbers
  exactly is sent as spans of that many used frames instead (`_SpanItem`s):
  its frames are decoded there.
  With a store, an input is locked, and its plan read again under the lock,
  before its first frame is decoded (the lock is released when the consumer
  closes it). `stop`: end after the current segment; `abort`: the consumer is
  gone, end now."""
  def put(item):
    while not abort.is_set():
      try:
        items.put(item, timeout=0.2)
        return True
      except queue.Full:
        continue
    return False

  every, detect_every = settings.every, max(1, settings.detect_every)
  try:
    for path in paths:
      if stop.is_set():
        break
      try:
        plan = _locked_plan(store, path, settings)
      except outputs.OutputInUse as e:
        if not (put(_Marker(path, "start")) and put(_Marker(path, "error", e))):
          break
        continue
      if plan.done:
        if not (put(_Marker(path, "start")) and put(_Marker(path, "skipped"))):
          break
        continue
      if not put(_Marker(path, "start", plan=plan)):
        break
      video = media.is_video(path)
      start = time.perf_counter()
      index = media.video_index(path) if span_frames and video else None
      timing["decode"] += time.perf_counter() - start
      if index is not None:
        kind, step = "end", span_frames * every
        for first in range(plan.position * every, len(index), step):
          if not put(_SpanItem(path, pool.submit_span(
              path, index.range(first, first + step), every, detect_every))):
            return
          if stop.is_set() and first + step < len(index):
            kind = "stopped"
            break
        if not put(_Marker(path, kind)) or kind == "stopped":
          break
        continue
      length = segments.segment_length(detect_every) if video else 1
      frames, kind, error = [], "end", None
      try:
        decoded = media.frames(path, every, plan.position)
        while True:
          start = time.perf_counter()
          try:
            frame = next(decoded, None)
          except media.TruncatedMedia as e:
            # the frames before the break are finished and kept
            frame, kind, error = None, "truncated" if e.decoded else "error", e
          timing["decode"] += time.perf_counter() - start
          if frame is not None:
            frames.append(frame)
          if frames and (frame is None or len(frames) == length):
            if pool is None:
              future = concurrent.futures.Future()
              future.set_result(segments.timed(backend, frames, detect_every,
                                               video))
            else:
              future = pool.submit(segments.in_worker, frames, detect_every, video)
            if not put((path, future, {f.index: f.rgb for f in frames}
                        if keep_frames else None)):
              return
            frames = []
            if frame is not None and stop.is_set():
              kind = "stopped"
              break
          if frame is None:
            break
      except media.MediaError as e:
        kind, error = "error", e
      if not put(_Marker(path, kind, error)) or kind == "stopped":
        break
  except Exception as e:  # pylint: disable=broad-except  (re-raised by the consumer)
    put(e)
  put(None)


def _locked_plan(store, path, settings) -> outputs.Resume:
  """The input's plan, read again under its lock (another run may have moved it
  on since `_plans`); a done one is not kept locked."""
  if store is None:
    return outputs.Resume()
  store.lock(path)
  try:
    plan = store.resume(path, settings.as_dict())
  except BaseException:
    store.unlock(path)
    raise
  if plan.done:
    store.unlock(path)
  return plan


def _drain(items):
  try:
    while True:
      items.get_nowait()
  except queue.Empty:
    pass
