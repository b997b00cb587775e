"""Input pipeline: built TFDS splits -> grain -> device; on-device augmentation."""
