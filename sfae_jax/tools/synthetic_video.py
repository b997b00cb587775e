"""A long video of a real face, for predict's memory and speed measurements.

  python -m sfae_jax.tools.synthetic_video --face ../shared/faces/single_face.jpg \\
      --frames 20000 --out long.mp4 [--size 240x200] [--fps 30]

The face of the photo (found with the dlib backend) is cropped with a margin and
moves on a slow circle, a few pixels across, so the detector finds it and the
tracker follows it as in a talking-head recording. H.264 (PyAV), `--fps` frames
per second; a 240x200 frame keeps detection cheap, so a measurement of length
is not a measurement of the detector.
"""

from __future__ import annotations

import argparse
import math
import sys

import av
import cv2
import numpy as np

from sfae_jax.face import backends, media


def write(face_photo: str, frames: int, out: str, size=(240, 200),
          fps: int = 30) -> str:
  """Writes the video; returns `out`. `size` is (width, height)."""
  return write_face(*face_of(face_photo), frames, out, size, fps)


def face_of(face_photo: str) -> tuple[np.ndarray, tuple]:
  """The photo (RGB) and its first face's box (x, y, w, h), found with dlib."""
  rgb = np.ascontiguousarray(media.read_image(face_photo)[..., ::-1])
  found = backends.load_backend("dlib").detect(rgb)
  if not found:
    raise ValueError(f"{face_photo}: no face found to make a video of.")
  return rgb, tuple(found[0].box)


def write_face(rgb: np.ndarray, box, frames: int, out: str, size=(240, 200),
               fps: int = 30) -> str:
  """`write` for a photo whose face is found already (`face_of`)."""
  x, y, w, h = box
  cx, cy, side = x + w / 2, y + h / 2, 1.9 * max(w, h)
  w_out, h_out = size
  scale = 0.8 * min(w_out, h_out) / side
  radius = 0.04 * min(w_out, h_out)
  with av.open(out, "w") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = w_out, h_out, "yuv420p"
    stream.options = {"preset": "ultrafast", "crf": "23"}
    for i in range(frames):
      angle = 2 * math.pi * i / (4 * fps)
      dx, dy = radius * math.cos(angle), radius * math.sin(angle)
      m = np.float32([[scale, 0, w_out / 2 + dx - scale * cx],
                      [0, scale, h_out / 2 + dy - scale * cy]])
      frame = cv2.warpAffine(rgb, m, (w_out, h_out), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m sfae_jax.tools.synthetic_video",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--face", required=True, help="a photo with a face")
  parser.add_argument("--frames", type=int, required=True)
  parser.add_argument("--out", required=True, help="the .mp4 to write")
  parser.add_argument("--size", default="240x200", help="WIDTHxHEIGHT")
  parser.add_argument("--fps", type=int, default=30)
  args = parser.parse_args(argv)
  try:
    size = tuple(int(v) for v in args.size.lower().split("x"))
    assert len(size) == 2 and min(size) >= 64 and size[0] % 2 == size[1] % 2 == 0
  except (ValueError, AssertionError):
    parser.error(f"--size {args.size}: WIDTHxHEIGHT, even numbers >= 64")
  if args.frames < 1:
    parser.error("--frames must be >= 1")
  try:
    write(args.face, args.frames, args.out, size, args.fps)
  except (ValueError, media.MediaError, backends.BackendUnavailable) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {args.out}: {args.frames} frames, {size[0]}x{size[1]}", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
