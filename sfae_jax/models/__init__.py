"""The AU models (SFAE-Net, DRML) and their parts; `registry` builds a model by
name from a config, `interface` says what every model provides."""

from sfae_jax.models.interface import AUOutput
from sfae_jax.models.registry import MODELS, create_model

__all__ = ["AUOutput", "MODELS", "create_model"]
