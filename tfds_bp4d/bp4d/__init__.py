"""BP4D-Spontaneous as a TFDS dataset (manual download)."""
