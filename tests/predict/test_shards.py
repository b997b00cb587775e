"""`predict --shard K/N`: N tasks writing into one folder leave what one
command leaves, each input predicted by exactly one task."""

import os
import shutil

import numpy as np
import pytest

from sfae_jax.predict import __main__ as predict_cli
from sfae_jax.predict import shards


def test_the_partition_balances_frames_keeps_order_and_is_deterministic():
  rng = np.random.default_rng(0)
  paths = [f"v{i:02d}.mp4" for i in range(40)]
  frames = dict(zip(paths, rng.integers(1, 5000, len(paths)).tolist()))
  for n in (1, 2, 3, 7):
    parts = shards.partition(paths, n, frames.__getitem__)
    assert sorted(sum(parts, [])) == sorted(paths)  # each input exactly once
    assert all(part == sorted(part) for part in parts)  # the inputs' order
    assert parts == shards.partition(list(paths), n, frames.__getitem__)
    loads = [sum(frames[p] for p in part) for part in parts]
    assert max(loads) - min(loads) <= max(frames.values())
  # one long video weighs as much as many short ones, not as one file
  parts = shards.partition(["long.mp4"] + [f"s{i}.jpg" for i in range(9)], 2,
                           lambda p: 9 if p == "long.mp4" else 1)
  assert parts[0] == ["long.mp4"] and len(parts[1]) == 9
  # an unreadable input (0 declared frames) still has a task
  assert shards.partition(["bad.mp4"], 2, lambda p: 0) == [["bad.mp4"], []]


def test_the_task_comes_from_the_flag_or_from_slurm():
  assert shards.from_args("1/3", {}) == (1, 3)
  assert shards.from_args(None, {}) is None
  slurm = {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4",
           "SLURM_ARRAY_TASK_MIN": "1"}  # --array=1-4
  assert shards.from_args(None, slurm) == (3, 4)
  assert shards.from_args("0/2", slurm) == (0, 2)  # the flag wins
  for bad in ("3/3", "a/b", "2"):
    with pytest.raises(ValueError, match="--shard"):
      shards.from_args(bad, {})


def test_n_tasks_leave_the_files_of_one_command(trained_run, faces_dir, tmp_path,
                                                capsys):
  media = tmp_path / "media"
  (media / "again").mkdir(parents=True)
  for name in ("single_face.jpg", "multi_face.jpg", "single_face.mp4",
               "no_face.mp4"):
    shutil.copy(os.path.join(faces_dir, name), media / name)
  shutil.copy(os.path.join(faces_dir, "single_face.jpg"),  # a shared file name
              media / "again" / "single_face.jpg")
  base = ["--workdir", trained_run[0], "--backend", "dlib", "--workers", "0",
          "--every", "6", str(media), str(media / "again" / "single_face.jpg")]
  assert predict_cli.main(base + ["--out", str(tmp_path / "one") + os.sep]) == 0
  want = sorted(f for f in os.listdir(tmp_path / "one") if f.endswith(".csv"))
  assert len(want) == 5
  for n in (2, 3):  # N = 1 is the one command (the partition test covers it)
    out = str(tmp_path / f"n{n}") + os.sep
    capsys.readouterr()
    for k in range(n):
      assert predict_cli.main(base + ["--out", out, "--shard", f"{k}/{n}"]) == 0
    said = capsys.readouterr().err
    counts = [int(said.split(f"shard {k}/{n}: ")[1].split(" of ")[0])
              for k in range(n)]
    assert sum(counts) == 5, said  # each input by exactly one task
    got = sorted(f for f in os.listdir(out) if f.endswith(".csv"))
    assert got == want
    for name in want:
      assert (tmp_path / "one" / name).read_bytes() == (
          tmp_path / f"n{n}" / name).read_bytes(), (n, name)


def test_a_sharded_run_needs_a_folder(trained_run, capsys):
  with pytest.raises(SystemExit) as e:
    predict_cli.main(["--workdir", trained_run[0], "x.jpg", "--out", "a.csv",
                      "--shard", "0/2"])
  assert e.value.code == 2
  assert "give --out DIR" in capsys.readouterr().err
