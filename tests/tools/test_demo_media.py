"""The demo corpus the README's predict and analyze commands run on: made here,
from the photo matplotlib ships, with no media beside the clone."""

from sfae_jax.analyze import tracks
from sfae_jax.face import backends, media
from sfae_jax.tools import demo_media


def test_a_manifest_of_videos_with_a_face_and_invented_labels(tmp_path):
  path = demo_media.main(["--out", str(tmp_path / "demo"), "--frames", "3"])
  assert path == 0
  manifest = tracks.read_manifest(str(tmp_path / "demo" / "manifest.csv"))
  assert len(manifest) == 6 and manifest["speaker"].nunique() == 6
  assert manifest["first_language"].value_counts().to_dict() == {"English": 3,
                                                                 "German": 3}
  assert manifest["label_note"].str.contains("INVENTED").all()
  lengths = [sum(1 for _ in media.frames(v)) for v in manifest["video"]]
  assert lengths == [3, 13, 23, 33, 43, 53]
  first = next(media.frames(manifest["video"].iloc[-1])).rgb
  assert len(backends.load_backend("dlib").detect(first)) == 1
