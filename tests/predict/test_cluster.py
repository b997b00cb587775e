"""`predict --ray` (and `analyze --ray`): a real Ray cluster of two nodes on this
machine (1 CPU each) gives the files `predict --out DIR/` gives on one machine,
also when the driver is killed and its command rerun, and when the worker node
is killed mid-job."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pandas as pd
import pytest
from ray.util import get_node_ip_address

from sfae_jax.analyze import tracks
from sfae_jax.predict import __main__ as predict_cli
from sfae_jax.tools import synthetic_video
from tests.face import made_media
from tests.predict.compare import output_files

RAY = os.path.join(os.path.dirname(sys.executable), "ray")
ENV = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", JAX_PLATFORMS="cpu",
           # a dead node is noticed in seconds (Ray's defaults: ~30 s)
           RAY_health_check_period_ms="1000", RAY_health_check_timeout_ms="1000",
           RAY_health_check_failure_threshold="3",
           RAY_health_check_initial_delay_ms="1000")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("", 0))
    return s.getsockname()[1]


def _node(args, log):
  """`ray start ... --block` in a session of its own: its raylet and workers
  stop with its process group."""
  return subprocess.Popen([RAY, "start", "--block", "--num-cpus", "1",
                           "--object-store-memory", str(200 << 20), *args],
                          stdout=log, stderr=subprocess.STDOUT, env=ENV,
                          start_new_session=True)


def _stop(node) -> None:
  with contextlib.suppress(ProcessLookupError):
    os.killpg(node.pid, signal.SIGTERM)
  try:
    node.wait(timeout=30)
  except subprocess.TimeoutExpired:
    with contextlib.suppress(ProcessLookupError):
      os.killpg(node.pid, signal.SIGKILL)
    node.wait(timeout=30)


@contextlib.contextmanager
def _cluster(log_dir, *worker_args):
  """A head and a worker node (`ray start` flags `worker_args`); yields
  (address, worker node's process)."""
  address = f"{get_node_ip_address()}:{_free_port()}"
  temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths
  with open(os.path.join(log_dir, "head.log"), "w") as hl, \
       open(os.path.join(log_dir, "worker.log"), "w") as wl:
    nodes = [_node(["--head", "--port", address.split(":")[1],
                    "--include-dashboard=false", "--temp-dir", temp], hl)]
    try:
      for _ in range(60):
        r = subprocess.run([RAY, "status", "--address", address],
                           capture_output=True, text=True, env=ENV)
        if r.returncode == 0:
          break
        time.sleep(1)
      nodes.append(_node(["--address", address, *worker_args], wl))
      for _ in range(60):
        r = subprocess.run([RAY, "status", "--address", address],
                           capture_output=True, text=True, env=ENV)
        if r.stdout.count(" node_") >= 2:
          break
        time.sleep(1)
      else:
        pytest.fail(f"the 2-node cluster did not come up: {r.stdout}{r.stderr}")
      yield address, nodes[1]
    finally:
      for node in reversed(nodes):
        _stop(node)
      shutil.rmtree(temp, ignore_errors=True)


def _workers(node) -> dict:
  """{pid: title} of the node's Ray worker processes (their own process
  groups; their parent, the node's raylet, is in the node's)."""
  ps = subprocess.run(["ps", "-eo", "pid=,ppid=,pgid=,args="], capture_output=True,
                      text=True).stdout
  procs = {int(f[0]): f for f in (l.split(None, 3) for l in ps.splitlines())
           if len(f) == 4}
  return {pid: f[3] for pid, f in procs.items()
          if f[3].startswith("ray::") and int(f[1]) in procs
          and int(procs[int(f[1])][2]) == node.pid}


def _kill(node) -> None:
  """The node's processes, all at once, as when its machine goes down."""
  workers = _workers(node)
  os.killpg(node.pid, signal.SIGKILL)
  for pid in workers:
    with contextlib.suppress(ProcessLookupError):
      os.kill(pid, signal.SIGKILL)


def _predict(trained_run, inputs, out, *flags):
  return subprocess.run(
      [sys.executable, "-m", "sfae_jax.predict", "--workdir", trained_run[0],
       "--backend", "dlib", *map(str, inputs), "--out", f"{out}{os.sep}",
       "--chunk-frames", "32", *flags],
      capture_output=True, text=True, env=ENV, timeout=600)


def test_a_two_node_cluster_gives_the_files_of_one_machine_and_survives_a_node(
    trained_run, faces_dir, tmp_path):
  long = synthetic_video.write(os.path.join(faces_dir, "single_face.jpg"), 256,
                               str(tmp_path / "long.mp4"), (160, 128))
  cut = tmp_path / "cut.mp4"   # unreadable: named the same way, no CSV
  cut.write_bytes(open(os.path.join(faces_dir, "single_face.mp4"), "rb").read()[
      :os.path.getsize(os.path.join(faces_dir, "single_face.mp4")) // 2])
  # cut before a keyframe: its index lists frames a decoder drops, so its spans
  # cannot be seeked to and it is decoded in order by the driver
  recut = made_media.without_first_packets(
      made_media.open_gop(tmp_path / "gop.mp4", 300), tmp_path / "recut.mp4", 5)
  inputs = [long, os.path.join(faces_dir, "multi_face.jpg"), cut, recut]
  one = _predict(trained_run, inputs, tmp_path / "one", "--workers", "1")
  assert one.returncode == 1, one.stderr      # the cut video
  want = output_files(tmp_path / "one")
  assert sorted(n for n in want if n.endswith(".csv")) == [
      "long.mp4.csv", "multi_face.jpg.csv", "recut.mp4.csv"]
  with _cluster(str(tmp_path)) as (address, worker_node):
    ray = _predict(trained_run, inputs, tmp_path / "ray", "--ray", address)
    assert ray.returncode == 1, ray.stderr
    assert "face work on a Ray cluster" in ray.stderr
    assert f"Decoding {recut} in order from frame 0 on" in ray.stderr, ray.stderr
    assert [l for l in ray.stderr.splitlines() if l.startswith("error:")] == [
        l for l in one.stderr.splitlines() if l.startswith("error:")]
    assert output_files(tmp_path / "ray") == want

    # analyze --ray: its uncached media take the same path, to the same tracks
    manifest = pd.DataFrame({"video": [str(long)], "speaker": ["s1"],
                             "first_language": ["en"]})
    cached = {}
    for name, where in (("local", None), ("ray", address)):
      found, errors, _ = tracks.load_tracks(manifest, str(tmp_path / name),
                                            trained_run[0], backend="dlib",
                                            cluster=where)
      assert not errors and len(found[str(long)]) == 256
      cached[name] = output_files(tmp_path / name / "tracks")
    assert cached["ray"] == cached["local"] and len(cached["local"]) == 2

    # the driver killed once a chunk is written: the same command continues
    out = tmp_path / "driver"
    cmd = [sys.executable, "-m", "sfae_jax.predict", "--workdir", trained_run[0],
           "--backend", "dlib", *map(str, inputs), "--out", f"{out}{os.sep}",
           "--chunk-frames", "32", "--ray", address]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, env=ENV)
    deadline = time.time() + 300
    while (not list(out.glob("long.mp4.csv.partial/000000.json"))
           and job.poll() is None and time.time() < deadline):
      time.sleep(0.05)
    assert job.poll() is None, "the job ended before its first chunk"
    job.kill()
    job.communicate()
    again = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert again.returncode == 1, again.stderr
    assert "continuing " + str(long) + " at frame " in again.stderr, again.stderr
    assert output_files(out) == want

    # the worker node killed while it runs a face task
    out = tmp_path / "killed"
    job = subprocess.Popen(
        [sys.executable, "-m", "sfae_jax.predict", "--workdir", trained_run[0],
         "--backend", "dlib", *map(str, inputs), "--out", f"{out}{os.sep}",
         "--chunk-frames", "32", "--ray", address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 300
    while (not any(t.startswith(("ray::_span", "ray::_faces"))
                   for t in _workers(worker_node).values())
           and job.poll() is None and time.time() < deadline):
      time.sleep(0.05)
    assert job.poll() is None, "the job ended before the worker node ran a task"
    _kill(worker_node)
    _, err = job.communicate(timeout=600)
    assert job.returncode == 1, err
    assert output_files(out) == want


def test_an_address_nothing_answers_on_is_one_line_and_exit_1(trained_run,
                                                              faces_dir, tmp_path,
                                                              capsys):
  """Ray's own connect would retry it for many minutes."""
  rc = predict_cli.main(["--workdir", trained_run[0], "--backend", "dlib",
                         os.path.join(faces_dir, "single_face.jpg"),
                         "--out", f"{tmp_path}{os.sep}", "--ray", "127.0.0.1:1"])
  errors = [l for l in capsys.readouterr().err.splitlines() if "error:" in l]
  assert rc == 1 and len(errors) == 1, errors
  assert "no Ray cluster answers at '127.0.0.1:1'" in errors[0]
  assert "ray start --head" in errors[0]


def test_a_node_with_a_gpu_runs_the_model_for_the_cpu_nodes_spans(
    trained_run, faces_dir, tmp_path):
  """The worker node declares a GPU (Ray's resource; the model there runs on
  JAX's CPU here, JAX_PLATFORMS=cpu): the model is loaded once, in an actor on
  that node, and the spans on both nodes' CPUs send it their faces. The files
  are those of one machine, for a command given relative paths (a Ray
  worker's working directory is not the driver's)."""
  synthetic_video.write(os.path.join(faces_dir, "single_face.jpg"), 96,
                        str(tmp_path / "long.mp4"), (160, 128))
  cmd = [sys.executable, "-m", "sfae_jax.predict",
         "--workdir", os.path.relpath(trained_run[0], tmp_path), "--backend", "dlib",
         "long.mp4", os.path.relpath(os.path.join(faces_dir, "multi_face.jpg"),
                                     tmp_path), "--chunk-frames", "32"]
  one = subprocess.run(cmd + ["--out", "one/"], cwd=tmp_path, capture_output=True,
                       text=True, env=ENV, timeout=600)
  assert one.returncode == 0, one.stderr[-2000:]
  with _cluster(str(tmp_path), "--num-gpus", "1") as (address, gpu_node), \
       open(tmp_path / "ray.log", "w+") as log:
    job = subprocess.Popen(cmd + ["--out", "ray/", "--ray", address], cwd=tmp_path,
                           stdout=log, stderr=subprocess.STDOUT, text=True, env=ENV)
    seen = set()
    while job.poll() is None:
      seen |= {t.split()[0] for t in _workers(gpu_node).values()}
      time.sleep(0.05)
    log.seek(0)
    err = log.read()
  assert job.returncode == 0, err[-2000:]
  assert any(t.startswith("ray::GpuModel") for t in seen), seen
  assert "warning:" not in err and "note:" not in err, err[-2000:]  # no fallback
  assert output_files(tmp_path / "ray") == output_files(tmp_path / "one")
