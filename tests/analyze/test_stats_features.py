"""Statistics and per-video features against independent or hand computations."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sfae_jax.analyze import features, stats


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
