"""Accelerators to compile for without having them: TPU slices and NVIDIA GPUs.

A target names a topology (`v5e:2x2`, `v4:2x2x2`, `h100`, `8xh200`, `2x8xh100`) and
carries the per-device facts the fit check and the estimate need. TPU devices
come from libtpu's compile-only topologies; GPU devices from the CUDA plugin and a
`GpuTargetConfig` text proto shipped in `gpu_specs/` (provenance in its README).

The per-chip figures are `sfae_jax.runtime.chips`'.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re

import jax
from jax.experimental import topologies

from sfae_jax.runtime.chips import CHIPS, Chip, chip_of_kind

_TPU = re.compile(r"^(v4|v5e|v5p|v6e):(\d+(?:x\d+){1,2})$")
_GPU = re.compile(r"^(?:(\d+)x)?(?:(\d+)x)?(h100|h200)$")
# One device per chip, as JAX runs these generations (two TensorCores as one).
_MEGACORE = ("v4", "v5p")


class TargetError(ValueError):
  pass


@dataclasses.dataclass(frozen=True)
class Target:
  name: str          # as given, e.g. 'v4:2x2x2' or '8xh100'
  platform: str      # 'tpu' | 'gpu'
  chip: Chip
  topology: str      # TPU: 'v4:2x2x2'; GPU: '<slices>x<hosts>x<gpus per host>'
  slices: int = 1

  def devices(self) -> list:
    """The target's compile-only devices (every host's), in mesh order."""
    if self.topology == "local":
      return jax.devices()
    try:
      if self.platform == "tpu":
        # libtpu takes a machine-wide lock that would keep a second process (or
        # a TPU job on this host) from compiling; compile-only claims no chip.
        os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
        gen = self.topology.split(":")[0]
        topo = topologies.get_topology_desc(
            self.topology, "tpu", num_slices=self.slices,
            chip_config_name="megacore" if gen in _MEGACORE else "default")
      else:
        topo = topologies.get_topology_desc(
            self.name, "cuda", target_config=gpu_spec(self.chip),
            topology=self.topology)
    except Exception as e:  # the plugin's own message, in one line
      raise TargetError(f"cannot make the {self.name} devices: "
                        f"{str(e).splitlines()[0]}. {_install_hint(self.platform)}"
                        ) from None
    return list(topo.devices)

  @property
  def hosts(self) -> int:
    return len({d.process_index for d in self.devices()})


def _install_hint(platform: str) -> str:
  if platform == "tpu":
    return "Compiling for TPU needs libtpu: pip install -e \".[aot]\"."
  return ("Compiling for GPU needs the CUDA plugin: pip install -e \".[aot-gpu]\" "
          "(not part of dev: see pyproject.toml).")


def gpu_spec(chip: Chip) -> str:
  """The GpuTargetConfig text proto shipped for `chip`."""
  name = next(k for k, v in CHIPS.items() if v is chip)
  return (importlib.resources.files("sfae_jax.tools.aot") / "gpu_specs"
          / f"{name}.txtpb").read_text()


def parse(name: str, slices: int = 1) -> Target:
  """`v5e:2x2`, `v4:2x2x2`, `v5p:2x2x4`, `v6e:2x2` (TPU slices; `slices` > 1 for
  several of them over the data-centre network), `h100` / `h200` (one GPU),
  `8xh100` (8 GPUs on one host), `2x8xh100` (2 hosts of 8)."""
  text = name.strip().lower()
  if m := _TPU.match(text):
    return Target(text, "tpu", CHIPS[m.group(1)], text, slices)
  if m := _GPU.match(text):
    first, second, gen = m.groups()
    hosts, per_host = (int(first), int(second)) if second else (1, int(first or 1))
    return Target(text, "gpu", CHIPS[gen], f"{slices}x{hosts}x{per_host}", slices)
  raise TargetError(
      f"--target {name!r}: give a TPU topology (v4:2x2x2, v5e:2x2, v5e:4x4, "
      "v5p:2x2x4, v6e:2x2), h100 / h200, NxGPU for one host (8xh100) or "
      "HOSTSxNxGPU (2x8xh200).")


def local() -> Target:
  """This process's devices (a real GPU or TPU machine, or the CPU), with the chip
  facts of their kind; memory is what the device's allocator may use
  (`memory_stats()['bytes_limit']`, JAX's preallocation included), or the host's
  RAM for the CPU."""
  device = jax.devices()[0]
  stats = device.memory_stats() or {}
  limit = stats.get("bytes_limit") or (
      os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
  chip = chip_of_kind(device.device_kind) or Chip(device.device_kind, 0, 0.0,
                                                  0.0, 0.0, 0.0)
  return Target("local", device.platform, dataclasses.replace(
      chip, memory_bytes=int(limit)), "local")
