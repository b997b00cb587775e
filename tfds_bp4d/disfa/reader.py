"""From DISFA's files to aligned examples, counting every frame that is skipped.

Pure Python (no TFDS), so the rules are unit-tested directly:

* a subject's examples are the frames its label files code for all 8 protocol AUs
  (frames from 1); an AU is present when its intensity is >= 2 (`layout`);
* frame N is the N-th frame of `Videos_LeftCamera/LeftVideoSNxxx_comp.avi` decoded
  in order by PyAV (the k-th decoded frame, 0-based, is label frame k + 1: DISFA's
  label files number the video's frames from 1, and a video has as many frames as
  its labels), or `<frames dir>/SNxxx/<N + frame_offset>.jpg` when the user
  extracted frames instead (auto-detected: a frames folder wins over the video);
* landmarks are the 66 points of `Landmark_Points/SNxxx/tmp_frame_lm/*_lm.mat`
  (file index = frame - 1), MATLAB 1-based pixels, so minus 1 (as BP4D's; measured
  on real DISFA frames against JAA-Net's crops of them: 2.44 grey levels mean
  absolute difference with the 1 subtracted, 3.65 without), kept as 66 or reduced
  to the 49-point scheme;
* a frame without a landmark file or with an unreadable one, a frame the video
  lacks or decodes with errors, a missing or corrupt JPEG, landmarks that cannot
  be aligned, a frame missing from one of the label files: skipped and counted
  per subject in a `common.BuildSummary`.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Optional

import numpy as np

from sfae_jax.face import align, schemes
from sfae_jax.face import media
from tfds_bp4d import common
from tfds_bp4d.disfa import layout

SKIP_REASONS = ("no_image", "corrupt_image", "no_landmark_file", "no_landmarks",
                "alignment_failed", "no_label", "no_video")


def source_record(root: str, landmarks: str) -> dict:
  """DISFA's intensity labels are its label files: all 12 coded AUs."""
  return common.source_record(root, landmarks, layout.AUS, "disfa",
                              layout.CODED_AUS)


def new_summary() -> common.BuildSummary:
  return common.BuildSummary(SKIP_REASONS, key_name="subject/camera")


@dataclasses.dataclass(frozen=True)
class ReadOptions:
  landmarks: str = schemes.BP4D49   # 'bp4d49' (the 66 without the jaw) or 'disfa66'
  frame_offset: int = 0             # extracted frames: file number = frame + offset


def subject_labels(files: dict[int, str], summary: common.BuildSummary,
                   subject: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
  """frame -> (8 occurrences int8 {0, 1}, 12 intensities int8 0..5, -1 where an AU
  has no file), for frames every protocol AU's file codes; others are counted."""
  missing = [a for a in layout.AUS if a not in files]
  if missing:
    raise layout.LayoutError(
        f"{subject}: no label file for AU {missing} (need {subject}_au<N>.txt for "
        f"AUs {layout.AUS}).")
  per_au = {}
  for au, path in files.items():
    with open(path, encoding="utf-8") as f:
      per_au[au] = layout.read_label_file(f.read(), path)
  frames = set().union(*(per_au[a].keys() for a in layout.AUS))
  out = {}
  for frame in sorted(frames):
    if any(frame not in per_au[a] for a in layout.AUS):
      summary.skip(subject, "left", "no_label")
      continue
    intensity = np.array([per_au[a].get(frame, -1) if a in per_au else -1
                          for a in layout.CODED_AUS], np.int8)
    occ = np.array([per_au[a][frame] >= layout.PRESENT_FROM for a in layout.AUS],
                   np.int8)
    out[frame] = (occ, intensity)
  return out


def subject_frames(root: str, subject: str, wanted, opts: ReadOptions
                   ) -> Iterator[tuple[int, Optional[np.ndarray]]]:
  """(frame, BGR image or None when unreadable) for the `wanted` frames present
  in the subject's frames folder or video; raises LayoutError when it has neither."""
  wanted = set(wanted)
  folder = layout.frame_folder(root, subject)
  if folder is not None:
    files = layout.list_frames(folder)
    for frame in sorted(wanted):
      path = files.get(frame + opts.frame_offset)
      if path is None:
        continue
      try:
        yield frame, media.read_image(path)
      except media.MediaError:
        yield frame, None
    return
  video = layout.video_path(root, subject)
  if video is None:
    raise FileNotFoundError(subject)
  try:
    for f in media.frames(video):
      frame = f.index + 1
      if frame in wanted:
        yield frame, None if f.corrupt else np.ascontiguousarray(f.rgb[..., ::-1])
  except media.MediaError:
    return  # the frames after the failure are counted as no_image


def subject_examples(root: str, subject: str, label_files: dict[int, str],
                     opts: ReadOptions, summary: common.BuildSummary
                     ) -> Iterator[tuple[str, dict]]:
  """Yields (key, example) for one subject's labelled frames (left camera)."""
  labels = subject_labels(label_files, summary, subject)
  lm_files = layout.landmark_files(root, subject)
  seen = set()
  try:
    for frame, image in subject_frames(root, subject, labels, opts):
      seen.add(frame)
      if image is None:
        summary.skip(subject, "left", "corrupt_image")
        continue
      if frame not in lm_files:
        summary.skip(subject, "left", "no_landmark_file")
        continue
      lm66 = layout.read_landmarks(lm_files[frame])
      if lm66 is None:
        summary.skip(subject, "left", "no_landmarks")
        continue
      lm66 = lm66 - 1.0  # MATLAB 1-based -> pixel index
      lm = schemes.convert(lm66, schemes.DISFA66, opts.landmarks)
      aligned = common.align_and_encode(image, lm, opts.landmarks)
      if aligned is None:
        summary.skip(subject, "left", "alignment_failed")
        continue
      face, jpeg = aligned
      occ, intensity = labels[frame]
      summary.written[(subject, "left")] += 1
      yield f"{subject}_{frame}", {
          "image": jpeg, "landmarks": face.landmarks.astype(np.float32),
          "au": occ, "intensity": intensity, "subject": subject,
          "frame": np.int32(frame),
          "interocular": np.float32(align.interocular_distance(face.landmarks,
                                                               opts.landmarks)),
      }
  except FileNotFoundError:
    summary.skip(subject, "left", "no_video", len(labels))
    return
  missing = len(set(labels) - seen)
  if missing:
    summary.skip(subject, "left", "no_image", missing)
