"""On-device augmentation: one affine warp per face (crop, scale, mirror, rotation).

The host only decodes JPEG; everything here runs on the accelerator inside the
jitted step. Every output pixel is sampled bilinearly from the stored 200x200 face
through one 2x3 matrix (output pixels -> stored pixels), so a random crop, the
resize to the network's input size, a mirror flip and a small rotation cost one
gather. Landmarks go through the inverse matrix, and a flip re-indexes them so
every index keeps its meaning (the subject's left eye stays the left eye).

Random draws come from `fold_in(key, global example index)`: the same example in the
same step gets the same augmentation whatever the number of devices.

Coordinates are pixel indices (pixel i centred at i), as everywhere in the project.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from sfae_jax.face import schemes


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
  """crop: side of the square taken from the stored face (176 of 200 in the paper);
  size: the network's input side (the crop is resized to it; = crop for none);
  flip: mirror with probability 1/2; max_rotation: degrees, uniform in +-."""
  crop: int
  size: int
  flip: bool = True
  max_rotation: float = 0.0
  scheme: str = schemes.BP4D49

  @classmethod
  def from_config(cls, config, scheme: str) -> "AugmentSpec":
    """The spec a training config asks for (evaluation and prediction use its
    centre crop)."""
    return cls(crop=config.crop_size, size=config.input_size, flip=config.flip,
               max_rotation=config.max_rotation, scheme=scheme)


def _matrix(stored: int, spec: AugmentSpec, dx, dy, flip, angle):
  """2x3 matrix mapping output pixel (x, y, 1) to stored-face pixel coordinates.

  The crop's centre sits at (stored - 1) / 2 + (dx, dy); output pixel centres span
  the crop exactly (scale = crop / size)."""
  scale = spec.crop / spec.size
  c_out = (spec.size - 1) / 2
  c_in = (stored - 1) / 2
  sx = jnp.where(flip, -scale, scale)
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  # stored = R(angle) @ diag(sx, scale) @ (out - c_out) + c_in + (dx, dy)
  a = jnp.array([[cos * sx, -sin * scale], [sin * sx, cos * scale]])
  t = jnp.array([c_in + dx, c_in + dy]) - a @ jnp.array([c_out, c_out])
  return jnp.concatenate([a, t[:, None]], axis=1)


def _warp(image: jax.Array, m: jax.Array, size: int) -> jax.Array:
  """Bilinear sample of `image` [H, W, C] at m @ (x, y, 1) for a size x size grid;
  outside the image the edge is repeated (the stored faces have a grey border)."""
  ys, xs = jnp.meshgrid(jnp.arange(size, dtype=jnp.float32),
                        jnp.arange(size, dtype=jnp.float32), indexing="ij")
  src_x = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
  src_y = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
  img = image.astype(jnp.float32)
  channels = [
      jax.scipy.ndimage.map_coordinates(img[..., c], [src_y, src_x], order=1,
                                        mode="nearest")
      for c in range(img.shape[-1])
  ]
  return jnp.stack(channels, axis=-1)


def _inverse_2x2(a: jax.Array) -> jax.Array:
  """`[B, 2, 2]` inverses in closed form (a rotation times a scale: det = +-scale^2).
  `jnp.linalg.inv` would put an LU factorisation and triangular solves (cuSOLVER /
  cuBLAS calls on a GPU) into every train step."""
  det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
  adj = jnp.stack([jnp.stack([a[:, 1, 1], -a[:, 0, 1]], -1),
                   jnp.stack([-a[:, 1, 0], a[:, 0, 0]], -1)], -2)
  return adj / det[:, None, None]


def _apply(images, landmarks, mats, flips, spec: AugmentSpec):
  out = jax.vmap(lambda im, m: _warp(im, m, spec.size))(images, mats)
  # landmarks: stored -> output is the inverse of the (affine) matrix.
  a, t = mats[:, :, :2], mats[:, :, 2]
  lm = jnp.einsum("bij,blj->bli", _inverse_2x2(a), landmarks - t[:, None, :])
  perm = jnp.asarray(schemes.get_scheme(spec.scheme).flip_permutation)
  lm = jnp.where(flips[:, None, None], lm[:, perm], lm)
  return out, lm


def random_augment(key: jax.Array, example_ids: jax.Array, images: jax.Array,
                   landmarks: jax.Array, spec: AugmentSpec):
  """Training augmentation.

  key: the step's key; example_ids: `[B]` int32, each example's index in the global
  batch; images: `[B, S, S, 3]` uint8 stored faces; landmarks: `[B, L, 2]` in stored
  pixels. Returns float32 images `[B, size, size, 3]` in [0, 255] and landmarks
  `[B, L, 2]` in output pixels.
  """
  stored = images.shape[1]
  if spec.crop > stored:
    raise ValueError(f"crop {spec.crop} is larger than the stored face {stored}.")
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(example_ids)
  margin = (stored - spec.crop) / 2

  def draw(k):
    kx, ky, kf, kr = jax.random.split(k, 4)
    dx = jax.random.uniform(kx, (), minval=-margin, maxval=margin)
    dy = jax.random.uniform(ky, (), minval=-margin, maxval=margin)
    flip = jax.random.bernoulli(kf) if spec.flip else jnp.array(False)
    angle = jnp.deg2rad(spec.max_rotation) * jax.random.uniform(
        kr, (), minval=-1.0, maxval=1.0)
    return _matrix(stored, spec, dx, dy, flip, angle), flip

  mats, flips = jax.vmap(draw)(keys)
  return _apply(images, landmarks, mats, flips, spec)


def centre_crop(images: jax.Array, landmarks: jax.Array, spec: AugmentSpec):
  """Evaluation view: the centred crop resized to the input size, no flip."""
  b, stored = images.shape[0], images.shape[1]
  m = _matrix(stored, spec, 0.0, 0.0, False, 0.0)
  mats = jnp.broadcast_to(m, (b, 2, 3))
  return _apply(images, landmarks, mats, jnp.zeros((b,), bool), spec)


def example_ids(local_batch: int, axis_name: str | None = None) -> jax.Array:
  """Global-batch indices of this device's examples (inside shard_map)."""
  offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * local_batch
  return offset + jnp.arange(local_batch, dtype=jnp.int32)
