"""predict's face work on a Ray cluster (`predict --ray [ADDRESS]`).

The stream runs as on one machine: this process (the driver) decodes each input
in order, runs the model and writes the rows, chunks and provenance. Only the
faces of each segment (detection, landmark refit and alignment: most of the CPU
at default settings) become Ray tasks, scheduled on the cluster's CPUs, so the
segments of one long video spread over every node. A task is a pure function of
its frames, and the same code as on one machine makes every row from its
result, so the outputs are those of `predict --out DIR/`.

Faults: a task whose worker or node dies is run again elsewhere by Ray (up to
TASK_RETRIES times) with the same result, so the CSVs do not change. A driver
that is killed leaves its chunks (`outputs`): the same command continues them.

`RayPool` is the part of `concurrent.futures.Executor` the stream uses
(`submit`, `shutdown`), so the stream does not know which one it has.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Optional

import cv2

from sfae_jax.face import segments

TASK_RETRIES = 5   # Ray's retries of a task whose process or node died
# At most this many segments in flight (~11 MB of frames each at 640x360): the
# driver decodes ~2 ms per frame, so a few dozen tasks of ~0.2 s keep up with
# it however large the cluster, and the object store stays small.
MAX_IN_FLIGHT = 64
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
  """Face work as Ray tasks, one CPU each. `address`: a running cluster's
  (`ray start --head` prints it), or None for $RAY_ADDRESS, else the cluster
  started on this machine."""

  def __init__(self, address: Optional[str], backend: str, fast_video: bool):
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
    # segments in flight: one per CPU, up to what one driver can feed
    self.slots = min(MAX_IN_FLIGHT, max(1, int(ray.cluster_resources().get("CPU", 1))))
    self._task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_faces)
    self._spec = (backend, fast_video)
    self._pending: set = set()

  def submit(self, fn, *args):
    ref = self._task.remote(*self._spec, fn, *args)
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
