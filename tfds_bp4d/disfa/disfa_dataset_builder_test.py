"""TFDS test of the DISFA builder on dummy_data/ (synthetic pixels only).

dummy_data/ is DISFA's layout written by our own generator:
  python -m tfds_bp4d.synthetic.disfa --out tfds_bp4d/disfa/dummy_data --subjects 3 \
      --frames 4 --size 160x160 --seed 1 --jpeg-frames
(extracted frames, so no video is committed; the video path is tested on generated
videos in tests/tfds_bp4d/test_disfa.py), one subject per part (SN002 part1, SN013 part2, SN003 part3), 4 frames each; SN013
misses one landmark file, so part2 has 3 examples.
"""

import tensorflow_datasets as tfds

from tfds_bp4d.disfa import disfa_dataset_builder


class DisfaTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = disfa_dataset_builder.Builder
  SPLITS = {"part1": 4, "part2": 3, "part3": 4}
  SKIP_CHECKSUMS = True  # manual download: nothing to checksum

  def _make_builder(self, config=None):
    # The harness reads with .as_dataset(); array_record (the default) is read
    # with tfds.data_source, tested in tests/tfds_bp4d/test_disfa.py.
    return self.dataset_class(data_dir=self.tmp_dir, config=config,
                              version=self.VERSION, file_format="tfrecord")


if __name__ == "__main__":
  tfds.testing.test_main()
