"""Joining a multi-process JAX job: several hosts, or several processes on one.

`initialize()` runs first in every entry point that can be one process of many
(`train`, `evaluate`). What it does, in order:

1. Explicit settings (flags, or the environment variables `JAX_COORDINATOR_ADDRESS`,
   `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`, as `launch/local.py` sets them): join
   that job.
2. Otherwise a cluster JAX knows how to read (auto-detected): a SLURM job step of
   several tasks (`srun`), an Open MPI job (`mpirun`), a Cloud TPU VM (one host or
   a multi-host slice). `jax.distributed.initialize()` takes everything from it.
   Kubernetes and mpi4py are only used with `--distributed=on`, since a notebook
   running in a Kubernetes pod is not a JAX job.
3. Otherwise nothing: a plain single process.

CPU collectives between processes use gloo (set here, before JAX starts; it does
not affect GPU or TPU collectives). Before joining, every process prints its id,
the process count, the coordinator and the join timeout (`--join_timeout`, 300 s);
while it waits for the others, a line every 30 s; when the job has not formed by
the timeout, one error line naming the coordinator and the likely causes, and
exit status 69 (JAX itself would abort with a C++ stack trace). Once joined:
"process k of n, L local / G global devices".

**Failure.** A process that dies is noticed by the others through JAX's
coordination service: if it was process 0 (the coordinator), at once; otherwise
after `heartbeat_timeout` seconds without its heartbeat (60 by default here,
JAX's is 100). The survivors then stop with JAX's "Terminating process because
the JAX distributed service detected fatal errors" and a non-zero status; none
hangs. Rerunning the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import threading
import time
from typing import Optional

from absl import flags
import jax
from jax._src import distributed as jax_distributed
from jax._src.clusters import ClusterEnv
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint  # noqa: F401  (defines the barrier flag set below)

try:  # private: where JAX itself tells a Cloud TPU VM apart
  from jax._src import cloud_tpu_init
except ImportError:
  cloud_tpu_init = None

MODES = ("auto", "on", "off")
ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
_BARRIERS = itertools.count()

EXIT_JOIN_FAILED = 69  # EX_UNAVAILABLE
_JOIN_CAUSES = ("Likely causes: a process of the job was not started (or "
                "crashed), the processes disagree on the coordinator address, port "
                "or process count, or a firewall blocks the port.")


class DistributedError(RuntimeError):
  """A multi-process job that cannot start, with the reason and the fix."""


@dataclasses.dataclass(frozen=True)
class Settings:
  mode: str = "auto"
  coordinator_address: Optional[str] = None
  num_processes: Optional[int] = None
  process_id: Optional[int] = None
  heartbeat_timeout: int = 60       # seconds before a silent peer counts as dead
  initialization_timeout: int = 300  # seconds to wait for every process to join
  shutdown_timeout: int = 120       # seconds a finished process waits for the rest


def _env_int(name: str) -> Optional[int]:
  value = os.environ.get(name)
  if value in (None, ""):
    return None
  try:
    return int(value)
  except ValueError:
    raise DistributedError(f"{name}={value!r} is not an integer.") from None


def explicit(settings: Settings) -> tuple[Optional[str], Optional[int], Optional[int]]:
  """(coordinator, num_processes, process_id) from the settings, else the env."""
  return (settings.coordinator_address or os.environ.get(ENV[0]) or None,
          settings.num_processes if settings.num_processes is not None
          else _env_int(ENV[1]),
          settings.process_id if settings.process_id is not None
          else _env_int(ENV[2]))


def detect_cluster(environ=None) -> Optional[str]:
  """The multi-process cluster this process runs in ('slurm', 'openmpi',
  'cloud_tpu'), or None. Only environment variables and local files are read."""
  env = os.environ if environ is None else environ
  slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
           "SLURM_LOCALID")
  if all(k in env for k in slurm) and int(env["SLURM_NTASKS"]) > 1:
    return "slurm"
  if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", 1)) > 1:
    return "openmpi"
  if environ is None and _on_cloud_tpu_vm():
    return "cloud_tpu"
  return None


def _on_cloud_tpu_vm() -> bool:
  running = getattr(cloud_tpu_init, "running_in_cloud_tpu_vm", None)
  if running is not None:
    return bool(running)
  return os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0")


def initialize(settings: Settings = Settings()) -> str:
  """Joins the job the settings, the environment or the cluster describe (or
  does nothing for a single process); prints and returns the one-line summary."""
  if settings.mode not in MODES:
    raise DistributedError(f"--distributed={settings.mode!r}: choose one of {MODES}.")
  if jax.distributed.is_initialized():
    return summary()
  address, count, index = explicit(settings)
  given = [v is not None for v in (address, count, index)]
  if any(given) and not all(given):
    raise DistributedError(
        "A multi-process job needs all three of the coordinator address, the number "
        "of processes and this process's id (--coordinator_address, --num_processes, "
        f"--process_id, or {', '.join(ENV)}); got address={address}, "
        f"num_processes={count}, process_id={index}.")
  cluster = detect_cluster()
  if settings.mode == "off" or (settings.mode == "auto" and not all(given)
                                and cluster is None):
    return summary()
  if all(given) and not 0 <= index < count:
    raise DistributedError(f"process_id={index} must be in [0, {count}).")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  timeout = settings.initialization_timeout
  # JAX aborts the process (SIGABRT, a C++ stack trace) when its own timeout
  # passes; the watchdog below gives up first, with one line.
  kwargs = dict(heartbeat_timeout_seconds=settings.heartbeat_timeout,
                initialization_timeout=timeout + 60,
                shutdown_timeout_seconds=settings.shutdown_timeout)
  if not all(given):
    address, count, index = _cluster_params(cluster, timeout)
  where = address or f"the {cluster or 'cluster'} coordinator"
  print(f"joining a job of {count or '?'} processes as process "
        f"{'?' if index is None else index} via the coordinator {where} "
        f"(waiting up to {timeout}s for every process)", flush=True)
  watchdog = _JoinWatchdog(where, count, index, timeout)
  try:
    if all(given):
      jax.distributed.initialize(address, count, index, **kwargs)
    else:
      jax.distributed.initialize(**kwargs)
    _orbax_uses_coordination_service()
  except (RuntimeError, ValueError) as e:
    raise DistributedError(
        f"Could not join the multi-process job via {where} "
        f"({' '.join(str(e).split())[:300]}). {_JOIN_CAUSES}") from None
  finally:
    watchdog.stop()
  return summary()


def _cluster_params(cluster, timeout):
  """(coordinator, count, id) as JAX will read them from `cluster`; Nones where
  it cannot say before joining."""
  try:
    address, count, index, _ = ClusterEnv.auto_detect_unset_distributed_params(
        None, None, None, None, None, timeout)
    return address, count, index
  except Exception:  # pylint: disable=broad-except
    return None, None, None


class _JoinWatchdog:
  """While `jax.distributed.initialize` waits for the other processes: a line
  every 30 s (every half timeout when shorter), then, at the timeout, one line
  naming the coordinator and the likely causes, and exit EXIT_JOIN_FAILED."""

  def __init__(self, where, count, index, timeout: float):
    self._done = threading.Event()
    every = min(30.0, timeout / 2)
    def watch():
      start = time.time()
      while not self._done.wait(min(every, max(0.0, timeout - (time.time() - start)))):
        waited = time.time() - start
        if waited >= timeout:
          print(f"error: process {index} of {count}: the job did not form within "
                f"{timeout:.0f}s via the coordinator {where}. {_JOIN_CAUSES}",
                file=sys.stderr, flush=True)
          os._exit(EXIT_JOIN_FAILED)  # pylint: disable=protected-access
        print(f"process {index} of {count}: still waiting for the job to form via "
              f"{where} ({waited:.0f}s of {timeout:.0f}s)", flush=True)
    self._thread = threading.Thread(target=watch, daemon=True, name="sfae-join")
    self._thread.start()

  def stop(self) -> None:
    self._done.set()
    self._thread.join()


def _orbax_uses_coordination_service() -> None:
  """Orbax synchronises hosts with a device collective by default; on CPU (gloo)
  that fails when hosts arrive more than 30 s apart (e.g. one compiled for longer),
  so its barriers go through JAX's coordination service instead."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  name = "experimental_orbax_use_distributed_barrier"
  if name in flags.FLAGS:
    flags.FLAGS[name].value = True


def compiled(jitted, *args, name: str):
  """`jitted` compiled ahead of time for `args`, every process then waiting for
  the others before the first run: gloo (CPU) gives up when processes enter a
  collective more than 30 s apart, and compile times differ between hosts."""
  executable = jitted.lower(*args).compile()
  barrier(f"sfae_compiled_{name}")
  return executable


def summary() -> str:
  line = (f"process {jax.process_index()} of {jax.process_count()}, "
          f"{jax.local_device_count()} local / {jax.device_count()} global "
          f"{jax.devices()[0].platform} devices")
  print(line, flush=True)
  return line


def barrier(name: str, timeout_s: int = 3600) -> None:
  """Every process waits here until all arrive (no-op for one process). Uses the
  coordination service, not a device collective, so it may wait for minutes of
  host work (e.g. process 0 building the dataset)."""
  if jax.process_count() == 1:
    return
  # Every process passes the same barriers in the same order, so a running count
  # makes each name unique (a name may be met again, e.g. evaluating several runs).
  name = f"{name}_{next(_BARRIERS)}"
  client = jax_distributed.global_state.client
  if client is None:  # e.g. a TPU pod that JAX joined by itself
    multihost_utils.sync_global_devices(name)
    return
  client.wait_at_barrier(name, timeout_s * 1000)


def share_from_main(name: str, text: str, timeout_s: int = 3600) -> str:
  """Process 0's `text`, on every process (e.g. whether it could lock the
  workdir, so that all stop together); `text` itself for one process."""
  if jax.process_count() == 1:
    return text
  key = f"sfae_share/{name}_{next(_BARRIERS)}"
  client = jax_distributed.global_state.client
  if client is None:  # e.g. a TPU pod that JAX joined by itself
    data = np.zeros(4096, np.uint8)
    raw = text.encode()[:4096]
    data[:len(raw)] = np.frombuffer(raw, np.uint8)
    out = np.asarray(multihost_utils.broadcast_one_to_all(data))
    return bytes(out).rstrip(b"\0").decode(errors="replace")
  if jax.process_index() == 0:
    client.key_value_set(key, text)
    return text
  return client.blocking_key_value_get(key, timeout_s * 1000)


class PeerError(RuntimeError):
  """Process 0 stopped the job; the message is its error."""


def run_on_main(name: str, fn):
  """`fn()` on process 0 only. If it raises, every process raises: process 0 the
  error itself, the others `PeerError` with its message, so the job stops
  together instead of waiting at the next barrier. Returns `fn()` on process 0,
  None elsewhere."""
  result, error = None, None
  if jax.process_index() == 0:
    try:
      result = fn()
    except Exception as e:  # pylint: disable=broad-except
      error = e
  message = share_from_main(name, "" if error is None else
                            (str(error) or type(error).__name__))
  if error is not None:
    raise error
  if message:
    raise PeerError(message)
  return result


# A multi-process job's command-line settings, (name, type, default, help):
# absl flags in `train`, argparse options in `evaluate`.
COMMAND_LINE = (
    ("distributed", str, "auto", "auto: join a multi-process job when the flags "
     "below, the JAX_* variables or a SLURM/Open MPI/Cloud TPU cluster say so; "
     "on: always (jax.distributed.initialize()); off: one process."),
    ("coordinator_address", str, None, "host:port of process 0."),
    ("num_processes", int, None, "Processes in the job."),
    ("process_id", int, None, "This process's id, 0..num_processes-1."),
    ("heartbeat_timeout", int, Settings.heartbeat_timeout,
     "Seconds before a silent process counts as dead."),
    ("join_timeout", int, Settings.initialization_timeout,
     "Seconds to wait for every process to join the job."),
)


def define_absl_flags() -> None:
  for name, kind, default, text in COMMAND_LINE:
    if name == "distributed":
      flags.DEFINE_enum(name, default, MODES, text)
    elif kind is int:
      flags.DEFINE_integer(name, default, text)
    else:
      flags.DEFINE_string(name, default, text)


def add_argparse_flags(parser) -> None:
  g = parser.add_argument_group("multi-process jobs (see `sfae_jax.runtime.distributed`)")
  for name, kind, default, text in COMMAND_LINE:
    g.add_argument(f"--{name}", type=kind, default=default, help=text,
                   choices=MODES if name == "distributed" else None)


def settings_from(ns) -> Settings:
  """The Settings of parsed options: an argparse namespace or absl's FLAGS."""
  return Settings(mode=ns.distributed, coordinator_address=ns.coordinator_address,
                  num_processes=ns.num_processes, process_id=ns.process_id,
                  heartbeat_timeout=ns.heartbeat_timeout,
                  initialization_timeout=ns.join_timeout)


def fail(e: Exception) -> None:
  print(f"error: {e}", file=sys.stderr)
  sys.exit(2)
