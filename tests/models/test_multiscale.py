"""MSL building blocks against independent computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sfae_jax.models import multiscale


def test_depthwise_conv_equals_xlas_grouped_convolution():
  x = jax.random.normal(jax.random.key(0), (2, 9, 7, 5))
  layer = multiscale.DepthwiseConv3x3()
  params = layer.init(jax.random.key(1), x)
  got = layer.apply(params, x)
  kernel = params["params"]["kernel"][:, :, None, :]   # HWIO, I = 1
  want = jax.lax.conv_general_dilated(
      x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=5)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_adaptive_pool_uses_pytorchs_bins():
  """PyTorch AdaptiveAvgPool bins are [floor(i n / m), ceil((i + 1) n / m)):
  5 -> 3 gives [0, 2), [1, 4), [3, 5) (overlapping); 11 -> 7 as in MSL."""
  x = jnp.arange(5.0).reshape(1, 5, 1, 1) * jnp.ones((1, 5, 5, 1))
  out = multiscale.adaptive_avg_pool(x, 3)[0, :, 0, 0]
  np.testing.assert_allclose(out, [0.5, 2.0, 3.5])
  x = jax.random.normal(jax.random.key(0), (1, 11, 11, 2))
  got = multiscale.adaptive_avg_pool(x, 7)
  bins = [(0, 2), (1, 4), (3, 5), (4, 7), (6, 8), (7, 10), (9, 11)]  # by hand
  want = np.array([[x[0, a:b, c:d].mean((0, 1)) for (c, d) in bins]
                   for (a, b) in bins])
  np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)


def _pool_by_matrix(x, size):
  """The pooling-matrix einsum MSL used before (`ih,bhwc,jw->bijc`), hand-built."""
  def matrix(n_in, n_out):
    m = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
      lo, hi = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
      m[i, lo:hi] = 1.0 / (hi - lo)
    return jnp.asarray(m, x.dtype)
  return jnp.einsum("ih,bhwc,jw->bijc", matrix(x.shape[1], size), x,
                    matrix(x.shape[2], size))


@pytest.mark.parametrize("n_in,size", [(11, 7), (7, 5), (9, 5), (22, 11), (44, 7)])
def test_adaptive_pool_equals_the_pooling_matrix_in_values_and_gradients(n_in, size):
  x = jax.random.normal(jax.random.key(n_in), (3, n_in, n_in, 4))
  cot = jax.random.normal(jax.random.key(size), (3, size, size, 4))
  np.testing.assert_allclose(multiscale.adaptive_avg_pool(x, size),
                             _pool_by_matrix(x, size), rtol=1e-5, atol=1e-6)
  grad = lambda f: jax.grad(lambda v: jnp.sum(f(v, size) * cot))(x)
  np.testing.assert_allclose(grad(multiscale.adaptive_avg_pool),
                             grad(_pool_by_matrix), rtol=1e-5, atol=1e-6)
  xb = x.astype(jnp.bfloat16)  # bf16 in, bf16 out, as the model runs it
  got = multiscale.adaptive_avg_pool(xb, size)
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(got.astype(jnp.float32), _pool_by_matrix(x, size),
                             atol=2e-2)
