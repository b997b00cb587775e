"""One training job per workdir: `WORKDIR/lock.json`, held by process 0.

Two jobs training into one workdir would write the same checkpoints and run.json
(a second start of the same command, a scheduler that runs a job twice): orbax
fails on the other's temporary folders, or, worse, both finish and the record
names one run's settings beside the other's weights. So `train` takes the lock
before it writes anything and releases it when it ends, however it ends.

The lock records the holder's host, pid, start time and command, and a lease
that a thread renews every `RENEW_S`. Another job is refused with one line
naming the holder. A lock is stale, and taken over with a message, when its
process is gone (same host), or when its lease has not been renewed for
`LEASE_S` (any host: a job on another machine of a shared file system, or one
that was killed). `evaluate` and `predict` only read a workdir and never lock it.

On a local file system the lock file is created exclusively (`O_EXCL`); on
object stores (`gs://`), which have no exclusive create, it is written and read
back, which narrows the race without closing it.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
import threading
import time
from typing import Optional

from etils import epath

from sfae_jax.runtime import files

LOCK_FILE = "lock.json"
LEASE_S = 300.0  # a lease older than this is stale
RENEW_S = 60.0


class WorkdirError(RuntimeError):
  """The workdir cannot be used for training; the message says why and what to do."""


class WorkdirInUseError(WorkdirError):
  """Another live job holds the workdir."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's live process
    return True
  return True


def _record() -> dict:
  now = time.time()
  return {"host": socket.gethostname(), "pid": os.getpid(),
          "started": datetime.datetime.fromtimestamp(now).isoformat(
              timespec="seconds"),
          "renewed": now, "command": " ".join([sys.executable] + sys.argv)}


def stale_reason(holder: dict, now: Optional[float] = None) -> Optional[str]:
  """Why the lock `holder` no longer holds (None while it does)."""
  if holder.get("unreadable"):
    return "it cannot be read (cut short by a crash)"
  now = time.time() if now is None else now
  age = now - float(holder.get("renewed", 0))
  if holder.get("host") == socket.gethostname() and not _alive(int(
      holder.get("pid", -1))):
    return f"its process {holder.get('pid')} on this host is gone"
  if age > LEASE_S:
    return f"its lease was last renewed {age / 60:.0f} min ago"
  return None


def describe(holder: dict) -> str:
  return (f"pid {holder.get('pid')} on {holder.get('host')}, since "
          f"{holder.get('started')} ({holder.get('command')})")


class WorkdirLock:
  """`with WorkdirLock(workdir) as lock:` holds `workdir` for the block;
  `lock.note` says what happened to a stale lock, if one was taken over."""

  def __init__(self, workdir):
    self.path = epath.Path(workdir) / LOCK_FILE
    self.note: Optional[str] = None
    self._record = None
    self._stop = threading.Event()
    self._thread = None

  def _read(self) -> Optional[dict]:
    try:
      return json.loads(self.path.read_text())
    except FileNotFoundError:
      return None
    except ValueError:  # cut short by a crash mid-write: nobody's lock
      return {"unreadable": True, "host": "?", "pid": "?", "started": "?",
              "command": "?"}

  def _create(self, record: dict) -> bool:
    """Writes the lock if there is none; False if one appeared first."""
    text = json.dumps(record, indent=1)
    local = "://" not in str(self.path)
    if local:
      try:
        fd = os.open(str(self.path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        return False
      with os.fdopen(fd, "w") as f:
        f.write(text)
      return True
    if self.path.exists():
      return False
    self.path.write_text(text)
    time.sleep(1.0)  # read back: another writer's record would be there now
    return (self._read() or {}).get("pid") == record["pid"]

  def acquire(self) -> "WorkdirLock":
    record = _record()
    for _ in range(3):
      if self._create(record):
        break
      holder = self._read()
      if holder is None:
        continue  # released in between: try again
      why = stale_reason(holder)
      if why is None:
        raise WorkdirInUseError(
            f"{self.path.parent} is in use by another training job: "
            f"{describe(holder)}. Wait for it, stop it, or use another --workdir "
            f"(if that job is gone, delete {self.path}).")
      self.note = (f"Took over the stale lock of {self.path.parent} ({why}): "
                   f"{describe(holder)}.")
      try:
        self.path.unlink()
      except FileNotFoundError:
        pass
    else:
      raise WorkdirInUseError(f"Could not take the lock {self.path}: another job "
                              "keeps taking it. Use another --workdir.")
    self._record = record
    self._thread = threading.Thread(target=self._renew, daemon=True,
                                    name="sfae-workdir-lock")
    self._thread.start()
    return self

  def _renew(self) -> None:
    while not self._stop.wait(RENEW_S):
      self._record["renewed"] = time.time()
      try:
        files.write_atomically(self.path, json.dumps(self._record, indent=1))
      except OSError:
        pass  # a full disk or a network blip: the next renewal tries again

  def release(self) -> None:
    if self._record is None:
      return
    self._stop.set()
    self._thread.join()
    holder = self._read()
    if holder and holder.get("pid") == self._record["pid"] and holder.get(
        "host") == self._record["host"]:
      self.path.unlink()
    self._record = None

  def __enter__(self) -> "WorkdirLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()
