"""Faces: the AUs each dataset codes, landmark schemes and their geometry,
alignment, face/landmark detectors, tracking, and reading photos and videos."""
