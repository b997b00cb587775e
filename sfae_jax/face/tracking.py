"""Stable face ids across frames by greedy IoU matching (OpenFace/py-feat style)."""

from __future__ import annotations

from typing import Sequence

def iou(a: Sequence[float], b: Sequence[float]) -> float:
  """Intersection over union of two (x, y, w, h) boxes."""
  ax1, ay1, ax2, ay2 = a[0], a[1], a[0] + a[2], a[1] + a[3]
  bx1, by1, bx2, by2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
  iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
  ih = max(0.0, min(ay2, by2) - max(ay1, by1))
  inter = iw * ih
  union = a[2] * a[3] + b[2] * b[3] - inter
  return inter / union if union > 0 else 0.0


class IoUTracker:
  """Gives each box the id of the best-overlapping box of the last `max_gap`
  frames (IoU >= `min_iou`), else a new id. Greedy by IoU, one box per id."""

  def __init__(self, min_iou: float = 0.3, max_gap: int = 30):
    self.min_iou, self.max_gap = min_iou, max_gap
    self._tracks: dict[int, tuple[tuple, int]] = {}  # id -> (box, last frame)
    self._next = 0
    self._frame = -1

  def update(self, boxes: Sequence[Sequence[float]]) -> list[int]:
    self._frame += 1
    # A track unseen for more than max_gap frames can never match again: dropped,
    # so hours of video with many passers-by keep a short list.
    self._tracks = {i: bt for i, bt in self._tracks.items()
                    if self._frame - bt[1] <= self.max_gap}
    live = {i: b for i, (b, _) in self._tracks.items()}
    pairs = sorted(((iou(box, tb), k, tid) for k, box in enumerate(boxes)
                    for tid, tb in live.items()), reverse=True)
    ids: list = [None] * len(boxes)
    used = set()
    for score, k, tid in pairs:
      if score < self.min_iou:
        break
      if ids[k] is None and tid not in used:
        ids[k], _ = tid, used.add(tid)
    for k, box in enumerate(boxes):
      if ids[k] is None:
        ids[k], self._next = self._next, self._next + 1
      self._tracks[ids[k]] = (tuple(box), self._frame)
    return [int(i) for i in ids]


  def state(self) -> dict:
    """What the next `update` depends on, as JSON-able values (resume)."""
    return {"frame": self._frame, "next": self._next,
            "tracks": [[i, list(b), t] for i, (b, t) in sorted(self._tracks.items())]}

  @classmethod
  def from_state(cls, state: dict, **kwargs) -> "IoUTracker":
    tracker = cls(**kwargs)
    tracker._frame, tracker._next = int(state["frame"]), int(state["next"])
    tracker._tracks = {int(i): (tuple(float(v) for v in b), int(t))
                       for i, b, t in state["tracks"]}
    return tracker
