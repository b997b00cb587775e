"""The run record, `WORKDIR/run.json`: what evaluation and prediction need besides
the checkpoints (the config, the AU list, the landmark scheme, the AU class weights,
the threshold, where the data were). Written by process 0 only; read by anyone.

Paths may be local or any filesystem `etils.epath` knows (`gs://...`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from etils import epath
import ml_collections

RUN_FILE = "run.json"


@dataclasses.dataclass(frozen=True)
class RunInfo:
  config: ml_collections.ConfigDict
  au_ids: tuple[int, ...]
  landmark_scheme: str
  au_weights: tuple[float, ...]
  threshold: float
  occurrence_rates: tuple[float, ...] = ()
  known_labels: tuple[int, ...] = ()
  train_examples: int = 0
  data_dir: str = ""

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
    return cls(**kw)


def path(workdir) -> epath.Path:
  return epath.Path(workdir) / RUN_FILE


def exists(workdir) -> bool:
  return path(workdir).exists()


def write(workdir, info: RunInfo) -> None:
  """Atomically (a temporary file renamed) where the filesystem allows it."""
  target = path(workdir)
  tmp = target.parent / (RUN_FILE + ".tmp")
  tmp.write_text(json.dumps(info.to_json(), indent=1, sort_keys=True))
  tmp.replace(target)


def read(workdir) -> RunInfo:
  target = path(workdir)
  if not target.exists():
    raise FileNotFoundError(
        f"{target} does not exist: {str(workdir)!r} is not a training workdir (train "
        "into it with `python -m sfae_jax.train --config ... --workdir DIR`).")
  return RunInfo.from_json(json.loads(target.read_text()))
