"""Landmark schemes: the 68-point iBUG scheme, BP4D's 49-point subset and DISFA's 66.

All indices are 0-based. The 68-point scheme is the reference: rules elsewhere in
the package (AU centres, alignment) are written in 68-point indices and mapped to
another scheme with :func:`to_scheme`.

The 49-point scheme (BP4D's own tracker, used by JAA-Net) is the 68-point scheme
without the jaw (0-16) and the inner mouth corners (60, 64): 49-index k is
68-index k + 17 for k <= 42, and 43..48 are 68-indices 61, 62, 63, 65, 66, 67.
"""

from __future__ import annotations

import dataclasses

import numpy as np

IBUG68 = "ibug68"
BP4D49 = "bp4d49"
DISFA66 = "disfa66"

# 68-point indices kept by the 49-point scheme, in 49-point order.
_49_FROM_68 = tuple(range(17, 60)) + (61, 62, 63, 65, 66, 67)
# DISFA's 66 points: the 68 without the inner mouth corners 60 and 64. Its 49-point
# subset (the 66 without the jaw) is exactly the 49-point scheme above.
_66_FROM_68 = tuple(i for i in range(68) if i not in (60, 64))

# Mirror pairs of the 68-point scheme (a subject's left <-> right). Points on the
# vertical midline (nose ridge 27-30, 33, lip centres 51, 57, 62, 66, chin 8) map to
# themselves.
_MIRROR_PAIRS_68 = (
    *((i, 16 - i) for i in range(8)),            # jaw
    *((17 + i, 26 - i) for i in range(5)),       # brows
    (31, 35), (32, 34),                          # nostrils
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
    (48, 54), (49, 53), (50, 52), (59, 55), (58, 56),            # outer lips
    (60, 64), (61, 63), (67, 65),                                # inner lips
)


def _flip_permutation_68() -> np.ndarray:
  perm = np.arange(68)
  for a, b in _MIRROR_PAIRS_68:
    perm[a], perm[b] = b, a
  return perm


@dataclasses.dataclass(frozen=True)
class LandmarkScheme:
  """A landmark scheme: its size and how its indices relate to the 68-point one."""
  name: str
  num_points: int
  from_68: tuple[int, ...]  # from_68[k] = 68-point index of this scheme's point k

  def index(self, idx68: int) -> int:
    """This scheme's index of 68-point index `idx68` (ValueError if it has none)."""
    try:
      return self.from_68.index(idx68)
    except ValueError:
      raise ValueError(
          f"68-point landmark {idx68} has no counterpart in the {self.name} scheme "
          f"(it keeps 68-point indices {self.from_68[0]}..{self.from_68[-1]} "
          "minus the jaw and inner mouth corners).") from None

  @property
  def flip_permutation(self) -> np.ndarray:
    """perm such that mirrored_landmarks = flip_x(landmarks)[perm]."""
    perm68 = _flip_permutation_68()
    return np.array([self.index(int(perm68[i])) for i in self.from_68])

  @property
  def left_eye(self) -> tuple[int, ...]:
    """Six points of the eye on the image's left (the subject's right), 68: 36-41."""
    return tuple(self.index(i) for i in range(36, 42))

  @property
  def right_eye(self) -> tuple[int, ...]:
    """Six points of the eye on the image's right, 68: 42-47."""
    return tuple(self.index(i) for i in range(42, 48))


SCHEMES = {
    IBUG68: LandmarkScheme(IBUG68, 68, tuple(range(68))),
    BP4D49: LandmarkScheme(BP4D49, 49, _49_FROM_68),
    DISFA66: LandmarkScheme(DISFA66, 66, _66_FROM_68),
}


def convert(landmarks: np.ndarray, source: str, target: str) -> np.ndarray:
  """Landmarks `[..., source points, 2]` in the `target` scheme, which must be a
  subset of `source` (e.g. DISFA's 66 -> the 49-point scheme)."""
  src, dst = get_scheme(source), get_scheme(target)
  return np.asarray(landmarks)[..., [src.index(i) for i in dst.from_68], :]


def of_dataset_config(name: str) -> str:
  """The landmark scheme a builder config produces when no build records it:
  'ibug68', 'bp4d49' and 'disfa66' are schemes; 'disfa49' (DISFA's 66 less the
  jaw) is the 49-point one."""
  return name if name in SCHEMES else BP4D49


def get_scheme(name: str) -> LandmarkScheme:
  try:
    return SCHEMES[name]
  except KeyError:
    raise ValueError(f"Unknown landmark scheme {name!r}; choose one of "
                     f"{sorted(SCHEMES)}.") from None


def to_scheme(indices68, scheme: str) -> np.ndarray:
  """Maps an array of 68-point indices to `scheme`'s indices."""
  s = get_scheme(scheme)
  arr = np.asarray(indices68)
  return np.vectorize(s.index, otypes=[np.int32])(arr) if arr.size else arr


def eye_centre_distance(landmarks, scheme: str):
  """`[B]` distance between the eye centres, each the mean of the eye's six points
  (68-point 36-41 and 42-47): JAA-Net's landmark-loss normaliser ("biocular").
  NumPy or JAX arrays alike (operators only): this package imports no JAX, so
  that face-detection worker processes start without it."""
  s = get_scheme(scheme)
  left = landmarks[:, [s.index(i) for i in range(36, 42)]].mean(axis=1)
  right = landmarks[:, [s.index(i) for i in range(42, 48)]].mean(axis=1)
  return (((left - right) ** 2).sum(axis=-1)) ** 0.5
