"""Reading frames from images, folders and videos (PyAV), with clear errors.

`frames(path, every)` yields `Frame(index, timestamp, rgb)`; an image is one frame
at t=0. Videos are decoded with PyAV (FFmpeg). A frame's `timestamp` is its
presentation time (pts x time base, in seconds, as ffprobe and players give it),
so variable frame rates and streams that start after 0 keep their real times. A
frame is turned upright as its stream's rotation (a phone's display matrix) says,
so `rgb` and every coordinate measured on it are those of the frame as displayed.

A file that does not open raises `MediaError` naming the file. One that fails to
decode part-way, or yields clearly fewer frames than its container declares,
raises `TruncatedMedia` (a MediaError) after the frames that did decode, so a cut
video never passes for a short one and its good frames are not lost. A video
frame that FFmpeg decodes with errors (concealed: damaged data patched from its
neighbours) comes with `corrupt=True`, for the caller to flag.

A video's frames can also be decoded a range at a time, each range from a
seek point (`video_index`, `frame_range`), for work spread over processes or
machines: the frames and their numbers are checked against the container's
index, and a range that does not match raises `IrregularRange` (its frames are
then to be decoded in order, as `frames` does).

A JPEG is checked for its end-of-image marker before it is decoded (`jpeg_problem`):
OpenCV grey-fills a truncated JPEG and reports nothing, so a cut file would pass
for a face with a grey lower half. An image over `MAX_IMAGE_PIXELS` is refused from
its header, before its pixels take memory.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from typing import Iterator, Optional
import warnings

import av
import cv2
import numpy as np
from PIL import Image

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
# 50 MP: above a 48 MP phone photo. Decoded, such an image holds 150 MB and the
# face detector's upsampled pyramid several times that; larger ones are refused.
MAX_IMAGE_PIXELS = 50_000_000


class MediaError(RuntimeError):
  """An input that cannot be read; the message names the file."""


class TruncatedMedia(MediaError):
  """A video whose decoding stopped early: `decoded` frames were read (and
  yielded) before the break."""

  def __init__(self, message: str, decoded: int):
    super().__init__(message)
    self.decoded = decoded


class IrregularRange(MediaError):
  """A range of a video decoded from a seek point gave other frames than its
  index lists: its frame numbers would not be those of decoding in order."""


@dataclasses.dataclass(frozen=True)
class Frame:
  index: int          # 0-based frame number in the file
  timestamp: float    # seconds
  rgb: np.ndarray     # [H, W, 3] uint8
  corrupt: bool = False  # the decoder reported errors (a concealed frame)


def expand_inputs(paths) -> list[str]:
  """Files as given; folders expanded to their images and videos, sorted. A
  folder with none is a MediaError (it would otherwise give no rows, silently)."""
  out = []
  for p in paths:
    if os.path.isdir(p):
      found = sorted(os.path.join(p, f) for f in os.listdir(p)
                     if f.lower().endswith(IMAGE_EXTS + VIDEO_EXTS))
      if not found:
        raise MediaError(f"{p}: a folder with no image or video (looked for "
                         f"{', '.join(IMAGE_EXTS + VIDEO_EXTS)}).")
      out += found
    else:
      out.append(p)
  return out


def is_video(path: str) -> bool:
  return path.lower().endswith(VIDEO_EXTS)


def frames(path: str, every: int = 1, start: int = 0) -> Iterator[Frame]:
  """Every `every`-th frame, from the `start`-th of those on (a video's earlier
  frames are decoded, to be checked, but not converted)."""
  if not os.path.exists(path):
    raise MediaError(f"{path}: no such file.")
  if is_video(path):
    yield from _video_frames(path, every, start * every)
    return
  if start == 0:
    yield Frame(0, 0.0, np.ascontiguousarray(read_image(path)[..., ::-1]))


def read_image(path: str) -> np.ndarray:
  """BGR uint8 `[H, W, 3]` (OpenCV's reader, EXIF orientation applied); a
  MediaError naming the file for an unreadable, truncated or corrupt image."""
  with open(path, "rb") as f:
    data = f.read()
  problem = jpeg_problem(data) if data[:2] == b"\xff\xd8" else None
  if problem:
    raise MediaError(f"{path}: corrupt or truncated JPEG ({problem}); re-export "
                     "or re-download the file.")
  _check_size(path, data)
  bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if bgr is None:
    raise MediaError(f"{path}: not a readable image (corrupt, or not an image "
                     f"format OpenCV reads: {', '.join(IMAGE_EXTS)}).")
  return bgr


def _check_size(path: str, data: bytes) -> None:
  """A MediaError for an image over MAX_IMAGE_PIXELS, read from its header."""
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
  except Image.DecompressionBombError as e:  # over Pillow's own limit, ~358 MP
    found = re.search(r"\((\d+) pixels\)", str(e))
    raise _too_large(path, "an image", int(found.group(1)) if found else 0) from None
  except Exception:  # pylint: disable=broad-except  (not Pillow's: OpenCV decides)
    return
  if width * height > MAX_IMAGE_PIXELS:
    raise _too_large(path, f"{width} x {height} pixels", width * height)


def _too_large(path: str, size: str, pixels: int) -> MediaError:
  return MediaError(f"{path}: {size} ({pixels / 1e6:.0f} MP), more than predict "
                    f"reads ({MAX_IMAGE_PIXELS / 1e6:.0f} MP): downscale it, e.g. "
                    "to 4000 pixels on its longest side.")


_STANDALONE = frozenset([0x01] + list(range(0xD0, 0xD8)))  # TEM, RST0-7: no length


def jpeg_problem(data: bytes) -> Optional[str]:
  """None for a complete JPEG; otherwise what is wrong with it. Walks the marker
  segments and the entropy-coded scans to the end-of-image marker (data after it,
  e.g. a camera's trailer, is allowed); a file that ends first is truncated."""
  n, pos = len(data), 2
  if data[:2] != b"\xff\xd8":
    return "no start-of-image marker"
  while True:
    while pos < n and data[pos] != 0xFF:  # junk between segments: tolerated
      pos += 1
    while pos < n and data[pos] == 0xFF:  # fill bytes
      pos += 1
    if pos >= n:
      return f"the file ends after {n} bytes, before its end-of-image marker"
    marker, pos = data[pos], pos + 1
    if marker == 0xD9:
      return None
    if marker in _STANDALONE:
      continue
    if pos + 2 > n:
      return f"the file ends inside a segment header at byte {pos}"
    length = int.from_bytes(data[pos:pos + 2], "big")
    if length < 2 or pos + length > n:
      return f"segment 0xFF{marker:02X} at byte {pos - 2} runs past the end of the file"
    pos += length
    if marker != 0xDA:  # not start-of-scan
      continue
    while True:  # entropy-coded data: ends at a marker other than FF00 and RSTn
      pos = data.find(b"\xff", pos)
      if pos < 0 or pos + 1 >= n:
        return (f"the file ends after {n} bytes, inside its image data (cut or "
                "incompletely downloaded)")
      nxt = data[pos + 1]
      if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
        pos += 1 if nxt == 0xFF else 2
        continue
      break


def video_info(path: str) -> tuple[float, int]:
  """(frames per second, declared frame count or 0)."""
  try:
    with av.open(path) as container:
      if not container.streams.video:
        raise MediaError(_no_video_stream(path, container))
      stream = container.streams.video[0]
      return float(stream.average_rate or 0), int(stream.frames or 0)
  except av.error.FFmpegError as e:
    raise MediaError(f"{path}: cannot open as a video ({e}).") from None


def declared_frames(path: str) -> int:
  """An input's frame count as its container declares it (0: unknown, or
  unreadable, which is reported when it is read); 1 for an image."""
  if not is_video(path):
    return 1
  try:
    return video_info(path)[1]
  except MediaError:
    return 0


def _no_video_stream(path: str, container) -> str:
  kinds = sorted({s.type for s in container.streams}) or ["no"]
  return (f"{path}: has no video stream (it holds {', '.join(kinds)} streams "
          "only), so there are no faces to read.")


def _open(path: str):
  try:
    return av.open(path)
  except av.error.FFmpegError as e:
    raise MediaError(f"{path}: cannot open as a video ({e}).") from None


def _video_frames(path: str, every: int, first: int) -> Iterator[Frame]:
  container = _open(path)
  with container:
    if not container.streams.video:
      raise MediaError(_no_video_stream(path, container))
    stream = container.streams.video[0]
    declared = int(stream.frames or 0)
    fps = float(stream.average_rate or 0)
    index = 0
    try:
      for frame in container.decode(stream):
        if index % every == 0 and index >= first:
          yield _frame(frame, index, fps)
        index += 1
    except av.error.FFmpegError as e:
      raise TruncatedMedia(f"{path}: decoding failed after {index} frames ({e}); "
                           "the file is corrupt or truncated.", index) from None
  if declared and index < 0.95 * declared:
    raise TruncatedMedia(f"{path}: decoded {index} of the {declared} frames its "
                         "container declares; the file is truncated or corrupt.",
                         index)
  if index == 0:
    raise MediaError(f"{path}: no frame could be decoded.")


@dataclasses.dataclass(frozen=True)
class VideoIndex:
  """A video stream's frames as its container lists them, read without
  decoding (`video_index`): frame i (in decoding order's count, as `frames`
  numbers them) is presented at `pts[i]`."""
  pts: np.ndarray        # int64 [frames], ascending: presentation order
  keyframes: np.ndarray  # int64, ascending: where decoding may start

  def __len__(self) -> int:
    return len(self.pts)

  def range(self, first: int, stop: int) -> "FrameRange":
    """Frames `first` to `stop` - 1, to be decoded from the keyframe before
    the last one at or before `first` (the start of the file for the first
    GOPs). One keyframe further back because in an open GOP the frames just
    after a keyframe may refer to the GOP before it; a GOP's decoding (~1 ms a
    frame, without the RGB conversion) is what that costs."""
    stop = min(stop, len(self))
    k = int(np.searchsorted(self.keyframes, self.pts[first], side="right")) - 2
    return FrameRange(first, self.pts[first:stop],
                      int(self.keyframes[k]) if first and k >= 0 else None,
                      stop == len(self))


@dataclasses.dataclass(frozen=True)
class FrameRange:
  """Frames `first` to `first + len(pts) - 1` of a video, as its index lists
  them (`VideoIndex.range`): what `frame_range` decodes and checks."""
  first: int
  pts: np.ndarray        # their presentation timestamps, ascending
  seek: Optional[int]    # the keyframe's pts to start from; None: the start
  to_end: bool           # the file's last frames: no frame may follow them


def video_index(path: str) -> Optional[VideoIndex]:
  """The container's index of `path`'s video stream (demuxed, not decoded:
  ~30 us a frame), or None where it cannot number the frames exactly: a packet
  without a timestamp, two frames at one, no keyframe, fewer than 95 % of the
  declared frames, or a file that does not open (`frames` reports those)."""
  try:
    with av.open(path) as container:
      if not container.streams.video:
        return None
      stream = container.streams.video[0]
      declared = int(stream.frames or 0)
      pts, keys = [], []
      for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:  # the flush packet; edit lists
          continue
        if packet.pts is None:
          return None
        pts.append(packet.pts)
        if packet.is_keyframe:
          keys.append(packet.pts)
  except av.error.FFmpegError:
    return None
  pts, keys = np.sort(np.asarray(pts, np.int64)), np.sort(np.asarray(keys, np.int64))
  if (not len(keys) or len(np.unique(pts)) != len(pts)
      or (declared and len(pts) < 0.95 * declared)):
    return None
  return VideoIndex(pts, keys)


def frame_range(path: str, span: FrameRange, every: int = 1) -> Iterator[Frame]:
  """The frames of `span` (numbered as `frames` numbers them; every `every`-th
  of them), decoded from its seek point. Raises IrregularRange where the
  decoded frames differ from the index (one missing, one more, a decoding
  error): `frames` decodes them in order instead."""
  first, want, seek = span.first, span.pts, span.seek
  container = _open(path)
  with container:
    stream = container.streams.video[0]
    fps = float(stream.average_rate or 0)
    if seek is not None:
      container.seek(seek, stream=stream, backward=True, any_frame=False)
    n = 0
    try:
      for frame in container.decode(stream):
        if frame.pts is None:
          raise IrregularRange(f"{path}: a frame without a timestamp.")
        if n == 0 and first and frame.pts < want[0]:
          continue  # decoded to reach the range: before it
        if n == len(want) or frame.pts != want[n]:
          if n == len(want) and not span.to_end:
            return
          raise IrregularRange(
              f"{path}: frame {first + n} decoded at pts {frame.pts}, its index "
              f"says {want[n] if n < len(want) else 'no frame'}.")
        i = first + n
        if i % every == 0:
          yield _frame(frame, i, fps)
        n += 1
    except av.error.FFmpegError as e:
      raise IrregularRange(
          f"{path}: decoding failed at frame {first + n} ({e}).") from None
  if n < len(want):
    raise IrregularRange(f"{path}: the file ends at frame {first + n}, its index "
                         f"lists {first + len(want)}.")


def _frame(frame, index: int, fps: float) -> Frame:
  """PyAV's decoded `frame`, the `index`-th of its file, as a Frame: its
  presentation time (index / fps where it has none), upright, in RGB."""
  t = float(frame.time) if frame.time is not None else index / max(fps, 1e-9)
  return Frame(index, t, upright(frame.to_ndarray(format="rgb24"), frame.rotation),
               bool(frame.is_corrupt))


def upright(rgb: np.ndarray, rotation: float) -> np.ndarray:
  """The frame as displayed: turned counter-clockwise by `rotation` degrees,
  FFmpeg's display-matrix angle (a phone held upright records -90 or 90),
  rounded to quarter turns."""
  turns = round(rotation / 90) % 4
  return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb
