"""Evaluation from checkpoints.

  python -m sfae_jax.evaluate --workdir runs/synthetic [--step N] [--split part3]
  python -m sfae_jax.evaluate --workdirs runs/f1 runs/f2 runs/f3   # 3-fold average

Restores from the workdir alone (its run.json and checkpoints), evaluates centre
crops with the model's own landmarks placing the attention, and prints and writes
`eval_<split>_<step>.json` and `.md`: per-AU F1 and accuracy (threshold from the
run, 0.5 by default; labels not coded excluded) and their means. The end of
training calls the same `evaluate_state`, so the two agree exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

import jax
import numpy as np

from sfae_jax import checkpoints, metrics, train_step
from sfae_jax.data import pipeline


def predict_split(model, config, variables, source, mesh):
  """(probs `[N, A]`, labels `[N, A]`) for every example of `source`, in order."""
  eval_step = train_step.make_eval_step(model, config, mesh)
  host_batch = config.eval_batch_size // jax.process_count()
  if config.eval_batch_size % mesh.size:
    raise ValueError(f"config.eval_batch_size={config.eval_batch_size} must be a "
                     f"multiple of the {mesh.size} devices.")
  probs, labels = [], []
  for batch in pipeline.eval_batches(source, host_batch, config.grain_workers):
    mask = batch.pop("mask")
    out = train_step.host_local(eval_step(variables, train_step.put_batch(batch,
                                                                          mesh)))
    probs.append(out[mask])
    labels.append(batch["au"][mask])
  probs, labels = np.concatenate(probs), np.concatenate(labels)
  if jax.process_count() > 1:  # pragma: no cover - needs several hosts
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    probs = np.concatenate(list(multihost_utils.process_allgather(probs)))
    labels = np.concatenate(list(multihost_utils.process_allgather(labels)))
  return probs, labels


def evaluate_state(workdir: str, config, info: dict, state, mesh, data_dir: str,
                   split: str, step: int) -> dict:
  """Evaluates `state` on `split`; prints the table and writes the eval files."""
  source = pipeline.open_split(data_dir, config.dataset_config, split)
  model = train_step.create_model(config, info["au_ids"], info["landmark_scheme"])
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  probs, labels = predict_split(model, config, variables, source, mesh)
  result = metrics.au_metrics(probs, labels, info["threshold"])
  result.update(split=split, step=step, num_examples=int(len(labels)),
                threshold=info["threshold"], au_ids=list(info["au_ids"]))
  title = f"{os.path.basename(os.path.normpath(workdir))}: {split}, step {step}"
  table = metrics.markdown_table(result, info["au_ids"], title)
  print(table, flush=True)
  if jax.process_index() == 0:
    base = os.path.join(workdir, f"eval_{split}_{step}")
    with open(base + ".json", "w") as f:
      json.dump(_jsonable(result), f, indent=1, sort_keys=True)
    with open(base + ".md", "w") as f:
      f.write(table + "\n")
  return result


def evaluate_workdir(workdir: str, step: Optional[int] = None,
                     split: Optional[str] = None,
                     data_dir: Optional[str] = None) -> dict:
  """Restores `workdir`'s checkpoint (latest, or `step`) and evaluates it."""
  from sfae_jax import train  # pylint: disable=g-import-not-at-top
  config, info = checkpoints.read_run_info(workdir)
  data_dir = data_dir or info.get("data_dir") or os.path.expanduser(config.data_dir)
  split = split or train.splits(config)[1]
  mngr = checkpoints.manager(workdir, read_only=True)
  steps = mngr.all_steps()
  if not steps:
    raise FileNotFoundError(f"No checkpoint in {workdir}/checkpoints: train first.")
  if step is not None and step not in steps:
    raise ValueError(f"No checkpoint for step {step} in {workdir}; have {steps}.")
  mesh = train_step.make_mesh()
  model = train_step.create_model(config, info["au_ids"], info["landmark_scheme"])
  tx = train_step.make_optimizer(
      config, train_step.learning_rate_schedule(config, 1))
  abstract = jax.eval_shape(
      lambda k: train_step.init_state(model, tx, config, k), jax.random.key(0))
  abstract = checkpoints.abstract_like(abstract, train_step.replicated(mesh))
  state, _ = checkpoints.restore(mngr, step, abstract)
  mngr.close()
  return evaluate_state(workdir, config, info, state, mesh, data_dir, split,
                        int(state.step))


def average_workdirs(workdirs: Sequence[str], step=None, split=None) -> dict:
  """Evaluates each fold's workdir and averages per-AU F1 over folds."""
  results = [evaluate_workdir(w, step, split) for w in workdirs]
  avg = metrics.average_folds(results)
  print(metrics.markdown_table(avg, results[0]["au_ids"],
                               f"average of {len(results)} folds"), flush=True)
  return avg


def _jsonable(result: dict) -> dict:
  def conv(v):
    if isinstance(v, np.ndarray):
      return [None if isinstance(x, float) and np.isnan(x) else x
              for x in v.tolist()]
    return v
  return {k: conv(v) for k, v in result.items()}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m sfae_jax.evaluate",
                                   description=__doc__.splitlines()[0])
  group = parser.add_mutually_exclusive_group(required=True)
  group.add_argument("--workdir", help="a training run folder")
  group.add_argument("--workdirs", nargs="+", help="fold run folders to average")
  parser.add_argument("--step", type=int, help="checkpoint step (default latest)")
  parser.add_argument("--split", help="default: the run's evaluation split")
  parser.add_argument("--data_dir", help="default: the run's data_dir")
  args = parser.parse_args(argv)
  try:
    if args.workdir:
      evaluate_workdir(args.workdir, args.step, args.split, args.data_dir)
    else:
      average_workdirs(args.workdirs, args.step, args.split)
  except (FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
