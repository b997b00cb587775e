"""Multi-process jobs for real: 2 processes x 2 CPU devices on this machine, started
through `launch/local.py` (what a user runs), exchanging data through gloo as the
hosts of a cluster would. The references are 1-process x 4-device runs on the same
global batches and seed."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

from sfae_jax import evaluate
from sfae_jax.data import loader, sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = [sys.executable, os.path.join(ROOT, "launch", "local.py")]
HEARTBEAT_S = 10   # the tests' heartbeat timeout (users: 60)
EXIT_BOUND_S = 60  # a survivor must stop by itself within this after a peer dies


def _train_cmd(workdir, data_dir, *flags):
  return [*LAUNCH, "2", "--cpu-devices", "2", "--grace", "120", "--",
          sys.executable, "-m", "sfae_jax.train", "--config",
          os.path.join(ROOT, "configs", "test.py"), "--workdir", str(workdir),
          "--config.data_dir", data_dir, f"--heartbeat_timeout={HEARTBEAT_S}",
          *flags]


def _params(workdir, step, like):
  """Checkpointed params onto one local device, with `like`'s tree (a state
  restored from a 1-process run): a 2-process checkpoint names devices that
  this process does not have."""
  one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                       sharding=one), like)
  path = os.path.join(workdir, "checkpoints", str(step), "state")
  return ocp.StandardCheckpointer().restore(path, target)["params"]


def _max_diff(a, b):
  return max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


_LOADER_SCRIPT = """
import json, sys
from sfae_jax.runtime import distributed
distributed.initialize()
from sfae_jax.data import loader, sources
src = sources.open_split(sys.argv[1], "bp4d49", "part1+part2", dataset="bp4d")
it = iter(loader.train_loader(src, host_batch=4, seed=0, workers=0))
print("IDS", json.dumps([next(it)["id"].tolist() for _ in range(6)]), flush=True)
"""


def test_each_process_reads_a_disjoint_half_of_every_global_batch(synthetic_tfds):
  """Process k reads rows [4k, 4k + 4) of each global batch of 8: exactly the
  rows a single process reading the whole global batch puts on those devices."""
  out = subprocess.run([*LAUNCH, "2", "--cpu-devices", "2", "--", sys.executable,
                        "-c", _LOADER_SCRIPT, synthetic_tfds],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stdout[-3000:]
  ids = {int(m[1]): json.loads(m[2]) for m in
         re.finditer(r"^\[(\d)\] IDS (.*)$", out.stdout, re.M)}
  assert sorted(ids) == [0, 1]
  assert "[0] process 0 of 2, 2 local / 4 global cpu devices" in out.stdout
  src = sources.open_split(synthetic_tfds, "bp4d49", "part1+part2", dataset="bp4d")
  it = iter(loader.train_loader(src, host_batch=8, seed=0, workers=0))
  single = [next(it)["id"].tolist() for _ in range(6)]
  epoch = []
  for a, b, whole in zip(ids[0], ids[1], single):  # 6 x 8 = 48 > one epoch (40)
    assert len(a) == len(b) == 4
    assert not set(a) & set(b), (a, b)
    assert a + b == whole
    epoch += whole
  assert sorted(epoch[:40]) == list(range(40))  # 5 global batches = the epoch


def test_killed_process_stops_the_job_and_the_rerun_resumes(trained_run,
                                                            synthetic_tfds,
                                                            tmp_path, capsys):
  """SIGKILL process 1 once the step-1 checkpoint is written (a checkpoint every
  step). Process 0 must stop by itself (heartbeat timeout) with a non-zero status,
  naming what happened; the same launch command then resumes from step 1 or 2.

  Its step-3 parameters must equal those of the uninterrupted 1-process x
  4-device run (`trained_run`: same config, seed and global batches) to 10 % of
  how far they moved from step 1: this checks the 2-process step and the resume
  at once, since one wrong or repeated batch changes a step's update (about half
  of that movement) wholesale. (Not exactly: float summation order differs
  between the two layouts, in the all-reduce and in the long B*h*w reductions of
  the CPU kernel gradients, and this tiny model at lr 0.01 amplifies rounding
  about 10x per step. Measured at step 3: 7.5e-7 with XLA's own gradients; with
  the CPU kernels of `sfae_jax.models.conv` 4.7e-5, 5.3e-4 and 6.0e-4 in three
  runs (0.1-1.5 % of the 3.9e-2 moved), at LLVM -O0 and -O2 alike.) Its
  2-process evaluation of a split smaller than the device count must give
  the table 1-process `evaluate` gives on the same checkpoint."""
  workdir = tmp_path / "mp"
  cmd = _train_cmd(workdir, synthetic_tfds, "--config.num_train_steps=5",
                   "--config.checkpoint_every_steps=1", "--config.keep_checkpoints=9",
                   "--config.log_every_steps=1",
                   "--config.eval_split=part3[:3]")  # fewer than the 4 devices
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
  pids, log, killed_at = {}, [], None
  deadline = time.time() + 600
  for line in proc.stdout:
    log.append(line)
    if m := re.match(r"launch: process (\d) of 2: pid (\d+)", line):
      pids[int(m[1])] = int(m[2])
    if killed_at is None and re.search(r"\] epoch .* step [2-5]/5", line):
      while not (workdir / "checkpoints" / "1").exists() and time.time() < deadline:
        time.sleep(0.05)
      os.kill(pids[1], signal.SIGKILL)
      killed_at = time.time()
  proc.wait(timeout=EXIT_BOUND_S + 130)
  text = "".join(log)
  assert killed_at is not None, text[-3000:]
  ended = re.search(r"launch: process 0 ended \((.*?), ([\d.]+)s after process 1 "
                    r"failed\)", text)
  assert ended, text[-3000:]
  survivor_status, survivor_s = ended[1], float(ended[2])
  print(f"survivor: {survivor_status} {survivor_s:.1f}s after the kill")
  assert proc.returncode != 0
  assert "still running" not in text  # it stopped by itself, not by the launcher
  assert survivor_s < EXIT_BOUND_S
  assert survivor_status != "exit 0"
  assert ("another task died" in text or "another process has probably died" in text
          or "heartbeat timeout" in text), text[-3000:]
  assert not (workdir / "checkpoints" / "3").exists(), "killed too late to test"

  rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
  assert rerun.returncode == 0, rerun.stdout[-3000:]
  resumed = int(re.search(r"from step (\d+)\.", rerun.stdout)[1])
  assert resumed in (1, 2), rerun.stdout[-2000:]

  _assert_near_the_one_process_run(workdir, trained_run[0], 3, 1,
                                   f"killed, resumed from {resumed}", capsys)
  _assert_one_process_evaluate_agrees(workdir, 5, "part3[:3]", 3, rerun.stdout,
                                      capsys)


def _assert_near_the_one_process_run(workdir, reference, step, since, how,
                                     capsys):
  """The job's parameters at `step` equal the 1-process run's (`reference`) to
  10 % of how far they moved from step `since` (see the SIGKILL test: float
  summation order differs between the layouts; one wrong batch moves them by
  about half of that)."""
  like = ocp.StandardCheckpointer().restore(
      os.path.join(reference, "checkpoints", str(step), "state"))
  ours = _params(str(workdir), step, like)
  diff = _max_diff(ours, like["params"])
  moved = _max_diff(ours, _params(str(workdir), since, like))
  with capsys.disabled():
    print(f"2-process ({how}) vs 1-process parameters at step {step}: max |diff| "
          f"{diff:.2e} (they moved {moved:.2e} from step {since})")
  assert moved > 1e-3
  assert diff <= 0.1 * moved


def _assert_one_process_evaluate_agrees(workdir, step, split, size, job_stdout,
                                        capsys):
  """The job's training-end evaluation of `split` (`size` examples, each counted
  once) equals 1-process `evaluate` on the same checkpoint digit for digit."""
  name = f"eval_{split}_{step}.json"
  two_process = json.loads((workdir / name).read_text())
  capsys.readouterr()
  assert evaluate.main(["--workdir", str(workdir), "--distributed", "off"]) == 0
  table = capsys.readouterr().out
  body = lambda t: [l for l in t.splitlines() if l.startswith("| AU")]  # noqa: E731
  assert body(table) and body(table) == body(job_stdout.replace("[0] ", "")), \
      (table, job_stdout[-2000:])
  one_process = json.loads((workdir / name).read_text())
  assert one_process["num_examples"] == two_process["num_examples"] == size
  for key in ("f1", "accuracy", "n_known", "n_positive"):
    assert one_process[key] == two_process[key], key


def test_sigterm_stops_both_processes_at_one_step_and_the_rerun_resumes(
    trained_run, synthetic_tfds, tmp_path, capsys):
  """SIGTERM to the launcher once step 1 is logged (what `scancel` or a
  preempted VM does): it forwards it, both processes must agree on one step (the
  next after the furthest one's), save it, exit 75 with one line each, and the
  launcher must say that a rerun resumes. The rerun must end at the parameters
  of the uninterrupted 1-process run (to 10 % of how far they moved, as in the
  SIGKILL test), and its training-end evaluation of an odd split (7) must equal
  1-process `evaluate`."""
  workdir = tmp_path / "mp"
  cmd = _train_cmd(workdir, synthetic_tfds, "--config.log_every_steps=1",
                   "--config.eval_split=part3[:7]")
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
  log, sent = [], None
  for line in proc.stdout:
    log.append(line)
    if sent is None and re.search(r"\] epoch .* step 1/6", line):
      proc.send_signal(signal.SIGTERM)
      sent = time.time()
  proc.wait(timeout=300)
  took = time.time() - sent
  text = "".join(log)
  assert sent is not None, text[-3000:]
  assert proc.returncode == 75, text[-3000:]
  steps = {int(k): int(n) for k, n in re.findall(
      r"^\[(\d)\] preempted \(SIGTERM\) at step (\d+), its checkpoint saved; rerun "
      r"the same command to resume\.$", text, re.M)}
  assert sorted(steps) == [0, 1] and steps[0] == steps[1], text[-3000:]
  saved = steps[0]
  with capsys.disabled():
    print(f"2 processes: SIGTERM -> launcher exit {took:.1f}s, step {saved} saved")
  assert saved in (2, 3), text[-3000:]
  assert "Traceback" not in text
  assert "the job was stopped by a signal and saved a checkpoint" in text
  assert (workdir / "checkpoints" / str(saved)).is_dir()

  rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
  assert rerun.returncode == 0, rerun.stdout[-3000:]
  assert f"from step {saved}." in rerun.stdout
  _assert_near_the_one_process_run(workdir, trained_run[0], 6, saved,
                                   f"stopped at {saved}, resumed", capsys)
  _assert_one_process_evaluate_agrees(workdir, 6, "part3[:7]", 7, rerun.stdout,
                                      capsys)


_EVALUATE_SCRIPT = """
import json, sys
from sfae_jax import evaluate
from sfae_jax.runtime import distributed
distributed.initialize()
for split in sys.argv[2:]:
  r = evaluate.evaluate_workdir(sys.argv[1], split=split)
  print("RESULT", json.dumps({"split": split, "n": r["num_examples"],
                              "f1": [None if x != x else x for x in r["f1"]],
                              "n_known": r["n_known"].tolist()}), flush=True)
"""

# 1, 2 (fewer than the 3 processes), 7 (odd), 13 (prime, < the global batch of
# 18) and 20 examples
ODD_SPLITS = ("part3[:1]", "part3[:2]", "part3[:7]", "part3[:13]", "part3")


def test_three_processes_evaluate_odd_splits_as_one_process_does(trained_run,
                                                                 tmp_path):
  """`evaluate` in 3 processes x 1 device (the evaluation batch of 16 rounded
  up to 18) against 1 process x 4 devices, on splits of 1, 2, 7, 13 and 20."""
  workdir = tmp_path / "run"
  shutil.copytree(trained_run[0], workdir)
  out = subprocess.run([*LAUNCH, "3", "--cpu-devices", "1", "--", sys.executable,
                        "-c", _EVALUATE_SCRIPT, str(workdir), *ODD_SPLITS],
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stdout[-3000:]
  three = {r["split"]: r for r in map(json.loads, re.findall(
      r"^\[0\] RESULT (.*)$", out.stdout, re.M))}
  assert sorted(three) == sorted(ODD_SPLITS)
  for split in ODD_SPLITS:
    one = evaluate.evaluate_workdir(str(workdir), split=split)
    assert three[split]["n"] == one["num_examples"] == pipeline_size(split)
    assert three[split]["n_known"] == one["n_known"].tolist()
    assert three[split]["f1"] == [None if x != x else x for x in one["f1"]], split


def pipeline_size(split: str) -> int:
  return 20 if split == "part3" else int(split.split(":")[1].rstrip("]"))


def test_a_process_whose_peer_never_comes_says_so_and_stops(tmp_path):
  """Process 0 of 2 alone, and process 1 of 2 pointed at a port where nobody
  listens: before joining each prints its id, the count, the coordinator and
  the timeout; while waiting, a line; at the timeout one error line naming the
  coordinator and the likely causes, exit 69, no stack trace."""
  ports = [str(_free_port()) for _ in range(2)]
  procs = []
  for k, port in enumerate(ports):
    env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
               JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(k))
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "sfae_jax.train", "--config",
         os.path.join(ROOT, "configs", "test.py"), "--workdir",
         str(tmp_path / f"w{k}"), "--join_timeout=8"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  start = time.time()
  for k, (proc, port) in enumerate(zip(procs, ports)):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 69, err[-2000:]
    where = f"127.0.0.1:{port}"
    assert (f"joining a job of 2 processes as process {k} via the coordinator "
            f"{where} (waiting up to 8s for every process)") in out
    assert f"process {k} of 2: still waiting for the job to form via {where}" in out
    (line,) = [l for l in err.splitlines() if l.startswith("error:")]
    assert f"the job did not form within 8s via the coordinator {where}" in line
    assert "a process of the job was not started" in line and "firewall" in line
    assert "Traceback" not in err and "Fatal Python error" not in err
  print(f"both gave up {time.time() - start:.0f}s after starting (timeout 8 s)")
  assert not (tmp_path / "w0").exists()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]
