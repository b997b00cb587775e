"""The training config's numeric fields against their valid ranges, before any
work: a negative learning rate or a zero-step run is refused in a line, not found
out after checkpoints of it have been written."""

from __future__ import annotations

import math


class ConfigError(ValueError):
  """Config fields outside their valid range, each named with its range."""


# field: (low, high, low inclusive, high inclusive); None = unbounded
RANGES = {
    "learning_rate": (0, None, False, False),
    "lr_decay_rate": (0, 1, False, True),
    "lr_decay_epochs": (0, None, False, False),
    "momentum": (0, 1, True, False),
    "weight_decay": (0, None, True, False),
    "au_weight": (0, None, True, False),
    "dice_weight": (0, None, True, False),
    "landmark_weight": (0, None, True, False),
    "refine_weight": (0, None, True, False),
    "intensity_weight": (0, None, True, False),
    "batch_size": (1, None, True, False),
    "eval_batch_size": (1, None, True, False),
    "num_epochs": (0, None, True, False),
    "threshold": (0, 1, False, False),
    "log_every_steps": (1, None, True, False),
    "checkpoint_every_steps": (1, None, True, False),
    "keep_checkpoints": (1, None, True, False),
    "max_rotation": (0, 180, True, True),
    "input_size": (1, None, True, False),
    "crop_size": (1, 200, True, True),
}


INTENSITY_SWITCH = ("auto", "on", "off")


def _interval(low, high, low_in, high_in) -> str:
  left = "[" if low_in else "("
  right = "]" if high_in else ")"
  return f"{left}{low}, {'inf' if high is None else high}{right}"


def problems(config) -> list[str]:
  """One entry per field out of range (fields the config lacks are skipped)."""
  out = []
  for name, (low, high, low_in, high_in) in RANGES.items():
    if name not in config:
      continue
    value = config[name]
    if value is None and name == "keep_checkpoints":
      continue  # keep every checkpoint
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)
    if ok:
      ok = (value >= low if low_in else value > low) and (
          high is None or (value <= high if high_in else value < high))
    if not ok:
      out.append(f"{name}={value!r} (must be in {_interval(low, high, low_in, high_in)})")
  if "intensity" in config and config.intensity not in INTENSITY_SWITCH:
    out.append(f"intensity={config.intensity!r} (must be one of "
               f"{', '.join(INTENSITY_SWITCH)})")
  return out


def check(config) -> None:
  """Raises ConfigError naming every out-of-range field."""
  found = problems(config)
  if found:
    raise ConfigError("config: " + "; ".join(found) + ". Fix them with "
                      "--config.<field>=<value>.")


def check_steps(total: int, config) -> None:
  """A run must train at least one step (a training split smaller than one batch
  is refused where the loader is made)."""
  if total <= 0:
    raise ConfigError(
        f"config: num_epochs={config.num_epochs}, num_train_steps="
        f"{config.num_train_steps}: zero steps to train. Set --config.num_epochs "
        "or --config.num_train_steps above 0.")
