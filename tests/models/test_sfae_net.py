import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sfae_jax.models import BP4D_AUS, DISFA_AUS, SFAENet, SFAENetTiny
from sfae_jax.models import landmark_attention as la

B, S = 2, 176


def _images(seed=0, b=B):
  return jax.random.randint(jax.random.key(seed), (b, S, S, 3), 0, 256).astype(jnp.uint8)


@functools.lru_cache(maxsize=None)
def _tiny(**kw):
  model = SFAENetTiny(**kw)
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), _images())
  return model, variables


@pytest.mark.parametrize("au_ids", [BP4D_AUS, DISFA_AUS])
def test_full_model_output_shapes(au_ids):
  model = SFAENet(au_ids=au_ids)
  out, variables = jax.eval_shape(
      functools.partial(model.init_with_output, train=False),
      jax.random.key(0), jnp.zeros((B, S, S, 3), jnp.uint8))
  a = len(au_ids)
  assert out.au_logits.shape == (B, a)
  assert out.landmarks.shape == (B, 68, 2)
  assert out.attention.shape == (B, a, 44, 44)
  assert variables["params"]["head"]["kernel"].shape[-1] == a


def test_49_point_model_predicts_49_points():
  model = SFAENet(landmark_scheme="bp4d49")
  out, _ = jax.eval_shape(functools.partial(model.init_with_output, train=False),
                          jax.random.key(0), jnp.zeros((B, S, S, 3)))
  assert out.landmarks.shape == (B, 49, 2)


def test_ablations_change_the_parameter_tree():
  def top_keys(**kw):
    _, v = jax.eval_shape(functools.partial(SFAENet(**kw).init_with_output,
                                            train=False),
                          jax.random.key(0), jnp.zeros((1, S, S, 3)))
    return set(v["params"])

  stem = {"stem0", "stem1", "head"}
  assert top_keys() == stem | {"landmark_branch", "local_au", "msl"}
  assert top_keys(use_lrl=False) == stem | {"msl"}
  assert top_keys(use_msl=False) == stem | {"landmark_branch", "local_au"}
  assert top_keys(use_lrl=False, use_msl=False) == stem


def test_ablated_outputs_are_none():
  model, variables = _tiny(use_lrl=False)
  out = jax.jit(functools.partial(model.apply, train=False))(variables, _images())
  assert out.landmarks is None and out.attention is None
  assert out.au_logits.shape == (B, 12)


def test_jit_forward_and_sgd_step():
  model, variables = _tiny()
  params, stats = variables["params"], variables["batch_stats"]
  labels = (jax.random.uniform(jax.random.key(3), (B, 12)) > 0.5).astype(jnp.float32)
  tx = optax.sgd(0.05, momentum=0.9, nesterov=True)

  @jax.jit
  def step(params, stats, opt_state, images):
    def loss_fn(p):
      out, new = model.apply({"params": p, "batch_stats": stats}, images,
                             train=True, mutable=["batch_stats"])
      return optax.sigmoid_binary_cross_entropy(out.au_logits, labels).mean(), new
    (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new["batch_stats"], opt_state, loss

  opt_state, images = tx.init(params), _images(1)
  losses = []
  for _ in range(5):
    params, stats, opt_state, loss = step(params, stats, opt_state, images)
    losses.append(float(loss))
  assert np.all(np.isfinite(losses))
  assert losses[-1] < losses[0]
  assert step._cache_size() == 1  # no recompilation after the first step


def test_batch_stats_update_in_train_mode_only():
  model, variables = _tiny()
  images = _images(2)
  _, new = jax.jit(functools.partial(model.apply, train=True,
                                     mutable=["batch_stats"]))(variables, images)
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                         variables["batch_stats"], new["batch_stats"])
  assert all(jax.tree.leaves(changed))  # every BN layer moved its statistics
  _, same = jax.jit(functools.partial(model.apply, train=False,
                                      mutable=["batch_stats"]))(variables, images)
  jax.tree.map(np.testing.assert_array_equal, variables["batch_stats"],
               same["batch_stats"])


def test_given_landmarks_place_the_attention():
  model, variables = _tiny()
  gt = jax.random.uniform(jax.random.key(4), (B, 68, 2), minval=30, maxval=146)
  out = jax.jit(functools.partial(model.apply, train=False))(
      variables, _images(), landmarks=gt)
  want = la.attention_maps(la.au_centres(gt, BP4D_AUS), (44, 44), 4.0)
  np.testing.assert_allclose(out.attention, want, atol=1e-6)


def test_no_gradient_flows_through_the_attention_landmarks():
  """AU logits reach the landmark output layer only through the stop-gradient."""
  model, variables = _tiny()

  def logit_sum(params):
    return model.apply({**variables, "params": params}, _images(),
                       train=False).au_logits.sum()

  grads = jax.jit(jax.grad(logit_sum))(variables["params"])
  lb = grads["landmark_branch"]
  assert np.all(np.asarray(lb["fc_landmarks"]["kernel"]) == 0)
  assert np.abs(np.asarray(lb["fc_hidden"]["kernel"])).sum() > 0  # f2 path is live


def test_bad_input_shapes_are_clear_errors():
  model, variables = _tiny()
  with pytest.raises(ValueError, match=r"images \[B, H, W, 3\]"):
    model.apply(variables, jnp.zeros((B, S, S)), train=False)
  with pytest.raises(ValueError, match=r"landmarks must be \[B, 68, 2\]"):
    model.apply(variables, _images(), train=False, landmarks=jnp.zeros((B, 49, 2)))


def test_bfloat16_config_computes_in_bf16_and_keeps_float32_state():
  """config.dtype='bfloat16': convolutions and matmuls take bf16 operands;
  parameters, BatchNorm statistics, attention maps, landmarks and logits are
  float32; the forward pass stays close to float32's on the same parameters."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from sfae_jax.models import create_model  # pylint: disable=g-import-not-at-top
  cfg = dict(model="sfae_net_tiny", use_lrl=True, use_msl=True)
  f32 = create_model(ml_collections.ConfigDict(dict(cfg, dtype="float32")),
                     BP4D_AUS, "ibug68")
  bf16 = create_model(ml_collections.ConfigDict(dict(cfg, dtype="bfloat16")),
                      BP4D_AUS, "ibug68")
  images = _images(b=4)[:, :64, :64]  # small: this test is about dtypes
  variables = jax.jit(functools.partial(bf16.init, train=False))(
      jax.random.key(0), images)
  dtypes = {x.dtype for x in jax.tree.leaves(variables)}
  assert dtypes == {jnp.dtype(jnp.float32)}
  jaxpr = str(jax.make_jaxpr(functools.partial(bf16.apply, train=False))(
      variables, images))
  ops = [l for l in jaxpr.splitlines() if "dot_general" in l or "conv_general" in l]
  wide = [l.split("=")[0].strip() for l in ops if "bf16" not in l]
  # Only the two output heads are float32 on purpose: landmarks [B, 2L], logits [B, A].
  assert len(ops) > 20 and sorted(w.split(":")[1] for w in wide) == sorted(
      [f"f32[4,{2 * 68}]", f"f32[4,{len(BP4D_AUS)}]"]), wide
  out = jax.jit(functools.partial(bf16.apply, train=False))(variables, images)
  ref = jax.jit(functools.partial(f32.apply, train=False))(variables, images)
  for field in ("au_logits", "landmarks", "attention"):
    assert getattr(out, field).dtype == jnp.float32, field
  # bf16 keeps 8 bits of mantissa (relative error 2^-9 per rounding); through ~20
  # layers the logits of a random-init model move by a few percent of their scale.
  scale = float(jnp.abs(ref.au_logits).max())
  assert float(jnp.abs(out.au_logits - ref.au_logits).max()) < 0.1 * scale
  with pytest.raises(ValueError, match="dtype"):
    create_model(ml_collections.ConfigDict(dict(cfg, dtype="float16")),
                 BP4D_AUS, "ibug68")
