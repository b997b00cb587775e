"""Reading images: a truncated or corrupt JPEG is a named error, never a grey-filled
face (OpenCV decodes a cut JPEG without complaint)."""

import os

import cv2
import numpy as np
import pytest

from sfae_jax.face import media


def _jpeg(**params) -> bytes:
  rng = np.random.default_rng(0)
  image = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), np.uint8), (5, 5), 0)
  flags = []
  for k, v in params.items():
    flags += [getattr(cv2, k), v]
  ok, data = cv2.imencode(".jpg", image, flags)
  assert ok
  return data.tobytes()


def _with_thumbnail(data: bytes) -> bytes:
  """An APP1 segment holding a whole small JPEG (EXIF thumbnails do), whose
  end-of-image marker must not end the walk."""
  thumb = _jpeg()[:400] + b"\xff\xd9"
  app1 = b"\xff\xe1" + (len(thumb) + 2).to_bytes(2, "big") + thumb
  return data[:2] + app1 + data[2:]


@pytest.mark.parametrize("name,data", [
    ("baseline", _jpeg()),
    ("progressive", _jpeg(IMWRITE_JPEG_PROGRESSIVE=1)),
    ("restart markers", _jpeg(IMWRITE_JPEG_RST_INTERVAL=2)),
    ("thumbnail", _with_thumbnail(_jpeg())),
])
def test_complete_jpegs_pass_and_every_cut_is_caught(name, data):
  assert media.jpeg_problem(data) is None, name
  assert media.jpeg_problem(data + b"camera trailer \xff\xd8 bytes") is None
  assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
  cuts = range(2, len(data) - 1, max(1, len(data) // 300))
  passed = [k for k in cuts if media.jpeg_problem(data[:k]) is None]
  assert not passed, f"{name}: cuts at {passed[:5]} pass for complete"


def test_real_photos_pass_and_a_cut_one_is_a_named_error(faces_dir, tmp_path):
  src = os.path.join(faces_dir, "single_face.jpg")
  data = open(src, "rb").read()
  assert media.jpeg_problem(data) is None
  np.testing.assert_array_equal(media.read_image(src), cv2.imread(src))
  cut = tmp_path / "cut.jpg"
  cut.write_bytes(data[:len(data) * 2 // 3])
  # OpenCV alone decodes it, grey-filled: the failure this guards against
  assert cv2.imread(str(cut)) is not None
  with pytest.raises(media.MediaError, match=r"cut\.jpg: corrupt or truncated JPEG"):
    media.read_image(str(cut))


def test_a_folder_without_media_is_an_error_naming_it(tmp_path):
  (tmp_path / "notes.txt").write_text("x")
  with pytest.raises(media.MediaError, match=f"{tmp_path}: a folder with no image"):
    media.expand_inputs([str(tmp_path)])


def test_an_audio_only_mp4_says_it_has_no_video_stream(tmp_path):
  import av  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "speech.mp4")
  with av.open(path, "w") as container:
    stream = container.add_stream("aac", rate=16000)
    stream.layout = "mono"
    tone = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)[None]
    for start in range(0, 16000, 1024):
      frame = av.AudioFrame.from_ndarray(tone[:, start:start + 1024], format="fltp",
                                         layout="mono")
      frame.sample_rate = 16000
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  for read in (media.video_info, lambda p: next(media.frames(p))):
    with pytest.raises(media.MediaError,
                       match=r"speech\.mp4: has no video stream \(it holds audio"):
      read(path)
