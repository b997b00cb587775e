"""photos and videos -> per-frame AU tables: `Detector` (the API), `rows` (the
table of one input), `overlays` (PNGs); `python -m sfae_jax.predict` is the
command."""

from sfae_jax.predict.detector import Detector

__all__ = ["Detector"]
