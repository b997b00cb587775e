"""The run record, `WORKDIR/run.json`: what evaluation and prediction need besides
the checkpoints (the config, the AU list, the landmark scheme, the AU class weights,
the threshold, where the data were). Written by process 0 only; read by anyone.

The record is written once a run's checks have passed (dataset, batch size,
devices), and a run without a checkpoint writes a fresh one. A resumed run is
compared with it field by field (`compare`): a field that fixes the model or its
data (anything not in `MUTABLE`: model, sizes, landmark scheme, AU set, LRL/MSL
switches, fold, batch size, seed, ...) may not change; a field in `MUTABLE`
(steps, learning rate, threshold, ...) may, and the change is kept in `changes`
with the step it took effect at.

Every checkpoint keeps a copy of the record as it was when the checkpoint was
saved (`checkpoints/<step>/run/metadata`); a missing or damaged run.json is
refused with the command that restores it from there.

Paths may be local or any filesystem `etils.epath` knows (`gs://...`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from etils import epath
import ml_collections

from sfae_jax.runtime import files

RUN_FILE = "run.json"
RECORD_ITEM = "run"  # each checkpoint's copy of the record (orbax JsonSave)

# Config fields a resumed run may change: how long and how fast it trains, how it
# is evaluated and logged, where the data live, how the model computes (dtype,
# conv_impl). Every other field (the whole `model` block, the input size, the
# dataset config, split, batch size, seed, optimiser kind, ...) fixes the
# parameters' shapes or the data the checkpoint was trained on.
MUTABLE = frozenset({
    "num_epochs", "num_train_steps", "learning_rate", "lr_decay_rate",
    "lr_decay_epochs", "momentum", "nesterov", "weight_decay", "au_weight",
    "dice_weight", "dice_divide_by_batch", "landmark_weight", "refine_weight",
    "threshold", "eval_batch_size", "log_every_steps", "checkpoint_every_steps",
    "keep_checkpoints", "grain_workers", "data_dir", "conv_impl", "dtype",
    "max_rotation", "flip", "gt_landmark_attention", "synthetic.manual_dir",
    "synthetic.workers", "init_from", "intensity_weight",
})


class RunChangedError(ValueError):
  """A resumed run asks for a different model or data than its record."""


@dataclasses.dataclass(frozen=True)
class RunInfo:
  """Each fact once: the AU ids and landmark scheme are the dataset's, the
  threshold is the config's (properties below)."""
  config: ml_collections.ConfigDict
  au_weights: tuple[float, ...]
  occurrence_rates: tuple[float, ...] = ()
  known_labels: tuple[int, ...] = ()
  # Training split's P(AU j present | AU i present) (`sources.cooccurrence`,
  # 0 where AU i is never present): the relation head's prior.
  cooccurrence: tuple[tuple[float, ...], ...] = ()
  train_examples: int = 0
  data_dir: str = ""
  # Changes of MUTABLE fields on resume: {"step", "field", "old", "new"}.
  changes: tuple[dict, ...] = ()
  # What the model was trained on: {"name", "config", "synthetic", ...}
  # (`sfae_jax.data.sources.dataset_record`).
  dataset: dict = dataclasses.field(default_factory=dict)
  # The AUs the model estimates intensity for (its intensity head; none: no
  # head), in the dataset's intensity label order (`config.intensity`).
  intensity_au_ids: tuple[int, ...] = ()

  @property
  def au_ids(self) -> tuple[int, ...]:
    """The AUs the model detects, in its output order: the dataset's."""
    return tuple(self.dataset["au_ids"])

  @property
  def landmark_scheme(self) -> str:
    return self.dataset["landmarks"]

  @property
  def threshold(self) -> float:
    return float(self.config.threshold)

  def to_json(self) -> dict[str, Any]:
    out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    out["config"] = json.loads(self.config.to_json_best_effort())
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

  @classmethod
  def from_json(cls, data: dict) -> "RunInfo":
    names = {f.name for f in dataclasses.fields(cls)}
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
          if k in names}
    kw["config"] = ml_collections.ConfigDict(data["config"])
    # Records written before each fact had one home kept the AU ids and the
    # scheme beside the dataset's record as well; those runs still load.
    dataset = dict(kw.get("dataset") or {})
    for key, old in (("au_ids", "au_ids"), ("landmarks", "landmark_scheme")):
      if key not in dataset and old in data:
        dataset[key] = data[old]
    kw["dataset"] = dataset
    return cls(**kw)


def path(workdir) -> epath.Path:
  return epath.Path(workdir) / RUN_FILE


def exists(workdir) -> bool:
  return path(workdir).exists()


def write(workdir, info: RunInfo) -> None:
  """Atomically (a temporary file renamed) where the filesystem allows it."""
  files.write_atomically(path(workdir), json.dumps(info.to_json(), indent=1,
                                                   sort_keys=True))


class RecordError(ValueError):
  """run.json is missing beside checkpoints, or unreadable; the message says how
  to restore it from the copy every checkpoint keeps."""


def copy_path(workdir, step: int) -> epath.Path:
  """The copy of the record that checkpoint `step` keeps (its `run` item)."""
  return epath.Path(workdir) / "checkpoints" / str(step) / RECORD_ITEM / "metadata"


def _restore_hint(workdir, target) -> str:
  """How to restore `target` from the newest checkpoint that keeps a copy; ""
  when `workdir` has no checkpoint."""
  folder = epath.Path(workdir) / "checkpoints"
  steps = sorted((int(d.name) for d in folder.iterdir() if d.name.isdigit()),
                 reverse=True) if folder.is_dir() else []
  copies = [copy_path(workdir, s) for s in steps if copy_path(workdir, s).exists()]
  if copies:
    return (f"Restore it from the copy in the newest checkpoint: cp {copies[0]} "
            f"{target}")
  if steps:
    return ("Its checkpoints keep no copy of it (they predate copies): restore "
            f"{target} from a backup, or train again in a new workdir.")
  return ""


def read(workdir) -> RunInfo:
  """The record of `workdir`; RecordError when it is missing beside checkpoints
  or cannot be parsed, FileNotFoundError when `workdir` is no training run."""
  target = path(workdir)
  if not target.exists():
    hint = _restore_hint(workdir, target)
    if hint:
      raise RecordError(
          f"{target} is missing, but {workdir} has checkpoints; a record is never "
          f"made up for weights it did not see trained. {hint}")
    raise FileNotFoundError(
        f"{target} does not exist: {str(workdir)!r} is not a training workdir (train "
        "into it with `python -m sfae_jax.train --config ... --workdir DIR`).")
  try:
    data = json.loads(target.read_text())
    config = data["config"]
  except (ValueError, KeyError, TypeError) as e:
    data, config, error = None, None, e
  if isinstance(config, dict) and not isinstance(config.get("model"), dict):
    raise RecordError(
        f"{target} was written by an earlier version of sfae-jax (its config has "
        "no model block, config.model_name + config.model): this version cannot "
        "load it. Train again in a new workdir.")
  try:
    if data is None:
      raise error
    return RunInfo.from_json(data)
  except (ValueError, KeyError, TypeError) as e:
    hint = _restore_hint(workdir, target) or (
        "Restore it from a backup, or train again in a new workdir.")
    raise RecordError(f"{target} cannot be read ({' '.join(str(e).split())[:200]}"
                      f"). {hint}") from None


def flat_config(config) -> dict[str, Any]:
  """`{'synthetic.size': [320, 240], ...}`: JSON values, dotted keys."""
  data = json.loads(config.to_json_best_effort()) if hasattr(
      config, "to_json_best_effort") else config
  out = {}
  def walk(d, prefix):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(v, f"{prefix}{k}.")
      else:
        out[f"{prefix}{k}"] = v
  walk(data, "")
  return out


def compare(stored: RunInfo, config, workdir) -> list[tuple[str, Any, Any]]:
  """The MUTABLE fields that differ between the record and `config`, as (field,
  stored, new); raises RunChangedError naming the first other field that does.
  A field only one of them has is not compared."""
  old, new = flat_config(stored.config), flat_config(config)
  changed = [(k, old[k], new.get(k)) for k in sorted(old)
             if k in new and old[k] != new[k]]
  fixed = [c for c in changed if c[0] not in MUTABLE]
  if fixed:
    k, was, now = fixed[0]
    more = f" (and {', '.join(c[0] for c in fixed[1:])})" if fixed[1:] else ""
    raise RunChangedError(
        f"{workdir} was trained with {k}={was!r}; this run asks for {k}={now!r}"
        f"{more}. That changes the model or its data, so its checkpoints cannot "
        f"continue: rerun with --config.{k}={was!r}, or use a new --workdir.")
  return changed


def with_changes(stored: RunInfo, config, changed, step: int) -> RunInfo:
  """The record of a run resumed at `step` with the MUTABLE `changed` fields."""
  log = tuple(stored.changes) + tuple(
      {"step": step, "field": k, "old": was, "new": now} for k, was, now in changed)
  return dataclasses.replace(stored, config=config, changes=log)
