"""Compile a program for a target and say whether and how it fits.

For one program at one per-device batch, `check` compiles and reads:
memory per device (`memory_analysis()`), FLOPs, collectives and kernel-like ops
(`sfae_jax.tools.aot.hlo`), and turns them into a step-time estimate. `max_batch` finds
the largest per-device batch that compiles and fits, by compiles: a line through
two measured points guesses it, and a bisection on compiles settles it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import jax

from sfae_jax.models import conv
from sfae_jax.tools.aot import hlo, programs, targets

MIB = 1024 ** 2
# JAX's GPU client preallocates this fraction of device memory and runs every
# program inside it (XLA_PYTHON_CLIENT_MEM_FRACTION); a TPU program gets all HBM.
GPU_MEMORY_FRACTION = 0.75
# A small all-reduce's latency over ICI / NVLink, whatever its size (assumed).
COLLECTIVE_LATENCY_US = 10.0
MAX_SEARCH_BATCH = 4096  # per device


@dataclasses.dataclass
class Memory:
  arguments: int
  outputs: int
  aliased: int       # outputs that reuse a donated argument's buffer
  temporaries: int
  code: int          # the program itself (in HBM on TPU)

  @property
  def total(self) -> int:
    return self.arguments + self.outputs - self.aliased + self.temporaries + self.code


@dataclasses.dataclass
class Estimate:
  """A step time from the program's counts and the chip's published peaks: the
  slowest of compute, memory traffic and kernel launches, plus collectives. A
  bound for a well-fed device, not a measurement."""
  compute_s: float
  memory_s: float
  launch_s: float
  collective_s: float
  images_per_step: int

  @property
  def step_s(self) -> float:
    return max(self.compute_s, self.memory_s, self.launch_s) + self.collective_s

  @property
  def images_per_s(self) -> float:
    return self.images_per_step / self.step_s if self.step_s > 0 else 0.0


@dataclasses.dataclass
class Check:
  program: str
  target: str
  devices: int
  batch: int                      # per device
  compiled: bool
  dtype: str = "float32"          # the config's compute dtype
  error: str = ""                 # first line of the compiler's error
  compile_s: float = 0.0
  memory: Optional[Memory] = None
  usable_bytes: int = 0           # what the program may use per device
  flops: float = 0.0              # per device per step, before optimisation
  flops_compiled: float = 0.0     # per device per step, the compiled program's (TPU)
  summary: Optional[hlo.Summary] = None
  estimate: Optional[Estimate] = None
  hlo_text: str = dataclasses.field(default="", repr=False)

  @property
  def fits(self) -> bool:
    return self.compiled and self.memory is not None and (
        self.memory.total <= self.usable_bytes)

  def record(self) -> dict:
    out = {k: v for k, v in dataclasses.asdict(self).items()
           if k not in ("hlo_text", "summary", "estimate", "memory")}
    out["fits"] = self.fits
    if self.memory is not None:
      out["memory"] = dict(dataclasses.asdict(self.memory), total=self.memory.total,
                           headroom=self.usable_bytes - self.memory.total)
    if self.summary is not None:
      out["hlo"] = {k: v for k, v in dataclasses.asdict(self.summary).items()
                    if k != "wide_matmuls"}
      out["hlo"]["wide_matmuls"] = sorted(set(self.summary.wide_matmuls))
    if self.estimate is not None:
      out["estimate"] = dict(dataclasses.asdict(self.estimate),
                             step_s=self.estimate.step_s,
                             images_per_s=self.estimate.images_per_s)
    return out


def usable_bytes(target: targets.Target) -> int:
  """Per device; a local device's limit already is what its allocator allows."""
  local = target.topology == "local"
  fraction = GPU_MEMORY_FRACTION if target.platform == "gpu" and not local else 1.0
  return int(target.chip.memory_bytes * fraction)


def _first_line(e: Exception) -> str:
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  return (lines[0] if lines else type(e).__name__)[:500]


def _host_flops(config, program: str, batch: int, platform: str) -> float:
  """FLOPs per device per step: XLA's cost analysis of one device's program before
  optimisation, traced with the target's kernels and lowered for the host, not
  compiled (GPU compilers report none): the same count for every target."""
  with conv.target_platform(platform):
    try:  # (no CPU backend when JAX_PLATFORMS leaves it out)
      one = programs.BUILDERS[program](config, jax.devices("cpu")[:1], batch)
      cost = one.jitted.lower(*one.args).cost_analysis() or {}
    except Exception:  # pylint: disable=broad-except
      return 0.0  # an estimate's input, never a reason to fail the check
  return float(cost.get("flops", 0.0))


def estimate(target: targets.Target, check: Check) -> Estimate:
  chip, s = target.chip, check.summary
  flops = check.flops_compiled or check.flops
  n = check.devices
  ring = 2 * (n - 1) / n if n > 1 else 0.0
  collective = 0.0
  if n > 1 and chip.link_gbps:
    count = sum(s.collectives.values())
    collective = (count * COLLECTIVE_LATENCY_US * 1e-6
                  + ring * s.all_reduce_bytes / (chip.link_gbps * 1e9))
  peak = chip.peak(check.dtype)
  return Estimate(
      compute_s=flops / (peak * 1e12) if peak else 0.0,
      memory_s=s.kernel_bytes / (chip.hbm_gbps * 1e9) if chip.hbm_gbps else 0.0,
      launch_s=s.kernels * chip.launch_us * 1e-6,
      collective_s=collective, images_per_step=check.batch * n)


def check(config, target: targets.Target, program: str, batch: int,
          devices=None, keep_hlo: bool = False) -> Check:
  """Compiles `program` for `target` at `batch` images per device."""
  devices = target.devices() if devices is None else devices
  with conv.target_platform(target.platform):
    built = programs.BUILDERS[program](config, devices, batch)
    out = Check(program, target.name, built.devices, batch, compiled=False,
                dtype=config.dtype,
                usable_bytes=usable_bytes(target))
    t0 = time.perf_counter()
    try:
      compiled = built.jitted.lower(*built.args).compile()
    except Exception as e:  # pylint: disable=broad-except
      out.error, out.compile_s = _first_line(e), time.perf_counter() - t0
      return out
    out.compile_s = time.perf_counter() - t0
    out.compiled = True
  m = compiled.memory_analysis()
  out.memory = Memory(m.argument_size_in_bytes, m.output_size_in_bytes,
                      m.alias_size_in_bytes, m.temp_size_in_bytes,
                      m.generated_code_size_in_bytes)
  cost = compiled.cost_analysis()
  if isinstance(cost, list):  # older JAX: one dict per program
    cost = cost[0] if cost else None
  out.flops_compiled = float((cost or {}).get("flops", 0.0))
  text = compiled.as_text()
  out.summary = hlo.summarise(text)
  out.flops = _host_flops(config, program, batch, target.platform)
  out.estimate = estimate(target, out)
  if keep_hlo:
    out.hlo_text = text
  return out


@dataclasses.dataclass
class Search:
  best: Optional[Check]            # the largest batch that fitted
  failed_at: Optional[int]         # the smallest larger batch that did not
  compiles: int                    # compiles the search added
  tried: dict[int, bool]           # batch -> fitted


def _linear_guess(fitting: list[Check], step: int) -> Optional[int]:
  """Where memory(batch) ~ a + b * batch, through the smallest and largest fitting
  checks, reaches the usable memory."""
  if len(fitting) < 2:
    return None
  c0, c1 = fitting[0], fitting[-1]
  per = (c1.memory.total - c0.memory.total) / (c1.batch - c0.batch)
  if per <= 0:
    return None
  return int((c1.usable_bytes - c1.memory.total) / per + c1.batch) // step * step


def _bracket(results: dict[int, Check]) -> tuple[Optional[Check], Optional[int]]:
  """The largest fitting check, and the smallest larger batch that did not fit."""
  best = max((c for c in results.values() if c.fits), key=lambda c: c.batch,
             default=None)
  lo = best.batch if best else 0
  return best, min((b for b, c in results.items() if not c.fits and b > lo),
                   default=None)


def max_batch(run: Callable[[int], Check], known: list[Check], step: int = 1,
              limit: int = MAX_SEARCH_BATCH, budget: int = 8) -> Search:
  """The largest per-device batch (a multiple of `step`, at most `limit`) for
  which `run(batch)` compiles and fits, within `budget` more compiles; `known`
  are checks already made.

  Memory grows about linearly with the batch, so two fitting checks give a guess;
  a guess that fits is followed by one 5 % above it, and doubling from there if
  that fits too (compilers trade recomputation for memory near the limit); then
  bisection between the largest batch that fits and the smallest larger one that
  does not."""
  results = {c.batch: c for c in known}
  compiles, guessed, confirm = 0, False, False
  while compiles < budget:
    best, hi = _bracket(results)
    lo = best.batch if best else 0
    if hi is not None and hi - lo <= step:
      break
    if hi is None:
      fitting = sorted((c for c in results.values() if c.fits),
                       key=lambda c: c.batch)
      guess = None if guessed else _linear_guess(fitting, step)
      if guess is not None and guess > lo:
        nxt, guessed, confirm = guess, True, True
      elif guessed and confirm and lo:  # just above the guess
        nxt, confirm = lo + max(step, int(0.05 * lo) // step * step), False
      else:  # memory grows slower than the line (rematerialisation): double
        nxt = 2 * lo if lo else step
      nxt = min(nxt, limit)
      if nxt <= lo:
        break
    else:
      nxt = max(lo + step, (lo + hi) // 2 // step * step)
      if nxt >= hi:
        break
    results[nxt] = run(nxt)
    compiles += 1
  best, hi = _bracket(results)
  return Search(best, hi, compiles, {b: c.fits for b, c in sorted(results.items())})


def per_device(global_batch: int, devices: int, what: str = "--batch") -> int:
  if global_batch % devices:
    raise ValueError(f"{what}={global_batch} does not split over {devices} devices: "
                     f"give a multiple of {devices}.")
  return global_batch // devices
