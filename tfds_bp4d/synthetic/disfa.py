"""A synthetic DISFA in DISFA's on-disk layout, so the real DISFA builder runs on it.

  python -m tfds_bp4d.synthetic.disfa --out scratch/disfa_syn --subjects 3 --frames 40

Writes, per subject (DISFA's own IDs, taken in turn from the three parts):
`Videos_LeftCamera/LeftVideoSNxxx_comp.avi` (MJPEG, 20 fps; every frame carries its
1-based number as a 12-bit strip of black/white blocks in its top-left corner, so
tests can check that frame k of the video is label frame k), label files
`ActionUnit_Labels/SNxxx/SNxxx_au<N>.txt` for DISFA's 12 coded AUs (`frame,intensity`,
from 1, intensity 0..5, present when >= 2), and one `.mat` (`pts`, 66x2, MATLAB 1-based pixels as DISFA's) per
frame in `Landmark_Points/SNxxx/tmp_frame_lm/`, named `SNxxx_NNNN_lm.mat` or, for every
other subject, `l0NNNN_lm.mat`; the second subject misses one landmark file (as
SN031 does). Faces come from the synthetic BP4D's renderer (`face`, `render`).
"""

from __future__ import annotations

import argparse
import os
import sys

import av
import cv2
import numpy as np
from scipy.special import ndtri

from sfae_jax.face import media
from sfae_jax.face import schemes
from tfds_bp4d.disfa import layout
from tfds_bp4d.layout import SYNTHETIC_MARKER
from tfds_bp4d.synthetic import labels as bp4d_labels
from tfds_bp4d.synthetic.bp4d import _size as size_arg, poses  # pylint: disable=protected-access
from tfds_bp4d.synthetic.face import Identity, deform, neutral_landmarks
from tfds_bp4d.synthetic.render import render

FPS = 20
# Occurrence rates (intensity >= 2) near DISFA's, for the 12 coded AUs.
RATES = {1: .06, 2: .05, 4: .19, 5: .03, 6: .08, 9: .05, 12: .13, 15: .05,
         17: .09, 20: .03, 25: .28, 26: .17}
CODE_BITS, CODE_BLOCK = 12, 6   # the frame-number strip


def frame_code(number: int) -> np.ndarray:
  """The strip drawn into frame `number`: `[CODE_BLOCK, CODE_BITS * CODE_BLOCK]`."""
  bits = [(number >> k) & 1 for k in range(CODE_BITS)]
  return np.repeat(np.repeat(np.array([bits], np.uint8) * 255, CODE_BLOCK, 0),
                   CODE_BLOCK, 1)


def read_frame_code(bgr: np.ndarray) -> int:
  strip = bgr[:CODE_BLOCK, :CODE_BITS * CODE_BLOCK].mean(axis=(0, 2))
  blocks = strip.reshape(CODE_BITS, CODE_BLOCK).mean(1)
  return int(sum(1 << k for k, v in enumerate(blocks) if v > 127))


def intensities(rng: np.random.Generator, n: int) -> dict[int, np.ndarray]:
  """AU -> `[n]` intensities 0..5: a persistent latent per AU, level 2 at the
  latent's rate quantile."""
  z = bp4d_labels.ar1(rng, n, 0.9, len(layout.CODED_AUS))
  out = {}
  for k, au in enumerate(layout.CODED_AUS):
    thr = ndtri(1 - RATES[au])
    out[au] = np.clip(np.floor(2 + 1.5 * (z[:, k] - thr)), 0, 5).astype(int)
  return out


def pick_subjects(n: int) -> list[str]:
  if not 1 <= n <= 27:
    raise ValueError(f"--subjects must be 1..27 (DISFA has 27), got {n}.")
  pools = [list(v) for v in layout.PARTS.values()]
  return [pools[i % 3][i // 3] for i in range(n)]


def write_subject(root: str, s: int, subject: str, frames: int, size_wh,
                  seed: int) -> None:
  rng = np.random.default_rng([seed, 7, s])
  idn = Identity.sample(np.random.default_rng([seed, 8, s]))
  level = intensities(rng, frames)
  lm_dir = os.path.join(root, "Landmark_Points", subject, "tmp_frame_lm")
  label_dir = os.path.join(root, "ActionUnit_Labels", subject)
  for d in (lm_dir, label_dir, os.path.join(root, "Videos_LeftCamera")):
    os.makedirs(d, exist_ok=True)
  keep66 = list(schemes.get_scheme(schemes.DISFA66).from_68)
  path = os.path.join(root, "Videos_LeftCamera", f"LeftVideo{subject}_comp.avi")
  w, h = size_wh
  with av.open(path, "w") as container:
    stream = container.add_stream("mjpeg", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuvj420p"
    stream.options = {"q:v": "2"}
    for t, pose in enumerate(poses(rng, frames, size_wh)):
      # AUs the BP4D renderer draws; 9 as a little of 10 (upper lip), 25/26 open
      # the mouth.
      au = {a: level[a][t] / 5 for a in (1, 2, 4, 6, 12, 15, 17)}
      au[10] = 0.5 * level[9][t] / 5
      mouth = 0.06 * level[25][t] / 5 + 0.1 * level[26][t] / 5
      canon = deform(neutral_landmarks(idn, mouth), au)
      img, lm68 = render(rng, idn, canon, au, pose, size_wh)
      img[:CODE_BLOCK, :CODE_BITS * CODE_BLOCK] = frame_code(t + 1)[..., None]
      frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[..., ::-1]),
                                         format="rgb24")
      for packet in stream.encode(frame):
        container.mux(packet)
      if s == 1 and t == 2:
        continue  # a missing landmark file, as in SN031
      name = (f"{subject}_{t:04d}_lm.mat" if s % 2 == 0 else f"l0{t:04d}_lm.mat")
      layout.write_landmarks(os.path.join(lm_dir, name),
                             lm68[keep66] + 1.0)  # MATLAB 1-based, as DISFA's
    for packet in stream.encode():
      container.mux(packet)
  for au in layout.CODED_AUS:
    with open(os.path.join(label_dir, f"{subject}_au{au}.txt"), "w") as f:
      f.write("".join(f"{t + 1},{v}\n" for t, v in enumerate(level[au])))


def to_jpeg_frames(root: str, subject: str) -> None:
  """Replaces a subject's video by its frames, `Images_LeftCamera/SNxxx/<N>.jpg`
  (N from 1): the layout of users who extracted frames (and of dummy_data/, which
  commits no video)."""
  video = layout.video_path(root, subject)
  folder = os.path.join(root, "Images_LeftCamera", subject)
  os.makedirs(folder, exist_ok=True)
  for f in media.frames(video):
    cv2.imwrite(os.path.join(folder, f"{f.index + 1}.jpg"), f.rgb[..., ::-1],
                [cv2.IMWRITE_JPEG_QUALITY, 95])
  os.remove(video)
  if not os.listdir(os.path.dirname(video)):
    os.rmdir(os.path.dirname(video))


def generate(out: str, subjects: int = 3, frames: int = 40, size_wh=(320, 240),
             seed: int = 0, progress: bool = True,
             jpeg_frames: bool = False) -> list[str]:
  """Writes the synthetic DISFA under `out` (with `jpeg_frames`, extracted frames
  instead of videos); returns the subject IDs."""
  if frames < 4:
    raise ValueError(f"--frames must be >= 4, got {frames}.")
  ids = pick_subjects(subjects)
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, SYNTHETIC_MARKER), "w") as f:
    f.write("Generated by tfds_bp4d.synthetic.disfa: rendered faces in DISFA's "
            f"layout, not DISFA. subjects={subjects} frames={frames} seed={seed}\n")
  for s, subject in enumerate(ids):
    write_subject(out, s, subject, frames, size_wh, seed)
    if jpeg_frames:
      to_jpeg_frames(out, subject)
    if progress:
      print(f"\rsynthetic DISFA: {s + 1}/{len(ids)} subjects", end="",
            file=sys.stderr, flush=True)
  if progress:
    print(f"\nsynthetic DISFA: {len(ids)} subjects x {frames} frames in {out}",
          file=sys.stderr)
  return ids


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m tfds_bp4d.synthetic.disfa",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True, help="folder to write (manual_dir)")
  parser.add_argument("--subjects", type=int, default=3)
  parser.add_argument("--frames", type=int, default=40)
  parser.add_argument("--size", type=size_arg, default=(320, 240),
                      help="WxH; DISFA's own is 1024x768")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--jpeg-frames", action="store_true",
                      help="extracted frames (Images_LeftCamera/SNxxx/<N>.jpg) "
                      "instead of videos")
  args = parser.parse_args(argv)
  try:
    generate(args.out, args.subjects, args.frames, args.size, seed=args.seed,
             jpeg_frames=args.jpeg_frames)
  except ValueError as e:
    parser.error(str(e))


if __name__ == "__main__":
  main()
