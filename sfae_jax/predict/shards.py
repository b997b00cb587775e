"""Splitting predict's inputs over the tasks of a SLURM array (or any N
independent commands): `--shard K/N`.

Every task expands the same inputs, computes the same partition and predicts
its part into the same `--out DIR/`, so N tasks leave the files one command
leaves. The partition balances declared frames, not files (one long video
weighs as much as many short ones): inputs longest first, each to the task with
the fewest frames so far (ties: the lower task, then the input's path), which is
deterministic. Where SLURM sets `SLURM_ARRAY_TASK_ID` and
`SLURM_ARRAY_TASK_COUNT`, they are the default (the id counted from
`SLURM_ARRAY_TASK_MIN`, so `--array=1-8` works as `0-7` does).
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Optional

def from_args(spec: Optional[str], environ: Mapping[str, str]
              ) -> Optional[tuple[int, int]]:
  """(K, N) from `--shard K/N`, else from SLURM's array variables, else None.
  ValueError naming what is wrong."""
  if spec is None:
    if "SLURM_ARRAY_TASK_ID" not in environ or "SLURM_ARRAY_TASK_COUNT" not in environ:
      return None
    k = int(environ["SLURM_ARRAY_TASK_ID"]) - int(environ.get("SLURM_ARRAY_TASK_MIN", 0))
    n = int(environ["SLURM_ARRAY_TASK_COUNT"])
    where = (f"SLURM_ARRAY_TASK_ID={environ['SLURM_ARRAY_TASK_ID']} of "
             f"SLURM_ARRAY_TASK_COUNT={n}")
  else:
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not found:
      raise ValueError(f"--shard {spec}: give K/N, this task's number K (from 0) "
                       "and the number of tasks N, e.g. --shard 0/4.")
    k, n, where = int(found[1]), int(found[2]), f"--shard {spec}"
  if not 0 <= k < n:
    raise ValueError(f"{where}: the task number must be in 0..N-1 (N = {n}).")
  return k, n


def weight(declared_frames: int) -> int:
  """An input's share of the work: its declared frames, at least 1 (an input
  that declares none, or cannot be read, still goes to a task)."""
  return max(1, declared_frames)


def partition(paths, n: int, frames: Callable[[str], int]) -> list[list[str]]:
  """The N parts of `paths`, each in the inputs' order."""
  weight_of = {p: weight(frames(p)) for p in paths}
  loads, owner = [0] * n, {}
  for p in sorted(paths, key=lambda p: (-weight_of[p], p)):
    task = min(range(n), key=lambda t: (loads[t], t))
    owner[p] = task
    loads[task] += weight_of[p]
  return [[p for p in paths if owner[p] == t] for t in range(n)]
