"""What the BP4D and DISFA layouts share: the error a layout problem raises, the
folder finder that accepts each distribution's several folder names, and the
marker the synthetic generators leave at the root of their copies."""

from __future__ import annotations

import os
from typing import Iterable

# Written by tfds_bp4d.synthetic at the root of its BP4D- and DISFA-layout copies.
SYNTHETIC_MARKER = "SYNTHETIC_NOT_BP4D.txt"


class LayoutError(ValueError):
  """The manual_dir does not look like the dataset; the message names the file or
  folder and what is missing."""


def find_dir(root: str, candidates: Iterable[str], what: str) -> str:
  """The first of `candidates` (relative folder names) that exists under `root`."""
  candidates = tuple(candidates)
  for c in candidates:
    if os.path.isdir(os.path.join(root, c)):
      return os.path.join(root, c)
  raise LayoutError(f"{root}: no {what} folder (looked for {', '.join(candidates)}). "
                    "Point --manual_dir at the root of the dataset's distribution.")
