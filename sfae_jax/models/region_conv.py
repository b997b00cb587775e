"""Region (partitioned) convolutions and the hierarchical multi-scale region block.

A region convolution splits a feature map into a g x g grid of cells and gives every
cell its own BN -> ReLU -> 3x3 conv, zero-padded at the cell border, so that what a
cell learns depends only on that face region (DRML, JAA-Net, SFAE-Net).

Vectorisation: cells are moved to a leading *group* axis, `[G, B, h, w, C]`, and the
per-cell 3x3 convolution is a grouped convolution over that axis
(:func:`sfae_jax.models.conv.grouped_conv3x3`, one implementation per backend). Each
cell is then its own little map, so the zero padding at cell borders is automatic,
and per-cell BatchNorm is a BatchNorm whose feature axes are (group, channel).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sfae_jax.models.conv import Conv3x3, GroupedConv3x3, grouped_conv3x3  # noqa: F401

def to_cells(x: jax.Array, grid: int) -> jax.Array:
  """`[B, H, W, C] -> [grid*grid, B, H/grid, W/grid, C]`, cells in row-major order."""
  b, hh, ww, c = x.shape
  if hh % grid or ww % grid:
    raise ValueError(
        f"Region grid {grid}x{grid} needs a feature map whose height and width are "
        f"divisible by {grid}, got {hh}x{ww}. Use an input size that is a multiple "
        f"of the grid times the stem's downsampling (176 for the paper's model).")
  h, w = hh // grid, ww // grid
  x = x.reshape(b, grid, h, grid, w, c).transpose(1, 3, 0, 2, 4, 5)
  return x.reshape(grid * grid, b, h, w, c)


def from_cells(x: jax.Array, grid: int) -> jax.Array:
  """Inverse of :func:`to_cells`."""
  _, b, h, w, c = x.shape
  x = x.reshape(grid, grid, b, h, w, c).transpose(2, 0, 3, 1, 4, 5)
  return x.reshape(b, grid * h, grid * w, c)


class RegionConv(nn.Module):
  """Partitioned conv: per-cell BN -> ReLU -> 3x3 conv on a grid x grid split.

  `[B, H, W, C] -> [B, H, W, features]`; H and W must be divisible by `grid`.
  `norm` builds a BatchNorm (see `SFAENet`); its feature axes are set here to
  (cell, channel) so every cell keeps its own statistics, scale and bias.
  """
  features: int
  grid: int
  norm: Callable[..., nn.Module]
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cells = to_cells(x, self.grid)
    cells = self.norm(axis=(0, 4), name="bn")(cells)
    cells = nn.relu(cells)
    cells = GroupedConv3x3(self.features, dtype=self.dtype, impl=self.conv_impl,
                           name="conv")(cells)
    return from_cells(cells, self.grid)


def cascade_widths(features: int, levels: int) -> list[int]:
  """Channel widths of the region-conv cascade: C/2, C/4, ..., last repeated.

  For three levels this is the paper's C/2, C/4, C/4, which sum to C.
  """
  widths = [features >> (i + 1) for i in range(levels - 1)]
  widths.append(features - sum(widths))
  if min(widths) < 1:
    raise ValueError(f"{features} channels are too few for {levels} region levels.")
  return widths


class HierarchicalRegionBlock(nn.Module):
  """The paper's feature-extraction block (JAA-Net's hierarchical region learning).

  plain 3x3 conv (C) -> region convs on `grids` (default 8x8, 4x4, 2x2) with C/2,
  C/4, C/4 channels, each feeding the next -> concat (C) + plain conv output ->
  BN -> ReLU. `[B, H, W, C_in] -> [B, H, W, features]`.
  """
  features: int
  norm: Callable[..., nn.Module]
  grids: Sequence[int] = (8, 4, 2)
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    plain = Conv3x3(self.features, dtype=self.dtype, impl=self.conv_impl,
                    name="conv")(x)
    level, outs = plain, []
    widths = cascade_widths(self.features, len(self.grids))
    for i, (grid, width) in enumerate(zip(self.grids, widths)):
      level = RegionConv(width, grid, self.norm, dtype=self.dtype,
                         conv_impl=self.conv_impl,
                         name=f"region{grid}x{grid}_{i}")(level)
      outs.append(level)
    y = jnp.concatenate(outs, axis=-1) + plain
    return nn.relu(self.norm(name="bn")(y))
