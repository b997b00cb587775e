"""Faces: the AUs each dataset codes, landmark schemes and their geometry,
alignment, face backends (detection and landmarks), tracking, and reading
photos and videos."""
