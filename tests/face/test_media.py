"""Reading media: a truncated or corrupt JPEG is a named error, never a grey-filled
face (OpenCV decodes a cut JPEG without complaint); media as phones and archives
make them (rotated, variable-rate, late-starting or cut videos; tiny, huge and
CMYK images)."""

import os

import av
import cv2
import numpy as np
from PIL import Image
import pytest

from sfae_jax.face import media
from tests.face import made_media


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


def _marked(height=96, width=64):
  """Black, with a white top-left corner: the orientation is visible."""
  image = np.zeros((height, width, 3), np.uint8)
  image[:16, :16] = 255
  return image


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_phone_video_is_read_upright(tmp_path, turns):
  """Stored turned (as a phone's sensor records), with the display matrix that
  turns it back: the frames come out as a player shows them."""
  upright = _marked()
  path = made_media.mp4(tmp_path / "phone.mp4", [upright] * 3, turns=turns)
  with av.open(path) as container:  # the file as a phone writes it
    assert container.streams.video[0].height == np.rot90(upright, turns).shape[0]
  for frame in media.frames(path):
    assert frame.rgb.shape == upright.shape
    assert frame.rgb[:16, :16].mean() > 200 and frame.rgb[-16:, -16:].mean() < 50


def test_timestamps_are_presentation_times_not_frame_over_fps(tmp_path):
  """Variable frame rate, first frame at 1.5 s (a cut from a longer recording)."""
  pts = [1500, 1540, 1600, 1700, 1733, 1900]
  path = made_media.mp4(tmp_path / "vfr.mp4", [_marked()] * len(pts), pts_ms=pts)
  got = [(f.index, f.timestamp) for f in media.frames(path)]
  assert got == [(k, t / 1000) for k, t in enumerate(pts)]
  assert [f.timestamp for f in media.frames(path, every=2)] == [1.5, 1.6, 1.733]


def test_a_cut_video_yields_its_good_frames_then_says_where_it_broke(faces_dir,
                                                                     tmp_path):
  src = os.path.join(faces_dir, "WolfgangLanger_Pexels.mp4")
  cut = tmp_path / "cut.mp4"
  cut.write_bytes(open(src, "rb").read()[:800_000])
  read = []
  with pytest.raises(media.TruncatedMedia, match="cut.mp4") as error:
    for frame in media.frames(str(cut)):
      read.append(frame.index)
  assert 0 < error.value.decoded < 472
  assert read == list(range(error.value.decoded))


def _same_frames(got, want) -> None:
  assert [f.index for f in got] == [f.index for f in want]
  for a, b in zip(got, want):
    assert a.timestamp == b.timestamp and a.corrupt == b.corrupt
    np.testing.assert_array_equal(a.rgb, b.rgb)


@pytest.mark.parametrize("every,span", [(1, 7), (1, 32), (3, 16)])
def test_spans_decoded_from_their_seek_points_are_the_frames_in_order(
    faces_dir, tmp_path, every, span):
  """A span starts decoding at a keyframe before it (`VideoIndex.range`): its
  frames, numbers and times are those of decoding the whole file in order, for
  B-frames and open GOPs, a phone's rotated video and variable frame rates."""
  videos = [os.path.join(faces_dir, "WolfgangLanger_Pexels.mp4"),
            made_media.open_gop(tmp_path / "gop.mp4"),
            made_media.mp4(tmp_path / "phone.mp4", made_media.moving(30), turns=1,
                           options={"g": "8"}),
            made_media.mp4(tmp_path / "vfr.mp4", made_media.moving(6),
                           pts_ms=[1500, 1540, 1600, 1700, 1733, 1900])]
  for path in videos:
    index = media.video_index(path)
    got = [f for first in range(0, len(index), span)
           for f in media.frame_range(path, index.range(first, first + span), every)]
    _same_frames(got, list(media.frames(path, every)))
  assert len(media.video_index(videos[1]).keyframes) >= 10  # spans that seek


def test_a_span_whose_frames_differ_from_the_index_says_so(tmp_path):
  """Cut before a keyframe without re-encoding: the container lists frames a
  decoder drops, so the index's numbers would be wrong; the first span says so,
  and decoding in order numbers the frames that are there."""
  gop = made_media.open_gop(tmp_path / "gop.mp4", 300)
  path = made_media.without_first_packets(gop, tmp_path / "cut.mp4", 5)
  index = media.video_index(path)
  in_order = list(media.frames(path))
  assert len(in_order) < len(index) and in_order[0].index == 0
  with pytest.raises(media.IrregularRange, match="cut.mp4: frame 0 decoded at pts"):
    list(media.frame_range(path, index.range(0, 16)))


def test_a_one_pixel_png_is_one_frame(tmp_path):
  path = str(tmp_path / "dot.png")
  cv2.imwrite(path, np.full((1, 1, 3), 200, np.uint8))
  (frame,) = media.frames(path)
  assert frame.rgb.shape == (1, 1, 3) and frame.rgb[0, 0, 0] == 200


def test_a_huge_image_is_refused_from_its_header(tmp_path, monkeypatch):
  """20,000 x 20,000 (1.2 GB decoded) and just over the limit: named, with the
  fix, and never decoded."""
  def no_decoding(*args, **kwargs):
    raise AssertionError("decoded")
  monkeypatch.setattr(media.cv2, "imdecode", no_decoding)
  huge = made_media.black_png(tmp_path / "huge.png", 20_000, 20_000)
  with pytest.raises(media.MediaError, match=r"huge.png: .*\(400 MP\).*downscale"):
    next(media.frames(huge))
  over = made_media.black_png(tmp_path / "over.png", 8000, 6300)
  with pytest.raises(media.MediaError, match=r"8000 x 6300 pixels \(50 MP\)"):
    media.read_image(over)


def test_a_cmyk_jpeg_reads_in_its_colours(faces_dir, tmp_path):
  rgb = Image.open(os.path.join(faces_dir, "single_face.jpg")).convert("RGB")
  path = tmp_path / "print.jpg"
  rgb.convert("CMYK").save(path, quality=95)
  assert Image.open(path).mode == "CMYK"
  (frame,) = media.frames(str(path))
  assert np.abs(frame.rgb.astype(int) - np.asarray(rgb, int)).mean() < 4
