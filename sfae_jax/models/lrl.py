"""LRL, landmark-assisted region learning: the landmark branch (f2), per-AU local
learning on attention-weighted features (f1) in JAA-Net's deep form or a light one,
and JAA-Net's optional attention refinement."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sfae_jax.models.conv import Conv3x3, GroupedConv3x3


class LandmarkBranch(nn.Module):
  """Predicts landmarks from the shared map (JAA-Net's face-alignment branch).

  Three stages of (3x3 conv -> BN -> ReLU) x 2 -> 2x2 max-pool, then FC `hidden`
  (feature f2) and FC 2L. The last FC regresses pixels, as JAA-Net's does, offset
  so that its zero initialisation starts every point at the image centre:
  landmarks (input pixel-index coordinates) = ``((W - 1) / 2, (H - 1) / 2) + fc``.
  (A head in image fractions multiplies the loss's curvature in its weights by
  W^2, and the paper's SGD lr 0.01 diverges with it.)

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
    out = out.reshape(-1, self.num_points, 2)
    landmarks = jnp.array([(w - 1) / 2, (h - 1) / 2], jnp.float32) + out
    return f2, landmarks


class LocalAUBranch(nn.Module):
  """Per-AU local learning, JAA-Net's structure (feature f1; the default).

  Every AU weighs the shared map by its attention map and runs its own extractor:
  one stage per entry of `features`, each (3x3 conv -> BN -> ReLU) x 2 -> 2x2
  max-pool (JAA-Net's `HLFeatExtractor`: 96, 128, 160 channels, 44 -> 22 -> 11 -> 5).
  The AUs' outputs are averaged (JAA-Net's `LocalAUNetv1`) and flattened, so f1
  keeps the spatial layout: `[B, h' * w' * features[-1]]`, 5 * 5 * 160 = 4,000 for a
  176x176 input. AUs are a leading group axis with per-AU weights and per-AU
  BatchNorm: grouped convolutions (`sfae_jax.models.conv`), not a Python loop.

  `features [B, h, w, C], attention [B, A, h, w] -> f1 [B, h' * w' * features[-1]]`.
  """
  features: Sequence[int]
  norm: Callable[..., nn.Module]
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, attention: jax.Array) -> jax.Array:
    att = attention.transpose(1, 0, 2, 3).astype(self.dtype)  # [A, B, h, w]
    y = None
    for i, f in enumerate(self.features):
      for j in range(2):
        conv = GroupedConv3x3(f, use_bias=False, dtype=self.dtype,
                              impl=self.conv_impl, name=f"conv{i}_{j}")
        # The first conv weighs the map by each AU's attention itself (one AU at a
        # time on CPU): the A weighted copies [A, B, h, w, C] are never built.
        y = conv(x, att) if y is None else conv(y)
        y = nn.relu(self.norm(axis=(0, 4), name=f"bn{i}_{j}")(y))
      y = nn.max_pool(y, (2, 2), (2, 2))  # leading [A, B] are batch dims
    return y.mean(axis=0).reshape(x.shape[0], -1)


class LightLocalAUBranch(nn.Module):
  """Per-AU local learning, light form (f1 of the `local_branch='light'` variant).

  Every AU weighs the shared map by its attention map and runs its own
  (3x3 conv -> BN -> ReLU) -> 2x2 max-pool -> (3x3 conv -> BN -> ReLU) -> global
  average pool; the AUs' pooled vectors are concatenated.

  `features [B, h, w, C], attention [B, A, h, w] -> f1 [B, A * features]`.
  """
  features: int
  norm: Callable[..., nn.Module]
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, attention: jax.Array) -> jax.Array:
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


class AttentionRefinement(nn.Module):
  """JAA-Net's attention refinement: per AU, a small network relearns the rule-
  based attention map, and the local branch uses the refined map.

  Per AU: (3x3 conv -> BN -> ReLU) x 3 with `features` channels, a 3x3 conv to one
  channel and a sigmoid. Convolutions are 'SAME' on the map's own grid (JAA-Net
  computes the rule map on a grid 8 cells larger and shrinks it with unpadded
  convs). Trained by the AU loss through the local branch plus a small pull
  towards the rule map (`sfae_jax.models.losses.attention_refine_loss`).

  `[B, A, h, w] -> [B, A, h, w]` in (0, 1), float32.
  """
  norm: Callable[..., nn.Module]
  features: int = 64
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, attention: jax.Array) -> jax.Array:
    y = attention.transpose(1, 0, 2, 3)[..., None]  # [A, B, h, w, 1]
    for i in range(3):
      y = GroupedConv3x3(self.features, use_bias=False, dtype=self.dtype,
                         impl=self.conv_impl, name=f"conv{i}")(y)
      y = nn.relu(self.norm(axis=(0, 4), name=f"bn{i}")(y))
    y = GroupedConv3x3(1, dtype=self.dtype, impl=self.conv_impl, name="conv_out")(y)
    return jax.nn.sigmoid(y[..., 0].astype(jnp.float32)).transpose(1, 0, 2, 3)
