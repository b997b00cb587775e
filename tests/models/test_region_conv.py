import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from sfae_jax.models import region_conv as rc

NORM = functools.partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5)


def _region(features, grid, train):
  return rc.RegionConv(features, grid,
                       functools.partial(NORM, use_running_average=not train))


def _randomise(variables, seed):
  """Random non-trivial values for every leaf (BN scale/bias/stats included)."""
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  new = [jax.random.uniform(k, l.shape, minval=0.5, maxval=1.5) * jnp.sign(
      jax.random.normal(k, l.shape)) for k, l in zip(keys, leaves)]
  out = jax.tree.unflatten(tree, new)
  out["batch_stats"] = jax.tree.map(jnp.abs, out["batch_stats"])  # var > 0
  return out


def _slow_reference(variables, x, grid, train):
  """Loops over cells: BN -> ReLU -> 3x3 conv per cell, zero-padded at its border."""
  p, s = variables["params"], variables["batch_stats"]
  b, hh, ww, c = x.shape
  h, w = hh // grid, ww // grid
  out = np.zeros((b, hh, ww, p["conv"]["kernel"].shape[-1]), np.float32)
  for r in range(grid):
    for q in range(grid):
      g = r * grid + q
      cell = x[:, r * h:(r + 1) * h, q * w:(q + 1) * w]
      if train:
        mean, var = cell.mean(axis=(0, 1, 2)), cell.var(axis=(0, 1, 2))
      else:
        mean, var = s["bn"]["mean"][g], s["bn"]["var"][g]
      y = (cell - mean) / jnp.sqrt(var + 1e-5) * p["bn"]["scale"][g] + p["bn"]["bias"][g]
      y = lax.conv_general_dilated(jax.nn.relu(y), p["conv"]["kernel"][g], (1, 1),
                                   "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                   precision="highest")
      out[:, r * h:(r + 1) * h, q * w:(q + 1) * w] = y + p["conv"]["bias"][g]
  return out


@pytest.mark.parametrize("grid,train", [(8, False), (4, True), (2, False)])
def test_matches_slow_per_cell_reference(grid, train):
  x = jax.random.normal(jax.random.key(1), (2, 16, 24, 5))
  mod = _region(6, grid, train)
  variables = _randomise(mod.init(jax.random.key(0), x), seed=grid)
  with jax.default_matmul_precision("highest"):
    y, _ = mod.apply(variables, x, mutable=["batch_stats"])
  assert y.shape == (2, 16, 24, 6)
  np.testing.assert_allclose(y, _slow_reference(variables, x, grid, train),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("train", [False, True])
def test_cells_are_independent(train):
  """d(one output cell)/d(input outside that cell) is exactly zero."""
  grid, x = 4, jax.random.normal(jax.random.key(2), (2, 16, 16, 3))
  mod = _region(4, grid, train)
  variables = mod.init(jax.random.key(0), x)

  def cell_sum(x):
    y, _ = mod.apply(variables, x, mutable=["batch_stats"])
    return y[:, 4:8, 8:12].sum()  # output cell (row 1, col 2)

  grad = np.asarray(jax.grad(cell_sum)(x))
  inside = np.zeros(grad.shape, bool)
  inside[:, 4:8, 8:12] = True
  assert np.all(grad[~inside] == 0.0)
  assert np.abs(grad[inside]).sum() > 0  # and it does depend on its own cell


def test_grouped_conv_matches_per_group_conv():
  x = jax.random.normal(jax.random.key(3), (3, 2, 7, 9, 4))
  k = jax.random.normal(jax.random.key(4), (3, 3, 3, 4, 5))
  with jax.default_matmul_precision("highest"):
    got = rc.grouped_conv3x3(x, k)
    want = jnp.stack([lax.conv_general_dilated(
        x[g], k[g], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
                      for g in range(3)])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_cells_round_trip_in_row_major_order():
  x = jnp.arange(2 * 8 * 8 * 1).reshape(2, 8, 8, 1)
  cells = rc.to_cells(x, 4)
  np.testing.assert_array_equal(cells[1, :, :, :, 0], x[:, 0:2, 2:4, 0])
  np.testing.assert_array_equal(rc.from_cells(cells, 4), x)


def test_indivisible_map_is_a_clear_error():
  mod = _region(4, 8, False)
  with pytest.raises(ValueError, match="divisible by 8, got 20x16"):
    mod.init(jax.random.key(0), jnp.zeros((1, 20, 16, 3)))


def test_cascade_widths_follow_the_paper():
  assert rc.cascade_widths(32, 3) == [16, 8, 8]
  assert rc.cascade_widths(64, 3) == [32, 16, 16]
  with pytest.raises(ValueError):
    rc.cascade_widths(2, 3)


def test_hierarchical_block_shape_and_residual_of_plain_conv():
  block = rc.HierarchicalRegionBlock(
      16, functools.partial(NORM, use_running_average=True))
  x = jax.random.normal(jax.random.key(5), (1, 32, 32, 3))
  variables = block.init(jax.random.key(0), x)
  y = block.apply(variables, x)
  assert y.shape == (1, 32, 32, 16)
  assert set(variables["params"]) == {"conv", "bn", "region8x8_0", "region4x4_1",
                                      "region2x2_2"}
  assert float(y.min()) >= 0.0  # ends in ReLU
