"""Losses: hand-computed values, masking of unknown labels, global-batch sums."""

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
import numpy as np

from sfae_jax.models import losses


def _batch(seed=0, b=8, a=5):
  rng = np.random.default_rng(seed)
  logits = rng.normal(0, 2, (b, a)).astype(np.float32)
  labels = rng.integers(0, 2, (b, a)).astype(np.int8)
  labels[rng.random((b, a)) < 0.25] = -1
  weights = rng.uniform(0.5, 2, a).astype(np.float32)
  return logits, labels, weights


def test_class_weights_follow_jaa_net_formula():
  w = losses.au_class_weights([0.5, 0.25])
  # 1/r = (2, 4); w = (2, 4) / 6 * 2
  np.testing.assert_allclose(w, [2 / 3, 4 / 3], rtol=1e-6)
  assert np.isfinite(losses.au_class_weights([0.0, 0.5])).all()


def test_cross_entropy_and_dice_match_a_numpy_reference_over_known_labels():
  logits, labels, w = _batch()
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  ce, dice = [], []
  for i in range(labels.shape[1]):
    k = labels[:, i] >= 0
    y, q = labels[k, i].astype(float), p[k, i]
    ce.append(np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q))))
    dice.append(1 - (2 * (q * y).sum() + 1) / ((q * q).sum() + (y * y).sum() + 1))
  np.testing.assert_allclose(losses.weighted_cross_entropy(logits, labels, w),
                             np.sum(w * ce) / len(w), rtol=1e-5)
  np.testing.assert_allclose(losses.weighted_dice(logits, labels, w),
                             np.sum(w * dice) / len(w), rtol=1e-5)


def test_unknown_labels_change_neither_loss_nor_gradient():
  logits, labels, w = _batch(1)
  unknown = labels < 0
  assert unknown.any()
  other = np.where(unknown, logits + 7.0, logits)  # anything at unknown cells

  def total(lg):
    return (losses.weighted_cross_entropy(lg, labels, w)
            + losses.weighted_dice(lg, labels, w))

  np.testing.assert_allclose(total(logits), total(other), rtol=1e-6)
  grad = np.asarray(jax.grad(total)(jnp.asarray(logits)))
  assert np.all(grad[unknown] == 0) and np.any(grad[~unknown] != 0)


def test_landmark_loss_is_normalised_by_d0():
  pred = np.zeros((2, 3, 2), np.float32)
  target = np.ones((2, 3, 2), np.float32)       # sum of squares 6 per example
  d0 = np.array([1.0, 2.0], np.float32)
  expected = np.mean([6 / 2, 6 / 8])
  np.testing.assert_allclose(losses.landmark_loss(pred, target, d0), expected,
                             rtol=1e-6)


def test_sharded_losses_equal_the_global_batch_losses():
  """Dice is not a mean over examples: per-device dice averaged would differ."""
  logits, labels, w = _batch(2, b=8)
  assert len(jax.devices()) >= 4, "conftest forces 4 host devices"
  mesh = Mesh(np.asarray(jax.devices()[:4]), ("data",))

  def local(lg, lb):
    return (losses.weighted_cross_entropy(lg, lb, w, "data"),
            losses.weighted_dice(lg, lb, w, "data"))

  sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P("data"), P("data")),
                                  out_specs=(P(), P())))
  ce4, dice4 = sharded(logits, labels)
  np.testing.assert_allclose(ce4, losses.weighted_cross_entropy(logits, labels, w),
                             rtol=1e-6)
  np.testing.assert_allclose(dice4, losses.weighted_dice(logits, labels, w),
                             rtol=1e-6)
  mean_of_local = np.mean([losses.weighted_dice(logits[i:i + 2], labels[i:i + 2], w)
                           for i in range(0, 8, 2)])
  assert abs(mean_of_local - float(dice4)) > 1e-3


def test_landmark_normaliser_is_the_eye_centre_distance():
  """JAA-Net's d0: distance between the means of the two eyes' six points."""
  from sfae_jax.face import schemes  # pylint: disable=g-import-not-at-top
  lms = np.zeros((1, 68, 2), np.float32)
  lms[0, 36:42] = [[10, 50], [12, 48], [14, 48], [16, 50], [14, 52], [12, 52]]
  lms[0, 42:48] = lms[0, 36:42] + [40, 6]      # right eye: 40 px right, 6 down
  lms[0, 36, 0] -= 4                          # outer corners move; centres shift
  lms[0, 45, 0] += 4                          # by 4/6 px each
  want = np.hypot(40 + 8 / 6, 6)
  np.testing.assert_allclose(schemes.eye_centre_distance(lms, schemes.IBUG68),
                             [want], rtol=1e-5)
  lms49 = lms[:, list(schemes.get_scheme(schemes.BP4D49).from_68)]
  np.testing.assert_allclose(schemes.eye_centre_distance(lms49, schemes.BP4D49),
                             [want], rtol=1e-5)


def test_landmark_error_is_mean_point_distance_over_d0():
  pred = np.zeros((2, 4, 2), np.float32)
  target = np.zeros((2, 4, 2), np.float32)
  target[0, :, 0] = 3.0           # every point 3 px off, d0 = 30: 0.1
  target[1, 0] = [6.0, 8.0]       # one point of four 10 px off, d0 = 50: 0.05
  np.testing.assert_allclose(
      losses.landmark_error(pred, target, np.array([30.0, 50.0])), 0.075,
      rtol=1e-6)


def test_jaanet_code_dice_divides_the_ratio_by_the_batch():
  logits, labels, w = _batch(3, b=8)
  labels = np.abs(labels)  # all known: the ratio is the same set either way
  plain = losses.weighted_dice(logits, labels, w)
  code = losses.weighted_dice(logits, labels, w, divide_by_batch=True)
  a = labels.shape[1]
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  y = labels.astype(np.float64)
  r = (2 * (p * y).sum(0) + 1) / ((p * p).sum(0) + (y * y).sum(0) + 1)
  np.testing.assert_allclose(plain, (w * (1 - r)).sum() / a, rtol=1e-5)
  np.testing.assert_allclose(code, (w * (1 - r / 8)).sum() / a, rtol=1e-5)
  g_plain = jax.grad(lambda lg: losses.weighted_dice(lg, labels, w))(logits)
  g_code = jax.grad(lambda lg: losses.weighted_dice(lg, labels, w,
                                                    divide_by_batch=True))(logits)
  np.testing.assert_allclose(g_code, np.asarray(g_plain) / 8, rtol=1e-5, atol=1e-9)


def test_attention_refine_loss_is_per_au_bce_summed_over_aus():
  rng = np.random.default_rng(0)
  target = rng.uniform(0, 1, (2, 3, 4, 4)).astype(np.float32)
  refined = rng.uniform(0.05, 0.95, (2, 3, 4, 4)).astype(np.float32)
  bce = -(target * np.log(refined) + (1 - target) * np.log(1 - refined))
  np.testing.assert_allclose(losses.attention_refine_loss(refined, target),
                             bce.mean(axis=(0, 2, 3)).sum(), rtol=1e-5)
  # minimal where the refined map equals the rule map; no gradient to the target
  assert (losses.attention_refine_loss(target, target)
          < losses.attention_refine_loss(refined, target))
  g = jax.grad(lambda t: losses.attention_refine_loss(refined, t))(target)
  assert np.all(np.asarray(g) == 0)


def test_intensity_loss_is_masked_mse_on_the_0_1_scale_and_global():
  """Per AU the mean of ((pred - y) / 5)^2 over coded labels, then the mean over
  AUs; uncoded labels change neither loss nor gradient; 4 shards give the global
  batch's value."""
  rng = np.random.default_rng(3)
  pred = rng.uniform(0, 5, (8, 3)).astype(np.float32)
  labels = rng.integers(0, 6, (8, 3)).astype(np.int8)
  labels[rng.random((8, 3)) < 0.3] = -1
  labels[:, 2] = -1                                  # an AU with no code at all
  want = np.mean([np.mean(((pred[labels[:, j] >= 0, j] - labels[labels[:, j] >= 0, j])
                           / 5.0) ** 2) for j in range(2)] + [0.0])
  np.testing.assert_allclose(losses.intensity_loss(pred, labels, 5.0), want,
                             rtol=1e-6)
  other = np.where(labels < 0, pred + 3.0, pred)
  np.testing.assert_allclose(losses.intensity_loss(other, labels, 5.0), want,
                             rtol=1e-6)
  grad = np.asarray(jax.grad(lambda p: losses.intensity_loss(p, labels, 5.0))(
      jnp.asarray(pred)))
  assert np.all(grad[labels < 0] == 0) and np.all(grad[labels >= 0] != 0)
  mesh = Mesh(np.asarray(jax.devices()[:4]), ("data",))
  sharded = jax.jit(jax.shard_map(
      lambda p, y: losses.intensity_loss(p, y, 5.0, "data"), mesh=mesh,
      in_specs=(P("data"), P("data")), out_specs=P()))
  np.testing.assert_allclose(sharded(pred, labels), want, rtol=1e-6)


def test_intensity_head_gradient_over_4_devices_is_the_global_batch_gradient():
  """The head as the model has it (dense, 5 * sigmoid) with its replicated
  weights: inside shard_map the per-device gradients of the psummed loss sum to
  the 1-device gradient (a per-device mean would be 4x off for the AU whose
  codes sit on one device)."""
  rng = np.random.default_rng(4)
  x = rng.normal(0, 1, (8, 7)).astype(np.float32)
  w = rng.normal(0, 1, (7, 3)).astype(np.float32)
  labels = rng.integers(-1, 6, (8, 3)).astype(np.int8)
  labels[2:, 0] = -1                      # AU 0 coded on the first device only

  def loss(w, x, y, axis=None):
    return losses.intensity_loss(5 * jax.nn.sigmoid(x @ w), y, 5.0, axis)
  g1 = jax.jit(jax.grad(loss))(w, x, labels)
  mesh = Mesh(np.asarray(jax.devices()[:4]), ("data",))
  g4 = jax.jit(jax.shard_map(lambda w, x, y: jax.grad(loss)(w, x, y, "data"),
                             mesh=mesh, in_specs=(P(), P("data"), P("data")),
                             out_specs=P()))(w, x, labels)
  assert np.abs(g1).max() > 1e-3
  np.testing.assert_allclose(g4, g1, atol=1e-7, rtol=1e-5)
