"""First-language analysis on tracks with a known answer, and on real media."""

import json
import os
import re

import cv2
import numpy as np
import pandas as pd
import pytest

from sfae_jax.analyze import classify, features, stats, tracks
from sfae_jax.analyze import job
from sfae_jax.analyze import planted as st
from sfae_jax.analyze import __main__ as analyze_cli


def _run(tmp_path, seed, **kw):
  manifest, tracks = st.study(seed, **kw)
  path = st.write(tmp_path, manifest, tracks)
  return job.run_analysis(path, str(tmp_path / "report"), n_permutations=100,
                              n_boot=200, seed=seed)


def test_planted_difference_found_in_those_aus_only(tmp_path):
  out = _run(tmp_path, seed=1)
  rate = out["stats"][out["stats"]["kind"] == "rate"].set_index("au")
  significant = set(rate.index[rate["q"] < 0.05])
  assert significant == {"AU06", "AU12"}, rate[["p", "q"]]
  assert (rate.loc[["AU06", "AU12"], "effect"] > 0).all()   # B higher
  assert (rate.loc[["AU06", "AU12"], "effect_lo"] > 0).all()
  clf = out["classifier"]
  assert clf.balanced_accuracy > 0.7 and clf.p_value < 0.05
  top = clf.importances.index[:5]
  assert any(re.search(r"06|12", name) for name in top)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_null_data_nothing_significant_classifier_at_chance(tmp_path, seed):
  out = _run(tmp_path, seed=seed, shift=0.0)
  table = out["stats"]
  assert table["q"].notna().sum() >= 12  # q-values exist (dropna alone passes NaN)
  assert (table["q"].dropna() >= 0.05).all()
  clf = out["classifier"]
  # Below-chance balanced accuracy is normal under grouped CV: the permutation p
  # is the test of "at chance".
  assert clf.p_value > 0.05


def _intensity_run(tmp_path, seed, planted):
  manifest, tracks = st.intensity_study(seed, planted=planted)
  path = st.write(tmp_path, manifest, tracks)
  return job.run_analysis(path, str(tmp_path / "report"), n_permutations=20,
                                  n_boot=200, seed=seed)


def test_planted_intensity_found_by_intensity_not_by_rate(tmp_path):
  """Language B uses AU12 as often, more strongly: its mean intensity while
  present (and its peak) differs, its rate does not, and the report says so."""
  out = _intensity_run(tmp_path, 3, planted=True)
  table = out["stats"].set_index(["kind", "au"])
  hits = {k: set(table.loc[k].index[table.loc[k, "q"] < 0.05])
          for k in ("rate", "intensity", "peak")}
  assert hits["intensity"] == {"AU12"}, table.loc["intensity", ["p", "q"]]
  assert hits["peak"] == {"AU12"}
  assert hits["rate"] == set()
  assert table.loc[("intensity", "AU12"), "effect_lo"] > 0       # B stronger
  html = (tmp_path / "report" / "report.html").read_text()
  section = html[html.index("AU intensity by language"):]
  assert "mean intensity while present: AU12" in section
  assert "95th-percentile intensity: AU12" in section


@pytest.mark.parametrize("seed", [21, 22])
def test_null_intensity_nothing_significant(tmp_path, seed):
  out = _intensity_run(tmp_path, seed, planted=False)
  rows = out["stats"][out["stats"]["kind"].isin(features.INTENSITY)]
  assert rows["q"].notna().sum() == 10                 # 5 AUs x 2 kinds tested
  assert (rows["q"] >= 0.05).all(), rows[["feature", "p", "q"]]
  html = (tmp_path / "report" / "report.html").read_text()
  assert "mean intensity while present: no AU" in html


def test_intensity_features_are_the_mean_while_present_and_the_peak():
  """Hand-made track: AU12 on in frames 1-3 at intensity 2, 3, 4 and off at 0.5;
  AU05 has intensity but no occurrence column: present where >= 1."""
  track = pd.DataFrame({
      "input": "v.mp4", "frame": range(6), "timestamp": np.arange(6) / 10,
      "face_id": 0, "success": [1, 1, 1, 1, 1, 0],
      "AU12": 0.5, "AU12_c": [0, 1, 1, 1, 0, -1],
      "AU12_r": [0.5, 2.0, 3.0, 4.0, 0.5, np.nan],
      "AU05_r": [0.0, 1.0, 3.0, 0.0, 0.0, np.nan]})
  feats, _ = features.video_features(track)
  assert feats["AU12_intensity"] == pytest.approx(3.0)
  assert feats["AU12_peak"] == pytest.approx(np.percentile([.5, 2, 3, 4, .5], 95))
  assert feats["AU05_intensity"] == pytest.approx(2.0)
  assert "AU06_intensity" not in feats


def test_grouped_folds_never_split_a_speaker():
  manifest, _ = st.study(0, videos=3, speakers=6)
  folds = classify.speaker_folds(manifest["first_language"].to_numpy(),
                                 manifest["speaker"].to_numpy(), 3, seed=0)
  for train, test in folds:
    assert not set(manifest["speaker"].iloc[train]) & set(
        manifest["speaker"].iloc[test])


def test_a_speaker_is_the_unweighted_mean_of_their_videos(tmp_path):
  """A speaker with a long and a short video of different AU use: the speaker's
  feature is the mean of the two video values, not the frame-weighted mean, and
  the test sees one value per speaker."""
  manifest, tracks = st.study(5, shift=0.0)
  first = manifest[manifest["speaker"] == "A00"]["video"].tolist()
  rng = np.random.default_rng(0)
  tracks[first[0]] = st.track(rng, {**st.BASE, 12: 0.8}, 2000)   # long
  tracks[first[1]] = st.track(rng, {**st.BASE, 12: 0.1}, 100)    # short
  videos = job.video_table(manifest, tracks)
  speakers = features.speaker_table(videos).set_index("speaker")
  v = videos.set_index("video").loc[first, "AU12_rate"].to_numpy()
  assert v[0] - v[1] > 0.4  # the two videos really differ
  frames = videos.set_index("video").loc[first, "frames_analysed"].to_numpy()
  weighted = (v * frames).sum() / frames.sum()
  assert speakers.loc["A00", "AU12_rate"] == pytest.approx(v.mean(), abs=1e-12)
  assert abs(speakers.loc["A00", "AU12_rate"] - weighted) > 0.2
  assert len(speakers) == 24


def test_too_few_speakers_is_said_plainly_not_a_p_value(tmp_path):
  manifest, tracks = st.study(2, speakers=2)
  path = st.write(tmp_path, manifest, tracks)
  out = job.run_analysis(path, str(tmp_path / "r"), n_permutations=10,
                             n_boot=10)
  assert out["stats"]["p"].isna().all()
  assert out["stats"]["note"].str.contains("too few speakers").all()
  html = open(tmp_path / "r" / "report.html").read()
  assert "No group test was run" in html and "too few speakers" in html


def test_manifest_errors_name_the_file_and_columns(tmp_path):
  bad = tmp_path / "m.csv"
  bad.write_text("video,speaker\nx.csv,s1\n")
  with pytest.raises(ValueError, match="first_language"):
    job.run_analysis(str(bad), str(tmp_path / "r"))


def test_manifest_labels_are_stripped_and_near_duplicates_refused(tmp_path):
  path = tmp_path / "m.csv"
  path.write_text("video ,speaker,first_language\na.csv, s1 ,English \n"
                  "b.csv,s2,English\n")
  m = tracks.read_manifest(str(path))
  assert list(m["first_language"]) == ["English", "English"]
  assert list(m["speaker"]) == ["s1", "s2"]
  path.write_text("video,speaker,first_language\na.csv,s1,English\n"
                  "b.csv,s2,english\nc.csv,s3,New  Zealand\n")
  with pytest.raises(ValueError, match=r"m\.csv: first_language labels differ only "
                     r"in case or spaces: 'English' \(rows 2\); 'english' \(rows 3\)"):
    tracks.read_manifest(str(path))


def test_a_video_listed_twice_is_refused_naming_its_rows(tmp_path):
  path = tmp_path / "m.csv"
  path.write_text("video,speaker,first_language\na.csv,s1,A\nb.csv,s2,B\n"
                  "./a.csv,s1,A\n")
  with pytest.raises(ValueError, match=r"a\.csv is listed 2 times \(rows 2, 4\)"):
    tracks.read_manifest(str(path))


def test_demo_manifest_over_real_media_end_to_end(trained_run, faces_dir, tmp_path,
                                                  capsys, monkeypatch):
  """Labels invented (and marked so): media -> predict -> report.html whose every
  PNG exists and opens. A missing video, a speaker whose video has no face and
  one with a photo only are each named with why they are left out, on stderr
  and in the report. A second run reads the media's cached tracks."""
  videos = ["WolfgangLanger_Pexels.mp4", "single_face.mp4", "no_face.mp4",
            "single_face.jpg", "lost.mp4"]
  manifest = pd.DataFrame({
      "video": [os.path.join(faces_dir, v) for v in videos[:-1]]
               + [str(tmp_path / "lost.mp4")],
      "speaker": ["wolfgang", "clip_speaker", "nobody", "photo_person", "gone"],
      "first_language": ["German", "English", "English", "German", "English"],
      "label_note": ["INVENTED labels for a demo: not real first languages"] * 5})
  path = tmp_path / "demo.csv"
  manifest.to_csv(path, index=False)
  out_dir = tmp_path / "report"
  rc = analyze_cli.main(["--manifest", str(path), "--out", str(out_dir),
                         "--workdir", trained_run[0], "--every", "6",
                         "--backend", "dlib", "--permutations", "10"])
  assert rc == 1  # a video of the manifest is missing: the report is written
  err = capsys.readouterr().err
  assert f"error: {tmp_path / 'lost.mp4'}: no such file." in err
  left = {m.group(1): m.group(2) for m in re.finditer(
      r"warning: speaker (\w+) \(\w+\) is left out of (the [\w ]+):", err)}
  assert left == {"gone": "the statistics and the classifier",
                  "nobody": "the statistics and the classifier",
                  "photo_person": "the classifier"}, err[-2000:]
  assert "lost.mp4" in err.split("speaker gone")[1].splitlines()[0]
  assert "no face was found in no_face.mp4" in err
  assert "single_face.jpg give no timing features" in err
  # the bar counts the frames decoded (some containers declare a few more)
  done, total = re.findall(r"all inputs: [^|]*\|[^|]*\| (\d+)/(\d+)", err)[-1]
  assert done == total, err[-500:]
  html = (out_dir / "report.html").read_text()
  pngs = re.findall(r"src='([^']+\.png)'", html)
  assert {"heatmap.png", "distributions.png"} <= set(pngs)
  for name in pngs:
    image = cv2.imread(str(out_dir / name))
    assert image is not None and image.size > 0, name
  assert "INVENTED" in html and "too few speakers" in html
  speakers = pd.read_csv(out_dir / "speakers.csv")
  nobody = speakers.set_index("speaker").loc["nobody"]
  assert nobody["frames_analysed"] == 0 and nobody["frames_no_face"] > 0
  assert "3 speaker(s) of the manifest are left out" in html
  for speaker in ("gone", "nobody", "photo_person"):
    assert f"<td>{speaker}</td>" in html
  cached = os.listdir(out_dir / "tracks")              # cached for the next run,
  assert len([f for f in cached if f.endswith(".csv")]) == 4   # each with its
  assert len([f for f in cached if f.endswith(".provenance.json")]) == 4  # record
  # the run was trained on synthetic faces: said in the report and its record
  origin = json.loads((out_dir / "provenance.json").read_text())
  assert [r["run"] for r in origin["runs"]] == [os.path.abspath(trained_run[0])]
  assert origin["runs"][0]["trained_on_synthetic"] and origin["warning"]
  assert "not meaningful" in html and "Where these AU values come from" in html

  # again: every medium's track is in the cache, so no model is loaded
  def no_detector(*args, **kwargs):
    raise AssertionError("a cached track was predicted again")
  monkeypatch.setattr(tracks, "Detector", no_detector)
  speakers_csv = (out_dir / "speakers.csv").read_bytes()
  rc = analyze_cli.main(["--manifest", str(path), "--out", str(out_dir),
                         "--workdir", trained_run[0], "--every", "6",
                         "--backend", "dlib", "--permutations", "10"])
  assert rc == 1 and (out_dir / "speakers.csv").read_bytes() == speakers_csv
  origin = json.loads((out_dir / "provenance.json").read_text())
  assert [r["run"] for r in origin["runs"]] == [os.path.abspath(trained_run[0])]


def test_mixed_models_find_the_planted_aus(tmp_path):
  manifest, tracks = st.study(3)
  videos = job.video_table(manifest, tracks)
  table = stats.mixed_models(videos, "rate", ["task"]).set_index("feature")
  assert table.loc[["AU06_rate", "AU12_rate"], "q"].max() < 0.05
  others = table.drop(index=["AU06_rate", "AU12_rate"])
  assert (others["q"].dropna() >= 0.05).mean() >= 0.9


def test_parquet_tracks_give_the_analysis_of_csv_tracks_and_a_bad_one_is_named(
    tmp_path, capsys):
  manifest, made = st.study(1, speakers=6)
  st.write(tmp_path, manifest, made)
  as_parquet = manifest.copy()
  for name in made:   # the values a CSV reader gets, as predict --format parquet
    pd.read_csv(tmp_path / name).to_parquet(tmp_path / f"{name}.parquet")
  as_parquet["video"] = [f"{v}.parquet" for v in manifest["video"]]
  (tmp_path / f"{manifest['video'][0]}.parquet").write_bytes(b"PAR1 cut short")
  path = tmp_path / "parquet_manifest.csv"
  as_parquet.to_csv(path, index=False)
  kw = dict(n_permutations=20, n_boot=100, seed=1)
  pq_out = job.run_analysis(str(path), str(tmp_path / "pq"), **kw)
  bad = str(tmp_path / f"{manifest['video'][0]}.parquet")
  assert len(pq_out["errors"]) == 1 and pq_out["errors"][0].startswith(
      f"{bad}: cannot read it as an AU track")
  err = capsys.readouterr().err   # the features' progress, the bad one counted
  assert f"error: {bad}: cannot read it" in err and "video features" in err
  assert f"{len(manifest)}/{len(manifest)}" in err
  # with the bad one's video left out of both, the figures are the same
  manifest = manifest.iloc[1:]
  csv_manifest = tmp_path / "csv_manifest.csv"
  manifest.to_csv(csv_manifest, index=False)
  csv_out = job.run_analysis(str(csv_manifest), str(tmp_path / "csv"), **kw)
  pd.testing.assert_frame_equal(pq_out["stats"], csv_out["stats"])
  assert pq_out["classifier"].balanced_accuracy == csv_out["classifier"].balanced_accuracy
