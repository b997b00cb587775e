"""Which accelerators this machine has, and the JAX platforms a process starts,
decided before JAX starts any (this module imports no JAX).

JAX tries its TPU backend whenever libtpu is installed (the `aot` and `tpu`
extras bring it, and `dev` includes `aot` for the TPU compile test). On a machine
without a TPU, libtpu then prints initialisation errors (`E0000 ... unexpected
worker hostname`, a source-location trace) before JAX falls back to the CPU: a
working install that reads as a broken one. `use_cpu_without_accelerators` sets
`JAX_PLATFORMS=cpu`, the setting JAX's own messages recommend, when the machine
has no accelerator at all, so the CPU is the only platform there is anyway.
Machines with a GPU or TPU, and a JAX_PLATFORMS the user set, are left alone;
`python -m sfae_jax.tools.aot` still compiles for TPU slices, since libtpu's
compile-only topologies load the library directly, not as a backend.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys

def nvidia_gpu_present() -> bool:
  return bool(os.path.exists("/proc/driver/nvidia/version")
              or glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/nvidiactl")
              or shutil.which("nvidia-smi"))


def tpu_present() -> bool:
  """TPU VMs expose their chips as /dev/accel* (v2-v4) or VFIO groups (v5+)."""
  return bool(glob.glob("/dev/accel[0-9]*") or glob.glob("/dev/vfio/[0-9]*"))


def amd_gpu_present() -> bool:
  return os.path.exists("/dev/kfd")


def use_cpu_without_accelerators() -> bool:
  """Sets JAX_PLATFORMS=cpu on a Linux machine with no GPU and no TPU, unless the
  user chose platforms; returns whether it did. (libtpu is Linux's alone, and
  elsewhere a plugin such as Apple's Metal is not found by these checks.)"""
  if "JAX_PLATFORMS" in os.environ or not sys.platform.startswith("linux"):
    return False
  if nvidia_gpu_present() or tpu_present() or amd_gpu_present():
    return False
  os.environ["JAX_PLATFORMS"] = "cpu"
  jax = sys.modules.get("jax")
  if jax is not None:  # imported before sfae_jax: its config read the env already
    jax.config.update("jax_platforms", "cpu")
  return True
