"""Evaluation from checkpoints.

  python -m sfae_jax.evaluate --workdir runs/synthetic [--step N] [--split part3]
  python -m sfae_jax.evaluate --workdirs runs/f1 runs/f2 runs/f3   # 3-fold average
  python -m sfae_jax.evaluate --workdir runs/bp4d_f1 --dataset disfa \
      [--split part1+part2+part3]                # cross-dataset, on the shared AUs

Restores the parameters and BatchNorm statistics from the workdir alone (its
run.json and checkpoints), evaluates centre crops with the model's own landmarks
placing the attention, and prints and writes `eval_<split>_<step>.json` and `.md`:
per-AU F1 and accuracy (threshold from the run, 0.5 by default; labels not coded
excluded) and their means, and for a run with an intensity head per-AU ICC(3,1),
Pearson correlation and MAE of intensity over the coded frames (`intensity` in
the JSON, a second table in the .md). The end of training calls the same
`evaluate_state`, so the two agree exactly. In a multi-process job every process evaluates its shard
and every frame of the split is counted exactly once (checked); process 0 prints
and writes the files.

Cross-dataset (`--dataset` other than the run's): the run's model on another
dataset's split (all three parts by default), scored on the AUs both have (BP4D
and DISFA: 1, 2, 4, 6, 12), and intensity on the intensity AUs both have (BP4D's
6, 12, 17 in DISFA); the AUs left out, and why, are printed and written
(`eval_<dataset>_<split>_<step>.json` and `.md`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import NamedTuple, Optional, Sequence

from etils import epath
import jax
import ml_collections
import numpy as np

from sfae_jax.data import loader, registry, sources
from sfae_jax.runtime import distributed, files, sharding
from sfae_jax.training import metrics, run_info, trained_run
from sfae_jax.training import train_step


class SplitPredictions(NamedTuple):
  """A split's predictions and labels, one row per example in split order."""
  probs: np.ndarray                 # [N, A] occurrence probabilities
  labels: np.ndarray                # [N, A] occurrence labels, -1 not coded
  intensity: np.ndarray             # [N, K] 0-5 (K = 0 without intensity head)
  intensity_labels: Optional[np.ndarray]  # [N, K'] 0-5, -1; None: split has none


def predict_split(model, config, variables, source, mesh) -> SplitPredictions:
  """The model's predictions for every example of `source`, in order, on every
  process (each process predicts its shard; the shards are gathered)."""
  eval_step = train_step.make_eval_step(model, config, mesh)
  # Rounded up to a multiple of the devices: padding rows are masked out, so the
  # result does not depend on the batch, and any number of hosts can evaluate.
  global_batch = -(-config.eval_batch_size // mesh.size) * mesh.size
  host_batch = sharding.local_batch_size(global_batch, mesh, "eval_batch_size")
  probs, labels, ids, intensity, intensity_labels = [], [], [], [], []
  for batch in loader.eval_batches(source, host_batch, config.grain_workers):
    mask = batch.pop("mask")
    ids.append(np.where(mask, batch.pop("id"), -1))
    if "intensity" in batch:
      intensity_labels.append(batch.pop("intensity"))
    batch = sharding.put_batch(batch, mesh)
    if not probs:
      eval_step = distributed.compiled(eval_step, variables, batch, name="eval")
    p, i = eval_step(variables, batch)
    probs.append(sharding.host_local(p))
    intensity.append(sharding.host_local(i))
    labels.append(sharding.host_local(batch["au"]))
  # Every host ran the same number of batches: gather the padded arrays, then
  # drop the padding and order by example id.
  distributed.barrier("sfae_eval_gather")
  def everyone(parts):  # this host's rows -> every host's, in process order
    rows = np.concatenate(parts)
    return sharding.gather_hosts(rows).reshape(-1, *rows.shape[1:])
  probs, labels, ids = everyone(probs), everyone(labels), everyone(ids)
  intensity = everyone(intensity)
  intensity_labels = everyone(intensity_labels) if intensity_labels else None
  keep = ids >= 0
  order = np.argsort(ids[keep], kind="stable")
  in_order = lambda x: None if x is None else x[keep][order]  # noqa: E731
  ids = in_order(ids)
  if not np.array_equal(ids, np.arange(len(source))):
    raise RuntimeError(
        f"Evaluation covered {len(np.unique(ids))} distinct examples of "
        f"{len(source)} ({len(ids)} rows): each must be counted exactly once.")
  return SplitPredictions(in_order(probs), in_order(labels), in_order(intensity),
                          in_order(intensity_labels))


def evaluate_state(workdir, config, info: run_info.RunInfo, variables, mesh,
                   data_dir: str, split: str, step: int) -> dict:
  """Evaluates `variables` on `split`; prints the table and writes the eval files
  (process 0)."""
  source = sources.open_split(data_dir, config.dataset_config, split,
                               dataset=registry.of_config(config).name)
  model = trained_run.model_of(info)
  pred = predict_split(model, config, variables, source, mesh)
  result = metrics.au_metrics(pred.probs, pred.labels, info.threshold)
  result.update(split=split, step=step, num_examples=int(len(pred.labels)),
                threshold=info.threshold, au_ids=list(info.au_ids))
  title = f"{os.path.basename(os.path.normpath(str(workdir)))}: {split}, step {step}"
  table = metrics.markdown_table(result, info.au_ids, title)
  table += _intensity(result, pred, info.intensity_au_ids, info.intensity_au_ids,
                      title)
  _report(workdir, f"eval_{split}_{step}", result, table)
  return result


def _intensity(result: dict, pred: SplitPredictions, model_aus, data_aus,
               title: str) -> str:
  """Adds `result["intensity"]` (ICC, PCC, MAE on the AUs the model and the data
  both have intensity for) and returns its table for the .md; "" when there are
  none."""
  shared = [a for a in model_aus if a in data_aus]
  if not shared or pred.intensity_labels is None:
    return ""
  result["intensity"] = dict(metrics.intensity_metrics(
      pred.intensity[:, [list(model_aus).index(a) for a in shared]],
      pred.intensity_labels[:, [list(data_aus).index(a) for a in shared]]),
      au_ids=shared)
  return "\n\n" + metrics.intensity_table(result["intensity"], shared,
                                          f"{title}: intensity (0-5)")


def evaluate_workdir(workdir, step: Optional[int] = None,
                     split: Optional[str] = None,
                     data_dir: Optional[str] = None) -> dict:
  """Restores `workdir`'s checkpoint (latest, or `step`) and evaluates it."""
  mesh = sharding.make_mesh()
  info, _, variables, step = trained_run.load(workdir, step,
                                              sharding.replicated(mesh))
  config = info.config
  data_dir = data_dir or info.data_dir or os.path.expanduser(config.data_dir)
  split = split or sources.splits(config)[1]
  return evaluate_state(workdir, config, info, variables, mesh, data_dir, split,
                        step)


def evaluate_cross_dataset(workdir, dataset: str, split: Optional[str] = None,
                           data_dir: Optional[str] = None,
                           dataset_config: Optional[str] = None,
                           step: Optional[int] = None) -> dict:
  """The run's model on `dataset`, scored on the AUs the run and the dataset
  share (module docstring)."""
  mesh = sharding.make_mesh()
  info, model, variables, step = trained_run.load(workdir, step,
                                                  sharding.replicated(mesh))
  config = info.config
  data_config = ml_collections.ConfigDict(info.config.to_dict())
  data_config.dataset = registry.get(dataset).name
  data_config.dataset_config = dataset_config or registry.get(dataset).default_config
  data_dir = data_dir or info.data_dir or os.path.expanduser(config.data_dir)
  split = split or "part1+part2+part3"
  data_aus = sources.dataset_record(data_dir, data_config, split)["au_ids"]
  shared = [a for a in info.au_ids if a in data_aus]
  if not shared:
    raise ValueError(f"{workdir} detects AUs {list(info.au_ids)}; {dataset} codes "
                     f"{list(data_aus)}: none in common, nothing to score.")
  source = sources.open_split(data_dir, data_config.dataset_config, split,
                               dataset=dataset)
  pred = predict_split(model, config, variables, source, mesh)
  model_cols = [list(info.au_ids).index(a) for a in shared]
  data_cols = [list(data_aus).index(a) for a in shared]
  result = metrics.au_metrics(pred.probs[:, model_cols], pred.labels[:, data_cols],
                              info.threshold)
  not_coded = [a for a in info.au_ids if a not in shared]
  not_detected = [a for a in data_aus if a not in shared]
  why = (f"Left out: {_aus(not_coded) or 'none'} (the model detects them, "
         f"{dataset} does not code them); {_aus(not_detected) or 'none'} ({dataset} "
         "codes them, the model does not detect them).")
  result.update(split=split, step=step, num_examples=int(len(pred.labels)),
                threshold=info.threshold, au_ids=shared, dataset=dataset,
                left_out_not_in_dataset=not_coded,
                left_out_not_in_model=not_detected)
  title = (f"{os.path.basename(os.path.normpath(str(workdir)))} on {dataset} "
           f"{split}, step {step} (shared AUs)")
  table = metrics.markdown_table(result, shared, title) + "\n\n" + why
  data_int = sources.dataset_record(data_dir, data_config, split)["intensity_au_ids"]
  intensity = _intensity(result, pred, info.intensity_au_ids, data_int, title)
  if intensity:
    table += intensity + (f"\n\nIntensity on {_aus(result['intensity']['au_ids'])}"
                          ", the intensity AUs both have.")
  _report(workdir, f"eval_{dataset}_{split}_{step}", result, table)
  return result


def _report(workdir, name: str, result: dict, table: str) -> None:
  """Process 0 prints the table and writes WORKDIR/<name>.json and .md."""
  if jax.process_index() == 0:
    print(table, flush=True)
    base = epath.Path(workdir) / name
    files.write_atomically(base.with_suffix(".json"),
                           json.dumps(_jsonable(result), indent=1, sort_keys=True))
    files.write_atomically(base.with_suffix(".md"), table + "\n")


def _aus(ids) -> str:
  return ", ".join(f"AU{a:02d}" for a in ids)


def average_workdirs(workdirs: Sequence[str], step=None, split=None,
                     data_dir=None) -> dict:
  """Evaluates each fold's workdir and averages per-AU F1 over folds."""
  results = [evaluate_workdir(w, step, split, data_dir) for w in workdirs]
  avg = metrics.average_folds(results)
  if jax.process_index() == 0:
    print(metrics.markdown_table(avg, results[0]["au_ids"],
                                 f"average of {len(results)} folds"), flush=True)
  return avg


def _jsonable(result: dict) -> dict:
  def conv(v):
    if isinstance(v, dict):
      return _jsonable(v)
    if isinstance(v, np.ndarray):
      return [None if isinstance(x, float) and np.isnan(x) else x
              for x in v.tolist()]
    if isinstance(v, float) and np.isnan(v):
      return None
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
  parser.add_argument("--dataset", choices=tuple(registry.DATASETS),
                      help="another dataset than the run's: cross-dataset "
                      "evaluation on the AUs both have")
  parser.add_argument("--dataset_config", help="with --dataset: its builder "
                      "config (default bp4d49 / disfa49)")
  distributed.add_argparse_flags(parser)
  args = parser.parse_args(argv)
  try:
    distributed.initialize(distributed.settings_from(args))
  except distributed.DistributedError as e:
    distributed.fail(e)
  try:
    if args.workdir and args.dataset and (
        args.dataset != run_info.read(args.workdir).config.dataset):
      evaluate_cross_dataset(args.workdir, args.dataset, args.split, args.data_dir,
                             args.dataset_config, args.step)
    elif args.workdir:
      evaluate_workdir(args.workdir, args.step, args.split, args.data_dir)
    else:
      average_workdirs(args.workdirs, args.step, args.split, args.data_dir)
  except trained_run.LOAD_ERRORS as e:  # (registry.DatasetError is a ValueError)
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
