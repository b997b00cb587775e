"""AU centres from landmarks, and the attention maps built around them.

Centre rules (JAA-Net, written in 68-point iBUG indices, 0-based): every AU has two
mirrored centres, each a landmark shifted vertically by a multiple of the `ruler`,
the distance |x[39] - x[42]| between the inner eye corners. The rules are data
(:data:`AU_CENTRE_RULES`): adding an AU is adding a row, not a code path. Other
landmark schemes (BP4D's 49 points) go through :mod:`sfae_jax.face.schemes`.

Attention (JAA-Net): for a centre (cy, cx) in map coordinates, the weight at map cell
(h, w) is ``max(0, 1 - (|h - cy| + |w - cx|) * slope)`` inside a square window of
``half = round((map_size - 1) / 2 * spatial_ratio)`` cells either side, and 0
outside; an AU's map is the element-wise max over its two centres. Conventions chosen
here (JAA-Net rounds centres to whole cells; we keep them continuous so mirrored
landmarks give exactly mirrored maps):

* landmarks are in pixel-index coordinates (OpenCV, dlib: pixel i is centred at
  i, so a W-wide image mirrors x to W - 1 - x); map cell h (stride s) covers pixels
  [h * s, (h + 1) * s), so a point at pixel p sits at map coordinate
  (p + 0.5) / s - 0.5;
* the window holds the cells whose centre is within ``half + 0.5`` of the AU centre
  along each axis: for a centre on a cell, JAA-Net's 2 * half + 1 cells exactly;
* ``slope = fill_coeff / (map_size * spatial_ratio)`` with JAA-Net's
  ``fill_coeff = 0.56`` and ``spatial_ratio = 0.14``; map_size = max(h, w).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sfae_jax.face import schemes

# AU -> its two centres, each (68-point landmark index, vertical offset in rulers;
# negative is up). JAA-Net's rules (`ZhiwenShao/PyTorch-JAANet`, which SFAE-Net
# follows), written for the 68-point iBUG scheme, 0-based; docs/model.md.
AU_CENTRE_RULES: dict[int, tuple[tuple[int, float], tuple[int, float]]] = {
    1: ((21, -1 / 2), (22, -1 / 2)),
    2: ((18, -1 / 3), (25, -1 / 3)),
    4: ((19, 1 / 3), (24, 1 / 3)),
    6: ((41, 1.0), (46, 1.0)),
    7: ((38, 0.0), (43, 0.0)),
    9: ((32, -1 / 2), (34, -1 / 2)),
    10: ((61, 0.0), (63, 0.0)),
    12: ((48, 0.0), (54, 0.0)),
    14: ((48, 0.0), (54, 0.0)),
    15: ((48, 0.0), (54, 0.0)),
    17: ((56, 1 / 2), (58, 1 / 2)),
    23: ((51, 0.0), (57, 0.0)),
    24: ((51, 0.0), (57, 0.0)),
    25: ((51, 0.0), (57, 0.0)),
    26: ((56, 1 / 2), (58, 1 / 2)),
}
RULER_POINTS_68 = (39, 42)  # inner eye corners

FILL_COEFF = 0.56
SPATIAL_RATIO = 0.14


def centre_rules(au_ids, scheme: str = schemes.IBUG68):
  """Rule arrays for `au_ids` in `scheme`'s indices.

  Returns:
    (indices `[A, 2]` int32, offsets `[A, 2]` float32 in rulers, ruler indices `(2,)`).
  """
  unknown = [au for au in au_ids if au not in AU_CENTRE_RULES]
  if unknown:
    raise ValueError(f"No AU centre rule for AU {unknown}; known AUs: "
                     f"{sorted(AU_CENTRE_RULES)}. Add a row to AU_CENTRE_RULES.")
  idx68 = np.array([[p for p, _ in AU_CENTRE_RULES[au]] for au in au_ids])
  offsets = np.array([[o for _, o in AU_CENTRE_RULES[au]] for au in au_ids],
                     np.float32)
  return (schemes.to_scheme(idx68, scheme).astype(np.int32), offsets,
          schemes.to_scheme(np.array(RULER_POINTS_68), scheme).astype(np.int32))


def au_centres(landmarks: jax.Array, au_ids, scheme: str = schemes.IBUG68
               ) -> jax.Array:
  """AU centres from landmarks.

  Args:
    landmarks: `[B, L, 2]` (x, y) in pixels, L points of `scheme`.
    au_ids: AU numbers, e.g. `sfae_jax.face.action_units.BP4D`.
    scheme: the landmarks' scheme name.

  Returns:
    `[B, A, 2, 2]`: for every AU its two centres as (x, y) pixels.
  """
  idx, offsets, ruler_idx = centre_rules(au_ids, scheme)
  ruler = jnp.abs(landmarks[:, ruler_idx[0], 0] - landmarks[:, ruler_idx[1], 0])
  pts = landmarks[:, idx]  # [B, A, 2, 2]
  dy = offsets[None] * ruler[:, None, None]
  return pts.at[..., 1].add(dy)


def window_half_size(map_size: int, spatial_ratio: float = SPATIAL_RATIO) -> int:
  return int(round((map_size - 1) / 2 * spatial_ratio))


def attention_maps(centres: jax.Array, map_hw: tuple[int, int], stride: float, *,
                   spatial_ratio: float = SPATIAL_RATIO,
                   fill_coeff: float = FILL_COEFF) -> jax.Array:
  """Per-AU attention maps from AU centres (see the module docstring).

  Args:
    centres: `[B, A, K, 2]` (x, y) input pixels, K centres per AU (2 for JAA-Net).
    map_hw: (h, w) of the feature map the attention weighs.
    stride: input pixels per map cell.

  Returns:
    `[B, A, h, w]` in [0, 1], the max over each AU's K centres.
  """
  h, w = map_hw
  map_size = max(h, w)
  half = window_half_size(map_size, spatial_ratio)
  slope = fill_coeff / (map_size * spatial_ratio)
  c = (centres + 0.5) / stride - 0.5               # map coordinates
  dy = jnp.abs(jnp.arange(h, dtype=c.dtype)[:, None] - c[..., 1, None, None])
  dx = jnp.abs(jnp.arange(w, dtype=c.dtype)[None, :] - c[..., 0, None, None])
  weight = jnp.maximum(0.0, 1.0 - (dy + dx) * slope)
  inside = (dy <= half + 0.5) & (dx <= half + 0.5)
  return jnp.max(jnp.where(inside, weight, 0.0), axis=2)  # max over centres
