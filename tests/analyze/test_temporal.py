"""The temporal first-language model: its input, its splits, and planted
temporal-only differences that the average features cannot see."""

import itertools

import jax
import numpy as np
import pandas as pd
import pytest

from sfae_jax.analyze import features, stats, temporal
from sfae_jax.analyze import job
from sfae_jax.analyze import planted as st


def _disjoint_and_complete(splits, speakers):
  tested = []
  for split in splits:
    parts = [set(split[k]) for k in ("fit", "val", "test")]
    for a, b in itertools.combinations(parts, 2):
      assert not a & b, split
    assert set().union(*parts) == set(speakers)
    tested += list(split["test"])
  assert sorted(tested) == sorted(speakers)  # each speaker tested exactly once


@pytest.mark.parametrize("seed", range(5))
def test_a_speaker_is_never_on_two_sides_of_a_split(seed):
  """The temporal model's splits (for the real labels and for permuted ones)
  and the average-feature classifier's folds."""
  manifest, _ = st.study(seed, speakers=7, videos=3)
  lang = manifest.drop_duplicates("speaker").set_index("speaker")["first_language"]
  rng = np.random.default_rng(seed)
  for labels in (lang, pd.Series(rng.permutation(lang.to_numpy()), lang.index)):
    splits = temporal.speaker_splits(labels, 4, 0.25, seed)
    _disjoint_and_complete(splits, lang.index)
    for split in splits:
      for part in ("fit", "val", "test"):  # stratified: both languages everywhere
        assert labels[split[part]].nunique() == 2, (part, split)
  from sfae_jax.analyze import classify  # pylint: disable=g-import-not-at-top
  for train, test in classify.speaker_folds(
      manifest["first_language"].to_numpy(), manifest["speaker"].to_numpy(), 4,
      seed):
    assert not (set(manifest["speaker"].iloc[train])
                & set(manifest["speaker"].iloc[test]))


def test_sequence_averages_into_bins_and_masks_frames_without_the_main_face():
  aus = [f"AU{a:02d}" for a in st.AUS]
  n = 20
  track = pd.DataFrame({"frame": np.arange(n), "timestamp": np.arange(n) / 20.0,
                        "face_id": 0, "success": 1})
  for k, a in enumerate(aus):
    track[a] = (np.arange(n) + k) / 100.0
    track[a + "_c"] = 0
  track.loc[[4, 5, 7, 9], "success"] = 0
  track.loc[[4, 5, 7, 9], aus] = np.nan
  track.loc[6, "face_id"] = 1  # another face on frame 6: not the speaker
  assert temporal.native_fps(track) == pytest.approx(20.0)
  x, mask, names = temporal.video_sequence(track, fps=10.0)  # bins of 2 frames
  assert names == aus
  # bin 2 (frames 4, 5) and bin 3 (6: another face, 7: none) have no frame of
  # the speaker; bin 4 has one of its two (frame 8): half is enough
  assert len(x) == 10 and mask.tolist() == [i not in (2, 3) for i in range(10)]
  assert x[1, 0] == pytest.approx((0.02 + 0.03) / 2)   # frames 2 and 3
  assert x[4, 3] == pytest.approx(0.08 + 0.03)          # frame 8 alone
  np.testing.assert_array_equal(x[2], 0.0)  # masked bins are zero, not filled
  assert features.main_face(track) == 0


def test_the_model_rate_is_the_slowest_track_at_most_max_fps():
  tracks = {"a": pd.DataFrame({"frame": range(5), "timestamp": np.arange(5) / 30}),
            "b": pd.DataFrame({"frame": range(5), "timestamp": np.arange(5) / 25})}
  assert temporal.model_fps(tracks, ["a", "b"], 15.0) == 15.0
  assert temporal.model_fps(tracks, ["a", "b"], 60.0) == pytest.approx(25.0)


def test_lagged_products_by_hand():
  """Two AUs: AU b repeats AU a one bin later, so C_ab(1) is their correlation
  and C_ba(1) is not; lag 0 is each one's variance on its diagonal."""
  a = np.array([2, -1, 0, -1, 0, 0], np.float32)  # mean 0, variance 1
  b = np.roll(a, 1)                                 # [0, 2, -1, 0, -1, 0]
  seqs = temporal.Sequences(x=np.stack([a, b], -1)[None],
                            mask=np.ones((1, 6), bool), videos=["v"],
                            speakers=np.array(["s"]), au_names=["AU01", "AU02"],
                            fps=1.0, window=6, left_out=[])
  c = temporal.lagged_products(seqs, np.array([0, 1]))[0, 0]  # [A, A, L]
  assert c[0, 0, 0] == pytest.approx(1.0)       # mean a(t)^2
  assert c[0, 1, 1] == pytest.approx(6 / 5)     # a(t) b(t + 1) over 5 pairs
  assert c[1, 0, 1] == pytest.approx(1 / 5)     # b(t) a(t + 1): only (-1)(-1)
  seqs.mask[0, 5] = False  # bin 5 unanalysed: variances 6/5, 4 pairs at lag 1
  c = temporal.lagged_products(seqs, np.array([0, 1]))[0, 0]
  assert c[0, 1, 1] == pytest.approx(6 / 4 / (6 / 5))
  assert c[1, 0, 1] == pytest.approx(1 / 4 / (6 / 5))


def test_planted_order_is_invisible_to_averages_and_found_by_the_temporal_model(
    tmp_path):
  """Temporal-only planted difference (AU12 before AU10 in A, after it in B):
  per-speaker rates and durations do not differ by language, the average-feature
  classifier is at chance, the temporal model separates the speakers; and the
  report's section renders with both models."""
  manifest, tracks = st.temporal_study(0, planted=True)
  path = st.write(tmp_path, manifest, tracks)
  out = job.run_analysis(path, str(tmp_path / "report"), n_permutations=19,
                             n_boot=100, temporal_model=True,
                             temporal_permutations=1)
  rate = out["stats"][out["stats"]["kind"] == "rate"].set_index("au")
  assert (rate.loc[["AU10", "AU12"], "p"] > 0.05).all(), rate
  assert out["classifier"].p_value > 0.05
  deep = out["temporal"]
  # 20 of 24 speakers right by chance: p = 0.0008
  assert deep.balanced_accuracy >= 0.8, deep.speaker_predictions
  assert len(deep.null) == 1 and deep.n_splits == 4
  # p counts the observed labels among the permutations: never below 1 / 2 here
  assert deep.p_value == (1 + int(deep.null[0] >= deep.balanced_accuracy)) / 2
  speakers = manifest["speaker"].unique()
  _disjoint_and_complete(deep.splits, speakers)
  html = (tmp_path / "report" / "report.html").read_text()
  assert "Temporal model: first language from AU dynamics" in html
  assert "average features + logistic regression" in html
  row = html[html.index("temporal model (AU time courses)"):]
  assert row.split("</tr>")[0].count("<td>") == 5  # BA, chance, p, perms, folds
  assert f"<td>{deep.balanced_accuracy:.4g}</td>" in row.split("</tr>")[0]
  assert f"<td>{out['classifier'].p_value:.4g}</td>" in html
  assert deep.settings in html and "python -m sfae_jax.analyze.power" in html
  timing = html[html.index("Temporal: order and lag between AUs"):]
  assert timing.index("Lead-lag, pair by pair") < timing.index(
      "Temporal model: first language")  # the pair tests beside the model
  assert (tmp_path / "report" / "temporal_courses.png").stat().st_size > 1000
  table = pd.read_csv(tmp_path / "report" / "temporal_speakers.csv")
  assert sorted(table["speaker"]) == sorted(speakers)
  # what it learned, in the figure's data: around the moments it found most
  # telling, AU10 follows AU12 in A's speakers and precedes it in B's
  au = {n: i for i, n in enumerate(deep.au_names)}
  assert _lag(deep.courses["A"], au["AU12"], au["AU10"]) > 0
  assert _lag(deep.courses["B"], au["AU12"], au["AU10"]) < 0


def _lag(course, lead, follow, most=10):
  """The shift L (frames) that best lines `follow` up after `lead`:
  argmax over L of sum_t lead(t) * follow(t + L), both centred."""
  a = course[:, lead] - course[:, lead].mean()
  b = course[:, follow] - course[:, follow].mean()
  n = len(a)
  score = {lag: float(np.dot(a[max(0, -lag):n - max(0, lag)],
                             b[max(0, lag):n - max(0, -lag)]))
           for lag in range(-most, most + 1)}
  return max(score, key=score.get)


def test_too_few_speakers_is_a_plain_error():
  manifest, tracks = st.temporal_study(0, speakers=2)
  with pytest.raises(ValueError, match="at least 2 first languages with 3"):
    temporal.predict_language(manifest, tracks, n_permutations=0)


def test_videos_without_an_analysable_window_are_named_not_guessed():
  manifest, tracks = st.temporal_study(1, speakers=3, seconds=12.0)
  faceless = manifest["video"].iloc[0]
  tracks[faceless]["success"] = 0
  sparse = manifest["video"].iloc[1]  # a face on 1 frame in 3: no window qualifies
  tracks[sparse].loc[tracks[sparse]["frame"] % 3 != 0, "success"] = 0
  untimed = manifest["video"].iloc[2]
  tracks[untimed].loc[5, "timestamp"] = np.nan
  seqs = temporal.sequences(manifest, tracks, temporal.TemporalConfig())
  assert {faceless, sparse, untimed}.isdisjoint(seqs.videos)
  assert len(seqs.videos) == len(manifest) - 3
  assert [r.split(":")[0] for r in seqs.left_out] == [faceless, sparse, untimed]
  assert "timestamps are missing" in seqs.left_out[2]
  assert seqs.valid.any(axis=1).all()  # every video kept has a window


def _languages(manifest):
  return manifest.drop_duplicates("speaker").set_index("speaker")["first_language"]


def test_pair_timing_study_differs_in_order_only():
  """A 0.25 s onset order of AU12 and AU10: their rates do not differ by
  language, their lead-lag asymmetry does, with opposite signs (AU12 leads in
  A); on the null, each speaker's order is a coin flip whatever the language."""
  for planted in (True, False):
    manifest, tracks = st.pair_timing_study(7, 0.25, 0.33, planted, speakers=6,
                                            seconds=(20.0, 30.0))
    speakers = features.speaker_table(job.video_table(manifest, tracks))
    lead = speakers.set_index("first_language")["lead_10x12_250ms"]
    rate = stats.group_tests(speakers, "rate", n_boot=0).set_index("au")
    assert (rate.loc[["AU10", "AU12"], "p"] > 0.05).all(), rate
    if planted:
      assert (lead["A"] < 0).all() and (lead["B"] > 0).all(), lead
    else:
      assert (lead < 0).any() and (lead > 0).any()
      assert stats.group_tests(speakers, features.LEAD, n_boot=0)["q"].min() > 0.05


@pytest.mark.parametrize("lag_s, episode_s", [(0.1, 0.2), (0.5, 1.0)])
def test_the_temporal_model_finds_short_and_long_onset_orders(lag_s, episode_s):
  """At both ends of the power table's grid, on a data set of its kind (a seed
  outside the table's): held-out speakers are told apart on planted data and
  not on its null."""
  accuracy = {}
  for planted in (True, False):
    manifest, tracks = st.pair_timing_study(3, lag_s, episode_s, planted)
    deep = temporal.predict_language(manifest, tracks, n_permutations=0, seed=3)
    _disjoint_and_complete(deep.splits, manifest["speaker"].unique())
    accuracy[planted] = deep.balanced_accuracy
  assert accuracy[True] >= 0.9 and accuracy[False] <= 0.7, accuracy


def test_order_components_see_order_only():
  """An order component's value flips sign when every pair's order is
  reversed (C_abl -> C_bal), and is 0 for co-movement that has no order
  (C symmetric in a, b); a general component sees both."""
  rng = np.random.default_rng(0)
  c = rng.normal(size=(2, 3, 4, 4, 5)).astype(np.float32)
  reversed_ = c.transpose(0, 1, 3, 2, 4)
  model = temporal.LaggedBilinear(num_classes=2, rank=1, order_rank=1)
  params = model.init(jax.random.key(0), c)["params"]
  kernel = params["Dense_0"]["kernel"]

  def components(x):  # the layer before the linear one
    logits = model.apply({"params": params}, x) - params["Dense_0"]["bias"]
    return np.linalg.lstsq(np.asarray(kernel).T, np.asarray(logits).reshape(-1, 2).T,
                           rcond=None)[0].T.reshape(2, 3, 2)

  z, z_rev = components(c), components(reversed_)
  np.testing.assert_allclose(z_rev[..., 1], -z[..., 1], rtol=1e-4, atol=1e-5)
  assert not np.allclose(z_rev[..., 0], z[..., 0], atol=1e-3)
  np.testing.assert_allclose(components(c + reversed_)[..., 1], 0.0, atol=1e-5)
