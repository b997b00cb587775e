"""Media as phones, editors and archives make them, written here for the tests:
H.264 MP4s with a display rotation, irregular presentation times or a late
start, with open GOPs and B-frames, or cut before a keyframe without
re-encoding, and PNGs whose header promises a huge image."""

import struct
import zlib

import av
import numpy as np


def mp4(path, frames, fps=25, pts_ms=None, turns=0, options=None) -> str:
  """An H.264 MP4 of `frames` (RGB `[H, W, 3]`, even sizes). `pts_ms`: each
  frame's presentation time in ms (variable rate, late start). `turns`: the
  frames are stored turned that many quarter turns counter-clockwise
  (`np.rot90`), with the display matrix a phone writes to turn them back.
  `options`: libx264's (e.g. GOP length and B-frames)."""
  stored = [np.ascontiguousarray(np.rot90(f, turns)) for f in frames]
  with av.open(str(path), "w") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.height, stream.width = stored[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    stream.options = dict(options or {})
    if pts_ms is not None:
      stream.codec_context.time_base = stream.time_base = _fraction(1, 1000)
    for k, f in enumerate(stored):
      frame = av.VideoFrame.from_ndarray(f, format="rgb24")
      if pts_ms is not None:
        frame.pts, frame.time_base = pts_ms[k], _fraction(1, 1000)
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  if turns % 4:
    _set_display_matrix(str(path), turns % 4)
  return str(path)


def moving(frames: int, height: int = 64, width: int = 80) -> list[np.ndarray]:
  """Noise that moves: every frame differs, so a wrong reference shows."""
  image = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
  return [np.roll(image, 3 * k, axis=1) for k in range(frames)]


def open_gop(path, frames: int = 120) -> str:
  """GOPs of 12 frames that may refer across keyframes, with B-frames: frames
  are stored out of presentation order, as most cameras' and encoders' are."""
  return mp4(path, moving(frames), options={
      "g": "12", "bf": "3", "preset": "medium", "x264-params": "open-gop=1"})


def without_first_packets(src, dst, n: int) -> str:
  """`src` remuxed without its first `n` packets (a cut made without
  re-encoding): its first frames refer to a keyframe that is gone, and a
  decoder drops them, while the container still lists them."""
  with av.open(str(src)) as source, av.open(str(dst), "w") as out:
    stream = source.streams.video[0]
    copy = out.add_stream_from_template(stream)
    for k, packet in enumerate(source.demux(stream)):
      if packet.dts is None or k < n:
        continue
      packet.stream = copy
      out.mux(packet)
  return str(dst)


def _fraction(a, b):
  import fractions  # pylint: disable=g-import-not-at-top
  return fractions.Fraction(a, b)


# (a, b, c, d) of the track header's matrix that turns frames stored k quarter
# turns counter-clockwise back upright (90 degrees: what a phone held upright
# writes).
_MATRICES = {1: (0, 1, -1, 0), 2: (-1, 0, 0, -1), 3: (0, -1, 1, 0)}


def _set_display_matrix(path: str, turns: int) -> None:
  data = bytearray(open(path, "rb").read())
  box = data.find(b"tkhd")
  assert box > 0, "no track header"
  version = data[box + 4]
  # version/flags, times, track id, reserved, duration; reserved, layer,
  # alternate group, volume, reserved; then the matrix a b u c d v x y w.
  matrix = box + 8 + (32 if version == 1 else 20) + 16
  a, b, c, d = _MATRICES[turns]
  fixed = lambda v: struct.pack(">i", v * 65536)  # noqa: E731  16.16
  data[matrix:matrix + 8] = fixed(a) + fixed(b)
  data[matrix + 12:matrix + 20] = fixed(c) + fixed(d)
  open(path, "wb").write(bytes(data))


def black_png(path, width: int, height: int) -> str:
  """A valid black RGB PNG of any size, written in bounded memory (a 20,000 x
  20,000 one is ~1.2 GB decoded and ~1.2 MB on disk)."""
  def chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
  row = bytes(1 + 3 * width)  # filter byte 0, then black pixels
  packer = zlib.compressobj(1)
  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n")
    f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    f.write(chunk(b"IDAT", body))
    f.write(chunk(b"IEND", b""))
  return str(path)
