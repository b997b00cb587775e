"""Draws a synthetic face frame with OpenCV: skin, hair, eyes, brows, nose, lips,
creases, glasses, then lighting gradient, blur, sensor noise (JPEG happens at write)."""

from __future__ import annotations

import cv2
import numpy as np

from tfds_bp4d.synthetic.face import Identity, Pose, creases

_SHIFT = 4  # sub-pixel drawing precision (2**4)
_AA = cv2.LINE_AA


def _i(pts) -> np.ndarray:
  return np.round(np.asarray(pts) * (1 << _SHIFT)).astype(np.int32)


def _poly(img, pts, colour):
  cv2.fillPoly(img, [_i(pts)], colour, _AA, _SHIFT)


def _line(img, pts, colour, thick):
  cv2.polylines(img, [_i(pts)], False, colour, max(1, int(round(thick))), _AA, _SHIFT)


def _head_outline(canon: np.ndarray, idn: Identity) -> np.ndarray:
  t = np.linspace(0, np.pi, 24)
  top = np.c_[idn.face_w * np.cos(t), -0.15 - 1.2 * np.sin(t)]
  return np.vstack([canon[:17], top[1:-1]])


def _background(rng, h, w):
  base = rng.uniform(40, 220, 3)
  gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
  tilt = rng.normal(0, 40, 2)
  img = base + (gx / w - .5)[..., None] * tilt[0] + (gy / h - .5)[..., None] * tilt[1]
  return np.clip(img, 0, 255).astype(np.uint8)


def render(rng: np.random.Generator, idn: Identity, canon: np.ndarray, au: dict,
           pose: Pose, size_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """Returns (BGR uint8 image `[H, W, 3]`, 68 landmarks in image pixels)."""
  w, h = size_wh
  img = _background(rng, h, w)
  P = pose.apply
  lm = P(canon)
  unit = pose.scale
  outline = P(_head_outline(canon, idn))
  if idn.hair_style == 2:  # long hair behind the head
    _poly(img, P(np.r_[_head_outline(canon, idn)[17:] * [1.25, 1.1],
                       [[1.3, 1.3], [-1.3, 1.3]]]), idn.hair)
  neck = P(np.array([[-0.45, 0.8], [0.45, 0.8], [0.55, 2.5], [-0.55, 2.5]]))
  _poly(img, neck, tuple(0.8 * c for c in idn.skin))
  _poly(img, outline, idn.skin)
  if idn.hair_style > 0:  # hair on top down to a hairline
    t = np.linspace(0, np.pi, 20)
    cap = np.c_[1.05 * idn.face_w * np.cos(t), -0.15 - 1.3 * np.sin(t)]
    hairline = np.c_[np.linspace(-idn.face_w, idn.face_w, 9),
                     -0.95 + 0.08 * np.cos(np.linspace(-2, 2, 9))]
    _poly(img, P(np.r_[cap, hairline]), idn.hair)
  # Creases darken the skin: drawn as a darkness layer, applied multiplicatively.
  dark = np.zeros((h, w), np.uint8)
  for line, strength in creases(canon, au):
    if strength > 0.02:
      _line(dark, P(line), int(min(1.0, strength) * 255), 0.022 * unit)
  dark = cv2.GaussianBlur(dark, (0, 0), max(0.6, 0.006 * unit))
  img = (img * (1 - 0.5 * dark[..., None] / 255.0)).astype(np.uint8)
  for eye in (lm[36:42], lm[42:48]):
    _poly(img, eye, (225, 230, 235))
    mask = np.zeros((h, w), np.uint8)
    _poly(mask, eye, 255)
    iris = np.zeros_like(img)
    centre = eye.mean(axis=0)
    r = 0.55 * np.linalg.norm(eye[3] - eye[0]) / 2
    cv2.circle(iris, tuple(_i(centre)), int(r * (1 << _SHIFT)), idn.iris, -1, _AA,
               _SHIFT)
    cv2.circle(iris, tuple(_i(centre)), int(0.45 * r * (1 << _SHIFT)), (10, 10, 10),
               -1, _AA, _SHIFT)
    inside = (mask > 0) & iris.any(axis=-1)
    img[inside] = iris[inside]
    _line(img, eye[[0, 1, 2, 3]], (30, 30, 40), 0.02 * unit)
    _line(img, eye[[3, 4, 5, 0]], (60, 60, 80), 0.008 * unit)
  for brow in (lm[17:22], lm[22:27]):
    _line(img, brow, idn.hair, idn.brow_thick * unit)
  nose_shadow = tuple(0.75 * c for c in idn.skin)
  _line(img, lm[[27, 28, 29, 30]] + [0.04 * unit, 0], nose_shadow, 0.012 * unit)
  _line(img, lm[31:36], nose_shadow, 0.015 * unit)
  for k in (32, 34):
    cv2.ellipse(img, tuple(_i(lm[k])), (int(.035 * unit * 16), int(.02 * unit * 16)),
                0, 0, 360, (35, 35, 50), -1, _AA, _SHIFT)
  _poly(img, lm[48:60], idn.lips)
  if np.linalg.norm(lm[66] - lm[62]) > 0.01 * unit:
    _poly(img, lm[60:68], (40, 30, 60))
  _line(img, lm[[48, 60, 61, 62, 63, 64, 54]], (50, 40, 90), 0.012 * unit)
  if idn.glasses:
    for eye in (lm[36:42], lm[42:48]):
      c = eye.mean(axis=0)
      box = cv2.boxPoints(((float(c[0]), float(c[1] + .02 * unit)),
                           (0.42 * unit, 0.26 * unit), float(np.degrees(pose.roll))))
      cv2.polylines(img, [_i(box)], True, (20, 20, 20), max(1, int(.015 * unit)),
                    _AA, _SHIFT)
    _line(img, np.array([lm[39], lm[42]]) - [0, 0.02 * unit], (20, 20, 20),
          0.015 * unit)
  return _finish(rng, img), lm


def _finish(rng, img):
  h, w = img.shape[:2]
  angle = rng.uniform(0, 2 * np.pi)
  gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
  ramp = ((gx / w - .5) * np.cos(angle) + (gy / h - .5) * np.sin(angle))
  light = 1.0 + rng.uniform(0.1, 0.5) * ramp
  out = cv2.GaussianBlur(img.astype(np.float32) * light[..., None], (0, 0), 0.7)
  out += rng.normal(0, rng.uniform(1.5, 5.0), out.shape).astype(np.float32)
  return np.clip(out, 0, 255).astype(np.uint8)
