"""The 'cpu' convolutions (hand-written backward, group-by-group) and the 'grouped'
ones (one feature-grouped convolution) compute the same maths as the 'xla' ones
(JAX's autodiff of XLA convolutions and batched matmuls)."""

import functools

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import pytest

from sfae_jax.models import conv
from sfae_jax.models.sfae_net import SFAENetTiny


def _value_and_grads(fn, x, w, impl):
  """The output and d(sum(y * sin(y)))/d(x, w): a non-trivial cotangent."""
  def loss(x, w):
    y = fn(x, w, impl=impl)
    return jnp.sum(y * jnp.sin(y)), y
  (_, y), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(x, w)
  return y, grads


@pytest.mark.parametrize("c_in,c_out", [(3, 8), (8, 3), (5, 5)])
def test_plain_conv_implementations_agree(c_in, c_out):
  """Both branches of the kernel gradient (shift x when C <= O, else shift g)."""
  x = jax.random.normal(jax.random.key(0), (2, 9, 7, c_in))
  w = jax.random.normal(jax.random.key(1), (3, 3, c_in, c_out)) * 0.3
  with jax.default_matmul_precision("highest"):
    want = _value_and_grads(conv.conv3x3, x, w, "xla")
    got = _value_and_grads(conv.conv3x3, x, w, "cpu")
    reference = lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(want[0], reference, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
  assert float(jnp.abs(got[1][1]).max()) > 1e-3  # the kernel gradient is not zero


@pytest.mark.parametrize("c_in,c_out", [(4, 6), (6, 4)])
def test_grouped_conv_implementations_agree(c_in, c_out):
  x = jax.random.normal(jax.random.key(2), (3, 2, 6, 5, c_in))
  w = jax.random.normal(jax.random.key(3), (3, 3, 3, c_in, c_out)) * 0.3
  with jax.default_matmul_precision("highest"):
    want = _value_and_grads(conv.grouped_conv3x3, x, w, "xla")
    for impl in ("cpu", "grouped"):
      got = _value_and_grads(conv.grouped_conv3x3, x, w, impl)
      for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
  # Group g convolves with its own kernel only: by hand for one group.
  one = lax.conv_general_dilated(x[1], w[1], (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(want[0][1], one, rtol=1e-5, atol=1e-5)


def test_attended_conv_is_the_grouped_conv_of_the_weighted_map():
  x = jax.random.normal(jax.random.key(5), (2, 6, 5, 4))
  att = jax.random.uniform(jax.random.key(6), (3, 2, 6, 5))
  w = jax.random.normal(jax.random.key(7), (3, 3, 3, 4, 6)) * 0.3

  def run(fn, impl):
    def loss(x, att, w):
      y = fn(x, att, w, impl)
      return jnp.sum(y * jnp.sin(y)), y
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(
        x, att, w)

  def weighted_first(x, att, w, impl):
    return conv.grouped_conv3x3(att[..., None] * x[None], w, impl=impl)

  with jax.default_matmul_precision("highest"):
    want = run(weighted_first, "xla")
    results = [run(conv.attended_grouped_conv3x3, impl) for impl in conv.IMPLS]
  for got in results:
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
      np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
  assert float(jnp.abs(results[1][1][1]).max()) > 1e-3  # d/d(attention) too


def test_whole_model_is_the_same_under_every_implementation():
  """Same parameters at init, same logits, same parameter gradients."""
  x = jax.random.uniform(jax.random.key(4), (2, 32, 32, 3), maxval=255.0)
  models = {impl: SFAENetTiny(conv_impl=impl) for impl in conv.IMPLS}
  variables = {impl: jax.jit(functools.partial(m.init, train=False))(jax.random.key(0), x)
               for impl, m in models.items()}
  for a, b in zip(jax.tree.leaves(variables["xla"]), jax.tree.leaves(variables["cpu"])):
    np.testing.assert_array_equal(a, b)
  v = variables["xla"]

  def loss(params, model):
    out, _ = model.apply({"params": params, "batch_stats": v["batch_stats"]}, x,
                         train=True, mutable=["batch_stats"])
    return jnp.sum(out.au_logits * jnp.arange(1.0, 13.0)), out.au_logits

  results = {}
  with jax.default_matmul_precision("highest"):
    for impl, model in models.items():
      fn = jax.jit(jax.value_and_grad(functools.partial(loss, model=model),
                                      has_aux=True))
      results[impl] = fn(v["params"])
  (_, logits_x), grads_x = results["xla"]
  for impl in ("cpu", "grouped"):
    (_, logits_c), grads_c = results[impl]
    np.testing.assert_allclose(logits_c, logits_x, rtol=1e-4, atol=1e-4)
    for a, b in zip(jax.tree.leaves(grads_x), jax.tree.leaves(grads_c)):
      np.testing.assert_allclose(b, a, rtol=2e-3, atol=2e-4)


def test_unknown_implementation_is_a_clear_error(monkeypatch):
  with pytest.raises(ValueError, match="conv_impl='gpu'"):
    conv.resolve_impl("gpu")
  monkeypatch.setenv("SFAE_CONV_IMPL", "fast")
  with pytest.raises(ValueError, match="SFAE_CONV_IMPL='fast'"):
    conv.default_impl()
  monkeypatch.setenv("SFAE_CONV_IMPL", "xla")
  assert conv.resolve_impl("auto") == "xla"
