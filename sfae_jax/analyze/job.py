"""The whole analysis as one function, `run_analysis`: manifest -> tracks ->
speaker features -> tests, classifier (and the temporal model) -> report."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Mapping, Optional

import pandas as pd
import tqdm

from sfae_jax.analyze import (classify, features, report, stats,
                              temporal, tracks)
from sfae_jax.predict import provenance


_ROWS_PER_TABLE = 256   # videos' feature dicts (~30 KB each) held before a table


def video_table(manifest: pd.DataFrame, track_map: Mapping[str, pd.DataFrame],
                errors: Optional[list[str]] = None,
                progress: bool = False) -> pd.DataFrame:
  """A row of features per video with a track, each track looked up once and
  let go (`progress`: a bar with an ETA on stderr, a line every 15 s in a log).
  A `tracks.TrackFiles` track that cannot be read is an error (appended to
  `errors`, and dropped from `track_map` for what follows), as a missing one
  is."""
  tables, rows = [], []
  bar = tqdm.tqdm(total=sum(v in track_map for v in manifest["video"]),
                  unit="video", desc="video features", disable=not progress,
                  mininterval=0.5 if sys.stderr.isatty() else 15)
  for _, m in manifest.iterrows():
    if m["video"] not in track_map:
      continue
    try:
      track = track_map[m["video"]]
    except ValueError as e:
      if errors is not None:
        errors.append(str(e))
      tqdm.tqdm.write(f"error: {e}", file=sys.stderr)
      track_map.drop(m["video"])
      bar.update()
      continue
    feats, counts = features.video_features(track)
    bar.update()
    rows.append({**m.to_dict(), **counts, **feats})
    if len(rows) == _ROWS_PER_TABLE:
      tables.append(pd.DataFrame(rows))
      rows = []
  bar.close()
  if rows or not tables:
    tables.append(pd.DataFrame(rows))
  return pd.concat(tables, ignore_index=True)


def run_analysis(manifest_path: str, out_dir: str, workdir: str | None = None,
                 every: int = 1, backend: str = "auto", mixed: bool = False,
                 n_permutations: int = 200, n_boot: int = 1000,
                 min_per_group: int = stats.MIN_PER_GROUP, seed: int = 0,
                 temporal_model: bool = False, temporal_permutations: int = 99,
                 temporal_config: temporal.TemporalConfig | None = None,
                 workers: int = 0, cluster: str | None = None,
                 fmt: str = "csv") -> dict:
  """Writes stats.csv, speakers.csv, videos.csv, the PNGs and report.html into
  `out_dir` (with `temporal_model`, also temporal_speakers.csv); returns
  {'stats', 'speakers', 'videos', 'classifier', 'temporal', 'errors', ...}."""
  os.makedirs(out_dir, exist_ok=True)
  manifest = tracks.read_manifest(manifest_path)
  track_map, errors, sources = tracks.load_tracks(manifest, out_dir, workdir, every,
                                                 backend, workers, cluster, fmt)
  origin = provenance_summary(sources)
  with open(os.path.join(out_dir, "provenance.json"), "w") as f:
    json.dump(origin, f, indent=1, sort_keys=True)
  if origin["warning"]:
    print(origin["warning"], file=sys.stderr)
  videos = video_table(manifest, track_map, errors, progress=True)
  if videos.empty:
    raise ValueError("no video of the manifest could be analysed: "
                     + "; ".join(errors))
  speakers = features.speaker_table(videos)
  table = pd.concat([stats.group_tests(speakers, kind, min_per_group, n_boot, seed)
                     for kind in (*features.PER_AU, *features.INTENSITY,
                                  features.LEAD)],
                    ignore_index=True)
  videos.to_csv(os.path.join(out_dir, "videos.csv"), index=False)
  speakers.to_csv(os.path.join(out_dir, "speakers.csv"), index=False)
  table.to_csv(os.path.join(out_dir, "stats.csv"), index=False)
  mixed_table = (stats.mixed_models(videos, "rate", tracks.covariates(manifest))
                 if mixed else None)

  cols = [c for c in videos.columns if c.startswith(("AU", "co_"))]
  dropped = left_out(manifest, videos, cols, errors)
  for _, row in dropped.iterrows():
    print(f"warning: speaker {row['speaker']} ({row['first_language']}) is left "
          f"out of {row['left_out_of']}: {row['why']}", file=sys.stderr)
  result, why = None, ""
  try:
    result = classify.classify(videos, cols, n_permutations=n_permutations,
                               seed=seed)
  except ValueError as e:
    why = str(e)
  deep, deep_why = None, ""
  if temporal_model:
    try:
      deep = temporal.predict_language(manifest, track_map, temporal_config,
                                       temporal_permutations, seed,
                                       progress=_progress("temporal model"))
      deep.speaker_predictions.to_csv(
          os.path.join(out_dir, "temporal_speakers.csv"), index=False)
    except ValueError as e:
      deep_why = str(e)
  report.write(out_dir, manifest, videos, speakers, table, mixed_table, result,
               why, errors, dropped, origin, temporal=(deep, deep_why)
               if temporal_model else None)
  return {"stats": table, "speakers": speakers, "videos": videos,
          "classifier": result, "temporal": deep, "errors": errors,
          "mixed": mixed_table, "provenance": origin, "left_out": dropped}


def left_out(manifest: pd.DataFrame, videos: pd.DataFrame, classifier_cols,
             errors) -> pd.DataFrame:
  """The manifest's speakers missing from the statistics or the classifier, and
  why: one row each (speaker, first_language, left_out_of, why)."""
  rows = []
  analysed = set(videos["speaker"]) if len(videos) else set()
  for speaker, group in manifest.groupby("speaker", sort=True):
    lang = group["first_language"].iloc[0]
    names = [os.path.basename(v) for v in group["video"]]
    if speaker not in analysed:
      failed = [e for e in errors if any(v in e for v in group["video"])]
      rows.append((speaker, lang, "the statistics and the classifier",
                   "none of its videos could be read (" + "; ".join(
                       failed or names) + ")"))
      continue
    mine = videos[videos["speaker"] == speaker]
    if mine["frames_analysed"].sum() == 0:
      rows.append((speaker, lang, "the statistics and the classifier",
                   f"no face was found in {', '.join(names)}"))
    elif mine[list(classifier_cols)].isna().any(axis=1).all():
      rows.append((speaker, lang, "the classifier",
                   f"{', '.join(names)} give no timing features (a photo or a "
                   "one-frame track has no onsets per second or AU durations), "
                   "which the classifier needs for every speaker"))
  return pd.DataFrame(rows, columns=["speaker", "first_language", "left_out_of",
                                     "why"])


def _progress(what: str):
  """Progress lines with an ETA on stderr, for the long jobs."""
  start = time.time()

  def report_(done: int, total: int) -> None:
    eta = (time.time() - start) / done * (total - done) / 60
    print(f"{what}: {done}/{total} trainings, ETA {eta:.1f} min",
          file=sys.stderr, flush=True)
  return report_


def provenance_summary(sources: dict) -> dict:
  """The report's record of where its AU tracks came from: per video, the
  predict provenance (None for a track CSV without one); the distinct runs; and
  the synthetic-training warning when any track came from such a run."""
  runs = {}
  for record in sources.values():
    if record:
      runs[(record["run"], record["step"])] = {
          k: record.get(k) for k in ("run", "step", "model", "trained_on_synthetic",
                                     "training_dataset", "landmark_backend",
                                     "sfae_jax_version")}
  synthetic = any(r["trained_on_synthetic"] for r in runs.values())
  unknown = sorted(v for v, r in sources.items() if not r)
  return {"videos": sources, "runs": list(runs.values()),
          "unknown_provenance": unknown,
          "warning": provenance.SYNTHETIC_WARNING if synthetic else None}
