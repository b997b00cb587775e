"""What the BP4D and DISFA builders share: the skip accounting of a build, and the
aligned, JPEG-encoded face of one frame (JAA-Net's similarity transform)."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from typing import Optional, Sequence

import cv2
import numpy as np

from sfae_jax.face import align
from tfds_bp4d.layout import SYNTHETIC_MARKER, LayoutError

JPEG_QUALITY = 95


@dataclasses.dataclass
class BuildSummary:
  """Examples written and frames skipped, per (subject, group): a BP4D task, a
  DISFA video. `reasons` are the skip reasons a reader may count."""
  reasons: tuple[str, ...] = ()
  key_name: str = "subject/task"
  written: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  skipped: dict = dataclasses.field(
      default_factory=lambda: collections.defaultdict(collections.Counter))

  def skip(self, subject: str, group: str, reason: str, n: int = 1) -> None:
    if reason not in self.reasons:
      raise ValueError(f"unknown skip reason {reason!r}; one of {self.reasons}")
    self.skipped[(subject, group)][reason] += n

  def table(self) -> str:
    keys = sorted(set(self.written) | set(self.skipped))
    lines = [f"{self.key_name:<14}{'written':>8}  skipped"]
    for k in keys:
      sk = ", ".join(f"{r} {n}" for r, n in sorted(self.skipped.get(k, {}).items()))
      lines.append(f"{k[0] + '/' + k[1]:<14}{self.written.get(k, 0):>8}  {sk or '-'}")
    total_skipped = sum(sum(c.values()) for c in self.skipped.values())
    lines.append(f"{'total':<14}{sum(self.written.values()):>8}  {total_skipped}")
    return "\n".join(lines)

  def totals(self) -> str:
    """'N of M frames skipped (reason n, ...)' over every subject."""
    by_reason = collections.Counter()
    for c in self.skipped.values():
      by_reason.update(c)
    skipped = sum(by_reason.values())
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(by_reason.items()))
    return (f"{skipped} of {skipped + sum(self.written.values())} frames skipped "
            f"({reasons})")

  def as_json(self) -> dict:
    return {"written": {f"{s}_{t}": n for (s, t), n in self.written.items()},
            "skipped": {f"{s}_{t}": dict(c) for (s, t), c in self.skipped.items()}}


class ManualBuild:
  """Mixed into the builders: TFDS's "Downloading and preparing dataset" line
  would say a download happens; these datasets are built from a manual copy."""

  def _log_download_bytes(self) -> None:
    print(f"Preparing {self.name}/{self.builder_config.name} from the manual copy "
          f"into {self.data_dir} (nothing is downloaded) ...", flush=True)


def align_and_encode(image: np.ndarray, landmarks: np.ndarray, scheme: str
                     ) -> Optional[tuple[align.AlignedFace, bytes]]:
  """(aligned face, its JPEG bytes), or None when the landmarks cannot be aligned
  (degenerate: the caller counts the frame as alignment_failed)."""
  try:
    face = align.align_face(image, landmarks, scheme)
  except ValueError:
    return None
  ok, jpeg = cv2.imencode(".jpg", face.image, [cv2.IMWRITE_JPEG_QUALITY,
                                               JPEG_QUALITY])
  assert ok, "OpenCV failed to encode a 200x200 JPEG"
  return face, jpeg.tobytes()


def source_record(root: str, landmarks: str, au_ids: Sequence[int],
                  dataset: str, intensity_au_ids: Sequence[int] = ()) -> dict:
  """What a build read (`source.json` beside the dataset): the manual_dir,
  whether it is a synthetic generator's (its marker file), the occurrence AU ids,
  the AUs with intensity labels in this build, the landmark scheme."""
  return {"dataset": dataset,
          "synthetic": os.path.exists(os.path.join(root, SYNTHETIC_MARKER)),
          "manual_dir": os.path.abspath(root), "au_ids": list(au_ids),
          "intensity_au_ids": list(intensity_au_ids), "landmarks": landmarks}


def split_by_part(items: dict, subject_of, subject_part: dict, parts, root: str,
                  dataset: str, what: str, subjects: str) -> dict[str, dict]:
  """`items` (label files keyed by subject or (subject, task)) grouped by part,
  the parts without a subject left out and said so (a partial copy builds the
  parts it has); a LayoutError when no item belongs to a part."""
  unknown = sorted({subject_of(k) for k in items} - set(subject_part))
  if unknown:
    print(f"{dataset}: subjects {unknown} are in no part; they are left out.")
  by_part = {p: {k: v for k, v in items.items()
                 if subject_part.get(subject_of(k)) == p} for p in parts}
  present = [p for p in parts if by_part[p]]
  if not present:
    raise LayoutError(f"{root}: none of its {len(items)} {what} belongs to a "
                      f"{dataset} subject ({subjects}); is this {dataset}?")
  missing = [p for p in parts if p not in present]
  if missing:
    print(f"{dataset}: {', '.join(missing)} has no subject in {root} (a partial "
          f"copy): building {', '.join(present)} only. Folds that need "
          f"{', '.join(missing)} cannot run on this build.")
  return {p: by_part[p] for p in present}


def write_source(data_path, record: dict) -> None:
  """`source.json` in the dataset folder being built (`sfae_jax.training.provenance`)."""
  data_path.mkdir(parents=True, exist_ok=True)
  (data_path / "source.json").write_text(json.dumps(record, indent=1,
                                                    sort_keys=True))


def report_summary(data_path, dataset: str, part: str, summary: BuildSummary
                   ) -> None:
  """Writes `build_summary_<part>.json` beside the dataset (per subject) and
  `build_summary_<part>.txt` (its table); prints one line when frames were
  skipped, naming the file."""
  (data_path / f"build_summary_{part}.json").write_text(
      json.dumps(summary.as_json(), indent=1, sort_keys=True))
  (data_path / f"build_summary_{part}.txt").write_text(summary.table() + "\n")
  if any(summary.skipped.values()):
    # (data_path is TFDS's temporary folder, renamed when the build completes)
    print(f"{dataset} {part}: {summary.totals()}; per {summary.key_name}: "
          f"build_summary_{part}.txt in the dataset's folder")
