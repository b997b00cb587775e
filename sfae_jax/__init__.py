"""sfae-jax: SFAE-Net facial Action Unit detection in JAX/Flax.

`from sfae_jax import Detector` gives the photo/video -> AU table API
(`sfae_jax.predict`); it is imported on first use, so `import sfae_jax` stays light.
"""

__version__ = "0.1.0"


def __getattr__(name):
  if name == "Detector":
    from sfae_jax.predict import Detector  # pylint: disable=g-import-not-at-top
    return Detector
  raise AttributeError(f"module 'sfae_jax' has no attribute {name!r}")
