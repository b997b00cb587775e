"""The per-frame rows of `sfae_jax.predict`: their columns, a row per face (or per
frame without one), and the AU columns filled from the model's outputs: the
probabilities (`AUxx`), occurrences (`AUxx_c`) and, for a run with an intensity
head, intensities 0-5 (`AUxx_r`, OpenFace's name), after every other column so
that readers of the occurrence-only table still find theirs where they were."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np
import pandas as pd

N_POINTS = 68


def columns(au_ids, intensity_au_ids=()) -> list[str]:
  return (["input", "frame", "timestamp", "face_id", "success", "confidence",
           "face_x", "face_y", "face_w", "face_h"]
          + [f"x_{i}" for i in range(N_POINTS)] + [f"y_{i}" for i in range(N_POINTS)]
          + [f"AU{a:02d}" for a in au_ids] + [f"AU{a:02d}_c" for a in au_ids]
          + ["decode_error"] + [f"AU{a:02d}_r" for a in intensity_au_ids])


def concat(tables, au_ids, intensity_au_ids=()) -> pd.DataFrame:
  names = columns(au_ids, intensity_au_ids)
  tables = [t for t in tables if len(t)]
  if not tables:
    return pd.DataFrame(columns=names)
  return pd.concat(tables, ignore_index=True)[names]


class Row(NamedTuple):
  """A frame's row before the model's outputs: its face (None: no face), and
  that face's place among the aligned faces the model sees (None: not
  aligned, or no face)."""
  input: str
  frame: int
  timestamp: float
  face_id: int
  face: Any
  face_index: Optional[int]
  decode_error: int


def row(path, frame, face_id, face, face_index, decode_error=0) -> Row:
  """A frame's row for one face (`face_index`: its place among the aligned faces
  the model sees; None when it was not aligned), or for no face."""
  return Row(path, frame.index, round(frame.timestamp, 6), face_id, face,
             face_index, decode_error)


def table(rows, outputs, au_ids, threshold, intensity_au_ids=()) -> pd.DataFrame:
  """`rows` (from `row`) with their AU columns, in `columns` order. `outputs[i]`
  is the face with `face_index` i: its `len(au_ids)` probabilities, then its
  `len(intensity_au_ids)` intensities. Built a column block at a time (a row
  at a time costs ~10 ms per frame)."""
  n, a = len(rows), len(au_ids)
  # confidence, face_x, face_y, face_w, face_h, x_0..x_67, y_0..y_67
  face = np.full((n, 5 + 2 * N_POINTS), np.nan)
  face[:, 0] = 0.0
  index = np.full(n, -1)
  for i, r in enumerate(rows):
    if r.face is not None:
      lm = np.asarray(r.face.landmarks)
      face[i, 0], face[i, 1:5] = r.face.score, r.face.box
      face[i, 5:5 + N_POINTS], face[i, 5 + N_POINTS:] = lm[:, 0], lm[:, 1]
    if r.face_index is not None:
      index[i] = r.face_index
  has = index >= 0
  out = np.full((n, a + len(intensity_au_ids)), np.nan)
  if has.any():
    out[has] = np.asarray(outputs)[index[has]]
  occurrence = np.where(np.isnan(out[:, :a]), -1,
                        (out[:, :a] >= threshold)).astype(np.int64)
  names = columns(au_ids, intensity_au_ids)
  data = {"input": [r.input for r in rows],
          "frame": np.array([r.frame for r in rows], np.int64),
          "timestamp": np.array([r.timestamp for r in rows], np.float64),
          "face_id": np.array([r.face_id for r in rows], np.int64),
          "success": has.astype(np.int64)}
  data.update(zip(names[5:10 + 2 * N_POINTS], face.T))
  data.update(zip(names[10 + 2 * N_POINTS:10 + 2 * N_POINTS + a], out[:, :a].T))
  data.update(zip(names[10 + 2 * N_POINTS + a:10 + 2 * N_POINTS + 2 * a],
                  occurrence.T))
  data["decode_error"] = np.array([r.decode_error for r in rows], np.int64)
  data.update(zip(names[11 + 2 * N_POINTS + 2 * a:], out[:, a:].T))
  return pd.DataFrame(data, columns=names)
