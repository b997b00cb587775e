"""What the training, evaluation, predict and compile code asks of a model.

A model is a flax module registered in `sfae_jax.models.registry`. The shared code
(train step, eval step, predict's forward, transfer between runs, the aot
programs) uses only what this file describes, so a new model family is a module,
a registry row and a config (DRML, `models/drml.py`, is the second one).

Constructor fields every model has (the registry passes them; `config.model`'s
fields come on top): `au_ids`, `intensity_au_ids` (the AUs of the intensity head;
empty: no head), `landmark_scheme` (the dataset's; it fixes the augmentation's
landmark count even for a model that predicts none), `bn_axis_name`, `dtype`,
`conv_impl`.

`model.apply(variables, images, train=..., landmarks=None)` takes uint8 faces
`[B, S, S, 3]` and returns an output with at least the fields of `AUOutput`.
`landmarks` (`[B, L, 2]` ground truth) is for models that place attention on
landmarks (`config.gt_landmark_attention`); a model without any refuses it.

Methods that read no parameters (called on the unbound module):
- `loss_terms(out, landmarks, config, axis_name)`: the model's own loss terms
  beyond the AU and intensity losses every model shares, as
  `{name: (weight, value)}`; the train step adds `weight * value` to the loss
  and logs every value (weight 0: a monitor, logged only).
- `initial_params(params, run, config)`: freshly initialised parameters adjusted
  from the training labels in the run record (`training.run_info.RunInfo`);
  most models return them unchanged.

Class attributes `sfae_jax.training.transfer` reads (`config.init_from`):
`per_au_modules` (submodules with one row per AU on the leading axis),
`au_heads` (re-initialised when the AU sets differ) and `intensity_heads`
(when the intensity AU sets differ).
"""

from __future__ import annotations

from typing import Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

# FACS intensity codes A..E as 1..5, 0 absent: the range of every intensity head.
MAX_INTENSITY = 5.0
INTENSITY_HEAD = "intensity_head"  # its parameters (a model's `intensity_heads`)


def intensity_head(features: jax.Array, intensity_au_ids) -> Optional[jax.Array]:
  """`[B, K]` intensities in [0, MAX_INTENSITY] from the fused `features` (one
  float32 Dense, a scaled sigmoid), or None without intensity AUs. Called inside
  a model's compact `__call__`, whose parameters it joins as INTENSITY_HEAD."""
  if not intensity_au_ids:
    return None
  return MAX_INTENSITY * jax.nn.sigmoid(nn.Dense(
      len(intensity_au_ids), dtype=jnp.float32, name=INTENSITY_HEAD)(features))


@flax.struct.dataclass
class AUOutput:
  """The outputs every model gives (a model's own output class may add more).

  au_logits: `[B, A]` float32, one logit per AU (sigmoid -> probability).
  intensity: `[B, K]` float32 in [0, MAX_INTENSITY], one per intensity AU, or
    None without an intensity head.
  attention: `[B, A, h, w]` per-AU spatial attention (predict's overlays draw
    it), or None for a model without.
  """
  au_logits: jax.Array
  intensity: Optional[jax.Array] = None
  attention: Optional[jax.Array] = None
