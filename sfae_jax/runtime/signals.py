"""Stopping a long job at its next safe point on SIGINT or SIGTERM (Ctrl-C,
`scancel`, a preempted VM, Kubernetes evicting a pod), and at once on a second
one. Training stops after a step with a checkpoint (`training/preemption.py`),
`predict` after the frames in flight with their chunks written."""

from __future__ import annotations

import signal
import sys
import threading


class StopRequest:
  """A context manager: within it, the first SIGINT or SIGTERM sets `event` and
  `signum` and prints `notice` (`{name}`: the signal's name); the program stops
  at its next safe point. A second one stops it at once (`stop_now`: raises
  KeyboardInterrupt, so `finally` blocks still run). Handlers are set from the
  main thread only (elsewhere, a notebook's worker say, signals keep theirs) and
  restored on exit."""

  def __init__(self, notice: str):
    self.notice = notice
    self.event = threading.Event()
    self.signum: int | None = None
    self._old = {}

  def handled(self) -> tuple[int, ...]:
    return (signal.SIGINT, signal.SIGTERM)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in self.handled():
        self._old[sig] = signal.signal(sig, self._on_signal)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._old.items():
      signal.signal(sig, handler)
    self._old = {}

  def _on_signal(self, signum, _frame) -> None:
    if self.event.is_set():
      self.stop_now(signum)
      return
    self.signum = signum
    self.event.set()
    print(self.notice.format(name=signal.Signals(signum).name), file=sys.stderr,
          flush=True)
    self.after_first(signum)

  def after_first(self, signum: int) -> None:
    """What else the first signal does (nothing here)."""

  def stop_now(self, signum: int) -> None:
    del signum
    raise KeyboardInterrupt
