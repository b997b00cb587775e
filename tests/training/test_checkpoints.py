"""Damaged checkpoints: named (step and file), the newest readable one used, with a
warning, by evaluate, predict and a resumed training run."""

import os
import shutil

import pytest

from configs import test as test_config
from sfae_jax import evaluate, train
from sfae_jax.predict import Detector
from sfae_jax.predict import __main__ as predict_cli
from sfae_jax.training import checkpoints


def _copy(trained_run, tmp_path) -> str:
  dst = str(tmp_path / "run")
  shutil.copytree(trained_run[0], dst)
  return dst


def _truncate_data(workdir, step) -> str:
  """Cuts every array data file of the step's state to 100 bytes (OCDBT `d/`
  folders; which one holds the parameters rather than the optimiser state is
  orbax's business)."""
  state = os.path.join(workdir, "checkpoints", str(step), "state")
  files = [os.path.join(d, f) for d, _, fs in os.walk(state) for f in fs
           if os.path.basename(d) == "d"]
  assert files
  for path in files:
    with open(path, "r+b") as f:
      f.truncate(min(100, os.path.getsize(path)))
  return state


def test_truncated_latest_checkpoint_evaluate_and_predict_use_the_one_before(
    trained_run, tmp_path, capsys):
  workdir = _copy(trained_run, tmp_path)
  state = _truncate_data(workdir, 6)
  result = evaluate.evaluate_workdir(workdir)
  err = capsys.readouterr().err
  assert result["step"] == 3
  assert "checkpoint 6" in err and state in err and "using checkpoint 3" in err
  assert "Traceback" not in err
  det = Detector(workdir, backend=None)
  assert det.step == 3
  rc = predict_cli.main(["--workdir", workdir, "--step", "6", "--out",
                     str(tmp_path / "o.csv"), str(tmp_path)])
  err = capsys.readouterr().err
  assert rc == 1 and "step 6" in err and state in err
  assert len([l for l in err.splitlines() if l.startswith("error:")]) == 1


def test_missing_manifest_is_named_and_no_readable_checkpoint_is_one_error(
    trained_run, tmp_path, capsys):
  workdir = _copy(trained_run, tmp_path)
  os.remove(os.path.join(workdir, "checkpoints", "6", "state", "manifest.ocdbt"))
  assert evaluate.evaluate_workdir(workdir)["step"] == 3
  assert "checkpoint 6" in capsys.readouterr().err
  _truncate_data(workdir, 3)
  assert evaluate.main(["--workdir", workdir]) == 1
  err = capsys.readouterr().err
  line = [l for l in err.splitlines() if l.startswith("error:")]
  assert len(line) == 1 and "No readable checkpoint" in line[0]
  assert "step 6" in line[0] and "step 3" in line[0]


def test_training_resumes_from_the_newest_readable_and_keeps_the_damaged_one(
    trained_run, synthetic_tfds, tmp_path, capsys):
  workdir = _copy(trained_run, tmp_path)
  _truncate_data(workdir, 6)
  result = train.train_and_evaluate(test_config.with_data(synthetic_tfds), workdir)
  captured = capsys.readouterr()
  assert "Resumed from step 3" in captured.out
  assert "checkpoint 6" in captured.err and checkpoints.DAMAGED_DIR in captured.err
  assert os.path.isdir(os.path.join(workdir, checkpoints.DAMAGED_DIR, "6"))
  assert result["step"] == 6
  # the new checkpoint 6 is readable: evaluation uses it with no warning
  assert evaluate.evaluate_workdir(workdir)["step"] == 6
  assert "unreadable" not in capsys.readouterr().err


def test_a_missing_step_lists_those_there(trained_run):
  with pytest.raises(ValueError, match=r"step 5.*\[3, 6\]"):
    Detector(trained_run[0], backend=None, step=5)
