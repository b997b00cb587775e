"""sfae-jax: SFAE-Net facial Action Unit detection in JAX/Flax."""

__version__ = "0.1.0"
