"""Streamed predict: the rows of one sequential pass, bounded memory, resume after
a kill (no worker outlives it), SIGTERM at a chunk boundary, a full disk, two
runs on one output, parallel face workers."""

import glob
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from sfae_jax.predict import Detector, outputs
from sfae_jax.tools import synthetic_video
from tests.predict.reference import sequential_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def detector(trained_run):
  return Detector(trained_run[0], backend="dlib")


@pytest.fixture(scope="module")
def clip(faces_dir, tmp_path_factory):
  """600 frames of a real face moving a little (240x200, cheap to detect)."""
  out = str(tmp_path_factory.mktemp("clip") / "talking.mp4")
  return synthetic_video.write(os.path.join(faces_dir, "single_face.jpg"), 600, out)


def _cli(trained_run, *args):
  return [sys.executable, "-m", "sfae_jax.predict", "--workdir", trained_run[0],
          "--backend", "dlib", *map(str, args)]


@pytest.fixture(scope="module")
def whole(trained_run, clip, tmp_path_factory):
  """An uninterrupted CLI run on `clip`: (its CSV's text, its stderr)."""
  out = tmp_path_factory.mktemp("whole") / "rows.csv"
  r = subprocess.run(_cli(trained_run, clip, "--out", out, "--workers", 2),
                     capture_output=True, text=True, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-2000:]
  return out.read_text(), r.stderr


@pytest.fixture(scope="module")
def whole_run(whole):
  return whole[0]


def test_the_face_counts_shown_equal_the_face_rows_written(whole):
  text, err = whole
  face_rows = int(pd.read_csv(io.StringIO(text))["success"].sum())
  assert face_rows > 500
  summary = re.search(r"(\d+) frames, (\d+) face rows in", err)
  assert summary and int(summary.group(2)) == face_rows, err[-1000:]
  bar = re.findall(r"all inputs: 100%.*?faces=(\d+)", err)
  assert bar and int(bar[-1]) == face_rows, err[-1000:]


def test_rows_equal_the_sequential_loop_on_the_shared_clips(detector, faces_dir):
  """Row order, face ids, landmarks, success and AU values as the frame-by-frame
  loop gives them, for a several-face photo and a short video. (The talking
  head at every 2nd frame and the video without faces are held to the same
  loop in tests/predict/test_detector.py, where they are predicted anyway.)"""
  for name, every in (("multi_face.jpg", 1), ("single_face.mp4", 1)):
    path = os.path.join(faces_dir, name)
    got = detector.detect(path, every=every)
    want = sequential_rows(detector, path, every)
    assert len(got) == len(want) > 0, name
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, atol=1e-5,
                                  check_dtype=False, obj=name)


def test_parallel_workers_give_the_rows_of_one(detector, faces_dir, trained_run,
                                               clip):
  paths = [clip] + [os.path.join(faces_dir, n) for n in
                    ("multi_face.jpg", "single_face.mp4")]
  one = detector.detect(paths, workers=0)
  two = Detector(trained_run[0], backend="dlib", batch_size=7).detect(
      paths, workers=2)
  assert one["face_id"].max() >= 1  # several faces: ids are exercised
  pd.testing.assert_frame_equal(one, two, atol=1e-5)


def _partial_chunks(out_dir):
  return sorted(glob.glob(os.path.join(out_dir, "*.partial", "[0-9]*.json")))


def _start_and_wait_for_a_chunk(cmd, out_dir, timeout=240):
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + timeout
  while not _partial_chunks(out_dir):
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    assert time.time() < deadline, "no chunk written in time"
    time.sleep(0.05)
  return proc


def _descendants(pid: int) -> set[int]:
  """Live (not zombie) processes below `pid`, from /proc."""
  parents = {}
  for stat in glob.glob("/proc/[0-9]*/stat"):
    try:
      fields = open(stat).read().rsplit(")", 1)[1].split()
    except OSError:
      continue
    if fields[0] != "Z":
      parents[int(stat.split("/")[2])] = int(fields[1])
  found, frontier = set(), {pid}
  while frontier:
    frontier = {p for p, parent in parents.items() if parent in frontier} - found
    found |= frontier
  return found


def _alive(pids) -> set[int]:
  out = set()
  for pid in pids:
    try:
      if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        out.add(pid)
    except OSError:
      pass
  return out


def test_killed_mid_input_no_worker_lives_on_and_the_rerun_continues(
    trained_run, clip, whole_run, tmp_path):
  out = tmp_path / "rows.csv"
  cmd = _cli(trained_run, clip, "--out", out, "--workers", 2, "--chunk-frames", 64)
  proc = _start_and_wait_for_a_chunk(cmd, str(out) + ".parts")
  workers = _descendants(proc.pid)
  assert len(workers) >= 2, workers  # the face workers (and a resource tracker)
  proc.kill()  # SIGKILL, as the out-of-memory killer sends: no handler runs
  proc.wait()
  deadline = time.time() + 10
  while _alive(workers) and time.time() < deadline:
    time.sleep(0.1)
  assert not _alive(workers), f"orphaned: {_alive(workers)}"
  assert not out.exists()
  chunks = _partial_chunks(str(out) + ".parts")
  done = json.load(open(chunks[-1]))["position"]
  assert 0 < done < 600
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-2000:]
  assert out.read_text() == whole_run
  assert (f"continuing {clip} at frame {done} of 600 ({len(chunks)} chunk(s) kept)"
          in r.stderr), r.stderr[-2000:]
  # the rerun decoded only what was left (its summary counts the frames it made)
  made = int(re.search(r"(\d+) frames, \d+ face rows in", r.stderr).group(1))
  assert made <= 600 - done, r.stderr[-500:]
  assert not os.path.exists(str(out) + ".parts")


def test_a_main_process_killed_while_its_workers_start_leaves_none(trained_run,
                                                                   clip,
                                                                   tmp_path):
  """Killed as soon as its workers exist, while they are still importing: they
  exit once started, not live on under init."""
  proc = subprocess.Popen(_cli(trained_run, clip, "--out", f"{tmp_path}/",
                               "--workers", 2), cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while len(_descendants(proc.pid)) < 2:
    assert proc.poll() is None and time.time() < deadline
    time.sleep(0.02)
  workers = _descendants(proc.pid)
  proc.kill()
  proc.wait()
  deadline = time.time() + 30  # their imports finish, then they see the parent gone
  while _alive(workers) and time.time() < deadline:
    time.sleep(0.2)
  assert not _alive(workers), f"orphaned: {_alive(workers)}"


def test_a_full_disk_is_one_line_keeps_the_chunks_and_the_rerun_continues(
    trained_run, clip, whole_run, small_disk):
  """The rows of 600 frames take ~1.3 MB: a 400 KB disk fills part-way."""
  disk, resize = small_disk("400k")
  cmd = _cli(trained_run, clip, "--out", f"{disk}/", "--workers", 1,
             "--chunk-frames", 64)
  full = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert full.returncode == 1, full.stderr[-2000:]
  errors = [l for l in full.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "No space left on device" in errors[0], errors
  assert f"{disk}/talking.mp4.csv" in errors[0] and "Traceback" not in full.stderr
  kept = len(_partial_chunks(str(disk)))
  assert kept >= 1 and f"{kept} complete chunk(s)" in errors[0]
  assert "the same command continues" in errors[0]
  assert not (disk / "talking.mp4.csv").exists()  # nothing that looks complete
  assert not glob.glob(str(disk / "**" / "*.tmp"), recursive=True)
  resize("4m")
  again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert again.returncode == 0, again.stderr[-2000:]
  assert "continuing" in again.stderr
  assert (disk / "talking.mp4.csv").read_text() == whole_run


def test_a_second_run_on_an_output_being_written_is_refused(trained_run, clip,
                                                            tmp_path):
  """Another process holds the input's output (as a running predict does): this
  run refuses it, naming the holder, and writes none of its chunks."""
  out = tmp_path / "tracks"
  holder = subprocess.Popen(
      [sys.executable, "-c",
       "import sys, time; from sfae_jax.predict import outputs; "
       f"store = outputs.ChunkStore({str(out)!r}, outputs.names_for([sys.argv[1]])"
       ".__getitem__); store.lock(sys.argv[1]); print('locked', flush=True); "
       "time.sleep(600)", clip], stdout=subprocess.PIPE, text=True, cwd=ROOT)
  try:
    assert holder.stdout.readline().strip() == "locked"
    r = subprocess.run(_cli(trained_run, clip, "--out", f"{out}/"),
                       capture_output=True, text=True, cwd=ROOT)
  finally:
    holder.kill()
    holder.wait()
  assert r.returncode == 1, r.stderr[-2000:]
  errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "being written by another predict run" in errors[0]
  assert f"pid {holder.pid} on" in errors[0]
  assert not glob.glob(str(out / "*.partial" / "*"))
  assert not (out / "talking.mp4.csv").exists()
  # the holder killed, the kernel has released its lock: it can be taken again
  store = outputs.ChunkStore(str(out), outputs.names_for([clip]).__getitem__)
  store.lock(clip)
  store.unlock(clip)


def test_sigterm_ends_at_a_chunk_boundary_and_keeps_the_rows(
    trained_run, clip, whole_run, tmp_path):
  out = tmp_path / "tracks"
  cmd = _cli(trained_run, clip, "--out", f"{out}/", "--workers", 1,
             "--chunk-frames", 64)
  proc = _start_and_wait_for_a_chunk(cmd, str(out))
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
  assert "run the same command to continue" in err
  chunks = sorted(glob.glob(str(out / "*.partial" / "[0-9]*.csv")))
  kept = pd.concat([pd.read_csv(c) for c in chunks], ignore_index=True)
  position = json.load(open(_partial_chunks(str(out))[-1]))["position"]
  # every decoded frame before the boundary has its row, none after it
  assert list(kept["frame"]) == list(range(position))
  assert position % 5 == 0  # a detection frame: the rerun starts exactly there
  whole = pd.read_csv(io.StringIO(whole_run))
  pd.testing.assert_frame_equal(kept, whole.iloc[:position].reset_index(drop=True))
  assert not (out / "talking.mp4.csv").exists()
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-2000:]
  assert (out / "talking.mp4.csv").read_text() == whole_run
  record = json.loads((out / "talking.mp4.csv.provenance.json").read_text())
  assert record["settings"]["detect_every"] == 5 and record["step"] == 6


def test_parquet_stopped_and_continued_holds_the_rows_of_the_csv(
    trained_run, clip, whole_run, tmp_path):
  out = tmp_path / "rows.parquet"
  cmd = _cli(trained_run, clip, "--out", out, "--workers", 1, "--chunk-frames", 64)
  proc = _start_and_wait_for_a_chunk(cmd, str(out) + outputs.PARTS)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
  assert glob.glob(str(tmp_path / "rows.parquet.parts" / "*.partial" / "*.parquet"))
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-2000:]
  pd.testing.assert_frame_equal(pd.read_parquet(out),
                                pd.read_csv(io.StringIO(whole_run)), check_exact=True)
  record = json.loads((tmp_path / "rows.parquet.provenance.json").read_text())
  assert record["inputs"] == [str(clip)]


def test_other_settings_are_refused_naming_them_and_fresh_redoes(
    trained_run, clip, whole_run, tmp_path):
  out = tmp_path / "tracks"
  (out / "talking.mp4.csv").parent.mkdir()
  first = subprocess.run(_cli(trained_run, clip, "--out", f"{out}/", "--every", 3),
                         capture_output=True, text=True, cwd=ROOT)
  assert first.returncode == 0, first.stderr[-2000:]
  again = subprocess.run(_cli(trained_run, clip, "--out", f"{out}/", "--every", 3),
                         capture_output=True, text=True, cwd=ROOT)
  assert again.returncode == 0 and "1 input(s) already complete" in again.stderr
  other = subprocess.run(_cli(trained_run, clip, "--out", f"{out}/"),
                         capture_output=True, text=True, cwd=ROOT)
  assert other.returncode == 1
  error = [l for l in other.stderr.splitlines() if l.startswith("error:")]
  assert len(error) == 1 and "every 3 -> 1" in error[0] and "--fresh" in error[0]
  made = (out / "talking.mp4.csv").read_text()
  (out / "talking.mp4.csv").write_text("stale")
  fresh = subprocess.run(_cli(trained_run, clip, "--out", f"{out}/", "--every", 3,
                              "--fresh"), capture_output=True, text=True, cwd=ROOT)
  assert fresh.returncode == 0, fresh.stderr[-2000:]
  assert "already complete" not in fresh.stderr
  assert (out / "talking.mp4.csv").read_text() == made
  # every 3rd frame (file frame numbers kept); --every 3 is not the whole run
  # thinned: the detector runs on every 5th *decoded* frame
  assert list(pd.read_csv(io.StringIO(made))["frame"]) == list(range(0, 600, 3))


def _peak_rss_mb(cmd):
  """The largest resident set of the command's processes, in MiB (the kernel's
  figure for the waited-for children: `getrusage(RUSAGE_CHILDREN)`). Two malloc
  arenas: memory the allocator keeps in each thread's own arena after it is
  freed would otherwise vary by tens of MiB from run to run, while what the
  program holds shows the same either way."""
  probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
           "sys.exit(r.returncode)")
  r = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True,
                     text=True, cwd=ROOT, env=dict(os.environ, MALLOC_ARENA_MAX="2"))
  assert r.returncode == 0, r.stderr[-2000:]
  return int(r.stdout.split()[-1]) / 1024


def test_memory_is_flat_in_the_video_length(trained_run, faces_dir, tmp_path):
  """Peak RSS for 500 and 2,500 frames: the same, within 60 MiB. Holding the
  aligned faces alone (120 KB each) would add about 240 MB."""
  face = os.path.join(faces_dir, "single_face.jpg")
  peaks = {}
  for n in (500, 2500):
    video = synthetic_video.write(face, n, str(tmp_path / f"v{n}.mp4"), (160, 128))
    peaks[n] = _peak_rss_mb(_cli(trained_run, video, "--out", f"{tmp_path / str(n)}/",
                                 "--workers", 1, "--detect-every", 50))
    rows_written = pd.read_csv(tmp_path / f"{n}" / f"v{n}.mp4.csv",
                               usecols=["frame", "success"])
    assert len(rows_written) == n and rows_written["success"].mean() > 0.9
  print(f"peak RSS: {peaks}")
  assert peaks[2500] - peaks[500] < 60, peaks
