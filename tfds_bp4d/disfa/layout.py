"""DISFA on disk: parts, AU-intensity label files, per-frame landmark .mat files,
the left-camera videos (or frames a user extracted to JPEG folders).

As users receive it (see the builder's README):
`Videos_LeftCamera/LeftVideoSN001_comp.avi` (4,845 frames, 20 fps),
`ActionUnit_Labels/SN001/SN001_au1.txt` (lines `frame,intensity`, frames from 1,
intensity 0..5), `Landmark_Points/SN001/tmp_frame_lm/SN001_0000_lm.mat` (MATLAB,
key `pts`, 66x2 in MATLAB 1-based pixels; file index = frame - 1; some subjects name them `l0NNNN_lm.mat`).
Frame numbers are read from names, never compared as strings.
"""

from __future__ import annotations

import os
import re
from typing import Optional

import numpy as np
import scipy.io

from sfae_jax.face import action_units
from tfds_bp4d.layout import LayoutError, find_dir, read_frame_values

AUS = action_units.DISFA
CODED_AUS = action_units.DISFA_CODED
PRESENT_FROM = 2                                    # intensity >= 2: present
PARTS = {
    "part1": "SN002 SN010 SN001 SN026 SN027 SN032 SN030 SN009 SN016",
    "part2": "SN013 SN018 SN011 SN028 SN012 SN006 SN031 SN021 SN024",
    "part3": "SN003 SN029 SN023 SN025 SN008 SN005 SN007 SN017 SN004",
}
PARTS = {k: tuple(v.split()) for k, v in PARTS.items()}
SUBJECT_PART = {s: p for p, subjects in PARTS.items() for s in subjects}
LABEL_DIRS = ("ActionUnit_Labels",)
LANDMARK_DIRS = ("Landmark_Points",)
VIDEO_DIRS = ("Videos_LeftCamera",)
# Frames extracted by the user: <dir>/<subject>/<number>.jpg (any zero padding).
FRAME_DIRS = ("Images_LeftCamera", "Frames_LeftCamera", "LeftCamera")


def read_label_file(text: str, path: str = "") -> dict[int, int]:
  """`frame,intensity` lines -> {frame: intensity 0..5}; a LayoutError naming
  `path` for a malformed line or an intensity outside 0..5."""
  return read_frame_values(text, path, range(6))


def label_files(root: str) -> dict[str, dict[int, str]]:
  """subject -> {AU: label file} for every subject folder of ActionUnit_Labels."""
  labels_dir = find_dir(root, LABEL_DIRS, "ActionUnit_Labels")
  out = {}
  for subject in sorted(os.listdir(labels_dir)):
    folder = os.path.join(labels_dir, subject)
    if not os.path.isdir(folder):
      continue
    files = {}
    for name in os.listdir(folder):
      m = re.fullmatch(rf"{re.escape(subject)}_au(\d+)\.txt", name, re.IGNORECASE)
      if m:
        files[int(m.group(1))] = os.path.join(folder, name)
    if files:
      out[subject] = files
  if not out:
    raise LayoutError(f"{labels_dir}: no SNxxx/SNxxx_au<N>.txt label files.")
  return out


def landmark_file_number(name: str) -> Optional[int]:
  """File index (frame - 1) of `SN001_0000_lm.mat` or `l0NNNN_lm.mat`; None for
  other names."""
  m = re.fullmatch(r"(?:SN\d+_|l)(\d+)_lm\.mat", name, re.IGNORECASE)
  return int(m.group(1)) if m else None


def landmark_files(root: str, subject: str) -> dict[int, str]:
  """frame (1-based) -> .mat path, for one subject (empty if it has none)."""
  base = find_dir(root, LANDMARK_DIRS, "Landmark_Points")
  folder = os.path.join(base, subject, "tmp_frame_lm")
  if not os.path.isdir(folder):
    folder = os.path.join(base, subject)
  if not os.path.isdir(folder):
    return {}
  out = {}
  for name in os.listdir(folder):
    n = landmark_file_number(name)
    if n is not None:
      out[n + 1] = os.path.join(folder, name)
  return out


def read_landmarks(path: str) -> Optional[np.ndarray]:
  """`[66, 2]` float32 (x, y) of one frame's .mat (`pts`) as stored: MATLAB
  1-based pixels, like BP4D's (the reader subtracts 1); None when it is
  unreadable or not 66 finite points."""
  try:
    pts = np.asarray(scipy.io.loadmat(path)["pts"], np.float64)
  except (OSError, ValueError, KeyError, TypeError):
    return None
  if pts.shape != (66, 2) or not np.all(np.isfinite(pts)):
    return None
  return pts.astype(np.float32)


def write_landmarks(path: str, pts: np.ndarray) -> None:
  """Writes `pts` as DISFA stores them: MATLAB 1-based pixels, key `pts`."""
  scipy.io.savemat(path, {"pts": np.asarray(pts, np.float64)})


def video_path(root: str, subject: str) -> Optional[str]:
  for d in VIDEO_DIRS:
    for name in (f"LeftVideo{subject}_comp.avi", f"LeftVideo{subject}.avi"):
      p = os.path.join(root, d, name)
      if os.path.exists(p):
        return p
  return None


def frame_folder(root: str, subject: str) -> Optional[str]:
  for d in FRAME_DIRS:
    p = os.path.join(root, d, subject)
    if os.path.isdir(p):
      return p
  return None


def list_frames(folder: str) -> dict[int, str]:
  """frame number -> path of `<number>.jpg|png` files (numbers as written)."""
  out = {}
  for name in os.listdir(folder):
    m = re.fullmatch(r"(?:\D*?)(\d+)\.(?:jpe?g|png)", name, re.IGNORECASE)
    if m:
      out[int(m.group(1))] = os.path.join(folder, name)
  return out
