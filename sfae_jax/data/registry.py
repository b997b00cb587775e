"""The datasets a config can name (`config.dataset`), one row each.

A row says what training, evaluation and prediction need to know of a dataset
before reading it: the AUs it labels (`sfae_jax.face.action_units`) and its
default builder config. Its TFDS builder lives in `tfds_bp4d/<name>/`, and
`tfds_bp4d.prepare` has the row that builds it (and generates its synthetic twin).
A new dataset adds a row here, a builder there, and a config.
"""

from __future__ import annotations

import dataclasses

from sfae_jax.face import action_units


class DatasetError(ValueError):
  """A dataset that is missing or unusable, with the fix in the message."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  name: str                  # the TFDS name, `tfds_bp4d/<name>/`
  au_ids: tuple[int, ...]    # its occurrence labels, in the builder's order
  default_config: str        # builder config when none is named
  # its `intensity` feature's AUs, in order (a build says in source.json whether
  # it has intensity labels at all)
  intensity_au_ids: tuple[int, ...] = ()


DATASETS = {d.name: d for d in (
    Dataset("bp4d", action_units.BP4D, "bp4d49", action_units.BP4D_INTENSITY),
    Dataset("disfa", action_units.DISFA, "disfa49", action_units.DISFA_CODED),
)}


def get(name: str) -> Dataset:
  if name not in DATASETS:
    raise DatasetError(f"config.dataset must be one of {tuple(DATASETS)}, got "
                       f"{name!r}.")
  return DATASETS[name]


def of_config(config) -> Dataset:
  """The dataset `config.dataset` names."""
  return get(config.dataset)
