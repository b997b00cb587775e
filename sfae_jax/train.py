"""Training: `python -m sfae_jax.train --config configs/x.py --workdir DIR`.

This file is intentionally short on logic outside `train_and_evaluate`, which a
notebook or a test can call. Rerunning the same command on the same workdir resumes
from the latest checkpoint (same batches, same random numbers, same result).
"""

from __future__ import annotations

import math
import os
import sys
import time

from absl import app, flags, logging
from clu import metric_writers, parameter_overview
import jax
from ml_collections import config_flags

from sfae_jax import checkpoints, evaluate, losses, metrics, train_step
from sfae_jax.data import pipeline, prepare
from sfae_jax.models import BP4D_AUS

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file, e.g. configs/synthetic.py[:arg].",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Run folder: checkpoints, logs, evaluations.")


class NonFiniteLossError(FloatingPointError):
  pass


def splits(config) -> tuple[str, str]:
  """(train, eval) splits: fold k evaluates on part k, trains on the other two."""
  if config.fold not in (1, 2, 3):
    raise ValueError(f"config.fold must be 1, 2 or 3, got {config.fold}.")
  others = "+".join(f"part{p}" for p in (1, 2, 3) if p != config.fold)
  return (config.train_split or others, config.eval_split or f"part{config.fold}")


def _run_info(workdir, config, train_src, data_dir) -> dict:
  """AU class weights from the training split, computed once per run and kept in
  run.json (a resumed run reuses them rather than re-reading the data)."""
  path = os.path.join(workdir, checkpoints.RUN_FILE)
  if os.path.exists(path):
    return checkpoints.read_run_info(workdir)[1]
  rates, known = pipeline.occurrence_rates(train_src)
  for au, r, k in zip(BP4D_AUS, rates, known):
    if k == 0 or r == 0:
      logging.warning("AU%02d has no positive training label (known %d): its class "
                      "weight is capped.", au, k)
  info = {"au_ids": list(BP4D_AUS), "landmark_scheme": config.dataset_config,
          "occurrence_rates": rates.tolist(), "known_labels": known.tolist(),
          "au_weights": losses.au_class_weights(rates).tolist(),
          "threshold": config.threshold, "train_examples": len(train_src),
          "data_dir": os.path.abspath(data_dir)}
  if jax.process_index() == 0:
    checkpoints.write_run_info(workdir, config, **info)
  return info


def _check_finite(step: int, values: dict) -> None:
  loss = float(values["loss"])
  if not math.isfinite(loss):
    parts = ", ".join(f"{k}={float(v):.4g}" for k, v in sorted(values.items()))
    raise NonFiniteLossError(
        f"Non-finite loss at step {step} ({parts}). The last checkpoint is "
        "untouched; lower --config.learning_rate or check the data.")


def _progress(step, total, steps_per_epoch, values, rate, eta) -> str:
  return (f"epoch {step / steps_per_epoch:5.2f}  step {step}/{total}  "
          f"loss {values['loss']:.4f} (ce {values['ce']:.3f} dice "
          f"{values['dice']:.3f} lm {values['landmark']:.3f})  lr "
          f"{values['learning_rate']:.2e}  {rate:.1f} img/s  ETA {eta / 60:.1f} min")


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains (or resumes) in `workdir`, then evaluates the final state; returns the
  evaluation (au_metrics dict plus `step` and `split`)."""
  os.makedirs(workdir, exist_ok=True)
  data_dir = prepare.ensure_dataset(config)
  train_split, eval_split = splits(config)
  train_src = pipeline.open_split(data_dir, config.dataset_config, train_split)
  info = _run_info(workdir, config, train_src, data_dir)

  mesh = train_step.make_mesh()
  if config.batch_size % mesh.size:
    raise ValueError(f"config.batch_size={config.batch_size} must be a multiple of "
                     f"the {mesh.size} devices.")
  steps_per_epoch = len(train_src) // config.batch_size
  total = (config.num_train_steps if config.num_train_steps > 0
           else config.num_epochs * steps_per_epoch)
  model = train_step.create_model(config, info["au_ids"], info["landmark_scheme"])
  schedule = train_step.learning_rate_schedule(config, steps_per_epoch)
  tx = train_step.make_optimizer(config, schedule)
  init = jax.jit(lambda k: train_step.init_state(model, tx, config, k),
                 out_shardings=train_step.replicated(mesh))
  state = init(jax.random.key(config.seed))

  mngr = checkpoints.manager(workdir, config)
  host_batch = config.batch_size // jax.process_count()
  data_iter = iter(pipeline.train_loader(train_src, host_batch, config.seed,
                                         config.grain_workers))
  start_step = 0
  if mngr.latest_step() is not None:
    abstract = checkpoints.abstract_like(state, train_step.replicated(mesh))
    state, meta = checkpoints.restore(mngr, None, abstract)
    data_iter.set_state(meta["data"].encode())
    start_step = int(state.step)
    logging.info("Resumed from step %d in %s", start_step, workdir)

  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  if start_step == 0:
    writer.write_hparams({k: v for k, v in _flat(config).items()})
    print(parameter_overview.get_parameter_overview(state.params), flush=True)
  print(f"Training {config.model} on {train_split} ({len(train_src)} examples, "
        f"{steps_per_epoch} steps/epoch) for {total} steps on {mesh.size} "
        f"{jax.devices()[0].platform} device(s), from step {start_step}.", flush=True)

  step_fn = train_step.make_train_step(model, tx, schedule, config,
                                       info["au_weights"], mesh)
  key = jax.device_put(jax.random.key(config.seed + 1), train_step.replicated(mesh))
  acc, pending, t0, n0 = None, None, None, start_step
  for step in range(start_step, total):
    batch = train_step.put_batch(next(data_iter), mesh)
    state, out = step_fn(state, batch, key)
    if pending is not None:  # one step late, so the host never stalls the device
      _check_finite(*pending)
    pending = (step + 1, out)
    m = metrics.TrainMetrics.single_from_model_output(**out)
    acc = m if acc is None else acc.merge(m)
    if t0 is None:  # the first step compiles: time from the second
      jax.block_until_ready(state.step)
      t0, n0 = time.perf_counter(), step + 1
    done = step + 1
    if done % config.log_every_steps == 0 or done == total:
      values = {k: float(v) for k, v in acc.compute().items()}
      _check_finite(*pending)
      elapsed = time.perf_counter() - t0
      rate = (done - n0) * config.batch_size / max(elapsed, 1e-9)
      eta = (total - done) * config.batch_size / max(rate, 1e-9)
      writer.write_scalars(done, dict(values, images_per_second=rate))
      print(_progress(done, total, steps_per_epoch, values, rate, eta), flush=True)
      acc = None
    if done % config.checkpoint_every_steps == 0 or done == total:
      _check_finite(*pending)
      checkpoints.save(mngr, done, state, {"data": data_iter.get_state().decode(),
                                           "epoch": done / steps_per_epoch},
                       force=done == total)
  mngr.wait_until_finished()
  writer.flush()

  result = evaluate.evaluate_state(workdir, config, info, state, mesh, data_dir,
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


def _parse_flags(argv):
  """absl flag parsing, with config mistakes as one-line errors (no traceback)."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    message = str(e)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    message = str(e.args[0] if e.args else e)
  message = message.replace("\\n", " ").replace("\\", "").replace("'", "")
  message = " ".join(message.split())
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


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
    train_and_evaluate(config, FLAGS.workdir)
  except (pipeline.DatasetError, NonFiniteLossError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
