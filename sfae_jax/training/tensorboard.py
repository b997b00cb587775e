"""TensorBoard event files for a run, written without TensorFlow.

tensorboardX writes the event-file format TensorBoard reads (scalars and the
hparams dashboard) from numpy and protobuf alone; importing TensorFlow for its
summary API cost every training process several seconds at start. Only process
0 writes; the other processes get a writer that does nothing, so the loop calls
the same methods everywhere.

A `gs://` workdir needs `google-cloud-storage` (tensorboardX's GCS writer).
"""

from __future__ import annotations

from typing import Mapping, Optional

import jax
from tensorboardX import SummaryWriter
from tensorboardX.summary import hparams as hparams_summaries


class EventWriter:
  """Scalars and hyperparameters of one run, in `logdir`'s event file."""

  def __init__(self, logdir: str, enabled: Optional[bool] = None):
    if enabled is None:
      enabled = jax.process_index() == 0
    self._writer = None
    if enabled:
      # flush_secs: events reach the disk while a long run is watched.
      self._writer = SummaryWriter(logdir=str(logdir), flush_secs=30)

  def hparams(self, values: Mapping[str, object], metrics=()) -> None:
    """The run's settings for the hparams dashboard; `metrics` names the scalar
    tags it shows beside them."""
    if self._writer is None:
      return
    flat = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
            for k, v in values.items()}
    experiment, start, _ = hparams_summaries(flat, {tag: 0.0 for tag in metrics})
    self._writer.file_writer.add_summary(experiment)
    self._writer.file_writer.add_summary(start)

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    if self._writer is None:
      return
    for tag, value in values.items():
      self._writer.add_scalar(tag, float(value), global_step=int(step))

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None
