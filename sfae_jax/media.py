"""Reading frames from images, folders and videos (PyAV), with clear errors.

`frames(path, every)` yields `Frame(index, timestamp, rgb)`; an image is one frame
at t=0. Videos are decoded with PyAV (FFmpeg); a file that does not open, fails to
decode part-way, or yields clearly fewer frames than its container declares raises
`MediaError` naming the file, so a truncated video never passes for a short one.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator

import cv2
import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class MediaError(RuntimeError):
  """An input that cannot be read; the message names the file."""


@dataclasses.dataclass(frozen=True)
class Frame:
  index: int          # 0-based frame number in the file
  timestamp: float    # seconds
  rgb: np.ndarray     # [H, W, 3] uint8


def expand_inputs(paths) -> list[str]:
  """Files as given; folders expanded to their images and videos, sorted."""
  out = []
  for p in paths:
    if os.path.isdir(p):
      out += sorted(os.path.join(p, f) for f in os.listdir(p)
                    if f.lower().endswith(IMAGE_EXTS + VIDEO_EXTS))
    else:
      out.append(p)
  return out


def is_video(path: str) -> bool:
  return path.lower().endswith(VIDEO_EXTS)


def frames(path: str, every: int = 1) -> Iterator[Frame]:
  if not os.path.exists(path):
    raise MediaError(f"{path}: no such file.")
  if is_video(path):
    yield from _video_frames(path, every)
    return
  bgr = cv2.imread(path, cv2.IMREAD_COLOR)
  if bgr is None:
    raise MediaError(f"{path}: not a readable image (corrupt, or not an image "
                     f"format OpenCV reads: {', '.join(IMAGE_EXTS)}).")
  yield Frame(0, 0.0, np.ascontiguousarray(bgr[..., ::-1]))


def video_info(path: str) -> tuple[float, int]:
  """(frames per second, declared frame count or 0)."""
  import av  # pylint: disable=g-import-not-at-top
  try:
    with av.open(path) as container:
      stream = container.streams.video[0]
      return float(stream.average_rate or 0), int(stream.frames or 0)
  except (av.error.FFmpegError, IndexError) as e:
    raise MediaError(f"{path}: cannot open as a video ({e}).") from None


def _video_frames(path: str, every: int) -> Iterator[Frame]:
  import av  # pylint: disable=g-import-not-at-top
  try:
    container = av.open(path)
  except av.error.FFmpegError as e:
    raise MediaError(f"{path}: cannot open as a video ({e}).") from None
  with container:
    if not container.streams.video:
      raise MediaError(f"{path}: has no video stream.")
    stream = container.streams.video[0]
    declared = int(stream.frames or 0)
    fps = float(stream.average_rate or 0)
    index = 0
    try:
      for frame in container.decode(stream):
        if index % every == 0:
          t = float(frame.time) if frame.time is not None else index / max(fps, 1e-9)
          yield Frame(index, t, frame.to_ndarray(format="rgb24"))
        index += 1
    except av.error.FFmpegError as e:
      raise MediaError(f"{path}: decoding failed after {index} frames ({e}); the "
                       "file is corrupt or truncated.") from None
  if declared and index < 0.95 * declared:
    raise MediaError(f"{path}: decoded {index} of the {declared} frames its "
                     "container declares; the file is truncated or corrupt.")
  if index == 0:
    raise MediaError(f"{path}: no frame could be decoded.")
