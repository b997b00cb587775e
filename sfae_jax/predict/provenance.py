"""Where a number came from: the record `predict` writes beside its CSV (and
`analyze` copies into its report).

The builders write `source.json` into the built dataset's folder: whether the
manual_dir was the synthetic generator's (its marker file), the AU ids, the
manual_dir. Training copies it into run.json (`RunInfo.dataset`,
`sfae_jax.data.sources.dataset_record`); `predict` adds the run, step, backend,
package version and date. A run trained on the synthetic
dataset gives AU values on real faces that mean nothing: `SYNTHETIC_WARNING`.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Optional

from etils import epath

from sfae_jax import __version__
from sfae_jax.runtime import files

SUFFIX = ".provenance.json"      # beside predict's CSV: out.csv.provenance.json
SYNTHETIC_WARNING = (
    "WARNING: this run was trained on the synthetic BP4D (rendered faces), not on "
    "real data: its AU values on real faces are not meaningful. Train on BP4D "
    "(configs/default.py) for real predictions.")


def is_synthetic(info) -> bool:
  """Was the run of `info` (a RunInfo) trained on the synthetic dataset?"""
  return bool(info.dataset.get("synthetic"))


def prediction_record(workdir: str, info, step: int, backend: str,
                      threshold: float) -> dict[str, Any]:
  """The provenance of a table of AU predictions."""
  synthetic = is_synthetic(info)
  return {
      "run": os.path.abspath(workdir) if "://" not in str(workdir) else str(workdir),
      "step": int(step),
      "model": info.config.model_name,
      "au_ids": list(info.au_ids),
      "intensity_au_ids": list(info.intensity_au_ids),
      "threshold": float(threshold),
      "landmark_scheme": info.landmark_scheme,
      "training_dataset": dict(info.dataset),
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
  files.write_atomically(out, json.dumps(record, indent=1, sort_keys=True))
  return out


def read_for(csv_path: str) -> Optional[dict]:
  """The record beside `csv_path` (local, or a bucket's), or None for a CSV
  without one."""
  p = epath.Path(path_for(csv_path))
  if not p.exists():
    return None
  return json.loads(p.read_text())
