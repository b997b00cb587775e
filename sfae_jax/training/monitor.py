"""What the train loop reports and checks as it goes: the progress line, the
images/s over the last log points, and the stop on a non-finite loss."""

from __future__ import annotations

import collections
import math
import time


class NonFiniteLossError(FloatingPointError):
  pass


def check_finite(step: int, values: dict) -> None:
  loss = float(values["loss"])
  if not math.isfinite(loss):
    parts = ", ".join(f"{k}={float(v):.4g}" for k, v in sorted(values.items()))
    raise NonFiniteLossError(
        f"Non-finite loss at step {step} ({parts}). The last checkpoint is "
        "untouched; lower --config.learning_rate or check the data.")


def progress_line(step, total, steps_per_epoch, values, rate) -> str:
  """One log line; the rate and ETA once a step after the compiled one is timed."""
  eta = (f"{rate:.1f} img/s  ETA {(total - step) * values['batch'] / rate / 60:.1f} "
         "min" if rate > 0 else "timing from the next step")
  intensity = (f" intensity {values['intensity']:.3f}"
               if values.get("intensity") else "")
  return (f"epoch {step / steps_per_epoch:5.2f}  step {step}/{total}  "
          f"loss {values['loss']:.4f} (ce {values['ce']:.3f} dice "
          f"{values['dice']:.3f} lm {values['landmark']:.3f}{intensity}, error "
          f"{100 * values['landmark_error']:.1f}%)  lr "
          f"{values['learning_rate']:.2e}  {eta}")


class Rate:
  """Images per second over the last `window` log points: on a shared machine
  the rate since the start lags behind what the run does now."""

  def __init__(self, batch: int, window: int = 5):
    self._batch = batch
    self._points = collections.deque(maxlen=window + 1)

  def add(self, step: int) -> float:
    self._points.append((time.perf_counter(), step))
    (t0, s0), (t1, s1) = self._points[0], self._points[-1]
    return (s1 - s0) * self._batch / (t1 - t0) if s1 > s0 and t1 > t0 else 0.0
