"""BP4D-Spontaneous on disk: folds, AU-occurrence CSVs, AU-intensity CSVs, 2D-landmark
.mat files, frames.

Layout (see the builder's README): `Sequences/<subject>/<task>/<frame>.jpg` (or
`Sequences_2D+3D/`), `AUCoding/AU_OCC/<subject>_<task>.csv` (or `Labels/OCC/`),
`AUCoding/AU_INT/AU06/<subject>_<task>_AU06.csv` (or `AU Intensity Codes3.0/`, FERA
2015's name; optional), `2DFeatures/<subject>_<task>.mat` (MATLAB v7.3). Frame names are numbers, zero-padded
to 3 or 4 digits: the number is read, never the string.
"""

from __future__ import annotations

import csv
import io
import os
import re
from typing import Iterable, Optional

import h5py
import numpy as np

from sfae_jax.face import action_units
from tfds_bp4d.layout import LayoutError, find_dir, read_frame_values  # noqa: F401 (this layout's errors and finder)

AUS = action_units.BP4D
INTENSITY_AUS = action_units.BP4D_INTENSITY
PARTS = {
    "part1": "F001 M007 F018 F008 F002 M004 F010 F009 M012 M001 F016 M014 F023 M008",
    "part2": "M011 F003 M010 M002 F005 F022 M018 M017 F013 M016 F020 F011 M013 M005",
    "part3": "F007 F015 F006 F019 M006 M009 F012 M003 F004 F021 F017 M015 F014",
}
PARTS = {k: tuple(v.split()) for k, v in PARTS.items()}
SUBJECT_PART = {s: p for p, subjects in PARTS.items() for s in subjects}
SEQUENCE_DIRS = ("Sequences", "Sequences_2D+3D")
OCC_DIRS = ("AUCoding/AU_OCC", "Labels/OCC", "AUCoding/AUCoding/AU_OCC")
INT_DIRS = ("AUCoding/AU_INT", "AU Intensity Codes3.0", "Labels/INT",
            "AUCoding/AUCoding/AU_INT")
NOT_CODED = 9   # BP4D's code for a frame the coders did not code
MAT_HEADER = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: "
              b"Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .")


def frame_number(filename: str) -> Optional[int]:
  """`'0123.jpg' -> 123`; None for names that are not a frame."""
  m = re.fullmatch(r"(\d+)\.jpe?g", filename, re.IGNORECASE)
  return int(m.group(1)) if m else None


def list_frames(task_dir: str) -> dict[int, str]:
  """Frame number -> path for every frame image in a task folder."""
  out = {}
  for name in os.listdir(task_dir):
    n = frame_number(name)
    if n is not None:
      out[n] = os.path.join(task_dir, name)
  return out


def read_occurrence_csv(text: str, aus: Iterable[int] = AUS
                        ) -> dict[int, np.ndarray]:
  """Frame number -> int8 `[len(aus)]` labels, 9 (not coded) mapped to -1.

  The header row holds the column numbers (0 = frame, N = AU N); columns are found
  by those numbers, not by position.
  """
  rows = list(csv.reader(io.StringIO(text)))
  if not rows:
    raise LayoutError("empty AU occurrence file")
  header = [int(float(h)) for h in rows[0]]
  try:
    frame_col = header.index(0)
    cols = [header.index(au) for au in aus]
  except ValueError as e:
    raise LayoutError(f"AU occurrence header lacks a column: {e}") from None
  labels = {}
  for row in rows[1:]:
    if not row:
      continue
    values = np.array([int(float(row[c])) for c in cols], np.int8)
    values[values == 9] = -1
    labels[int(float(row[frame_col]))] = values
  return labels


def read_intensity_csv(text: str, path: str = "") -> dict[int, int]:
  """An AU-intensity file's `frame,intensity` lines -> {frame: 0..5, or -1 where
  it says 9 (not coded)}; a LayoutError naming `path` for a malformed line."""
  values = read_frame_values(text, path, (*range(6), NOT_CODED))
  return {f: -1 if v == NOT_CODED else v for f, v in values.items()}


def intensity_file_key(name: str) -> Optional[tuple[str, str, int]]:
  """`'F001_T1_AU06.csv' -> ('F001', 'T1', 6)`; None for other names."""
  m = re.fullmatch(r"([FM]\d{3})_(T\d+)_AU(\d+)\.csv", name, re.IGNORECASE)
  return (m.group(1).upper(), m.group(2).upper(), int(m.group(3))) if m else None


def read_landmarks_mat(path: str) -> list[Optional[np.ndarray]]:
  """BP4D 2DFeatures (MATLAB v7.3): per video frame a `[49, 2]` (x, y) array in
  MATLAB (1-based) pixels, or None where the tracker lost the face."""
  out = []
  with h5py.File(path, "r") as f:
    refs = f["fit"]["pred"][()]
    for ref in refs.reshape(-1):
      arr = np.asarray(f[ref][()], np.float64)
      if arr.shape != (2, 49) or not np.all(np.isfinite(arr)):
        out.append(None)
      else:
        out.append(arr.T.astype(np.float32))
  return out


def write_landmarks_mat(path: str, frames: list[Optional[np.ndarray]]) -> None:
  """Writes landmarks as BP4D stores them: `fit/pred` is an (n, 1) cell of
  references to (2, 49) doubles (MATLAB's 49x2, column-major); a lost frame is an
  empty double, as MATLAB writes `[]`."""
  with h5py.File(path, "w", userblock_size=512) as f:
    refs_group = f.create_group("#refs#")
    refs = np.empty((len(frames), 1), dtype=h5py.ref_dtype)
    for i, lm in enumerate(frames):
      if lm is None:
        ds = refs_group.create_dataset(f"r{i}", data=np.zeros(2, np.uint64))
        ds.attrs["MATLAB_class"] = np.bytes_("double")
        ds.attrs["MATLAB_empty"] = np.uint8(1)
      else:
        ds = refs_group.create_dataset(f"r{i}", data=np.asarray(lm, np.float64).T)
        ds.attrs["MATLAB_class"] = np.bytes_("double")
      refs[i, 0] = ds.ref
    fit = f.create_group("fit")
    pred = fit.create_dataset("pred", data=refs)
    pred.attrs["MATLAB_class"] = np.bytes_("cell")
  with open(path, "r+b") as raw:
    raw.write(MAT_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
