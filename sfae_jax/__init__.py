"""sfae-jax: SFAE-Net facial Action Unit detection in JAX/Flax.

`from sfae_jax.predict import Detector` gives the photo/video -> AU table API.
"""

__version__ = "0.1.0"
