"""TFDS test of the BP4D builder on dummy_data/ (synthetic pixels only).

dummy_data/ is BP4D's layout written by our own generator:
  python -m tfds_bp4d.synthetic.bp4d --out tfds_bp4d/bp4d/dummy_data --subjects 3 \
      --tasks 1 --frames 3 --size 160x160 --seed 1
one subject per part (M007 part1, M002 part2, F012 part3), 3 coded frames each;
then AUCoding/AU_INT/AU17/F012_T1_AU17.csv removed (a missing intensity file).
"""

import tensorflow_datasets as tfds

from tfds_bp4d.bp4d import bp4d_dataset_builder


class Bp4dTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = bp4d_dataset_builder.Builder
  SPLITS = {"part1": 3, "part2": 3, "part3": 3}
  SKIP_CHECKSUMS = True  # manual download: nothing to checksum

  def _make_builder(self, config=None):
    # The harness reads with .as_dataset(), which array_record (our default, read
    # with tfds.data_source) does not offer; the array_record path has its own
    # test in tests/tfds_bp4d/test_builder.py.
    return self.dataset_class(data_dir=self.tmp_dir, config=config,
                              version=self.VERSION, file_format="tfrecord")


if __name__ == "__main__":
  tfds.testing.test_main()
