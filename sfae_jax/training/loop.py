"""One step of the train loop, as `train` runs it and `tools.benchmark` times
it: the next batch, put on the mesh, the step, and the previous step's loss
checked one step late."""

from __future__ import annotations

from typing import Callable, Optional

from sfae_jax.runtime import distributed, sharding
from sfae_jax.training import monitor


class LoopStep:
  """`state, outputs = loop_step(state, data_iter, step)`.

  The loader's batch loses its `id` (and its intensity labels where the model
  has no intensity head) and goes onto the mesh; the step is compiled on the
  first call (every process waiting for the others, `distributed.compiled`)
  unless `compiled` is given. The loss of step n is read back after step n + 1
  is dispatched, so the host never stalls the device; `check()` reads the last
  one (before a log line or a checkpoint)."""

  def __init__(self, step_fn, mesh, key, intensity: bool,
               compiled: Optional[Callable] = None):
    self._step_fn, self._mesh, self._key = step_fn, mesh, key
    self._intensity, self._compiled = intensity, compiled
    self._pending = None  # (step number, outputs) not yet checked

  def __call__(self, state, data_iter, step: int):
    batch = next(data_iter)
    batch.pop("id", None)
    if not self._intensity:
      batch.pop("intensity", None)
    batch = sharding.put_batch(batch, self._mesh)
    if self._compiled is None:
      self._compiled = distributed.compiled(self._step_fn, state, batch, self._key,
                                            name="train_step")
    state, out = self._compiled(state, batch, self._key)
    self.check()
    self._pending = (step + 1, out)
    return state, out

  def check(self) -> None:
    """The last step's loss is finite (`monitor.NonFiniteLossError` if not)."""
    if self._pending is not None:
      monitor.check_finite(*self._pending)
