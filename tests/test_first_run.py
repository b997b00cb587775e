"""What a newcomer meets first: the README's commands print no line that looks
like an error (libtpu's initialisation errors on a machine without a TPU, a
traceback, TensorFlow's CUDA probe), on this CPU machine with the dev extra
installed, libtpu included. (`predict` is held to the same in
tests/predict/test_detector.py, where it runs as a user runs it anyway.)"""

import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ERROR_LOOKING = re.compile(r"E0000|^[EF]\d{4} \d\d:\d\d|Traceback|Source Location"
                           r"|Could not find cuda", re.M)


def as_a_user():
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
        env=as_a_user(), start_new_session=True)
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
