"""Which device JAX computes on, said plainly, and a warning when an accelerator
is attached that JAX does not use (a CPU-only jaxlib on a GPU machine is the
usual cause, and otherwise only shows as a slow run)."""

from __future__ import annotations

import os
from typing import Optional

import jax

from sfae_jax.runtime import platforms


def describe() -> str:
  """E.g. 'gpu: 1 x NVIDIA H200' or 'cpu: 1 x cpu'."""
  devices = jax.local_devices()
  kinds = sorted({d.device_kind for d in devices})
  return f"{jax.default_backend()}: {len(devices)} x {', '.join(kinds)}"


def unused_accelerator_warning() -> Optional[str]:
  """A sentence when this machine has a GPU or TPU but JAX runs on the CPU."""
  if jax.default_backend() != "cpu" or os.environ.get("JAX_PLATFORMS") == "cpu":
    return None  # an accelerator in use, or the CPU chosen on purpose
  if platforms.nvidia_gpu_present():
    return ("warning: this machine has an NVIDIA GPU, but JAX sees only the CPU, so "
            "the model runs there (slowly). Install JAX's CUDA build: pip install "
            "-U 'jax[cuda12]' (or set JAX_PLATFORMS=cpu to silence this).")
  if platforms.tpu_present():
    return ("warning: this machine has a TPU, but JAX sees only the CPU, so the "
            "model runs there. Install JAX's TPU build: pip install -U 'jax[tpu]'.")
  return None
