"""A small demo corpus for `predict` and `analyze`, made here from a real photo:
short videos of a face, and a manifest whose first languages are invented.

  python -m sfae_jax.tools.demo_media --out scratch/demo [--face PHOTO]
  python -m sfae_jax.analyze --manifest scratch/demo/manifest.csv ...

The face is by default Grace Hopper's portrait (U.S. Navy photograph, public
domain), which matplotlib (in the analysis extra) ships as sample data, so the
demo runs from any clone, with no media beside it. Every "speaker" is a video of
that one face moving (`tools.synthetic_video`), each a different length: the
languages, and any difference found between them, mean nothing, as the
manifest's `label_note` column and the report say.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from matplotlib import cbook
import pandas as pd

from sfae_jax.face import backends, media
from sfae_jax.tools import synthetic_video

SPEAKERS = (("speaker_a", "English"), ("speaker_b", "English"),
            ("speaker_c", "English"), ("speaker_d", "German"),
            ("speaker_e", "German"), ("speaker_f", "German"))
LABEL_NOTE = "INVENTED labels for a demo: one face, not real first languages"


def default_face() -> str:
  return str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def write(out: str, face: Optional[str] = None, frames: int = 60) -> str:
  """The videos and `manifest.csv` in `out`; returns the manifest's path."""
  photo = synthetic_video.face_of(face or default_face())
  os.makedirs(out, exist_ok=True)
  rows = []
  for k, (speaker, language) in enumerate(SPEAKERS):
    name = f"{speaker}.mp4"
    synthetic_video.write_face(*photo, frames + 10 * k, os.path.join(out, name),
                               fps=25)
    rows.append({"video": name, "speaker": speaker, "first_language": language,
                 "label_note": LABEL_NOTE})
  path = os.path.join(out, "manifest.csv")
  pd.DataFrame(rows).to_csv(path, index=False)
  return path


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m sfae_jax.tools.demo_media",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True, help="folder to write")
  parser.add_argument("--face", help="a photo with one face (default: matplotlib's "
                      "sample portrait of Grace Hopper)")
  parser.add_argument("--frames", type=int, default=60,
                      help="frames of the shortest video (25 per second)")
  args = parser.parse_args(argv)
  if args.frames < 1:
    parser.error("--frames must be >= 1")
  try:
    path = write(args.out, args.face, args.frames)
  except (ValueError, media.MediaError, backends.BackendUnavailable) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {len(SPEAKERS)} videos and {path} (invented labels)",
        file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
