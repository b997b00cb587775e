"""The compile-only fit check: targets, the HLO reader, the batch search, the
estimate, and real compiles of the tiny train step for a 2-host TPU slice (libtpu:
the `aot` extra, in dev) and for an H100 (the CUDA plugin: the `aot-gpu` extra;
those tests carry the `gpu_compile` mark and `launch/aot_gpu_check.sh` runs them)."""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from sfae_jax.models import conv
from sfae_jax.runtime import chips
from sfae_jax.tools.aot import fit, hlo, targets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


GPU = pytest.mark.gpu_compile


@pytest.mark.parametrize("name,devices,hosts,kind", [
    ("v5e:2x2", 4, 1, "TPU v5 lite"),
    ("v4:2x2x2", 8, 2, "TPU v4"),        # one device per chip (megacore)
    ("v5p:2x2x4", 16, 4, "TPU v5"),
    pytest.param("8xh100", 8, 1, "NVIDIA H100 80GB HBM3", marks=GPU),
    pytest.param("2x8xh200", 16, 2, "NVIDIA H200", marks=GPU),
])
def test_targets_give_the_slice_or_gpus_they_name(name, devices, hosts, kind):
  target = targets.parse(name)
  got = target.devices()
  assert len(got) == devices and got[0].device_kind == kind
  assert target.hosts == hosts
  assert {d.platform for d in got} == {"tpu" if name.startswith("v") else "gpu"}


def test_two_slices_double_the_devices():
  one, two = targets.parse("v5e:2x2"), targets.parse("v5e:2x2", slices=2)
  assert len(two.devices()) == 2 * len(one.devices()) and two.hosts == 2


@pytest.mark.parametrize("bad", ["v9:2x2", "a100", "h100x8", "v5e"])
def test_an_unknown_target_names_the_accepted_forms(bad):
  with pytest.raises(targets.TargetError, match="v4:2x2x2.*h100.*8xh100"):
    targets.parse(bad)


_HLO = """HloModule jit_step, entry_computation_layout={(f32[8,4]{1,0})->f32[8,4]{1,0}}

%fused_dot (p0: bf16[8,16], p1: bf16[16,4]) -> bf16[8,4] {
  %p0 = bf16[8,16]{1,0} parameter(0)
  %p1 = bf16[16,4]{1,0} parameter(1)
  ROOT %dot.1 = bf16[8,4]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}, metadata={op_name="jit(step)/SFAENet/stem/dot_general"}
}

%fused_head (q0: f32[8,4], q1: f32[4,12]) -> f32[8,12] {
  %q0 = f32[8,4]{1,0} parameter(0)
  %q1 = f32[4,12]{1,0} parameter(1)
  ROOT %dot.2 = f32[8,12]{1,0} dot(%q0, %q1), lhs_contracting_dims={1}, rhs_contracting_dims={0}, metadata={op_name="jit(step)/SFAENet/head/dot_general"}
}

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(%a, %b)
}

ENTRY %main (x: bf16[8,16], w: bf16[16,4], h: f32[4,12]) -> f32[8,12] {
  %x = bf16[8,16]{1,0} parameter(0)
  %w = bf16[16,4]{1,0} parameter(1)
  %h = f32[4,12]{1,0} parameter(2)
  %fusion.1 = bf16[8,4]{1,0} fusion(%x, %w), kind=kOutput, calls=%fused_dot
  %convert.1 = f32[8,4]{1,0} convert(%fusion.1)
  %all-reduce.1 = (f32[4,12]{1,0}, f32[8]{0}) all-reduce(%h, %h), replica_groups={{0,1}}, to_apply=%add
  %gte = f32[4,12]{1,0} get-tuple-element(%all-reduce.1), index=0
  ROOT %fusion.2 = f32[8,12]{1,0} fusion(%convert.1, %gte), kind=kOutput, calls=%fused_head
}
"""


def test_hlo_summary_counts_by_hand():
  s = hlo.summarise(_HLO)
  assert s.collectives == {"all-reduce": 1}
  assert s.all_reduce_bytes == 4 * 12 * 4 + 8 * 4       # both tuple elements
  # fusion.1, convert.1, all-reduce.1, fusion.2; parameters and the
  # get-tuple-element launch nothing.
  assert s.kernels == 4 and s.kernel_kinds == {"fusion": 2, "convert": 1,
                                               "all-reduce": 1}
  # Each kernel's result plus its distinct operands:
  # fusion.1 64+256+128, convert.1 128+64, all-reduce 224+192, fusion.2 384+128+192.
  assert s.kernel_bytes == 448 + 192 + 416 + 704
  assert s.matmuls == 2 and s.wide_matmuls == ["jit(step)/SFAENet/head/dot_general"]
  assert s.loops == 0


_HLO_TRAFFIC = """HloModule jit_step

%fused_taps (t0: f32[8,16]) -> f32[8,4] {
  %t0 = f32[8,16]{1,0} parameter(0)
  %a = f32[8,4]{1,0} slice(%t0), slice={[0:8], [0:4]}
  %b = f32[8,4]{1,0} slice(%t0), slice={[0:8], [4:8]}
  ROOT %sum = f32[8,4]{1,0} add(%a, %b)
}

%fused_all (u0: f32[8,16]) -> f32[8,16] {
  %u0 = f32[8,16]{1,0} parameter(0)
  ROOT %neg = f32[8,16]{1,0} negate(%u0)
}

ENTRY %main (x: f32[8,16]) -> f32[8,16] {
  %x = f32[8,16]{1,0} parameter(0)
  %taps = f32[8,4]{1,0} fusion(%x), kind=kLoop, calls=%fused_taps
  %all = f32[8,16]{1,0} fusion(%x), kind=kLoop, calls=%fused_all
  %cs = (f32[8,16]{1,0}, f32[8,16]{1,0:S(1)}, u32[]{:S(2)}) copy-start(%all)
  %cd = f32[8,16]{1,0:S(1)} copy-done(%cs)
  %ss = ((f32[8,16]{1,0}), f32[2,16]{1,0:S(1)}, s32[]{:S(2)}) slice-start(%all), slice={[0:2], [0:16]}
  %sd = f32[2,16]{1,0:S(1)} slice-done(%ss)
  ROOT %on_chip = f32[8,16]{1,0:S(1)} negate(%cd)
}
"""


def test_hbm_traffic_counts_only_what_kernels_touch_in_hbm():
  s = hlo.summarise(_HLO_TRAFFIC)
  # taps: writes 128, reads the two 128-byte slices of x, not x's 512;
  # all: writes 512, reads 512; copy-start: reads 512 from HBM into VMEM;
  # slice-start: reads its 128-byte slice into VMEM; on_chip: VMEM only.
  assert s.kernel_bytes == (128 + 256) + (512 + 512) + 512 + 128 + 0
  assert s.kernels == 5 and "copy-done" not in s.kernel_kinds


def _fake_run(total_of, usable=1000):
  calls = []

  def run(batch):
    calls.append(batch)
    total = total_of(batch)
    c = fit.Check("p", "t", 1, batch, compiled=total is not None,
                  usable_bytes=usable)
    if total is not None:
      c.memory = fit.Memory(0, 0, 0, total, 0)
    return c
  return run, calls


@pytest.mark.parametrize("total_of,best,step", [
    (lambda b: 100 + 10 * b, 88, 8),          # linear: 100 + 10 b <= 1000 -> 90
    (lambda b: 100 + 10 * b, 90, 1),
    (lambda b: 100 + b * b, 30, 1),           # convex: 100 + b^2 <= 1000 -> 30
    (lambda b: None if b > 40 else 10 * b, 40, 1),  # compile fails above 40
    # Near the limit memory stops growing (recomputation), up to a wall at 500.
    (lambda b: None if b > 500 else 100 + 10 * min(b, 85) + b // 10, 496, 8),
])
def test_max_batch_finds_the_largest_that_fits(total_of, best, step):
  run, calls = _fake_run(total_of)
  first = run(step)
  found = fit.max_batch(run, [first], step=step, budget=12)
  assert found.best.batch == best
  assert found.failed_at is not None and found.failed_at - best <= step
  assert found.compiles == len(calls) - 1 <= 12


def test_max_batch_says_none_fits():
  run, _ = _fake_run(lambda b: 2000 + b)
  found = fit.max_batch(run, [run(8)], step=8, budget=4)
  assert found.best is None and found.failed_at == 8


def test_estimate_by_hand():
  chip = chips.Chip("x", 0, bf16_tflops=100, f32_tflops=50, hbm_gbps=1000,
                      link_gbps=100, launch_us=5.0)
  target = targets.Target("x", "gpu", chip, "1x1x4")
  c = fit.Check("train_step", "x", devices=4, batch=8, compiled=True,
                dtype="bfloat16", flops=2e12)
  c.summary = hlo.Summary({"all-reduce": 10}, 0, all_reduce_bytes=int(1e9),
                          kernels=1000, kernel_kinds={}, kernel_bytes=int(3e9),
                          loops=0, matmuls=0, wide_matmuls=[])
  e = fit.estimate(target, c)
  assert e.compute_s == pytest.approx(0.02)          # 2e12 / 100e12
  assert e.memory_s == pytest.approx(0.003)          # 3e9 / 1000e9
  assert e.launch_s == pytest.approx(0.005)          # 1000 x 5 us
  assert e.collective_s == pytest.approx(10 * 10e-6 + 1.5 * 1e9 / 100e9)
  assert e.step_s == pytest.approx(0.02 + e.collective_s)
  assert e.images_per_s == pytest.approx(32 / e.step_s)


def _jaxpr_of_grouped_conv():
  layer = conv.GroupedConv3x3(4)
  x = jnp.zeros((3, 2, 8, 8, 4))
  params = layer.init(jax.random.key(0), x)
  return str(jax.make_jaxpr(jax.grad(lambda p: layer.apply(p, x).sum()))(params))


def test_auto_picks_the_kernels_of_the_target_not_of_the_host():
  assert jax.default_backend() == "cpu"
  on_host = _jaxpr_of_grouped_conv()
  assert "custom_vjp" in on_host and "scan" in on_host   # the CPU kernels
  for platform, impl in (("tpu", "xla"), ("gpu", "grouped")):
    with conv.target_platform(platform):
      assert conv.resolve_impl("auto") == impl
      traced = _jaxpr_of_grouped_conv()
    assert "custom_vjp" not in traced and "scan" not in traced
  assert conv.resolve_impl("auto") == "cpu"              # the block restored it


def _compile_tiny_train_step(tmp_path, target: str) -> dict:
  """`python -m sfae_jax.tools.aot` from the command line on the tiny model in bf16,
  default XLA flags; returns the record of its one check."""
  record = tmp_path / "aot.json"
  env = dict(os.environ, XLA_FLAGS="")  # default flags, not the tests' -O0
  proc = subprocess.run(
      [sys.executable, "-m", "sfae_jax.tools.aot", "--config", "configs/test.py",
       "--config.dtype=bfloat16", "--target", target, "--batch", "16",
       "--programs", "train_step", "--nomax_batch", "--json", str(record)],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  out = json.loads(record.read_text())
  assert out["dtype"] == "bfloat16" and out["global_batches"] == [16]
  (rec,) = out["targets"][target]
  assert f"train_step on {target}: {rec['devices']} x " in proc.stdout
  assert rec["compiled"] and rec["fits"] and rec["error"] == ""
  assert 0 < rec["memory"]["total"] < rec["usable_bytes"]
  assert rec["flops"] > 0 and rec["estimate"]["step_s"] > 0
  # The accelerator kernels, not the CPU ones (whose lax.map is a loop).
  assert rec["hlo"]["loops"] == 0
  # bf16 everywhere in the model but its output heads, AU, intensity and
  # landmarks (forward and backward); outside it, only the augmentation's f32
  # landmark geometry.
  wide = rec["hlo"]["wide_matmuls"]
  in_model = [w for w in wide if "SFAENet" in w]
  assert in_model and all(re.search(r"/(intensity_)?head/|/fc_landmarks/", w)
                          for w in in_model), in_model
  assert all("SFAENet" in w or "bij,blj->bli" in w for w in wide), wide
  assert rec["hlo"]["matmuls"] > 50
  return rec


def test_cli_compiles_the_tiny_train_step_for_a_two_host_tpu_slice(tmp_path):
  rec = _compile_tiny_train_step(tmp_path, "v4:2x2x2")
  assert (rec["devices"], rec["hosts"], rec["batch"]) == (8, 2, 2)
  # Data parallel over 8 chips: gradients and BatchNorm statistics all-reduced.
  assert rec["hlo"]["collectives"]["all-reduce"] > 0
  assert rec["hlo"]["all_reduce_bytes"] > 0


@GPU
def test_cli_compiles_the_tiny_train_step_for_an_h100(tmp_path):
  rec = _compile_tiny_train_step(tmp_path, "h100")
  assert (rec["devices"], rec["hosts"], rec["batch"]) == (1, 1, 16)
  assert rec["hlo"]["kernels"] > 0 and rec["estimate"]["launch_s"] > 0


def test_cli_refuses_a_batch_that_does_not_split(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "sfae_jax.tools.aot", "--config", "configs/test.py",
       "--target", "v5e:2x2", "--batch", "6", "--json", str(tmp_path / "x.json")],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: v5e:2x2: --batch=6 does not split over 4 devices: give a multiple "
      "of 4.")
