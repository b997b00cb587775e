"""Model names a config can use, and building a model from a config.

`config.model_name` names the model; the fields of the `config.model` block are
its constructor's (big_vision's `Model(**config.model)`). What the run fixes
besides (its AUs, landmark scheme) and how it computes (`dtype`, `conv_impl`)
come from the run. Every model keeps `sfae_jax.models.interface`'s contract.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

import flax.linen as nn

from sfae_jax.models.drml import DRML, DRMLTiny
from sfae_jax.models.sfae_net import SFAENet, SFAENetTiny

MODELS = {"sfae_net": SFAENet, "sfae_net_tiny": SFAENetTiny,
          "drml": DRML, "drml_tiny": DRMLTiny}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(config):
  """`config.dtype`: 'float32' or 'bfloat16'."""
  if config.dtype not in DTYPES:
    raise ValueError(f"config.dtype={config.dtype!r}: choose one of {sorted(DTYPES)}.")
  return DTYPES[config.dtype]


def create_model(config, au_ids: Sequence[int], landmark_scheme: str,
                 bn_axis_name: str | None = None,
                 intensity_au_ids: Sequence[int] = ()) -> nn.Module:
  """The model `config.model_name` names, built with `config.model`'s fields, for
  `au_ids`, the landmark scheme and the AUs it estimates intensity for (none: no
  intensity head).

  Convolutions and matmuls run in `config.dtype`; parameters, BatchNorm
  statistics, attention maps and logits stay float32."""
  if config.model_name not in MODELS:
    raise ValueError(f"config.model_name={config.model_name!r} is not a model; "
                     f"choose one of {sorted(MODELS)}.")
  try:
    return MODELS[config.model_name](
        **config.model.to_dict(), au_ids=tuple(au_ids),
        intensity_au_ids=tuple(intensity_au_ids), landmark_scheme=landmark_scheme,
        bn_axis_name=bn_axis_name,
        dtype=compute_dtype(config), conv_impl=config.conv_impl)
  except TypeError as e:  # a field the model does not have
    raise ValueError(f"config.model: {e}") from None
