"""dlib's fast video detection against its full search, on the real talking-head
clip: the same boxes, scores and landmarks (predict's default `--detection fast`
against `--detection exact`)."""

import os

import cv2
import numpy as np

from sfae_jax.face import backends, media


def test_fast_detection_gives_the_full_searchs_faces(faces_dir):
  exact = backends.load_backend("dlib")
  fast = backends.load_backend("dlib", fast_video=True)
  assert not exact.fast_video and fast.fast_video
  clip = os.path.join(faces_dir, "WolfgangLanger_Pexels.mp4")
  compared = 0
  for k, frame in enumerate(media.frames(clip)):
    if k % 12:
      continue
    want, got = exact.detect_video(frame.rgb), fast.detect_video(frame.rgb)
    assert len(got) == len(want) == 1, k
    # boxes found at a coarse level and mapped to the frame: rounded as dlib
    # rounds them in the full search, so the landmarks are the same too
    assert got[0].box == want[0].box and got[0].score == want[0].score, k
    np.testing.assert_array_equal(got[0].landmarks, want[0].landmarks)
    compared += 1
  assert compared == 40
  # nothing from ~110 px: the full search runs (a no-face frame stays one)
  still = next(media.frames(os.path.join(faces_dir, "no_face.mp4"))).rgb
  assert fast.detect_video(still) == exact.detect(still) == []


def test_fast_detection_falls_back_to_the_full_search_for_small_faces(faces_dir):
  """A face below ~110 px is found only by the full search's finer levels."""
  fast = backends.load_backend("dlib", fast_video=True)
  exact = backends.load_backend("dlib")
  clip = os.path.join(faces_dir, "WolfgangLanger_Pexels.mp4")
  frame = next(media.frames(clip)).rgb
  small = np.ascontiguousarray(frame[::3, ::3])   # the ~220 px face at ~75 px
  want = exact.detect(small)
  assert len(want) == 1 and want[0].box[2] < 100
  got = fast.detect_video(small)
  assert got[0].box == want[0].box and got[0].score == want[0].score


def test_fast_detection_leaves_faces_near_its_first_levels_to_the_full_search(
    faces_dir):
  """A ~90 px face fits the first pass's finest level too, with a looser box
  and a lower score than the full search's: the full search decides."""
  fast = backends.load_backend("dlib", fast_video=True)
  exact = backends.load_backend("dlib")
  face = cv2.imread(os.path.join(faces_dir, "single_face.jpg"))[..., ::-1]
  for width in (240, 280, 300, 360, 420):
    image = np.ascontiguousarray(cv2.resize(face, (width, width * 4 // 3)))
    want, got = exact.detect(image), fast.detect_video(image)
    assert [(f.box, f.score) for f in got] == [(f.box, f.score) for f in want], width
