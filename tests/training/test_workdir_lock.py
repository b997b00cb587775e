"""The workdir lock: who holds it, when it is stale, who may remove it."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from sfae_jax.training import workdir_lock


def _write(workdir, **fields):
  record = dict(host=socket.gethostname(), pid=1, started="2026-01-01T00:00:00",
                renewed=time.time(), command="python -m sfae_jax.train ...")
  record.update(fields)
  (workdir / workdir_lock.LOCK_FILE).write_text(json.dumps(record))
  return record


def _dead_pid() -> int:
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def test_the_lock_records_its_holder_and_is_removed_on_release(tmp_path):
  with workdir_lock.WorkdirLock(tmp_path) as lock:
    held = json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())
    assert held["host"] == socket.gethostname()
    assert held["pid"] == os.getpid()
    assert held["command"].startswith(sys.executable)
    assert lock.note is None
    with pytest.raises(workdir_lock.WorkdirInUseError,
                       match=rf"in use by another training job: pid {held['pid']}"):
      workdir_lock.WorkdirLock(tmp_path).acquire()
  assert not (tmp_path / workdir_lock.LOCK_FILE).exists()


def test_a_lock_whose_process_is_gone_is_taken_over_with_a_message(tmp_path):
  pid = _dead_pid()
  _write(tmp_path, pid=pid)
  with workdir_lock.WorkdirLock(tmp_path) as lock:
    assert f"its process {pid} on this host is gone" in lock.note
    assert json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())["pid"] != pid


def test_another_hosts_lock_holds_while_its_lease_is_renewed(tmp_path):
  _write(tmp_path, host="other-node", pid=123, renewed=time.time() - 60)
  with pytest.raises(workdir_lock.WorkdirInUseError, match="pid 123 on other-node"):
    workdir_lock.WorkdirLock(tmp_path).acquire()
  _write(tmp_path, host="other-node", pid=123,
         renewed=time.time() - workdir_lock.LEASE_S - 60)
  with workdir_lock.WorkdirLock(tmp_path) as lock:
    assert "its lease was last renewed 6 min ago" in lock.note


def test_release_leaves_a_lock_that_another_job_has_taken(tmp_path):
  lock = workdir_lock.WorkdirLock(tmp_path).acquire()
  theirs = _write(tmp_path, host="other-node", pid=99)
  lock.release()
  assert json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text()) == theirs


def test_the_lease_is_renewed_while_held(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir_lock, "RENEW_S", 0.05)
  with workdir_lock.WorkdirLock(tmp_path):
    first = json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())["renewed"]
    time.sleep(0.3)
    later = json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())["renewed"]
  assert later > first


def test_a_lock_file_cut_short_is_taken_over(tmp_path):
  (tmp_path / workdir_lock.LOCK_FILE).write_text('{"host": "a", "pi')
  with workdir_lock.WorkdirLock(tmp_path) as lock:
    assert "it cannot be read" in lock.note
