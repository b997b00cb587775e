"""The real build path: array_record files, read back with tfds.data_source."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_bp4d.bp4d import bp4d_dataset_builder, layout  # pylint: disable=g-import-not-at-top
from tfds_bp4d.synthetic import bp4d as synthetic  # pylint: disable=g-import-not-at-top


def test_build_then_read_folds_with_data_source(tmp_path):
  manual = str(tmp_path / "manual")
  ids = synthetic.generate(manual, subjects=3, tasks=1, frames=4, size_wh=(160, 160),
                           seed=5, progress=False)
  builder = bp4d_dataset_builder.Builder(data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual))
  assert builder.info.file_format.value == "array_record"
  source = tfds.data_source("bp4d", split="part1+part2",
                            data_dir=str(tmp_path / "tfds"))
  subjects = {source[i]["subject"].decode() for i in range(len(source))}
  assert subjects == {s for s in ids if layout.SUBJECT_PART[s] in ("part1", "part2")}
  ex = source[0]
  assert ex["image"].shape == (200, 200, 3) and ex["image"].dtype == np.uint8
  assert ex["landmarks"].shape == (49, 2) and ex["au"].shape == (12,)
  assert set(np.unique(ex["au"])) <= {-1, 0, 1}
  assert (builder.data_path / "build_summary_part1.json").exists()


def test_ibug68_without_a_landmark_function_says_how_to_give_one(tmp_path):
  manual = str(tmp_path / "manual")
  synthetic.generate(manual, subjects=1, tasks=1, frames=1, size_wh=(160, 160),
                     progress=False)
  builder = bp4d_dataset_builder.Builder(
      data_dir=str(tmp_path / "tfds"), config=bp4d_dataset_builder.PRESETS["ibug68"])
  with pytest.raises(ValueError, match="landmark_fn=fn"):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual))


def _build(manual, data_dir):
  builder = bp4d_dataset_builder.Builder(data_dir=str(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  return builder


def _summary(builder, part):
  import json  # pylint: disable=g-import-not-at-top
  return json.loads((builder.data_path / f"build_summary_{part}.json").read_text())


def test_bad_labels_missing_csvs_and_truncated_frames_are_counted_not_written(
    tmp_path, capsys):
  """A partial copy (two of the three parts) builds the parts it has; a task with
  frames but no CSV, rows with labels other than 0/1/9, a truncated JPEG are
  skipped and counted in the build summary; nothing bad is written."""
  import os  # pylint: disable=g-import-not-at-top
  manual = tmp_path / "manual"
  ids = synthetic.generate(str(manual), subjects=2, tasks=2, frames=4,
                           size_wh=(160, 160), seed=5, progress=False)
  parts = {s: layout.SUBJECT_PART[s] for s in ids}
  assert len(set(parts.values())) == 2  # part3 is absent: a partial copy
  a, b = ids
  occ = manual / "AUCoding" / "AU_OCC"
  os.remove(occ / f"{b}_T2.csv")                      # frames, no labels
  lines = (occ / f"{a}_T1.csv").read_text().splitlines()
  header = lines[0].split(",")
  bad = lines[1].split(",")
  bad[header.index("12")] = "5"                        # not 0, 1 or 9
  frame_bad = int(float(bad[0]))
  lines[1] = ",".join(bad)
  (occ / f"{a}_T1.csv").write_text("\n".join(lines) + "\n")
  t2 = (occ / f"{a}_T2.csv").read_text().splitlines()
  frame_cut = int(float(t2[1].split(",")[0]))
  jpg = [p for p in (manual / "Sequences" / a / "T2").iterdir()
         if layout.frame_number(p.name) == frame_cut][0]
  jpg.write_bytes(jpg.read_bytes()[:len(jpg.read_bytes()) // 2])  # truncated
  builder = _build(manual, tmp_path / "tfds")
  out = capsys.readouterr().out
  assert set(builder.info.splits) == set(parts.values())
  assert "part3 has no subject" in out and f"{b}/T2" in out
  sa, sb = _summary(builder, parts[a]), _summary(builder, parts[b])
  assert sa["skipped"][f"{a}_T1"] == {"invalid_label": 1}
  assert sa["skipped"][f"{a}_T2"] == {"corrupt_image": 1}
  assert sb["skipped"][f"{b}_T2"] == {"no_label_file": len(list(
      (manual / "Sequences" / b / "T2").iterdir()))}
  source = tfds.data_source("bp4d", split=parts[a], data_dir=str(tmp_path / "tfds"))
  kept = {(source[i]["task"].decode(), int(source[i]["frame"]))
          for i in range(len(source))}
  assert ("T1", frame_bad) not in kept and ("T2", frame_cut) not in kept
  assert ("T1", int(float(lines[2].split(",")[0]))) in kept
  assert all(set(np.unique(source[i]["au"])) <= {-1, 0, 1}
             for i in range(len(source)))
  from sfae_jax.data import registry, sources  # pylint: disable=g-import-not-at-top
  with pytest.raises(registry.DatasetError,
                     match=r"this build has part\d, part\d.*partial copy"):
    sources.open_split(str(tmp_path / "tfds"), "bp4d49", "part3", dataset="bp4d")


def test_unparsable_csv_and_empty_manual_dir_are_one_line_errors(tmp_path):
  import subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  manual = tmp_path / "manual"
  ids = synthetic.generate(str(manual), subjects=1, tasks=1, frames=2,
                           size_wh=(160, 160), progress=False)
  csv_path = manual / "AUCoding" / "AU_OCC" / f"{ids[0]}_T1.csv"
  csv_path.write_text("0,1,2\nnot,a,number\n")
  with pytest.raises(layout.LayoutError, match=str(csv_path)):
    _build(manual, tmp_path / "tfds")
  (tmp_path / "empty").mkdir()
  for root, named in ((manual, str(csv_path)), (tmp_path / "empty", "empty")):
    r = subprocess.run([sys.executable, "-m", "tfds_bp4d.build", "--manual_dir",
                        str(root), "--data_dir", str(tmp_path / "t2")],
                       capture_output=True, text=True, check=False)
    err = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert r.returncode == 1 and len(err) == 1 and named in err[0], r.stderr
    assert "Traceback" not in r.stderr


def test_dummy_data_intensities_a_missing_file_and_a_copy_without_them(
    tmp_path, capsys):
  """The built `intensity` is the intensity files' codes (the removed
  F012 AU17 file: -1); source.json lists the AUs with intensity. The same copy
  without its intensity folder builds the same examples, intensity -1, and says
  so; a malformed intensity line stops the build naming the file and line."""
  import json, os, shutil  # pylint: disable=g-import-not-at-top,multiple-imports
  manual = tmp_path / "manual"
  shutil.copytree(os.path.join(os.path.dirname(layout.__file__), "dummy_data"),
                  manual)
  builder = _build(manual, tmp_path / "tfds")
  source_json = json.loads((builder.data_path / "source.json").read_text())
  assert source_json["intensity_au_ids"] == [6, 10, 12, 14, 17]
  src = tfds.data_source("bp4d", split="part1+part2+part3",
                         data_dir=str(tmp_path / "tfds"))
  int_dir = manual / "AUCoding" / "AU_INT"
  seen = 0
  for i in range(len(src)):
    ex = src[i]
    subject, task = ex["subject"].decode(), ex["task"].decode()
    for k, au in enumerate(layout.INTENSITY_AUS):
      f = int_dir / f"AU{au:02d}" / f"{subject}_{task}_AU{au:02d}.csv"
      want = -1
      if f.exists():
        want = int(dict(l.split(",") for l in f.read_text().split())[
            str(int(ex["frame"]))])
        want = -1 if want == 9 else want
      assert ex["intensity"][k] == want, (subject, au)
      seen += f.exists()
  assert seen == 5 * len(src) - 3          # F012's three frames lack AU17
  assert "no AU intensity folder" not in capsys.readouterr().out

  shutil.rmtree(int_dir)
  builder = _build(manual, tmp_path / "tfds2")
  assert "has no AU intensity folder" in capsys.readouterr().out
  assert json.loads((builder.data_path / "source.json").read_text())[
      "intensity_au_ids"] == []
  bare = tfds.data_source("bp4d", split="part1+part2+part3",
                          data_dir=str(tmp_path / "tfds2"))
  assert len(bare) == len(src)
  for i in range(len(bare)):
    assert np.all(bare[i]["intensity"] == -1)
    np.testing.assert_array_equal(bare[i]["au"], src[i]["au"])

  bad = int_dir / "AU12" / "M007_T1_AU12.csv"
  shutil.copytree(os.path.join(os.path.dirname(layout.__file__), "dummy_data",
                               "AUCoding", "AU_INT"), int_dir)
  bad.write_text("7,1\n8,one\n")
  with pytest.raises(layout.LayoutError, match=rf"{bad}: line 2 is not"):
    _build(manual, tmp_path / "tfds3")


# TFDS test of the BP4D builder on dummy_data/ (synthetic pixels only).
#
# dummy_data/ is BP4D's layout written by our own generator:
#   python -m tfds_bp4d.synthetic.bp4d --out tfds_bp4d/bp4d/dummy_data --subjects 3 \
#       --tasks 1 --frames 3 --size 160x160 --seed 1
# one subject per part (M007 part1, M002 part2, F012 part3), 3 coded frames each;
# then AUCoding/AU_INT/AU17/F012_T1_AU17.csv removed (a missing intensity file).
class Bp4dTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = bp4d_dataset_builder.Builder
  SPLITS = {"part1": 3, "part2": 3, "part3": 3}
  SKIP_CHECKSUMS = True  # manual download: nothing to checksum

  def _make_builder(self, config=None):
    # The harness reads with .as_dataset(), which array_record (our default, read
    # with tfds.data_source) does not offer; the array_record path is tested
    # above.
    return self.dataset_class(data_dir=self.tmp_dir, config=config,
                              version=self.VERSION, file_format="tfrecord")
