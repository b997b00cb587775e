"""The programs users run on accelerators, on abstract inputs for any devices.

Each builder returns `(jitted, args)`: the very function `train` / `evaluate` /
`predict` jit (`train_step.make_train_step`, `make_eval_step`,
`forward.predict_forward`), and `jax.ShapeDtypeStruct`s carrying the shardings those
commands give their inputs, so `jitted.lower(*args).compile()` builds the program
the command would run on those devices, with nothing allocated.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sfae_jax.face import schemes
from sfae_jax.predict import forward
from sfae_jax.runtime import sharding
from sfae_jax.training import checkpoints, train_step, trained_run

STORED = 200  # side of the stored, aligned face (the builders' output)
PROGRAMS = ("train_step", "eval_step", "predict_forward")


@dataclasses.dataclass(frozen=True)
class Program:
  name: str
  jitted: Callable
  args: tuple
  devices: int        # how many devices it runs on
  batch: int          # images per device per call


def _sds(shape, dtype, sharding_):
  return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding_)


def _batch(mesh, rows: int, landmarks: int, aus: int, with_labels: bool,
           intensity_aus: int = 0) -> dict:
  batch = sharding.batch_sharding(mesh)
  out = {"image": _sds((rows, STORED, STORED, 3), jnp.uint8, batch),
         "landmarks": _sds((rows, landmarks, 2), jnp.float32, batch)}
  if with_labels:
    out["au"] = _sds((rows, aus), jnp.int8, batch)
    if intensity_aus:
      out["intensity"] = _sds((rows, intensity_aus), jnp.int8, batch)
  return out


def _landmark_count(model) -> int:
  return schemes.get_scheme(model.landmark_scheme).num_points


def train(config, devices, batch: int, steps_per_epoch: int = 1000) -> Program:
  """The train step over a 1-D mesh of `devices`, `batch` images per device."""
  mesh = sharding.make_mesh(devices)
  model, aus = trained_run.model_for(config)
  schedule, tx, init = train_step.train_setup(model, config, steps_per_epoch)
  jitted = train_step.make_train_step(model, tx, schedule, config,
                                      np.ones(len(aus), np.float32), mesh)
  state = checkpoints.abstract_like(jax.eval_shape(init, jax.random.key(0)),
                                    sharding.replicated(mesh))
  key = jax.eval_shape(lambda: jax.random.key(0))
  key = _sds(key.shape, key.dtype, sharding.replicated(mesh))
  args = (state, _batch(mesh, batch * mesh.size, _landmark_count(model), len(aus),
                        True, len(model.intensity_au_ids)), key)
  return Program("train_step", jitted, args, mesh.size, batch)


def evaluate(config, devices, batch: int) -> Program:
  """The evaluation step (`evaluate`, and the end of `train`) over `devices`."""
  mesh = sharding.make_mesh(devices)
  model, aus = trained_run.model_for(config)
  variables = checkpoints.abstract_variables(model, config.input_size,
                                             sharding.replicated(mesh))
  jitted = train_step.make_eval_step(model, config, mesh)
  args = (variables, _batch(mesh, batch * mesh.size, _landmark_count(model),
                            len(aus), False))
  return Program("eval_step", jitted, args, mesh.size, batch)


def predict(config, devices, batch: int) -> Program:
  """`predict`'s forward, which runs on one device: the first of `devices`."""
  mesh = sharding.make_mesh(devices[:1])
  model, _ = trained_run.model_for(config)
  variables = checkpoints.abstract_variables(model, config.input_size,
                                             sharding.replicated(mesh))
  jitted = forward.predict_forward(model, config)
  images = _sds((batch, STORED, STORED, 3), jnp.uint8, sharding.replicated(mesh))
  return Program("predict_forward", jitted, (variables, images), 1, batch)


BUILDERS = {"train_step": train, "eval_step": evaluate, "predict_forward": predict}
