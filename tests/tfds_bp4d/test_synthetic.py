import hashlib
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tfds_bp4d.bp4d import layout
from tfds_bp4d.synthetic import bp4d as synthetic
from tfds_bp4d.synthetic import labels as synthetic_labels
from tfds_bp4d.synthetic.face import Identity, Pose, deform, neutral_landmarks
from tfds_bp4d.synthetic.progress import RecentEta
from tfds_bp4d.synthetic.render import render


def _digest(root):
  h = hashlib.sha256()
  for dirpath, _, files in sorted(os.walk(root)):
    for name in sorted(files):
      path = os.path.join(dirpath, name)
      h.update(os.path.relpath(path, root).encode())
      with open(path, "rb") as f:
        h.update(f.read())
  return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
  kw = dict(subjects=2, tasks=1, frames=3, size_wh=(160, 160), progress=False)
  synthetic.generate(str(tmp_path / "a"), seed=7, **kw)
  synthetic.generate(str(tmp_path / "b"), seed=7, **kw)
  synthetic.generate(str(tmp_path / "c"), seed=8, **kw)
  assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
  assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_subjects_are_bp4d_ids_spread_over_the_parts():
  ids = synthetic.pick_subjects(6, seed=0)
  assert len(set(ids)) == 6
  parts = [layout.SUBJECT_PART[s] for s in ids]
  assert sorted(parts) == ["part1", "part1", "part2", "part2", "part3", "part3"]


def _many_tasks(n_tasks=300, n_frames=200, seed=0):
  rng = np.random.default_rng(seed)
  return np.concatenate([synthetic_labels.sample_task(rng, n_frames)[0]
                         for _ in range(n_tasks)])


def test_base_rates_match_bp4d_within_005():
  occ = _many_tasks()
  for i, au in enumerate(synthetic_labels.AUS):
    coded = occ[:, i][occ[:, i] != 9]
    assert abs(coded.mean() - synthetic_labels.BASE_RATES[au]) < 0.05, au


def test_common_pairs_co_occur_and_labels_persist():
  occ = _many_tasks(n_tasks=100).astype(float)
  occ[occ == 9] = np.nan
  col = {au: occ[:, i] for i, au in enumerate(synthetic_labels.AUS)}
  def phi(a, b):
    ok = ~np.isnan(col[a]) & ~np.isnan(col[b])
    return np.corrcoef(col[a][ok], col[b][ok])[0, 1]

  for a, b in ((1, 2), (6, 12), (17, 24), (10, 12)):
    assert phi(a, b) > 0.25, (a, b)
  assert abs(phi(4, 12)) < 0.1  # an unrelated pair stays unrelated
  x = col[4][:-1], col[4][1:]
  ok = ~np.isnan(x[0]) & ~np.isnan(x[1])
  assert np.mean(x[0][ok] == x[1][ok]) > 0.85  # AU4 mostly persists frame to frame
  assert np.isnan(occ).any()                     # a few cells are not coded (9)


def _frame(au):
  idn = Identity.sample(np.random.default_rng(11))
  pose = Pose(roll=0.1, scale=100.0, cx=320, cy=240, yaw=0.0)
  canon = deform(neutral_landmarks(idn), au)
  img, lm = render(np.random.default_rng(0), idn, canon, au, pose, (640, 480))
  return img.astype(float), lm, idn


def _mask(shape, pts):
  m = np.zeros(shape[:2], np.uint8)
  cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
  return m.astype(bool)


def test_drawn_features_lie_where_the_landmarks_say():
  img, lm, idn = _frame({})
  lips = _mask(img.shape, lm[48:60]) & ~_mask(img.shape, lm[60:68])
  cheek = _mask(img.shape, np.array([lm[2], lm[3], lm[31], lm[39]]))
  eye = _mask(img.shape, lm[36:42])
  skin = img[cheek].mean(axis=0)
  assert np.abs(img[lips].mean(axis=0) - skin).max() > 15   # lips are not skin
  assert abs(img[eye].mean() - skin.mean()) > 15            # nor is the eye


@pytest.mark.parametrize("au,points,direction", [
    (1, [20, 21, 22, 23], -1), (15, [48, 54], +1), (12, [48, 54], -1),
    (17, [7, 8, 9], -1), (4, [17, 18, 19, 20, 21], +1)])
def test_aus_move_the_landmarks_facs_says(au, points, direction):
  idn = Identity.sample(np.random.default_rng(2))
  base = neutral_landmarks(idn)
  moved = deform(base, {au: 1.0})
  dy = moved[points, 1] - base[points, 1]
  assert np.all(direction * dy > 0.03)
  untouched = np.setdiff1d(np.arange(27, 36), points)  # the nose never moves
  np.testing.assert_array_equal(moved[untouched], base[untouched])


def test_au_creases_darken_their_region():
  neutral, lm, _ = _frame({})
  frown, _, _ = _frame({4: 1.0})
  glabella = _mask(neutral.shape, np.array([lm[21] + [-8, -20], lm[22] + [8, -20],
                                            lm[22] + [8, 10], lm[21] + [-8, 10]]))
  assert neutral[glabella].mean() - frown[glabella].mean() > 3


def test_worker_processes_write_the_same_bytes(tmp_path):
  import filecmp, os  # pylint: disable=g-import-not-at-top,multiple-imports
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  kw = dict(subjects=2, tasks=2, frames=3, size_wh=(160, 160), seed=4,
            progress=False)
  assert synthetic.generate(a, **kw) == synthetic.generate(b, workers=2, **kw)
  files = sorted(os.path.relpath(os.path.join(d, f), a)
                 for d, _, fs in os.walk(a) for f in fs)
  assert len(files) > 10
  _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
  assert not mismatch and not errors


def test_intensity_codes_come_from_the_occurrence_drive(tmp_path):
  """0 exactly where absent, 1..5 where present and rising with the rendered
  drive, 9 where the occurrence is not coded; the CLI writes them in BP4D's
  intensity layout beside unchanged occurrence files."""
  rng = np.random.default_rng(4)
  occ, drive = synthetic_labels.sample_task(rng, 4000)
  codes = synthetic_labels.intensity_codes(occ, drive)
  assert np.all(codes[occ == 0] == 0) and np.all(codes[occ == 9] == 9)
  present = occ == 1
  assert set(np.unique(codes[present])) == {1, 2, 3, 4, 5}
  order = np.argsort(drive[present])
  assert np.all(np.diff(codes[present][order]) >= 0)   # monotone in the drive
  out = tmp_path / "cli"
  r = subprocess.run([sys.executable, "-m", "tfds_bp4d.synthetic.bp4d", "--out",
                      str(out), "--subjects", "1", "--tasks", "1", "--frames", "3",
                      "--size", "160x160"], capture_output=True, text=True,
                     check=False)
  assert r.returncode == 0, r.stderr
  occ_file = next((out / "AUCoding" / "AU_OCC").iterdir())
  au12 = sorted((out / "AUCoding" / "AU_INT" / "AU12").iterdir())
  assert [p.name for p in au12] == [occ_file.stem + "_AU12.csv"]
  rows = [l.split(",") for l in occ_file.read_text().splitlines()]
  col = rows[0].index("12")
  want = {int(r[0]): r[col] for r in rows[1:]}
  got = dict(l.split(",") for l in au12[0].read_text().splitlines())
  assert {int(f) for f in got} == set(want)
  for f, code in got.items():
    assert (code == "0") == (want[int(f)] == "0") and (code == "9") == (
        want[int(f)] == "9")


def test_the_generator_still_writes_the_committed_dummy_data(tmp_path):
  """dummy_data/ was written before intensity codes existed (but its AU_INT/): the
  same seed still gives its frames, landmarks and occurrence labels byte for
  byte, and the intensity files beside them."""
  dummy = os.path.join(os.path.dirname(layout.__file__), "dummy_data")
  out = str(tmp_path / "again")
  synthetic.generate(out, subjects=3, tasks=1, frames=3, size_wh=(160, 160), seed=1,
                     progress=False)
  os.remove(os.path.join(out, "AUCoding", "AU_INT", "AU17", "F012_T1_AU17.csv"))
  assert _digest(out) == _digest(dummy)


def test_the_eta_follows_the_recent_rate_not_the_start_up():
  """82 tasks: the first done after 20 s (workers starting), then one a second.
  After 6 the ETA is the 76 left at 1 s each (since the start: 273 s); before 3
  are done it says none rather than one from the start-up."""
  clock = iter([20.0, 21.0, 22.0, 23.0, 24.0, 25.0]).__next__
  eta = RecentEta(82, window=4, clock=clock)
  for done in range(1, 7):
    eta.done(done)
    if done < 3:
      assert eta.seconds() is None
  assert eta.seconds() == pytest.approx(76.0)
