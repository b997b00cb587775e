"""JAX starts with the CPU alone where the machine has no accelerator (so an
installed libtpu prints nothing), and is left to choose where there is one or
the user chose."""

import os
import subprocess
import sys
import types

import pytest

from sfae_jax.runtime import platforms


@pytest.mark.parametrize("gpu,tpu,amd,expected", [
    (False, False, False, "cpu"),
    (True, False, False, None),
    (False, True, False, None),
    (False, False, True, None),
])
def test_cpu_only_where_there_is_no_accelerator(monkeypatch, gpu, tpu, amd,
                                                expected):
  monkeypatch.delenv("JAX_PLATFORMS", raising=False)
  monkeypatch.setattr(platforms, "nvidia_gpu_present", lambda: gpu)
  monkeypatch.setattr(platforms, "tpu_present", lambda: tpu)
  monkeypatch.setattr(platforms, "amd_gpu_present", lambda: amd)
  # Linux, before JAX is imported
  monkeypatch.setattr(platforms, "sys", types.SimpleNamespace(modules={},
                                                              platform="linux"))
  assert platforms.use_cpu_without_accelerators() == (expected is not None)
  assert os.environ.get("JAX_PLATFORMS") == expected


def test_the_users_choice_and_other_systems_stand(monkeypatch):
  monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
  monkeypatch.setattr(platforms, "nvidia_gpu_present", lambda: False)
  assert not platforms.use_cpu_without_accelerators()
  assert os.environ["JAX_PLATFORMS"] == "cuda,cpu"
  monkeypatch.delenv("JAX_PLATFORMS")
  monkeypatch.setattr(platforms, "sys", types.SimpleNamespace(modules={},
                                                              platform="darwin"))
  assert not platforms.use_cpu_without_accelerators()  # Apple's Metal plugin
  assert "JAX_PLATFORMS" not in os.environ


def test_importing_the_package_after_jax_still_gives_the_cpu_alone():
  """In a fresh process on this machine (no accelerator, libtpu installed by the
  dev extra), JAX imported first, as a notebook may: no TPU initialisation.
  (The package imported first is the commands' case: tests/test_first_run.py.)"""
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
  for first in ("import jax, sfae_jax",):
    r = subprocess.run([sys.executable, "-c",
                        f"{first}; print(sorted(jax.config.jax_platforms.split(',')),"
                        " jax.default_backend())"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.split() == ["['cpu']", "cpu"], r.stderr
    assert r.stderr == "", r.stderr
