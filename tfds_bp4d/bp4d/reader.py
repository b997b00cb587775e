"""From BP4D's files to aligned examples, counting every frame that is skipped.

Pure Python (no TFDS), so the reading rules are unit-tested directly:

* a task's examples are the rows of its AU-occurrence CSV; CSV frame N is image
  N + `frame_offset` (0 by default, as JAA-Net and ME-GraphAU; -1 for N-1);
* intensity (AUs 6, 10, 12, 14, 17, where the copy has FERA 2015's intensity
  files) is read by the same CSV frame number; a frame or AU without a code, or
  coded 9, is -1 (not coded) and keeps its occurrence labels;
* 2DFeatures row i is the task's i-th image in frame-number order
  (`landmark_rows='position'`, the default) or frame number i + 1
  (`landmark_rows='frame'`), landmarks are MATLAB pixels (1-based, so minus 1);
* a CSV row without an image, an image that does not decode or is truncated, a
  frame without landmarks, a row with a label other than 0, 1 or 9, a task with
  frames but no CSV are skipped and counted per subject/task in a `common.BuildSummary`;
  a CSV that cannot be parsed is a `layout.LayoutError` naming the file.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterator, Optional

import numpy as np

from sfae_jax.face import align, schemes
from sfae_jax.face import media
from tfds_bp4d import common
from tfds_bp4d.bp4d import layout

SKIP_REASONS = ("no_image", "corrupt_image", "no_landmarks", "no_landmark_file",
                "no_sequence_dir", "alignment_failed", "invalid_label",
                "no_label_file")

# A landmark function takes a BGR uint8 image and returns [68, 2] pixel-index
# (x, y) landmarks of its face, or None when it finds none.
LandmarkFn = Callable[[np.ndarray], Optional[np.ndarray]]


def new_summary() -> common.BuildSummary:
  """Examples written and frames skipped, per (subject, task)."""
  return common.BuildSummary(SKIP_REASONS, key_name="subject/task")


@dataclasses.dataclass(frozen=True)
class ReadOptions:
  landmarks: str = schemes.BP4D49         # 'bp4d49' (2DFeatures) or 'ibug68'
  frame_offset: int = 0                   # image number = CSV frame + offset
  landmark_rows: str = "position"         # 'position' or 'frame'


def _task_landmarks(root: str, subject: str, task: str, frames: dict[int, str],
                    opts: ReadOptions) -> Optional[dict[int, np.ndarray]]:
  path = os.path.join(root, "2DFeatures", f"{subject}_{task}.mat")
  if not os.path.exists(path):
    return None
  rows = layout.read_landmarks_mat(path)
  if opts.landmark_rows == "frame":
    numbers = [i + 1 for i in range(len(rows))]
  elif opts.landmark_rows == "position":
    numbers = sorted(frames)[:len(rows)]
  else:
    raise ValueError(f"landmark_rows must be 'position' or 'frame', got "
                     f"{opts.landmark_rows!r}")
  return {n: lm - 1.0 for n, lm in zip(numbers, rows) if lm is not None}


def task_examples(root: str, sequences: str, subject: str, task: str,
                  labels: dict[int, np.ndarray], opts: ReadOptions,
                  summary: common.BuildSummary,
                  landmark_fn: Optional[LandmarkFn] = None,
                  intensity: Optional[dict[int, np.ndarray]] = None
                  ) -> Iterator[tuple]:
  """Yields (key, example) for one task's labelled frames; `intensity` (from
  `read_intensities`) gives their intensity codes, -1 where absent."""
  intensity = intensity or {}
  not_coded = np.full(len(layout.INTENSITY_AUS), -1, np.int8)
  task_dir = os.path.join(sequences, subject, task)
  if not os.path.isdir(task_dir):
    summary.skip(subject, task, "no_sequence_dir", len(labels))
    return
  frames = layout.list_frames(task_dir)
  tracked = None
  if opts.landmarks == schemes.BP4D49:
    tracked = _task_landmarks(root, subject, task, frames, opts)
    if tracked is None:
      summary.skip(subject, task, "no_landmark_file", len(labels))
      return
  for csv_frame in sorted(labels):
    number = csv_frame + opts.frame_offset
    if not np.all(np.isin(labels[csv_frame], (-1, 0, 1))):
      summary.skip(subject, task, "invalid_label")
      continue
    if number not in frames:
      summary.skip(subject, task, "no_image")
      continue
    if tracked is not None and number not in tracked:
      summary.skip(subject, task, "no_landmarks")
      continue
    try:
      image = media.read_image(frames[number])  # truncated JPEGs too
    except media.MediaError:
      summary.skip(subject, task, "corrupt_image")
      continue
    lm = tracked[number] if tracked is not None else landmark_fn(image)
    if lm is None:
      summary.skip(subject, task, "no_landmarks")
      continue
    aligned = common.align_and_encode(image, lm, opts.landmarks)
    if aligned is None:
      summary.skip(subject, task, "alignment_failed")
      continue
    face, jpeg = aligned
    summary.written[(subject, task)] += 1
    yield f"{subject}_{task}_{csv_frame}", {
        "image": jpeg,
        "landmarks": face.landmarks.astype(np.float32),
        "au": labels[csv_frame],
        "intensity": intensity.get(csv_frame, not_coded),
        "subject": subject, "task": task, "frame": np.int32(csv_frame),
        "interocular": np.float32(align.interocular_distance(face.landmarks,
                                                             opts.landmarks)),
    }


def read_labels(path: str) -> dict[int, np.ndarray]:
  """A task's AU-occurrence CSV; a LayoutError naming the file if unparsable."""
  try:
    with open(path, encoding="utf-8", errors="strict") as f:
      return layout.read_occurrence_csv(f.read())
  except (ValueError, IndexError, UnicodeDecodeError) as e:
    raise layout.LayoutError(
        f"{path}: not a readable AU occurrence CSV ({' '.join(str(e).split())}). "
        "Restore it from the BP4D distribution, or move it out of the folder to "
        "build without that task.") from None


def unlabelled_tasks(sequences: str, label_files) -> dict[tuple[str, str], int]:
  """(subject, task) -> frame count, for task folders with frames but no CSV."""
  out = {}
  for subject in sorted(os.listdir(sequences)):
    subject_dir = os.path.join(sequences, subject)
    if not os.path.isdir(subject_dir):
      continue
    for task in sorted(os.listdir(subject_dir)):
      task_dir = os.path.join(subject_dir, task)
      if (subject, task) not in label_files and os.path.isdir(task_dir):
        n = len(layout.list_frames(task_dir))
        if n:
          out[(subject, task)] = n
  return out


def source_record(root: str, landmarks: str, intensity_aus=()) -> dict:
  return common.source_record(root, landmarks, layout.AUS, "bp4d", intensity_aus)


def find_intensity_files(root: str
                         ) -> Optional[dict[tuple[str, str], dict[int, str]]]:
  """(subject, task) -> {AU: intensity CSV} from the copy's intensity folder
  (`AU06/F001_T1_AU06.csv`, files of BP4D's intensity AUs only); None when the
  copy has no intensity folder."""
  try:
    int_dir = layout.find_dir(root, layout.INT_DIRS, "AU intensity")
  except layout.LayoutError:
    return None
  out = {}
  for folder, _, names in os.walk(int_dir):
    for name in sorted(names):
      key = layout.intensity_file_key(name)
      if key is not None and key[2] in layout.INTENSITY_AUS:
        out.setdefault(key[:2], {})[key[2]] = os.path.join(folder, name)
  return out


def read_intensities(files: dict[int, str]) -> dict[int, np.ndarray]:
  """A task's intensity CSVs ({AU: path}) -> CSV frame -> int8
  `[len(INTENSITY_AUS)]` codes 0..5, -1 where not coded or without a file."""
  per_au = {}
  for au, path in files.items():
    try:
      with open(path, encoding="utf-8", errors="strict") as f:
        text = f.read()
    except UnicodeDecodeError:
      raise layout.LayoutError(f"{path}: not a text AU intensity CSV. Restore it "
                               "from the distribution.") from None
    per_au[au] = layout.read_intensity_csv(text, path)
  frames = sorted(set().union(*per_au.values())) if per_au else []
  return {f: np.array([per_au.get(au, {}).get(f, -1)
                       for au in layout.INTENSITY_AUS], np.int8) for f in frames}


def find_label_files(root: str) -> dict[tuple[str, str], str]:
  """(subject, task) -> AU-occurrence CSV path, found by file name."""
  occ_dir = layout.find_dir(root, layout.OCC_DIRS, "AU occurrence (AU_OCC)")
  out = {}
  for name in sorted(os.listdir(occ_dir)):
    stem, ext = os.path.splitext(name)
    parts = stem.split("_")
    if ext.lower() == ".csv" and len(parts) == 2:
      out[(parts[0], parts[1])] = os.path.join(occ_dir, name)
  if not out:
    raise layout.LayoutError(f"{occ_dir}: no <subject>_<task>.csv files.")
  return out
