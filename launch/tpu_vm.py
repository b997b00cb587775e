#!/usr/bin/env python3
"""Train on a Cloud TPU VM slice: create it, install the project on every worker,
stage the dataset, run the same train command on all workers, follow the logs,
fetch results, delete it. Single-host (v5litepod-8, v4-8) and multi-host (v4-32,
v5p-32, ...) slices alike: every worker runs one process and
`sfae_jax.runtime.distributed` joins them (JAX detects the slice).

  python launch/tpu_vm.py all --name sfae-f1 --zone us-central2-b \\
      --accelerator v4-32 --bucket gs://my-bucket --fold 1 [--dry-run]
  python launch/tpu_vm.py logs|fetch|delete --name sfae-f1 --zone us-central2-b ...

Steps (each a subcommand; `all` = create, setup, stage, train):
  create   a queued resource (waits until the slice is ACTIVE; --spot for spot)
  setup    copies the committed tree (`git archive HEAD`) to every worker and
           installs it with the `tpu` extra into a venv
  stage    copies the built TFDS dataset from BUCKET/tfds to each worker's local
           disk (/tmp/tfds): array_record random access from a bucket is slower
           than the step rate needs (docs/cluster.md)
  train    starts the train command on all workers in the background; rerunning it
           resumes from the last checkpoint in BUCKET/runs/NAME
  logs     follows worker 0's log (process 0 prints progress)
  fetch    copies run.json, eval_*.{json,md} and the logs to runs/NAME here
  delete   deletes the queued resource and its slice

Layout in the bucket: BUCKET/tfds/bp4d/bp4d49/1.0.0/... (from `tfds build` with
--data_dir BUCKET/tfds or copied there), BUCKET/runs/NAME/{run.json,checkpoints/,
eval_*}. `--dry-run` prints every command and runs none.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time

REMOTE_DIR = "sfae-jax"
LOCAL_DATA = "/tmp/tfds"
RUNTIMES = {"v4": "tpu-ubuntu2204-base", "v5litepod": "v2-alpha-tpuv5-lite",
            "v5p": "v2-alpha-tpuv5", "v6e": "v2-alpha-tpuv6e"}


def runtime_for(accelerator: str) -> str:
  family = accelerator.rsplit("-", 1)[0]
  if family not in RUNTIMES:
    raise SystemExit(f"error: no known TPU runtime for --accelerator {accelerator}; "
                     f"pass --runtime (known families: {sorted(RUNTIMES)}).")
  return RUNTIMES[family]


def _where(a) -> list[str]:
  return [f"--zone={a.zone}"] + ([f"--project={a.project}"] if a.project else [])


def _ssh(a, command: str, worker: str = "all") -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", "ssh", a.name, *_where(a),
          f"--worker={worker}", f"--command={command}"]


def workdir(a) -> str:
  return f"{a.bucket.rstrip('/')}/runs/{a.name}"


def train_command(a) -> str:
  """What every worker runs: the same command, no process id (JAX finds it)."""
  cmd = ["python", "-m", "sfae_jax.train", "--config",
         f"configs/{a.config}.py:fold={a.fold}", "--workdir", workdir(a),
         "--config.data_dir", LOCAL_DATA if a.stage else f"{a.bucket}/tfds",
         *a.extra]
  return (f"cd {REMOTE_DIR} && . .venv/bin/activate && nohup "
          f"{shlex.join(cmd)} > train.log 2>&1 &")


def steps(a, which: str) -> list[list[str]]:
  qr = f"{a.name}-qr"
  if which == "create":
    return [["gcloud", "compute", "tpus", "queued-resources", "create", qr,
             f"--node-id={a.name}", *_where(a), f"--accelerator-type={a.accelerator}",
             f"--runtime-version={a.runtime or runtime_for(a.accelerator)}"]
            + (["--spot"] if a.spot else [])]
  if which == "setup":
    install = (f"mkdir -p {REMOTE_DIR} && tar -xzf sfae-jax.tar.gz -C {REMOTE_DIR} && "
               f"cd {REMOTE_DIR} && python3 -m venv .venv && . .venv/bin/activate && "
               "pip install -q -U pip && pip install -q -e '.[tpu]'")
    return [["git", "archive", "--format=tar.gz", "-o", "/tmp/sfae-jax.tar.gz",
             "HEAD"],
            ["gcloud", "compute", "tpus", "tpu-vm", "scp", "/tmp/sfae-jax.tar.gz",
             f"{a.name}:~/sfae-jax.tar.gz", *_where(a), "--worker=all"],
            _ssh(a, install)]
  if which == "stage":
    return [_ssh(a, f"mkdir -p {LOCAL_DATA} && gcloud storage cp -r "
                    f"{a.bucket}/tfds/bp4d {LOCAL_DATA}/")] if a.stage else []
  if which == "train":
    return [_ssh(a, train_command(a))]
  if which == "logs":
    return [_ssh(a, f"tail -n 50 -f {REMOTE_DIR}/train.log", worker="0")]
  if which == "fetch":
    out = f"runs/{a.name}"
    return [["mkdir", "-p", out],
            ["gcloud", "storage", "cp", f"{workdir(a)}/run.json",
             f"{workdir(a)}/eval_*", out],
            ["gcloud", "compute", "tpus", "tpu-vm", "scp",
             f"{a.name}:{REMOTE_DIR}/train.log", f"{out}/train.worker0.log",
             *_where(a), "--worker=0"]]
  if which == "delete":
    return [["gcloud", "compute", "tpus", "queued-resources", "delete", qr,
             *_where(a), "--force", "--quiet"]]
  raise ValueError(which)


def wait_active(a) -> None:
  cmd = ["gcloud", "compute", "tpus", "queued-resources", "describe",
         f"{a.name}-qr", *_where(a), "--format=value(state.state)"]
  while True:
    state = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    print(f"queued resource {a.name}-qr: {state.strip()}", flush=True)
    if state.strip() == "ACTIVE":
      return
    if state.strip() in ("FAILED", "SUSPENDED"):
      raise SystemExit(f"error: the queued resource is {state.strip()}.")
    time.sleep(30)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="launch/tpu_vm.py", description=__doc__.split(
      "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("step", choices=("all", "create", "setup", "stage", "train", "logs",
                                  "fetch", "delete"))
  p.add_argument("--name", required=True, help="TPU VM (node) name")
  p.add_argument("--zone", required=True)
  p.add_argument("--project")
  p.add_argument("--accelerator", default="v4-32", help="e.g. v5litepod-8, v4-32")
  p.add_argument("--runtime", help="TPU software version (default from the type)")
  p.add_argument("--bucket", required=True, help="gs://BUCKET holding tfds/ and runs/")
  p.add_argument("--config", default="cloud", help="configs/<name>.py")
  p.add_argument("--fold", type=int, default=1, choices=(1, 2, 3))
  p.add_argument("--spot", action="store_true")
  p.add_argument("--no-stage", dest="stage", action="store_false",
                 help="read the dataset from the bucket instead of local disk")
  p.add_argument("--dry-run", action="store_true", help="print, run nothing")
  p.add_argument("extra", nargs="*", help="after --: more train flags")
  a = p.parse_args(argv)
  if not a.bucket.startswith("gs://"):
    p.error("--bucket must be a gs:// path")
  order = ["create", "setup", "stage", "train"] if a.step == "all" else [a.step]
  for which in order:
    for cmd in steps(a, which):
      print(shlex.join(cmd), flush=True)
      if not a.dry_run:
        try:
          subprocess.run(cmd, check=True)
        except FileNotFoundError:
          print(f"error: {cmd[0]} is not installed here (the Google Cloud CLI: "
                "https://cloud.google.com/sdk).", file=sys.stderr)
          return 1
        except subprocess.CalledProcessError as e:
          print(f"error: step {which!r} failed (exit {e.returncode}); fix it and "
                f"rerun `launch/tpu_vm.py {which}`.", file=sys.stderr)
          return 1
    if which == "create" and not a.dry_run:
      wait_active(a)
  return 0


if __name__ == "__main__":
  sys.exit(main())
