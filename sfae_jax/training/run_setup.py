"""What a run is, worked out in one place: the run record (`run.json`) a new
run gets from its config and its training split (label statistics, AU class
weights, co-occurrence, the intensity head's AUs, the dataset's provenance), or
the stored one a resumed run keeps (with the changes its config may make).

The record's type and file are `sfae_jax.training.run_info`'s; the model a run
builds from it is `trained_run.model_of(record)`.
"""

from __future__ import annotations

import os

from absl import logging
import numpy as np

from sfae_jax.data import registry, sources
from sfae_jax.models import losses
from sfae_jax.runtime import distributed
from sfae_jax.training import config_checks, run_info


def decide(workdir, config, data_dir, train_split, train_examples: int,
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
    labels = sources.labels_of(sources.open_split(
        data_dir, config.dataset_config, train_split, decode_images=False,
        dataset=registry.of_config(config).name))
    rates, known = sources.occurrence_rates(labels)
    co = np.nan_to_num(sources.cooccurrence(labels), nan=0.0)
    dataset = sources.dataset_record(data_dir, config, train_split)
    au_ids = dataset["au_ids"]  # from the dataset, not the model's constant
    head_aus = intensity_aus(config, dataset)
    if not head_aus and config.intensity == "auto":
      print(f"No intensity head: the {dataset['name']} build at {dataset['path']} "
            "has no intensity labels (built from a copy without them, or by a "
            "builder before they existed: rebuild it to train one).", flush=True)
    for au, r, k in zip(au_ids, rates, known):
      if k == 0 or r == 0:
        logging.warning("AU%02d has no positive training label (known %d): its "
                        "class weight is capped.", au, k)
    run_info.write(workdir, run_info.RunInfo(
        config=config, occurrence_rates=tuple(rates.tolist()),
        known_labels=tuple(known.tolist()),
        cooccurrence=tuple(tuple(row) for row in co.tolist()),
        au_weights=tuple(losses.au_class_weights(rates).tolist()),
        train_examples=len(labels),
        data_dir=os.path.abspath(data_dir) if "://" not in data_dir else data_dir,
        dataset=dataset, intensity_au_ids=tuple(head_aus)))
  distributed.run_on_main("sfae_run_info", decide)
  return run_info.read(workdir)


def intensity_aus(config, dataset: dict) -> list[int]:
  """The AUs the intensity head estimates (`config.intensity`): the build's
  intensity AUs for 'auto' and 'on', none for 'off'; 'on' with a build that has
  none is refused."""
  aus = list(dataset.get("intensity_au_ids") or [])
  if config.intensity == "off":
    return []
  if config.intensity == "on" and not aus:
    raise config_checks.ConfigError(
        f"config.intensity='on', but the {dataset['name']} build at "
        f"{dataset['path']} has no intensity labels (its source.json lists no "
        "intensity_au_ids): rebuild it from a copy with intensity files, or set "
        "--config.intensity=auto.")
  return aus
