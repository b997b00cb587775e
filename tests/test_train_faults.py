"""What a user meets when a run is stopped, shared or misconfigured: SIGTERM saves
the step and exits 75, a workdir in use or without its record is refused, bad
numbers are refused before any work, each in one line."""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import test as test_config
from sfae_jax import evaluate, train
from sfae_jax.training import config_checks, monitor, preemption, run_info
from sfae_jax.training import workdir_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(workdir, *flags):
  return [sys.executable, "-m", "sfae_jax.train", "--config",
          os.path.join(ROOT, "configs", "test.py"), "--workdir", str(workdir),
          *flags]


def _params(workdir, step):
  path = os.path.join(workdir, "checkpoints", str(step), "state")
  return ocp.StandardCheckpointer().restore(path)["params"]


def _errors(stderr: str) -> list[str]:
  return [l for l in stderr.splitlines() if l.startswith("error:")]


def test_sigterm_saves_the_step_and_the_rerun_ends_as_an_uninterrupted_run(
    trained_run, synthetic_tfds, tmp_path):
  """SIGTERM once step 1 is logged: the run must save the step it is at (1 or
  2: at most one more), exit 75 with one line, and the rerun must resume there
  and end with the parameters of the uninterrupted 6-step run (`trained_run`,
  same config and devices)."""
  workdir = tmp_path / "run"
  cmd = _cli(workdir, "--config.data_dir", synthetic_tfds,
             "--config.log_every_steps=1")
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
  sent, head = None, []
  for line in proc.stdout:
    head.append(line)
    if "step 1/6" in line:
      proc.send_signal(signal.SIGTERM)
      sent = time.time()
      break
  err = "".join(head) + proc.communicate(timeout=120)[0]
  assert sent is not None, err[-3000:]
  took = time.time() - sent
  print(f"SIGTERM -> exit: {took:.2f}s")
  assert proc.returncode == preemption.EXIT_PREEMPTED, err[-2000:]
  saved = int(re.search(r"preempted \(SIGTERM\) at step (\d+), its checkpoint "
                        r"saved; rerun the same command to resume", err)[1])
  assert saved in (1, 2), err[-2000:]
  assert "Traceback" not in err
  # what it printed before training: the parameter count, the table in a file
  assert "| Name" not in err and "parameters (per array: " in err
  assert "conv" in (workdir / train.PARAMETERS_FILE).read_text()
  steps = sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit())
  assert steps == [saved]
  assert not (workdir / workdir_lock.LOCK_FILE).exists()  # released

  rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert f"Resumed from step {saved} in" in rerun.stdout
  reference, _ = trained_run
  diffs = [float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(
      jax.tree.leaves(_params(str(workdir), 6)),
      jax.tree.leaves(_params(reference, 6)))]
  print(f"step-{saved} stop, resumed, vs uninterrupted at step 6: max |diff| "
        f"{max(diffs):.2e}")
  assert max(diffs) <= 1e-6


def test_a_workdir_held_by_a_live_job_is_refused_in_one_line(synthetic_tfds,
                                                              tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time\n"
       "from sfae_jax.training import workdir_lock\n"
       f"workdir_lock.WorkdirLock({str(workdir)!r}).acquire()\n"
       "print('held', flush=True); time.sleep(600)"],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    out = subprocess.run(_cli(workdir, "--config.data_dir", synthetic_tfds),
                         capture_output=True, text=True, timeout=300)
  finally:
    holder.kill()
    holder.wait()
  assert out.returncode == 1
  (line,) = _errors(out.stderr)
  assert f"is in use by another training job: pid {holder.pid} on " in line
  assert "Traceback" not in out.stderr
  assert sorted(os.listdir(workdir)) == [workdir_lock.LOCK_FILE]  # nothing written


def test_evaluate_reads_a_workdir_while_its_training_holds_it(trained_run,
                                                               tmp_path, capsys):
  """Training holds the workdir and is writing checkpoint 9 (orbax writes it
  under a temporary name, renamed when complete): evaluation reads the complete
  step 6, never the one being written, and says which step it read."""
  workdir = str(tmp_path / "run")
  shutil.copytree(trained_run[0], workdir)
  writing = os.path.join(workdir, "checkpoints", "9.orbax-checkpoint-tmp-1234")
  shutil.copytree(os.path.join(workdir, "checkpoints", "6"), writing)
  for name in glob.glob(os.path.join(writing, "state", "**", "d", "*"),
                        recursive=True)[::2]:
    os.truncate(name, 10)  # half-written
  with workdir_lock.WorkdirLock(workdir):
    result = evaluate.evaluate_workdir(workdir)
  assert result["step"] == 6 and result["num_examples"] == 20
  out = capsys.readouterr()
  assert "part3, step 6" in out.out and "warning" not in out.err


def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_rerun_resumes(
    trained_run, synthetic_tfds, small_disk):
  """Checkpoint 3 fits on the 2.6 MB disk, checkpoint 6 does not: one line
  naming the intact step 3, nothing else on stderr; with space freed, the rerun
  resumes from step 3 to the parameters of the uninterrupted run."""
  disk, resize = small_disk("2600k")
  workdir = disk / "run"
  cmd = _cli(workdir, "--config.data_dir", synthetic_tfds)
  full = subprocess.run(cmd, capture_output=True, text=True)
  assert full.returncode == 1, full.stderr[-3000:]
  # the one line, beside the run's own warnings (the tiny split lacks an AU)
  others = [l for l in full.stderr.splitlines() if not l.startswith(("error:", "W"))]
  assert not others, full.stderr[-3000:]
  (line,) = _errors(full.stderr)
  assert "no space left" in line and f"{workdir}" in line
  assert "step 3, is intact" in line and "rerun the same command" in line
  assert sorted(os.listdir(workdir / "checkpoints"))[0] == "3"
  resize("20m")
  again = subprocess.run(cmd, capture_output=True, text=True)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Resumed from step 3" in again.stdout
  for a, b in zip(jax.tree.leaves(_params(workdir, 6)),
                  jax.tree.leaves(_params(trained_run[0], 6))):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_checkpoints_without_run_json_are_refused_and_the_copy_restores_it(
    trained_run, synthetic_tfds, tmp_path, capsys):
  """A record is never invented: train and evaluate refuse, naming the command
  that restores it from the newest checkpoint's copy; after that command both
  work again."""
  workdir = tmp_path / "run"
  shutil.copytree(trained_run[0], workdir)
  original = (workdir / run_info.RUN_FILE).read_text()
  (workdir / run_info.RUN_FILE).unlink()
  out = subprocess.run(_cli(workdir, "--config.data_dir", synthetic_tfds,
                            "--config.seed=5", "--config.learning_rate=0.5"),
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 1
  (line,) = _errors(out.stderr)
  assert "run.json is missing, but" in line and "has checkpoints" in line
  command = re.search(r"cp \S+ \S+", line)[0]
  assert command.endswith(f"checkpoints/6/run/metadata {workdir}/run.json")
  assert not (workdir / run_info.RUN_FILE).exists()  # nothing made up

  assert evaluate.main(["--workdir", str(workdir)]) == 1
  assert "cp " in capsys.readouterr().err

  subprocess.run(command.split(), check=True)
  restored = run_info.read(workdir)
  assert restored.to_json() == run_info.RunInfo.from_json(
      json.loads(original)).to_json()
  assert evaluate.main(["--workdir", str(workdir)]) == 0


def test_a_cut_run_json_names_the_file_and_the_fix(trained_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained_run[0], workdir)
  text = (workdir / run_info.RUN_FILE).read_text()
  (workdir / run_info.RUN_FILE).write_text(text[:len(text) // 2])
  with pytest.raises(run_info.RecordError,
                     match=rf"{workdir}/run\.json cannot be read .* Restore it "
                     r"from the copy in the newest checkpoint: cp "):
    run_info.read(workdir)


@pytest.mark.parametrize("overrides, named", [
    ({"learning_rate": -1.0}, "learning_rate=-1.0 (must be in (0, inf))"),
    ({"lr_decay_rate": 1.5}, "lr_decay_rate=1.5 (must be in (0, 1])"),
    ({"dice_weight": -0.1}, "dice_weight=-0.1 (must be in [0, inf))"),
    ({"threshold": 1.0}, "threshold=1.0 (must be in (0, 1))"),
    ({"learning_rate": float("nan")}, "learning_rate=nan"),
])
def test_out_of_range_numbers_are_refused_before_any_work(overrides, named,
                                                          tmp_path):
  workdir = tmp_path / "run"
  config = test_config.with_data(str(tmp_path / "no_data"), **overrides)
  with pytest.raises(config_checks.ConfigError, match=re.escape(named)):
    train.train_and_evaluate(config, str(workdir))
  assert not workdir.exists()


def test_zero_steps_are_refused_before_a_record_or_checkpoint(synthetic_tfds,
                                                              tmp_path):
  workdir = tmp_path / "run"
  config = test_config.with_data(synthetic_tfds, num_epochs=0, num_train_steps=-1)
  with pytest.raises(config_checks.ConfigError, match="zero steps to train"):
    train.train_and_evaluate(config, str(workdir))
  assert os.listdir(workdir) == []  # no run.json, no checkpoint, lock released


def test_a_workdir_that_cannot_be_written_is_one_line(synthetic_tfds, tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  out = subprocess.run(_cli(blocker / "run", "--config.data_dir", synthetic_tfds),
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 1
  (line,) = _errors(out.stderr)
  assert f"Cannot write the workdir {blocker / 'run'}" in line
  assert "Traceback" not in out.stderr


def test_the_eta_follows_the_recent_rate(monkeypatch):
  """10 steps/s for 50 steps, then 1 step/s: after 5 slow log points the rate
  is the slow one, where the average since the start would still be ~3x it."""
  clock = [0.0]
  monkeypatch.setattr(monitor.time, "perf_counter", lambda: clock[0])
  rate = monitor.Rate(batch=1, window=5)
  step = 0
  for _ in range(5):
    clock[0] += 1.0
    step += 10
    rate.add(step)
  for _ in range(5):
    clock[0] += 10.0
    step += 10
    last = rate.add(step)
  assert last == pytest.approx(1.0)
  assert step / clock[0] > 1.8


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_one_process_signal_asks_the_loop_to_stop_and_handlers_are_restored(
    signum, capsys):
  before = signal.getsignal(signum)
  with preemption.StopSignals() as stop:
    assert not stop.reached(1)
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # Python runs the handler between bytecodes
    assert stop.reached(2) and stop.signame == signal.Signals(signum).name
  assert signal.getsignal(signum) is before
  assert "stopping after this step, with a checkpoint" in capsys.readouterr().err
