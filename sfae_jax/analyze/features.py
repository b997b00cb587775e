"""AU features of a video's track, then of a speaker.

A track is the table `sfae_jax.predict` writes. Per video, the face analysed is the
face_id with the most successful frames (the speaker on camera); frames with
success=0 are excluded and counted. Per AU:

* `rate`      occurrence rate: fraction of analysed frames with AUxx_c = 1
* `prob`      mean probability
* `duration`  mean episode duration, seconds (a run of consecutive analysed frames
              with the AU on; 0 when it never occurs)
* `onsets`    onsets (off -> on) per second of analysed video
* `intensity` mean intensity (AUxx_r, 0-5) over the frames with the AU on: how
              strongly it moves when it does (0 when it never occurs)
* `peak`      95th percentile of the intensity over analysed frames
              (the last two for the AUs a track has AUxx_r columns for)
* `co_AAxBB`  co-occurrence: fraction of frames with both AUs on
* `lead_AAxBB_<L>ms`  lead-lag asymmetry of the two AUs' probabilities at lag L
              (`lead_lag`): positive when AU AA tends to move L before AU BB,
              negative when after; for each pair of AUs and each of `LAGS_S`

A speaker's features are the mean over their videos, so the speaker is the unit and
frame counts carry no weight: a speaker with ten times the frames still counts once.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd

PER_AU = ("rate", "prob", "duration", "onsets")
INTENSITY = ("intensity", "peak")  # per AU with intensity (AUxx_r)
PEAK_PERCENTILE = 95
LEAD = "lead"
LAGS_S = (0.1, 0.25, 0.5)  # speech-scale timing: phones, syllables


def _ids_with(track: pd.DataFrame, suffix: str) -> list[int]:
  """AU numbers of the track's `AUxx_<suffix>` columns, in column order."""
  return [int(m.group(1)) for c in track.columns
          if (m := re.fullmatch(rf"AU(\d+)_{suffix}", c))]


def au_ids_of(track: pd.DataFrame) -> list[int]:
  ids = _ids_with(track, "c")
  if not ids:
    raise ValueError("the track has no AUxx_c columns: is it a sfae_jax.predict CSV?")
  return ids


def intensity_au_ids_of(track: pd.DataFrame) -> list[int]:
  """AUs with an intensity column (AUxx_r); none in occurrence-only tracks."""
  return _ids_with(track, "r")


def _episodes(on: np.ndarray, frames: np.ndarray) -> list[int]:
  """Lengths (in analysed frames) of runs of `on` over consecutive frame steps."""
  lengths, run = [], 0
  step = np.median(np.diff(frames)) if len(frames) > 1 else 1
  for k, value in enumerate(on):
    contiguous = k > 0 and frames[k] - frames[k - 1] <= step
    if value and run and contiguous:
      run += 1
    elif value:
      if run:
        lengths.append(run)
      run = 1
    else:
      if run:
        lengths.append(run)
      run = 0
  if run:
    lengths.append(run)
  return lengths


def main_face(track: pd.DataFrame):
  """The face_id with the most successful frames (the speaker on camera), or None
  when no frame has a face."""
  ok = track[track["success"] == 1]
  return None if ok.empty else ok["face_id"].value_counts().idxmax()


def video_features(track: pd.DataFrame) -> tuple[dict, dict]:
  """(features, counts) of one video's track."""
  aus = au_ids_of(track)
  counts = {"frames": int(len(track)),
            "frames_no_face": int((track["success"] != 1).sum()),
            # frames the decoder damaged (success=0 too); older CSVs lack the column
            "frames_decode_error": int(track.get("decode_error",
                                                 pd.Series(0, track.index)).sum())}
  ok = track[track["success"] == 1]
  main = main_face(track)
  if main is None:
    counts.update(frames_analysed=0, faces=0)
    return {}, counts
  face = ok[ok["face_id"] == main].sort_values("frame")
  counts.update(frames_analysed=int(len(face)), faces=int(ok["face_id"].nunique()),
                frames_other_faces=int(len(ok) - len(face)))
  frames = face["frame"].to_numpy()
  t = face["timestamp"].to_numpy(float)
  dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
  seconds = max(len(face) * dt, 1e-9) if dt > 0 else float("nan")
  feats = {}
  on = {a: face[f"AU{a:02d}_c"].to_numpy() == 1 for a in aus}
  for a in aus:
    name = f"AU{a:02d}"
    eps = _episodes(on[a], frames)
    feats[f"{name}_rate"] = float(on[a].mean())
    feats[f"{name}_prob"] = float(face[name].mean())
    feats[f"{name}_duration"] = float(np.mean(eps) * dt) if eps else 0.0
    onsets = int(on[a][0]) + int(np.sum(on[a][1:] & ~on[a][:-1]))
    feats[f"{name}_onsets"] = onsets / seconds
  for a in intensity_au_ids_of(track):
    r = face[f"AU{a:02d}_r"].to_numpy(float)
    present = on[a] if a in on else r >= 1.0  # FACS trace level A and up
    feats[f"AU{a:02d}_intensity"] = (float(r[present].mean()) if present.any()
                                     else 0.0)
    feats[f"AU{a:02d}_peak"] = float(np.percentile(r, PEAK_PERCENTILE))
  for a, b in itertools.combinations(aus, 2):
    feats[f"co_{a:02d}x{b:02d}"] = float((on[a] & on[b]).mean())
  if dt > 0:
    probs = {a: face[f"AU{a:02d}"].to_numpy(float) for a in aus}
    step = int(np.median(np.diff(frames))) if len(frames) > 1 else 1
    for lag_s in LAGS_S:
      lag = max(1, int(round(lag_s / dt)))
      for a, b in itertools.combinations(aus, 2):
        feats[lead_name(a, b, lag_s)] = lead_lag(probs[a], probs[b], frames // step,
                                                 lag)
  return feats, counts


def lead_name(a: int, b: int, lag_s: float) -> str:
  return f"{LEAD}_{a:02d}x{b:02d}_{round(lag_s * 1000)}ms"


def lead_lag(x: np.ndarray, y: np.ndarray, index: np.ndarray, lag: int) -> float:
  """mean x(t) y(t + lag) - mean y(t) x(t + lag) over the frames t where both
  frames are analysed, on tracks with their means removed. `index`: each
  sample's frame number (gaps where frames were not analysed). Positive when x
  leads y by about `lag` frames; it changes sign when the two are swapped, and
  is 0 for tracks that move together or independently. NaN without a pair of
  frames `lag` apart."""
  grid = np.full(int(index.max() - index.min()) + 1 + lag, np.nan)
  gx, gy = grid.copy(), grid.copy()
  gx[index - index.min()] = x - np.mean(x)
  gy[index - index.min()] = y - np.mean(y)
  forward = gx[:-lag] * gy[lag:]   # x(t) y(t + lag)
  backward = gy[:-lag] * gx[lag:]  # y(t) x(t + lag)
  both = ~np.isnan(forward)        # t and t + lag analysed (for either order)
  if not both.any():
    return float("nan")
  return float(forward[both].mean() - backward[both].mean())


def speaker_table(videos: pd.DataFrame) -> pd.DataFrame:
  """Video rows (speaker, first_language, covariates, features) -> one row per
  speaker: features averaged over the speaker's videos, frames summed."""
  feature_cols = [c for c in videos.columns if c.startswith(("AU", "co_", LEAD))]
  count_cols = [c for c in videos.columns if c.startswith("frames")]
  langs = videos.groupby("speaker")["first_language"].nunique()
  if (langs > 1).any():
    raise ValueError("a speaker has more than one first_language in the manifest: "
                     f"{sorted(langs[langs > 1].index)}")
  agg = {c: "mean" for c in feature_cols}
  agg.update({c: "sum" for c in count_cols})
  agg["first_language"] = "first"
  agg["video"] = "count"
  out = videos.groupby("speaker", sort=True).agg(agg).copy()  # consolidated
  return out.rename(columns={"video": "videos"}).reset_index()


def feature_names(columns, kind: str) -> list[str]:
  """Columns of one per-AU kind (`rate`, `prob`, ...) in AU order, or, for
  `LEAD`, the lead-lag columns (pairs x lags)."""
  pattern = rf"{LEAD}_\d+x\d+_\d+ms" if kind == LEAD else rf"AU\d+_{kind}"
  return [c for c in columns if re.fullmatch(pattern, c)]
