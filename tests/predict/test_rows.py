"""The rows' columns and values, from faces and the model's outputs."""

import numpy as np

from sfae_jax.face.backends import Face
from sfae_jax.face.segments import FrameFaces
from sfae_jax.predict import rows

AUS, INTENSITY = [1, 12], [12]


def _frame(i):
  return FrameFaces(i, i / 25.0 + 1e-7, False, ())


def test_a_face_a_face_not_aligned_and_no_face():
  lm = np.stack([np.arange(68), 100 + np.arange(68)], axis=1).astype(np.float32)
  face = Face((10.0, 20.0, 30.0, 40.0), 0.75, lm)
  table = rows.table(
      [rows.row("v.mp4", _frame(0), 4, face, 0),
       rows.row("v.mp4", _frame(1), 5, face, None),
       rows.row("v.mp4", _frame(2), -1, None, None, decode_error=1)],
      np.array([[0.2, 0.9, 3.5]]), AUS, 0.5, INTENSITY)
  assert list(table.columns) == rows.columns(AUS, INTENSITY)
  assert table["frame"].tolist() == [0, 1, 2]
  assert table["timestamp"].tolist() == [0.0, 0.04, 0.08]  # rounded to 1 us
  assert table["face_id"].tolist() == [4, 5, -1]
  assert table["success"].tolist() == [1, 0, 0]
  assert table["confidence"].tolist() == [0.75, 0.75, 0.0]
  assert table.loc[0, ["face_x", "face_y", "face_w", "face_h"]].tolist() == [
      10.0, 20.0, 30.0, 40.0]
  assert table.loc[1, "x_67"] == 67.0 and table.loc[1, "y_0"] == 100.0
  assert np.isnan(table.loc[2, ["face_x", "x_0", "y_67"]].astype(float)).all()
  assert table.loc[0, ["AU01", "AU12", "AU12_r"]].tolist() == [0.2, 0.9, 3.5]
  assert table.loc[0, ["AU01_c", "AU12_c"]].tolist() == [0, 1]
  assert table.loc[1, ["AU01_c", "AU12_c"]].tolist() == [-1, -1]  # no outputs
  assert np.isnan(table.loc[1, ["AU01", "AU12_r"]].astype(float)).all()
  assert table["decode_error"].tolist() == [0, 0, 1]
  for name in ("frame", "face_id", "success", "AU01_c", "decode_error"):
    assert table[name].dtype == np.int64, name


def test_no_rows_give_the_columns():
  table = rows.table([], np.zeros((0, 3)), AUS, 0.5, INTENSITY)
  assert len(table) == 0 and list(table.columns) == rows.columns(AUS, INTENSITY)
