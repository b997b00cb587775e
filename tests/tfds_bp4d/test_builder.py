"""The real build path: array_record files, read back with tfds.data_source."""

import numpy as np
import pytest

import tensorflow_datasets as tfds

from tfds_bp4d import synthetic  # pylint: disable=g-import-not-at-top
from tfds_bp4d.bp4d import bp4d_dataset_builder, layout  # pylint: disable=g-import-not-at-top


def test_build_then_read_folds_with_data_source(tmp_path):
  manual = str(tmp_path / "manual")
  ids = synthetic.generate(manual, subjects=3, tasks=1, frames=4, size_wh=(160, 160),
                           seed=5, progress=False)
  builder = bp4d_dataset_builder.Builder(data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual))
  assert builder.info.file_format.value == "array_record"
  source = tfds.data_source("bp4d", split="part1+part2",
                            data_dir=str(tmp_path / "tfds"))
  subjects = {source[i]["subject"].decode() for i in range(len(source))}
  assert subjects == {s for s in ids if layout.SUBJECT_PART[s] in ("part1", "part2")}
  ex = source[0]
  assert ex["image"].shape == (200, 200, 3) and ex["image"].dtype == np.uint8
  assert ex["landmarks"].shape == (49, 2) and ex["au"].shape == (12,)
  assert set(np.unique(ex["au"])) <= {-1, 0, 1}
  assert (builder.data_path / "build_summary_part1.json").exists()


def test_ibug68_without_a_landmark_function_says_how_to_give_one(tmp_path):
  manual = str(tmp_path / "manual")
  synthetic.generate(manual, subjects=1, tasks=1, frames=1, size_wh=(160, 160),
                     progress=False)
  builder = bp4d_dataset_builder.Builder(
      data_dir=str(tmp_path / "tfds"), config=bp4d_dataset_builder.PRESETS["ibug68"])
  with pytest.raises(ValueError, match="landmark_fn=fn"):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual))
