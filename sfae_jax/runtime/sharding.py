"""The device mesh and how arrays are laid out on it (multi-host safe).

Training is data parallel over one mesh axis, `data`, spanning every device of the
job: every host's, in a multi-host job. Parameters and optimiser state are
replicated; batches are split over `data`, each host contributing its own rows.
"""

from __future__ import annotations

import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named `data` over `devices` (default: every device of the job)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def local_batch_size(global_batch: int, mesh: Mesh, what: str = "batch_size") -> int:
  """This host's share of a global batch; a one-line error when it does not split
  evenly over the mesh's devices."""
  if global_batch % mesh.size:
    raise ValueError(f"config.{what}={global_batch} must be a multiple of the "
                     f"{mesh.size} devices ({jax.process_count()} process(es) x "
                     f"{jax.local_device_count()} local).")
  return global_batch // jax.process_count()


def put_batch(batch: dict, mesh: Mesh) -> dict:
  """Host-local numpy batch -> global arrays sharded over `data`: each host gives
  its own rows (`make_array_from_process_local_data`)."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


def replicated_value(x) -> np.ndarray:
  """A replicated array (or any array-like) as numpy on this host: in a
  multi-process job any local shard of a replicated array is all of it, and
  eager ops on the global array are not allowed."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return np.asarray(x.addressable_data(0))
  return np.asarray(x)


def host_local(array: jax.Array) -> np.ndarray:
  """This host's rows of a `data`-sharded array, in the order they were put."""
  shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start or 0)
  return np.concatenate([np.asarray(s.data) for s in shards])


def gather_hosts(x: np.ndarray) -> np.ndarray:
  """Stacks a same-shaped host-local array from every process: `[P, ...]`, in
  process order (a no-op `[1, ...]` for one process)."""
  if jax.process_count() == 1:
    return np.asarray(x)[None]
  return np.asarray(multihost_utils.process_allgather(np.asarray(x)))
