"""dlib's fast video detection against its full search, on the real
talking-head clip: the same faces, landmarks close (predict --fast-detection)."""

import os

import numpy as np

from sfae_jax.face import backends, media


def _iod_error(a, b) -> float:
  iod = np.linalg.norm(b.landmarks[36:42].mean(0) - b.landmarks[42:48].mean(0))
  return float(np.linalg.norm(a.landmarks - b.landmarks, axis=-1).mean() / iod)


def test_fast_detection_finds_the_faces_of_the_full_search(faces_dir):
  exact = backends.load_backend("dlib")
  fast = backends.load_backend("dlib", fast_video=True)
  assert not exact.fast_video and fast.fast_video
  errors = []
  clip = os.path.join(faces_dir, "WolfgangLanger_Pexels.mp4")
  for k, frame in enumerate(media.frames(clip)):
    if k % 10:
      continue
    want, got = exact.detect_video(frame.rgb), fast.detect_video(frame.rgb)
    assert len(got) == len(want) == 1, k
    errors.append(_iod_error(got[0], want[0]))
  # measured: median 1.0 %, max 5.6 % of the inter-ocular distance
  assert np.median(errors) < 0.03 and max(errors) < 0.08, errors
  # no face at the reduced size: the full search runs (a no-face frame stays one)
  still = next(media.frames(os.path.join(faces_dir, "no_face.mp4"))).rgb
  assert fast.detect_video(still) == exact.detect(still) == []
