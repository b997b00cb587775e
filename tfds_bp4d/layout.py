"""What the BP4D and DISFA layouts share: the error a layout problem raises, the
folder finder that accepts each distribution's several folder names, the reader of
their per-AU `frame,intensity` label files, and the marker the synthetic generators
leave at the root of their copies."""

from __future__ import annotations

import os
from typing import Collection, Iterable

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


def read_frame_values(text: str, path: str, allowed: Collection[int]
                      ) -> dict[int, int]:
  """`frame,intensity` lines (no header) -> {frame: intensity}; a LayoutError
  naming `path` and the line for a line that is not two numbers or a value not in
  `allowed`."""
  out = {}
  for k, line in enumerate(text.splitlines(), 1):
    line = line.strip()
    if not line:
      continue
    parts = [p.strip() for p in line.split(",")]
    try:
      if len(parts) != 2:
        raise ValueError(line)
      frame, value = int(float(parts[0])), int(float(parts[1]))
    except ValueError:
      raise LayoutError(f"{path}: line {k} is not 'frame,intensity': {line!r}. "
                        "Restore the file from the distribution.") from None
    if value not in allowed:
      raise LayoutError(f"{path}: line {k}: intensity {value} is not one of "
                        f"{sorted(allowed)}. Restore the file from the "
                        "distribution.")
    out[frame] = value
  return out
