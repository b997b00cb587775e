"""The manifest, and AU tracks for its videos (run through predict, cached).

Manifest CSV columns: `video` (a media file, or an AU track made by
`sfae_jax.predict`: its CSV or Parquet file), `speaker`, `first_language`, then
optional covariates (task, gender, ...). Relative paths are relative to the
manifest's folder; `$VARS` and `~` are expanded. Tracks of media files are cached
in `<out>/tracks/` (CSV, or Parquet with `fmt="parquet"`), keyed by the file's
path, size and modification time, the run and `--every`.

Tracks are read when they are used, one at a time (`TrackFiles`): a manifest of
any length holds its tracks' paths, not their rows.
"""

from __future__ import annotations

import collections.abc
import hashlib
import os
import re
import sys

import pandas as pd
import pyarrow.parquet as pq

from sfae_jax.predict import Detector, outputs
from sfae_jax.predict import provenance

REQUIRED = ("video", "speaker", "first_language")
TRACK_SUFFIXES = tuple(f".{fmt}" for fmt in outputs.FORMATS)   # .csv, .parquet


def is_track(path: str) -> bool:
  return path.lower().endswith(TRACK_SUFFIXES)


_GEOMETRY = re.compile(r"[xy]_\d+|face_[xywh]")   # landmarks, face box


def _analysed(column: str) -> bool:
  """The columns the analysis reads: all but the face's geometry (~140 of a
  track's ~175), which a Parquet reader then never touches."""
  return not _GEOMETRY.fullmatch(column)


def read_track(path: str) -> pd.DataFrame:
  """A track file's analysed columns (`_analysed`), CSV or Parquet (predict
  writes the same rows to either). ValueError naming the file when it cannot be
  read as one."""
  try:
    if path.lower().endswith(".parquet"):
      table = pq.ParquetFile(path)
      return table.read(columns=[c for c in table.schema_arrow.names
                                 if _analysed(c)]).to_pandas()
    return pd.read_csv(path, usecols=_analysed)
  except (OSError, ValueError) as e:  # pyarrow's and pandas' parse errors are ValueErrors
    raise ValueError(f"{path}: cannot read it as an AU track ({e}).") from e


class TrackFiles(collections.abc.Mapping):
  """{video: its track DataFrame}, read from the track's file at each lookup
  and not kept: iterating over a corpus holds one track at a time."""

  def __init__(self, files: dict[str, str]):
    self.files = files   # {video: track file}

  def __getitem__(self, video: str) -> pd.DataFrame:
    return read_track(self.files[video])

  def __contains__(self, video) -> bool:   # without reading it (Mapping's would)
    return video in self.files

  def __iter__(self):
    return iter(self.files)

  def __len__(self) -> int:
    return len(self.files)

  def drop(self, video: str) -> None:
    """Leaves `video` out from here on (its track could not be read)."""
    self.files.pop(video, None)


def read_manifest(path: str) -> pd.DataFrame:
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: no such manifest.")
  m = pd.read_csv(path, dtype=str, keep_default_na=False)
  m.columns = [c.strip() for c in m.columns]
  m = m.apply(lambda col: col.str.strip())  # "English " is "English"
  missing = [c for c in REQUIRED if c not in m.columns]
  if missing:
    raise ValueError(f"{path}: the manifest lacks column(s) {missing}; it needs "
                     f"{list(REQUIRED)} (+ optional covariates).")
  empty = m[(m[list(REQUIRED)] == "").any(axis=1)]
  if len(empty):
    raise ValueError(f"{path}: rows {list(empty.index + 2)} have an empty "
                     f"{'/'.join(REQUIRED)} value.")
  for column in ("speaker", "first_language"):
    _refuse_near_duplicates(path, m, column)
  base = os.path.dirname(os.path.abspath(path))
  m["video"] = [os.path.normpath(os.path.join(base, os.path.expanduser(
      os.path.expandvars(v)))) for v in m["video"]]
  same = m.groupby(m["video"].map(os.path.realpath)).groups
  twice = {v: rows for v, rows in same.items() if len(rows) > 1}
  if twice:
    video, rows = next(iter(twice.items()))
    raise ValueError(f"{path}: {video} is listed {len(rows)} times (rows "
                     f"{_rows(rows)}); each video may count once. Remove the "
                     "repeats" + (f" ({len(twice)} videos are repeated)."
                                  if len(twice) > 1 else "."))
  return m


def _rows(index) -> str:
  return ", ".join(str(i + 2) for i in index)  # CSV line numbers (header = 1)


def _refuse_near_duplicates(path: str, m: pd.DataFrame, column: str) -> None:
  """Labels that differ only in case or inner spaces ('English', 'english',
  'New  Zealand'/'New Zealand') would count as different groups: refused."""
  groups = {}
  for label in m[column].unique():
    groups.setdefault(" ".join(label.split()).casefold(), []).append(label)
  for labels in groups.values():
    if len(labels) > 1:
      where = "; ".join(f"{l!r} (rows {_rows(m.index[m[column] == l])})"
                        for l in labels)
      raise ValueError(f"{path}: {column} labels differ only in case or spaces: "
                       f"{where}. Write them the same if they are one "
                       f"{column.replace('_', ' ')}.")


def covariates(manifest: pd.DataFrame) -> list[str]:
  return [c for c in manifest.columns if c not in REQUIRED]


def _cache_key(path: str, workdir: str, every: int) -> str:
  st = os.stat(path)
  text = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|" \
         f"{os.path.abspath(workdir)}|{every}"
  return hashlib.sha1(text.encode()).hexdigest()[:16]


def load_tracks(manifest: pd.DataFrame, out_dir: str, workdir: str | None,
                every: int = 1, backend: str = "auto", workers: int = 0,
                cluster: str | None = None,
                fmt: str = "csv") -> tuple[TrackFiles, list[str], dict]:
  """{video path: track} (`TrackFiles`: read when looked up), the errors of
  videos that failed, and {video path: provenance record}
  (`sfae_jax.predict.provenance`; None for a track file that has none beside
  it). Media not yet cached go through predict's streamed path together
  (`workers` face-detection processes, or `cluster`, a Ray cluster's address as
  `predict --ray` takes it) into `fmt` files; an interrupted run continues from
  its chunks in `<out>/tracks/`."""
  found, errors, sources, todo = {}, [], {}, {}
  cache = os.path.join(out_dir, "tracks")
  for path in dict.fromkeys(manifest["video"]):
    if is_track(path):
      if not os.path.exists(path):
        errors.append(f"{path}: no such track file.")
        continue
      found[path] = path
      sources[path] = provenance.read_for(path)
      continue
    if not os.path.exists(path):
      errors.append(f"{path}: no such file.")
      continue
    if workdir is None:
      raise ValueError(f"{path} is a media file: pass --workdir RUN to run predict "
                       "on it (or give its track file instead).")
    cached = os.path.join(cache, f"{os.path.basename(path)}."
                          f"{_cache_key(path, workdir, every)}.{fmt}")
    record = provenance.read_for(cached) if os.path.exists(cached) else None
    if record is not None:
      found[path], sources[path] = cached, record
    else:
      todo[path] = os.path.basename(cached)
  if todo:
    detector = Detector(workdir, backend)
    store = outputs.ChunkStore(cache, todo.__getitem__, fmt=fmt)
    for path in todo:  # a cache made with other settings is redone, not refused
      try:
        store.resume(path, detector.settings(every).as_dict())
      except outputs.SettingsMismatch:
        store.resume(path, detector.settings(every).as_dict(), fresh=True)
    os.makedirs(cache, exist_ok=True)
    report = detector.run(list(todo), every, store=store, workers=workers,
                          progress=True, on_error="skip", cluster=cluster)
    errors += detector.failures
    for path, result in report.inputs.items():
      if result.output:
        found[path] = result.output
        sources[path] = provenance.read_for(result.output)
  for e in errors:
    print(f"error: {e}", file=sys.stderr)
  return TrackFiles(found), errors, sources
