"""Launchers' dry runs print exactly the commands they would run, and the
distributed runtime's choices (what it joins, what it refuses)."""

import os
import shlex
import subprocess
import sys

import pytest

from sfae_jax.runtime import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*cmd, env=None):
  out = subprocess.run(list(cmd), capture_output=True, text=True, cwd=ROOT,
                       env=None if env is None else dict(os.environ, **env))
  assert out.returncode == 0, out.stderr
  return out.stdout


def test_local_dry_run_gives_each_process_its_id_and_the_same_command():
  train = ["python", "-m", "sfae_jax.train", "--config", "configs/default.py:fold=2",
           "--workdir", "runs/f2", "--config.data_dir", "/data/tfds"]
  lines = _run(sys.executable, "launch/local.py", "3", "--cpu-devices", "2",
               "--port", "4321", "--dry-run", "--", *train).splitlines()
  assert len(lines) == 3
  for k, line in enumerate(lines):
    words = shlex.split(line)
    env = dict(w.split("=", 1) for w in words[:5])
    assert env["JAX_COORDINATOR_ADDRESS"] == "127.0.0.1:4321"
    assert env["JAX_NUM_PROCESSES"] == "3" and env["JAX_PROCESS_ID"] == str(k)
    assert env["JAX_PLATFORMS"] == "cpu"
    assert "--xla_force_host_platform_device_count=2" in env["XLA_FLAGS"]
    assert words[5:] == train


def _tpu(*args):
  return [shlex.split(l) for l in _run(
      sys.executable, "launch/tpu_vm.py", *args, "--name", "sfae-f2", "--zone",
      "us-central2-b", "--bucket", "gs://b", "--fold", "2", "--dry-run").splitlines()]


def test_tpu_vm_dry_run_creates_installs_stages_and_trains_on_every_worker():
  cmds = _tpu("all", "--accelerator", "v4-32")
  create = cmds[0]
  assert create[:5] == ["gcloud", "compute", "tpus", "queued-resources", "create"]
  assert "--accelerator-type=v4-32" in create and "--node-id=sfae-f2" in create
  ssh = [c for c in cmds if c[3:5] == ["tpu-vm", "ssh"]]
  assert len(ssh) == 3 and all("--worker=all" in c for c in ssh)  # install, stage, train
  assert "pip install" in ssh[0][-1] and ".[tpu]" in ssh[0][-1]
  assert "gcloud storage cp -r gs://b/tfds/bp4d /tmp/tfds/" in ssh[1][-1]
  train = shlex.split(ssh[2][-1].split("nohup ", 1)[1].split(" >", 1)[0])
  assert train == ["python", "-m", "sfae_jax.train", "--config",
                   "configs/cloud.py:fold=2", "--workdir", "gs://b/runs/sfae-f2",
                   "--config.data_dir", "/tmp/tfds"]
  # A single-host slice is the same program; the runtime follows the type.
  single = _tpu("create", "--accelerator", "v5litepod-8")[0]
  assert "--accelerator-type=v5litepod-8" in single
  assert "--runtime-version=v2-alpha-tpuv5-lite" in single


def test_tpu_vm_without_staging_reads_the_bucket_and_logs_follow_worker_0():
  train = _tpu("train", "--no-stage")[0][-1]
  assert "--config.data_dir gs://b/tfds" in train
  logs = _tpu("logs")[0]
  assert "--worker=0" in logs and "train.log" in logs[-1]
  delete = _tpu("delete")[0]
  assert delete[3:6] == ["queued-resources", "delete", "sfae-f2-qr"]


def _slurm(**env):
  env = dict(DRY_RUN="1", FOLD="3", WORKDIR="/shared/runs/f3",
             DATA_DIR="/shared/tfds", **env)
  return _run("bash", "launch/slurm.sbatch", env=env).splitlines()


def test_slurm_one_process_per_node_sees_all_its_gpus():
  lines = _slurm(SLURM_JOB_NUM_NODES="2", SLURM_GPUS_PER_NODE="h100:8")
  assert "export JAX_LOCAL_DEVICE_IDS=0,1,2,3,4,5,6,7" in lines
  assert any("2 processes, 16 GPUs" in l for l in lines)
  stage, train = [shlex.split(l) for l in lines if l.startswith("srun")]
  assert "--ntasks-per-node=1" in stage and "/shared/tfds/bp4d" in stage[-1]
  assert train[:5] == ["srun", "--nodes=2", "--ntasks-per-node=1",
                       "--gpus-per-task=8", "--kill-on-bad-exit=1"]
  assert train[5:] == ["python", "-m", "sfae_jax.train", "--config",
                       "configs/cloud.py:fold=3", "--workdir", "/shared/runs/f3",
                       "--config.data_dir", os.path.join(
                           os.environ.get("TMPDIR", "/tmp"), "sfae_tfds")]


def test_slurm_one_process_per_gpu_without_staging():
  lines = _slurm(SLURM_JOB_NUM_NODES="1", SLURM_GPUS_PER_NODE="4", PER="gpu",
                 STAGE_DATA="0")
  assert not any("JAX_LOCAL_DEVICE_IDS" in l for l in lines)
  assert any("4 processes, 4 GPUs" in l for l in lines)
  (train,) = [shlex.split(l) for l in lines if l.startswith("srun")]
  assert "--ntasks-per-node=4" in train and "--gpus-per-task=1" in train
  assert train[-2:] == ["--config.data_dir", "/shared/tfds"]


def test_cluster_detection_reads_slurm_and_open_mpi_steps_of_several_tasks():
  slurm = dict(SLURM_JOB_ID="7", SLURM_STEP_NODELIST="n[1-2]", SLURM_NTASKS="2",
               SLURM_PROCID="0", SLURM_LOCALID="0")
  assert distributed.detect_cluster(slurm) == "slurm"
  assert distributed.detect_cluster(dict(slurm, SLURM_NTASKS="1")) is None
  assert distributed.detect_cluster({"SLURM_JOB_ID": "7"}) is None  # salloc shell
  assert distributed.detect_cluster({"OMPI_MCA_orte_hnp_uri": "x",
                                     "OMPI_COMM_WORLD_SIZE": "4"}) == "openmpi"
  assert distributed.detect_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) is None


def test_partial_multi_process_settings_are_refused_with_the_fix(monkeypatch):
  for name in distributed.ENV:
    monkeypatch.delenv(name, raising=False)
  with pytest.raises(distributed.DistributedError, match="needs all three"):
    distributed.initialize(distributed.Settings(coordinator_address="h:1234"))
  monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
  with pytest.raises(distributed.DistributedError, match="not an integer"):
    distributed.initialize()
  with pytest.raises(distributed.DistributedError, match="process_id=2"):
    distributed.initialize(distributed.Settings(
        coordinator_address="h:1", num_processes=2, process_id=2))


def _local(n, code, workdir):
  """launch/local.py N over processes that exit with `code` (a negative code:
  killed by that signal), given `--workdir`."""
  body = (f"import os, signal; os.kill(os.getpid(), {-code})" if code < 0
          else f"raise SystemExit({code})")
  return subprocess.run([sys.executable, os.path.join(ROOT, "launch", "local.py"),
                         str(n), "--", sys.executable, "-c", body, "--workdir",
                         str(workdir)], capture_output=True, text=True, timeout=60)


def test_local_says_a_rerun_resumes_only_where_it_does(tmp_path):
  (tmp_path / "checkpoints" / "4").mkdir(parents=True)
  (tmp_path / "checkpoints" / "8.orbax-checkpoint-tmp").mkdir()
  killed = _local(2, -9, tmp_path)
  assert killed.returncode == 137
  assert "resumes from step 4, the newest checkpoint in" in killed.stdout
  fresh = _local(1, -9, tmp_path / "new")
  assert "No checkpoint is in" in fresh.stdout and "resumes" not in fresh.stdout
  error = _local(2, 1, tmp_path)  # the process said what was wrong; a rerun repeats it
  assert error.returncode == 1 and "resume" not in error.stdout
  preempted = _local(2, 75, tmp_path)
  assert preempted.returncode == 75
  assert "stopped by a signal and saved a checkpoint; rerun" in preempted.stdout


def test_slurm_asks_for_a_signal_before_the_limit_and_requeues_a_saved_stop(
    tmp_path):
  """The script under fake `srun` (the training step exits 75, or 1) and a fake
  `scontrol` that records its arguments."""
  with open(os.path.join(ROOT, "launch", "slurm.sbatch")) as f:
    text = f.read()
  assert "#SBATCH --signal=TERM@120" in text and "#SBATCH --requeue" in text
  bin_dir, venv = tmp_path / "bin", tmp_path / "venv"
  (venv / "bin").mkdir(parents=True)
  (venv / "bin" / "activate").write_text("")
  bin_dir.mkdir()
  for name, body in (("srun", 'exit "$FAKE_STATUS"'),
                     ("scontrol", f'echo "$@" >> {tmp_path}/scontrol.log')):
    (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / name).chmod(0o755)
  for status, requeued in ((75, True), (1, False)):
    out = subprocess.run(
        ["bash", "launch/slurm.sbatch"], capture_output=True, text=True, cwd=ROOT,
        env=dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}",
                 FAKE_STATUS=str(status), SLURM_JOB_NUM_NODES="1",
                 SLURM_JOB_ID="4242", VENV=str(venv), REPO=ROOT, STAGE_DATA="0",
                 WORKDIR=str(tmp_path / "w")))
    assert out.returncode == status, out.stderr
    log = tmp_path / "scontrol.log"
    assert (log.exists() and log.read_text() == "requeue 4242\n") == requeued
    log.unlink(missing_ok=True)


def test_predict_array_dry_run_runs_predict_on_the_tasks_cores():
  """Each array task runs the same predict command; the shard comes from
  SLURM's variables inside predict (tests/predict/test_shards.py)."""
  line = _run("bash", "launch/predict_array.sbatch", env=dict(
      DRY_RUN="1", SLURM_ARRAY_TASK_ID="3", SLURM_ARRAY_TASK_COUNT="16",
      SLURM_CPUS_PER_TASK="8", INPUTS="/data/corpus/ /data/more.mp4",
      OUT="/data/aus/", WORKDIR="runs/f1", PREDICT_FLAGS="--every 2"))
  head, _, cmd = line.strip().partition(": ")
  assert head == "task 3 of 16"
  assert shlex.split(cmd) == [
      "python", "-m", "sfae_jax.predict", "--workdir", "runs/f1", "/data/corpus/",
      "/data/more.mp4", "--out", "/data/aus/", "--workers", "8", "--every", "2"]
  missing = subprocess.run(["bash", "launch/predict_array.sbatch"], cwd=ROOT,
                           capture_output=True, text=True,
                           env=dict(os.environ, DRY_RUN="1", OUT="/x/"))
  assert missing.returncode != 0 and "set INPUTS" in missing.stderr
