"""DISFA: aligned faces, landmarks, 8 AU occurrences and 12 intensities, 3 subject
parts. The description is this folder's README.md."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from sfae_jax.face import schemes
from tfds_bp4d import common
from tfds_bp4d.disfa import layout, reader

MANUAL_DOWNLOAD_INSTRUCTIONS = """
DISFA is licensed: request it from the University of Denver
(http://mohammadmahoor.com/disfa/). Pass the root of your copy as --manual_dir; it
must contain

  Videos_LeftCamera/LeftVideoSN001_comp.avi          (or frames you extracted:
                                                      Images_LeftCamera/SN001/<N>.jpg)
  ActionUnit_Labels/SN001/SN001_au1.txt               (lines frame,intensity)
  Landmark_Points/SN001/tmp_frame_lm/SN001_0000_lm.mat (pts, 66x2; or l0NNNN_lm.mat)

To try the pipeline without DISFA, generate a synthetic copy in the same layout:
  python -m tfds_bp4d.synthetic.disfa --out scratch/disfa_syn
"""


@dataclasses.dataclass
class DisfaConfig(tfds.core.BuilderConfig):
  """landmarks: 'bp4d49' (the 66 without the jaw: BP4D's 49-point scheme) or
  'disfa66'; frame_offset: an extracted frame's file number = label frame + offset."""
  landmarks: str = schemes.BP4D49
  frame_offset: int = 0


class Builder(common.ManualBuild, tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for DISFA (manual download)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Aligned 200x200 faces, landmarks, 8 AUs + 12 "
                            "intensities, 3 parts."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      DisfaConfig(name="disfa49", description="49 points (the 66 without the "
                  "jaw), as the BP4D dataset's; the default."),
      DisfaConfig(name="disfa66", landmarks=schemes.DISFA66,
                  description="DISFA's 66 points."),
  ]
  DEFAULT_CONFIG_NAME = "disfa49"

  def __init__(self, *, file_format=None, **kwargs):
    super().__init__(file_format=file_format or "array_record", **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    n = schemes.get_scheme(self.builder_config.landmarks).num_points
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(200, 200, 3),
                                         encoding_format="jpeg"),
            "landmarks": tfds.features.Tensor(shape=(n, 2), dtype=np.float32),
            "au": tfds.features.Tensor(shape=(len(layout.AUS),), dtype=np.int8),
            "intensity": tfds.features.Tensor(shape=(len(layout.CODED_AUS),),
                                              dtype=np.int8),
            "subject": tfds.features.Text(),
            "frame": tfds.features.Scalar(dtype=np.int32),
            "interocular": tfds.features.Scalar(dtype=np.float32),
        }),
        supervised_keys=None,
        homepage="http://mohammadmahoor.com/disfa/",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = os.fspath(dl_manager.manual_dir)
    files = layout.label_files(root)
    by_part = common.split_by_part(
        files, lambda k: k, layout.SUBJECT_PART, layout.PARTS, root, "DISFA",
        "label folders", "SN001..SN032")
    common.write_source(self.data_path, reader.source_record(
        root, self.builder_config.landmarks))
    return {p: self._generate_examples(root, files_p, p)
            for p, files_p in by_part.items()}

  def _generate_examples(self, root, files, part):
    cfg = self.builder_config
    opts = reader.ReadOptions(cfg.landmarks, cfg.frame_offset)
    summary = reader.new_summary()
    for subject, au_files in sorted(files.items()):
      yield from reader.subject_examples(root, subject, au_files, opts, summary)
    common.report_summary(self.data_path, "DISFA", part, summary)
