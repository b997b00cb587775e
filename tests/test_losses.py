"""Losses: hand-computed values, masking of unknown labels, global-batch sums."""

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
import numpy as np

from sfae_jax import losses


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


def test_landmark_loss_is_normalised_by_interocular_distance():
  pred = np.zeros((2, 3, 2), np.float32)
  target = np.ones((2, 3, 2), np.float32)       # sum of squares 6 per example
  d0 = np.array([1.0, 2.0], np.float32)
  expected = np.mean([6 / 2, 6 / 8])
  np.testing.assert_allclose(losses.landmark_loss(pred, target, d0), expected,
                             rtol=1e-6)


def test_sharded_losses_equal_the_global_batch_losses():
  """Dice is not a mean over examples: per-device dice averaged would differ."""
  logits, labels, w = _batch(2, b=8)
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
