"""On-device augmentation: images and landmarks move together."""

import jax
import jax.numpy as jnp
import numpy as np

from sfae_jax.data import augment
from sfae_jax.face import align, schemes


def _faces(b=6, size=200, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8)
  landmarks = rng.uniform(30, size - 30, (b, 49, 2)).astype(np.float32)
  return images, landmarks


def test_centre_crop_is_an_exact_crop_and_shifts_landmarks():
  images, lms = _faces()
  spec = augment.AugmentSpec(crop=176, size=176, scheme=schemes.BP4D49)
  out, out_lms = augment.centre_crop(images, lms, spec)
  np.testing.assert_allclose(np.asarray(out), images[:, 12:188, 12:188], atol=1e-3)
  np.testing.assert_allclose(np.asarray(out_lms), lms - 12, atol=1e-4)


def test_flip_mirrors_pixels_and_reindexes_landmarks():
  images, lms = _faces(b=16)
  spec = augment.AugmentSpec(crop=200, size=200, flip=True, scheme=schemes.BP4D49)
  out, out_lms = augment.random_augment(jax.random.key(3), np.arange(16), images,
                                        lms, spec)
  out, out_lms = np.asarray(out), np.asarray(out_lms)
  flipped = 0
  for i in range(16):
    if np.allclose(out[i], images[i, :, ::-1], atol=1e-3):
      flipped += 1
      want = align.flip_landmarks(lms[i], 200, schemes.BP4D49)
    else:
      np.testing.assert_allclose(out[i], images[i], atol=1e-3)
      want = lms[i]
    np.testing.assert_allclose(out_lms[i], want, atol=1e-3)
  assert 0 < flipped < 16


def test_rotated_scaled_crop_keeps_a_landmark_on_its_pixel():
  size, point = 200, np.array([70.0, 120.0])
  yy, xx = np.mgrid[:size, :size]
  blob = np.exp(-((xx - point[0]) ** 2 + (yy - point[1]) ** 2) / (2 * 3.0 ** 2))
  image = np.repeat((255 * blob)[..., None], 3, -1).astype(np.uint8)
  lms = np.tile(point.astype(np.float32), (49, 1))
  spec = augment.AugmentSpec(crop=176, size=88, flip=True, max_rotation=15.0,
                             scheme=schemes.BP4D49)
  images = np.repeat(image[None], 8, 0)
  out, out_lms = augment.random_augment(jax.random.key(0), np.arange(8), images,
                                        np.repeat(lms[None], 8, 0), spec)
  for img, lm in zip(np.asarray(out), np.asarray(out_lms)):
    w = img[..., 0] ** 2
    gy, gx = np.mgrid[:88, :88]
    centroid = np.array([(gx * w).sum(), (gy * w).sum()]) / w.sum()
    np.testing.assert_allclose(centroid, lm[0], atol=0.3)


def test_same_example_id_same_augmentation_whatever_its_position():
  images, lms = _faces(b=4)
  spec = augment.AugmentSpec(crop=176, size=96, max_rotation=10.0,
                             scheme=schemes.BP4D49)
  key = jax.random.key(7)
  a, la = augment.random_augment(key, np.arange(4), images, lms, spec)
  order = np.array([2, 0, 3, 1])
  b, lb = augment.random_augment(key, order, images[order], lms[order], spec)
  np.testing.assert_allclose(np.asarray(b), np.asarray(a)[order], atol=1e-4)
  np.testing.assert_allclose(np.asarray(lb), np.asarray(la)[order], atol=1e-4)


def test_closed_form_inverse_equals_numpys_on_flipped_rotated_scalings():
  rng = np.random.default_rng(0)
  angle, scale = rng.uniform(-0.3, 0.3, 16), rng.uniform(0.5, 2.0, 16)
  sx = np.where(rng.random(16) < 0.5, -scale, scale)
  a = np.stack([np.stack([np.cos(angle) * sx, -np.sin(angle) * scale], -1),
                np.stack([np.sin(angle) * sx, np.cos(angle) * scale], -1)], -2)
  np.testing.assert_allclose(augment._inverse_2x2(jnp.asarray(a, jnp.float32)),
                             np.linalg.inv(a), rtol=1e-5, atol=1e-6)
