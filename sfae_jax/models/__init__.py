"""SFAE-Net and its parts; `registry` builds a model by name from a config."""

from sfae_jax.models.registry import MODELS, create_model
from sfae_jax.models.sfae_net import SFAENet, SFAENetTiny, SFAEOutput

__all__ = ["MODELS", "SFAENet", "SFAENetTiny", "SFAEOutput", "create_model"]
