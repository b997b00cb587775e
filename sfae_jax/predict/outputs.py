"""Where predict's rows go: one file per input, CSV (the default) or Parquet,
written in chunks as they come, so a killed run keeps its work and a rerun
continues it.

  OUT/                                  (`--out OUT/`, a folder)
    clip1.mp4.csv                       a complete input, written atomically
    clip1.mp4.csv.provenance.json       its run, step and settings
    clip2.mp4.csv.partial/              an input in progress
      settings.json                     the settings it was started with
      000000.csv  000000.json           rows of whole segments; then (written
      000001.csv  000001.json           last) where the next chunk starts
    .locks/clip2.mp4.csv                held (flock) by the process writing it

A chunk counts once its `.json` exists. It records the decoded-frame position
where the next chunk starts (always a detection frame, `face.segments`), the face
tracker's state there and the frames flagged so far, which is all a rerun needs
to continue with the rows an uninterrupted run would give.

CSV is what users of AU tools read (OpenFace's and py-feat's convention): chunks
join into one file by copying bytes. At corpus scale its text is large and slow
to parse again, so `fmt="parquet"` writes `clip1.mp4.parquet`: the same rows with
the same values (each chunk is the CSV text's parse, so a reader gets from either
file exactly what it would from the other), a chunk per file while in progress
(a killed Parquet writer leaves a file without its footer), then joined into one
zstd-compressed file in row groups of ~32k rows (`join_parquets`).

A process writes an input's chunks only while it holds the input's lock, so two
runs given the same `--out` never interleave their chunks: the second is refused
the inputs the first is writing, naming its pid and host. The lock is the kernel's
(`flock`): a killed process releases it, so a rerun never finds a stale one.

`--out table.csv` (or `table.parquet`) keeps its meaning: the chunks live in
`table.csv.parts/` and are joined into `table.csv` (atomically) when every input
is done.
"""

from __future__ import annotations

import dataclasses
import fcntl
import glob
import hashlib
import io
import json
import os
import shutil
import socket
from typing import Callable, Optional

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sfae_jax.runtime import files
from sfae_jax.predict import provenance

PARTIAL = ".partial"
PARTS = ".parts"
LOCKS = ".locks"
FORMATS = ("csv", "parquet")
ROW_GROUP_ROWS = 32768   # a joined Parquet file's rows per row group (~50 MB held)


class SettingsMismatch(ValueError):
  """Existing output made with other settings; the message says what differs."""


def made_with(out: str, record: dict, settings: dict) -> dict:
  """`record` (the provenance of the finished file `out`) if it was made with
  `settings`; else SettingsMismatch naming `out` and what differs."""
  old, settings = record.get("settings"), json.loads(json.dumps(settings))
  if old != settings:
    raise SettingsMismatch(
        f"{out} exists, made with other settings ("
        f"{_differences(old or {}, settings) or 'no settings recorded'}); rerun "
        "with the same settings, choose another --out, or pass --fresh to redo it.")
  return record


class OutputInUse(RuntimeError):
  """Another process is writing this input's output; the message names it."""


@dataclasses.dataclass(frozen=True)
class Resume:
  """Where an input's work starts."""
  done: bool = False
  position: int = 0                    # decoded frames already written
  tracker: Optional[dict] = None       # `IoUTracker.state()` there
  flagged: tuple[int, ...] = ()        # frames decoded with errors so far
  chunks: int = 0                      # complete chunks kept
  incomplete: Optional[str] = None     # done, but the input ended early: why


def names_for(paths, fmt: str = "csv") -> dict[str, str]:
  """An output file name per input: its file name, plus a hash of its path where
  two inputs share a file name, then `.csv` or `.parquet` (`fmt`)."""
  base = {p: os.path.basename(p) for p in paths}
  counts = pd.Series(list(base.values())).value_counts()
  out = {}
  for p, name in base.items():
    if counts[name] > 1:
      digest = hashlib.sha1(os.path.abspath(p).encode()).hexdigest()[:8]
      name = f"{name}-{digest}"
    out[p] = f"{name}.{fmt}"
  return out


def _differences(old: dict, new: dict) -> str:
  keys = sorted(set(old) | set(new))
  return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys
                   if old.get(k) != new.get(k))


class ChunkStore:
  """Per-input files under `root` (`fmt`: "csv" or "parquet", `name(input)` their
  names), each written chunk by chunk; floats as `float_format` writes them."""

  def __init__(self, root: str, name: Callable[[str], str],
               float_format: Optional[str] = None, fmt: str = "csv"):
    if fmt not in FORMATS:
      raise ValueError(f"output format {fmt!r}: choose one of {FORMATS}.")
    self.root, self._name, self.float_format, self.fmt = root, name, float_format, fmt
    self._next: dict[str, int] = {}
    self._locks: dict[str, object] = {}

  def output_path(self, path: str) -> str:
    return os.path.join(self.root, self._name(path))

  def _partial(self, path: str) -> str:
    return self.output_path(path) + PARTIAL

  def resume(self, path: str, settings: dict, fresh: bool = False) -> Resume:
    """Where `path`'s work starts. Output made with other settings raises
    SettingsMismatch naming it, unless `fresh` (then it is deleted)."""
    out, partial = self.output_path(path), self._partial(path)
    settings = json.loads(json.dumps(settings))
    if fresh:
      self.discard(path)
      for p in (out, provenance.path_for(out)):
        if os.path.exists(p):
          os.remove(p)
      return Resume()
    if os.path.exists(out):
      record = made_with(out, provenance.read_for(out) or {}, settings)
      return Resume(done=True, incomplete=record.get("incomplete"))
    if not os.path.isdir(partial):
      return Resume()
    settings_file = os.path.join(partial, "settings.json")
    old = _read_json(settings_file)
    if old != settings:
      raise SettingsMismatch(
          f"{partial} holds a part-done run with other settings ("
          f"{_differences(old or {}, settings) or 'none recorded'}); rerun with "
          "the same settings, choose another --out, or pass --fresh to start over.")
    chunks = self._chunks(path)
    if not chunks:
      return Resume()
    state = _read_json(chunks[-1][1])
    return Resume(False, int(state["position"]), state["tracker"],
                  tuple(state["flagged"]), len(chunks))

  def lock(self, path: str) -> None:
    """Holds `path`'s output for this process until `unlock` (or the process
    ends, killed or not); OutputInUse when another process holds it."""
    folder = os.path.join(self.root, LOCKS)
    os.makedirs(folder, exist_ok=True)
    f = open(os.path.join(folder, self._name(path)), "a+")  # pylint: disable=consider-using-with
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip() or "another process"
      f.close()
      raise OutputInUse(
          f"{self.output_path(path)} is being written by another predict run "
          f"({holder}): wait for it to finish, or choose another --out.") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}")
    f.flush()
    self._locks[path] = f

  def unlock(self, path: str) -> None:
    f = self._locks.pop(path, None)
    if f is not None:
      f.close()

  def _chunks(self, path: str) -> list[tuple[str, str]]:
    """(rows, json) of the complete chunks, in order; a chunk whose json is
    missing (killed while writing it) and everything after it are removed."""
    partial = self._partial(path)
    out = []
    for rows in sorted(glob.glob(os.path.join(partial, f"[0-9]*.{self.fmt}"))):
      stem = rows[:-len(self.fmt) - 1]
      state = stem + ".json"
      if not os.path.exists(state) or len(out) != int(os.path.basename(stem)):
        break
      out.append((rows, state))
    if os.path.isdir(partial):
      for name in os.listdir(partial):
        stem = name.split(".")[0]
        if name != "settings.json" and (name.endswith(".tmp") or not stem.isdigit()
                                        or int(stem) >= len(out)):
          os.remove(os.path.join(partial, name))
    return out

  def start(self, path: str, settings: dict) -> None:
    """Before the first `append` of a run: records the settings of a new input."""
    partial = self._partial(path)
    os.makedirs(partial, exist_ok=True)
    self._next[path] = len(self._chunks(path))
    settings_file = os.path.join(partial, "settings.json")
    if not os.path.exists(settings_file):
      files.write_atomically(settings_file, json.dumps(settings, indent=1,
                                                       sort_keys=True))

  def append(self, path: str, table: pd.DataFrame, state: dict) -> None:
    """One chunk of rows, and the state after them (written last)."""
    n = self._next[path]
    stem = os.path.join(self._partial(path), f"{n:06d}")
    text = table.to_csv(index=False, float_format=self.float_format)
    if self.fmt == "csv":
      files.write_atomically(stem + ".csv", text)
    else:
      write_parquet(stem + ".parquet", as_read_from_csv(text))
    files.write_atomically(stem + ".json", json.dumps(state))
    self._next[path] = n + 1

  def finish(self, path: str, record: dict) -> str:
    """Joins the chunks into the input's file (atomically), writes its
    provenance, removes the chunks. Returns the file's path."""
    out = self.output_path(path)
    join(out, [rows for rows, _ in self._chunks(path)])
    provenance.write(out, record)
    self.discard(path)
    return out

  def discard(self, path: str) -> None:
    shutil.rmtree(self._partial(path), ignore_errors=True)


def as_read_from_csv(text: str) -> pd.DataFrame:
  """The table a CSV reader gets from `text`: what Parquet stores, so that a
  reader of either file gets the same values and types."""
  return pd.read_csv(io.StringIO(text))


def write_parquet(path: str, table: pd.DataFrame) -> None:
  with files.open_atomically(path, "wb") as f:
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), f,
                   compression="zstd")


def join(out: str, parts) -> None:
  """`parts` (files of one format, that of `out`'s suffix) as one file at `out`."""
  if out.lower().endswith(".parquet"):
    join_parquets(out, parts)
  else:
    join_csvs(out, parts)


def join_parquets(out: str, parts) -> None:
  """`parts` (Parquet files of the same columns; a column's type may differ
  between them, integers in one and floats where another has missing values)
  as one zstd-compressed Parquet file at `out`, written atomically: each column
  of the type that holds every part's values. Parts are read one at a time and
  written in row groups of about ROW_GROUP_ROWS rows (a corpus's reader reads
  fewer, larger columns)."""
  parts = list(parts)
  if not parts:
    raise ValueError(f"{out}: no part to join.")
  schema = pa.unify_schemas([pq.read_schema(p) for p in parts],
                            promote_options="permissive").remove_metadata()
  with files.open_atomically(out, "wb") as f:
    with pq.ParquetWriter(f, schema, compression="zstd") as writer:
      held = []
      for i, part in enumerate(parts):
        held.append(pq.read_table(part).cast(schema))
        if (sum(t.num_rows for t in held) >= ROW_GROUP_ROWS
            or i == len(parts) - 1):
          group = pa.concat_tables(held)
          writer.write_table(group, row_group_size=max(group.num_rows, 1))
          held = []


def join_csvs(out: str, parts, header: Optional[str] = None) -> None:
  """`parts` (CSVs with one header line, the same columns) as one CSV at `out`,
  written atomically, a part at a time. `header` is written when there is no part."""
  with files.open_atomically(out) as dst:
    first = True
    for part in parts:
      with open(part) as src:
        line = src.readline()
        if first:
          dst.write(line)
          first = False
        shutil.copyfileobj(src, dst)
    if first and header is not None:
      dst.write(header)


def _read_json(path: str) -> Optional[dict]:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None
