import cv2
import numpy as np
import pytest

from sfae_jax.face import align, schemes
from tfds_bp4d.synthetic.face import Identity, neutral_landmarks


def _face68(seed=0, size=300.0):
  lm = neutral_landmarks(Identity.sample(np.random.default_rng(seed)))
  return lm * 60 + size / 2


def _similarity(theta, scale, tx, ty):
  c, s = np.cos(theta), np.sin(theta)
  return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def _compose(a, b):  # a after b
  return (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2]


@pytest.mark.parametrize("theta,scale", [(0.3, 1.7), (-0.25, 0.6), (0.0, 1.0)])
def test_alignment_recovers_a_known_similarity(theta, scale):
  lm = _face68()
  S = _similarity(theta, scale, 40.0, -25.0)
  moved = align.transform_points(lm, S)
  m0, m1 = align.alignment_matrix(lm), align.alignment_matrix(moved)
  # Aligning the moved face undoes the move: M1 = M0 . S^-1, so M1^-1 . M0 = S.
  np.testing.assert_allclose(_compose(align.invert_affine(m1), m0), S, atol=1e-6)


def test_aligned_face_is_level_centred_and_sized():
  lm = align.transform_points(_face68(), _similarity(0.2, 1.3, 10, 5))
  m = align.alignment_matrix(lm)
  out = align.transform_points(lm, m)
  s = schemes.get_scheme(schemes.IBUG68)
  left, right = out[list(s.left_eye)].mean(0), out[list(s.right_eye)].mean(0)
  assert left[1] == pytest.approx(right[1], abs=1e-6)        # eyes level
  anchors = np.vstack([left, right, out[[30, 48, 54]]])
  lo, hi = anchors.min(0), anchors.max(0)
  np.testing.assert_allclose((lo + hi) / 2, [99.5, 99.5], atol=1e-6)
  assert max(hi - lo) * 2.9 == pytest.approx(200.0)


def test_landmark_round_trip_and_pixels_follow_the_matrix():
  lm = _face68(seed=3)
  image = np.full((300, 300, 3), 60, np.uint8)
  x, y = np.round(lm[30]).astype(int)  # a bright dot on the nose tip
  image[y - 1:y + 2, x - 1:x + 2] = 255
  face = align.align_face(image, lm)
  back = align.transform_points(face.landmarks, align.invert_affine(face.matrix))
  np.testing.assert_allclose(back, lm, atol=1e-3)
  peak = np.unravel_index(face.image[..., 0].argmax(), face.image.shape[:2])
  want = align.transform_points(np.array([x, y], float), face.matrix)
  assert abs(peak[1] - want[0]) <= 1 and abs(peak[0] - want[1]) <= 1
  assert face.image.shape == (200, 200, 3)


def test_outside_the_source_is_grey():
  lm = _face68(seed=6)
  lm = lm - lm.min(axis=0) + 2  # face in the image's top-left corner
  face = align.align_face(np.zeros((300, 300, 3), np.uint8), lm)
  assert np.all(face.image[0, 0] == 128) and np.all(face.image[199, 199] == 0)


def test_49_point_alignment_equals_68_point():
  lm68 = _face68(seed=4)
  lm49 = lm68[list(schemes.get_scheme(schemes.BP4D49).from_68)]
  np.testing.assert_allclose(align.alignment_matrix(lm49, schemes.BP4D49),
                             align.alignment_matrix(lm68), atol=1e-9)


def test_flip_is_an_involution_and_matches_mirrored_pixels():
  lm = _face68(seed=5)
  flipped = align.flip_landmarks(lm, 300)
  np.testing.assert_allclose(align.flip_landmarks(flipped, 300), lm)
  # The subject's left eye (36-41) lies where the right eye (42-47) was mirrored.
  np.testing.assert_allclose(flipped[36:42].mean(0)[0], 299 - lm[42:48].mean(0)[0])
  image = np.zeros((300, 300, 3), np.uint8)
  x, y = np.round(lm[36]).astype(int)
  image[y, x] = 255
  mirrored = cv2.flip(image, 1)
  py, px = np.argwhere(mirrored[..., 0] == 255)[0]
  np.testing.assert_allclose(flipped[45], [px, py], atol=0.5)  # 36 <-> 45


def test_bad_landmarks_are_a_clear_error():
  with pytest.raises(ValueError, match="finite landmarks"):
    align.alignment_matrix(np.full((68, 2), np.nan))


def test_hand_computed_alignment_of_fixed_landmarks():
  """JAA-Net's rule worked by hand (REFERENCE.md): eye centres (100, 100) and
  (140, 100), nose tip (120, 130), mouth corners (105, 150), (135, 150). Level
  already; the anchors' box is x 100..140, y 100..150, so its centre is
  (120, 125) and its larger side 50: the output box is 2.9 * 50 = 145 px wide,
  scale 200 / 145, centred on pixel 99.5 (pixel i centred at i)."""
  lm = np.full((68, 2), 120.0)
  lm[36:42] = (100.0, 100.0)      # one eye's six points (their mean matters)
  lm[42:48] = (140.0, 100.0)
  lm[30], lm[48], lm[54] = (120.0, 130.0), (105.0, 150.0), (135.0, 150.0)
  lm[36] += (-3.0, 1.0)           # the mean stays (100, 100)
  lm[39] += (3.0, -1.0)
  m = align.alignment_matrix(lm)
  s = 200 / 145
  np.testing.assert_allclose(m, [[s, 0, 99.5 - 120 * s], [0, s, 99.5 - 125 * s]],
                             atol=1e-9)
  out = align.transform_points(np.array([[100.0, 100.0], [135.0, 150.0]]), m)
  np.testing.assert_allclose(out, [[99.5 - 20 * s, 99.5 - 25 * s],
                                   [99.5 + 15 * s, 99.5 + 25 * s]], atol=1e-9)
  # the same face turned 90 degrees about the origin aligns to the same points
  turned = np.stack([-lm[:, 1], lm[:, 0]], 1)
  np.testing.assert_allclose(
      align.transform_points(turned, align.alignment_matrix(turned)),
      align.transform_points(lm, m), atol=1e-9)
