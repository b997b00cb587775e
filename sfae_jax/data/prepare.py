"""Makes sure the dataset a config names is built; generates the synthetic one.

For `config.synthetic.enabled`, a missing synthetic BP4D (or DISFA, with
`config.dataset = "disfa"`) is generated in the real dataset's layout
(`tfds_bp4d.synthetic`, `tfds_bp4d.synthetic.disfa`) and built with the real TFDS
builder, with progress. A real BP4D or DISFA is never built implicitly: its
absence is an error that says how to build it.
"""

from __future__ import annotations

import os
import sys
import time

from etils import epath

from sfae_jax.data import pipeline

_DONE = ".sfae_synthetic_complete"


def ensure_dataset(config) -> str:
  """Returns the expanded data_dir, after building the synthetic set if needed."""
  data_dir = os.path.expanduser(config.data_dir)
  dataset = pipeline.dataset_of(config)
  root = pipeline.dataset_dir(data_dir, config.dataset_config, dataset)
  root_path = epath.Path(root)  # local or gs://
  built = root_path.is_dir() and any(
      (v / "dataset_info.json").exists() for v in root_path.iterdir())
  if built or not config.synthetic.enabled:
    return data_dir
  syn = config.synthetic
  manual = os.path.expanduser(syn.manual_dir)
  if not os.path.exists(os.path.join(manual, _DONE)):
    if dataset == "disfa":
      from tfds_bp4d.synthetic import disfa  # pylint: disable=g-import-not-at-top
      disfa.generate(manual, syn.subjects, syn.frames, tuple(syn.size), syn.seed)
      with open(os.path.join(manual, _DONE), "w") as f:
        f.write(f"disfa {syn.subjects} {syn.frames} {tuple(syn.size)} {syn.seed}\n")
    else:
      generate_parallel(manual, syn.subjects, syn.tasks, syn.frames,
                        tuple(syn.size), syn.seed, syn.workers)
  print("The synthetic generator leaves some frames without landmarks on purpose "
        "(as real trackers lose faces, and DISFA misses a landmark file): the "
        "build skips and counts them.", flush=True)
  build(manual, data_dir, config.dataset_config, dataset)
  return data_dir


def generate_parallel(out: str, subjects: int, tasks: int, frames: int, size_wh,
                      seed: int, workers: int) -> None:
  """`tfds_bp4d.synthetic.generate` in `workers` processes (the same bytes as
  `python -m tfds_bp4d.synthetic` with the same arguments), then the marker that
  says the set is complete."""
  from tfds_bp4d import synthetic  # pylint: disable=g-import-not-at-top
  synthetic.generate(out, subjects, tasks, frames, size_wh, seed, progress=True,
                     workers=max(1, workers))
  with open(os.path.join(out, _DONE), "w") as f:
    f.write(f"{subjects} {tasks} {frames} {size_wh} {seed}\n")


def build(manual_dir: str, data_dir: str, config_name: str,
          dataset: str = pipeline.DATASET) -> None:
  """Builds `<dataset>/<config_name>` from `manual_dir` into `data_dir` (needs
  TF): the builders of tfds_bp4d/bp4d and tfds_bp4d/disfa."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    if dataset == "disfa":
      from tfds_bp4d.disfa import disfa_dataset_builder as module  # pylint: disable=g-import-not-at-top
      folders = ("Videos_LeftCamera/ (or extracted frames), ActionUnit_Labels/ and "
                 "Landmark_Points/")
    else:
      from tfds_bp4d.bp4d import bp4d_dataset_builder as module  # pylint: disable=g-import-not-at-top
      folders = "Sequences/, AUCoding/AU_OCC/ and 2DFeatures/"
  except ImportError as e:
    raise pipeline.DatasetError(
        f"Building the dataset needs the build extra ({e}): pip install -e '.[build]'"
    ) from None
  if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
    generator = "tfds_bp4d.synthetic" + (".disfa" if dataset == "disfa" else "")
    raise pipeline.DatasetError(
        f"{manual_dir}: the manual_dir is empty or missing. Point it at the root of "
        f"your {dataset.upper()} copy (it holds {folders}), or generate a synthetic "
        f"one: python -m {generator} --out DIR.")
  print(f"Building {dataset}/{config_name} from {manual_dir} into {data_dir} ...",
        file=sys.stderr, flush=True)
  start = time.perf_counter()
  config = getattr(module, "PRESETS", {}).get(config_name, config_name)
  builder = module.Builder(data_dir=data_dir, config=config)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
  print(f"Built {dataset}/{config_name} in {time.perf_counter() - start:.0f}s: "
        f"{sizes}", file=sys.stderr, flush=True)
