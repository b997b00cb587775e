"""DRML: Deep Region and Multi-label Learning (Zhao, Chu and Zhang, CVPR 2016).

The region-layer network SFAE-Net's paper compares with (BP4D mean F1 48.3):
conv 11x11 -> region layer -> 2x2 max-pool -> four plain convolutions (8x8, 8x8,
6x6, 5x5, 'VALID') -> two fully connected layers with dropout -> one logit per AU.
The region layer splits the map into an 8x8 grid; every cell has its own
BN -> ReLU -> 3x3 conv, added back to the cell (a residual). DRML learns from the
AU labels alone: no landmarks, no attention.

Where the paper gives sizes for its 170x170 input, the first convolution here is
'SAME' so that the map stays divisible by the grid at this project's input sizes
(176, and 96 for the embedded synthetic); the rest follows the paper. The fully
connected widths (4096, 2048) make the paper's model ~280M parameters at 176
(the first of them alone 65x65x16x4096); `DRMLTiny` is the CPU-sized variant.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sfae_jax.face import action_units, schemes
from sfae_jax.models.interface import INTENSITY_HEAD, AUOutput, intensity_head
from sfae_jax.models.region_conv import RegionConv

AU_HEAD = "head"


class DRML(nn.Module):
  """DRML for multi-label AU detection: faces `[B, S, S, 3]` uint8 -> `AUOutput`
  (no attention). S must be a multiple of `region_grid`."""
  au_ids: Sequence[int] = action_units.BP4D
  intensity_au_ids: Sequence[int] = ()
  landmark_scheme: str = schemes.IBUG68   # the dataset's; DRML predicts none
  conv_features: int = 32
  conv_kernel: int = 11
  region_grid: int = 8
  trunk_features: Sequence[int] = (16, 16, 16, 16)
  trunk_kernels: Sequence[int] = (8, 8, 6, 5)
  fc_features: Sequence[int] = (4096, 2048)
  dropout: float = 0.5
  bn_momentum: float = 0.9
  bn_axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  per_au_modules: ClassVar[tuple[str, ...]] = ()
  au_heads: ClassVar[tuple[str, ...]] = (AU_HEAD,)
  intensity_heads: ClassVar[tuple[str, ...]] = (INTENSITY_HEAD,)

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool,
               landmarks: Optional[jax.Array] = None) -> AUOutput:
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"DRML expects images [B, H, W, 3], got {images.shape}.")
    if landmarks is not None:
      raise ValueError("DRML places no attention on landmarks: "
                       "config.gt_landmark_attention needs a model that does "
                       "(sfae_net).")
    if len(self.trunk_features) != len(self.trunk_kernels):
      raise ValueError(f"trunk_features {tuple(self.trunk_features)} and "
                       f"trunk_kernels {tuple(self.trunk_kernels)} differ in length.")
    norm = functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
        epsilon=1e-5, dtype=self.dtype, axis_name=self.bn_axis_name)
    x = images.astype(self.dtype) / 127.5 - 1.0
    k = self.conv_kernel
    x = nn.relu(nn.Conv(self.conv_features, (k, k), padding="SAME",
                        dtype=self.dtype, name="conv1")(x))
    x = x + RegionConv(self.conv_features, self.region_grid, norm, dtype=self.dtype,
                       conv_impl=self.conv_impl, name="region")(x)
    x = nn.max_pool(nn.relu(x), (2, 2), (2, 2))
    for i, (f, k) in enumerate(zip(self.trunk_features, self.trunk_kernels)):
      if min(x.shape[1:3]) < k:
        raise ValueError(
            f"DRML: input {images.shape[1]}x{images.shape[2]} is too small for "
            f"its {k}x{k} convolution {i + 3} (map {x.shape[1]}x{x.shape[2]}).")
      x = nn.relu(nn.Conv(f, (k, k), padding="VALID", dtype=self.dtype,
                          name=f"conv{i + 3}")(x))
    x = x.reshape(x.shape[0], -1)
    for i, f in enumerate(self.fc_features):
      x = nn.relu(nn.Dense(f, dtype=self.dtype, name=f"fc{i + 7}")(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    fused = x.astype(jnp.float32)
    logits = nn.Dense(len(self.au_ids), dtype=jnp.float32, name=AU_HEAD)(fused)
    intensity = intensity_head(fused, self.intensity_au_ids)
    return AUOutput(au_logits=logits, intensity=intensity)

  def loss_terms(self, out, landmarks, config, axis_name) -> dict:
    """The AU (and intensity) losses only: DRML has no terms of its own."""
    del out, landmarks, config, axis_name
    return {}

  def initial_params(self, params, run, config):
    del run, config
    return params


# For tests and CPU runs: the same layers, narrower.
DRMLTiny = functools.partial(DRML, conv_features=16, trunk_features=(8, 8, 8, 8),
                             fc_features=(256, 128))
