"""What a newcomer meets first: the README's commands print no line that looks
like an error (libtpu's initialisation errors on a machine without a TPU, a
traceback, TensorFlow's CUDA probe), on this CPU machine with the dev extra
installed, libtpu included."""

import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ERROR_LOOKING = re.compile(r"E0000|^[EF]\d{4} \d\d:\d\d|Traceback|Source Location"
                           r"|Could not find cuda", re.M)


def _as_a_user():
  """The test session's environment less its JAX_PLATFORMS=cpu."""
  return {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}


def test_the_main_command_starts_without_error_looking_lines(tmp_path):
  """`python -m sfae_jax.train --config configs/synthetic.py --workdir
  runs/synthetic` in a fresh folder: its first seconds, through JAX's start and
  into generating the embedded dataset, then Ctrl-C."""
  log = tmp_path / "log.txt"
  with open(log, "w") as out:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sfae_jax.train", "--config",
         os.path.join(ROOT, "configs", "synthetic.py"), "--workdir",
         "runs/synthetic"], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        env=_as_a_user(), start_new_session=True)
  try:
    deadline = time.time() + 180
    while "synthetic BP4D: " not in log.read_text():
      assert proc.poll() is None, log.read_text()[-3000:]
      assert time.time() < deadline, log.read_text()[-3000:]
      time.sleep(0.2)
    text = log.read_text()
  finally:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
  assert re.search(r"process 0 of 1, \d+ local / \d+ global cpu devices", text)
  assert not ERROR_LOOKING.findall(text), text[-3000:]


def test_predict_prints_no_error_looking_lines(trained_run, faces_dir, tmp_path):
  r = subprocess.run(
      [sys.executable, "-m", "sfae_jax.predict", "--workdir", trained_run[0],
       os.path.join(faces_dir, "single_face.jpg"), "--out",
       str(tmp_path / "aus.csv")], capture_output=True, text=True, cwd=tmp_path,
      env=_as_a_user())
  assert r.returncode == 0, r.stderr[-3000:]
  assert "model on cpu" in r.stderr
  assert not ERROR_LOOKING.findall(r.stdout + r.stderr), r.stderr[-3000:]
