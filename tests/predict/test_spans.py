"""Videos as spans (`predict --ray`), the stream's side: the cluster's tasks run
in this process (`_InProcessPool`, `cluster.RayPool`'s interface, the cluster's
own task functions), so every way a span can come back is checked without
starting Ray: with the model's outputs, with the aligned faces for the driver's
model (a driver with a GPU; a cluster that cannot load the run), or unable to
take its frames from its seek point. The real cluster: test_cluster.py."""

import concurrent.futures
import os

import pytest

from sfae_jax.predict import __main__ as predict_cli
from sfae_jax.predict import cluster
from sfae_jax.tools import synthetic_video
from tests.face import made_media
from tests.predict.compare import output_files


_FACES = cluster._faces  # pylint: disable=protected-access  (the tasks' functions)
_SPAN = cluster._span  # pylint: disable=protected-access


def _done(value) -> concurrent.futures.Future:
  future = concurrent.futures.Future()
  future.set_result(value)
  return future


class _InProcessPool:
  """`cluster.RayPool`, its tasks run here when submitted. `model`: as
  `RayPool` derives it from the driver's model, unless `MODEL` overrides it."""
  MODEL = "as RayPool"

  def __init__(self, address, backend, fast_video, model=None):
    del address
    self.slots = 2
    self._spec = (backend, fast_video)
    self._model = (cluster.InWorker(model.source, model.batch_size)
                   if self.MODEL == "as RayPool" else self.MODEL)

  def submit(self, fn, *args):
    return _done(_FACES(*self._spec, fn, *args))

  def submit_span(self, path, span, every, detect_every):
    return _done(_SPAN(*self._spec, self._model, path, span, every, detect_every))

  def shutdown(self, wait=True, cancel_futures=False):
    del wait, cancel_futures


@pytest.fixture(scope="module")
def media(faces_dir, tmp_path_factory):
  """A face video of 3 spans at --chunk-frames 32, a photo, and a video cut
  before a keyframe (its spans cannot be seeked to)."""
  root = tmp_path_factory.mktemp("span_media")
  long = synthetic_video.write(os.path.join(faces_dir, "single_face.jpg"), 80,
                               str(root / "long.mp4"), (160, 128))
  recut = made_media.without_first_packets(
      made_media.open_gop(root / "gop.mp4", 300), root / "recut.mp4", 5)
  return [long, os.path.join(faces_dir, "multi_face.jpg"), recut]


def _predict(trained_run, media, out, *flags) -> int:
  return predict_cli.main(["--workdir", trained_run[0], "--backend", "dlib",
                           *media, "--out", f"{out}{os.sep}", "--chunk-frames",
                           "32", *flags])


@pytest.fixture(scope="module")
def one_process(trained_run, media, tmp_path_factory):
  out = tmp_path_factory.mktemp("one")
  assert _predict(trained_run, media, out) == 0
  return output_files(out)


@pytest.mark.parametrize("model", ["as RayPool", None, "unloadable"])
def test_spans_give_the_files_of_one_process(trained_run, media, one_process,
                                             tmp_path, monkeypatch, capsys, model):
  """`model`: in the spans (a CPU cluster), None (the driver's, as with a GPU
  there), or a run the cluster cannot load (the driver's then, said once)."""
  if model == "unloadable":
    model = cluster.InWorker((str(tmp_path / "not_on_this_node"), 0), 32)
  monkeypatch.setattr(_InProcessPool, "MODEL", model)
  monkeypatch.setattr(cluster, "RayPool", _InProcessPool)
  assert _predict(trained_run, media, tmp_path, "--ray", "in-process") == 0
  err = capsys.readouterr().err
  assert f"Decoding {media[2]} in order from frame 0 on" in err, err[-2000:]
  assert err.count("the model could not be loaded on the cluster") == (
      1 if isinstance(model, cluster.InWorker) else 0), err[-2000:]
  assert output_files(tmp_path) == one_process
