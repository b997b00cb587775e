"""Statistics and per-video features against independent or hand computations."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sfae_jax.analyze import features, stats
from sfae_jax.analyze import job
from sfae_jax.analyze import planted as st


def test_bh_fdr_matches_statsmodels_and_keeps_nan():
  from statsmodels.stats.multitest import multipletests  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  p = rng.random(40) ** 3
  p[[3, 17]] = np.nan
  q = stats.bh_fdr(p)
  ok = ~np.isnan(p)
  np.testing.assert_allclose(q[ok], multipletests(p[ok], method="fdr_bh")[1],
                             rtol=1e-12)
  assert np.isnan(q[[3, 17]]).all()


def test_three_languages_take_the_kruskal_wallis_path():
  rng = np.random.default_rng(1)
  speakers = pd.DataFrame({
      "speaker": [f"s{i}" for i in range(15)],
      "first_language": ["A"] * 5 + ["B"] * 5 + ["C"] * 5,
      "AU12_rate": np.concatenate([rng.normal(m, 0.05, 5) for m in (.2, .3, .6)])})
  row = stats.group_tests(speakers, "rate", min_per_group=3, n_boot=50).iloc[0]
  groups = [speakers.loc[speakers["first_language"] == g, "AU12_rate"]
            for g in "ABC"]
  h, p = sps.kruskal(*groups)
  assert row["test"] == "kruskal-wallis" and row["effect_size"] == "epsilon^2"
  assert row["statistic"] == pytest.approx(h) and row["p"] == pytest.approx(p)
  assert row["effect"] == pytest.approx(h / (15 - 1))
  assert {"n_A", "n_B", "n_C"} <= set(row.index)


def test_episodes_onsets_and_co_occurrence_by_hand():
  """10 frames at 10 fps; AU12 on in runs of 2, 3 and 1 frames; AU06 on at frames
  1-4; frame 7 has no face (it splits nothing: it is not analysed)."""
  au12 = [1, 1, 0, 1, 1, 1, 0, 0, 1, 0]
  au06 = [0, 1, 1, 1, 1, 0, 0, 0, 0, 0]
  track = pd.DataFrame({"frame": range(10), "timestamp": np.arange(10) / 10,
                        "face_id": 0, "success": 1,
                        "AU06": np.array(au06, float), "AU12": np.array(au12, float),
                        "AU06_c": au06, "AU12_c": au12})
  feats, counts = features.video_features(track)
  assert counts == {"frames": 10, "frames_no_face": 0, "frames_decode_error": 0,
                    "frames_analysed": 10,
                    "faces": 1, "frames_other_faces": 0}
  assert feats["AU12_rate"] == pytest.approx(0.6)
  # episodes 2, 3, 1 frames -> mean 2 frames = 0.2 s; 3 onsets in 1.0 s
  assert feats["AU12_duration"] == pytest.approx(0.2)
  assert feats["AU12_onsets"] == pytest.approx(3.0)
  assert feats["AU06_duration"] == pytest.approx(0.4)
  assert feats["AU06_onsets"] == pytest.approx(1.0)
  # both on at frames 1, 3, 4
  assert feats["co_06x12"] == pytest.approx(0.3)


def test_episodes_do_not_run_across_skipped_frames():
  """With --every 2 the frame numbers step by 2; a missing step (a frame lost to
  a failed detection) ends an episode."""
  on = np.array([1, 1, 1, 1, 0, 1], bool)
  frames = np.array([0, 2, 4, 8, 10, 12])
  assert features._episodes(on, frames) == [3, 1, 1]  # pylint: disable=protected-access


def test_vectorised_rank_biserial_equals_the_mann_whitney_effect():
  rng = np.random.default_rng(3)
  a = np.round(rng.random((20, 9)), 1)      # rounded: ties happen
  b = np.round(rng.random((20, 11)) + 0.2, 1)
  want = [stats._effect([x, y]) for x, y in zip(a, b)]  # pylint: disable=protected-access
  np.testing.assert_allclose(stats.rank_biserial(a, b), want, atol=1e-12)
  same = np.full((1, 4), 0.5)
  assert stats.rank_biserial(same, same)[0] == 0.0


def test_lead_lag_by_hand_and_its_sign_flips_with_the_order():
  """x = [1, 0, 0, 0], y = [0, 1, 0, 0], lag 1; means 1/4 removed:
  x' = [.75, -.25, -.25, -.25], y' = [-.25, .75, -.25, -.25].
  mean x'(t) y'(t+1) = (.5625 + .0625 + .0625) / 3 = .229167,
  mean y'(t) x'(t+1) = (.0625 - .1875 + .0625) / 3 = -.020833: 0.25."""
  x, y, index = np.array([1., 0, 0, 0]), np.array([0., 1, 0, 0]), np.arange(4)
  assert features.lead_lag(x, y, index, 1) == pytest.approx(0.25)
  assert features.lead_lag(y, x, index, 1) == pytest.approx(-0.25)
  # together, or at the wrong lag: no asymmetry
  assert features.lead_lag(x, x, index, 1) == pytest.approx(0.0)
  # a frame not analysed: only pairs of analysed frames `lag` apart count
  # (frames 0, 1, 3 of 4: the pair (0, 1) alone; x' = [2/3, -1/3, -1/3],
  # y' = [-1/3, 2/3, -1/3]: 2/3 * 2/3 - (-1/3)(-1/3) = 1/3)
  assert features.lead_lag(np.array([1., 0, 0]), np.array([0., 1, 0]),
                           np.array([0, 1, 3]), 1) == pytest.approx(1 / 3)


def test_lead_lag_features_find_an_onset_order_difference_only_there():
  """12 + 12 speakers, 30 fps: AU12 and AU10 fire in episodes, AU12 first by
  0.25 s in A, AU10 first in B; rates and durations equal in distribution. The
  pair's 250 ms asymmetry differs (q < 0.05, A positive: AU10 before AU12 in
  the column's order means negative), and no other pair x lag does; on the null
  (each speaker's order a coin flip) nothing does."""
  for planted in (True, False):
    manifest, tracks = st.temporal_study(3, planted=planted, fps=30.0,
                                         lag_s=0.25, seconds=30.0)
    speakers = features.speaker_table(job.video_table(manifest, tracks))
    table = stats.group_tests(speakers, features.LEAD, n_boot=200)
    assert len(table) == 3 * 66  # the family: 66 pairs x 3 lags
    found = set(table.loc[table["q"] < 0.05, "feature"])
    if planted:
      assert "lead_10x12_250ms" in found, table.nsmallest(5, "p")
      assert all(f.startswith("lead_10x12_") for f in found), found
      row = table.set_index("feature").loc["lead_10x12_250ms"]
      assert row["median_A"] < 0 < row["median_B"]  # A: AU12 leads AU10
    else:
      assert not found, table.nsmallest(5, "p")
