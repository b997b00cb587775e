"""The per-frame rows of `sfae_jax.predict`: decoding, detection, tracking,
batching, progress (overlay PNGs: `sfae_jax.predict.overlays`)."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pandas as pd

from sfae_jax.face import align, tracking
from sfae_jax.face import media
from sfae_jax.predict import overlays as overlay_pngs

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


class _Progress:
  def __init__(self, path, total):
    self.path, self.total, self.start, self.n = os.path.basename(path), total, \
        time.perf_counter(), 0

  def step(self):
    self.n += 1
    if self.n % 10 and self.n != self.total:
      return
    rate = self.n / max(time.perf_counter() - self.start, 1e-9)
    of = f"/{self.total}" if self.total else ""
    eta = f", ETA {(self.total - self.n) / rate:.0f}s" if self.total else ""
    print(f"\r{self.path}: frame {self.n}{of}, {rate:.1f} frames/s decoded and "
          f"aligned{eta}", end="",
          file=sys.stderr, flush=True)

  def close(self):
    if self.n:
      print(file=sys.stderr, flush=True)


def run_input(det, path: str, every: int, progress: bool, overlays) -> pd.DataFrame:
  """All rows of one input. Raises media.MediaError (and gives no rows) when the
  input cannot be read to its end."""
  total = 0
  if media.is_video(path) and os.path.exists(path):
    total = -(-media.video_info(path)[1] // every)
  bar = _Progress(path, total) if progress else None
  tracker = tracking.IoUTracker()
  rows, faces, frames_kept = [], [], {}
  refit = getattr(det.backend, "refit", None) if media.is_video(path) else None
  detect_every = max(1, getattr(det, "detect_every", 1))
  found, corrupt = [], []
  for k, frame in enumerate(media.frames(path, every)):
    if frame.corrupt:  # flagged, not analysed: its pixels are partly invented
      corrupt.append(frame.index)
      found = []
      tracker.update([])
      rows.append(_row(path, frame, -1, None, None, decode_error=1))
      if bar:
        bar.step()
      continue
    if refit is not None and found and k % detect_every:
      found = refit(frame.rgb, found)  # track: landmarks refit, no detector
    else:
      found = det.backend.detect(frame.rgb)
    ids = tracker.update([f.box for f in found])
    if not found:
      rows.append(_row(path, frame, -1, None, None))
    for face_id, face in zip(ids, found):
      try:
        aligned = align.align_face(frame.rgb, face.landmarks).image
      except ValueError:  # degenerate landmarks: flagged, not dropped
        rows.append(_row(path, frame, face_id, face, None))
        continue
      rows.append(_row(path, frame, face_id, face, len(faces)))
      faces.append(aligned)
    if overlays:
      frames_kept[frame.index] = frame.rgb
    if bar:
      bar.step()
  if bar:
    bar.close()
  if corrupt:
    print(f"warning: {path}: {len(corrupt)} frame(s) decoded with errors (frames "
          f"{', '.join(map(str, corrupt[:10]))}{' ...' if len(corrupt) > 10 else ''})"
          ": rows flagged decode_error=1, success=0, not analysed.",
          file=sys.stderr, flush=True)
  probs, maps = det.predict_aligned(np.stack(faces) if faces else
                                    np.zeros((0, 200, 200, 3), np.uint8), True)
  table = _table(rows, probs, det.au_ids, det.threshold)
  if overlays:
    overlay_pngs.write(overlays, path, table, frames_kept, faces, maps, det.au_ids)
  return table


def _row(path, frame, face_id, face, face_index, decode_error=0):
  row = {"input": path, "frame": frame.index, "timestamp": round(frame.timestamp, 6),
         "face_id": face_id, "success": int(face_index is not None),
         "_face": face_index, "decode_error": decode_error}
  if face is None:
    row.update(confidence=0.0, face_x=np.nan, face_y=np.nan, face_w=np.nan,
               face_h=np.nan)
    lm = np.full((N_POINTS, 2), np.nan)
  else:
    row.update(confidence=face.score, face_x=face.box[0], face_y=face.box[1],
               face_w=face.box[2], face_h=face.box[3])
    lm = face.landmarks
  row.update({f"x_{i}": lm[i, 0] for i in range(N_POINTS)})
  row.update({f"y_{i}": lm[i, 1] for i in range(N_POINTS)})
  return row


def _table(rows, probs, au_ids, threshold) -> pd.DataFrame:
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
  return df
