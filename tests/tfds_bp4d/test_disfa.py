"""DISFA: its layout's rules, frame-accurate video decoding, and the builder on a
synthetic DISFA in DISFA's layout (videos, per-AU label files, per-frame .mat)."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from sfae_jax.face import align, schemes
from sfae_jax.face import media
from tfds_bp4d.disfa import disfa_dataset_builder, layout, reader
from tfds_bp4d.synthetic import disfa as synthetic_disfa


@pytest.fixture(scope="module")
def manual(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("disfa") / "manual")
  ids = synthetic_disfa.generate(root, subjects=3, frames=8, size_wh=(200, 160),
                                 seed=3, progress=False)
  return root, ids


def _build(root, data_dir, **kw):
  builder = disfa_dataset_builder.Builder(data_dir=str(data_dir), **kw)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
  return builder


def test_label_lines_and_landmark_names():
  assert layout.read_label_file("1,0\n2,3\n\n3,5\n") == {1: 0, 2: 3, 3: 5}
  with pytest.raises(layout.LayoutError, match=r"x\.txt: line 2"):
    layout.read_label_file("1,0\n2;3\n", "x.txt")
  with pytest.raises(layout.LayoutError, match=r"line 1: intensity 7 is not one of \[0, 1, 2, 3, 4, 5\]"):
    layout.read_label_file("1,7\n", "x.txt")
  assert layout.landmark_file_number("SN001_0000_lm.mat") == 0
  assert layout.landmark_file_number("l01234_lm.mat") == 1234
  assert layout.landmark_file_number("notes.mat") is None


def test_an_au_without_its_label_file_has_intensity_minus_1(manual, tmp_path):
  """A coded AU outside the 8 of the protocol may lack its file: its intensity
  is -1 (not coded) and every other column is the files' codes; a protocol AU's
  file missing is a LayoutError naming what is needed."""
  root, ids = manual
  files = layout.label_files(root)[ids[0]]
  summary = reader.new_summary()
  full = reader.subject_labels(files, summary, ids[0])
  without_5 = {au: p for au, p in files.items() if au != 5}
  labels = reader.subject_labels(without_5, summary, ids[0])
  k5 = layout.CODED_AUS.index(5)
  for frame, (occ, intensity) in labels.items():
    assert intensity[k5] == -1
    np.testing.assert_array_equal(np.delete(intensity, k5),
                                  np.delete(full[frame][1], k5))
    np.testing.assert_array_equal(occ, full[frame][0])
  with pytest.raises(layout.LayoutError, match=r"no label file for AU \[12\]"):
    reader.subject_labels({au: p for au, p in files.items() if au != 12}, summary,
                          ids[0])


def test_decoded_frame_k_is_label_frame_k_plus_1(manual):
  """How frame indices were checked: every synthetic frame carries its 1-based
  number as a strip of blocks; PyAV's k-th decoded frame shows k + 1."""
  root, ids = manual
  for subject in ids:
    shown = [synthetic_disfa.read_frame_code(np.ascontiguousarray(f.rgb[..., ::-1]))
             for f in media.frames(layout.video_path(root, subject))]
    assert shown == list(range(1, 9))


def test_build_matches_the_shared_alignment_and_counts_the_missing_file(manual,
                                                                        tmp_path,
                                                                        capsys):
  root, ids = manual
  builder = _build(root, tmp_path / "tfds")
  out = capsys.readouterr().out
  sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
  assert sizes == {"part1": 8, "part2": 7, "part3": 8}  # ids[1] lacks one .mat
  # the skip summary: one line naming the table's file; nothing said of downloads
  (line,) = [l for l in out.splitlines() if "skipped" in l]
  assert line == ("DISFA part2: 1 of 8 frames skipped (no_landmark_file 1); per "
                  "subject/camera: build_summary_part2.txt in the dataset's folder")
  assert "no_landmark_file 1" in (builder.data_path /
                                  "build_summary_part2.txt").read_text()
  assert "Downloading" not in out and "nothing is downloaded" in out
  summary = json.loads((builder.data_path / "build_summary_part2.json").read_text())
  assert summary["skipped"] == {f"{ids[1]}_left": {"no_landmark_file": 1}}
  source = json.loads((builder.data_path / "source.json").read_text())
  assert source["synthetic"] and source["au_ids"] == [1, 2, 4, 6, 9, 12, 25, 26]
  assert source["landmarks"] == schemes.BP4D49
  assert source["intensity_au_ids"] == list(layout.CODED_AUS)   # all 12

  ds = tfds.data_source("disfa", split="part1", data_dir=str(tmp_path / "tfds"))
  ex = next(ds[i] for i in range(len(ds)) if ds[i]["frame"] == 5)
  subject = ex["subject"].decode()
  frame = [f for f in media.frames(layout.video_path(root, subject))][4]
  bgr = np.ascontiguousarray(frame.rgb[..., ::-1])
  lm66 = layout.read_landmarks(layout.landmark_files(root, subject)[5]) - 1.0
  lm49 = schemes.convert(lm66, schemes.DISFA66, schemes.BP4D49)
  np.testing.assert_array_equal(lm49, lm66[[i for i in range(66) if i >= 17]])
  face = align.align_face(bgr, lm49, schemes.BP4D49)
  np.testing.assert_allclose(ex["landmarks"], face.landmarks, atol=1e-5)
  rgb = cv2.cvtColor(face.image, cv2.COLOR_BGR2RGB).astype(float)
  assert np.abs(ex["image"].astype(float) - rgb).mean() < 3.0  # JPEG q95
  # labels: intensity >= 2 is present, from the label files themselves
  for k, au in enumerate(layout.AUS):
    with open(os.path.join(root, "ActionUnit_Labels", subject,
                           f"{subject}_au{au}.txt")) as f:
      level = layout.read_label_file(f.read())[5]
    assert ex["au"][k] == int(level >= 2)
    assert ex["intensity"][layout.CODED_AUS.index(au)] == level


def test_extracted_frames_are_read_by_number_and_a_cut_jpeg_counted(manual,
                                                                    tmp_path):
  root, ids = manual
  copy = tmp_path / "manual"
  shutil.copytree(root, copy, ignore=shutil.ignore_patterns("Videos_LeftCamera"))
  for subject in ids:
    folder = copy / "Images_LeftCamera" / subject
    folder.mkdir(parents=True)
    for f in media.frames(layout.video_path(root, subject)):
      # 5-digit names for one subject, none for the others: numbers, not strings
      name = f"{f.index + 1:05d}.jpg" if subject == ids[0] else f"{f.index + 1}.jpg"
      cv2.imwrite(str(folder / name), f.rgb[..., ::-1],
                  [cv2.IMWRITE_JPEG_QUALITY, 98])
  cut = copy / "Images_LeftCamera" / ids[2] / "3.jpg"
  cut.write_bytes(cut.read_bytes()[:len(cut.read_bytes()) // 2])
  summary = reader.new_summary()
  files = layout.label_files(str(copy))
  counts = {s: len(list(reader.subject_examples(str(copy), s, files[s],
                                                reader.ReadOptions(), summary)))
            for s in ids}
  assert counts == {ids[0]: 8, ids[1]: 7, ids[2]: 7}
  assert summary.as_json()["skipped"][f"{ids[2]}_left"] == {"corrupt_image": 1}


def test_66_point_config_keeps_the_jaw(manual, tmp_path):
  root, _ = manual
  builder = _build(root, tmp_path / "t66", config="disfa66")
  ds = tfds.data_source("disfa/disfa66", split="part3",
                        data_dir=str(tmp_path / "t66"))
  assert ds[0]["landmarks"].shape == (66, 2)
  assert json.loads((builder.data_path / "source.json").read_text())[
      "landmarks"] == schemes.DISFA66


def test_mat_points_are_matlab_1_based_and_mark_their_pixel_after_alignment(
    tmp_path):
  """A white 5x5 block is drawn centred on pixel (x, y) = .mat point minus 1
  (DISFA's points are MATLAB 1-based). After the reader and the alignment, the
  block's centre must be where the example's landmark says: reading the points
  as-is puts the landmark about a pixel (times the alignment's scale) off."""
  root = tmp_path / "manual"
  shutil.copytree(os.path.join(os.path.dirname(disfa_dataset_builder.__file__),
                               "dummy_data"), root)
  subject, frame, nose = "SN002", 2, 30  # 66-point nose tip = 49-point index 13
  pts = layout.read_landmarks(layout.landmark_files(str(root), subject)[frame])
  image_path = root / "Images_LeftCamera" / subject / f"{frame}.jpg"
  image = cv2.imread(str(image_path))
  x, y = np.round(pts[nose]).astype(int)
  pts[nose] = (x, y)                     # 1-based (x, y)
  layout.write_landmarks(layout.landmark_files(str(root), subject)[frame], pts)
  assert layout.read_landmarks(
      layout.landmark_files(str(root), subject)[frame])[nose].tolist() == [x, y]
  image[y - 1 - 2:y - 1 + 3, x - 1 - 2:x - 1 + 3] = 255  # centred on (x-1, y-1)
  cv2.imwrite(str(image_path), image, [cv2.IMWRITE_JPEG_QUALITY, 100])

  examples = dict(reader.subject_examples(
      str(root), subject, layout.label_files(str(root))[subject],
      reader.ReadOptions(), reader.new_summary()))
  ex = examples[f"{subject}_{frame}"]
  face = cv2.imdecode(np.frombuffer(ex["image"], np.uint8), cv2.IMREAD_GRAYSCALE)
  scale = np.sqrt(abs(np.linalg.det(
      align.alignment_matrix(pts - 1.0, schemes.DISFA66)[:, :2])))
  marked = face.astype(float) > 250
  ys, xs = np.nonzero(marked)
  centre = np.array([xs.mean(), ys.mean()])
  landmark = ex["landmarks"][nose - 17]
  assert marked.sum() >= 9, "the block must survive alignment and JPEG"
  assert np.abs(centre - landmark).max() < 0.3 * scale, (centre, landmark, scale)


# TFDS test of the DISFA builder on dummy_data/ (synthetic pixels only).
#
# dummy_data/ is DISFA's layout written by our own generator:
#   python -m tfds_bp4d.synthetic.disfa --out tfds_bp4d/disfa/dummy_data --subjects 3 \
#       --frames 4 --size 160x160 --seed 1 --jpeg-frames
# (extracted frames, so no video is committed; the video path is tested on
# generated videos above), one subject per part (SN002 part1, SN013 part2, SN003
# part3), 4 frames each; SN013 misses one landmark file, so part2 has 3 examples.
class DisfaTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = disfa_dataset_builder.Builder
  SPLITS = {"part1": 4, "part2": 3, "part3": 4}
  SKIP_CHECKSUMS = True  # manual download: nothing to checksum

  def _make_builder(self, config=None):
    # The harness reads with .as_dataset(); array_record (the default) is read
    # with tfds.data_source, tested above.
    return self.dataset_class(data_dir=self.tmp_dir, config=config,
                              version=self.VERSION, file_format="tfrecord")
