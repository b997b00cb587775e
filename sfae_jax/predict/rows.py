"""The per-frame rows of `sfae_jax.predict`: their columns, a row per face (or per
frame without one), and the AU columns filled from the model's probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd

N_POINTS = 68


def columns(au_ids) -> list[str]:
  return (["input", "frame", "timestamp", "face_id", "success", "confidence",
           "face_x", "face_y", "face_w", "face_h"]
          + [f"x_{i}" for i in range(N_POINTS)] + [f"y_{i}" for i in range(N_POINTS)]
          + [f"AU{a:02d}" for a in au_ids] + [f"AU{a:02d}_c" for a in au_ids]
          + ["decode_error"])


def concat(tables, au_ids) -> pd.DataFrame:
  tables = [t for t in tables if len(t)]
  if not tables:
    return pd.DataFrame(columns=columns(au_ids))
  return pd.concat(tables, ignore_index=True)[columns(au_ids)]


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


def table(rows, probs, au_ids, threshold) -> pd.DataFrame:
  """`rows` (from `row`) with their AU probability and occurrence columns, in
  `columns` order; `probs[i]` is the face with `face_index` i."""
  df = pd.DataFrame(rows)
  idx = df.pop("_face").to_numpy()
  has = np.array([i is not None and not pd.isna(i) for i in idx])
  p = np.full((len(df), len(au_ids)), np.nan)
  if has.any():
    p[has] = probs[idx[has].astype(int)]
  for k, a in enumerate(au_ids):
    df[f"AU{a:02d}"] = p[:, k]
  for k, a in enumerate(au_ids):
    occ = np.where(np.isnan(p[:, k]), -1, (p[:, k] >= threshold).astype(int))
    df[f"AU{a:02d}_c"] = occ
  return df[columns(au_ids)]
