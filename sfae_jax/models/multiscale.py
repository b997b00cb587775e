"""MSL, multi-scale region learning: MobileNetV2 inverted residuals at 9x9, 7x7, 5x5.

From the shared map a global path goes down to a 7x7 map; that map is bilinearly
resized to 9x9 and average-pooled to 5x5; each of the three goes through its own
inverted residual, is average-pooled to 5x5, and the three are concatenated and
flattened into feature f3. The paper does not spell out the global path; here it is
two (3x3 conv -> BN -> ReLU -> 2x2 max-pool) stages and an adaptive average pool to
7x7 (44 -> 22 -> 11 -> 7 for the paper's 176 input).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from sfae_jax.models.conv import Conv3x3


def adaptive_bins(n_in: int, n_out: int) -> list[tuple[int, int]]:
  """PyTorch AdaptiveAvgPool's bins: `[lo, hi)` of input index for each output."""
  return [((i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)) for i in range(n_out)]


def _pool_axis(x: jax.Array, axis: int, size: int) -> jax.Array:
  """Adaptive average over one axis: a reshape-mean where the ratio is whole,
  else one mean per bin (bins may overlap: 9 -> 5). No matmul: XLA:GPU's Triton
  GEMM emitter finds no tiling for a pooling matrix's 7- or 11-wide dots in bf16."""
  n = x.shape[axis]
  if n % size == 0:
    return x.reshape(x.shape[:axis] + (size, n // size) + x.shape[axis + 1:]).mean(
        axis + 1, dtype=jnp.float32).astype(x.dtype)
  return jnp.stack([lax.slice_in_dim(x, lo, hi, axis=axis).mean(
      axis, dtype=jnp.float32) for lo, hi in adaptive_bins(n, size)],
                   axis=axis).astype(x.dtype)


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
  """`[B, H, W, C] -> [B, size, size, C]`, average over PyTorch-style bins."""
  return _pool_axis(_pool_axis(x, 1, size), 2, size)


class DepthwiseConv3x3(nn.Module):
  """3x3 depthwise 'SAME' conv as nine shifted multiply-adds.

  Same result as `nn.Conv(feature_group_count=C)`, whose backward pass is very slow
  on XLA:CPU; this form is fast on every backend. `[B, H, W, C] -> [B, H, W, C]`.
  """
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.variance_scaling(
        2.0, "fan_in", "truncated_normal", in_axis=(0, 1), out_axis=2), (3, 3, c))
    kernel = kernel.astype(self.dtype)
    h, w = x.shape[1:3]
    xp = jnp.pad(x.astype(self.dtype), ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(xp[:, i:i + h, j:j + w] * kernel[i, j]
               for i in range(3) for j in range(3))


class InvertedResidual(nn.Module):
  """MobileNetV2 block, BN + ReLU after every step as in the SFAE-Net paper.

  1x1 expand (x `expansion`) -> 3x3 depthwise -> 1x1 project, residual when input
  and output shapes match. `[B, H, W, C_in] -> [B, H, W, features]`.
  """
  features: int
  norm: Callable[..., nn.Module]
  expansion: int = 6
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = nn.Conv(x.shape[-1] * self.expansion, (1, 1), use_bias=False,
                dtype=self.dtype, name="expand")(x)
    y = nn.relu(self.norm(name="bn_expand")(y))
    y = DepthwiseConv3x3(dtype=self.dtype, name="depthwise")(y)
    y = nn.relu(self.norm(name="bn_depthwise")(y))
    y = nn.Conv(self.features, (1, 1), use_bias=False, dtype=self.dtype,
                name="project")(y)
    y = nn.relu(self.norm(name="bn_project")(y))
    return x + y if x.shape == y.shape else y


class MultiScaleRegionLearning(nn.Module):
  """`[B, h, w, C] -> f3 [B, 5 * 5 * 3 * features]`."""
  features: int
  norm: Callable[..., nn.Module]
  expansion: int = 6
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i in range(2):
      x = Conv3x3(self.features, use_bias=False, dtype=self.dtype,
                  impl=self.conv_impl, name=f"global_conv{i}")(x)
      x = nn.relu(self.norm(name=f"global_bn{i}")(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
    m7 = adaptive_avg_pool(x, 7)
    m9 = jax.image.resize(m7, (m7.shape[0], 9, 9, m7.shape[-1]), "bilinear")
    m5 = adaptive_avg_pool(m7, 5)
    scales = []
    for size, m in ((9, m9), (7, m7), (5, m5)):
      y = InvertedResidual(self.features, self.norm, self.expansion,
                           dtype=self.dtype, name=f"inverted_residual{size}")(m)
      scales.append(adaptive_avg_pool(y, 5))
    f3 = jnp.concatenate(scales, axis=-1)
    return f3.reshape(f3.shape[0], -1)
