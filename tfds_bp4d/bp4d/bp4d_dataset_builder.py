"""BP4D-Spontaneous: aligned faces, landmarks, 12 AU occurrences and 5 AU
intensities, 3 subject folds."""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Optional

import numpy as np
import tensorflow_datasets as tfds

from sfae_jax.face import schemes
from tfds_bp4d import common
from tfds_bp4d.bp4d import layout, reader

# The dataset's description is this folder's README.md (TFDS reads it as the
# builder's metadata): one text, not a second copy here.

MANUAL_DOWNLOAD_INSTRUCTIONS = """
BP4D-Spontaneous is licensed: request it from Binghamton University
(https://www.cs.binghamton.edu/~lijun/Research/3DFE/3DFE_Analysis.html). Pass the
root of your copy as --manual_dir; it must contain

  Sequences/<subject>/<task>/<frame>.jpg     (or Sequences_2D+3D/)
  AUCoding/AU_OCC/<subject>_<task>.csv       (or Labels/OCC/)
  2DFeatures/<subject>_<task>.mat            (for the default bp4d49 config)

and, for AU intensities (optional: without them every intensity is -1),

  AUCoding/AU_INT/AU06/<subject>_<task>_AU06.csv   (or AU Intensity Codes3.0/)

To try the pipeline without BP4D, generate a synthetic copy in the same layout:
  python -m tfds_bp4d.synthetic.bp4d --out scratch/bp4d_syn
"""

LANDMARKER_ENV = "SFAE_LANDMARKER"


@dataclasses.dataclass
class Bp4dConfig(tfds.core.BuilderConfig):
  """landmarks: 'bp4d49' (2DFeatures) or 'ibug68' (a landmark function);
  frame_offset: image number = CSV frame + offset; landmark_rows: 'position'
  (2DFeatures row i = the task's i-th image) or 'frame' (row i = frame i + 1)."""
  landmarks: str = schemes.BP4D49
  frame_offset: int = 0
  landmark_rows: str = "position"


PRESETS = {
    "bp4d49_nminus1": Bp4dConfig(name="bp4d49_nminus1", frame_offset=-1,
                                 description="CSV frame N is image N-1."),
    "ibug68": Bp4dConfig(name="ibug68", landmarks=schemes.IBUG68,
                         description="68 iBUG points from a landmark function."),
}


def _default_landmark_fn() -> reader.LandmarkFn:
  spec = os.environ.get(LANDMARKER_ENV)
  if not spec:
    raise ValueError(
        "The ibug68 config computes 68 landmarks with a landmark function, and none "
        f"is set. Pass Builder(config='ibug68', landmark_fn=fn), with fn(bgr_image) "
        f"-> [68, 2] or None, or set {LANDMARKER_ENV}=module:function.")
  module, _, name = spec.partition(":")
  return getattr(importlib.import_module(module), name)


class Builder(common.ManualBuild, tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for BP4D-Spontaneous (manual download)."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Aligned 200x200 faces, landmarks, 12 AUs, 3 parts.",
                   "1.1.0": "AU intensities 0-5 of AUs 6, 10, 12, 14, 17 (-1 not "
                            "coded)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  # Only the config that BP4D alone can build is listed, so that a plain
  # `tfds build` (which builds every listed config) succeeds. The variants are
  # JSON configs on the command line, or PRESETS in Python:
  #   tfds build ... --config '{"name": "bp4d49_nminus1", "frame_offset": -1}'
  #   tfds build ... --config '{"name": "ibug68", "landmarks": "ibug68"}'
  BUILDER_CONFIGS = [
      Bp4dConfig(name="bp4d49", description="BP4D's own 49-point 2DFeatures "
                 "landmarks; CSV frame N is image N."),
  ]
  DEFAULT_CONFIG_NAME = "bp4d49"

  def __init__(self, *, file_format=None,
               landmark_fn: Optional[reader.LandmarkFn] = None, **kwargs):
    # array_record by default: training reads it with tfds.data_source, no TF.
    super().__init__(file_format=file_format or "array_record", **kwargs)
    self._landmark_fn = landmark_fn

  def _info(self) -> tfds.core.DatasetInfo:
    n = schemes.get_scheme(self.builder_config.landmarks).num_points
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(200, 200, 3),
                                         encoding_format="jpeg"),
            "landmarks": tfds.features.Tensor(shape=(n, 2), dtype=np.float32),
            "au": tfds.features.Tensor(shape=(len(layout.AUS),), dtype=np.int8),
            "intensity": tfds.features.Tensor(shape=(len(layout.INTENSITY_AUS),),
                                              dtype=np.int8),
            "subject": tfds.features.Text(),
            "task": tfds.features.Text(),
            "frame": tfds.features.Scalar(dtype=np.int32),
            "interocular": tfds.features.Scalar(dtype=np.float32),
        }),
        supervised_keys=None,
        homepage="https://www.cs.binghamton.edu/~lijun/Research/3DFE/3DFE_Analysis.html",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = os.fspath(dl_manager.manual_dir)
    label_files = reader.find_label_files(root)
    sequences = layout.find_dir(root, layout.SEQUENCE_DIRS, "Sequences")
    landmark_fn = None
    if self.builder_config.landmarks == schemes.IBUG68:
      landmark_fn = self._landmark_fn or _default_landmark_fn()
    by_part = common.split_by_part(
        label_files, lambda k: k[0], layout.SUBJECT_PART, layout.PARTS, root,
        "BP4D", "AU occurrence CSVs", "F001..F023, M001..M018")
    intensity_files = reader.find_intensity_files(root)
    if intensity_files is None:
      print(f"BP4D: {root} has no AU intensity folder (looked for "
            f"{', '.join(layout.INT_DIRS)}): building occurrence labels only, "
            "every intensity -1 (not coded).")
    elif not intensity_files:
      print(f"BP4D: the AU intensity folder of {root} has no "
            "<subject>_<task>_AU<NN>.csv files of AUs "
            f"{', '.join(map(str, layout.INTENSITY_AUS))}: every intensity is -1.")
    intensity_files = intensity_files or {}
    unlabelled = reader.unlabelled_tasks(sequences, label_files)
    if unlabelled:
      print("BP4D: task folders with frames but no AU occurrence CSV are left out "
            "(counted as no_label_file): " + ", ".join(
                f"{s}/{t} ({n} frames)" for (s, t), n in unlabelled.items()))
    common.write_source(self.data_path, reader.source_record(
        root, self.builder_config.landmarks,
        layout.INTENSITY_AUS if intensity_files else ()))
    return {
        part: self._generate_examples(
            root, sequences, by_part[part], part, landmark_fn,
            {k: n for k, n in unlabelled.items()
             if layout.SUBJECT_PART.get(k[0]) == part}, intensity_files)
        for part in by_part
    }

  def _generate_examples(self, root, sequences, label_files, part, landmark_fn,
                         unlabelled=None, intensity_files=None):
    cfg = self.builder_config
    opts = reader.ReadOptions(cfg.landmarks, cfg.frame_offset, cfg.landmark_rows)
    summary = reader.new_summary()
    for (subject, task), n in (unlabelled or {}).items():
      summary.skip(subject, task, "no_label_file", n)
    for (subject, task), path in sorted(label_files.items()):
      labels = reader.read_labels(path)
      intensity = reader.read_intensities(
          (intensity_files or {}).get((subject, task), {}))
      yield from reader.task_examples(root, sequences, subject, task, labels,
                                      opts, summary, landmark_fn, intensity)
    common.report_summary(self.data_path, "BP4D", part, summary)
