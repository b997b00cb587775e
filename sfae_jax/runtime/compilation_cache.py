"""A persistent XLA compilation cache for the command-line tools.

Compiling SFAE-Net's forward takes longer than running it on a short clip (on 2 CPU
cores: seconds of compilation for a few seconds of video), and a CLI compiles the
same program every time it starts. With the cache, the second run of `predict` or
`evaluate` on the same model and batch shape loads the executable instead.
"""

from __future__ import annotations

import os

import jax

DEFAULT_DIR = os.path.join(os.path.expanduser("~"), ".cache", "sfae_jax", "jit")


def enable(path: str | None = None) -> str | None:
  """Turns the cache on at `path`, $JAX_COMPILATION_CACHE_DIR or DEFAULT_DIR;
  `SFAE_JIT_CACHE=0` turns it off. Returns the folder, or None when off or when
  the folder cannot be created (the tools then simply compile)."""
  if os.environ.get("SFAE_JIT_CACHE", "1") == "0":
    return None
  path = path or os.environ.get("JAX_COMPILATION_CACHE_DIR") or DEFAULT_DIR
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  return path
