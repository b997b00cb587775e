"""Built datasets: the splits a config reads, opened with `tfds.data_source`
(random access to the array_record files, no TensorFlow), and the label statistics
of a split (occurrence rates, co-occurrence).

Folds: fold k evaluates on part k and trains on the other two (`splits`).
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from sfae_jax.data import registry
from sfae_jax.data.registry import DatasetError
from sfae_jax.face import schemes

SOURCE_FILE = "source.json"      # written by the builders beside dataset_info.json


def splits(config) -> tuple[str, str]:
  """(train, eval) splits: fold k evaluates on part k, trains on the other two,
  unless `config.train_split` / `config.eval_split` name splits themselves."""
  if config.fold not in (1, 2, 3):
    raise ValueError(f"config.fold must be 1, 2 or 3, got {config.fold}.")
  others = "+".join(f"part{p}" for p in (1, 2, 3) if p != config.fold)
  return (config.train_split or others, config.eval_split or f"part{config.fold}")


def dataset_dir(data_dir: str, config_name: str, dataset: str) -> str:
  """TFDS's folder of a built dataset config: DATA_DIR/<dataset>/<config>."""
  return os.path.join(os.path.expanduser(data_dir), dataset, config_name)


def open_split(data_dir: str, config_name: str, split: str, *, dataset: str,
               decode_images=True):
  """`tfds.data_source` over a built split; a one-line DatasetError if absent."""
  root = dataset_dir(data_dir, config_name, dataset)
  root_path = epath.Path(root)  # local or gs://
  versions = sorted(d.name for d in root_path.iterdir()) if root_path.is_dir() else []
  if not versions:
    raise DatasetError(
        f"No built '{dataset}/{config_name}' dataset under {data_dir!r}. Build it "
        f"with `tfds build tfds_bp4d/{dataset} --manual_dir <{dataset.upper()} root> "
        f"--data_dir {data_dir}`, or point --config.data_dir at the folder that has "
        "it (or use configs/synthetic.py, which builds a synthetic one).")
  decoders = None if decode_images else {"image": tfds.decode.SkipDecoding()}
  try:
    return tfds.data_source(f"{dataset}/{config_name}", split=split,
                            data_dir=os.path.expanduser(data_dir),
                            decoders=decoders)
  except (ValueError, KeyError) as e:
    built = _built_splits(root_path / versions[-1])
    raise DatasetError(
        f"Split {split!r} of {root} cannot be read ({str(e).splitlines()[0]}); "
        f"this build has {', '.join(built) or 'no split'} (combine with '+')"
        + ("" if len(built) == 3 else ": it was built from a partial copy, so "
           "folds that need the missing parts cannot run on it") + ".") from None


def _built_splits(version_dir) -> list[str]:
  try:
    info = json.loads((version_dir / "dataset_info.json").read_text())
    return sorted(s["name"] for s in info.get("splits", []))
  except (OSError, ValueError, KeyError):
    return []


def labels_of(source) -> np.ndarray:
  """`[N, A]` AU labels of every example (-1 not coded). Open `source` with
  `decode_images=False`: only the labels are read."""
  return np.stack([np.asarray(source[i]["au"]) for i in range(len(source))])


def occurrence_rates(labels) -> tuple[np.ndarray, np.ndarray]:
  """`[N, A]` labels -> (rate of 1 among known labels per AU, number of known
  labels per AU)."""
  labels = np.asarray(labels)
  known = (labels >= 0).sum(0)
  return (labels == 1).sum(0) / np.maximum(known, 1), known


def cooccurrence(labels) -> np.ndarray:
  """`[N, A]` labels -> `[A, A]` P(AU j present | AU i present), over examples
  where both are coded; NaN where AU i is never present with j coded."""
  labels = np.asarray(labels)
  present, known = labels == 1, labels >= 0
  both = present[:, :, None] & present[:, None, :]
  given = present[:, :, None] & known[:, None, :]
  with np.errstate(invalid="ignore", divide="ignore"):
    return both.sum(0) / given.sum(0)




def _version_dir(data_dir: str, dataset_config: str, dataset: str
                 ) -> Optional[epath.Path]:
  root = epath.Path(dataset_dir(data_dir, dataset_config, dataset))
  if not root.is_dir():
    return None
  versions = sorted((d for d in root.iterdir() if (d / "dataset_info.json").exists()),
                    key=lambda d: d.name)
  return versions[-1] if versions else None


def dataset_record(data_dir: str, config, split: str) -> dict[str, Any]:
  """What a run trains on: name, config, version, folder, split, AU ids, the AUs
  with intensity labels, landmark scheme, and whether it is synthetic, from the
  builder's source.json (without one: the registry's AU ids, no intensity, the
  builder config's scheme, the config's `synthetic.enabled`)."""
  dataset = registry.of_config(config)
  version = _version_dir(data_dir, config.dataset_config, dataset.name)
  source = {}
  if version is not None and (version / SOURCE_FILE).exists():
    source = json.loads((version / SOURCE_FILE).read_text())
  synthetic = source.get("synthetic")
  if synthetic is None:
    synthetic = bool(config.synthetic.enabled)
  landmarks = source.get("landmarks") or schemes.of_dataset_config(
      config.dataset_config)
  return {"name": dataset.name, "config": config.dataset_config,
          "landmarks": landmarks,
          "version": version.name if version is not None else None,
          "path": str(version) if version is not None else None,
          "split": split, "synthetic": bool(synthetic),
          "au_ids": list(source.get("au_ids", dataset.au_ids)),
          "intensity_au_ids": list(source.get("intensity_au_ids", [])),
          "manual_dir": source.get("manual_dir")}
