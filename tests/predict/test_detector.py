"""Faces in real photos and videos -> per-frame AU rows (../shared/faces)."""

import json
import os
import re
import subprocess
import sys

import cv2
import jax
import numpy as np
import pandas as pd
from PIL import Image
import pytest

from sfae_jax import evaluate
from sfae_jax.data import sources
from sfae_jax.face import backends
from sfae_jax.predict import Detector
from sfae_jax.predict import __main__ as predict_cli
from sfae_jax.runtime import sharding
from sfae_jax.training import run_info
from sfae_jax.training.trained_run import model_of
from tests import test_first_run as first_run
from tests.face import made_media
from tests.predict.reference import sequential_rows
from tfds_bp4d.bp4d import layout


@pytest.fixture(scope="module")
def detector(trained_run):
  return Detector(trained_run[0], backend="dlib")


def _check_au_columns(df, threshold=0.5):
  """12 probabilities and occurrences; the run's intensity AUs (BP4D's 6, 10, 12,
  14, 17: the synthetic BP4D codes them) as AUxx_r in [0, 5], after every
  other column; all NaN where no face."""
  aus = [c for c in df.columns if re.fullmatch(r"AU\d\d", c)]
  assert len(aus) == 12
  ok = df["success"] == 1
  p = df.loc[ok, aus].to_numpy(float)
  assert np.all((p >= 0) & (p <= 1))
  c = df.loc[ok, [a + "_c" for a in aus]].to_numpy()
  np.testing.assert_array_equal(c, (p >= threshold).astype(int))
  assert df.loc[~ok, aus].isna().all().all()
  r = [f"AU{a:02d}_r" for a in (6, 10, 12, 14, 17)]
  assert list(df.columns[-5:]) == r and df.columns[-6] == "decode_error"
  values = df.loc[ok, r].to_numpy(float)
  assert np.all((values >= 0) & (values <= 5))
  assert df.loc[~ok, r].isna().all().all()


def _count_frames_with_opencv(path):
  """An independent decoder's frame count (not the container's declaration)."""
  cap, n = cv2.VideoCapture(path), 0
  while cap.read()[0]:
    n += 1
  return n


def test_single_face_eyes_inside_the_box(detector, faces_dir):
  df = detector.detect(os.path.join(faces_dir, "single_face.jpg"))
  assert len(df) == 1 and df["success"].iloc[0] == 1
  row = df.iloc[0]
  x, y, w, h = row["face_x"], row["face_y"], row["face_w"], row["face_h"]
  for lo, hi, side in ((36, 42, 0), (42, 48, 1)):  # image-left eye, image-right eye
    ex = np.array([row[f"x_{i}"] for i in range(lo, hi)])
    ey = np.array([row[f"y_{i}"] for i in range(lo, hi)])
    assert np.all((ey > y) & (ey < y + 0.6 * h)), "eyes in the upper part"
    half = (ex < x + w / 2) if side == 0 else (ex > x + w / 2)
    assert np.all(half & (ex > x) & (ex < x + w))
  _check_au_columns(df)


def test_multi_face_every_face_distinct_ids(trained_run, faces_dir):
  det = Detector(trained_run[0], backend="dlib_cnn")
  df = det.detect(os.path.join(faces_dir, "multi_face.jpg"))
  assert (df["success"] == 1).all()
  assert len(df) == 5  # five people, one in sunglasses (HOG misses that one)
  assert df["face_id"].nunique() == 5
  _check_au_columns(df)


def test_no_face_inputs_give_success_0_rows(detector, faces_dir):
  df = detector.detect([os.path.join(faces_dir, "free-mountain-vector-01.jpg"),
                        os.path.join(faces_dir, "no_face.mp4")], every=1)
  assert not detector.failures
  img = df[df["input"].str.endswith(".jpg")]
  vid = df[df["input"].str.endswith(".mp4")]
  decoded = _count_frames_with_opencv(os.path.join(faces_dir, "no_face.mp4"))
  assert len(img) == 1 and len(vid) == decoded  # (the container declares 98)
  assert (df["success"] == 0).all()
  assert sorted(vid["frame"]) == list(range(decoded))
  _check_au_columns(df)


def test_talking_head_video_one_row_per_frame_one_face_id(detector, faces_dir):
  path = os.path.join(faces_dir, "WolfgangLanger_Pexels.mp4")
  fps, decoded = 24000 / 1001, _count_frames_with_opencv(path)
  df = detector.detect(path)
  assert len(df) == decoded and list(df["frame"]) == list(range(decoded))
  t = df["timestamp"].to_numpy()
  assert np.all(np.diff(t) > 0)
  np.testing.assert_allclose(np.diff(t), 1 / fps, atol=2e-3)
  assert (df["success"] == 1).all() and df["face_id"].nunique() == 1
  _check_au_columns(df)


def test_a_cut_video_keeps_its_rows_to_the_break_flags_it_and_exits_1(
    trained_run, faces_dir, tmp_path, capsys):
  """Half the talking head (a download cut short): its decoded frames keep their
  rows, a last row flags the break (decode_error=2), the error names the file,
  the other input is kept, the exit status is 1 and the summary names what was
  written. A rerun finds the CSV complete and says the same again."""
  src = os.path.join(faces_dir, "WolfgangLanger_Pexels.mp4")
  bad = tmp_path / "cut.mp4"
  bad.write_bytes(open(src, "rb").read()[:800_000])
  photo = os.path.join(faces_dir, "single_face.jpg")
  out = tmp_path / "tracks"
  argv = ["--workdir", trained_run[0], "--backend", "dlib", "--every", "4",
          str(bad), photo, "--out", f"{out}/"]
  assert predict_cli.main(argv) == 1
  err = capsys.readouterr().err
  errors = [l for l in err.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "cut.mp4" in errors[0] and "truncated" in errors[0]
  assert f"-> {out}/" in err
  cut = pd.read_csv(out / "cut.mp4.csv")
  decoded = int(re.search(r"(?:after|decoded) (\d+)", errors[0]).group(1))
  assert 50 < decoded < 472
  assert list(cut["frame"]) == list(range(0, decoded, 4)) + [decoded]
  last = cut.iloc[-1]
  assert last["decode_error"] == 2 and last["success"] == 0
  assert np.isnan(last["timestamp"])
  assert (cut.iloc[:-1]["success"] == 1).mean() > 0.9
  assert (out / "single_face.jpg.csv").exists()
  record = json.load(open(out / "cut.mp4.csv.provenance.json"))
  assert record["incomplete"] == errors[0][len("error: "):]
  # the rerun: complete, nothing redone, the break said again, exit 1
  text = (out / "cut.mp4.csv").read_text()
  assert predict_cli.main(argv) == 1
  again = capsys.readouterr().err
  assert [l for l in again.splitlines() if l.startswith("error:")] == errors
  assert "2 input(s) already complete" in again
  assert (out / "cut.mp4.csv").read_text() == text


def test_a_phone_video_is_analysed_upright_in_displayed_coordinates(detector,
                                                                    faces_dir,
                                                                    tmp_path):
  """A portrait clip stored sideways with its display matrix (as phones record):
  the face is found in every frame, and its landmarks are those found in the
  same clip stored upright, in the upright frame's coordinates."""
  face = cv2.imread(os.path.join(faces_dir, "single_face.jpg"))[..., ::-1]
  portrait = np.ascontiguousarray(cv2.resize(face, (240, 320)))
  frames = [np.roll(portrait, k, axis=1) for k in range(0, 12, 2)]
  upright = detector.detect(made_media.mp4(tmp_path / "up.mp4", frames))
  phone = detector.detect(made_media.mp4(tmp_path / "phone.mp4", frames, turns=1))
  assert (upright["success"] == 1).all() and (phone["success"] == 1).all()
  xy = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
  eyes = np.hypot(upright["x_39"] - upright["x_42"], upright["y_39"] - upright["y_42"])
  error = np.abs(phone[xy].to_numpy() - upright[xy].to_numpy()).max(axis=1)
  assert np.all(error < 0.08 * eyes.to_numpy()), error / eyes.to_numpy()
  assert phone["y_8"].mean() > phone["y_27"].mean()  # chin below the brows


def test_tiny_huge_and_cmyk_images_in_bounded_memory(trained_run, faces_dir,
                                                     tmp_path):
  """A 1x1 PNG gives its no-face row, a CMYK JPEG its face, a 20,000 x 20,000
  PNG (1.2 GB decoded) a one-line refusal and exit 1, in well under the memory
  its pixels would take; run as a user runs it (no JAX_PLATFORMS), nothing else
  on stderr looks like an error."""
  cv2.imwrite(str(tmp_path / "dot.png"), np.zeros((1, 1, 3), np.uint8))
  Image.open(os.path.join(faces_dir, "single_face.jpg")).convert("CMYK").save(
      tmp_path / "print.jpg")
  made_media.black_png(tmp_path / "huge.png", 20_000, 20_000)
  out = tmp_path / "images.csv"
  probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
           "sys.exit(r.returncode)")
  r = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m",
                      "sfae_jax.predict", "--workdir", trained_run[0], "--backend",
                      "dlib", "--workers", "0", str(tmp_path / "dot.png"),
                      str(tmp_path / "print.jpg"), str(tmp_path / "huge.png"),
                      "--out", str(out)], capture_output=True, text=True,
                     env=first_run.as_a_user())
  assert r.returncode == 1, r.stderr[-2000:]
  errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "huge.png" in errors[0] and "400 MP" in errors[0]
  assert not first_run.ERROR_LOOKING.findall(r.stderr), r.stderr[-2000:]
  assert int(r.stdout.split()[-1]) / 1024 < 1000  # MiB; decoding takes 1,144
  df = pd.read_csv(out).set_index("input")
  assert df.loc[str(tmp_path / "dot.png"), "success"] == 0
  assert df.loc[str(tmp_path / "print.jpg"), "success"] == 1
  assert str(tmp_path / "huge.png") not in df.index


def test_bad_input_does_not_stop_the_others(trained_run, faces_dir, tmp_path,
                                            capsys):
  bad = tmp_path / "broken.jpg"
  bad.write_bytes(b"not a jpeg")
  out = tmp_path / "out.csv"
  rc = predict_cli.main(["--workdir", trained_run[0], "--backend", "dlib", str(bad),
                     os.path.join(faces_dir, "single_face.jpg"), "--out", str(out)])
  assert rc == 1
  assert "frames/s end to end" in capsys.readouterr().err
  df = pd.read_csv(out)
  assert len(df) == 1 and df["input"].iloc[0].endswith("single_face.jpg")
  assert list(df.columns[:10]) == ["input", "frame", "timestamp", "face_id",
                                   "success", "confidence", "face_x", "face_y",
                                   "face_w", "face_h"]
  assert "x_67" in df.columns and "AU24_c" in df.columns


def test_ground_truth_landmarks_through_detector_match_evaluation(trained_run,
                                                                  synthetic_tfds):
  """The Detector path (raw frame + landmarks -> alignment -> model) reproduces
  the evaluation path on the built dataset (same frames, aligned at build time),
  up to the JPEG re-encoding the dataset applies."""
  workdir, _ = trained_run
  det = Detector(workdir, backend=None)
  manual = os.path.join(os.path.dirname(synthetic_tfds), "manual")
  source = sources.open_split(synthetic_tfds, "bp4d49", "part3", dataset="bp4d")
  ex = [source[i] for i in range(len(source))]
  images, lms, keep = [], [], []
  for i, e in enumerate(ex):
    subject, task = e["subject"].decode(), e["task"].decode()
    frames = layout.list_frames(os.path.join(manual, "Sequences", subject, task))
    mats = layout.read_landmarks_mat(os.path.join(manual, "2DFeatures",
                                                  f"{subject}_{task}.mat"))
    pos = sorted(frames).index(int(e["frame"]))
    if mats[pos] is None:
      continue
    images.append(cv2.imread(frames[int(e["frame"])])[..., ::-1])
    lms.append(np.asarray(mats[pos]) - 1.0)   # MATLAB 1-based
    keep.append(i)
  probs = det.predict_faces(images, lms, scheme="bp4d49")
  info = run_info.read(workdir)
  config = info.config
  ref = evaluate.predict_split(model_of(info), config,
                               det.model.variables, source,
                               sharding.make_mesh(jax.devices()[:1])).probs
  assert len(keep) >= 15
  np.testing.assert_allclose(probs, ref[keep], atol=0.05)
  assert np.corrcoef(probs.ravel(), ref[keep].ravel())[0, 1] > 0.95


def test_missing_face_alignment_weights_say_where_to_put_them(tmp_path, monkeypatch):
  monkeypatch.setattr(backends.importlib.util, "find_spec",
                      lambda name: object() if name == "face_alignment" else None)
  with pytest.raises(backends.BackendUnavailable) as e:
    backends.FaceAlignmentBackend(weights_dir=str(tmp_path))
  msg = str(e.value)
  assert os.path.join(str(tmp_path), "hub", "checkpoints") in msg
  assert "2DFAN4" in msg and "s3fd" in msg


def test_tracking_between_detections_keeps_rows_and_landmarks(detector, faces_dir):
  """--detect-every 5 (the default) against the detector on every frame; and the
  streamed rows at every 2nd frame (file frame numbers kept) are those of the
  frame-by-frame loop (tests/predict/reference.py)."""
  path = os.path.join(faces_dir, "WolfgangLanger_Pexels.mp4")
  try:
    detector.detect_every = 1
    every_frame = detector.detect(path, every=2)
    detector.detect_every = 5
    tracked = detector.detect(path, every=2)
  finally:
    detector.detect_every = 5
  assert list(tracked["frame"]) == list(every_frame["frame"])
  assert (tracked["success"] == every_frame["success"]).all()
  cols = [f"{a}_{i}" for a in "xy" for i in range(68)]
  diff = np.abs(tracked[cols].to_numpy(float) - every_frame[cols].to_numpy(float))
  ruler = np.abs(every_frame["x_39"] - every_frame["x_42"]).median()
  assert np.median(diff) < 0.05 * ruler, (np.median(diff), ruler)
  assert np.percentile(diff, 95) < 0.25 * ruler, (np.percentile(diff, 95), ruler)
  pd.testing.assert_frame_equal(tracked.reset_index(drop=True),
                                sequential_rows(detector, path, 2), atol=1e-5,
                                check_dtype=False)


def test_cut_jpeg_is_named_and_the_rest_written_with_provenance(trained_run,
                                                                faces_dir,
                                                                tmp_path, capsys):
  """A JPEG cut short (OpenCV would grey-fill it) is a named error, exit 1, no
  row; the good photo's rows are written with a provenance file beside them that
  names the run, its step and its synthetic training data, and says so."""
  src = os.path.join(faces_dir, "single_face.jpg")
  data = open(src, "rb").read()
  cut = tmp_path / "cut.jpg"
  cut.write_bytes(data[:len(data) * 2 // 3])
  out = tmp_path / "out.csv"
  rc = predict_cli.main(["--workdir", trained_run[0], "--backend", "dlib", str(cut),
                     src, "--out", str(out)])
  err = capsys.readouterr().err
  assert rc == 1
  assert re.search(r"error: \S*cut\.jpg: corrupt or truncated JPEG", err)
  df = pd.read_csv(out)
  assert set(df["input"]) == {src} and len(df) == 1
  record = json.loads((tmp_path / "out.csv.provenance.json").read_text())
  assert record["run"] == os.path.abspath(trained_run[0]) and record["step"] == 6
  assert record["trained_on_synthetic"] and record["training_dataset"]["synthetic"]
  assert record["landmark_backend"] == "dlib" and record["au_ids"][0] == 1
  assert record["training_config"]["input_size"] == 64
  assert "not meaningful" in record["warning"] and "not meaningful" in err
  det = Detector(trained_run[0], backend="dlib")
  assert det.trained_on_synthetic
  same = {k: v for k, v in det.provenance.items() if k != "date"}
  assert same == {k: v for k, v in record.items()
                  if k not in ("date", "settings", "inputs")}
  assert record["settings"] == det.settings(every=1).as_dict() and record["inputs"] == [src]


@pytest.mark.parametrize("flags,message", [
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--threshold", "5"], "--threshold is a probability"),
    (["--out", "rows.txt"], "name a .csv or .parquet file, or a folder ending in"),
    (["--out", "rows.parquet", "--format", "csv"], "--format csv: name a .csv file"),
    (["--workers", "-1"], "--workers must be >= 0"),
])
def test_bad_arguments_stop_before_any_work(trained_run, tmp_path, capsys, flags,
                                            message):
  flags = [str(tmp_path) if f == "FOLDER" else f for f in flags]
  argv = ["--workdir", trained_run[0], str(tmp_path)] + (
      [] if "--out" in flags else ["--out", str(tmp_path / "o.csv")]) + flags
  with pytest.raises(SystemExit) as e:
    predict_cli.main(argv)
  assert e.value.code == 2 and message in capsys.readouterr().err
  assert os.listdir(tmp_path) == []  # nothing written, no stray .tmp


def test_a_folder_without_media_is_exit_1_naming_it(trained_run, tmp_path, capsys):
  (tmp_path / "in").mkdir()
  (tmp_path / "in" / "readme.txt").write_text("no media here")
  rc = predict_cli.main(["--workdir", trained_run[0], "--backend", "dlib",
                     str(tmp_path / "in"), "--out", str(tmp_path / "o.csv")])
  err = capsys.readouterr().err
  assert rc == 1 and f"{tmp_path / 'in'}: a folder with no image or video" in err
  assert not (tmp_path / "o.csv").exists()


def test_detect_raises_on_a_missing_file_unless_told_to_skip(detector, faces_dir,
                                                             tmp_path):
  from sfae_jax.face import media  # pylint: disable=g-import-not-at-top
  missing = str(tmp_path / "missing.mp4")
  with pytest.raises(media.MediaError, match="missing.mp4: no such file"):
    detector.detect(missing)
  df = detector.detect([missing, os.path.join(faces_dir, "single_face.jpg")],
                       on_error="skip")
  assert len(df) == 1 and len(detector.failures) == 1
  assert "missing.mp4" in detector.failures[0]


def test_evaluate_workdirs_uses_the_data_dir_given(trained_run, tmp_path, capsys):
  nowhere = str(tmp_path / "elsewhere")
  assert evaluate.main(["--workdirs", trained_run[0], trained_run[0],
                        "--data_dir", nowhere]) == 1
  assert nowhere in capsys.readouterr().err


def test_cli_help_exits_0():
  """absl's --help exits 1 (train and ablate); argparse's (predict, evaluate) 0."""
  r = subprocess.run([sys.executable, "-m", "sfae_jax.train", "--help"],
                     capture_output=True, text=True, check=False)
  assert r.returncode == 0 and "--workdir" in r.stdout, r.stderr[-500:]
  for main in (predict_cli.main, evaluate.main):
    with pytest.raises(SystemExit) as e:
      main(["--help"])
    assert e.value.code == 0


def test_frames_decoded_with_errors_are_flagged_rows(detector, faces_dir, tmp_path,
                                                     capsys):
  """Six flipped bytes in the clip: FFmpeg conceals two frames (patches them from
  their neighbours) without an error. Those rows say decode_error=1, success=0,
  no AU values; every frame still has its row; stderr names the file."""
  import av  # pylint: disable=g-import-not-at-top
  data = bytearray(open(os.path.join(faces_dir, "single_face.mp4"), "rb").read())
  rng = np.random.default_rng(0)
  for i in rng.integers(len(data) // 4, len(data) - 1000, 6):
    data[i] ^= 0x5A
  bad = tmp_path / "garbled.mp4"
  bad.write_bytes(bytes(data))
  with av.open(str(bad)) as c:  # what the decoder itself reports, independently
    flagged = [k for k, f in enumerate(c.decode(c.streams.video[0]))
               if f.is_corrupt]
  assert flagged, "the damage no longer makes corrupt frames: pick other bytes"
  df = detector.detect(str(bad))
  assert sorted(df["frame"]) == list(range(72))
  marked = df[df["decode_error"] == 1]
  assert sorted(marked["frame"]) == flagged
  assert (marked["success"] == 0).all() and marked["AU12"].isna().all()
  assert (df.loc[df["decode_error"] == 0, "success"] == 1).mean() > 0.9
  assert "garbled.mp4" in capsys.readouterr().err


def test_every_nth_frame_keeps_file_frame_numbers_and_timestamps(detector,
                                                                 faces_dir):
  from sfae_jax.face import media  # pylint: disable=g-import-not-at-top
  path = os.path.join(faces_dir, "single_face.mp4")
  fps, declared = media.video_info(path)
  df = detector.detect(path, every=5)
  frames = sorted(df["frame"].unique())
  assert frames == list(range(0, declared, 5))
  ts = df.groupby("frame")["timestamp"].first().to_numpy()
  np.testing.assert_allclose(ts, np.asarray(frames) / fps, atol=1.5 / fps)


def test_overlays_one_png_per_frame_with_a_panel_per_face(detector, faces_dir,
                                                          tmp_path):
  path = os.path.join(faces_dir, "multi_face.jpg")
  df = detector.detect(path, overlays=str(tmp_path))
  faces = int(df["success"].sum())
  assert faces >= 2
  (png,) = os.listdir(tmp_path)
  assert png == "multi_face_000000.png"
  out = cv2.imread(str(tmp_path / png))
  h, w = cv2.imread(path).shape[:2]
  assert out.shape[1] == w + 200 + 160              # face 200 + bars 160 per panel
  assert out.shape[0] == max(h, 200 * faces)
  row = df[df["success"] == 1].iloc[0]             # its box is drawn in green
  x, y = int(row["face_x"]), int(row["face_y"])
  assert tuple(out[y, x + 2]) == (0, 255, 0)
