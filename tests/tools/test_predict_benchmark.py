"""The predict benchmark's quality deltas, on rows made here."""

import numpy as np
import pandas as pd

from sfae_jax.predict import rows
from sfae_jax.tools import predict_benchmark


def _rows(shift=0.0, prob=0.5, success=(1, 1, 0), face_id=(0, 0, -1)):
  n = len(success)
  data = {"input": ["a.mp4"] * n, "frame": list(range(n)),
          "success": list(success), "face_id": list(face_id)}
  # eyes: left centre at (0, 0), right centre at (10, 0): inter-ocular distance 10
  xs, ys = np.zeros((n, 68)), np.zeros((n, 68))
  xs[:, 42:48] = 10.0
  xs += shift
  for i in range(68):
    data[f"x_{i}"], data[f"y_{i}"] = xs[:, i], ys[:, i]
  data["AU01"] = [prob] * n
  return pd.DataFrame(data)


def test_deltas_are_relative_to_the_inter_ocular_distance():
  d = predict_benchmark.quality(_rows(shift=0.3, prob=0.52), _rows())
  assert d["success"] and d["face_id"] and d["faces_compared"] == 2
  assert abs(d["landmark_median"] - 0.03) < 1e-9
  assert abs(d["landmark_max"] - 0.03) < 1e-9
  assert abs(d["au_max"] - 0.02) < 1e-9


def test_a_lost_face_or_a_new_id_is_reported():
  d = predict_benchmark.quality(_rows(success=(1, 0, 0)), _rows())
  assert not d["success"] and d["face_id"] and d["faces_compared"] == 1
  d = predict_benchmark.quality(_rows(face_id=(0, 1, -1)), _rows())
  assert d["success"] and not d["face_id"]
  assert not predict_benchmark.quality(_rows()[:2], _rows())["same_rows"]


def test_the_columns_it_reads_are_predicts():
  names = set(rows.columns([1]))
  assert {"frame", "success", "face_id", "x_0", "y_67", "AU01"} <= names
