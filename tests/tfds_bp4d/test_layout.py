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


def _build(root, subject, opts=reader.ReadOptions()):
  files = reader.find_label_files(root)
  with open(files[(subject, "T1")]) as f:
    labels = layout.read_occurrence_csv(f.read())
  summary = reader.new_summary()
  out = list(reader.task_examples(root, os.path.join(root, "Sequences"), subject,
                                    "T1", labels, opts, summary))
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
