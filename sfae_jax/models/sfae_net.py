"""SFAE-Net: region-conv stem + LRL (f1, f2) + MSL (f3) -> FC -> one logit per AU
(and, with `intensity_au_ids`, a second FC -> one 0-5 intensity per such AU)."""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Optional, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

import numpy as np

from sfae_jax.face import action_units, schemes
from sfae_jax.models import landmark_attention as la
from sfae_jax.models import losses
from sfae_jax.models.interface import INTENSITY_HEAD, intensity_head
from sfae_jax.models.lrl import (AttentionRefinement, LandmarkBranch,
                                 LightLocalAUBranch, LocalAUBranch)
from sfae_jax.models.multiscale import MultiScaleRegionLearning
from sfae_jax.models.region_conv import HierarchicalRegionBlock
from sfae_jax.models.relation import AURelationHead, prior_logits


AU_HEAD = "head"
RELATION_HEAD = "relation_head"  # the AU-relation correction, when au_relation is on


@flax.struct.dataclass
class SFAEOutput:
  """What SFAENet returns (`models.interface.AUOutput`'s fields and more).
  Fields of a switched-off branch are None.

  au_logits: `[B, A]` float32, one logit per AU (sigmoid -> probability).
  landmarks: `[B, L, 2]` float32 predicted (x, y) in input pixels (LRL only).
  attention: `[B, A, h, w]` attention maps that weigh the shared map (LRL only):
    the refined maps when `attention_refine` is on, else the rule maps.
  rule_attention: `[B, A, h, w]` the maps JAA-Net's rules place around the AU
    centres (LRL only); the refinement's target.
  relation: `[B, A, A]` the AU-relation head's attention across AU nodes (row i:
    how much AU i's node takes from each AU's), when `au_relation` is on.
  intensity: `[B, K]` float32 in [0, 5], one per AU of `intensity_au_ids`, when
    the model has them.
  """
  au_logits: jax.Array
  landmarks: Optional[jax.Array] = None
  attention: Optional[jax.Array] = None
  rule_attention: Optional[jax.Array] = None
  relation: Optional[jax.Array] = None
  intensity: Optional[jax.Array] = None


class SFAENet(nn.Module):
  """SFAE-Net for multi-label AU detection.

  Input: aligned faces `[B, H, W, 3]`, uint8 or float in [0, 255]; H and W multiples
  of 16 for the default 8x8 grids on two stem blocks (176 in the paper). The stem's
  two hierarchical region blocks, each followed by 2x2 max-pool, give the shared
  map `[B, H/4, W/4, stem_features[-1]]` (44x44x64 for 176).

  Attention is placed on the model's own predicted landmarks (the paper's
  "detected key points"; JAA-Net trains this way too). `landmarks` (`[B, L, 2]`,
  input pixels), when given, places it instead (the ground-truth-attention
  ablation). Either way the landmarks that place attention carry no gradient
  (JAA-Net's `aus_map.detach()`).

  Per-AU local learning (f1) is JAA-Net's deep extractor by default
  (`local_branch='deep'`, stage widths `local_features`); `local_branch='light'`
  is a two-conv branch of `light_local_features` channels per AU, globally
  pooled. `attention_refine` adds JAA-Net's attention refinement.
  """
  au_ids: Sequence[int] = action_units.BP4D
  intensity_au_ids: Sequence[int] = ()
  landmark_scheme: str = schemes.IBUG68
  stem_features: Sequence[int] = (32, 64)
  region_grids: Sequence[int] = (8, 4, 2)
  landmark_features: Sequence[int] = (128, 128, 128)
  landmark_hidden: int = 512
  local_branch: str = "deep"  # 'deep' (JAA-Net's) | 'light'
  local_features: Sequence[int] = (96, 128, 160)  # deep branch stage widths
  light_local_features: int = 32
  attention_refine: bool = False
  refine_features: int = 64
  au_relation: bool = False        # inter-AU relation head (models/relation.py)
  relation_features: int = 64
  relation_layers: int = 1
  msl_features: int = 64
  msl_expansion: int = 6
  use_lrl: bool = True
  use_msl: bool = True
  bn_momentum: float = 0.9
  bn_axis_name: Optional[str] = None  # e.g. 'data' to sync BN stats across devices
  dtype: Any = jnp.float32
  conv_impl: str = "auto"  # 'auto' (by backend), 'xla' or 'cpu': sfae_jax.models.conv

  # What `sfae_jax.training.transfer` maps between runs with other AU sets:
  # submodules whose parameters have one row per AU (leading axis, in `au_ids`
  # order), and the heads, re-initialised when the AU sets (the intensity head:
  # the intensity AU sets) differ.
  per_au_modules: ClassVar[tuple[str, ...]] = ("local_au", "attention_refine")
  au_heads: ClassVar[tuple[str, ...]] = (AU_HEAD, RELATION_HEAD)
  intensity_heads: ClassVar[tuple[str, ...]] = (INTENSITY_HEAD,)

  @property
  def num_points(self) -> int:
    return schemes.get_scheme(self.landmark_scheme).num_points

  def _check_inputs(self, images, landmarks):
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"SFAENet expects images [B, H, W, 3], got {images.shape}.")
    if self.local_branch not in LOCAL_BRANCHES:
      raise ValueError(f"local_branch={self.local_branch!r}: choose one of "
                       f"{LOCAL_BRANCHES}.")
    if landmarks is not None and landmarks.shape[1:] != (self.num_points, 2):
      raise ValueError(
          f"landmarks must be [B, {self.num_points}, 2] for the "
          f"{self.landmark_scheme} scheme, got {landmarks.shape}.")

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool,
               landmarks: Optional[jax.Array] = None) -> SFAEOutput:
    self._check_inputs(images, landmarks)
    norm = functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
        epsilon=1e-5, dtype=self.dtype, axis_name=self.bn_axis_name)
    x = images.astype(self.dtype) / 127.5 - 1.0
    for i, f in enumerate(self.stem_features):
      x = HierarchicalRegionBlock(f, norm, self.region_grids, dtype=self.dtype,
                                  conv_impl=self.conv_impl, name=f"stem{i}")(x)
      x = nn.max_pool(x, (2, 2), (2, 2))
    shared = x
    stride = images.shape[1] / shared.shape[1]

    features, pred_landmarks, attention, rule_attention = [], None, None, None
    if self.use_lrl:
      f2, pred_landmarks = LandmarkBranch(
          self.num_points, images.shape[1:3], norm, self.landmark_features,
          self.landmark_hidden, dtype=self.dtype,
          conv_impl=self.conv_impl, name="landmark_branch")(shared)
      guide = jax.lax.stop_gradient(
          pred_landmarks if landmarks is None else landmarks.astype(jnp.float32))
      centres = la.au_centres(guide, self.au_ids, self.landmark_scheme)
      rule_attention = la.attention_maps(centres, shared.shape[1:3], stride)
      attention = rule_attention
      if self.attention_refine:
        attention = AttentionRefinement(
            norm, self.refine_features, dtype=self.dtype, conv_impl=self.conv_impl,
            name="attention_refine")(rule_attention)
      if self.local_branch == "deep":
        local = LocalAUBranch(self.local_features, norm, dtype=self.dtype,
                              conv_impl=self.conv_impl, name="local_au")
      else:
        local = LightLocalAUBranch(self.light_local_features, norm,
                                   dtype=self.dtype, conv_impl=self.conv_impl,
                                   name="local_au")
      f1 = local(shared, attention)
      features += [f1, f2]
    if self.use_msl:
      features.append(MultiScaleRegionLearning(
          self.msl_features, norm, self.msl_expansion, dtype=self.dtype,
          conv_impl=self.conv_impl, name="msl")(shared))
    if not features:  # both ablated: the stem alone, globally pooled
      features.append(shared.mean(axis=(1, 2)))
    fused = jnp.concatenate([f.astype(jnp.float32) for f in features], axis=-1)
    logits = nn.Dense(len(self.au_ids), dtype=jnp.float32, name=AU_HEAD)(fused)
    relation = None
    if self.au_relation:  # a correction to the plain head's logits, zero at init
      correction, relation = AURelationHead(
          len(self.au_ids), self.relation_features, self.relation_layers,
          dtype=self.dtype, name=RELATION_HEAD)(fused)
      logits = logits + correction
    intensity = intensity_head(fused, self.intensity_au_ids)
    return SFAEOutput(au_logits=logits, landmarks=pred_landmarks,
                      attention=attention, rule_attention=rule_attention,
                      relation=relation, intensity=intensity)

  def loss_terms(self, out: SFAEOutput, landmarks, config, axis_name) -> dict:
    """JAA-Net's landmark loss (`config.landmark_weight`) with the landmark
    error as a monitor, and the attention refinement's (`config.refine_weight`),
    for the branches that are on."""
    terms = {}
    if out.landmarks is not None:
      d0 = schemes.eye_centre_distance(landmarks, self.landmark_scheme)
      terms["landmark"] = (config.landmark_weight, losses.landmark_loss(
          out.landmarks, landmarks, d0, axis_name))
      terms["landmark_error"] = (0.0, losses.landmark_error(
          out.landmarks, landmarks, d0, axis_name))
    if self.attention_refine and out.rule_attention is not None:
      terms["refine"] = (config.refine_weight, losses.attention_refine_loss(
          out.attention, out.rule_attention, axis_name))
    return terms

  def initial_params(self, params, run, config):
    """With `au_relation` and `config.relation_prior`, the relation head's
    matrix starts at the training split's co-occurrence (`run.cooccurrence`;
    `models.relation.prior_logits`)."""
    if not (self.au_relation and config.relation_prior):
      return params
    co = np.asarray(run.cooccurrence, np.float32)
    if co.shape != (len(self.au_ids),) * 2:
      raise ValueError(
          "relation_prior needs the training split's AU co-occurrence in "
          f"run.json, found shape {co.shape}: start the run in a fresh workdir.")
    head = dict(params[RELATION_HEAD], relation=prior_logits(co))
    return dict(params, **{RELATION_HEAD: head})


LOCAL_BRANCHES = ("deep", "light")

# A small variant with the same structure, for tests and quick CPU runs. Its deep
# local branch keeps JAA-Net's widths relative to the shared map (1.5x, 2x, 2.5x).
SFAENetTiny = functools.partial(
    SFAENet, stem_features=(8, 16), landmark_features=(16, 16, 16),
    landmark_hidden=32, local_features=(24, 32, 40), light_local_features=8,
    refine_features=8, msl_features=8, msl_expansion=2)
