"""A trained run, loaded: its record, its model and its variables, and the one
inference forward.

Evaluation, `predict`, cross-dataset evaluation, `init_from` and the relations
figure all load a run through `load`, so a run means the same thing everywhere:
the model its run.json names, for its AUs and landmark scheme, with the
parameters and BatchNorm statistics of its newest readable checkpoint (or
`step`). This is all of `sfae_jax.training` that `predict` uses.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from sfae_jax.data import augment, registry
from sfae_jax.face import schemes
from sfae_jax.models import create_model
from sfae_jax.runtime import sharding as sharding_lib
from sfae_jax.training import checkpoints, run_info


# What `load` raises for a folder that is not a readable run, each with a
# message that names the folder and the fix (a RecordError is a ValueError).
LOAD_ERRORS = (FileNotFoundError, ValueError, checkpoints.CheckpointError)


class TrainedRun(NamedTuple):
  info: run_info.RunInfo
  model: nn.Module
  variables: dict       # {'params', 'batch_stats'}
  step: int


def model_of(info: run_info.RunInfo, bn_axis_name: Optional[str] = None):
  """The model a run record describes (untrained)."""
  return create_model(info.config, info.au_ids, info.landmark_scheme, bn_axis_name,
                      info.intensity_au_ids)


def model_for(config) -> tuple[nn.Module, tuple[int, ...]]:
  """(the model a run of `config` trains, its AUs), without the data: the
  dataset's AUs, the landmark scheme its builder config produces (what a build
  records) and, unless `config.intensity` is 'off', the intensity head of a
  build with the dataset's intensity labels (the licensed distributions have
  them). What the tools that measure or compile a config build."""
  dataset = registry.of_config(config)
  scheme = schemes.of_dataset_config(config.dataset_config)
  intensity = () if config.get("intensity", "auto") == "off" else (
      dataset.intensity_au_ids)
  return (create_model(config, dataset.au_ids, scheme, intensity_au_ids=intensity),
          tuple(dataset.au_ids))


def load(workdir, step: Optional[int] = None, sharding=None) -> TrainedRun:
  """`workdir`'s record, model and variables of checkpoint `step` (default: the
  newest readable), placed on `sharding` (default: replicated on the first
  local device). Raises FileNotFoundError for a folder that is no run,
  run_info.RecordError for an unreadable record, checkpoints.CheckpointError
  for a checkpoint that cannot be read."""
  info = run_info.read(workdir)
  model = model_of(info)
  if sharding is None:
    sharding = sharding_lib.replicated(sharding_lib.make_mesh(jax.local_devices()[:1]))
  variables, step = checkpoints.restore_variables(
      workdir, model, info.config.input_size, sharding, step)
  return TrainedRun(info, model, variables, step)


def inference_forward(model, config):
  """The one inference forward (evaluation, `predict`, the relations figure):
  (variables, stored faces `[B, 200, 200, 3]` uint8) -> (probabilities `[B, A]`,
  the model's output: intensity, attention, ...). Centre crop of
  `config.crop_size` resized to `config.input_size`; a model with attention
  places it on its own landmarks."""
  spec = augment.AugmentSpec.from_config(config, model.landmark_scheme)

  def forward(variables, images):
    crops, _ = augment.centre_crop(
        images, jnp.zeros((images.shape[0], 1, 2), jnp.float32), spec)
    out = model.apply(variables, crops, train=False)
    return jax.nn.sigmoid(out.au_logits), out
  return forward
