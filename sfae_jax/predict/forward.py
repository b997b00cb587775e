"""The model as `predict` runs it: a loaded run's inference forward, over
fixed-size batches of aligned faces."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from sfae_jax.training import trained_run


def predict_forward(model, config):
  """jit((variables, aligned faces `[B, 200, 200, 3]` uint8) -> (outputs
  `[B, A + K]`: A probabilities then K intensities (none without an intensity
  head), attention maps)). One array, so a batch comes back in one transfer."""
  forward = trained_run.inference_forward(model, config)

  def outputs_and_attention(variables, images):
    probs, out = forward(variables, images)
    if out.intensity is not None:
      probs = jnp.concatenate([probs, out.intensity], axis=-1)
    return probs, out.attention
  return jax.jit(outputs_and_attention)


# Faces per batch by default: CPU's 32 keep the cores busy without waiting on a
# large batch; an accelerator needs many more to be used.
CPU_BATCH, ACCELERATOR_BATCH = 32, 256


def default_batch_size() -> int:
  return CPU_BATCH if jax.default_backend() == "cpu" else ACCELERATOR_BATCH


def pad_batch(faces: np.ndarray, size: int) -> np.ndarray:
  """`faces` padded with black faces to `size` rows: every batch the forward
  sees has one shape, so it compiles once."""
  pad = size - len(faces)
  if pad <= 0:
    return faces
  return np.concatenate([faces, np.zeros((pad,) + faces.shape[1:], faces.dtype)])


@dataclasses.dataclass(frozen=True)
class BatchedForward:
  """`predict_forward` with its variables, a batch size and the number of
  values per face (A probabilities, then K intensities)."""
  fn: Callable[[Any, np.ndarray], tuple[jax.Array, jax.Array]]
  variables: Any
  batch_size: int
  num_outputs: int
  # (workdir, step) it was loaded from (`load`): where another process, a
  # cluster's worker, loads the same model
  source: Optional[tuple[str, int]] = None

  @property
  def on_cpu(self) -> bool:
    leaf = jax.tree.leaves(self.variables)[0]
    return all(d.platform == "cpu" for d in leaf.devices())

  def send(self, faces: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """One batch (at most `batch_size` faces) dispatched; the device arrays
    (outputs, attention) of the padded batch come back without waiting."""
    return self.fn(self.variables, pad_batch(faces, self.batch_size))

  def __call__(self, faces: np.ndarray) -> np.ndarray:
    """The outputs `[N, A + K]` for aligned faces `[N, 200, 200, 3]`."""
    out = []
    for i in range(0, len(faces), self.batch_size):
      chunk = faces[i:i + self.batch_size]
      out.append(np.asarray(self.send(chunk)[0])[:len(chunk)])
    return (np.concatenate(out) if out
            else np.zeros((0, self.num_outputs), np.float32))


def load(workdir: str, step: Optional[int], batch_size: int
         ) -> tuple[trained_run.TrainedRun, BatchedForward]:
  """Run `workdir`'s checkpoint `step` (default: the newest) and its batched
  inference forward."""
  run = trained_run.load(workdir, step)
  num_outputs = len(run.info.au_ids) + len(run.info.intensity_au_ids)
  where = workdir if "://" in workdir else os.path.abspath(workdir)
  return run, BatchedForward(predict_forward(run.model, run.info.config),
                             run.variables, batch_size, num_outputs,
                             (where, int(run.step)))
