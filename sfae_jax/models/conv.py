"""3x3 'SAME' convolutions, plain and grouped, with one implementation per backend.

Every convolution in SFAE-Net is a 3x3, stride-1, zero-padded convolution: plain
ones (stem, landmark branch, MSL) and *grouped* ones, where a leading group axis
carries its own kernel (the region cells of a region convolution, the AUs of per-AU
local learning). Two implementations compute the same maths:

* ``"xla"`` (TPU): `lax.conv_general_dilated` for plain convolutions and nine
  shifted batched matmuls for grouped ones, differentiated by JAX. XLA:TPU keeps
  the nine taps' partial sums on chip.
* ``"grouped"`` (GPU): plain convolutions as ``"xla"``; grouped ones as one
  convolution with `feature_group_count` (a single cuDNN call): XLA:GPU writes
  each of the nine taps' outputs to HBM and reads them back to sum them
  (docs/accelerators.md has the figures).
* ``"cpu"``: the same forward convolutions with a hand-written backward pass (nine
  GEMMs over shifted views), and grouped convolutions run group by group: XLA:CPU's
  own kernel gradient, batched matmul and grouped convolution are several times
  slower (docs/model.md, Performance, has the figures).

`default_impl()` picks by the platform the program is traced for: the host's
backend, or the target of an ahead-of-time compile (:func:`target_platform`), so a
TPU or GPU program built on a CPU host never carries the CPU kernels.
``SFAE_CONV_IMPL=xla|cpu|grouped`` overrides it (a model's `conv_impl` field overrides
both). Tests pin the two to each other.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Any, Iterator

import flax.linen as nn
from jax import lax
import jax
import jax.numpy as jnp

IMPLS = ("xla", "cpu", "grouped")
# What 'auto' picks for the platform a program is compiled for.
_BY_PLATFORM = {"cpu": "cpu", "tpu": "xla", "gpu": "grouped", "cuda": "grouped",
                "rocm": "grouped"}
_DN = ("NHWC", "HWIO", "NHWC")


# Tracing happens before lowering and knows no device: whoever compiles for
# devices other than the host's says so here (sfae_jax.tools.aot).
_TARGET_PLATFORM: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sfae_conv_target_platform", default=None)


@contextlib.contextmanager
def target_platform(platform: str) -> Iterator[None]:
  """Within this block 'auto' picks the kernels for `platform` ('cpu', 'tpu',
  'gpu', 'cuda', ...) instead of the host's backend."""
  token = _TARGET_PLATFORM.set(platform.lower())
  try:
    yield
  finally:
    _TARGET_PLATFORM.reset(token)


def default_impl() -> str:
  """'cpu' when tracing for the CPU, 'xla' for a TPU, 'grouped' for a GPU; the
  platform is :func:`target_platform`'s, else the host's backend.
  SFAE_CONV_IMPL overrides."""
  forced = os.environ.get("SFAE_CONV_IMPL", "").strip().lower()
  if forced and forced != "auto":
    if forced not in IMPLS:
      raise ValueError(f"SFAE_CONV_IMPL={forced!r}: choose one of {IMPLS} or 'auto'.")
    return forced
  platform = _TARGET_PLATFORM.get() or jax.default_backend()
  return _BY_PLATFORM.get(platform, "xla")


def resolve_impl(impl: str | None) -> str:
  if impl in (None, "", "auto"):
    return default_impl()
  if impl not in IMPLS:
    raise ValueError(f"conv_impl={impl!r}: choose one of {IMPLS} or 'auto'.")
  return impl


def _xla_conv(x: jax.Array, w: jax.Array) -> jax.Array:
  return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=_DN,
                                  preferred_element_type=x.dtype)


def _input_grad(g: jax.Array, w: jax.Array) -> jax.Array:
  """d(conv)/dx: the 'SAME' conv of g with the flipped, in/out-swapped kernel."""
  return _xla_conv(g, jnp.flip(w, (0, 1)).swapaxes(2, 3))


def _kernel_grad(x: jax.Array, g: jax.Array) -> jax.Array:
  """d(conv)/dw `[3, 3, C, O]` as nine GEMMs `[C, M] @ [M, O]` over M = B*H*W.

  Each tap pairs x with g shifted by the tap's offset. Whichever of x and g has
  fewer channels is the one shifted (and so read nine times)."""
  b, h, w, c = x.shape
  o = g.shape[-1]
  pad = ((0, 0), (1, 1), (1, 1), (0, 0))
  taps = []
  if c <= o:  # shift x: x[p + d] g[p]
    xp = jnp.pad(x, pad)
    gm = g.reshape(-1, o)
    for i in range(3):
      for j in range(3):
        xs = xp[:, i:i + h, j:j + w].reshape(-1, c)
        taps.append(jnp.dot(xs.T, gm, preferred_element_type=jnp.float32))
  else:  # shift g: x[q] g[q - d]; zero padding of x contributes nothing
    gp = jnp.pad(g, pad)
    xm = x.reshape(-1, c).T
    for i in range(3):
      for j in range(3):
        gs = gp[:, 2 - i:2 - i + h, 2 - j:2 - j + w].reshape(-1, o)
        taps.append(jnp.dot(xm, gs, preferred_element_type=jnp.float32))
  return jnp.stack(taps).reshape(3, 3, c, o)


def _varying_axes(x) -> frozenset:
  """The manual mesh axes `x` varies over (inside `shard_map`; empty outside)."""
  aval = jax.typeof(x)
  mat = getattr(aval, "mat", None)
  return frozenset(mat.varying if mat is not None else getattr(aval, "vma", ()))


def _like_primal(ct: jax.Array, primal: jax.Array) -> jax.Array:
  """Sum a cotangent over the mesh axes its primal is invariant over.

  Inside `shard_map`, a replicated kernel used on per-device data gets per-device
  kernel gradients; JAX's own autodiff sums them (the transpose of the implicit
  `pvary`), and a custom backward pass must do the same."""
  extra = _varying_axes(ct) - _varying_axes(primal)
  return lax.psum(ct, tuple(sorted(extra))) if extra else ct


@jax.custom_vjp
def _cpu_conv(x: jax.Array, w: jax.Array) -> jax.Array:
  return _xla_conv(x, w)


def _cpu_conv_fwd(x, w):
  return _xla_conv(x, w), (x, w)


def _cpu_conv_bwd(res, g):
  x, w = res
  g = g.astype(x.dtype)
  dx = _like_primal(_input_grad(g, w), x)
  return dx, _like_primal(_kernel_grad(x, g).astype(w.dtype), w)


_cpu_conv.defvjp(_cpu_conv_fwd, _cpu_conv_bwd)


def conv3x3(x: jax.Array, w: jax.Array, impl: str | None = None) -> jax.Array:
  """'SAME' 3x3 convolution. x `[B, H, W, C]`, w `[3, 3, C, O]` -> `[B, H, W, O]`."""
  if resolve_impl(impl) == "cpu":
    return _cpu_conv(x, w)
  return _xla_conv(x, w)


def _shifted_grouped(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Nine shifted batched matmuls over the group axis (the 'xla' form)."""
  _, _, h, w, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)))
  out = None
  for i in range(3):  # 9 static taps, unrolled at trace time
    for j in range(3):
      tap = jnp.einsum("gbhwc,gco->gbhwo", xp[:, :, i:i + h, j:j + w],
                       kernel[:, i, j], preferred_element_type=x.dtype)
      out = tap if out is None else out + tap
  return out


def _native_grouped(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """One convolution with G feature groups (the 'grouped' form). x `[B, h, w, G,
  C]` (group-major channels), kernel `[G, 3, 3, C, O]` -> `[G, B, h, w, O]`."""
  b, h, w, g, c = x.shape
  o = kernel.shape[-1]
  hwio = kernel.transpose(1, 2, 3, 0, 4).reshape(3, 3, c, g * o)
  y = lax.conv_general_dilated(x.reshape(b, h, w, g * c), hwio, (1, 1), "SAME",
                               dimension_numbers=_DN, feature_group_count=g,
                               preferred_element_type=x.dtype)
  return y.reshape(b, h, w, g, o).transpose(3, 0, 1, 2, 4)


@jax.custom_vjp
def _cpu_grouped(x: jax.Array, w: jax.Array) -> jax.Array:
  return lax.map(lambda xw: _xla_conv(*xw), (x, w))


def _cpu_grouped_fwd(x, w):
  return _cpu_grouped(x, w), (x, w)


def _cpu_grouped_bwd(res, g):
  x, w = res
  g = g.astype(x.dtype)

  def one(xgw):
    xk, gk, wk = xgw
    return _input_grad(gk, wk), _kernel_grad(xk, gk).astype(wk.dtype)

  dx, dw = lax.map(one, (x, g, w))
  return _like_primal(dx, x), _like_primal(dw, w)


_cpu_grouped.defvjp(_cpu_grouped_fwd, _cpu_grouped_bwd)


@jax.custom_vjp
def _cpu_attended(x: jax.Array, att: jax.Array, w: jax.Array) -> jax.Array:
  return lax.map(lambda aw: _xla_conv(aw[0][..., None] * x, aw[1]), (att, w))


def _cpu_attended_fwd(x, att, w):
  return _cpu_attended(x, att, w), (x, att, w)


def _cpu_attended_bwd(res, g):
  x, att, w = res
  g = g.astype(x.dtype)

  def one(dx, agw):
    a, gk, wk = agw
    d_weighted = _input_grad(gk, wk)
    dw = _kernel_grad(a[..., None] * x, gk).astype(wk.dtype)
    da = jnp.sum(d_weighted * x, axis=-1).astype(a.dtype)
    return dx + a[..., None] * d_weighted, (da, dw)

  dx, (da, dw) = lax.scan(one, jnp.zeros_like(x), (att, g, w))
  return _like_primal(dx, x), _like_primal(da, att), _like_primal(dw, w)


_cpu_attended.defvjp(_cpu_attended_fwd, _cpu_attended_bwd)


def attended_grouped_conv3x3(x: jax.Array, att: jax.Array, w: jax.Array,
                             impl: str | None = None) -> jax.Array:
  """`grouped_conv3x3(att[..., None] * x[None], w)`: every group convolves the same
  map weighted by its own attention.

  x `[B, h, w, C]`, att `[G, B, h, w]`, w `[G, 3, 3, C, O]` -> `[G, B, h, w, O]`.
  The 'cpu' form weighs one group at a time, so the G weighted copies of the map
  (12 x 44 x 44 x 64 per face for per-AU learning) are never in memory together."""
  att = att.astype(x.dtype)
  impl = resolve_impl(impl)
  if impl == "cpu":
    return _cpu_attended(x, att, w)
  if impl == "grouped":  # weighted straight into group-major channels
    return _native_grouped(x[:, :, :, None] * att.transpose(1, 2, 3, 0)[..., None],
                           w)
  return _shifted_grouped(att[..., None] * x[None], w)


def grouped_conv3x3(x: jax.Array, w: jax.Array, impl: str | None = None
                    ) -> jax.Array:
  """Per-group 'SAME' 3x3 convolution.

  Args:
    x: `[G, B, h, w, C]`, one independent map per group.
    w: `[G, 3, 3, C, O]`, one kernel per group.
    impl: 'xla', 'cpu', 'grouped' or None / 'auto' (:func:`default_impl`).

  Returns:
    `[G, B, h, w, O]`; every group is zero-padded at its own border.
  """
  impl = resolve_impl(impl)
  if impl == "cpu":
    return _cpu_grouped(x, w)
  if impl == "grouped":
    return _native_grouped(x.transpose(1, 2, 3, 0, 4), w)
  return _shifted_grouped(x, w)


class Conv3x3(nn.Module):
  """`nn.Conv(features, (3, 3), padding='SAME')` with a per-backend backward pass.

  Same parameter names, shapes and initialisers as `nn.Conv` (checkpoints and
  initial values do not depend on the implementation)."""
  features: int
  use_bias: bool = True
  dtype: Any = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    y = conv3x3(x.astype(self.dtype), kernel.astype(self.dtype), self.impl)
    if self.use_bias:
      bias = self.param("bias", nn.initializers.zeros, (self.features,))
      y = y + bias.astype(self.dtype)
    return y


# He-normal over (kh, kw, c_in) with the leading group axis as a batch of kernels.
_grouped_kernel_init = nn.initializers.variance_scaling(
    2.0, "fan_in", "truncated_normal", in_axis=(1, 2, 3), out_axis=4,
    batch_axis=(0,))


class GroupedConv3x3(nn.Module):
  """3x3 conv with separate weights per group. `[G, B, h, w, C] -> [G, B, h, w, O]`.

  With `attention` `[G, B, h, w]`, x is one map `[B, h, w, C]` that every group
  weighs by its own attention first (:func:`attended_grouped_conv3x3`)."""
  features: int
  use_bias: bool = True
  dtype: Any = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, attention: jax.Array | None = None
               ) -> jax.Array:
    groups = x.shape[0] if attention is None else attention.shape[0]
    c_in = x.shape[-1]
    kernel = self.param("kernel", _grouped_kernel_init,
                        (groups, 3, 3, c_in, self.features))
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if attention is None:
      y = grouped_conv3x3(x, kernel, self.impl)
    else:
      y = attended_grouped_conv3x3(x, attention, kernel, self.impl)
    if self.use_bias:
      bias = self.param("bias", nn.initializers.zeros, (groups, self.features))
      y = y + bias.astype(self.dtype)[:, None, None, None, :]
    return y
