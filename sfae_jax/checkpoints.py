"""Orbax checkpoints of a run: `WORKDIR/checkpoints/<step>/{state,data,meta}`.

`state` is the TrainState (params, BatchNorm statistics, optimiser state, step),
saved asynchronously. `data` is the input pipeline's position, one file per
process (grain's orbax handler: `process_<k>-of-<n>.json`), so a resumed run reads
exactly the batches the interrupted one would have on every host. `meta` is JSON
(the epoch). The record of the run is `WORKDIR/run.json` (`sfae_jax.run_info`).

Every process takes part in saving and restoring (orbax coordinates the hosts
and writes under a temporary name that is renamed when complete, so a run killed
mid-save leaves the previous checkpoint as the latest). `restore` is the one
restore function: the whole state for training, or `abstract_variables` (parameters
and BatchNorm statistics only) for evaluation and prediction.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from absl import logging as absl_logging
from etils import epath
import grain.python as grain
import jax
import orbax.checkpoint as ocp

VARIABLES = ("params", "batch_stats")


def manager(workdir, config=None, *, read_only: bool = False
            ) -> ocp.CheckpointManager:
  every = config.checkpoint_every_steps if config is not None else 1
  keep = config.keep_checkpoints if config is not None else None
  options = ocp.CheckpointManagerOptions(
      save_interval_steps=0 if read_only else max(1, every), max_to_keep=keep,
      create=not read_only, read_only=read_only,
      enable_async_checkpointing=not read_only)
  # A read-only manager is what evaluation and prediction ask for; orbax warns
  # that the directory is read only, which would only alarm the user.
  level = absl_logging.get_verbosity()
  if read_only:
    absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    return ocp.CheckpointManager(
        checkpoint_dir(workdir), options=options,
        item_names=("state", "data", "meta"),
        item_handlers={"data": grain.PyGrainCheckpointHandler()})
  finally:
    absl_logging.set_verbosity(level)


def checkpoint_dir(workdir) -> epath.Path:
  """`WORKDIR/checkpoints`, absolute (orbax needs it); `gs://...` kept as is."""
  workdir = str(workdir)
  return epath.Path(workdir if "://" in workdir else os.path.abspath(workdir)) / \
      "checkpoints"


def save(mngr: ocp.CheckpointManager, step: int, state, data_iter, meta: dict,
         force: bool = False) -> bool:
  """Called by every process (orbax coordinates them)."""
  return mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=grain.PyGrainCheckpointSave(data_iter),
      meta=ocp.args.JsonSave(meta)), force=force)


def restore(mngr: ocp.CheckpointManager, step: Optional[int], target,
            data_iter=None) -> tuple[Any, dict]:
  """Restores checkpoint `step` (default: the latest) onto `target`'s shapes,
  dtypes and shardings; returns (state, meta), and positions `data_iter` too.

  `target`: ShapeDtypeStructs with `sharding` (`abstract_like`): a whole
  TrainState (training resumes), or a dict holding a subset of its fields, e.g.
  `abstract_variables(...)` (evaluation, prediction). A checkpoint saved on N
  devices restores onto M; every process of a multi-host job calls this."""
  step = mngr.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"No checkpoint in {mngr.directory}: train first.")
  if isinstance(target, dict):  # a subset of the saved TrainState's fields
    state_args = ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True)
  else:
    state_args = ocp.args.StandardRestore(target)
  items = {"state": state_args, "meta": ocp.args.JsonRestore()}
  if data_iter is not None:
    items["data"] = grain.PyGrainCheckpointRestore(data_iter)
  restored = mngr.restore(step, args=ocp.args.Composite(**items))
  return restored["state"], restored["meta"]


def abstract_like(tree, sharding) -> Any:
  """ShapeDtypeStructs of `tree` (arrays or shape structs) placed on `sharding`."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def abstract_variables(model, input_size: int, sharding) -> dict:
  """Params and BatchNorm statistics of `model` as ShapeDtypeStructs on
  `sharding`, without computing anything."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  images = jax.ShapeDtypeStruct((1, input_size, input_size, 3), jnp.uint8)
  variables = jax.eval_shape(lambda k, x: model.init(k, x, train=False),
                             jax.random.key(0), images)
  return abstract_like({k: variables.get(k, {}) for k in VARIABLES}, sharding)


def restore_variables(workdir, model, input_size: int, sharding,
                      step: Optional[int] = None) -> tuple[dict, int]:
  """(`{'params', 'batch_stats'}`, step) of checkpoint `step` (default latest)
  of `workdir`, for evaluation and prediction (read-only; multi-host safe)."""
  mngr = manager(workdir, read_only=True)
  try:
    steps = mngr.all_steps()
    if not steps:
      raise FileNotFoundError(
          f"No checkpoint in {checkpoint_dir(workdir)}: train first.")
    if step is not None and step not in steps:
      raise ValueError(f"No checkpoint for step {step} in {workdir}; have "
                       f"{sorted(steps)}.")
    step = max(steps) if step is None else step
    variables, _ = restore(mngr, step,
                           abstract_variables(model, input_size, sharding))
  finally:
    mngr.close()
  return variables, step
