"""AU tracks with a known answer, in `sfae_jax.predict`'s CSV format.

The analysis is proven on these: planted differences between two first languages
that it must find, and nulls on which it must stay quiet.

* `study`: per-speaker AU rates, language B with more of some AUs.
* `intensity_study`: equal rates, language B moving one AU more strongly
  (`AUxx_r` columns, as a run with an intensity head writes them).
* `temporal_study`: a half-second onset order of two AUs, slow episodes.
* `pair_timing_study`: onset order or lag of two AUs at phonetic scales: once per
  speech unit both fire, one `lag_s` before the other, for `episode_s`; the grid
  of the temporal power table (`sfae_jax.analyze.power`).

In every generator the other AUs are per-speaker AR(1) noise, and everything but
the planted difference is equal in distribution between the languages.
"""

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from scipy.special import expit, ndtri

from sfae_jax.face import action_units

AUS = action_units.BP4D
BASE = dict(zip(AUS, (.2, .17, .2, .3, .4, .45, .35, .4, .17, .3, .16, .15)))


def track(rng, rates: dict, n_frames: int, fps: float = 25.0,
          no_face: float = 0.05) -> pd.DataFrame:
  """One video: per AU an AR(1) latent thresholded so the AU is on a `rates[au]`
  fraction of the time; probabilities follow the latent; a few no-face frames."""
  t = np.arange(n_frames)
  df = pd.DataFrame({"input": "synthetic.mp4", "frame": t, "timestamp": t / fps,
                     "face_id": 0, "success": 1, "confidence": 1.0})
  for a in AUS:
    e = rng.standard_normal(n_frames)  # z[i] = 0.9 z[i-1] + sqrt(0.19) e[i]
    e[1:] *= np.sqrt(1 - 0.81)
    z = lfilter([1.0], [1.0, -0.9], e)
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


def intensity_study(seed: int, planted: bool = True, au: int = 12,
                    boost: float = 0.8, speakers: int = 12, videos: int = 2,
                    frames: int = 200,
                    intensity_aus=action_units.BP4D_INTENSITY):
  """(manifest rows, {video: track}) of two languages whose AU rates are equal
  in distribution (`study` without a planted rate) and whose intensity columns
  `AUxx_r` are a speaker's own level (N(2, 0.4)) plus frame noise while the AU is
  on, under 0.5 while off; with `planted`, language B's level of `au` is `boost`
  higher. The null (`planted=False`): every level from the same distribution."""
  manifest, tracks = study(seed, planted=(), speakers=speakers, videos=videos,
                           frames=frames)
  rng = np.random.default_rng([seed, 1])
  level = {}
  for speaker, lang in manifest.groupby("speaker")["first_language"].first().items():
    level[speaker] = {a: rng.normal(2.0, 0.4) + (
        boost if planted and lang == "B" and a == au else 0.0)
                      for a in intensity_aus}
  for _, row in manifest.iterrows():
    df = tracks[row["video"]]
    for a in intensity_aus:
      on = df[f"AU{a:02d}_c"].to_numpy() == 1
      r = np.where(on, level[row["speaker"]][a] + rng.normal(0, 0.5, len(df)),
                   rng.uniform(0, 0.5, len(df)))
      df[f"AU{a:02d}_r"] = np.where(df["success"] == 1, np.clip(r, 0, 5), np.nan)
  return manifest, tracks


def write(tmp_path, manifest, tracks):
  for name, df in tracks.items():
    df.to_csv(tmp_path / name, index=False)
  path = tmp_path / "manifest.csv"
  manifest.to_csv(path, index=False)
  return str(path)


# The temporal-only planted difference: language A raises FIRST before
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


def _rates_and_order(rng, lang: str, planted: bool) -> tuple[dict, int]:
  """A speaker's own AU rates, and the order of FIRST and SECOND: +1 (FIRST
  leads) in language A and -1 in B when `planted`, else a coin flip."""
  rates = {a: float(np.clip(BASE[a] + rng.normal(0, 0.06), 0.02, 0.95))
           for a in AUS}
  order = (1 if lang == "A" else -1) if planted else int(rng.choice([-1, 1]))
  return rates, order


def temporal_study(seed: int, planted: bool = True, speakers: int = 12,
                   videos: int = 2, seconds: float = 40.0, fps: float = 10.0,
                   lag_s: float = 0.5):
  """(manifest rows, {video: track}): two languages whose AU rates and durations
  are equal per speaker but whose FIRST/SECOND onsets follow a different order
  (`planted`), or with each speaker's order a coin flip whatever their language
  (the null: order varies between speakers, not between languages)."""
  rng = np.random.default_rng(seed)
  rows, tracks = [], {}
  n = int(seconds * fps)
  for lang in ("A", "B"):
    for s in range(speakers):
      speaker = f"{lang}{s:02d}"
      rates, order = _rates_and_order(rng, lang, planted)
      rate_hz = rng.uniform(0.15, 0.3)       # the speaker's own habits,
      duration = (rng.uniform(0.8, 1.2), rng.uniform(1.5, 2.5))  # either language
      for v in range(videos):
        name = f"{speaker}_v{v}.csv"
        df = track(rng, rates, n, fps=fps)
        on = _episode_track(rng, n, fps, order, lag_s, rate_hz, duration)
        tracks[name] = _observe(rng, df, on, name)
        rows.append({"video": name, "speaker": speaker, "first_language": lang,
                     "task": f"t{v}"})
  return pd.DataFrame(rows), tracks


def _observe(rng, df: pd.DataFrame, on: dict, name: str, gain: float = 3.0,
             noise: float = 1.0) -> pd.DataFrame:
  """`df` with the AUs of `on` (AU -> on/off per frame) replaced by what a
  detector reports: probabilities with logits +-`gain` and per-frame noise on
  them (sd `noise`), missing where `df` has no face."""
  lost = df["success"] == 0
  for a, active in on.items():
    p = expit(gain * (2 * active - 1) + rng.normal(0, noise, len(df)))
    df[f"AU{a:02d}"] = np.where(lost, np.nan, p)
    df[f"AU{a:02d}_c"] = np.where(lost, -1, (p >= 0.5).astype(int))
  df["input"] = name.replace(".csv", ".mp4")
  return df


def _unit_track(rng, n_frames: int, fps: float, order: int, lag_s: float,
                episode_s: float, unit_s: tuple):
  """Speech units every `unit_s` (uniform) seconds; in each, FIRST and SECOND
  fire for the same episode_s x U(0.8, 1.2) seconds, the one `order` names
  (+1: FIRST, -1: SECOND) `lag_s` (+- 10 %) before the other. Units never
  overlap: the next starts after both episodes end."""
  on = {FIRST: np.zeros(n_frames, bool), SECOND: np.zeros(n_frames, bool)}
  lead, follow = (FIRST, SECOND) if order > 0 else (SECOND, FIRST)
  start = rng.uniform(0, unit_s[1]) * fps
  while start < n_frames:
    s = int(start)
    length = max(1, int(round(episode_s * rng.uniform(0.8, 1.2) * fps)))
    lag = max(1, int(round(lag_s * (1 + rng.normal(0, 0.1)) * fps)))
    on[lead][s:s + length] = True
    on[follow][s + lag:s + lag + length] = True
    start += max(rng.uniform(*unit_s) * fps, lag + length + 1)
  return on


# A less certain detector than `temporal_study`'s: at a 0.25 s lag and 0.33 s
# episodes the speakers' lead-lag asymmetry is about +-0.11, the figure measured
# on held-out tracks of this kind.
PAIR_GAIN = 1.75


def pair_timing_study(seed: int, lag_s: float = 0.25, episode_s: float = 0.33,
                      planted: bool = True, speakers: int = 12, videos: int = 2,
                      seconds: tuple = (30.0, 80.0), fps: float = 30.0,
                      noise: float = 1.0):
  """(manifest rows, {video: track}) of two languages that differ only in the
  order of FIRST and SECOND within a speech unit (`planted`: FIRST leads by
  `lag_s` in A, SECOND in B), or (the null) with each speaker's order a coin
  flip whatever their language. Every speaker has their own speech rate (units
  every 0.8-1.3 s, scaled by U(0.85, 1.15)) and episode lengths (`episode_s`
  scaled by U(0.85, 1.15)); videos last `seconds` (uniform); `noise` is the sd
  of the per-frame noise on the two AUs' logits."""
  rng = np.random.default_rng(seed)
  rows, tracks = [], {}
  for lang in ("A", "B"):
    for s in range(speakers):
      speaker = f"{lang}{s:02d}"
      rates, order = _rates_and_order(rng, lang, planted)
      pace = rng.uniform(0.85, 1.15)
      episode = episode_s * rng.uniform(0.85, 1.15)
      for v in range(videos):
        name = f"{speaker}_v{v}.csv"
        n = int(rng.uniform(*seconds) * fps)
        df = track(rng, rates, n, fps=fps)
        on = _unit_track(rng, n, fps, order, lag_s, episode,
                         (0.8 * pace, 1.3 * pace))
        tracks[name] = _observe(rng, df, on, name, gain=PAIR_GAIN, noise=noise)
        rows.append({"video": name, "speaker": speaker, "first_language": lang,
                     "task": f"t{v}"})
  return pd.DataFrame(rows), tracks
