import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sfae_jax.face import action_units
from sfae_jax.models.sfae_net import SFAENet, SFAENetTiny
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


@pytest.mark.parametrize("au_ids", [action_units.BP4D, action_units.DISFA])
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
  assert top_keys(attention_refine=True) == stem | {
      "landmark_branch", "attention_refine", "local_au", "msl"}
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
  want = la.attention_maps(la.au_centres(gt, action_units.BP4D), (44, 44), 4.0)
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
  cfg = dict(model_name="sfae_net_tiny", conv_impl="auto",
             model=dict(use_lrl=True, use_msl=True, local_branch="light"))
  f32 = create_model(ml_collections.ConfigDict(dict(cfg, dtype="float32")),
                     action_units.BP4D, "ibug68")
  bf16 = create_model(ml_collections.ConfigDict(dict(cfg, dtype="bfloat16")),
                      action_units.BP4D, "ibug68")
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
      [f"f32[4,{2 * 68}]", f"f32[4,{len(action_units.BP4D)}]"]), wide
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
                 action_units.BP4D, "ibug68")


def _shapes(**kw):
  model = SFAENet(landmark_scheme="bp4d49", **kw)
  return jax.eval_shape(functools.partial(model.init_with_output, train=False),
                        jax.random.key(0), jnp.zeros((1, S, S, 3)))


def test_default_local_branch_is_jaa_nets_extractor_with_spatial_output():
  """Per AU: (conv, BN, ReLU) x 2 + pool at 96, 128, 160 channels on the 44x44x64
  map (JAA-Net's HLFeatExtractor, without its biases that BN cancels); the AUs'
  5x5x160 outputs are averaged, so f1 has 4,000 features."""
  _, deep = _shapes()
  _, light = _shapes(local_branch="light")
  widths = [64, 96, 96, 128, 128, 160, 160]
  per_au = sum(9 * a * b + 2 * b for a, b in zip(widths[:-1], widths[1:]))
  local = deep["params"]["local_au"]
  assert sum(x.size for x in jax.tree.leaves(local)) == 12 * per_au  # 9.46 M
  assert local["conv0_0"]["kernel"].shape == (12, 3, 3, 64, 96)
  head_in = deep["params"]["head"]["kernel"].shape[0]
  light_in = light["params"]["head"]["kernel"].shape[0]
  assert head_in - light_in == 5 * 5 * 160 - 12 * 32   # f1: 4,000 vs 12 x 32
  assert set(light["params"]["local_au"]) == {"conv0", "conv1", "bn0", "bn1"}
  with pytest.raises(ValueError, match="local_branch"):
    _tiny(local_branch="wide")


def test_deep_local_branch_weighs_each_au_by_its_own_map():
  """An AU whose attention is zero everywhere contributes a constant: moving the
  features under that AU's (empty) map changes nothing, under a live map it does."""
  from sfae_jax.models.lrl import LocalAUBranch  # pylint: disable=g-import-not-at-top
  norm = functools.partial(__import__("flax").linen.BatchNorm,
                           use_running_average=True)
  branch = LocalAUBranch((4, 4, 4), norm)
  x = jax.random.normal(jax.random.key(0), (1, 16, 16, 3))
  att = jnp.zeros((1, 2, 16, 16)).at[0, 0, :8].set(1.0)  # AU 0: top half only
  v = branch.init(jax.random.key(1), x, att)
  base = branch.apply(v, x, att)
  assert base.shape == (1, 2 * 2 * 4)  # 16 -> 8 -> 4 -> 2, 4 channels
  bottom = x.at[:, 8:].add(5.0)        # under no live map
  top = x.at[:, :8].add(5.0)           # under AU 0's map
  np.testing.assert_allclose(branch.apply(v, bottom, att), base, atol=1e-6)
  assert float(jnp.abs(branch.apply(v, top, att) - base).max()) > 1e-3


def test_attention_refinement_learns_from_the_au_loss():
  model, variables = _tiny(attention_refine=True)
  out = jax.jit(functools.partial(model.apply, train=False))(variables, _images())
  assert out.attention.shape == out.rule_attention.shape == (B, 12, 44, 44)
  assert float(out.attention.min()) > 0 and float(out.attention.max()) < 1
  assert float(jnp.abs(out.attention - out.rule_attention).max()) > 0.01

  def logit_sum(params):
    return model.apply({**variables, "params": params}, _images(),
                       train=False).au_logits.sum()

  grads = jax.jit(jax.grad(logit_sum))(variables["params"])
  assert float(jnp.abs(grads["attention_refine"]["conv0"]["kernel"]).sum()) > 0
  plain, _ = _tiny()
  assert plain.attention_refine is False


def test_landmark_head_regresses_pixels_from_the_image_centre():
  """Zero-initialised last layer: every point starts at the centre; one unit of
  the FC output is one pixel (JAA-Net), whatever the input size."""
  model, variables = _tiny()
  forward = jax.jit(functools.partial(model.apply, train=False))
  out = forward(variables, _images())
  np.testing.assert_allclose(out.landmarks, (S - 1) / 2, atol=1e-5)
  params = jax.tree.map(lambda x: x, variables["params"])
  bias = params["landmark_branch"]["fc_landmarks"]["bias"]
  params["landmark_branch"]["fc_landmarks"]["bias"] = bias.at[0].set(3.0)
  moved = forward({**variables, "params": params}, _images())
  np.testing.assert_allclose(moved.landmarks[:, 0, 0], (S - 1) / 2 + 3.0, atol=1e-4)


def test_the_registry_builds_the_named_model_with_its_block():
  """`config.model_name` picks the class, `config.model` gives its fields; a
  field the model does not have is a one-line error naming it."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  from sfae_jax.models import create_model  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  model = create_model(config, action_units.DISFA, "bp4d49")
  assert type(model).__name__ == "SFAENet" and model.local_branch == "deep"
  assert model.au_ids == action_units.DISFA and model.num_points == 49
  config.unlock()
  config.model_name = "sfae_net_tiny"
  config.model.local_branch = "light"
  tiny = create_model(config, action_units.BP4D, "bp4d49")
  assert tiny.local_branch == "light" and tiny.stem_features != model.stem_features
  config.model = ml_collections.ConfigDict(dict(config.model, no_such_field=1))
  with pytest.raises(ValueError, match="config.model:.*no_such_field"):
    create_model(config, action_units.BP4D, "bp4d49")
  config.model_name = "resnet"
  with pytest.raises(ValueError, match="config.model_name='resnet'"):
    create_model(config, action_units.BP4D, "bp4d49")