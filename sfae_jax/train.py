"""Training: `python -m sfae_jax.train --config configs/x.py --workdir DIR`.

This file is intentionally short on logic outside `train_and_evaluate`, which a
notebook or a test can call. Rerunning the same command on the same workdir resumes
from the latest checkpoint (same batches, same random numbers, same result).

Several processes (hosts) run the same command; `sfae_jax.runtime.distributed` joins them
into one job first (flags, JAX_* variables, or SLURM / Open MPI / Cloud TPU).
Process 0 locks the workdir for the job (`sfae_jax.training.workdir_lock`), prepares the
dataset and writes run.json, TensorBoard events, progress and evaluation files;
every process reads its own shard of each global batch and takes part in
checkpoints. SIGTERM or SIGINT stops every process at one step, saved
(`sfae_jax.training.preemption`).

Exit statuses: 0 done; 1 an error the message explains (a rerun repeats it); 2
a usage error; 69 the multi-process job did not form; 75 stopped by a signal at
a saved checkpoint (rerun to resume); other: a crash (rerun resumes from the last
checkpoint).
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from etils import epath
import jax
from ml_collections import config_flags

from sfae_jax import evaluate
from sfae_jax.data import loader, registry, sources
from sfae_jax.models import create_model
from sfae_jax.runtime import cli, distributed, sharding
from sfae_jax.training import checkpoints, config_checks, loop, metrics, monitor
from sfae_jax.training import preemption, run_info, run_setup, tensorboard
from sfae_jax.training import train_step, transfer, workdir_lock
from tfds_bp4d import prepare

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file, e.g. configs/synthetic.py[:arg].",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Run folder: checkpoints, logs, evaluations "
                    "(local or gs://).")
distributed.define_absl_flags()


PARAMETERS_FILE = "parameters.txt"  # the parameter table, one line per array


def _eval_tag(split: str) -> str:
  return f"eval_{split}/mean_f1"


def _is_main() -> bool:
  return jax.process_index() == 0


def _prepare_data(config) -> str:
  """Process 0 generates/builds the embedded synthetic dataset if needed; the
  others wait, then use it (never concurrently). Unknown datasets stop here."""
  registry.of_config(config)
  distributed.run_on_main("sfae_dataset_ready", lambda: prepare.ensure_dataset(config))
  return os.path.expanduser(config.data_dir)


def _hold_workdir(workdir) -> workdir_lock.WorkdirLock:
  """Process 0 creates and locks the workdir; a refusal stops every process."""
  lock = workdir_lock.WorkdirLock(workdir)
  def take():
    try:
      epath.Path(workdir).mkdir(parents=True, exist_ok=True)
      lock.acquire()
    except OSError as e:
      raise workdir_lock.WorkdirError(
          f"Cannot write the workdir {workdir} ({e.strerror or e}): choose a "
          "--workdir you can write to.") from None
    if lock.note:
      print(lock.note, flush=True)
  distributed.run_on_main("sfae_workdir_lock", take)
  return lock


def _evaluation_if_finished(workdir, total: int, step: int, split: str):
  """The stored evaluation of a run already at (or past) its last step, or None
  when it has more to train or was not evaluated yet."""
  path = epath.Path(workdir) / f"eval_{split}_{step}.json"
  if step < total or not path.exists():
    return None
  if _is_main():
    print(f"{workdir} has trained {step} steps (this config asks for {total}) and "
          f"is evaluated ({path}): nothing to do. To train longer, rerun with a "
          "larger --config.num_train_steps; to evaluate again: python -m "
          f"sfae_jax.evaluate --workdir {workdir}", flush=True)
  return json.loads(path.read_text())


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains (or resumes) in `workdir`, then evaluates the final state; returns the
  evaluation (au_metrics dict plus `step` and `split`). Every process of a
  multi-process job calls this. Raises `preemption.Preempted` when a signal
  stopped it (its checkpoint saved)."""
  config_checks.check(config)
  lock = _hold_workdir(workdir)
  try:
    return _train_and_evaluate(config, workdir)
  finally:
    lock.release()


def _train_and_evaluate(config, workdir: str) -> dict:
  data_dir = _prepare_data(config)
  train_split, eval_split = sources.splits(config)
  train_src = sources.open_split(data_dir, config.dataset_config, train_split,
                                  dataset=registry.of_config(config).name)
  mesh = sharding.make_mesh()
  host_batch = sharding.local_batch_size(config.batch_size, mesh)
  steps_per_epoch = len(train_src) // config.batch_size
  total = (config.num_train_steps if config.num_train_steps > 0
           else config.num_epochs * steps_per_epoch)
  config_checks.check_steps(total, config)
  data_iter = loader.Prefetch(iter(loader.train_loader(
      train_src, host_batch, config.seed, config.grain_workers)))
  mngr, resume_step = checkpoints.open_for_training(workdir, config,
                                                    loader.CHECKPOINTING)
  # The checks above passed: now the record is written (or checked, on resume).
  info = run_setup.decide(workdir, config, data_dir, train_split, len(train_src),
                          resume_step)
  record = info.to_json()
  model = create_model(config, info.au_ids, info.landmark_scheme,
                       intensity_au_ids=info.intensity_au_ids)
  setup = train_step.train_setup(model, config, steps_per_epoch)

  start_step = 0
  if resume_step is not None:
    # Resuming needs only the state's shapes: nothing to initialise or compile.
    abstract = checkpoints.abstract_like(
        jax.eval_shape(setup.init, jax.random.key(config.seed)),
        sharding.replicated(mesh))
    mngr, state, _, start_step = checkpoints.restore_for_training(
        mngr, workdir, config, abstract, loader.CHECKPOINTING, data_iter)
    finished = _evaluation_if_finished(workdir, total, start_step, eval_split)
    if finished is not None:
      mngr.close()
      data_iter.close()
      return finished
    print(f"Resumed from step {start_step} in {workdir}", flush=True)
  else:
    state = jax.jit(setup.init, out_shardings=sharding.replicated(mesh))(
        jax.random.key(config.seed))
    params = model.initial_params(state.params, info, config)
    if params is not state.params:  # host arrays where the model changed some
      state = state.replace(params=jax.device_put(params, sharding.replicated(mesh)))
    if config.init_from:
      state, report = transfer.init_from(config.init_from, state, model, info.au_ids,
                                         info.landmark_scheme,
                                         sharding.replicated(mesh))
      if _is_main():
        print(report.summary(), flush=True)

  writer = tensorboard.EventWriter(workdir)
  if start_step == 0 and _is_main():
    writer.hparams(run_info.flat_config(config), metrics=[_eval_tag(eval_split)])
    table, count = monitor.parameter_table(state.params)
    (epath.Path(workdir) / PARAMETERS_FILE).write_text(table + "\n")
    print(f"{count:,} parameters (per array: {epath.Path(workdir) / PARAMETERS_FILE})",
          flush=True)
  if _is_main():
    print(f"Training {config.model_name} on {train_split} ({len(train_src)} examples, "
          f"{steps_per_epoch} steps/epoch) for {total} steps on {mesh.size} "
          f"{jax.devices()[0].platform} device(s) in {jax.process_count()} "
          f"process(es), {config.dtype}, from step {start_step}.",
          flush=True)

  step_fn = train_step.make_train_step(model, setup.tx, setup.schedule, config,
                                       info.au_weights, mesh)
  key = jax.jit(lambda: jax.random.key(config.seed + 1),  # multi-host safe
                out_shardings=sharding.replicated(mesh))()
  loop_step = loop.LoopStep(step_fn, mesh, key, bool(info.intensity_au_ids))
  acc, rate = metrics.TrainAverages(), monitor.Rate(config.batch_size)
  with preemption.StopSignals() as stop:
    for step in range(start_step, total):
      state, out = loop_step(state, data_iter, step)
      acc.add(out)
      done = step + 1
      if step == start_step:  # the first step compiles: time from its end
        jax.block_until_ready(state.step)
        rate.add(done)
      if done % config.log_every_steps == 0 or done == total:
        values = acc.compute()
        loop_step.check()
        images_per_s = rate.add(done)
        writer.scalars(done, dict(values, images_per_second=images_per_s))
        if _is_main():
          print(monitor.progress_line(done, total, steps_per_epoch,
                          dict(values, batch=config.batch_size), images_per_s),
                flush=True)
      preempted = stop.reached(done)
      if preempted or done % config.checkpoint_every_steps == 0 or done == total:
        loop_step.check()
        checkpoints.save(mngr, done, state, loader.CHECKPOINTING.save(data_iter),
                         {"epoch": done / steps_per_epoch}, record,
                         force=done == total or preempted)
      if preempted:
        mngr.wait_until_finished()
        writer.flush()
        mngr.close()
        data_iter.close()
        raise preemption.Preempted(done, stop.signame)
  mngr.wait_until_finished()
  writer.flush()

  variables = {"params": state.params, "batch_stats": state.batch_stats}
  result = evaluate.evaluate_state(workdir, config, info, variables, mesh, data_dir,
                                   eval_split, int(state.step))
  writer.scalars(int(state.step), {_eval_tag(eval_split): result["mean_f1"]})
  writer.close()
  mngr.close()
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.workdir is None or _CONFIG.value is None:
    raise app.UsageError("Both --config and --workdir are required, e.g. "
                         "--config configs/synthetic.py --workdir runs/synthetic")
  logging.set_verbosity(logging.WARNING)  # orbax and TFDS are chatty at INFO
  checkpoints.report_write_failures_once()
  try:
    config = _CONFIG.value
    config.keys()  # a config file that failed to load raises here
  except OSError as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)
  try:
    distributed.initialize(distributed.settings_from(FLAGS))
  except distributed.DistributedError as e:
    distributed.fail(e)
  try:
    train_and_evaluate(config, FLAGS.workdir)
  except preemption.Preempted as e:
    print(e, file=sys.stderr, flush=True)
    sys.exit(preemption.EXIT_PREEMPTED)
  except KeyboardInterrupt:  # outside the training loop (which saves first)
    print("interrupted before training started or after it ended; rerun the "
          "same command to continue.", file=sys.stderr)
    sys.exit(130)
  except Exception as e:  # pylint: disable=broad-except
    sys.exit(_fail(e))


def _fail(e: Exception) -> int:
  """One line for the errors a user can act on (exit 1); others propagate."""
  if checkpoints.disk_full(e):  # whatever type orbax or tensorstore wrapped it in
    print(f"error: {checkpoints.disk_full_message(FLAGS.workdir, e)}",
          file=sys.stderr)
  elif isinstance(e, (monitor.NonFiniteLossError, ValueError,
                      checkpoints.CheckpointError, workdir_lock.WorkdirError,
                      distributed.PeerError)):
    print(f"error: {e}", file=sys.stderr)
  elif isinstance(e, jax.errors.JaxRuntimeError) and jax.process_count() > 1:
    print(f"error: process {jax.process_index()}: a collective with the other "
          f"processes failed ({' '.join(str(e).split())[:300]}); another process "
          "has probably died. Rerun the same command on every host to resume from "
          "the last checkpoint.", file=sys.stderr)
  else:
    raise e
  return 1


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
