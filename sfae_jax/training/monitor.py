"""What the train loop reports and checks as it goes: the progress line, the
images/s over the last log points, the stop on a non-finite loss, and the
parameter table it writes at the start."""

from __future__ import annotations

import collections
import math
import time

from flax import traverse_util

from sfae_jax.runtime import sharding


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
  terms = " ".join(f"{SHORT.get(k, k)} {v:.3f}" for k, v in values.items()
                   if k not in NOT_TERMS)
  error = (f", error {100 * values['landmark_error']:.1f}%"
           if "landmark_error" in values else "")
  return (f"epoch {step / steps_per_epoch:5.2f}  step {step}/{total}  "
          f"loss {values['loss']:.4f} ({terms}{error})  lr "
          f"{values['learning_rate']:.2e}  {eta}")


# What the progress line's parentheses leave out (shown elsewhere or only in
# TensorBoard), and short names for the loss terms.
NOT_TERMS = ("loss", "batch", "grad_norm", "param_norm", "learning_rate",
             "images_per_second", "landmark_error")
SHORT = {"landmark": "lm"}


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


def parameter_table(params) -> tuple[str, int]:
  """(a table of every parameter array: path, shape, dtype, size, mean, std;
  the total count). Computed on the host from replicated arrays."""
  rows, total = [], 0
  for path, value in sorted(traverse_util.flatten_dict(params, sep="/").items()):
    x = sharding.replicated_value(value)
    total += x.size
    rows.append((path, str(x.shape), str(x.dtype), f"{x.size:,}",
                 f"{x.mean():.3g}", f"{x.std():.3g}"))
  header = ("name", "shape", "dtype", "size", "mean", "std")
  widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
  line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
  return "\n".join([line(header)] + [line(r) for r in rows]
                   + [f"total: {total:,} parameters"]), total
