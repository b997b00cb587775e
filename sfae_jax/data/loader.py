"""Input pipeline: a built split -> grain -> uint8 host batches.

grain reads a `sfae_jax.data.sources` split with worker processes and shuffles with
a new order every epoch; each host reads its rows of every global batch
(`GlobalBatchSlice`) in training and its own block of the split (`eval_shard`) in
evaluation. The host only decodes JPEG: crops, flips and rotations happen on the
accelerator (`sfae_jax.data.augment`).

Batches are dicts of numpy arrays: `image` `[b, 200, 200, 3]` uint8, `landmarks`
`[b, L, 2]` float32 (stored-face pixels), `au` `[b, A]` int8 (-1 = not coded),
`intensity` `[b, K]` int8 (0-5, -1 = not coded; where the dataset has it), `id`
`[b]` int64 (the example's index in the split) and, for evaluation, `mask` `[b]`
bool (False on padding rows).
"""

from __future__ import annotations

import math
from multiprocessing import shared_memory
import multiprocessing
import queue
import threading
from typing import Any, Callable, Iterator, NamedTuple

from absl import flags
from absl import logging
import grain.python as grain
import jax
import numpy as np

from sfae_jax.data.registry import DatasetError
from sfae_jax.runtime import host

AUTO_WORKERS = -1
MAX_WORKERS = 16


def auto_workers(cores: int | None = None, local_processes: int = 1) -> int:
  """grain worker processes for this host's share of `cores`.

  Two cores stay with the training process (dispatch, host-to-device copies, the
  XLA:CPU runtime); the rest decode, up to MAX_WORKERS. One 200x200 JPEG decodes
  in well under a millisecond per core (measured: docs/model.md, Performance), so 16
  workers feed several thousand images/s. With two cores or fewer, reading is
  inline: a worker would only take a core from the step."""
  cores = (cores or host.cores()) // max(1, local_processes)
  return max(0, min(MAX_WORKERS, cores - 2))


_WORKERS_OK: bool | None = None


def _child() -> None:
  pass


def workers_can_start() -> bool:
  """Whether this host can start grain's worker processes and their shared
  memory (both fail in some sandboxes and containers without /dev/shm)."""
  global _WORKERS_OK
  if _WORKERS_OK is None:
    try:
      shm = shared_memory.SharedMemory(create=True, size=4096)
      shm.close()
      shm.unlink()
      proc = multiprocessing.get_context("spawn").Process(target=_child)
      proc.start()
      proc.join(60)
      _WORKERS_OK = proc.exitcode == 0
    except (OSError, RuntimeError, ValueError):
      _WORKERS_OK = False
  return _WORKERS_OK


def resolve_workers(requested: int) -> int:
  """`config.grain_workers`: -1 sizes from this host's cores (`auto_workers`);
  0 reads inline. Where worker processes cannot start, reads inline with a
  warning instead of failing mid-run."""
  n = auto_workers(local_processes=1) if requested == AUTO_WORKERS else requested
  if n < 0:
    raise ValueError(f"config.grain_workers={requested}: use -1 (auto), 0 (inline) "
                     "or a number of worker processes.")
  if n > 0 and not workers_can_start():
    logging.warning("grain worker processes cannot start on this host (no "
                    "process spawning or shared memory); reading inline instead of "
                    "with %d workers. Set --config.grain_workers=0 to silence this.",
                    n)
    return 0
  return n


def _absl_flags_ready() -> None:
  """grain's worker processes read absl flags; outside an absl app (a notebook,
  a test) nothing has parsed them, so take the defaults."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


class _Indexed:
  """A random-access source whose examples carry their index as `id`, so every
  batch says which examples it holds (evaluation checks it counted each once)."""

  def __init__(self, source):
    self._source = source

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    return dict(self._source[index], id=index)

  def __repr__(self):
    return f"_Indexed({self._source!r})"


class _Select(grain.MapTransform):
  """Keeps the fields training uses, with fixed dtypes."""

  def map(self, element):
    out = {"image": np.asarray(element["image"], np.uint8),
           "landmarks": np.asarray(element["landmarks"], np.float32),
           "au": np.asarray(element["au"], np.int8),
           "id": np.asarray(element.get("id", -1), np.int64)}
    if "intensity" in element:
      out["intensity"] = np.asarray(element["intensity"], np.int8)
    return out


class GlobalBatchSlice:
  """Process k's rows of every global batch of a record order all processes share.

  `inner` (the same sampler, same seed, on every process) orders the records;
  global batch j is its positions [j * B, (j + 1) * B), and process k of P reads
  rows [k * B / P, (k + 1) * B / P) of it. So the global batches, and which device
  sees which example, are the same whatever the number of processes (grain's
  `ShardByJaxProcess` would shard the dataset first and shuffle each shard
  apart: other batches for another process count)."""

  def __init__(self, inner, global_batch: int, process_index: int,
               process_count: int):
    if global_batch % process_count:
      raise ValueError(f"batch {global_batch} does not split over "
                       f"{process_count} processes")
    self._inner, self._global = inner, global_batch
    self._local = global_batch // process_count
    self._k = process_index

  def global_position(self, index: int) -> int:
    batch, row = divmod(index, self._local)
    return batch * self._global + self._k * self._local + row

  def __getitem__(self, index: int) -> grain.RecordMetadata:
    meta = self._inner[self.global_position(index)]
    return grain.RecordMetadata(index=index, record_key=meta.record_key,
                                rng=meta.rng)

  def __repr__(self):
    return (f"GlobalBatchSlice({self._inner!r}, global_batch={self._global}, "
            f"local={self._local}, process={self._k})")


def train_loader(source, host_batch: int, seed: int, workers: int):
  """An endless, per-epoch-shuffled loader of this host's rows of each global
  batch (`GlobalBatchSlice`), full batches only.

  Its iterator has get_state()/set_state(), checkpointed with the model so a
  resumed run sees exactly the batches the interrupted one would have."""
  global_batch = host_batch * jax.process_count()
  if len(source) < global_batch:
    raise DatasetError(f"The training split has {len(source)} examples, fewer than "
                       f"one global batch ({global_batch}): lower "
                       "--config.batch_size.")
  _absl_flags_ready()
  order = grain.IndexSampler(len(source), grain.NoSharding(), shuffle=True,
                             num_epochs=None, seed=seed)
  sampler = GlobalBatchSlice(order, global_batch, jax.process_index(),
                             jax.process_count())
  return grain.DataLoader(
      data_source=_Indexed(source), sampler=sampler,
      worker_count=resolve_workers(workers), shard_options=grain.NoSharding(),
      operations=[_Select(), grain.Batch(host_batch, drop_remainder=True)])


class Checkpointing(NamedTuple):
  """How an orbax checkpoint keeps a train iterator's position."""
  handler: Callable[[], Any]     # () -> the orbax item handler
  save: Callable[[Any], Any]     # iterator -> its save args
  restore: Callable[[Any], Any]  # iterator -> its restore args


# grain's: one `process_<k>-of-<n>.json` per process (`training.checkpoints`).
CHECKPOINTING = Checkpointing(grain.PyGrainCheckpointHandler,
                              grain.PyGrainCheckpointSave,
                              grain.PyGrainCheckpointRestore)


class Prefetch:
  """Reads the next `depth` batches of a grain iterator in a background thread,
  so decoding overlaps the device's step.

  Checkpoint-safe: `get_state()` is the inner iterator's state *after the last
  batch handed out*, not after the ones read ahead, so a resumed run continues
  exactly where the consumer was. Duck-types grain's iterator for its orbax
  handler (get_state / set_state / start_prefetch)."""

  def __init__(self, inner, depth: int = 2):
    self._inner, self._depth = inner, depth
    self._state = inner.get_state()  # position of the consumer
    self._queue = None
    self._thread = None
    self._stop = None

  def _start(self) -> None:
    self._queue = queue.Queue(self._depth)
    self._stop = threading.Event()
    q, stop, inner = self._queue, self._stop, self._inner

    def work():
      while not stop.is_set():
        try:
          item = (next(inner), inner.get_state(), None)
        except BaseException as e:  # pylint: disable=broad-except
          item = (None, None, e)  # re-raised in the consumer's thread
        while not stop.is_set():
          try:
            q.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if item[2] is not None:
          return

    self._thread = threading.Thread(target=work, name="sfae-prefetch", daemon=True)
    self._thread.start()

  def _halt(self) -> None:
    if self._thread is not None:
      self._stop.set()
      self._thread.join()
      self._thread = None

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    if self._thread is None:
      self._start()
    batch, state, error = self._queue.get()
    if error is not None:
      self._thread = None
      raise error
    self._state = state
    return batch

  def get_state(self) -> bytes:
    return self._state

  def set_state(self, state: bytes) -> None:
    self._halt()  # batches read ahead belong to the old position
    self._inner.set_state(state)
    self._state = state

  def start_prefetch(self) -> None:
    start = getattr(self._inner, "start_prefetch", None)
    if start is not None:
      start()

  def close(self) -> None:
    self._halt()


def eval_shard(n: int, process_index: int, process_count: int) -> range:
  """The examples process `process_index` evaluates: a contiguous block of
  ceil(n / P), the last blocks shorter or empty, so every example is in exactly
  one block whatever n and P. (grain's `ShardByJaxProcess(drop_remainder=False)`
  loses one example of an odd split over 2 processes.)"""
  per = math.ceil(n / process_count)
  return range(min(n, process_index * per), min(n, (process_index + 1) * per))


class _Slice:
  """Examples [start, stop) of a random-access source, keeping their `id`."""

  def __init__(self, source, block: range):
    self._source, self._block = source, block

  def __len__(self):
    return len(self._block)

  def __getitem__(self, index):
    return self._source[self._block[index]]


def eval_batches(source, host_batch: int, workers: int = 0) -> Iterator[dict]:
  """Every example of this host's block (`eval_shard`) once, in order, in
  batches of exactly `host_batch` (the last padded, `mask` False on padding).
  Every host yields the same number of batches, ceil(ceil(n / P) / host_batch),
  so collective steps stay in lockstep across hosts, including hosts whose block
  is short or empty."""
  n, hosts = len(source), jax.process_count()
  if n == 0:
    raise DatasetError("The evaluation split has no examples.")
  block = eval_shard(n, jax.process_index(), hosts)
  num_batches = math.ceil(math.ceil(n / hosts) / host_batch)
  it = iter(())
  if len(block):
    _absl_flags_ready()
    sampler = grain.IndexSampler(len(block), grain.NoSharding(), shuffle=False,
                                 num_epochs=1, seed=0)
    loader = grain.DataLoader(
        data_source=_Slice(_Indexed(source), block), sampler=sampler,
        worker_count=resolve_workers(workers),
        operations=[_Select(), grain.Batch(host_batch, drop_remainder=False)])
    it = iter(loader)
  for _ in range(num_batches):
    batch = next(it, None)
    yield _pad(batch, host_batch, source[0])


def _pad(batch, size: int, template) -> dict:
  if batch is None:  # this host's shard ran out before another host's
    batch = {k: np.asarray(v)[None][:0] for k, v in
             _Select().map(template).items()}
  b = len(batch["au"])
  out = {k: np.concatenate([v, np.zeros((size - b,) + v.shape[1:], v.dtype)])
         for k, v in batch.items()}
  out["au"][b:] = -1
  if "intensity" in out:
    out["intensity"][b:] = -1
  out["id"][b:] = -1
  out["mask"] = np.arange(size) < b
  return out

