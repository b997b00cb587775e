"""`predict --overlays DIR`: one PNG per frame, the frame with boxes, ids and
landmarks, and per face its aligned input under its mean attention map (a heat
map) beside its AU probability bars."""

from __future__ import annotations

import os

import cv2
import numpy as np



def write(folder, path, table, frames, faces, maps, au_ids):
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
      xs = row.filter(regex=r"^x_\d+$").to_numpy(float)  # x_0, x_1, ... in order
      ys = row.filter(regex=r"^y_\d+$").to_numpy(float)
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
