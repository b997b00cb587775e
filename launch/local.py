#!/usr/bin/env python3
"""N processes of one JAX job on this machine (what the multi-process tests use).

  python launch/local.py 2 --cpu-devices 2 -- python -m sfae_jax.train \\
      --config configs/synthetic.py --workdir runs/mp
  python launch/local.py 2 --dry-run -- python -m sfae_jax.train ...

Each process gets `JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT`, `JAX_NUM_PROCESSES=N` and
`JAX_PROCESS_ID=k`, which `sfae_jax.runtime.distributed` reads; with `--cpu-devices D` also
`JAX_PLATFORMS=cpu` and D forced host devices (`XLA_FLAGS`), so N x D devices
exchange data through gloo as hosts of a cluster would. Output lines are prefixed
`[k]`. On one GPU host this is not needed: one process drives all local GPUs.

SIGTERM and SIGINT are forwarded to every process, which then stop together at
one step and save it (`sfae_jax.training.preemption`); the launcher waits for them and
exits 75. When a process fails, the others are expected to stop by themselves
(JAX's coordination service: at once if process 0 died, otherwise after the
heartbeat timeout); any still running `--grace` seconds later are killed, and
that is reported. The exit status is that of the first process to fail (128 +
signal for a signal), else 0; whether a rerun resumes, and from which step, is
said where the command's `--workdir` shows it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time


EXIT_PREEMPTED = 75  # sfae_jax.training.preemption: stopped by a signal at a checkpoint


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def process_env(k: int, n: int, port: int, cpu_devices: int | None) -> dict:
  env = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
         "JAX_NUM_PROCESSES": str(n), "JAX_PROCESS_ID": str(k)}
  if cpu_devices:
    env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = " ".join(
        [f for f in os.environ.get("XLA_FLAGS", "").split()
         if not f.startswith("--xla_force_host_platform_device_count")]
        + [f"--xla_force_host_platform_device_count={cpu_devices}"])
  return env


def _pump(k: int, stream, out) -> None:
  for line in iter(stream.readline, ""):
    out.write(f"[{k}] {line}")
    out.flush()


def _status(code: int) -> str:
  return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"


def run(n: int, command: list[str], cpu_devices=None, port=None, grace=120.0,
        out=sys.stdout) -> int:
  port = port or free_port()
  procs = []
  for k in range(n):
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               **process_env(k, n, port, cpu_devices))
    # Own session: a Ctrl-C at the terminal reaches this launcher only, which
    # forwards it once (twice would mean "stop now, without a checkpoint").
    p = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace",
                         start_new_session=True)
    print(f"launch: process {k} of {n}: pid {p.pid}", file=out, flush=True)
    threading.Thread(target=_pump, args=(k, p.stdout, out), daemon=True).start()
    procs.append(p)

  def forward(signum, _frame):
    for p in procs:
      if p.poll() is None:
        p.send_signal(signum)
  old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
  first_failure, failed_at, reported = None, None, set()
  try:
    while True:
      for k, p in enumerate(procs):
        code = p.poll()
        if code is None or k in reported:
          continue
        reported.add(k)
        took = "" if failed_at is None else f", {time.time() - failed_at:.1f}s " \
            f"after process {first_failure[0]} " + (
                "stopped" if first_failure[1] == EXIT_PREEMPTED else "failed")
        print(f"launch: process {k} ended ({_status(code)}{took})", file=out,
              flush=True)
        if code != 0 and first_failure is None:
          first_failure, failed_at = (k, code), time.time()
      if len(reported) == n:
        break
      if failed_at is not None and time.time() - failed_at > grace:
        for k, p in enumerate(procs):
          if p.poll() is None:
            print(f"launch: process {k} still running {grace:.0f}s after process "
                  f"{first_failure[0]} failed: killing it", file=out, flush=True)
            p.kill()
        failed_at = float("inf")
      time.sleep(0.05)
  finally:
    for s, h in old.items():
      signal.signal(s, h)
  for p in procs:
    p.wait()
  time.sleep(0.1)  # let the output threads drain
  if first_failure is None:
    return 0
  codes = [p.returncode for p in procs]
  if all(c == EXIT_PREEMPTED for c in codes):
    print("launch: the job was stopped by a signal and saved a checkpoint; rerun "
          "the same command to resume.", file=out, flush=True)
    return EXIT_PREEMPTED
  k, code = first_failure
  print(f"launch: the job failed: process {k} {_status(code)}."
        + _resume_hint(command, code), file=out, flush=True)
  return 128 - code if code < 0 else code


def _workdir(command: list[str]):
  for i, arg in enumerate(command):
    if arg == "--workdir" and i + 1 < len(command):
      return command[i + 1]
    if arg.startswith("--workdir="):
      return arg.split("=", 1)[1]
  return None


def _resume_hint(command: list[str], code: int) -> str:
  """What a rerun would do, said only where it is known: a process that exited
  with an error (1) or a usage error (2) explained it, and a rerun repeats it."""
  workdir = _workdir(command)
  if workdir is None or code in (1, 2) or "://" in workdir:
    return ""
  folder = os.path.join(workdir, "checkpoints")
  steps = sorted(int(d) for d in os.listdir(folder) if d.isdigit()) \
      if os.path.isdir(folder) else []
  if not steps:
    return f" No checkpoint is in {workdir} yet: a rerun starts from step 0."
  return (f" Rerunning the same command resumes from step {steps[-1]}, the newest "
          f"checkpoint in {workdir}.")


def dry_run(n: int, command: list[str], cpu_devices=None, port=None,
            out=sys.stdout) -> None:
  port = port or free_port()
  for k in range(n):
    env = process_env(k, n, port, cpu_devices)
    print(" ".join([f"{a}={shlex.quote(b)}" for a, b in env.items()]
                   + [shlex.quote(c) for c in command]), file=out)


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if "--" not in argv:
    print("usage: python launch/local.py N [--cpu-devices D] [--port P] "
          "[--grace S] [--dry-run] -- COMMAND ...", file=sys.stderr)
    return 2
  split = argv.index("--")
  parser = argparse.ArgumentParser(prog="launch/local.py")
  parser.add_argument("n", type=int, help="number of processes")
  parser.add_argument("--cpu-devices", type=int,
                      help="CPU only: forced host devices per process")
  parser.add_argument("--port", type=int, help="coordinator port (default: free)")
  parser.add_argument("--grace", type=float, default=120.0,
                      help="seconds to wait for the others after one fails")
  parser.add_argument("--dry-run", action="store_true",
                      help="print the commands and their environment only")
  args = parser.parse_args(argv[:split])
  command = argv[split + 1:]
  if args.n < 1 or not command:
    parser.error("need N >= 1 and a command after --")
  if args.dry_run:
    dry_run(args.n, command, args.cpu_devices, args.port)
    return 0
  return run(args.n, command, args.cpu_devices, args.port, args.grace)


if __name__ == "__main__":
  sys.exit(main())
