"""Orbax checkpoints of a run: `WORKDIR/checkpoints/<step>/{state,meta}`.

`state` is the TrainState (params, BatchNorm statistics, optimiser state, step),
saved asynchronously. `meta` is JSON: the input pipeline's position (grain iterator
state) and the epoch, so a resumed run reads exactly the batches the interrupted
one would have. Beside the checkpoints, `WORKDIR/run.json` holds what evaluation and
prediction need without the training data: the config, the AU list, the landmark
scheme, the AU class weights and the threshold.

A step directory is written under a temporary name and renamed when complete, so
a run killed mid-save leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from absl import logging as absl_logging
import jax
import ml_collections
import orbax.checkpoint as ocp

RUN_FILE = "run.json"


def manager(workdir: str, config=None, *, read_only: bool = False
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
        os.path.join(os.path.abspath(workdir), "checkpoints"), options=options,
        item_names=("state", "meta"))
  finally:
    absl_logging.set_verbosity(level)


def save(mngr: ocp.CheckpointManager, step: int, state, meta: dict,
         force: bool = False) -> bool:
  return mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
      force=force)


def restore(mngr: ocp.CheckpointManager, step: Optional[int], abstract_state
            ) -> tuple[Any, dict]:
  """Restores `state` onto the shardings of `abstract_state` (ShapeDtypeStructs
  with `sharding`, e.g. from `abstract_like`), so a checkpoint saved on N devices
  restores onto M."""
  step = mngr.latest_step() if step is None else step
  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
  return restored["state"], restored["meta"]


def abstract_like(tree, sharding) -> Any:
  """ShapeDtypeStructs of `tree` (arrays or shape structs) placed on `sharding`."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def write_run_info(workdir: str, config, **info) -> None:
  path = os.path.join(workdir, RUN_FILE)
  data = {"config": json.loads(config.to_json_best_effort()), **info}
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(data, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


def read_run_info(workdir: str) -> tuple[ml_collections.ConfigDict, dict]:
  path = os.path.join(workdir, RUN_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{path} does not exist: {workdir!r} is not a training workdir (train into "
        "it with `python -m sfae_jax.train --config ... --workdir DIR`).")
  with open(path) as f:
    data = json.load(f)
  config = ml_collections.ConfigDict(data.pop("config"))
  return config, data
