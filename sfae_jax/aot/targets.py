"""Accelerators to compile for without having them: TPU slices and NVIDIA GPUs.

A target names a topology (`v5e:2x2`, `v4:2x2x2`, `h100`, `8xh200`, `2x8xh100`) and
carries the per-device facts the fit check and the estimate need. TPU devices
come from libtpu's compile-only topologies; GPU devices from the CUDA plugin and a
`GpuTargetConfig` text proto shipped in `gpu_specs/` (provenance in its README).

The per-chip figures are the vendors' published peaks (Cloud TPU system
architecture pages; NVIDIA's H100 / H200 SXM data sheets): dense bf16 TFLOP/s,
HBM bytes and bandwidth, and the interconnect bandwidth one device can use for an
all-reduce (TPU ICI per chip; NVLink 4 per GPU, one direction).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re

import jax

GIB = 1024 ** 3


@dataclasses.dataclass(frozen=True)
class Chip:
  kind: str               # what the target's devices report as device_kind
  memory_bytes: int       # HBM per device
  bf16_tflops: float      # dense peak per device
  f32_tflops: float       # float32 matmuls as XLA runs them by default (TPU: bf16
                          # passes; NVIDIA: TF32)
  hbm_gbps: float         # HBM bandwidth per device, GB/s
  link_gbps: float        # interconnect per device for collectives, GB/s
  launch_us: float = 0.0  # host cost per kernel (GPU); a TPU step is one program


CHIPS = {
    "v4": Chip("TPU v4", 32 * GIB, 275, 275, 1228, 300),
    "v5e": Chip("TPU v5 lite", 16 * GIB, 197, 197, 819, 200),
    "v5p": Chip("TPU v5", 95 * GIB, 459, 459, 2765, 600),
    "v6e": Chip("TPU v6 lite", 32 * GIB, 918, 918, 1640, 448),
    # device_memory_size of the shipped specs (what the CUDA driver reports).
    "h100": Chip("NVIDIA H100 80GB HBM3", 84_929_347_584, 989, 494, 3350, 450,
                 launch_us=4.0),
    "h200": Chip("NVIDIA H200", 150_754_820_096, 989, 494, 4800, 450,
                 launch_us=4.0),
    # Known for measuring MFU on them; no shipped description to compile for.
    "a100": Chip("NVIDIA A100", 80 * GIB, 312, 156, 2039, 300, launch_us=4.0),
    "l4": Chip("NVIDIA L4", 24 * GIB, 121, 60, 300, 32, launch_us=4.0),
}
# device_kind substrings, most specific first ('TPU v5 lite' is a v5e, 'TPU v5'
# a v5p). PCIe cards match their SXM part, whose peaks are higher.
_KINDS = (("H200", "h200"), ("H100", "h100"), ("A100", "a100"), ("L4", "l4"),
          ("TPU v6", "v6e"), ("TPU v5 lite", "v5e"), ("TPU v5", "v5p"),
          ("TPU v4", "v4"))
# One device per chip, as JAX runs these generations (two TensorCores as one).
_MEGACORE = ("v4", "v5p")
_TPU = re.compile(r"^(v4|v5e|v5p|v6e):(\d+(?:x\d+){1,2})$")
_GPU = re.compile(r"^(?:(\d+)x)?(?:(\d+)x)?(h100|h200)$")


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
    from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
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
  return (importlib.resources.files("sfae_jax.aot") / "gpu_specs"
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


def chip_of_kind(kind: str) -> Chip | None:
  """The facts of a device that reports `device_kind` `kind`; None if unknown."""
  return next((CHIPS[key] for sub, key in _KINDS if sub in kind), None)


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
