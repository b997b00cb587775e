"""`analyze` at corpus scale: track sizes, read times and peak memory, CSV against
Parquet.

  python -m sfae_jax.tools.corpus_benchmark --dir /tmp/corpus --videos 10000 \
      [--frames 100] [-- --permutations 20]       # flags after -- go to analyze

Generates (once: a rerun on the same --dir reuses it) a corpus of synthetic
tracks with predict's columns: the AUs of `analyze.planted.track` (two first
languages, five videos per speaker, nothing planted), a face box and 68
landmarks, floats written as predict writes them; each track as a CSV and as
Parquet (the same values, as `predict --format parquet` writes them), with a
manifest per format. Then, per format, it prints the bytes on disk, the seconds
to read every track (this process, one at a time) and `python -m
sfae_jax.analyze` on the manifest as a child process: its wall time and its
peak resident memory (`wait4`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import tqdm

from sfae_jax.analyze import planted, tracks
from sfae_jax.predict import outputs
from sfae_jax.runtime import cli

VIDEOS_PER_SPEAKER = 5


def track(rng, rates: dict, frames: int, name: str) -> pd.DataFrame:
  """`planted.track`'s AUs with predict's other columns, in predict's order."""
  aus = planted.track(rng, rates, frames)
  walk = lambda scale, n: np.cumsum(rng.normal(0, scale, (frames, n)), 0)
  box = 120 + walk(0.5, 4)
  landmarks = 200 + walk(0.3, 136)
  lost = aus["success"].to_numpy() == 0
  geometry = pd.DataFrame(
      np.where(lost[:, None], np.nan, np.concatenate([box, landmarks], 1)),
      columns=["face_x", "face_y", "face_w", "face_h"]
      + [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)])
  aus["input"] = name
  head = aus[["input", "frame", "timestamp", "face_id", "success", "confidence"]]
  return pd.concat([head, geometry, aus.iloc[:, 6:]], axis=1).assign(decode_error=0)


def generate(folder: str, videos: int, frames: int, seed: int = 0) -> dict:
  """{format: manifest path} of a corpus under `folder`, made unless there."""
  manifests = {fmt: os.path.join(folder, f"manifest_{fmt}.csv")
               for fmt in outputs.FORMATS}
  if all(os.path.exists(m) for m in manifests.values()):
    return manifests
  rng = np.random.default_rng(seed)
  rows = []
  for fmt in outputs.FORMATS:
    os.makedirs(os.path.join(folder, fmt), exist_ok=True)
  speakers = -(-videos // VIDEOS_PER_SPEAKER)
  with tqdm.tqdm(total=videos, unit="track", desc="generating") as bar:
    for v in range(videos):
      s = v // VIDEOS_PER_SPEAKER
      lang = "A" if s < speakers / 2 else "B"
      if v % VIDEOS_PER_SPEAKER == 0:
        rates = {a: float(np.clip(planted.BASE[a] + rng.normal(0, 0.06), 0.02, 0.95))
                 for a in planted.AUS}
      name = f"s{s:05d}_v{v % VIDEOS_PER_SPEAKER}.mp4"
      text = track(rng, rates, frames, name).to_csv(index=False, float_format="%.4f")
      with open(os.path.join(folder, "csv", f"{name}.csv"), "w") as f:
        f.write(text)
      outputs.write_parquet(os.path.join(folder, "parquet", f"{name}.parquet"),
                            outputs.as_read_from_csv(text))
      rows.append((name, f"s{s:05d}", lang))
      bar.update()
  for fmt, path in manifests.items():
    pd.DataFrame({"video": [f"{fmt}/{n}.{fmt}" for n, _, _ in rows],
                  "speaker": [s for _, s, _ in rows],
                  "first_language": [l for _, _, l in rows]}).to_csv(path, index=False)
  return manifests


def measure(manifest: str, out: str, extra) -> dict:
  """Bytes and read seconds of the manifest's tracks; analyze's wall and peak RSS."""
  files = tracks.read_manifest(manifest)["video"].tolist()
  size = sum(os.path.getsize(f) for f in files)
  start = time.perf_counter()
  for f in files:
    tracks.read_track(f)
  read = time.perf_counter() - start
  cmd = [sys.executable, "-m", "sfae_jax.analyze", "--manifest", manifest,
         "--out", out, *extra]
  start = time.perf_counter()
  proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
  err = proc.stderr.read()
  _, status, usage = os.wait4(proc.pid, 0)
  wall = time.perf_counter() - start
  if os.waitstatus_to_exitcode(status) != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
  return {"tracks": len(files), "bytes": size, "read": read, "wall": wall,
          "peak_mib": usage.ru_maxrss / 1024}


def main(argv=None) -> int:
  argv, extra = cli.split_at_dashes(argv)
  parser = argparse.ArgumentParser(prog="python -m sfae_jax.tools.corpus_benchmark",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--dir", required=True, help="the corpus (made if missing)")
  parser.add_argument("--videos", type=int, default=10000)
  parser.add_argument("--frames", type=int, default=100, help="per track")
  args = parser.parse_args(argv)
  if args.videos < 2 * VIDEOS_PER_SPEAKER or args.frames < 2:
    parser.error(f"--videos >= {2 * VIDEOS_PER_SPEAKER} and --frames >= 2")
  manifests = generate(args.dir, args.videos, args.frames)
  for fmt, manifest in manifests.items():
    r = measure(manifest, os.path.join(args.dir, f"report_{fmt}"), extra)
    print(f"{fmt}: {r['tracks']} tracks, {r['bytes'] / 2**20:.1f} MiB; read all "
          f"{r['read']:.1f} s ({1e3 * r['read'] / r['tracks']:.2f} ms per track); "
          f"analyze {r['wall']:.1f} s, peak memory {r['peak_mib']:.0f} MiB",
          flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
