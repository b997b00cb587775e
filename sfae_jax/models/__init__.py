"""SFAE-Net and its parts. `python -m sfae_jax.models --summary` prints its size."""

from sfae_jax.models.landmark_attention import BP4D_AUS, DISFA_AUS
from sfae_jax.models.registry import MODELS, create_model
from sfae_jax.models.sfae_net import SFAENet, SFAENetTiny, SFAEOutput

__all__ = ["BP4D_AUS", "DISFA_AUS", "MODELS", "SFAENet", "SFAENetTiny",
           "SFAEOutput", "create_model"]
