"""Where a number came from: the dataset a run was trained on, and the record
`predict` writes beside its CSV (and `analyze` copies into its report).

The BP4D builder writes `source.json` into the built dataset's folder: whether the
manual_dir was the synthetic generator's (its marker file), the AU ids, the
manual_dir. Training copies it into run.json (`RunInfo.dataset`); `predict` adds
the run, step, backend, package version and date. A run trained on the synthetic
dataset gives AU values on real faces that mean nothing: `SYNTHETIC_WARNING`.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Optional

from etils import epath

SOURCE_FILE = "source.json"      # in the built dataset's version folder
SUFFIX = ".provenance.json"      # beside predict's CSV: out.csv.provenance.json
SYNTHETIC_WARNING = (
    "WARNING: this run was trained on the synthetic BP4D (rendered faces), not on "
    "real data: its AU values on real faces are not meaningful. Train on BP4D "
    "(configs/default.py) for real predictions.")


def _version_dir(data_dir: str, dataset_config: str, dataset: str
                 ) -> Optional[epath.Path]:
  from sfae_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  root = epath.Path(pipeline.dataset_dir(data_dir, dataset_config, dataset))
  if not root.is_dir():
    return None
  versions = sorted((d for d in root.iterdir() if (d / "dataset_info.json").exists()),
                    key=lambda d: d.name)
  return versions[-1] if versions else None


def dataset_record(data_dir: str, config, split: str) -> dict[str, Any]:
  """What a run trains on: name, config, version, folder, split, AU ids, landmark
  scheme, and whether it is synthetic (the builder's source.json; for datasets
  built before it existed, the config's `synthetic.enabled`)."""
  from sfae_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from sfae_jax.face import schemes  # pylint: disable=g-import-not-at-top
  from sfae_jax.models import BP4D_AUS  # pylint: disable=g-import-not-at-top
  dataset = pipeline.dataset_of(config)
  version = _version_dir(data_dir, config.dataset_config, dataset)
  source = {}
  if version is not None and (version / SOURCE_FILE).exists():
    source = json.loads((version / SOURCE_FILE).read_text())
  synthetic = source.get("synthetic")
  if synthetic is None:
    synthetic = bool(config.synthetic.enabled)
  # The landmark scheme: the builder's record; builds before it: the BP4D config
  # name is the scheme.
  landmarks = source.get("landmarks") or schemes.of_dataset_config(
      config.dataset_config)
  return {"name": dataset, "config": config.dataset_config, "landmarks": landmarks,
          "version": version.name if version is not None else None,
          "path": str(version) if version is not None else None,
          "split": split, "synthetic": bool(synthetic),
          "au_ids": list(source.get("au_ids", BP4D_AUS)),
          "manual_dir": source.get("manual_dir")}


def is_synthetic(info) -> bool:
  """Was the run of `info` (a RunInfo) trained on the synthetic dataset?"""
  if info.dataset:
    return bool(info.dataset.get("synthetic"))
  return bool(info.config.get("synthetic", {}).get("enabled", False))


def prediction_record(workdir: str, info, step: int, backend: str,
                      threshold: float) -> dict[str, Any]:
  """The provenance of a table of AU predictions."""
  from sfae_jax import __version__  # pylint: disable=g-import-not-at-top
  synthetic = is_synthetic(info)
  return {
      "run": os.path.abspath(workdir) if "://" not in str(workdir) else str(workdir),
      "step": int(step),
      "model": info.config.model,
      "au_ids": list(info.au_ids),
      "threshold": float(threshold),
      "landmark_scheme": info.landmark_scheme,
      "training_dataset": dict(info.dataset) or {
          "config": info.landmark_scheme, "path": info.data_dir,
          "synthetic": synthetic},
      "training_config": json.loads(info.config.to_json_best_effort()),
      "trained_on_synthetic": synthetic,
      "warning": SYNTHETIC_WARNING if synthetic else None,
      "landmark_backend": backend,
      "sfae_jax_version": __version__,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
  }


def path_for(csv_path: str) -> str:
  return csv_path + SUFFIX


def write(csv_path: str, record: dict) -> str:
  out = path_for(csv_path)
  tmp = out + ".tmp"
  with open(tmp, "w") as f:
    json.dump(record, f, indent=1, sort_keys=True)
  os.replace(tmp, out)
  return out


def read_for(csv_path: str) -> Optional[dict]:
  """The record beside `csv_path`, or None for a CSV without one."""
  p = path_for(csv_path)
  if not os.path.exists(p):
    return None
  with open(p) as f:
    return json.load(f)
