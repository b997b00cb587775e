"""Train state, optimiser, schedule and the data-parallel train / eval steps.

The per-device step is written in pmap style, for one shard of the global batch,
with explicit collectives over the mesh axis `data`: BatchNorm statistics are
averaged with `lax.pmean` (flax `axis_name`) and the loss's sums are `psum`med
(`sfae_jax.models.losses`), so every device holds the loss of the global batch. It runs
under `jax.shard_map` inside `jax.jit` on a 1-D mesh of every device (every host's,
in a multi-host job; the mesh and array layouts are `sfae_jax.runtime.sharding`'s).

Gradients: inside `shard_map`, parameters are replicated (mesh-invariant) while the
data varies by device, and differentiation sums the per-device contributions of an
invariant loss into an invariant gradient. That sum *is* the global-batch gradient,
so no further `pmean` is applied: it would be a no-op here, and a `pmean` of a
per-device loss's gradient would be N times too large (the transpose of the
parameters' implicit broadcast is already a `psum`; under `jax.pmap` it is not,
which is why pmap-era code averages gradients). The 1-device vs 4-device equality
test is what pins this down.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
import optax

from sfae_jax.data import augment
from sfae_jax.models import losses
from sfae_jax.models.interface import MAX_INTENSITY
from sfae_jax.runtime.sharding import AXIS
from sfae_jax.training import trained_run

# A model as `sfae_jax.models.interface` describes it (a flax module).
Model = Any
_DROPOUT = 1 << 30


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def learning_rate_schedule(config, steps_per_epoch: int) -> optax.Schedule:
  """lr * decay_rate ** floor(step / (decay_epochs * steps_per_epoch))."""
  return optax.exponential_decay(
      config.learning_rate,
      transition_steps=max(1, config.lr_decay_epochs * steps_per_epoch),
      decay_rate=config.lr_decay_rate, staircase=True)


def make_optimizer(config, schedule: optax.Schedule) -> optax.GradientTransformation:
  """SGD (the paper's: L2 added to the gradient, Nesterov momentum) or AdamW."""
  if config.optimizer == "sgd":
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay),
        optax.sgd(schedule, momentum=config.momentum, nesterov=config.nesterov))
  if config.optimizer == "adamw":
    return optax.adamw(schedule, weight_decay=config.weight_decay)
  raise ValueError(f"config.optimizer={config.optimizer!r}: choose 'sgd' or 'adamw'.")


def init_state(model: Model, tx, config, key: jax.Array) -> TrainState:
  images = jnp.zeros((1, config.input_size, config.input_size, 3), jnp.uint8)
  variables = model.init(key, images, train=False)
  params = variables["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}),
                    opt_state=tx.init(params))


class TrainSetup(NamedTuple):
  """A run's schedule, optimiser and state initialiser (`init(key) -> state`)."""
  schedule: optax.Schedule
  tx: optax.GradientTransformation
  init: Callable[[jax.Array], TrainState]


def train_setup(model: Model, config, steps_per_epoch: int) -> TrainSetup:
  """What training, the benchmark and the tests build a train step from."""
  schedule = learning_rate_schedule(config, steps_per_epoch)
  tx = make_optimizer(config, schedule)
  return TrainSetup(schedule, tx, lambda key: init_state(model, tx, config, key))


def _losses(model, out, labels, lms, config, au_weights, intensity=None):
  """The total loss and its parts: the AU losses every model has, the
  intensity loss of a model with an intensity head, and the model's own terms
  (`loss_terms`; weight 0: a monitor)."""
  ce = losses.weighted_cross_entropy(out.au_logits, labels, au_weights, AXIS)
  dice = losses.weighted_dice(out.au_logits, labels, au_weights, AXIS,
                              divide_by_batch=config.dice_divide_by_batch)
  total = config.au_weight * (ce + config.dice_weight * dice)
  parts = {"ce": ce, "dice": dice}
  if out.intensity is not None:
    parts["intensity"] = losses.intensity_loss(out.intensity, intensity,
                                               MAX_INTENSITY, AXIS)
    total = total + config.intensity_weight * parts["intensity"]
  for name, (weight, value) in model.loss_terms(out, lms, config, AXIS).items():
    parts[name] = value
    if weight:
      total = total + weight * value
  return total, parts


def make_train_step(model: Model, tx, schedule, config, au_weights, mesh: Mesh):
  """jit(shard_map(step)): (state, batch, key) -> (state, metrics); donates state.

  batch: `image` `[B, S, S, 3]` uint8, `landmarks` `[B, L, 2]`, `au` `[B, A]` int8
  and, for a model with an intensity head, `intensity` `[B, K]` int8, sharded over
  `data`; key: the run's key (replicated), folded with the step.

  Attention is placed on the model's own (gradient-stopped) landmarks of the
  augmented images, as at test time; `config.gt_landmark_attention` places it on
  the augmented ground truth instead (an ablation)."""
  model = model.clone(bn_axis_name=AXIS)  # BatchNorm statistics of the global batch
  spec = augment.AugmentSpec.from_config(config, model.landmark_scheme)
  weights = jnp.asarray(au_weights, jnp.float32)

  def local_step(state: TrainState, batch, key):
    key = jax.random.fold_in(key, state.step)
    ids = augment.example_ids(batch["au"].shape[0], AXIS)
    images, lms = augment.random_augment(key, ids, batch["image"],
                                         batch["landmarks"], spec)
    guide = lms if config.gt_landmark_attention else None
    # A model with dropout draws its own mask on each device (augment folds the
    # example ids, far below _DROPOUT, into the same step key).
    dropout = jax.random.fold_in(jax.random.fold_in(key, _DROPOUT),
                                 jax.lax.axis_index(AXIS))

    def loss_fn(params):
      out, mutated = model.apply(
          {"params": params, "batch_stats": state.batch_stats}, images,
          train=True, landmarks=guide, mutable=["batch_stats"],
          rngs={"dropout": dropout})
      total, parts = _losses(model, out, batch["au"], lms, config, weights,
                             batch.get("intensity"))
      return total, (mutated["batch_stats"], parts)

    (loss, (batch_stats, parts)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(parts, loss=loss, grad_norm=optax.tree.norm(grads),
                   param_norm=optax.tree.norm(params),
                   learning_rate=schedule(state.step))
    new = TrainState(step=state.step + 1, params=params, batch_stats=batch_stats,
                     opt_state=opt_state)
    return new, metrics

  sharded = jax.shard_map(local_step, mesh=mesh, in_specs=(P(), P(AXIS), P()),
                          out_specs=(P(), P()))
  return jax.jit(sharded, donate_argnums=0)


def make_eval_step(model: Model, config, mesh: Mesh):
  """jit(shard_map): (variables, batch) -> (probabilities `[B, A]`, intensities
  `[B, K]`: `K` = 0 without an intensity head), sharded over `data` (the
  inference forward on each device's rows)."""
  forward = trained_run.inference_forward(model, config)

  def local_eval(variables, batch):
    probs, out = forward(variables, batch["image"])
    if out.intensity is None:
      return probs, jnp.zeros((probs.shape[0], 0), jnp.float32)
    return probs, out.intensity

  sharded = jax.shard_map(local_eval, mesh=mesh, in_specs=(P(), P(AXIS)),
                          out_specs=(P(AXIS), P(AXIS)))
  return jax.jit(sharded)
