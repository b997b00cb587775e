"""Face detection + 68 landmarks behind one interface, two backends.

  backend = load_backend("auto")           # or "dlib", "face_alignment"
  faces = backend.detect(rgb_uint8)         # [Face(box, score, landmarks68)]

* `face_alignment` (the design's choice: FAN landmarks, S3FD detector; torch, CPU
  or GPU). face-alignment 1.5 has no weights argument: it loads its weights from
  `$TORCH_HOME/hub/checkpoints/<file>` and downloads them when absent. This backend
  checks for the files first and, when they are missing, stops with a message that
  says which files to put where (or to allow the download), instead of hanging on a
  closed network. `weights_dir=` is used as TORCH_HOME.
* `dlib` / `dlib_cnn` (packages `dlib-bin` + `face-recognition-models`): the HOG or
  the MMOD CNN detector plus the 68-point shape predictor that the face-recognition-models wheel ships, so it
  works offline. Its model was trained on iBUG 300-W, whose licence excludes
  commercial use. Found with importlib's spec lookup, not by importing the package
  (which needs the removed `pkg_resources`).

Landmarks are pixel-index (x, y) in the 68-point iBUG order; boxes are (x, y, w, h).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
from typing import Optional, Protocol

import numpy as np

BACKENDS = ("face_alignment", "dlib", "dlib_cnn")
# dlib's HOG face detector scans a pyramid: the frame upsampled 2x (level 0),
# then each level 5/6 of the one before; a face is found at the level where it
# fills the 73-pixel window, 73 * 1.2^level / 2 frame pixels. The first pass of
# `DlibBackend.detect_video` scans from FAST_LEVEL (~110 px; levels 0-5 hold
# ~90 % of the pixels) with the full search's pixels. A face found there fits
# a finer level too, slightly worse: NMS keeps the best score, so only faces
# found FAST_MARGIN levels below FAST_LEVEL are taken from the first pass (a
# ~90 px face otherwise gets a ~110 px box, measured on a phone-sized clip).
FAST_LEVEL = 6
FAST_MARGIN = 2
HOG_WINDOW = 73
# Models this package derives once and keeps (`_frontal_face_detector`).
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "sfae_jax", "face")
# face-alignment 1.5.0's files in $TORCH_HOME/hub/checkpoints (2D FAN + S3FD).
FAN_WEIGHTS = ("2DFAN4-cd938726ad.zip", "s3fd-619a316812.pth")


class BackendUnavailable(RuntimeError):
  """A backend that cannot load here; the message says what to install or place."""


@dataclasses.dataclass(frozen=True)
class Face:
  box: tuple[float, float, float, float]  # x, y, w, h in pixels
  score: float                            # detector confidence (backend's scale)
  landmarks: np.ndarray                   # [68, 2] float32, pixel-index (x, y)


class Backend(Protocol):
  name: str

  def detect(self, image: np.ndarray) -> list[Face]:
    """Faces in an RGB uint8 `[H, W, 3]` image, best score first."""

  # Optional: `refit(image, faces) -> list[Face]` re-places the landmarks of the
  # previous frame's `faces` in this frame without running the detector (video
  # tracking between detections; `sfae_jax.predict.rows`).


def _check_image(image) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
    raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image.dtype} "
                     f"{image.shape}.")
  return image


def dlib_model_path() -> str:
  spec = importlib.util.find_spec("face_recognition_models")
  if spec is None or not spec.submodule_search_locations:
    raise BackendUnavailable(
        "The dlib backend needs the 68-point model from face-recognition-models: "
        "pip install -e '.[faces]'.")
  root = list(spec.submodule_search_locations)[0]
  path = os.path.join(root, "models", "shape_predictor_68_face_landmarks.dat")
  if not os.path.exists(path):
    raise BackendUnavailable(f"{path} is missing: reinstall face-recognition-models.")
  return path


def _frontal_face_detector(dlib):
  """dlib's HOG face detector. dlib builds it from text in its source, ~0.7 s of
  CPU in every process that loads the backend (each face worker); a copy saved
  once under CACHE_DIR loads in ~2 ms. A cache that cannot be written (a
  read-only home) only costs the build."""
  path = os.path.join(CACHE_DIR, f"dlib-{dlib.__version__}-frontal_face_detector.svm")
  try:
    return dlib.fhog_object_detector(path)
  except RuntimeError:  # not there yet, or not dlib's (then replaced)
    pass
  detector = dlib.get_frontal_face_detector()
  try:
    os.makedirs(CACHE_DIR, exist_ok=True)
    partial = f"{path}.{os.getpid()}.partial"
    detector.save(partial)
    os.replace(partial, path)  # whole or absent for the processes beside this one
  except OSError:
    pass
  return detector


class DlibBackend:
  """dlib detector + 68-point predictor.

  detector="hog" (backend `dlib`, ~0.1 s per 640x360 frame on a CPU core): HOG
  scores below 0 were all false positives on ../shared/faces' no-face clip (-0.25
  to -0.5), so `min_score` is 0; it misses faces it cannot see whole (sunglasses).
  detector="cnn" (backend `dlib_cnn`): dlib's MMOD CNN, which also ships in
  face-recognition-models; it finds such faces but takes seconds per photo on a
  CPU."""
  name = "dlib"

  def __init__(self, upsample: int = 1, min_score: float = 0.0,
               detector: str = "hog", fast_video: bool = False):
    _check_dlib()
    import dlib  # pylint: disable=g-import-not-at-top  (optional: the faces extra)
    model = dlib_model_path()
    if detector == "cnn":
      self._cnn = dlib.cnn_face_detection_model_v1(
          os.path.join(os.path.dirname(model), "mmod_human_face_detector.dat"))
      self.name, upsample = "dlib_cnn", 0 if upsample == 1 else upsample
    elif detector == "hog":
      self._cnn = None
      self._detector = _frontal_face_detector(dlib)
    else:
      raise ValueError(f"dlib detector must be 'hog' or 'cnn', got {detector!r}.")
    self._predictor = dlib.shape_predictor(model)
    self._dlib, self._rectangle = dlib, dlib.rectangle
    self._up, self._down = dlib.pyramid_down(2), dlib.pyramid_down(6)
    self.upsample, self.min_score = upsample, min_score
    self.fast_video = fast_video and self._cnn is None and upsample == 1

  def _boxes(self, image):
    """Boxes and scores of the full search, in `image`'s pixels."""
    if self._cnn is not None:
      found = self._cnn(image, self.upsample)
      return [d.rect for d in found], [d.confidence for d in found]
    rects, scores, _ = self._detector.run(image, self.upsample, -0.5)
    return rects, scores

  def detect(self, image: np.ndarray) -> list[Face]:
    image = np.ascontiguousarray(_check_image(image))
    return self._faces(image, *self._boxes(image))

  def detect_video(self, image: np.ndarray) -> list[Face]:
    """`detect` for a video frame. With `fast_video` (HOG, upsampled once), the
    search first scans the full search's pyramid from FAST_LEVEL down, built the
    way dlib builds it: a face found FAST_MARGIN levels below that (~160 px or
    more) gets the full search's box and score exactly, for ~40 ms instead of
    ~120 ms on a 640x360 frame. Anything else (no face, or one that may fit a
    finer level better) runs the full search. So a face smaller than ~110 px
    beside one larger than ~160 px is missed."""
    if not self.fast_video:
      return self.detect(image)
    image = np.ascontiguousarray(_check_image(image))
    h, w = image.shape[:2]
    size = self._up.rect_up(self._rectangle(0, 0, w - 1, h - 1))
    # dlib's own 2x upsampling (what `run(image, 1)` scans) is its bilinear resize
    upsampled = self._dlib.resize_image(image, size.bottom() + 1, size.right() + 1)
    level = upsampled
    for _ in range(FAST_LEVEL):
      level = self._down(level)
    rects, scores, _ = self._detector.run(level, 0, -0.5)
    found = [self._from_level(r) for r in rects]
    kept = [m for (_, m), s in zip(found, scores) if s >= self.min_score]
    if kept and min(kept) >= FAST_MARGIN:
      return self._faces(image, [r for r, _ in found], scores)
    rects, scores, _ = self._detector.run(upsampled, 0, -0.5)
    return self._faces(image, [self._up.rect_down(r) for r in rects], scores)

  def _from_level(self, rect):
    """A box found in the FAST_LEVEL image -> (the box in the frame, the levels
    below FAST_LEVEL it was found at). Rounded as the full search rounds it:
    dlib maps a box from the level it was found at to level 0 in one rounding;
    the scan of FAST_LEVEL rounded it once already, at FAST_LEVEL, so the
    integer box at its own level is recovered first (the pyramid's map is
    x * 1.2^m + c, so one integer rounds to each value)."""
    m = max(0, round(math.log(rect.width() / HOG_WINDOW) / math.log(1.2)))
    if m:
      found = []
      for value in (rect.left(), rect.top(), rect.right(), rect.bottom()):
        guess = round(self._down.point_down(self._dlib.dpoint(value, value), m).x)
        match = [c for c in (guess - 1, guess, guess + 1)
                 if self._down.rect_up(self._rectangle(c, c, c, c), m).left() == value]
        if len(match) != 1:   # not a box of this detector's window: m = -1
          return rect, -1     # sends the frame to the full search if it scores
        found.append(match[0])
      rect = self._rectangle(*found)
    return self._up.rect_down(self._down.rect_up(rect, m + FAST_LEVEL)), m

  def _faces(self, image, rects, scores) -> list[Face]:
    faces = []
    for rect, score in zip(rects, scores):
      if score < self.min_score:
        continue
      shape = self._predictor(image, rect)
      lm = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
      box = (float(rect.left()), float(rect.top()), float(rect.width()),
             float(rect.height()))
      faces.append(Face(box, float(score), lm))
    return sorted(faces, key=lambda f: -f.score)

  def refit(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
    """The 68-point predictor run in each face's box of the previous frame (the
    ~1 ms part of `detect`; HOG detection is the ~100 ms part). The box then
    follows the landmarks' centroid; a face whose box has left the frame is
    dropped, so the next frame runs the detector again."""
    image = np.ascontiguousarray(_check_image(image))
    h_img, w_img = image.shape[:2]
    out = []
    for face in faces:
      x, y, w, h = face.box
      rect = self._rectangle(int(round(x)), int(round(y)), int(round(x + w)),
                             int(round(y + h)))
      shape = self._predictor(image, rect)
      lm = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
      dx, dy = lm.mean(axis=0) - face.landmarks.mean(axis=0)
      box = (x + float(dx), y + float(dy), w, h)
      inside_w = min(box[0] + w, w_img) - max(box[0], 0.0)
      inside_h = min(box[1] + h, h_img) - max(box[1], 0.0)
      if inside_w <= 0.5 * w or inside_h <= 0.5 * h:
        continue
      out.append(Face(box, face.score, lm))
    return out


def _check_face_alignment(allow_download: bool = False) -> None:
  """Raises BackendUnavailable, saying what to install or place, unless
  face-alignment is installed and its weights are in $TORCH_HOME."""
  if importlib.util.find_spec("face_alignment") is None:
    raise BackendUnavailable(
        "The face_alignment backend needs face-alignment and torch: pip install "
        "-e '.[face-alignment]'.")
  folder = os.path.join(os.path.expanduser(os.environ.get(
      "TORCH_HOME", os.path.join("~", ".cache", "torch"))), "hub", "checkpoints")
  missing = [f for f in FAN_WEIGHTS if not os.path.exists(os.path.join(folder, f))]
  if missing and not allow_download:
    raise BackendUnavailable(
        f"face-alignment's weights {missing} are not in {folder}. Copy them there "
        "(or pass weights_dir= / --weights-dir with a hub/checkpoints/ inside), or "
        "allow the download on a machine with network access (allow_download=True).")


def _check_dlib() -> None:
  """Raises BackendUnavailable, saying what to install, unless dlib and its
  68-point model are installed."""
  if importlib.util.find_spec("dlib") is None:
    raise BackendUnavailable("The dlib backend needs dlib: pip install -e "
                             "'.[faces]' (dlib-bin).")
  dlib_model_path()


class FaceAlignmentBackend:
  """face-alignment's FAN (2D, 68 points) with its S3FD detector."""
  name = "face_alignment"

  def __init__(self, device: str = "cpu", weights_dir: Optional[str] = None,
               allow_download: bool = False, min_score: float = 0.5):
    if weights_dir:
      os.environ["TORCH_HOME"] = os.path.abspath(os.path.expanduser(weights_dir))
    _check_face_alignment(allow_download)
    import face_alignment  # pylint: disable=g-import-not-at-top  (optional: torch, its extra)
    self._fa = face_alignment.FaceAlignment(
        face_alignment.LandmarksType.TWO_D, device=device, face_detector="sfd")
    self.min_score = min_score

  def detect(self, image: np.ndarray) -> list[Face]:
    image = _check_image(image)
    boxes = self._fa.face_detector.detect_from_image(image[..., ::-1].copy())
    boxes = [b for b in boxes if b[4] >= self.min_score]
    if not boxes:
      return []
    lms = self._fa.get_landmarks_from_image(image, detected_faces=boxes) or []
    faces = [Face((float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])),
                  float(b[4]), np.asarray(lm, np.float32)) for b, lm in zip(boxes, lms)]
    return sorted(faces, key=lambda f: -f.score)


def resolve(name: str = "auto") -> str:
  """The backend `load_backend(name)` gives, by its name, found without loading
  its models (processes that hand detection to workers need only the name).
  Raises BackendUnavailable as `load_backend` does."""
  if name not in ("auto",) + BACKENDS:
    raise ValueError(f"Unknown face backend {name!r}; choose auto or one of "
                     f"{BACKENDS}.")
  if name == "face_alignment":
    _check_face_alignment()
  elif name != "auto":
    _check_dlib()
  else:
    try:
      _check_face_alignment()
      return "face_alignment"
    except BackendUnavailable as e:
      try:
        _check_dlib()
      except BackendUnavailable as e2:
        raise BackendUnavailable(
            f"No face backend can load here:\n  {e}\n  {e2}") from None
      return "dlib"
  return name


def load_backend(name: str = "auto", fast_video: bool = False,
                 **kwargs) -> Backend:
  """`auto`: face_alignment if it loads here, else dlib. `fast_video`: dlib's
  HOG detector searches video frames for faces from ~110 px first
  (`DlibBackend.detect_video`)."""
  if name == "auto":
    name = resolve(name)
    kwargs = {}
  if name == "dlib":
    return DlibBackend(fast_video=fast_video, **kwargs)
  if name == "dlib_cnn":
    return DlibBackend(detector="cnn", **kwargs)
  if name == "face_alignment":
    return FaceAlignmentBackend(**kwargs)
  raise ValueError(f"Unknown face backend {name!r}; choose auto or one of "
                   f"{BACKENDS}.")


def landmark_fn_68(image_bgr: np.ndarray) -> Optional[np.ndarray]:
  """For the BP4D builder's ibug68 config (`SFAE_LANDMARKER=
  sfae_jax.face.backends:landmark_fn_68`): the best face's 68 points, or None."""
  global _BUILDER_BACKEND
  if _BUILDER_BACKEND is None:
    _BUILDER_BACKEND = load_backend(os.environ.get("SFAE_FACE_BACKEND", "auto"))
  faces = _BUILDER_BACKEND.detect(np.ascontiguousarray(image_bgr[..., ::-1]))
  return faces[0].landmarks if faces else None


_BUILDER_BACKEND: Optional[Backend] = None
