"""AU labels of the synthetic BP4D: a temporal latent process per task.

Each AU has a latent z_t, stationary N(0, 1): z = rho * (shared factor) +
sqrt(1 - rho^2) * (own component), every component an AR(1) with coefficient `phi`,
so AUs persist over frames and the usual pairs co-occur (1+2, 6+12+10, 17+24). The
AU is present when z exceeds the normal quantile of BP4D's base rate, so marginal
rates match BP4D's. The rendered intensity is sigmoid(6 * (z - threshold)): 0.5 at
the threshold, so near-threshold frames look alike whichever side they fall.

The intensity code (0-5, as FACS coders give it) follows from the same drive: 0
where the AU is absent, and where present 1 + the number of `INTENSITY_STEPS` the
rendered intensity exceeds, so a stronger code is a stronger rendered movement.
It draws no random numbers: the occurrence labels and the frames of a seed are
what they were before intensity codes existed.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from tfds_bp4d.bp4d.layout import AUS  # the one list, BP4D's 12
BASE_RATES = {1: .211, 2: .171, 4: .203, 6: .461, 7: .549, 10: .594, 12: .562,
              14: .466, 15: .169, 17: .343, 23: .165, 24: .151}
# Shared latent factors: (AUs, loading rho).
FACTORS = (((1, 2), 0.85), ((6, 12, 10), 0.75), ((17, 24), 0.7))
INTENSITY_SLOPE = 6.0
# Rendered intensity (0.5 at the occurrence threshold) at which codes 2..5 begin.
INTENSITY_STEPS = (0.7, 0.85, 0.93, 0.97)


def intensity_codes(occurrence: np.ndarray, rendered: np.ndarray) -> np.ndarray:
  """FACS-style codes `[n, A]` int8: 0 where absent, 1..5 by the rendered
  intensity where present, 9 where the occurrence is not coded (9)."""
  level = 1 + (rendered[..., None] > np.asarray(INTENSITY_STEPS)).sum(-1)
  codes = np.where(occurrence == 1, level, 0).astype(np.int8)
  codes[occurrence == 9] = 9
  return codes


def ar1(rng, n: int, phi: float, k: int) -> np.ndarray:
  """k independent stationary AR(1) N(0, 1) series of length n: `[n, k]`."""
  z = np.empty((n, k))
  z[0] = rng.standard_normal(k)
  eps = rng.standard_normal((n, k)) * np.sqrt(1 - phi ** 2)
  for t in range(1, n):
    z[t] = phi * z[t - 1] + eps[t]
  return z


def sample_task(rng: np.random.Generator, n_frames: int, phi: float = 0.85,
                unknown_prob: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
  """One task's labels.

  Returns:
    occurrence `[n_frames, 12]` int8 in {0, 1, 9} (9: not coded), and intensity
    `[n_frames, 12]` float in (0, 1) for rendering.
  """
  own = ar1(rng, n_frames, phi, len(AUS))
  shared = ar1(rng, n_frames, phi, len(FACTORS))
  z = own.copy()
  for f, (aus, rho) in enumerate(FACTORS):
    for au in aus:
      i = AUS.index(au)
      z[:, i] = rho * shared[:, f] + np.sqrt(1 - rho ** 2) * own[:, i]
  thresholds = ndtri(1 - np.array([BASE_RATES[a] for a in AUS]))
  occ = (z > thresholds).astype(np.int8)
  intensity = 1 / (1 + np.exp(-INTENSITY_SLOPE * (z - thresholds)))
  if rng.random() < unknown_prob:  # a short stretch a coder left uncoded
    i, start = rng.integers(len(AUS)), rng.integers(n_frames)
    occ[start:start + rng.integers(1, 6), i] = 9
  return occ, intensity
