"""Procedural faces from 68 landmarks, with AUs deforming them where FACS says.

Geometry lives in a canonical face frame (x right, y down, the inner eye corners
about 0.6 apart); an `Identity` sets a subject's proportions and look; `deform`
moves landmarks (and sets the strength of creases) for 12 AU intensities in [0, 1];
`Pose` maps the canonical frame into the image (roll, scale, translation, mild yaw);
`render` draws the face with OpenCV. The labels come from `labels`.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from tfds_bp4d.bp4d.layout import AUS  # the one list, BP4D's 12


@dataclasses.dataclass(frozen=True)
class Identity:
  face_w: float; face_h: float; eye_dx: float; eye_w: float; eye_h: float
  brow_y: float; brow_thick: float; nose_len: float; mouth_w: float; mouth_y: float
  lip_h: float; skin: tuple; hair: tuple; lips: tuple; iris: tuple
  hair_style: int; glasses: bool

  @staticmethod
  def sample(rng: np.random.Generator) -> "Identity":
    tone = rng.uniform(0.25, 1.0)
    skin = tuple(float(c) for c in np.array([95, 140, 200]) * (0.45 + 0.55 * tone)
                 + rng.normal(0, 6, 3))  # BGR
    hair = tuple(float(c) for c in rng.uniform(15, 110) * np.array([0.8, 0.9, 1.0]))
    lips = tuple(float(c) for c in np.array(skin) * np.array([0.75, 0.62, 1.05]))
    return Identity(
        face_w=rng.uniform(0.88, 1.05), face_h=rng.uniform(1.15, 1.35),
        eye_dx=rng.uniform(0.42, 0.48), eye_w=rng.uniform(0.28, 0.34),
        eye_h=rng.uniform(0.10, 0.13), brow_y=rng.uniform(-0.58, -0.52),
        brow_thick=rng.uniform(0.04, 0.07), nose_len=rng.uniform(0.55, 0.65),
        mouth_w=rng.uniform(0.62, 0.76), mouth_y=rng.uniform(0.58, 0.66),
        lip_h=rng.uniform(0.10, 0.14), skin=skin, hair=hair, lips=lips,
        iris=tuple(float(c) for c in rng.uniform(30, 120, 3)),
        hair_style=int(rng.integers(3)), glasses=bool(rng.random() < 0.3))


def neutral_landmarks(idn: Identity, mouth_open: float = 0.0) -> np.ndarray:
  """The subject's neutral 68 points (iBUG order) in the canonical frame."""
  p = np.zeros((68, 2))
  t = np.pi * np.arange(17) / 16
  p[:17] = np.c_[-idn.face_w * np.cos(t), -0.15 + idn.face_h * np.sin(t)]
  k = np.arange(5)
  bx = -0.82 + 0.15 * k
  by = idn.brow_y - 0.07 * np.sin(np.pi * (k + 0.5) / 5)
  p[17:22] = np.c_[bx, by]
  p[22:27] = np.c_[-bx[::-1], by[::-1]]
  p[27:31] = np.c_[np.zeros(4), np.linspace(-0.35, -0.35 + idn.nose_len, 4)]
  ny = -0.35 + idn.nose_len + 0.12
  p[31:36] = np.c_[np.linspace(-0.17, 0.17, 5), ny + np.array([0, .02, .03, .02, 0])]
  cy, w, h = -0.25, idn.eye_w, idn.eye_h
  ex = np.array([-w / 2, -w / 6, w / 6, w / 2, w / 6, -w / 6])
  ey = np.array([0, -h / 2, -h / 2, 0, h / 2, h / 2]) + cy
  p[36:42] = np.c_[-idn.eye_dx + ex, ey]
  p[42:48] = np.c_[idn.eye_dx - ex[[3, 2, 1, 0, 5, 4]], ey[[3, 2, 1, 0, 5, 4]]]
  mw, my, uh, lh = idn.mouth_w / 2, idn.mouth_y, idn.lip_h, idn.lip_h * 1.15
  gap = mouth_open * 0.5
  p[48:60] = np.c_[
      mw * np.array([-1, -.66, -.25, 0, .25, .66, 1, .66, .25, 0, -.25, -.66]),
      my + np.array([0, -.8 * uh, -uh, -.85 * uh, -uh, -.8 * uh,
                     0, .8 * lh + gap, lh + gap, lh + gap, lh + gap, .8 * lh + gap])]
  p[60:68] = np.c_[mw * np.array([-.85, -.33, 0, .33, .85, .33, 0, -.33]),
                   my + np.array([0, -.1 * uh, -.1 * uh, -.1 * uh, 0,
                                  gap, gap, gap])]
  return p


def _move(p, idx, dx=0.0, dy=0.0, a=1.0):
  p[list(idx), 0] += dx * a
  p[list(idx), 1] += dy * a


def deform(p: np.ndarray, au: dict) -> np.ndarray:
  """Moves neutral landmarks for AU intensities `au` ({AU: [0, 1]}); returns a copy."""
  p = p.copy()
  inner = np.array([0, .2, .45, .75, 1.0])
  a = au.get
  for w, i in zip(inner, range(17, 22)):            # AU1 inner / AU2 outer brow
    for j in (i, 43 - i):                            # 17<->26 ... 21<->22
      _move(p, [j], dy=-0.13 * (w * a(1, 0) + (1 - w) * a(2, 0)))
  _move(p, range(17, 27), dy=0.08, a=a(4, 0))       # AU4 brows down and together
  _move(p, [20, 21], dx=0.05, a=a(4, 0)); _move(p, [22, 23], dx=-0.05, a=a(4, 0))
  _move(p, [40, 41, 46, 47], dy=-0.03, a=a(6, 0))   # AU6 lower lid + cheek up
  _move(p, [1, 2, 3, 13, 14, 15], dy=-0.04, a=a(6, 0))
  _move(p, [40, 41, 46, 47], dy=-0.04, a=a(7, 0))   # AU7 lids tighten
  _move(p, [37, 38, 43, 44], dy=0.02, a=a(7, 0))
  _move(p, [49, 50, 51, 52, 53, 61, 62, 63], dy=-0.07, a=a(10, 0))  # AU10
  _move(p, [31], dx=-0.02, a=a(10, 0)); _move(p, [35], dx=0.02, a=a(10, 0))
  for side, c, ic, nb in ((-1, 48, 60, (49, 59)), (1, 54, 64, (53, 55))):
    _move(p, [c], dx=0.07 * side, dy=-0.08, a=a(12, 0))   # AU12 corners up/out
    _move(p, [ic], dx=0.05 * side, dy=-0.06, a=a(12, 0))
    _move(p, nb, dy=-0.03, a=a(12, 0))
    _move(p, [c, ic], dx=-0.035 * side, a=a(14, 0))       # AU14 corners in
    _move(p, [c], dy=0.08, a=a(15, 0)); _move(p, [ic], dy=0.06, a=a(15, 0))
    _move(p, nb, dy=0.025, a=a(15, 0))
    _move(p, [c], dx=-0.025 * side, a=a(23, 0))           # AU23 narrower
  _move(p, [7, 8, 9], dy=-0.06, a=a(17, 0))          # AU17 chin + lower lip up
  _move(p, [6, 10], dy=-0.03, a=a(17, 0))
  _move(p, range(55, 60), dy=-0.045, a=a(17, 0)); _move(p, [65, 66, 67], dy=-.03,
                                                         a=a(17, 0))
  _move(p, range(49, 54), dy=0.04, a=a(23, 0))       # AU23 red of the lips thinner
  _move(p, range(55, 60), dy=-0.04, a=a(23, 0))
  _move(p, range(49, 54), dy=0.03, a=a(24, 0))       # AU24 lips pressed
  _move(p, range(55, 60), dy=-0.05, a=a(24, 0))
  _move(p, range(65, 68), dy=-0.05, a=a(24, 0))
  return p


def creases(p: np.ndarray, au: dict) -> list[tuple[np.ndarray, float]]:
  """Wrinkle polylines (canonical frame) and their darkness, placed by landmarks."""
  a = au.get
  out = []
  ruler = abs(p[42, 0] - p[39, 0])
  for k in range(3):                                  # forehead lines, AU1 / AU2
    y = p[19, 1] - ruler * (0.35 + 0.18 * k)
    out.append((np.array([[-0.25, y], [0, y - 0.02], [0.25, y]]), 0.8 * a(1, 0)))
    for s in (-1, 1):
      out.append((np.array([[s * 0.75, y], [s * 0.45, y - 0.03]]), 0.8 * a(2, 0)))
  for s in (-1, 1):
    gx = s * 0.06                                    # AU4 glabella lines
    out.append((np.array([[gx, p[21, 1] - 0.12], [gx * 0.8, p[21, 1] + 0.12]]),
                a(4, 0)))
    eye_outer = p[36] if s < 0 else p[45]            # AU6 crow's feet
    for dy in (-0.06, 0.0, 0.06):
      out.append((np.array([eye_outer + [s * .05, 0], eye_outer + [s * .17, dy * 1.8]]),
                  a(6, 0)))
    lid = p[[41, 40]] if s < 0 else p[[47, 46]]      # AU6/AU7 lower-lid bulge
    out.append((lid + [0, 0.05], 0.6 * max(a(6, 0), a(7, 0))))
    wing, corner = (p[31], p[48]) if s < 0 else (p[35], p[54])  # nasolabial fold
    out.append((np.array([wing + [s * .03, 0], (wing + corner) / 2 + [s * .1, 0],
                          corner + [s * .1, .06]]),
                0.25 + 0.5 * a(10, 0) + 0.4 * a(12, 0)))
    out.append((np.array([corner + [s * .04, -.03], corner + [s * .06, .03]]),
                a(14, 0)))                           # AU14 dimples
  chin = p[8]
  for dx in (-0.1, 0.0, 0.1):                        # AU17 chin texture
    out.append((np.array([chin + [dx, -0.2], chin + [dx + 0.04, -0.16]]), a(17, 0)))
  out.append((p[[58, 57, 56]] + [0, 0.07], 0.3 + 0.5 * a(17, 0)))
  out.append((p[[49, 50, 51, 52, 53]] - [0, 0.04], a(24, 0)))    # AU24 bulges
  out.append((p[[59, 58, 57, 56, 55]] + [0, 0.03], a(24, 0)))
  for dx in (-0.12, 0.0, 0.12):                      # AU23 vertical lip lines
    out.append((np.array([[dx, p[51, 1] + 0.01], [dx, p[57, 1] - 0.01]]),
                0.7 * a(23, 0)))
  return out


@dataclasses.dataclass(frozen=True)
class Pose:
  roll: float; scale: float; cx: float; cy: float; yaw: float

  def apply(self, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64)
    depth = 0.6 * np.sqrt(np.clip(1 - (pts[..., 0] / 1.1) ** 2, 0, 1))
    x = pts[..., 0] * np.cos(self.yaw) + depth * np.sin(self.yaw)
    c, s = np.cos(self.roll), np.sin(self.roll)
    xy = np.stack([c * x - s * pts[..., 1], s * x + c * pts[..., 1]], -1)
    return xy * self.scale + [self.cx, self.cy]
