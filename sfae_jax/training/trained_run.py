"""A trained run, loaded: its record, its model and its variables.

Evaluation, `predict`, cross-dataset evaluation, `init_from` and the relations
figure all load a run through `load`, so a run means the same thing everywhere:
the model its run.json names, for its AUs and landmark scheme, with the
parameters and BatchNorm statistics of its newest readable checkpoint (or
`step`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import flax.linen as nn
import jax

from sfae_jax.models import create_model
from sfae_jax.runtime import sharding as sharding_lib
from sfae_jax.training import checkpoints, run_info


class TrainedRun(NamedTuple):
  info: run_info.RunInfo
  model: nn.Module
  variables: dict       # {'params', 'batch_stats'}
  step: int


def model_of(info: run_info.RunInfo, bn_axis_name: Optional[str] = None):
  """The model a run record describes (untrained)."""
  return create_model(info.config, info.au_ids, info.landmark_scheme, bn_axis_name,
                      info.intensity_au_ids)


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
