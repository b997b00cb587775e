"""The grain pipeline: worker processes, per-epoch shuffle, resumable position."""

import numpy as np
import pytest

from sfae_jax.data import loader, registry, sources


def _take(it, n):
  return [next(it)["au"].copy() for _ in range(n)]


def test_worker_processes_are_deterministic_and_resume(synthetic_tfds):
  """(grain batches within each worker, so the batches depend on the worker
  count; the checkpointed state records it.)"""
  source = sources.open_split(synthetic_tfds, "bp4d49", "part1+part2", dataset="bp4d")
  one = iter(loader.train_loader(source, 8, seed=3, workers=2))
  two = iter(loader.train_loader(source, 8, seed=3, workers=2))
  for x, y in zip(_take(one, 6), _take(two, 6)):
    np.testing.assert_array_equal(x, y)
  state = two.get_state()
  rest = _take(two, 3)
  resumed = iter(loader.train_loader(source, 8, seed=3, workers=2))
  resumed.set_state(state)
  for x, y in zip(rest, _take(resumed, 3)):
    np.testing.assert_array_equal(x, y)


def test_each_epoch_is_a_new_order_of_every_example(synthetic_tfds):
  source = sources.open_split(synthetic_tfds, "bp4d49", "part1+part2", dataset="bp4d")
  n = len(source)
  it = iter(loader.train_loader(source, 1, seed=0, workers=0))
  frames = [int(next(it)["image"].sum()) for _ in range(2 * n)]
  first, second = frames[:n], frames[n:]
  assert sorted(first) == sorted(second) and first != second


def test_eval_batches_pad_and_mask_never_drop(synthetic_tfds):
  source = sources.open_split(synthetic_tfds, "bp4d49", "part3", dataset="bp4d")
  batches = list(loader.eval_batches(source, 8))
  assert all(len(b["au"]) == 8 for b in batches)
  assert sum(int(b["mask"].sum()) for b in batches) == len(source)
  assert (batches[-1]["au"][~batches[-1]["mask"]] == -1).all()


def test_eval_shards_cover_every_example_once_for_any_size_and_process_count():
  """Odd, prime, and smaller than the process count: the hosts' blocks are
  disjoint, in order, and together every example; every host runs the same
  number of batches. (grain's own sharding lost one example of 1029 over 2.)"""
  for n in [*range(1, 41), 1029]:
    for hosts in (1, 2, 3, 4):
      blocks = [loader.eval_shard(n, k, hosts) for k in range(hosts)]
      assert [i for b in blocks for i in b] == list(range(n)), (n, hosts)
      assert max(len(b) for b in blocks) == -(-n // hosts)


def test_missing_split_names_the_splits(synthetic_tfds):
  with pytest.raises(registry.DatasetError, match="part1, part2, part3"):
    sources.open_split(synthetic_tfds, "bp4d49", "part9", dataset="bp4d")


def test_prefetch_checkpoints_the_consumer_position_not_the_read_ahead(
    synthetic_tfds):
  source = sources.open_split(synthetic_tfds, "bp4d49", "part1+part2", dataset="bp4d")
  plain = iter(loader.train_loader(source, 4, seed=5, workers=0))
  ahead = loader.Prefetch(iter(loader.train_loader(source, 4, seed=5,
                                                       workers=0)), depth=3)
  expected = _take(plain, 8)
  got = _take(ahead, 2)
  for x, y in zip(expected[:2], got):
    np.testing.assert_array_equal(x, y)
  state = ahead.get_state()  # the thread has read further; the state has not
  _take(plain := iter(loader.train_loader(source, 4, seed=5, workers=0)), 2)
  assert state == plain.get_state()
  resumed = loader.Prefetch(iter(loader.train_loader(source, 4, seed=5,
                                                         workers=0)))
  resumed.set_state(state)
  for x, y in zip(expected[2:5], _take(resumed, 3)):
    np.testing.assert_array_equal(x, y)
  # set_state on a running prefetcher drops what it read ahead
  ahead.set_state(state)
  for x, y in zip(expected[2:8], _take(ahead, 6)):
    np.testing.assert_array_equal(x, y)
  ahead.close()


def test_prefetch_raises_the_readers_error_in_the_consumer():
  def broken():
    yield {"au": np.zeros(1)}
    raise registry.DatasetError("frame 7 is not a JPEG")

  class It:
    def __init__(self):
      self._gen = broken()
    def __next__(self):
      return next(self._gen)
    def get_state(self):
      return b"{}"

  it = loader.Prefetch(It())
  next(it)
  with pytest.raises(registry.DatasetError, match="frame 7"):
    next(it)


def test_worker_count_follows_the_host():
  assert loader.auto_workers(cores=2) == 0      # inline: workers steal the step's cores
  assert loader.auto_workers(cores=8) == 6
  assert loader.auto_workers(cores=96) == loader.MAX_WORKERS
  assert loader.auto_workers(cores=16, local_processes=4) == 2
  with pytest.raises(ValueError, match="grain_workers=-3"):
    loader.resolve_workers(-3)


def test_workers_that_cannot_start_fall_back_to_inline_with_a_warning(monkeypatch):
  messages = []
  monkeypatch.setattr(loader, "workers_can_start", lambda: False)
  monkeypatch.setattr(loader.logging, "warning",
                      lambda msg, *a: messages.append(msg % a))
  assert loader.resolve_workers(4) == 0
  assert "reading inline instead of with 4 workers" in messages[0]
  assert loader.resolve_workers(0) == 0
  assert len(messages) == 1
