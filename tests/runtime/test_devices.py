"""The device line and the warning for an accelerator JAX does not use."""

from sfae_jax.runtime import devices


def test_a_gpu_jax_does_not_see_is_named_with_the_fix(monkeypatch):
  monkeypatch.delenv("JAX_PLATFORMS", raising=False)
  monkeypatch.setattr(devices.platforms, "nvidia_gpu_present", lambda: True)
  warning = devices.unused_accelerator_warning()
  assert "NVIDIA GPU" in warning and "jax[cuda12]" in warning
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")  # chosen on purpose: no warning
  assert devices.unused_accelerator_warning() is None


def test_no_accelerator_no_warning_and_the_device_is_described(monkeypatch):
  monkeypatch.delenv("JAX_PLATFORMS", raising=False)
  monkeypatch.setattr(devices.platforms, "nvidia_gpu_present", lambda: False)
  monkeypatch.setattr(devices.platforms, "tpu_present", lambda: False)
  assert devices.unused_accelerator_warning() is None
  assert devices.describe().startswith("cpu: ")
