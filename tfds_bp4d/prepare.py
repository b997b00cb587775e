"""Builds a dataset from its manual_dir; generates the synthetic one a config asks for.

`build` runs the real TFDS builder of `tfds_bp4d/<dataset>/` with progress and
one-line errors (`python -m tfds_bp4d.build` is its command). `ensure_dataset`:
for `config.synthetic.enabled`, a missing synthetic BP4D (or DISFA, with
`config.dataset = "disfa"`) is generated in the real dataset's layout
(`tfds_bp4d.synthetic.bp4d`, `tfds_bp4d.synthetic.disfa`) and built with the real
builder. A real BP4D or DISFA is never built implicitly: its absence is an error
that says how to build it. `BUILDS` has one row per dataset.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import types
from typing import Callable

from etils import epath
import tensorflow_datasets as tfds

from tfds_bp4d.bp4d import bp4d_dataset_builder
from tfds_bp4d.disfa import disfa_dataset_builder
from tfds_bp4d.layout import LayoutError
from tfds_bp4d.synthetic import bp4d as synthetic_bp4d
from tfds_bp4d.synthetic import disfa as synthetic_disfa

_DONE = ".sfae_synthetic_complete"


def _generate_bp4d(out: str, syn) -> str:
  synthetic_bp4d.generate(out, syn.subjects, syn.tasks, syn.frames, tuple(syn.size),
                          syn.seed, progress=True, workers=max(1, syn.workers))
  return f"{syn.subjects} {syn.tasks} {syn.frames} {tuple(syn.size)} {syn.seed}"


def _generate_disfa(out: str, syn) -> str:
  synthetic_disfa.generate(out, syn.subjects, syn.frames, tuple(syn.size), syn.seed)
  return f"disfa {syn.subjects} {syn.frames} {tuple(syn.size)} {syn.seed}"


@dataclasses.dataclass(frozen=True)
class Build:
  builder: types.ModuleType      # its module: `Builder`, optional `PRESETS`
  folders: str                   # what the root of a copy holds (for errors)
  generator: str                 # the synthetic generator's command module
  generate: Callable[[str, object], str]  # (out, config.synthetic) -> its record


BUILDS = {
    "bp4d": Build(bp4d_dataset_builder, "Sequences/, AUCoding/AU_OCC/ and "
                  "2DFeatures/", "tfds_bp4d.synthetic.bp4d", _generate_bp4d),
    "disfa": Build(disfa_dataset_builder, "Videos_LeftCamera/ (or extracted "
                   "frames), ActionUnit_Labels/ and Landmark_Points/",
                   "tfds_bp4d.synthetic.disfa", _generate_disfa),
}


def builder_configs(dataset: str) -> tuple[str, ...]:
  """The builder configs of `dataset`, the default first."""
  return tuple(c.name for c in BUILDS[dataset].builder.Builder.BUILDER_CONFIGS) + \
      tuple(getattr(BUILDS[dataset].builder, "PRESETS", {}))


def is_built(data_dir: str, dataset: str, config_name: str) -> bool:
  root = epath.Path(os.path.expanduser(data_dir)) / dataset / config_name
  return root.is_dir() and any((v / "dataset_info.json").exists()
                               for v in root.iterdir())


def ensure_dataset(config) -> str:
  """Returns the expanded data_dir, after building the synthetic set if needed."""
  data_dir = os.path.expanduser(config.data_dir)
  if is_built(data_dir, config.dataset, config.dataset_config) or (
      not config.synthetic.enabled):
    return data_dir
  syn = config.synthetic
  manual = os.path.expanduser(syn.manual_dir)
  if not os.path.exists(os.path.join(manual, _DONE)):
    record = BUILDS[config.dataset].generate(manual, syn)
    with open(os.path.join(manual, _DONE), "w") as f:
      f.write(record + "\n")
  print("The synthetic generator leaves some frames without landmarks on purpose "
        "(as real trackers lose faces, and DISFA misses a landmark file): the "
        "build skips and counts them.", flush=True)
  build(manual, data_dir, config.dataset_config, config.dataset)
  return data_dir


def build(manual_dir: str, data_dir: str, config_name: str,
          dataset: str = "bp4d") -> None:
  """Builds `<dataset>/<config_name>` from `manual_dir` into `data_dir`."""
  row = BUILDS[dataset]
  if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
    raise LayoutError(
        f"{manual_dir}: the manual_dir is empty or missing. Point it at the root of "
        f"your {dataset.upper()} copy (it holds {row.folders}), or generate a "
        f"synthetic one: python -m {row.generator} --out DIR.")
  print(f"Building {dataset}/{config_name} from {manual_dir} into {data_dir} ...",
        file=sys.stderr, flush=True)
  start = time.perf_counter()
  config = getattr(row.builder, "PRESETS", {}).get(config_name, config_name)
  builder = row.builder.Builder(data_dir=data_dir, config=config)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
  print(f"Built {dataset}/{config_name} in {time.perf_counter() - start:.0f}s: "
        f"{sizes}", file=sys.stderr, flush=True)
