import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sfae_jax.face import action_units, schemes
from sfae_jax.models import landmark_attention as la

MAP = 44           # 176 / 4
STRIDE = 4.0
HALF = 3           # round(43 / 2 * 0.14)
SLOPE = 0.56 / (44 * 0.14)


def _cell_px(h, w):
  """Input-pixel (x, y) of the centre of map cell (h, w) (pixel i centred at i)."""
  return ((w + 0.5) * STRIDE - 0.5, (h + 0.5) * STRIDE - 0.5)


def _landmarks(points):
  """68 landmarks at a neutral spot, with the given {index: (x, y)} overrides."""
  lm = np.full((68, 2), 88.0, np.float32)
  for i, xy in points.items():
    lm[i] = xy
  return jnp.asarray(lm[None])


def _maps(lm, au_ids, scheme=schemes.IBUG68):
  centres = la.au_centres(lm, au_ids, scheme)
  return np.asarray(la.attention_maps(centres, (MAP, MAP), STRIDE))


def test_hand_placed_map_peak_falloff_and_window():
  # AU7: centres on points 38 and 43 with no offset; put them on cells (20, 10)
  # and (20, 30).
  lm = _landmarks({38: _cell_px(20, 10), 43: _cell_px(20, 30)})
  m = _maps(lm, [7])[0, 0]
  assert m.shape == (MAP, MAP)
  assert m[20, 10] == pytest.approx(1.0) and m[20, 30] == pytest.approx(1.0)
  assert m[20, 11] == pytest.approx(1 - SLOPE)
  assert m[21, 11] == pytest.approx(1 - 2 * SLOPE)
  assert m[23, 13] == pytest.approx(1 - 6 * SLOPE)        # window corner
  assert m[20, 14] == 0.0 and m[24, 10] == 0.0             # just outside window
  assert 1 - 4 * SLOPE > 0                                 # so zero is the window
  assert np.count_nonzero(m) == 2 * (2 * HALF + 1) ** 2    # two 7x7 squares


def test_max_over_the_two_centres():
  # Centres two cells apart: overlapping windows take the max, not the sum.
  lm = _landmarks({38: _cell_px(10, 10), 43: _cell_px(10, 12)})
  m = _maps(lm, [7])[0, 0]
  assert m[10, 11] == pytest.approx(1 - SLOPE)
  assert m[11, 12] == pytest.approx(1 - SLOPE)
  assert m[10, 14] == pytest.approx(1 - 2 * SLOPE)  # nearer to the second centre
  assert m.max() == pytest.approx(1.0)


def test_vertical_offsets_use_the_inner_eye_ruler():
  # ruler = |x39 - x42| = 40 px; AU1 centres are points 21/22 moved up by 20 px,
  # AU6 centres are points 41/46 moved down by 40 px.
  lm = _landmarks({39: (60.0, 80.0), 42: (100.0, 80.0), 21: (70.0, 60.0),
                   22: (106.0, 62.0), 41: (50.0, 90.0), 46: (120.0, 90.0)})
  c = np.asarray(la.au_centres(lm, [1, 6]))[0]
  np.testing.assert_allclose(c[0], [[70.0, 40.0], [106.0, 42.0]])
  np.testing.assert_allclose(c[1], [[50.0, 130.0], [120.0, 130.0]])


def test_map_matches_jaa_net_loop_on_random_landmarks():
  """Against the explicit per-cell loop, with non-integer centres."""
  lm = jax.random.uniform(jax.random.key(0), (2, 68, 2), minval=20, maxval=156)
  got = _maps(lm, action_units.BP4D)
  centres = (np.asarray(la.au_centres(lm, action_units.BP4D)) + 0.5) / STRIDE - 0.5
  want = np.zeros_like(got)
  for b, a, k in np.ndindex(2, len(action_units.BP4D), 2):
    cx, cy = centres[b, a, k]
    for h in range(MAP):
      for w in range(MAP):
        if abs(h - cy) <= HALF + 0.5 and abs(w - cx) <= HALF + 0.5:
          v = max(0.0, 1 - (abs(h - cy) + abs(w - cx)) * SLOPE)
          want[b, a, h, w] = max(want[b, a, h, w], v)
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("au_ids", [action_units.BP4D, action_units.DISFA])
def test_mirrored_landmarks_give_mirrored_maps(au_ids):
  lm = jax.random.uniform(jax.random.key(1), (3, 68, 2), minval=10, maxval=166)
  perm = schemes.get_scheme(schemes.IBUG68).flip_permutation
  mirrored = lm.at[..., 0].set(175.0 - lm[..., 0])[:, perm]  # W - 1 - x
  np.testing.assert_allclose(_maps(mirrored, au_ids), _maps(lm, au_ids)[..., ::-1],
                             atol=1e-5)


def test_49_point_scheme_gives_the_same_maps():
  lm68 = jax.random.uniform(jax.random.key(2), (2, 68, 2), minval=10, maxval=166)
  lm49 = lm68[:, np.array(schemes.get_scheme(schemes.BP4D49).from_68)]
  assert lm49.shape == (2, 49, 2)
  np.testing.assert_array_equal(_maps(lm49, action_units.BP4D, schemes.BP4D49),
                                _maps(lm68, action_units.BP4D))


def test_unknown_au_is_a_clear_error():
  with pytest.raises(ValueError, match="No AU centre rule for AU \\[5\\]"):
    la.centre_rules([1, 5])
