"""The per-frame rows of `sfae_jax.predict`: detection, tracking, batching, overlays."""

from __future__ import annotations

import os
import sys
import time

import cv2
import numpy as np
import pandas as pd

from sfae_jax import media
from sfae_jax.face import align, tracking

N_POINTS = 68


def columns(au_ids) -> list[str]:
  return (["input", "frame", "timestamp", "face_id", "success", "confidence",
           "face_x", "face_y", "face_w", "face_h"]
          + [f"x_{i}" for i in range(N_POINTS)] + [f"y_{i}" for i in range(N_POINTS)]
          + [f"AU{a:02d}" for a in au_ids] + [f"AU{a:02d}_c" for a in au_ids])


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
    print(f"\r{self.path}: frame {self.n}{of}, {rate:.1f} frames/s{eta}", end="",
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
  found = []
  for k, frame in enumerate(media.frames(path, every)):
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
  probs, maps = det.predict_aligned(np.stack(faces) if faces else
                                    np.zeros((0, 200, 200, 3), np.uint8), True)
  table = _table(rows, probs, det.au_ids, det.threshold)
  if overlays:
    _write_overlays(overlays, path, table, frames_kept, faces, maps, det.au_ids)
  return table


def _row(path, frame, face_id, face, face_index):
  row = {"input": path, "frame": frame.index, "timestamp": round(frame.timestamp, 6),
         "face_id": face_id, "success": int(face_index is not None),
         "_face": face_index}
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


def _write_overlays(folder, path, table, frames, faces, maps, au_ids):
  """One PNG per frame: the frame with boxes and landmarks; per face, the aligned
  input with its mean attention map as a heat map, and AU probability bars."""
  os.makedirs(folder, exist_ok=True)
  stem = os.path.splitext(os.path.basename(path))[0]
  face_index = 0
  for index, group in table.groupby("frame", sort=True):
    canvas = cv2.cvtColor(frames[index], cv2.COLOR_RGB2BGR)
    panels = []
    for _, row in group.iterrows():
      if not row["success"]:
        continue
      xs = row[[f"x_{i}" for i in range(N_POINTS)]].to_numpy(float)
      ys = row[[f"y_{i}" for i in range(N_POINTS)]].to_numpy(float)
      x, y, w, h = (int(row[k]) for k in ("face_x", "face_y", "face_w", "face_h"))
      cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 255, 0), 2)
      cv2.putText(canvas, f"id {int(row['face_id'])}", (x, max(12, y - 4)),
                  cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
      for px, py in zip(xs, ys):
        cv2.circle(canvas, (int(round(px)), int(round(py))), 2, (0, 0, 255), -1)
      probs = row[[f"AU{a:02d}" for a in au_ids]].to_numpy(float)
      att = maps[face_index] if maps is not None else None
      panels.append(_face_panel(faces[face_index], att, probs, au_ids))
      face_index += 1
    out = _side_by_side(canvas, panels)
    cv2.imwrite(os.path.join(folder, f"{stem}_{index:06d}.png"), out)


def _face_panel(face_rgb, attention, probs, au_ids):
  face = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2BGR)
  if attention is not None:
    # attention covers the centre crop of the 200 face: place it there
    heat = cv2.resize(attention.mean(0).astype(np.float32), (176, 176))
    heat = cv2.applyColorMap((255 * heat / max(heat.max(), 1e-6)).astype(np.uint8),
                             cv2.COLORMAP_JET)
    face[12:188, 12:188] = cv2.addWeighted(face[12:188, 12:188], 0.55, heat, 0.45, 0)
  bars = np.full((200, 160, 3), 255, np.uint8)
  step = 200 // len(au_ids)
  for k, (a, p) in enumerate(zip(au_ids, probs)):
    y = k * step
    cv2.rectangle(bars, (40, y + 3), (40 + int(110 * p), y + step - 3),
                  (60, 60, 220) if p >= 0.5 else (160, 160, 160), -1)
    cv2.putText(bars, f"AU{a:02d}", (2, y + step - 5), cv2.FONT_HERSHEY_SIMPLEX,
                0.35, (0, 0, 0), 1)
  return np.concatenate([face, bars], axis=1)


def _side_by_side(canvas, panels):
  if not panels:
    return canvas
  column = np.concatenate(panels, axis=0)
  h = max(canvas.shape[0], column.shape[0])
  pad = lambda im: np.pad(im, ((0, h - im.shape[0]), (0, 0), (0, 0)),
                          constant_values=255)
  return np.concatenate([pad(canvas), pad(column)], axis=1)
