"""This host's CPU share: what sizes the input pipeline's and the face
pipeline's worker pools."""

from __future__ import annotations

import os


def cores() -> int:
  """CPU cores this process may use: its affinity mask (a container's or a
  scheduler's limit), else os.cpu_count()."""
  try:
    return len(os.sched_getaffinity(0))
  except (AttributeError, OSError):  # macOS has no affinity mask
    return os.cpu_count() or 1
