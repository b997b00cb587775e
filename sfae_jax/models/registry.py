"""Model names a config can use, and building a model from a config."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from sfae_jax.models.sfae_net import SFAENet, SFAENetTiny

MODELS = {"sfae_net": SFAENet, "sfae_net_tiny": SFAENetTiny}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(config):
  """`config.dtype` ('float32' or 'bfloat16'; absent in old run records: float32)."""
  name = config.get("dtype", "float32")
  if name not in DTYPES:
    raise ValueError(f"config.dtype={name!r}: choose one of {sorted(DTYPES)}.")
  return DTYPES[name]


def create_model(config, au_ids: Sequence[int], landmark_scheme: str,
                 bn_axis_name: str | None = None) -> SFAENet:
  """The model `config.model` names, for `au_ids` and the landmark scheme.

  Convolutions and matmuls run in `config.dtype`; parameters, BatchNorm
  statistics, attention maps and logits stay float32. Run records written before
  a field existed build the model they trained: the light local branch, no
  attention refinement, the image-fraction landmark head."""
  if config.model not in MODELS:
    raise ValueError(f"config.model={config.model!r} is not a model; choose one of "
                     f"{sorted(MODELS)}.")
  return MODELS[config.model](
      au_ids=tuple(au_ids), landmark_scheme=landmark_scheme,
      use_lrl=config.use_lrl, use_msl=config.use_msl, bn_axis_name=bn_axis_name,
      dtype=compute_dtype(config), conv_impl=config.get("conv_impl", "auto"),
      local_branch=config.get("local_branch", "light"),
      attention_refine=config.get("attention_refine", False),
      landmark_units=config.get("landmark_units", "image_fraction"),
      au_relation=config.get("au_relation", False),
      relation_features=config.get("relation_features", 64),
      relation_layers=config.get("relation_layers", 1))
