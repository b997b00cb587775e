"""Shared test setup: 4 host devices so data-parallel code can be tested on CPU."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_tfds(tmp_path_factory):
  """A small synthetic BP4D (one subject per part, 2 tasks x 10 frames), built
  with the real builder: returns the TFDS data_dir."""
  from sfae_jax.data import prepare  # pylint: disable=g-import-not-at-top
  from tfds_bp4d import synthetic  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("synthetic_bp4d")
  manual, data_dir = str(root / "manual"), str(root / "tfds")
  synthetic.generate(manual, subjects=3, tasks=2, frames=10, size_wh=(160, 160),
                     seed=11, progress=False)
  prepare.build(manual, data_dir, "bp4d49")
  return data_dir
