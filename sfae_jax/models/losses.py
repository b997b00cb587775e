"""JAA-Net's losses: weighted per-AU cross-entropy, weighted soft dice, landmarks,
attention refinement; and the AU-intensity regression.

Every loss here is the loss of the **global** batch. Under data parallelism each
device holds a shard; the sums a loss is built from (per-AU sums of cross-entropy,
counts of known labels, the dice terms) are `psum`med over `axis_name` before the
ratios are taken, so 1 device and N devices compute the same number. (Dice is not
a mean over examples, so averaging per-device losses would not give it.)

Labels: 1 present, 0 absent, -1 not coded (intensity: 0-5, -1 not coded). Unknown
labels are masked out of every term: they change neither the loss nor its gradient.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np


def au_class_weights(occurrence_rates) -> np.ndarray:
  """w = (1/r) / sum(1/r) * n_AU (JAA-Net), r = training occurrence rates.

  Rates of 0 (an AU never present in training) would give infinite weight; they
  are clipped to 1e-3 and the caller is expected to have warned."""
  r = np.clip(np.asarray(occurrence_rates, np.float64), 1e-3, 1.0)
  inv = 1.0 / r
  return (inv / inv.sum() * len(r)).astype(np.float32)


def _psum(x, axis_name: Optional[str]):
  return x if axis_name is None else jax.lax.psum(x, axis_name)


def _batch_mean(per_example, axis_name: Optional[str]):
  """Mean over the global batch of a per-example `[b]` value."""
  total = _psum(per_example.sum(), axis_name)
  count = _psum(jnp.asarray(per_example.shape[0], jnp.float32), axis_name)
  return total / count


def weighted_cross_entropy(logits, labels, weights, axis_name=None):
  """Per AU: mean binary cross-entropy over the known labels of the global batch;
  then the weighted mean over AUs, sum_i w_i * ce_i / n_AU.

  logits: `[B, A]`; labels: `[B, A]` int in {-1, 0, 1}; weights: `[A]`."""
  known = (labels >= 0).astype(jnp.float32)
  y = jnp.clip(labels, 0, 1).astype(jnp.float32)
  ce = (jnp.maximum(logits, 0) - logits * y + jnp.log1p(jnp.exp(-jnp.abs(logits))))
  total = _psum((ce * known).sum(axis=0), axis_name)
  count = _psum(known.sum(axis=0), axis_name)
  per_au = total / jnp.maximum(count, 1.0)
  return (weights * per_au).sum() / labels.shape[-1]


def weighted_dice(logits, labels, weights, axis_name=None, smooth: float = 1.0,
                  divide_by_batch: bool = False):
  """Per AU: 1 - (2 sum(p y) + s) / (sum(p^2) + sum(y^2) + s) over the known labels
  of the global batch; then sum_i w_i * dice_i / n_AU.

  `divide_by_batch` reproduces JAA-Net's code, which divides the ratio by the
  batch size: 1 - ratio / B. That is not the dice of JAA-Net's paper (Eq. 2): the
  term stays near 1 and its gradient is 1/B of the dice's (1/16 at batch 16)."""
  known = (labels >= 0).astype(jnp.float32)
  p = jax.nn.sigmoid(logits) * known
  y = jnp.clip(labels, 0, 1).astype(jnp.float32) * known
  inter = _psum((p * y).sum(axis=0), axis_name)
  p2 = _psum((p * p).sum(axis=0), axis_name)
  y2 = _psum((y * y).sum(axis=0), axis_name)
  ratio = (2.0 * inter + smooth) / (p2 + y2 + smooth)
  if divide_by_batch:
    ratio = ratio / _psum(jnp.asarray(labels.shape[0], jnp.float32), axis_name)
  dice = 1.0 - ratio
  return (weights * dice).sum() / labels.shape[-1]


def landmark_loss(pred, target, d0, axis_name=None):
  """Mean over the global batch of sum((pred - target)^2) / (2 * d0^2).

  pred, target: `[B, L, 2]` in pixels; d0: `[B]` the normalising distance in the
  same pixels, JAA-Net's distance between the eye centres
  (`sfae_jax.face.schemes.eye_centre_distance`)."""
  d0 = jnp.maximum(d0, 1.0)
  per_example = ((pred - target) ** 2).sum(axis=(1, 2)) / (2.0 * d0 ** 2)
  return _batch_mean(per_example, axis_name)


def landmark_error(pred, target, d0, axis_name=None):
  """Mean point-to-point error over the global batch, as a fraction of d0 (the
  eye-centre distance): the normalised mean error face-alignment papers report.
  A monitor, not a loss term."""
  per_example = jnp.linalg.norm(pred - target, axis=-1).mean(axis=-1)
  return _batch_mean(per_example / jnp.maximum(d0, 1.0), axis_name)


def attention_refine_loss(refined, target, axis_name=None):
  """JAA-Net's refinement term: per AU, binary cross-entropy between the refined
  map and the rule map, averaged over the global batch and the map's cells; then
  summed over AUs. refined, target: `[B, A, h, w]` in [0, 1]; target carries no
  gradient."""
  target = jax.lax.stop_gradient(target)
  p = jnp.clip(refined, 1e-7, 1.0 - 1e-7)
  bce = -(target * jnp.log(p) + (1.0 - target) * jnp.log1p(-p))
  b, _, h, w = refined.shape
  total = _psum(bce.sum(axis=(0, 2, 3)), axis_name)
  count = _psum(jnp.asarray(b * h * w, jnp.float32), axis_name)
  return (total / count).sum()


def intensity_loss(pred, labels, max_intensity: float, axis_name=None):
  """Per AU: mean squared error on the 0-1 scale, ((pred - y) / max)^2, over the
  coded labels of the global batch; then the mean over AUs (an AU without a coded
  label in the batch adds 0).

  A regression rather than an ordinal (cumulative-logit) head: what is reported
  and written is a continuous 0-5 value scored by ICC, PCC and MAE, which squared
  error optimises directly, with one output per AU. pred: `[B, K]` in
  [0, max_intensity]; labels: `[B, K]` int in {-1, 0..max_intensity}."""
  known = (labels >= 0).astype(jnp.float32)
  err = ((pred - jnp.maximum(labels, 0).astype(jnp.float32)) / max_intensity) ** 2
  total = _psum((err * known).sum(axis=0), axis_name)
  count = _psum(known.sum(axis=0), axis_name)
  return (total / jnp.maximum(count, 1.0)).mean()
