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


# The temporal-only planted difference (issue 16): language A raises FIRST before
# SECOND, language B the reverse; rates, durations, onsets and co-occurrence are
# equal in distribution, so per-speaker averages cannot tell the languages apart.
FIRST, SECOND = 12, 10


def _episode_track(rng, n_frames: int, fps: float, order: int, lag_s: float,
                   rate_hz: float, duration_s: tuple):
  """Episodes of FIRST and SECOND: equal durations, the one `order` names
  (+1: FIRST, -1: SECOND) starting `lag_s` before the other. Returns the two
  on/off tracks `[n_frames]`."""
  on = {FIRST: np.zeros(n_frames, bool), SECOND: np.zeros(n_frames, bool)}
  lead, follow = (FIRST, SECOND) if order > 0 else (SECOND, FIRST)
  t = rng.exponential(1 / rate_hz)
  while t * fps < n_frames:
    start = int(t * fps)
    length = max(1, int(rng.uniform(*duration_s) * fps))
    lag = max(1, int(round((lag_s + rng.normal(0, 0.1 * lag_s)) * fps)))
    on[lead][start:start + length] = True
    on[follow][start + lag:start + lag + length] = True
    t += (lag + length) / fps + rng.exponential(1 / rate_hz)
  return on


def temporal_study(seed: int, planted: bool = True, speakers: int = 12,
                   videos: int = 2, seconds: float = 40.0, fps: float = 10.0,
                   lag_s: float = 0.5):
  """(manifest rows, {video: track}): two languages whose AU rates and durations
  are equal per speaker but whose FIRST/SECOND onsets follow a different order
  (`planted`), or with each speaker's order a coin flip whatever their language
  (the null: order varies between speakers, not between languages)."""
  from scipy.special import expit  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  rows, tracks = [], {}
  n = int(seconds * fps)
  for lang in ("A", "B"):
    for s in range(speakers):
      speaker = f"{lang}{s:02d}"
      rates = {a: float(np.clip(BASE[a] + rng.normal(0, 0.06), 0.02, 0.95))
               for a in AUS}
      order = ((1 if lang == "A" else -1) if planted
               else int(rng.choice([-1, 1])))
      rate_hz = rng.uniform(0.15, 0.3)       # the speaker's own habits,
      duration = (rng.uniform(0.8, 1.2), rng.uniform(1.5, 2.5))  # either language
      for v in range(videos):
        name = f"{speaker}_v{v}.csv"
        df = track(rng, rates, n, fps=fps)
        on = _episode_track(rng, n, fps, order, lag_s, rate_hz, duration)
        lost = df["success"] == 0
        for a in (FIRST, SECOND):
          p = expit(3.0 * (2 * on[a] - 1) + rng.normal(0, 1.0, n))
          df[f"AU{a:02d}"] = np.where(lost, np.nan, p)
          df[f"AU{a:02d}_c"] = np.where(lost, -1, (p >= 0.5).astype(int))
        df["input"] = name.replace(".csv", ".mp4")
        tracks[name] = df
        rows.append({"video": name, "speaker": speaker, "first_language": lang,
                     "task": f"t{v}"})
  return pd.DataFrame(rows), tracks
