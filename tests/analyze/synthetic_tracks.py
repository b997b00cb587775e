"""AU tracks with a known answer, in sfae_jax.predict's format (for the tests)."""

import numpy as np
import pandas as pd

from tfds_bp4d.bp4d.layout import AUS  # noqa: E402  (the one list)
BASE = dict(zip(AUS, (.2, .17, .2, .3, .4, .45, .35, .4, .17, .3, .16, .15)))


def track(rng, rates: dict, n_frames: int, fps: float = 25.0,
          no_face: float = 0.05) -> pd.DataFrame:
  """One video: per AU an AR(1) latent thresholded so the AU is on a `rates[au]`
  fraction of the time; probabilities follow the latent; a few no-face frames."""
  from scipy.special import expit, ndtri  # pylint: disable=g-import-not-at-top
  t = np.arange(n_frames)
  df = pd.DataFrame({"input": "synthetic.mp4", "frame": t, "timestamp": t / fps,
                     "face_id": 0, "success": 1, "confidence": 1.0})
  for a in AUS:
    z = np.empty(n_frames)
    z[0] = rng.standard_normal()
    for i in range(1, n_frames):
      z[i] = 0.9 * z[i - 1] + np.sqrt(1 - 0.81) * rng.standard_normal()
    thr = ndtri(1 - np.clip(rates[a], 0.01, 0.99))
    df[f"AU{a:02d}"] = expit(4 * (z - thr))
  for a in AUS:
    df[f"AU{a:02d}_c"] = (df[f"AU{a:02d}"] >= 0.5).astype(int)
  lost = rng.random(n_frames) < no_face
  df.loc[lost, "success"] = 0
  df.loc[lost, [f"AU{a:02d}" for a in AUS]] = np.nan
  df.loc[lost, [f"AU{a:02d}_c" for a in AUS]] = -1
  return df


def study(seed: int, planted=(6, 12), shift: float = 0.25, speakers: int = 12,
          videos: int = 2, frames: int = 200, frames_of=None):
  """(manifest rows, {video name: track}) for two languages, A and B; speakers'
  own rates vary around the base; language B has `shift` more of `planted`."""
  rng = np.random.default_rng(seed)
  rows, tracks = [], {}
  for lang in ("A", "B"):
    for s in range(speakers):
      speaker = f"{lang}{s:02d}"
      rates = {a: float(np.clip(BASE[a] + rng.normal(0, 0.06)
                                + (shift if lang == "B" and a in planted else 0),
                                0.02, 0.95)) for a in AUS}
      for v in range(videos):
        name = f"{speaker}_v{v}.csv"
        n = frames if frames_of is None else frames_of(speaker, frames)
        tracks[name] = track(rng, rates, n)
        rows.append({"video": name, "speaker": speaker, "first_language": lang,
                     "task": f"t{v}"})
  return pd.DataFrame(rows), tracks


def write(tmp_path, manifest, tracks):
  for name, df in tracks.items():
    df.to_csv(tmp_path / name, index=False)
  path = tmp_path / "manifest.csv"
  manifest.to_csv(path, index=False)
  return str(path)
