"""Orbax checkpoints of a run: `WORKDIR/checkpoints/<step>/{state,data,meta,run}`.

`state` is the TrainState (params, BatchNorm statistics, optimiser state, step),
saved asynchronously. `data` is the input pipeline's position, one file per
process (grain's orbax handler, which training passes in as
`sfae_jax.data.loader.CHECKPOINTING`: `process_<k>-of-<n>.json`), so a resumed
run reads exactly the batches the interrupted one would have on every host.
Reading a run's variables needs no data pipeline, so evaluation and `predict`
load without grain. `meta` is JSON
(the epoch). The record of the run is `WORKDIR/run.json` (`sfae_jax.training.run_info`);
`run` is its copy as of the checkpoint, to restore it from.

Every process takes part in saving and restoring (orbax coordinates the hosts
and writes under a temporary name that is renamed when complete, so a run killed
mid-save leaves the previous checkpoint as the latest). `restore` is the one
restore function: the whole state for training, or `abstract_variables` (parameters
and BatchNorm statistics only) for evaluation and prediction.

A damaged checkpoint (a truncated or missing file) is never fatal while an older
one is readable: `restore_newest` names the unreadable step and its file, warns,
and falls back to the newest readable step. Training then moves the damaged
steps aside to `WORKDIR/checkpoints_damaged/` (kept, not deleted), so that it
saves those steps again.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
from typing import Any, Optional

from absl import logging as absl_logging
from etils import epath
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from sfae_jax.runtime import distributed
from sfae_jax.training import run_info

VARIABLES = ("params", "batch_stats")
ITEMS = ("state", "data", "meta", run_info.RECORD_ITEM)
DAMAGED_DIR = "checkpoints_damaged"


def _write_replicated_arrays_whole() -> None:
  """Orbax's default "replica-parallel" save splits each replicated array over
  its replicas, and the slicing compiles one program per array shape at the
  first save of a process: 10 s for the tiny test model on this project's
  2-core CPU (0.1 s without), more for the full model, and that first save may
  be the one a preemption notice of 30 s has to fit. The train state here is
  replicated and small (tens of MB), so each array is written whole by its
  primary host instead. (StandardCheckpointHandler takes no registry of its
  own, hence orbax's global one.)"""
  level = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)  # "overriding jax.Array"
  try:
    ocp.type_handlers.register_type_handler(
        jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False),
        override=True)
  finally:
    absl_logging.set_verbosity(level)


_write_replicated_arrays_whole()


class CheckpointError(RuntimeError):
  """No readable checkpoint; the message names each one tried and why."""


def manager(workdir, config=None, *, read_only: bool = False, data=None
            ) -> ocp.CheckpointManager:
  """An orbax manager of `workdir`'s checkpoints; `data`
  (`loader.CHECKPOINTING`) adds the input pipeline's item, which training
  saves and restores."""
  every = config.checkpoint_every_steps if config is not None else 1
  keep = config.keep_checkpoints if config is not None else None
  options = ocp.CheckpointManagerOptions(
      save_interval_steps=0 if read_only else max(1, every), max_to_keep=keep,
      create=not read_only, read_only=read_only,
      # a run killed mid-save leaves orbax's temporary folder: removed on resume
      cleanup_tmp_directories=not read_only,
      enable_async_checkpointing=not read_only)
  # A read-only manager is what evaluation and prediction ask for; orbax warns
  # that the directory is read only, which would only alarm the user.
  level = absl_logging.get_verbosity()
  if read_only:
    absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    return ocp.CheckpointManager(
        checkpoint_dir(workdir), options=options,
        item_names=ITEMS if data is not None else tuple(
            i for i in ITEMS if i != "data"),
        item_handlers={"data": data.handler()} if data is not None else None)
  finally:
    absl_logging.set_verbosity(level)


def checkpoint_dir(workdir) -> epath.Path:
  """`WORKDIR/checkpoints`, absolute (orbax needs it); `gs://...` kept as is."""
  workdir = str(workdir)
  return epath.Path(workdir if "://" in workdir else os.path.abspath(workdir)) / \
      "checkpoints"


def save(mngr: ocp.CheckpointManager, step: int, state, data_args, meta: dict,
         record: dict, force: bool = False) -> bool:
  """Called by every process (orbax coordinates them). `data_args`: the input
  pipeline's save args (`loader.CHECKPOINTING.save(iterator)`); `record`: the
  run record (`RunInfo.to_json()`), kept as each checkpoint's copy of run.json."""
  return mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=data_args,
      meta=ocp.args.JsonSave(meta),
      **{run_info.RECORD_ITEM: ocp.args.JsonSave(record)}), force=force)


def restore(mngr: ocp.CheckpointManager, step: Optional[int], target,
            data_args=None) -> tuple[Any, dict]:
  """Restores checkpoint `step` (default: the latest) onto `target`'s shapes,
  dtypes and shardings; returns (state, meta), and with `data_args`
  (`loader.CHECKPOINTING.restore(iterator)`) positions the input pipeline too.

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
  if data_args is not None:
    items["data"] = data_args
  restored = mngr.restore(step, args=ocp.args.Composite(**items))
  return restored["state"], restored["meta"]


def abstract_like(tree, sharding) -> Any:
  """ShapeDtypeStructs of `tree` (arrays or shape structs) placed on `sharding`."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def abstract_variables(model, input_size: int, sharding) -> dict:
  """Params and BatchNorm statistics of `model` as ShapeDtypeStructs on
  `sharding`, without computing anything."""
  images = jax.ShapeDtypeStruct((1, input_size, input_size, 3), jnp.uint8)
  variables = jax.eval_shape(lambda k, x: model.init(k, x, train=False),
                             jax.random.key(0), images)
  return abstract_like({k: variables.get(k, {}) for k in VARIABLES}, sharding)


def _reason(error: BaseException) -> str:
  """One line naming the file (and array) that failed, from orbax's or
  tensorstore's chained errors (their messages name the OCDBT folder)."""
  messages = []
  while error is not None and len(messages) < 12:
    messages.append(str(error))
    error = error.__cause__ or error.__context__
  pattern = re.compile(r"OUT_OF_RANGE|NOT_FOUND|DATA_LOSS|INVALID_ARGUMENT|"
                       r"FAILED_PRECONDITION|Error reading|does not exist|No such")
  best = next((m for m in messages if pattern.search(m)), messages[0] or "unknown")
  best = best.split(" [tensorstore_spec")[0].strip().splitlines()[0]
  return best if len(best) <= 400 else best[:400] + " ..."


def quiet_closed_loop_errors() -> None:
  """After a failed restore, tensorstore's pending reads call back into orbax's
  asyncio loop once it is closed, and each prints a 'RuntimeError: Event loop is
  closed' traceback (at exit too). They say nothing about the checkpoint, whose
  error is already reported: those, and only those, are dropped."""
  def closed_loop(exc) -> bool:
    return isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc)
  previous = sys.excepthook
  if getattr(previous, "_sfae_quiet", False):
    return
  def excepthook(kind, value, tb):
    if not closed_loop(value):
      previous(kind, value, tb)
  excepthook._sfae_quiet = True  # pylint: disable=protected-access
  sys.excepthook = excepthook
  previous_unraisable = sys.unraisablehook
  def unraisablehook(info):
    if not closed_loop(info.exc_value):
      previous_unraisable(info)
  sys.unraisablehook = unraisablehook


def _warn(message: str) -> None:
  if jax.process_index() == 0:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def restore_newest(mngr: ocp.CheckpointManager, target, data_args=None,
                   step: Optional[int] = None):
  """`restore` of checkpoint `step`, or of the newest readable one: returns
  (state, meta, step, damaged), `damaged` the [(step, reason)] that could not be
  read. An unreadable checkpoint is named with its file and skipped, with a
  warning; CheckpointError when none is readable (or `step` is not)."""
  steps = sorted(mngr.all_steps(), reverse=True)
  if not steps:
    raise FileNotFoundError(f"No checkpoint in {mngr.directory}: train first.")
  if step is not None and step not in steps:
    raise ValueError(f"No checkpoint for step {step} in {mngr.directory}; have "
                     f"{sorted(steps)}.")
  damaged = []
  for s in ([step] if step is not None else steps):
    try:
      state, meta = restore(mngr, s, target, data_args)
    except Exception as e:  # pylint: disable=broad-except
      # orbax and tensorstore raise many types (ValueError, Exception, OSError,
      # FileNotFoundError, ...) for a damaged file: each means "unreadable".
      damaged.append((s, _reason(e)))
      quiet_closed_loop_errors()
      if step is not None:
        break
      older = [t for t in steps if t < s]
      _warn(f"checkpoint {s} in {mngr.directory} is unreadable: {damaged[-1][1]}"
            + (f"; trying step {older[0]}." if older else "."))
      continue
    if damaged:
      _warn(f"using checkpoint {s}, the newest readable one in {mngr.directory}.")
    return state, meta, s, damaged
  raise CheckpointError(
      f"No readable checkpoint in {mngr.directory}: "
      + "; ".join(f"step {s}: {r}" for s, r in damaged)
      + (". Pass another --step, or" if step is not None else ". Restore the folder "
         "from a copy, or") + " train again in a new workdir.")


def open_for_training(workdir, config, data) -> tuple[ocp.CheckpointManager,
                                                     Optional[int]]:
  """(manager, latest step or None) for a training run in `workdir`; `data`:
  the input pipeline's checkpointing (`loader.CHECKPOINTING`)."""
  mngr = manager(workdir, config, data=data)
  return mngr, mngr.latest_step()


def restore_for_training(mngr: ocp.CheckpointManager, workdir, config, target,
                         data, data_iter):
  """Resumes from the newest readable checkpoint, the state onto `target` and
  `data_iter` at its position (`data`: `loader.CHECKPOINTING`): (manager,
  state, meta, step). Newer unreadable ones are moved to
  WORKDIR/checkpoints_damaged/ (by process 0; every process takes part), and a
  fresh manager is returned."""
  state, meta, step, damaged = restore_newest(mngr, target,
                                              data.restore(data_iter))
  newer = [s for s, _ in damaged if s > step]
  if newer:
    mngr.close()
    if jax.process_index() == 0:
      aside = epath.Path(str(checkpoint_dir(workdir))).parent / DAMAGED_DIR
      aside.mkdir(parents=True, exist_ok=True)
      for s in newer:
        target_dir = aside / str(s)
        k = 1
        while target_dir.exists():
          target_dir, k = aside / f"{s}.{k}", k + 1
        (checkpoint_dir(workdir) / str(s)).rename(target_dir)
        _warn(f"moved the unreadable checkpoint {s} to {target_dir}; training "
              f"resumes from step {step}.")
    distributed.barrier("sfae_damaged_checkpoints")
    mngr = manager(workdir, config, data=data)
  return mngr, state, meta, step


def restore_variables(workdir, model, input_size: int, sharding,
                      step: Optional[int] = None) -> tuple[dict, int]:
  """(`{'params', 'batch_stats'}`, step) of checkpoint `step` (default: the
  newest readable) of `workdir`, for evaluation and prediction (read-only;
  multi-host safe)."""
  mngr = manager(workdir, read_only=True)
  try:
    if not mngr.all_steps():
      raise FileNotFoundError(
          f"No checkpoint in {checkpoint_dir(workdir)}: train first.")
    variables, _, step, _ = restore_newest(
        mngr, abstract_variables(model, input_size, sharding), step=step)
  finally:
    mngr.close()
  return variables, step


class _DiskFullFilter(logging.Filter):
  """Drops the log records orbax's writer threads and asyncio emit for a full
  disk: the command reports it, once (`disk_full_message`)."""

  def filter(self, record: logging.LogRecord) -> bool:
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
      text += str(record.exc_info[1])
    return "No space left on device" not in text


def report_write_failures_once() -> None:
  """For a command that reports a full disk itself: orbax's and asyncio's own
  records of it, and the 'Event loop is closed' tracebacks that tensorstore's
  pending writes print after it, stay silent."""
  for handler in logging.getLogger().handlers:
    if not any(isinstance(f, _DiskFullFilter) for f in handler.filters):
      handler.addFilter(_DiskFullFilter())
  quiet_closed_loop_errors()


def disk_full(error: BaseException) -> bool:
  """Whether `error`, or an error it was raised from, is a full disk (ENOSPC):
  orbax and tensorstore wrap it in their own types and messages."""
  seen = 0
  while error is not None and seen < 12:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
      return True
    if "No space left on device" in str(error):
      return True
    error, seen = error.__cause__ or error.__context__, seen + 1
  return False


def disk_full_message(workdir, error: BaseException) -> str:
  """One line for a run stopped by a full disk: where, what is intact, what to do."""
  where = getattr(error, "filename", None) or str(workdir)
  try:
    newest = manager(workdir, read_only=True).latest_step()
  except Exception:  # pylint: disable=broad-except  (the message must come out)
    newest = None
  kept = (f"the newest complete checkpoint, step {newest}, is intact" if newest
          is not None else "no checkpoint was complete yet")
  return (f"no space left on the device of {where}; {kept} (a checkpoint cut "
          "short is never taken for one: it is removed on resume). Free space "
          "and rerun the same command to resume.")
