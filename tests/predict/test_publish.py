"""`predict --stage DIR`, which `--out gs://...` does with a stage of its own:
the work and its resume state stay in the stage, and --out receives whole
files with their records, the same as writing there directly; a rerun skips
what is complete at --out and refuses what was made with other settings. (A
real bucket, epath's gs:// backend, is not reachable here: --out is a folder,
through the same epath calls.)"""

import os

from sfae_jax.predict import __main__ as predict_cli
from tests.predict.compare import output_files


def _predict(trained_run, inputs, out, *flags) -> int:
  return predict_cli.main(["--workdir", trained_run[0], "--backend", "dlib",
                           *inputs, "--out", str(out), "--workers", "0",
                           *map(str, flags)])


def test_a_staged_run_gives_out_the_files_of_a_direct_one(trained_run, faces_dir,
                                                          tmp_path, capsys):
  inputs = [os.path.join(faces_dir, n) for n in ("single_face.mp4", "multi_face.jpg")]
  stage, dest = tmp_path / "stage", tmp_path / "dest"
  assert _predict(trained_run, inputs, f"{tmp_path / 'direct'}/") == 0
  want = output_files(tmp_path / "direct")
  assert len(want) == 4
  assert _predict(trained_run, inputs, f"{dest}/", "--stage", stage) == 0
  assert output_files(dest) == want
  assert not [f for f in os.listdir(stage) if not f.startswith(".")]  # moved out
  capsys.readouterr()

  assert _predict(trained_run, inputs, f"{dest}/", "--stage", stage) == 0
  assert f"2 input(s) complete in {dest}/ already: skipped" in capsys.readouterr().err
  assert output_files(dest) == want

  assert _predict(trained_run, inputs, f"{dest}/", "--stage", stage,
                  "--threshold", "0.3") == 1
  errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "made with other settings (threshold" in errors[0]
  assert str(dest / "single_face.mp4.csv") in errors[0] and "--fresh" in errors[0]
  assert output_files(dest) == want

  # one file for all inputs: joined in the stage, then copied
  assert _predict(trained_run, inputs, tmp_path / "direct" / "all.csv") == 0
  assert _predict(trained_run, inputs, dest / "all.csv", "--stage", stage) == 0
  for name in ("all.csv", "all.csv.provenance.json"):
    assert output_files(dest)[name] == output_files(tmp_path / "direct")[name]


def test_a_bucket_that_cannot_be_reached_is_one_line_and_exit_1(
    trained_run, faces_dir, tmp_path, capsys, monkeypatch):
  """No network here: the bucket is checked before any work (the default stage
  is under $HOME/.cache) and its failure is one line naming it."""
  monkeypatch.setenv("HOME", str(tmp_path))
  out = "gs://sfae-jax-no-such-bucket/aus/"
  assert _predict(trained_run, [os.path.join(faces_dir, "multi_face.jpg")], out) == 1
  err = capsys.readouterr().err
  errors = [l for l in err.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and out in errors[0], err[-2000:]
  assert "Traceback" not in err
  assert not list((tmp_path / ".cache" / "sfae_jax" / "stage").rglob("*.csv"))
