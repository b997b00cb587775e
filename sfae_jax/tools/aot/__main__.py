"""Compile-only fit check: `python -m sfae_jax.tools.aot --config C --target T [--batch B]`.

  python -m sfae_jax.tools.aot --config configs/cloud.py --target v5e:2x2 --batch 64
  python -m sfae_jax.tools.aot --config configs/cloud.py --target v4:2x2x2,h100,8xh200

For each target and program (train step, eval step, predict forward) it compiles
the program the commands would run, for the target's devices, on this machine,
and prints whether it compiled, memory per device against the chip's, the
largest per-device batch that fits, FLOPs, collectives, kernel-like ops and a
labelled step-time estimate. A JSON record goes to --json; --dump_hlo writes each
compiled program's HLO text. Exit status 1 when a program fails to compile or
does not fit at --batch.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import sys

from absl import app, flags, logging
import jax
from ml_collections import config_flags

from sfae_jax.runtime import cli
from sfae_jax.tools.aot import fit, programs, targets

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.",
                                          lock_config=True)
flags.DEFINE_list("target", ["v5e:2x2"], "TPU topologies (v5e:2x2, v4:2x2x2, "
                  "v5p:2x2x4, v6e:2x2), h100, h200, 8xh100, 2x8xh200, or local "
                  "(this machine's devices).")
flags.DEFINE_integer("slices", 1, "TPU slices joined over the data-centre network.")
flags.DEFINE_list("batch", [], "Global batches to check (default: the config's "
                  "batch_size); each runs batch / devices images per device.")
flags.DEFINE_list("programs", list(programs.PROGRAMS), "Which programs.")
flags.DEFINE_bool("max_batch", True, "Search the largest per-device batch that fits.")
flags.DEFINE_integer("batch_step", 8, "Granularity of that search (per device).")
flags.DEFINE_integer("max_compiles", 6, "Compiles the search may add per program.")
flags.DEFINE_string("json", None, "Where the record goes (default "
                    "runs/aot/<config>_<target>.json).")
flags.DEFINE_string("dump_hlo", None, "A folder for the compiled HLO texts.")
FLAGS = flags.FLAGS

_GB = 1e9


def _mib(n: int) -> str:
  return f"{n / fit.MIB:,.0f} MiB"


def _memory_line(c: fit.Check) -> str:
  m = c.memory
  head = c.usable_bytes - m.total
  return (f"  memory per device: arguments {_mib(m.arguments)}, outputs "
          f"{_mib(m.outputs)} ({_mib(m.aliased)} reuse donated arguments), "
          f"temporaries {_mib(m.temporaries)}, code {_mib(m.code)}; total "
          f"{_mib(m.total)} of {_mib(c.usable_bytes)} usable, headroom {_mib(head)} "
          f"({100 * head / c.usable_bytes:.0f} %)")


def _estimate_lines(target: targets.Target, c: fit.Check) -> list[str]:
  e, s, chip = c.estimate, c.summary, target.chip
  if not chip.peak(c.dtype):
    return [f"  estimate: none (no published peaks for {chip.kind})"]
  flops = c.flops_compiled or c.flops
  lines = [f"  estimate (not a measurement): {e.step_s * 1e3:.2f} ms per step, "
           f"{e.images_per_s:,.0f} images/s = max(",
           f"    compute {e.compute_s * 1e3:.2f} ms = {flops / _GB:,.1f} GFLOP / "
           f"{chip.peak(c.dtype):g} TFLOP/s {c.dtype} peak,",
           f"    memory {e.memory_s * 1e3:.2f} ms = {s.kernel_bytes / _GB:,.2f} GB "
           f"read + written by its kernels / {chip.hbm_gbps:g} GB/s,",
           f"    launches {e.launch_s * 1e3:.2f} ms = {s.kernels} ops x "
           f"{chip.launch_us:g} us)"]
  if c.devices > 1:
    lines.append(f"    + collectives {e.collective_s * 1e3:.2f} ms = "
                 f"{sum(s.collectives.values())} x {fit.COLLECTIVE_LATENCY_US:g} us "
                 f"+ 2(N-1)/N x {s.all_reduce_bytes / 1e6:,.1f} MB / "
                 f"{chip.link_gbps:g} GB/s")
  return lines


def _search_line(search: fit.Search) -> str:
  if search.best is None:
    return f"  max batch per device: none fits (batch -> fits: {search.tried})"
  above = (f", {search.failed_at} does not" if search.failed_at else
           f"; nothing larger tried fails (the search stops at "
           f"{fit.MAX_SEARCH_BATCH} or --max_compiles)")
  return (f"  max batch per device: {search.best.batch} "
          f"({_mib(search.best.memory.total)}){above}; {search.compiles} more "
          "compiles")


def report(target: targets.Target, c: fit.Check) -> str:
  head = (f"{c.program} on {target.name}: {c.devices} x {target.chip.kind}, "
          f"{c.batch} per device")
  if not c.compiled:
    return f"{head}\n  compiled: NO after {c.compile_s:.0f} s: {c.error}"
  s = c.summary
  lines = [head, f"  compiled: yes ({c.compile_s:.0f} s); "
           f"{'fits' if c.fits else 'DOES NOT FIT'}", _memory_line(c)]
  flops = c.flops_compiled or c.flops
  note = (f"the compiled program's; {c.flops / c.batch / _GB:,.2f} before "
          "optimisation" if c.flops_compiled else
          "XLA's count before optimisation; the GPU compiler gives none")
  lines.append(f"  FLOPs: {flops / _GB:,.1f} GFLOP per device per step, "
               f"{flops / c.batch / _GB:,.2f} GFLOP per image ({note})")
  colls = ", ".join(f"{n} {k}" for k, n in sorted(s.collectives.items())) or "none"
  lines.append(f"  collectives: {colls}; {s.all_reduce_bytes / 1e6:,.2f} MB "
               "all-reduced per step")
  kinds = ", ".join(f"{n} {k}" for k, n in list(s.kernel_kinds.items())[:4])
  lines.append(f"  kernel-like ops: {s.kernels} ({kinds})")
  wide = sorted(set(s.wide_matmuls))
  lines.append(f"  convolutions + matmuls: {s.matmuls}, not bf16: {len(wide)}"
               + (f" ({'; '.join(w.split('/', 1)[-1] for w in wide[:6])})"
                  if wide else ""))
  return "\n".join(lines + _estimate_lines(target, c))


def _versions() -> dict:
  out = {"jax": jax.__version__}
  for dist in ("jaxlib", "libtpu", "jax-cuda12-plugin"):
    try:
      out[dist] = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
      pass
  return out


def run_target(config, target: targets.Target, global_batches, names,
               search: bool, step: int, budget: int, dump_hlo: str | None):
  """Checks each program at each global batch, then searches its largest batch
  (seeded by those checks). Returns the JSON records and whether all fitted."""
  devices = target.devices()
  hosts = len({d.process_index for d in devices})
  out, ok = [], True
  for name in names:
    ran = 1 if name == "predict_forward" else len(devices)
    checks = []
    for global_batch in global_batches:
      c = fit.check(config, target, name, fit.per_device(global_batch, len(devices)),
                    devices, keep_hlo=bool(dump_hlo))
      checks.append(c)
      print(report(target, c), flush=True)
      ok = ok and c.fits
      if dump_hlo and c.hlo_text:
        os.makedirs(dump_hlo, exist_ok=True)
        path = os.path.join(dump_hlo, f"{name}_{target.name.replace(':', '_')}"
                            f"_b{c.batch}.hlo.txt")
        with open(path, "w") as f:
          f.write(c.hlo_text)
    found = None
    if search and any(c.compiled for c in checks):
      found = fit.max_batch(
          lambda n, name=name: fit.check(config, target, name, n, devices),
          checks, step=step, budget=budget)
      print(_search_line(found), flush=True)
    for c in checks:
      rec = dict(c.record(), devices_used=ran, hosts=hosts,
                 chip=target.chip.kind, memory_bytes=target.chip.memory_bytes)
      if found is not None:
        rec["max_batch"] = {
            "batch": found.best.batch if found.best else None,
            "total": found.best.memory.total if found.best else None,
            "fails_at": found.failed_at, "compiles": found.compiles,
            "tried": {str(k): v for k, v in found.tried.items()}}
      out.append(rec)
  return out, ok


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _CONFIG.value is None:
    raise app.UsageError("--config is required, e.g. --config configs/cloud.py")
  logging.set_verbosity(logging.WARNING)
  unknown = sorted(set(FLAGS.programs) - set(programs.PROGRAMS))
  if unknown:
    raise app.UsageError(f"--programs: unknown {unknown}; choose from "
                         f"{list(programs.PROGRAMS)}.")
  try:
    chosen = [targets.local() if t == "local" else targets.parse(t, FLAGS.slices)
              for t in FLAGS.target]
  except targets.TargetError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  if all(t.topology != "local" for t in chosen):
    # Compile-only: the host needs no accelerator backend (libtpu's would
    # look for TPU chips and log errors on a machine without them).
    jax.config.update("jax_platforms", "cpu")
  config = _CONFIG.value
  try:
    global_batches = [int(b) for b in FLAGS.batch] or [config.batch_size]
  except ValueError:
    raise app.UsageError(f"--batch takes whole numbers, got {FLAGS.batch}.")
  record = {"config": config_flags.get_config_filename(FLAGS["config"]),
            "dtype": config.dtype,
            "global_batches": global_batches,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "versions": _versions(), "targets": {}}
  all_ok = True
  for target in chosen:
    try:
      results, ok = run_target(config, target, global_batches, FLAGS.programs,
                               FLAGS.max_batch, FLAGS.batch_step,
                               FLAGS.max_compiles, FLAGS.dump_hlo)
    except (targets.TargetError, ValueError) as e:
      print(f"error: {target.name}: {e}", file=sys.stderr)
      sys.exit(2)
    record["targets"][target.name] = results
    all_ok = all_ok and ok
  stem = os.path.splitext(os.path.basename(record["config"] or "config"))[0]
  path = FLAGS.json or os.path.join(
      "runs", "aot", f"{stem}_{'+'.join(t.name for t in chosen).replace(':', '_')}"
      ".json")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    json.dump(record, f, indent=1)
  print(f"record: {path}")
  sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
