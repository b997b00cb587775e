"""The benchmark's bookkeeping: peaks for MFU, config loading, the CLI's errors."""

import types

import pytest

from sfae_jax.runtime import cli
from sfae_jax.tools import benchmark


def test_peak_is_known_for_accelerators_and_given_otherwise(monkeypatch):
  assert benchmark.peak_tflops("float32") is None  # CPU: unknown
  assert benchmark.peak_tflops("float32", given=1.5) == 1.5
  fake = types.SimpleNamespace(device_kind="NVIDIA H200")
  monkeypatch.setattr(benchmark.jax, "devices", lambda: [fake])
  assert benchmark.peak_tflops("bfloat16") == 989.0
  fake.device_kind = "TPU v5 lite"
  assert benchmark.peak_tflops("bfloat16") == 197.0


def test_timing_reports_rate_and_mfu():
  t = benchmark.Timing("step", seconds=0.5, images=32, flops=2e12)
  assert t.images_per_s == 64
  line = t.line(peak=8.0)
  assert "4000.0 GFLOP/s" in line and "MFU  50.0 %" in line


def test_config_is_loaded_with_its_argument_and_a_missing_one_is_named(capsys):
  c = cli.load_config("configs/default.py:fold=2")
  assert c.fold == 2 and c.model_name == "sfae_net"
  with pytest.raises(SystemExit):
    benchmark.main(["--config", "configs/nope.py"])
  assert "configs/nope.py: no such file" in capsys.readouterr().err


def test_a_v5p_is_not_taken_for_a_v5e(monkeypatch):
  """A v5p reports 'TPU v5' and a v5e 'TPU v5 lite' (libtpu's topologies say so)."""
  fake = types.SimpleNamespace(device_kind="TPU v5")
  monkeypatch.setattr(benchmark.jax, "devices", lambda: [fake])
  assert benchmark.peak_tflops("bfloat16") == 459.0
  fake.device_kind = "NVIDIA H100 80GB HBM3"
  assert benchmark.peak_tflops("float32") == 494.0


@pytest.mark.parametrize("flag,said", [
    ("--config.learning_rat=0.1", "did you mean --config.learning_rate?"),
    ("--config.batch_size=abc", "batch_size must be an integer"),
    ("--bogus", "unrecognized arguments: --bogus")])
def test_a_config_override_mistake_is_one_line_naming_it(flag, said, capsys):
  with pytest.raises(SystemExit) as e:
    benchmark.main([flag])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert said in err and "Traceback" not in err
