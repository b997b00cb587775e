"""The run record: written once the run's checks pass; a resume may change only
MUTABLE fields (recorded with their step); evaluate and predict use the record."""

import json
import os
import shutil

import pytest

from configs import test as test_config
from sfae_jax import evaluate, train
from sfae_jax.data import registry
from sfae_jax.training import run_info


_config = test_config.with_data


def _copy(trained_run, tmp_path) -> str:
  dst = str(tmp_path / "run")
  shutil.copytree(trained_run[0], dst)
  return dst


def test_failed_attempt_writes_no_record(synthetic_tfds, tmp_path):
  workdir = tmp_path / "w"
  with pytest.raises(registry.DatasetError, match="fewer than"):
    train.train_and_evaluate(_config(synthetic_tfds, batch_size=4096), str(workdir))
  assert not (workdir / run_info.RUN_FILE).exists()


@pytest.mark.parametrize("field,value", [("input_size", 32),
                                         ("model_name", "sfae_net"),
                                         ("model.use_lrl", False), ("fold", 1),
                                         ("dataset_config", "ibug68"),
                                         ("model.local_branch", "deep")])
def test_compare_names_a_changed_model_or_data_field(field, value):
  stored = run_info.RunInfo(config=_config("d"), au_weights=(1.0,),
                            dataset={"au_ids": [1], "landmarks": "x"})
  block, _, name = field.rpartition(".")
  changed = (_config("d", model={name: value}) if block == "model"
             else _config("d", **{field: value}))
  with pytest.raises(run_info.RunChangedError) as e:
    run_info.compare(stored, changed, "runs/x")
  was = run_info.flat_config(stored.config)[field]
  assert f"{field}={was!r}" in str(e.value) and f"{field}={value!r}" in str(e.value)
  assert f"--config.{field}={was!r}" in str(e.value)
  assert run_info.compare(stored, _config("elsewhere", learning_rate=0.5),
                          "runs/x") == [("data_dir", "d", "elsewhere"),
                                        ("learning_rate", 0.01, 0.5)]


def test_resume_with_a_changed_size_stops_and_keeps_the_record(trained_run,
                                                               synthetic_tfds,
                                                               tmp_path):
  workdir = _copy(trained_run, tmp_path)
  before = run_info.path(workdir).read_text()
  with pytest.raises(run_info.RunChangedError, match="input_size=64.*input_size=96"):
    train.train_and_evaluate(_config(synthetic_tfds, input_size=96,
                                     num_train_steps=8), workdir)
  assert run_info.path(workdir).read_text() == before
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]


def test_resume_with_changed_steps_lr_and_threshold_is_recorded_and_used(
    trained_run, synthetic_tfds, tmp_path, capsys):
  workdir = _copy(trained_run, tmp_path)
  config = _config(synthetic_tfds, num_train_steps=8, learning_rate=0.02,
                   threshold=0.3)
  result = train.train_and_evaluate(config, workdir)
  out = capsys.readouterr().out
  assert "Resuming" in out and "learning_rate 0.01 -> 0.02" in out
  info = run_info.read(workdir)
  changes = {c["field"]: c for c in info.changes}
  assert set(changes) == {"num_train_steps", "learning_rate", "threshold"}
  assert all(c["step"] == 6 for c in changes.values())
  assert (changes["threshold"]["old"], changes["threshold"]["new"]) == (0.5, 0.3)
  assert info.threshold == 0.3 and info.config.learning_rate == 0.02
  assert result["step"] == 8 and result["threshold"] == 0.3
  again = evaluate.evaluate_workdir(workdir)  # from the record alone
  assert again["threshold"] == 0.3 and again["mean_f1"] == result["mean_f1"]
  # the same command once more: nothing to train or evaluate, and it says so
  capsys.readouterr()
  steps = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  assert train.train_and_evaluate(config, workdir)["mean_f1"] == result["mean_f1"]
  out = capsys.readouterr().out
  assert "has trained 8 steps" in out and "nothing to do" in out
  assert "Resum" not in out and "step 8/8" not in out
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == steps
  assert len(run_info.read(workdir).changes) == 3


def test_a_stale_record_without_checkpoints_is_replaced(trained_run,
                                                        synthetic_tfds, tmp_path):
  """An attempt that failed after writing an old-style record (another size) leaves
  no checkpoint: the next run writes its own, and evaluation uses it."""
  workdir = tmp_path / "w"
  workdir.mkdir()
  stale = json.loads(run_info.path(trained_run[0]).read_text())
  stale["config"]["input_size"] = 32
  run_info.path(workdir).write_text(json.dumps(stale))
  result = train.train_and_evaluate(_config(synthetic_tfds, num_train_steps=1),
                                    str(workdir))
  assert run_info.read(workdir).config.input_size == 64
  assert evaluate.evaluate_workdir(str(workdir))["mean_f1"] == result["mean_f1"]


def test_resume_on_other_data_stops(trained_run, tmp_path):
  """data_dir may move (it is MUTABLE), but the training split it points at
  must be the one the run was trained on (its size, at least)."""
  from tfds_bp4d import prepare  # pylint: disable=g-import-not-at-top
  from tfds_bp4d.synthetic import bp4d as synthetic  # pylint: disable=g-import-not-at-top
  synthetic.generate(str(tmp_path / "m"), subjects=3, tasks=1, frames=6,
                     size_wh=(160, 160), seed=2, progress=False)
  prepare.build(str(tmp_path / "m"), str(tmp_path / "other"), "bp4d49")
  workdir = _copy(trained_run, tmp_path)
  with pytest.raises(run_info.RunChangedError, match=r"trained on 40 examples"):
    train.train_and_evaluate(_config(str(tmp_path / "other"), num_train_steps=8),
                             workdir)


def test_a_record_from_before_the_model_block_is_refused_in_one_line(trained_run,
                                                                      tmp_path):
  """Records whose config names the model as a string (before `model_name` +
  the `model` block) are not read: evaluate says so in one line."""
  workdir = _copy(trained_run, tmp_path)
  path = os.path.join(workdir, run_info.RUN_FILE)
  record = json.load(open(path))
  config = record["config"]
  config.update(config.pop("model"), model=config.pop("model_name"))
  json.dump(record, open(path, "w"))
  with pytest.raises(run_info.RecordError, match="earlier version of sfae-jax"):
    run_info.read(workdir)
  assert evaluate.main(["--workdir", workdir]) == 1


def test_the_record_keeps_each_fact_once_and_reads_the_older_layout(trained_run,
                                                                     tmp_path):
  """The AU ids and scheme live in the dataset's record, the threshold in the
  config; a record that also kept them at the top level still loads."""
  workdir = _copy(trained_run, tmp_path)
  data = json.loads(run_info.path(workdir).read_text())
  assert not {"au_ids", "landmark_scheme", "threshold"} & set(data)
  assert data["dataset"]["au_ids"] == [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]
  assert data["dataset"]["landmarks"] == "bp4d49"
  older = dict(data, au_ids=[1, 2], landmark_scheme="bp4d49",
               dataset={k: v for k, v in data["dataset"].items()
                        if k not in ("au_ids", "landmarks")})
  run_info.path(workdir).write_text(json.dumps(older))
  info = run_info.read(workdir)
  assert info.au_ids == (1, 2) and info.landmark_scheme == "bp4d49"
  assert info.threshold == data["config"]["threshold"]
