"""Data: the dataset registry (one row per dataset), built splits and their label
statistics (`sources`), the grain loader (`loader`), on-device augmentation."""
