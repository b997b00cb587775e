"""sfae-jax: SFAE-Net facial Action Unit detection in JAX/Flax.

`from sfae_jax.predict import Detector` gives the photo/video -> AU table API.
"""

__version__ = "0.1.0"

from sfae_jax.runtime import platforms as _platforms

_platforms.use_cpu_without_accelerators()
