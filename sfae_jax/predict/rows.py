"""The per-frame rows of `sfae_jax.predict`: their columns, a row per face (or per
frame without one), and the AU columns filled from the model's outputs: the
probabilities (`AUxx`), occurrences (`AUxx_c`) and, for a run with an intensity
head, intensities 0-5 (`AUxx_r`, OpenFace's name), after every other column so
that readers of the occurrence-only table still find theirs where they were."""

from __future__ import annotations

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


def row(path, frame, face_id, face, face_index, decode_error=0) -> dict:
  """A frame's row for one face (`face_index`: its place among the aligned faces
  the model sees; None when it was not aligned), or for no face."""
  out = {"input": path, "frame": frame.index, "timestamp": round(frame.timestamp, 6),
         "face_id": face_id, "success": int(face_index is not None),
         "_face": face_index, "decode_error": decode_error}
  if face is None:
    out.update(confidence=0.0, face_x=np.nan, face_y=np.nan, face_w=np.nan,
               face_h=np.nan)
    lm = np.full((N_POINTS, 2), np.nan)
  else:
    out.update(confidence=face.score, face_x=face.box[0], face_y=face.box[1],
               face_w=face.box[2], face_h=face.box[3])
    lm = face.landmarks
  out.update({f"x_{i}": lm[i, 0] for i in range(N_POINTS)})
  out.update({f"y_{i}": lm[i, 1] for i in range(N_POINTS)})
  return out


def table(rows, outputs, au_ids, threshold, intensity_au_ids=()) -> pd.DataFrame:
  """`rows` (from `row`) with their AU columns, in `columns` order. `outputs[i]`
  is the face with `face_index` i: its `len(au_ids)` probabilities, then its
  `len(intensity_au_ids)` intensities."""
  df = pd.DataFrame(rows)
  idx = df.pop("_face").to_numpy()
  has = np.array([i is not None and not pd.isna(i) for i in idx])
  n = len(au_ids)
  out = np.full((len(df), n + len(intensity_au_ids)), np.nan)
  if has.any():
    out[has] = np.asarray(outputs)[idx[has].astype(int)]
  for k, a in enumerate(au_ids):
    df[f"AU{a:02d}"] = out[:, k]
  for k, a in enumerate(au_ids):
    occ = np.where(np.isnan(out[:, k]), -1, (out[:, k] >= threshold).astype(int))
    df[f"AU{a:02d}_c"] = occ
  for k, a in enumerate(intensity_au_ids):
    df[f"AU{a:02d}_r"] = out[:, n + k]
  return df[columns(au_ids, intensity_au_ids)]
