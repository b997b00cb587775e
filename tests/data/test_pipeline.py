"""The grain pipeline: worker processes, per-epoch shuffle, resumable position."""

import numpy as np
import pytest

from sfae_jax.data import pipeline


def _take(it, n):
  return [next(it)["au"].copy() for _ in range(n)]


def test_worker_processes_are_deterministic_and_resume(synthetic_tfds):
  """(grain batches within each worker, so the batches depend on the worker
  count; the checkpointed state records it.)"""
  source = pipeline.open_split(synthetic_tfds, "bp4d49", "part1+part2")
  one = iter(pipeline.train_loader(source, 8, seed=3, workers=2))
  two = iter(pipeline.train_loader(source, 8, seed=3, workers=2))
  for x, y in zip(_take(one, 6), _take(two, 6)):
    np.testing.assert_array_equal(x, y)
  state = two.get_state()
  rest = _take(two, 3)
  resumed = iter(pipeline.train_loader(source, 8, seed=3, workers=2))
  resumed.set_state(state)
  for x, y in zip(rest, _take(resumed, 3)):
    np.testing.assert_array_equal(x, y)


def test_each_epoch_is_a_new_order_of_every_example(synthetic_tfds):
  source = pipeline.open_split(synthetic_tfds, "bp4d49", "part1+part2")
  n = len(source)
  it = iter(pipeline.train_loader(source, 1, seed=0, workers=0))
  frames = [int(next(it)["image"].sum()) for _ in range(2 * n)]
  first, second = frames[:n], frames[n:]
  assert sorted(first) == sorted(second) and first != second


def test_eval_batches_pad_and_mask_never_drop(synthetic_tfds):
  source = pipeline.open_split(synthetic_tfds, "bp4d49", "part3")
  batches = list(pipeline.eval_batches(source, 8))
  assert all(len(b["au"]) == 8 for b in batches)
  assert sum(int(b["mask"].sum()) for b in batches) == len(source)
  assert (batches[-1]["au"][~batches[-1]["mask"]] == -1).all()


def test_missing_split_names_the_splits(synthetic_tfds):
  with pytest.raises(pipeline.DatasetError, match="part1, part2, part3"):
    pipeline.open_split(synthetic_tfds, "bp4d49", "part9")
