"""Face alignment by JAA-Net's similarity transform, and mirror flips.

Coordinates are pixel indices (OpenCV, dlib): pixel (row i, column j) is centred at
(x=j, y=i). BP4D's MATLAB landmarks are 1-based and need 1 subtracted first.

Alignment (JAA-Net): eye centres = mean of each eye's six points; rotate so the eye
line is horizontal; take the bounding box of (both eye centres, nose tip, mouth
corners) after rotation; half size = 0.5 * 2.9 * the box's larger side; scale and
shift so that box fills the `out_size` square, its centre on the output's centre
((out_size - 1) / 2); the border is filled with grey 128. Landmarks go through the
same 2x3 matrix.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from sfae_jax.face import schemes

ALIGNED_SIZE = 200
ENLARGE = 2.9
BORDER_GREY = 128


@dataclasses.dataclass(frozen=True)
class AlignedFace:
  image: np.ndarray      # [out, out, 3] uint8
  landmarks: np.ndarray  # [L, 2] float32, aligned pixel coordinates
  matrix: np.ndarray     # [2, 3] float64, original -> aligned pixels


def _anchor_points(landmarks: np.ndarray, scheme: str) -> np.ndarray:
  s = schemes.get_scheme(scheme)
  lm = np.asarray(landmarks, np.float64)
  left = lm[list(s.left_eye)].mean(axis=0)
  right = lm[list(s.right_eye)].mean(axis=0)
  others = lm[[s.index(30), s.index(48), s.index(54)]]  # nose tip, mouth corners
  return np.vstack([left, right, others])


def alignment_matrix(landmarks: np.ndarray, scheme: str = schemes.IBUG68,
                     out_size: int = ALIGNED_SIZE, enlarge: float = ENLARGE
                     ) -> np.ndarray:
  """The `[2, 3]` similarity matrix taking original pixels to aligned pixels."""
  lm = np.asarray(landmarks)
  if lm.ndim != 2 or lm.shape[1] != 2 or not np.all(np.isfinite(lm)):
    raise ValueError(f"alignment needs finite landmarks [L, 2], got shape "
                     f"{lm.shape}{'' if np.all(np.isfinite(lm)) else ' with NaN/inf'}.")
  anchors = _anchor_points(lm, scheme)
  dx, dy = anchors[1] - anchors[0]
  angle = np.arctan2(dy, dx)
  c, s = np.cos(angle), np.sin(angle)
  rot = np.array([[c, s], [-s, c]])  # rotates the eye line onto +x
  turned = anchors @ rot.T
  lo, hi = turned.min(axis=0), turned.max(axis=0)
  half = 0.5 * enlarge * float(np.max(hi - lo))
  if half <= 0:
    raise ValueError("alignment anchors are degenerate (all at one point).")
  scale = out_size / (2.0 * half)
  shift = (out_size - 1) / 2.0 - scale * (lo + hi) / 2.0
  return np.hstack([scale * rot, shift[:, None]])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
  """Applies a `[2, 3]` affine matrix to `[..., 2]` points."""
  pts = np.asarray(points, np.float64)
  return pts @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
  return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def align_face(image: np.ndarray, landmarks: np.ndarray,
               scheme: str = schemes.IBUG68, out_size: int = ALIGNED_SIZE,
               enlarge: float = ENLARGE) -> AlignedFace:
  """Warps `image` (`[H, W, 3]` uint8) to an aligned `out_size` square face."""
  matrix = alignment_matrix(landmarks, scheme, out_size, enlarge)
  warped = cv2.warpAffine(image, matrix, (out_size, out_size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(BORDER_GREY,) * 3)
  return AlignedFace(warped, transform_points(landmarks, matrix).astype(np.float32),
                     matrix)


def interocular_distance(landmarks: np.ndarray, scheme: str = schemes.IBUG68
                         ) -> float:
  """Distance between the outer eye corners (68-point 36 and 45)."""
  s = schemes.get_scheme(scheme)
  lm = np.asarray(landmarks, np.float64)
  return float(np.linalg.norm(lm[s.index(36)] - lm[s.index(45)]))


def flip_landmarks(landmarks: np.ndarray, width: int,
                   scheme: str = schemes.IBUG68) -> np.ndarray:
  """Landmarks of the horizontally mirrored image: x -> width - 1 - x, re-indexed
  so that every index keeps its meaning (the subject's left eye stays point 36)."""
  lm = np.array(landmarks, copy=True)
  lm[..., 0] = width - 1 - lm[..., 0]
  return lm[..., schemes.get_scheme(scheme).flip_permutation, :]
