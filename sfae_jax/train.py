"""Training: `python -m sfae_jax.train --config configs/x.py --workdir DIR`.

This file is intentionally short on logic outside `train_and_evaluate`, which a
notebook or a test can call. Rerunning the same command on the same workdir resumes
from the latest checkpoint (same batches, same random numbers, same result).

Several processes (hosts) run the same command; `sfae_jax.distributed` joins them
into one job first (flags, JAX_* variables, or SLURM / Open MPI / Cloud TPU).
Process 0 locks the workdir for the job (`sfae_jax.workdir_lock`), prepares the
dataset and writes run.json, TensorBoard events, progress and evaluation files;
every process reads its own shard of each global batch and takes part in
checkpoints. SIGTERM or SIGINT stops every process at one step, saved
(`sfae_jax.preemption`).

Exit statuses: 0 done; 1 an error the message explains (a rerun repeats it); 2
a usage error; 69 the multi-process job did not form; 75 stopped by a signal at
a saved checkpoint (rerun to resume); other: a crash (rerun resumes from the last
checkpoint).
"""

from __future__ import annotations

import collections
import math
import os
import sys
import time

from absl import app, flags, logging
from clu import metric_writers, parameter_overview
from etils import epath
import jax
from ml_collections import config_flags
import numpy as np

from sfae_jax import checkpoints, cli, config_checks, distributed, evaluate, losses
from sfae_jax import metrics, preemption, provenance, run_info, sharding
from sfae_jax import train_step, transfer, workdir_lock
from sfae_jax.data import pipeline, prepare
from sfae_jax.models import create_model, relation
from sfae_jax.models.sfae_net import RELATION_HEAD

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file, e.g. configs/synthetic.py[:arg].",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Run folder: checkpoints, logs, evaluations "
                    "(local or gs://).")
flags.DEFINE_enum("distributed", "auto", distributed.MODES,
                  "auto: join a multi-process job when the flags below, the JAX_* "
                  "variables or a SLURM/Open MPI/Cloud TPU cluster say so; on: "
                  "always; off: one process.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Processes in the job.")
flags.DEFINE_integer("process_id", None, "This process's id, 0..num_processes-1.")
flags.DEFINE_integer("heartbeat_timeout", distributed.Settings.heartbeat_timeout,
                     "Seconds before a silent process counts as dead.")
flags.DEFINE_integer("join_timeout", distributed.Settings.initialization_timeout,
                     "Seconds to wait for every process to join the job.")


PARAMETERS_FILE = "parameters.txt"  # the parameter table, one line per array


class NonFiniteLossError(FloatingPointError):
  pass


def _is_main() -> bool:
  return jax.process_index() == 0


def _run_info(workdir, config, data_dir, train_split, train_examples: int,
              resume_step) -> run_info.RunInfo:
  """The run record, decided by process 0 once the run's checks have passed, then
  read by every process.

  A new run (no checkpoint yet, whatever an earlier failed attempt left) gets a
  fresh record: AU class weights from the training split, the dataset's
  provenance. A resumed run keeps its record; a changed field that fixes the model
  or its data stops it (`run_info.RunChangedError`), a changed MUTABLE field is
  printed and recorded with the step it takes effect at. Checkpoints without a
  record stop it too: a record is never invented for weights it did not train."""
  def decide():
    if resume_step is not None:
      stored = run_info.read(workdir)
      changed = run_info.compare(stored, config, workdir)
      if stored.train_examples and stored.train_examples != train_examples:
        raise run_info.RunChangedError(
            f"{workdir} was trained on {stored.train_examples} examples of "
            f"{train_split}; {data_dir} has {train_examples}: not the same data. "
            f"Point --config.data_dir at {stored.data_dir}, or use a new --workdir.")
      if changed:
        print(f"Resuming {workdir} at step {resume_step} with changed settings: "
              + "; ".join(f"{k} {was!r} -> {now!r}" for k, was, now in changed),
              flush=True)
        run_info.write(workdir, run_info.with_changes(stored, config, changed,
                                                      resume_step))
      return
    labels = pipeline.labels_of(pipeline.open_split(
        data_dir, config.dataset_config, train_split, decode_images=False,
        dataset=pipeline.dataset_of(config)))
    rates, known = pipeline.occurrence_rates(labels)
    co = np.nan_to_num(pipeline.cooccurrence(labels), nan=0.0)
    dataset = provenance.dataset_record(data_dir, config, train_split)
    au_ids = dataset["au_ids"]  # from the dataset, not the model's constant
    for au, r, k in zip(au_ids, rates, known):
      if k == 0 or r == 0:
        logging.warning("AU%02d has no positive training label (known %d): its "
                        "class weight is capped.", au, k)
    run_info.write(workdir, run_info.RunInfo(
        config=config, au_ids=tuple(au_ids),
        landmark_scheme=dataset["landmarks"],
        occurrence_rates=tuple(rates.tolist()),
        known_labels=tuple(known.tolist()),
        cooccurrence=tuple(tuple(row) for row in co.tolist()),
        au_weights=tuple(losses.au_class_weights(rates).tolist()),
        threshold=config.threshold, train_examples=len(labels),
        data_dir=os.path.abspath(data_dir) if "://" not in data_dir else data_dir,
        dataset=dataset))
  distributed.run_on_main("sfae_run_info", decide)
  return run_info.read(workdir)


def _prepare_data(config) -> str:
  """Process 0 generates/builds the embedded synthetic dataset if needed; the
  others wait, then use it (never concurrently)."""
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


def _with_relation_prior(state, info: run_info.RunInfo, mesh):
  """The relation head's relation matrix starts at the training split's
  co-occurrence (`relation.prior_logits`), kept in run.json."""
  co = np.asarray(info.cooccurrence, np.float32)
  if co.shape != (len(info.au_ids),) * 2:
    raise ValueError(
        f"relation_prior needs the training split's AU co-occurrence in run.json, "
        f"found shape {co.shape}: start the run in a fresh workdir.")
  params = dict(state.params)
  head = dict(params[RELATION_HEAD])
  head["relation"] = jax.device_put(relation.prior_logits(co),
                                    sharding.replicated(mesh))
  params[RELATION_HEAD] = head
  return state.replace(params=params)


def _check_finite(step: int, values: dict) -> None:
  loss = float(values["loss"])
  if not math.isfinite(loss):
    parts = ", ".join(f"{k}={float(v):.4g}" for k, v in sorted(values.items()))
    raise NonFiniteLossError(
        f"Non-finite loss at step {step} ({parts}). The last checkpoint is "
        "untouched; lower --config.learning_rate or check the data.")


def _progress(step, total, steps_per_epoch, values, rate) -> str:
  """One log line; the rate and ETA once a step after the compiled one is timed."""
  eta = (f"{rate:.1f} img/s  ETA {(total - step) * values['batch'] / rate / 60:.1f} "
         "min" if rate > 0 else "timing from the next step")
  return (f"epoch {step / steps_per_epoch:5.2f}  step {step}/{total}  "
          f"loss {values['loss']:.4f} (ce {values['ce']:.3f} dice "
          f"{values['dice']:.3f} lm {values['landmark']:.3f}, error "
          f"{100 * values['landmark_error']:.1f}%)  lr "
          f"{values['learning_rate']:.2e}  {eta}")


class _Rate:
  """Images per second over the last `window` log points: on a shared machine
  the rate since the start lags behind what the run does now."""

  def __init__(self, batch: int, window: int = 5):
    self._batch = batch
    self._points = collections.deque(maxlen=window + 1)

  def add(self, step: int) -> float:
    self._points.append((time.perf_counter(), step))
    (t0, s0), (t1, s1) = self._points[0], self._points[-1]
    return (s1 - s0) * self._batch / (t1 - t0) if s1 > s0 and t1 > t0 else 0.0


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
  train_split, eval_split = pipeline.splits(config)
  train_src = pipeline.open_split(data_dir, config.dataset_config, train_split,
                                  dataset=pipeline.dataset_of(config))
  mesh = sharding.make_mesh()
  host_batch = sharding.local_batch_size(config.batch_size, mesh)
  steps_per_epoch = len(train_src) // config.batch_size
  total = (config.num_train_steps if config.num_train_steps > 0
           else config.num_epochs * steps_per_epoch)
  config_checks.check_steps(total, config)
  data_iter = pipeline.Prefetch(iter(pipeline.train_loader(
      train_src, host_batch, config.seed, config.grain_workers)))
  mngr, resume_step = checkpoints.open_for_training(workdir, config)
  # The checks above passed: now the record is written (or checked, on resume).
  info = _run_info(workdir, config, data_dir, train_split, len(train_src),
                   resume_step)
  record = info.to_json()
  model = create_model(config, info.au_ids, info.landmark_scheme)
  schedule = train_step.learning_rate_schedule(config, steps_per_epoch)
  tx = train_step.make_optimizer(config, schedule)
  def make_state(key):
    return train_step.init_state(model, tx, config, key)

  start_step = 0
  if resume_step is not None:
    # Resuming needs only the state's shapes: nothing to initialise or compile.
    abstract = checkpoints.abstract_like(
        jax.eval_shape(make_state, jax.random.key(config.seed)),
        sharding.replicated(mesh))
    mngr, state, _, start_step = checkpoints.restore_for_training(
        mngr, workdir, config, abstract, data_iter)
    print(f"Resumed from step {start_step} in {workdir}", flush=True)
  else:
    state = jax.jit(make_state, out_shardings=sharding.replicated(mesh))(
        jax.random.key(config.seed))
    if config.get("au_relation") and config.get("relation_prior"):
      state = _with_relation_prior(state, info, mesh)
    if config.get("init_from"):
      state, report = transfer.init_from(config.init_from, state, info.au_ids,
                                         info.landmark_scheme,
                                         sharding.replicated(mesh))
      if _is_main():
        print(report.summary(), flush=True)

  writer = metric_writers.create_default_writer(workdir, just_logging=not _is_main())
  if start_step == 0 and _is_main():
    writer.write_hparams({k: v for k, v in _flat(config).items()})
    table = parameter_overview.get_parameter_overview(state.params)
    (epath.Path(workdir) / PARAMETERS_FILE).write_text(table + "\n")
    print(f"{parameter_overview.count_parameters(state.params):,} parameters "
          f"(per array: {epath.Path(workdir) / PARAMETERS_FILE})", flush=True)
  if _is_main():
    print(f"Training {config.model} on {train_split} ({len(train_src)} examples, "
          f"{steps_per_epoch} steps/epoch) for {total} steps on {mesh.size} "
          f"{jax.devices()[0].platform} device(s) in {jax.process_count()} "
          f"process(es), {config.get('dtype', 'float32')}, from step {start_step}.",
          flush=True)

  step_fn = train_step.make_train_step(model, tx, schedule, config,
                                       info.au_weights, mesh)
  key = jax.jit(lambda: jax.random.key(config.seed + 1),  # multi-host safe
                out_shardings=sharding.replicated(mesh))()
  acc, pending, rate = None, None, _Rate(config.batch_size)
  with preemption.StopSignals() as stop:
    for step in range(start_step, total):
      batch = next(data_iter)
      batch.pop("id")
      batch = sharding.put_batch(batch, mesh)
      if step == start_step:
        step_fn = distributed.compiled(step_fn, state, batch, key, name="train_step")
      state, out = step_fn(state, batch, key)
      if pending is not None:  # one step late, so the host never stalls the device
        _check_finite(*pending)
      pending = (step + 1, out)
      m = metrics.TrainMetrics.single_from_model_output(**out)
      acc = m if acc is None else acc.merge(m)
      done = step + 1
      if step == start_step:  # the first step compiles: time from its end
        jax.block_until_ready(state.step)
        rate.add(done)
      if done % config.log_every_steps == 0 or done == total:
        values = {k: float(v) for k, v in acc.compute().items()}
        _check_finite(*pending)
        images_per_s = rate.add(done)
        writer.write_scalars(done, dict(values, images_per_second=images_per_s))
        if _is_main():
          print(_progress(done, total, steps_per_epoch,
                          dict(values, batch=config.batch_size), images_per_s),
                flush=True)
        acc = None
      preempted = stop.reached(done)
      if preempted or done % config.checkpoint_every_steps == 0 or done == total:
        _check_finite(*pending)
        checkpoints.save(mngr, done, state, data_iter,
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
  writer.write_scalars(int(state.step), {f"eval_{eval_split}/mean_f1":
                                         result["mean_f1"]})
  writer.close()
  mngr.close()
  return result


def _flat(config, prefix=""):
  out = {}
  for k, v in config.items():
    if hasattr(v, "items"):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.workdir is None or _CONFIG.value is None:
    raise app.UsageError("Both --config and --workdir are required, e.g. "
                         "--config configs/synthetic.py --workdir runs/synthetic")
  logging.set_verbosity(logging.WARNING)  # orbax and TFDS are chatty at INFO
  try:
    config = _CONFIG.value
    config.keys()  # a config file that failed to load raises here
  except OSError as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)
  try:
    distributed.initialize(distributed.Settings(
        mode=FLAGS.distributed, coordinator_address=FLAGS.coordinator_address,
        num_processes=FLAGS.num_processes, process_id=FLAGS.process_id,
        heartbeat_timeout=FLAGS.heartbeat_timeout,
        initialization_timeout=FLAGS.join_timeout))
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
  except (pipeline.DatasetError, NonFiniteLossError, ValueError,
          checkpoints.CheckpointError, workdir_lock.WorkdirError,
          distributed.PeerError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  except jax.errors.JaxRuntimeError as e:
    if jax.process_count() == 1:
      raise
    print(f"error: process {jax.process_index()}: a collective with the other "
          f"processes failed ({' '.join(str(e).split())[:300]}); another process "
          "has probably died. Rerun the same command on every host to resume from "
          "the last checkpoint.", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
