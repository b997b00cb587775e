"""Faces: landmark schemes, alignment and (later) detectors."""
