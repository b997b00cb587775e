import os
import shutil

import numpy as np
import pytest

from tfds_bp4d.bp4d import layout, reader
from tfds_bp4d.synthetic import bp4d as synthetic


def test_csv_columns_are_found_by_header_number_and_9_is_unknown():
  # Columns deliberately out of order: position must not matter.
  header = [24, 0, 1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 5]
  row = [1, 2441, 1, 0, 9, 0, 1, 1, 1, 0, 0, 1, 0, 9]
  text = ",".join(map(str, header)) + "\n" + ",".join(map(str, row)) + "\n"
  labels = layout.read_occurrence_csv(text)
  assert list(labels) == [2441]
  np.testing.assert_array_equal(labels[2441], [1, 0, -1, 0, 1, 1, 1, 0, 0, 1, 0, 1])
  assert labels[2441].dtype == np.int8


def test_missing_au_column_is_a_clear_error():
  with pytest.raises(layout.LayoutError, match="lacks a column"):
    layout.read_occurrence_csv("0,1,2\n5,1,0\n")


@pytest.mark.parametrize("name,number", [("0123.jpg", 123), ("123.jpg", 123),
                                         ("2440.JPG", 2440), ("thumbs.db", None)])
def test_frame_numbers_are_read_not_matched(name, number):
  assert layout.frame_number(name) == number


def test_mat_round_trip_with_a_lost_frame(tmp_path):
  frames = [np.random.default_rng(0).uniform(1, 600, (49, 2)), None,
            np.full((49, 2), 5.0)]
  path = str(tmp_path / "F001_T1.mat")
  layout.write_landmarks_mat(path, frames)
  back = layout.read_landmarks_mat(path)
  np.testing.assert_allclose(back[0], frames[0], rtol=1e-6)
  assert back[1] is None
  np.testing.assert_allclose(back[2], 5.0)
  with open(path, "rb") as f:
    assert f.read(10) == b"MATLAB 7.3"


@pytest.fixture(scope="module")
def tiny_bp4d(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("bp4d"))
  ids = synthetic.generate(root, subjects=4, tasks=1, frames=6, size_wh=(160, 160),
                           seed=3, progress=False)
  return root, ids


def _build(root, subject, opts=reader.ReadOptions(), intensity=None):
  files = reader.find_label_files(root)
  with open(files[(subject, "T1")]) as f:
    labels = layout.read_occurrence_csv(f.read())
  summary = reader.new_summary()
  out = list(reader.task_examples(root, os.path.join(root, "Sequences"), subject,
                                  "T1", labels, opts, summary,
                                  intensity=intensity))
  return labels, out, summary


def test_three_digit_frame_names_are_read(tiny_bp4d):
  root, ids = tiny_bp4d
  names = os.listdir(os.path.join(root, "Sequences", ids[3], "T1"))
  assert all(len(n) == len("001.jpg") for n in names)  # 4th subject: 3 digits
  labels, out, summary = _build(root, ids[3])
  assert len(out) + sum(summary.skipped[(ids[3], "T1")].values()) == len(labels) == 6
  assert len(out) >= 5


def test_frame_offset_option_shifts_images_by_one(tiny_bp4d):
  root, ids = tiny_bp4d
  _, same, _ = _build(root, ids[0])
  _, minus1, _ = _build(root, ids[0], reader.ReadOptions(frame_offset=-1))
  a = {k: v for k, v in same}
  b = {k: v for k, v in minus1}
  first = min(int(k.split("_")[-1]) for k in a)
  key, nxt = f"{ids[0]}_T1_{first}", f"{ids[0]}_T1_{first + 1}"
  assert nxt in b
  # CSV frame N+1 under N-1 reads image N: the same pixels as CSV frame N under N.
  assert b[nxt]["image"] == a[key]["image"]
  np.testing.assert_array_equal(b[nxt]["au"], dict(same)[nxt]["au"])


def test_corrupt_and_missing_frames_are_skipped_and_counted(tiny_bp4d, tmp_path):
  src, ids = tiny_bp4d
  root = str(tmp_path / "copy")
  shutil.copytree(src, root)
  labels, clean, _ = _build(root, ids[1])
  frames = layout.list_frames(os.path.join(root, "Sequences", ids[1], "T1"))
  coded = sorted(labels)
  with open(frames[coded[0]], "wb") as f:
    f.write(b"\xff\xd8 not a jpeg")                 # corrupt
  os.remove(frames[coded[1]])                         # missing
  _, out, summary = _build(root, ids[1])
  counts = summary.skipped[(ids[1], "T1")]
  assert counts["corrupt_image"] == 1 and counts["no_image"] == 1
  assert len(out) == len(clean) - 2
  assert "corrupt_image 1" in summary.table()


def test_missing_layout_names_the_folder(tmp_path):
  with pytest.raises(layout.LayoutError, match="no AU occurrence"):
    reader.find_label_files(str(tmp_path))


def test_skip_reasons_are_a_closed_set():
  summary = reader.new_summary()
  summary.skip("F001", "T1", "no_image", 2)
  assert summary.as_json()["skipped"] == {"F001_T1": {"no_image": 2}}
  with pytest.raises(ValueError, match="no_imge"):
    summary.skip("F001", "T1", "no_imge")  # a typo would split the counts


def test_intensity_lines_9_is_not_coded_and_a_bad_line_names_the_file():
  assert layout.read_intensity_csv("7,0\n8,3\n\n9,9\n10,5\n") == {
      7: 0, 8: 3, 9: -1, 10: 5}
  with pytest.raises(layout.LayoutError, match=r"F001_T1_AU06\.csv: line 2 is not"):
    layout.read_intensity_csv("7,0\n8;3\n", "AU06/F001_T1_AU06.csv")
  with pytest.raises(layout.LayoutError, match=r"x\.csv: line 1: intensity 6"):
    layout.read_intensity_csv("7,6\n", "x.csv")
  assert layout.intensity_file_key("F001_T1_AU06.csv") == ("F001", "T1", 6)
  assert layout.intensity_file_key("M012_T8_AU17.CSV") == ("M012", "T8", 17)
  assert layout.intensity_file_key("F001_T1.csv") is None


def test_intensity_follows_the_csv_frame_and_is_minus_1_where_not_coded(tmp_path):
  """FERA 2015's folder name is found; each AU's code lands in its column by the
  occurrence CSV's frame number; an AU without a file, a frame without a line and
  a 9 are -1; the occurrence labels are untouched."""
  root = tmp_path / "bp4d"
  ids = synthetic.generate(str(root), subjects=1, tasks=1, frames=5,
                           size_wh=(160, 160), seed=2, progress=False)
  s = ids[0]
  os.rename(root / "AUCoding" / "AU_INT", root / "AU Intensity Codes3.0")
  int_dir = root / "AU Intensity Codes3.0"
  os.remove(int_dir / "AU14" / f"{s}_T1_AU14.csv")
  lines = (int_dir / "AU12" / f"{s}_T1_AU12.csv").read_text().splitlines()
  first = int(lines[0].split(",")[0])
  lines[1] = f"{first + 1},9"
  (int_dir / "AU12" / f"{s}_T1_AU12.csv").write_text(
      "\n".join(lines[:-1]) + "\n")                    # the last frame uncoded
  (int_dir / "AU06" / f"{s}_T1_AU06.csv").write_text(
      "".join(f"{first + k},{k}\n" for k in range(5)))
  files = reader.find_intensity_files(str(root))
  assert set(files[(s, "T1")]) == {6, 10, 12, 17}
  intensity = reader.read_intensities(files[(s, "T1")])
  labels, out, _ = _build(str(root), s, intensity=intensity)
  assert len(out) >= 4
  col = {au: k for k, au in enumerate(layout.INTENSITY_AUS)}
  for _, ex in out:
    frame = int(ex["frame"])
    k = frame - first
    assert ex["intensity"].dtype == np.int8 and ex["intensity"].shape == (5,)
    assert ex["intensity"][col[6]] == k
    assert ex["intensity"][col[14]] == -1
    assert ex["intensity"][col[12]] == (-1 if k in (1, 4) else
                                        intensity[frame][col[12]])
    np.testing.assert_array_equal(ex["au"], labels[frame])


def test_a_copy_without_intensity_has_none_to_find(tmp_path):
  root = tmp_path / "bp4d"
  synthetic.generate(str(root), subjects=1, tasks=1, frames=2, size_wh=(160, 160),
                     progress=False)
  shutil.rmtree(root / "AUCoding" / "AU_INT")
  assert reader.find_intensity_files(str(root)) is None
  assert reader.read_intensities({}) == {}
