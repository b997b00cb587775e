"""The generators' ETA: a rate over the last items done, not since the start.

The first items of a job also pay its start-up (worker processes importing and
warming up), and in `pool.map`'s order several finish at once: a rate since the
start then overstates what is left tenfold and more in the first minutes. The
training progress line measures its rate the same way.
"""

from __future__ import annotations

import collections
import time
from typing import Callable, Optional


class RecentEta:
  """`done(n_done)` after each item; `seconds()` left, from the items finished
  among the last `window` + 1 (None until 3 have: the first one's time is
  start-up, and workers often deliver their first items together)."""

  def __init__(self, total: int, window: int = 8,
               clock: Callable[[], float] = time.perf_counter):
    self._total, self._clock = total, clock
    self._points = collections.deque(maxlen=window + 1)

  def done(self, n_done: int) -> None:
    self._points.append((self._clock(), n_done))

  def seconds(self) -> Optional[float]:
    if len(self._points) < 3:
      return None
    (t0, n0), (t1, n1) = self._points[0], self._points[-1]
    if n1 <= n0 or t1 <= t0:
      return None
    return (self._total - n1) * (t1 - t0) / (n1 - n0)
