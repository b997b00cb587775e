"""Stopping training at a step every process agrees on, with a checkpoint of it.

Cloud TPU and GPU capacity is preempted with a SIGTERM and a short notice (about
30 s on spot VMs); SLURM sends its `--signal`; Kubernetes evicts pods with one.
`StopSignals` turns SIGTERM and SIGINT into "save a checkpoint after the current
step and exit with `EXIT_PREEMPTED`", so a preemption costs at most one step:

* **One process** (no JAX coordination service): SIGTERM and SIGINT set a flag
  that the training loop reads after every step.
* **A multi-process job** (or one Cloud TPU host that joined JAX's service):
  `jax.distributed.initialize` installs JAX's preemption notifier, a C++ SIGTERM
  handler that records the notice and tells the coordination service, which
  picks the step every process stops at (the largest step any process has
  reached, plus one: `multihost_utils.reached_preemption_sync_point`). That
  handler replaces SIGTERM's default action, which is why a SIGTERM does not
  stop such a process by itself: the process stops only once its program asks
  for the sync point. SIGINT is turned into the same notice (a SIGTERM to
  itself), so Ctrl-C stops every process at one step too.

A second signal stops the process at once, without a checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys

from jax._src import distributed as jax_distributed
from jax.experimental import multihost_utils

from sfae_jax.runtime import signals

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: try again later (the rerun resumes)


class Preempted(Exception):
  """Training stopped at `step` on a signal, its checkpoint saved."""

  def __init__(self, step: int, signame: str):
    super().__init__(f"preempted ({signame}) at step {step}, its checkpoint saved; "
                     "rerun the same command to resume.")
    self.step, self.signame = step, signame


def _coordinated() -> bool:
  return jax_distributed.global_state.preemption_sync_manager is not None


class StopSignals(signals.StopRequest):
  """A context manager: within it, SIGTERM and SIGINT ask the training loop to
  stop; `reached(step)`, called by every process after every step, says when."""

  def __init__(self):
    super().__init__("{name}: stopping after this step, with a checkpoint (send "
                     "it again to stop at once, without one).")

  def handled(self) -> tuple[int, ...]:
    if _coordinated():  # JAX's notifier owns SIGTERM
      return (signal.SIGINT,)
    return super().handled()

  def after_first(self, signum: int) -> None:
    if _coordinated() and signum != signal.SIGTERM:
      os.kill(os.getpid(), signal.SIGTERM)  # JAX's notifier: every process agrees

  def stop_now(self, signum: int) -> None:
    # At once, without unwinding: a multi-process job's exit handlers would wait
    # for peers that are still training.
    print(f"{signal.Signals(signum).name} again: stopping now, without a "
          "checkpoint.", file=sys.stderr, flush=True)
    os._exit(128 + signum)  # pylint: disable=protected-access

  @property
  def signame(self) -> str:
    return signal.Signals(self.signum or signal.SIGTERM).name

  def reached(self, step: int) -> bool:
    """True at the step to stop at (the same on every process of the job)."""
    if _coordinated():
      return multihost_utils.reached_preemption_sync_point(step)
    return self.event.is_set()
