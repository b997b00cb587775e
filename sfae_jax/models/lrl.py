"""LRL, landmark-assisted region learning: landmark branch (f2) and per-AU local
learning on attention-weighted features (f1)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sfae_jax.models.conv import Conv3x3, GroupedConv3x3


class LandmarkBranch(nn.Module):
  """Predicts landmarks from the shared map (JAA-Net's face-alignment branch).

  Three stages of (3x3 conv -> BN -> ReLU) x 2 -> 2x2 max-pool, then FC `hidden`
  (feature f2) and FC 2L. Landmarks are returned in input pixel-index coordinates
  as ``(0.5 + fc) * (W, H) - 0.5``: a zero output is the image centre, so the branch
  starts from a sensible place whatever the input size.

  `[B, h, w, C] -> (f2 [B, hidden], landmarks [B, L, 2] as (x, y))`.
  """
  num_points: int
  image_hw: tuple[int, int]
  norm: Callable[..., nn.Module]
  features: Sequence[int] = (128, 128, 128)
  hidden: int = 512
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    for i, f in enumerate(self.features):
      for j in range(2):
        x = Conv3x3(f, use_bias=False, dtype=self.dtype, impl=self.conv_impl,
                    name=f"conv{i}_{j}")(x)
        x = nn.relu(self.norm(name=f"bn{i}_{j}")(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
    x = x.reshape(x.shape[0], -1)
    f2 = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="fc_hidden")(x))
    out = nn.Dense(2 * self.num_points, dtype=jnp.float32,
                   kernel_init=nn.initializers.zeros, name="fc_landmarks")(f2)
    h, w = self.image_hw
    scale = jnp.array([w, h], jnp.float32)
    landmarks = (0.5 + out.reshape(-1, self.num_points, 2)) * scale - 0.5
    return f2, landmarks


class LocalAULearning(nn.Module):
  """Per-AU local learning on attention-weighted features (feature f1).

  Every AU weighs the shared map by its attention map and runs its own
  (3x3 conv -> BN -> ReLU) -> 2x2 max-pool -> (3x3 conv -> BN -> ReLU) -> global
  average pool. AUs are a leading group axis with per-AU weights: grouped
  convolutions (`sfae_jax.models.conv`), not a Python loop.

  `features [B, h, w, C], attention [B, A, h, w] -> f1 [B, A * features]`.
  """
  features: int
  norm: Callable[..., nn.Module]
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, attention: jax.Array) -> jax.Array:
    # conv0 weighs the map by each AU's attention itself (one AU at a time on
    # CPU), so the A weighted copies `[A, B, h, w, C]` are never materialised.
    y = GroupedConv3x3(self.features, use_bias=False, dtype=self.dtype,
                       impl=self.conv_impl, name="conv0")(
                           x, attention.transpose(1, 0, 2, 3))  # [A, B, h, w, F]
    for i in range(2):
      if i:
        y = GroupedConv3x3(self.features, use_bias=False, dtype=self.dtype,
                           impl=self.conv_impl, name=f"conv{i}")(y)
      y = nn.relu(self.norm(axis=(0, 4), name=f"bn{i}")(y))
      if i == 0:
        y = nn.max_pool(y, (2, 2), (2, 2))  # leading [A, B] are batch dims
    pooled = y.mean(axis=(2, 3))  # [A, B, F]
    return pooled.transpose(1, 0, 2).reshape(x.shape[0], -1)
