"""Accelerator chips' published figures, looked up by name or by device kind.

The vendors' peaks (Cloud TPU system architecture pages; NVIDIA's H100 / H200 SXM,
A100 and L4 data sheets): dense TFLOP/s, HBM bytes and bandwidth, and the
interconnect bandwidth one device can use for an all-reduce (TPU ICI per chip;
NVLink 4 per GPU, one direction). The benchmark's MFU and the fit check's
estimate both read them.
"""

from __future__ import annotations

import dataclasses

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

  def peak(self, dtype: str) -> float:
    """Dense peak TFLOP/s for a config's compute dtype."""
    return self.bf16_tflops if dtype == "bfloat16" else self.f32_tflops


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


def chip_of_kind(kind: str) -> Chip | None:
  """The facts of a device that reports `device_kind` `kind`; None if unknown."""
  return next((CHIPS[key] for sub, key in _KINDS if sub in kind), None)
