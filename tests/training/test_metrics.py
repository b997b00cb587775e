"""Metrics against scikit-learn, statsmodels, scipy and a published example, with
unknown labels excluded."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from sfae_jax.training import metrics


def test_per_au_f1_and_accuracy_equal_scikit_learn_with_masked_labels():
  rng = np.random.default_rng(0)
  probs = rng.random((500, 12))
  labels = (rng.random((500, 12)) < rng.uniform(0.1, 0.6, 12)).astype(np.int8)
  labels[rng.random((500, 12)) < 0.1] = -1
  r = metrics.au_metrics(probs, labels, threshold=0.5)
  for i in range(12):
    k = labels[:, i] >= 0
    y, yhat = labels[k, i], (probs[k, i] >= 0.5).astype(int)
    assert np.isclose(r["f1"][i], f1_score(y, yhat))
    assert np.isclose(r["accuracy"][i], accuracy_score(y, yhat))
    assert r["n_known"][i] == k.sum()
  assert np.isclose(r["mean_f1"], np.mean(r["f1"]))


def test_threshold_and_all_negative_and_uncoded_aus():
  probs = np.array([[0.7, 0.2, 0.9], [0.4, 0.1, 0.1]])
  labels = np.array([[1, 0, -1], [1, 0, -1]])
  r = metrics.au_metrics(probs, labels, threshold=0.5)
  assert np.isclose(r["f1"][0], 2 / 3)            # tp 1, fn 1
  assert r["f1"][1] == 0.0                        # sklearn's zero_division=0
  assert np.isnan(r["f1"][2]) and r["n_known"][2] == 0
  assert np.isclose(r["mean_f1"], (2 / 3 + 0) / 2)
  r3 = metrics.au_metrics(probs, labels, threshold=0.3)
  assert r3["f1"][0] == 1.0


def test_fold_average_is_per_au_then_mean():
  a = {"f1": np.array([1.0, 0.0]), "accuracy": np.array([1.0, 0.5]),
       "n_known": np.array([3, 3]), "n_positive": np.array([1, 1])}
  b = {"f1": np.array([0.5, 0.5]), "accuracy": np.array([0.5, 0.5]),
       "n_known": np.array([2, 2]), "n_positive": np.array([1, 0])}
  avg = metrics.average_folds([a, b])
  np.testing.assert_allclose(avg["f1"], [0.75, 0.25])
  assert np.isclose(avg["mean_f1"], 0.5) and list(avg["n_known"]) == [5, 5]


# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; their ICC(3,1)
# is 0.71 (0.715 to three places, from their Table 4's mean squares: BMS 11.24,
# EMS 1.02: (11.24 - 1.02) / (11.24 + 3 * 1.02)).
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6],
                          [10, 5, 6, 9], [6, 2, 4, 7]], float)


def test_icc31_is_shrout_and_fleiss_worked_example():
  assert metrics.icc3_1(SHROUT_FLEISS) == pytest.approx(0.715, abs=5e-4)


def test_icc31_matches_a_two_way_anova_by_statsmodels():
  """An independent computation: the mean squares of statsmodels' OLS ANOVA
  (rating ~ C(target) + C(rater)), on random pred-vs-label pairs."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from statsmodels.formula.api import ols  # pylint: disable=g-import-not-at-top
  from statsmodels.stats.anova import anova_lm  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  y = rng.integers(0, 6, 40).astype(float)
  ratings = np.stack([np.clip(y + rng.normal(0.3, 1.0, 40), 0, 5), y], 1)
  long = pd.DataFrame({"value": ratings.ravel(),
                       "target": np.repeat(np.arange(40), 2),
                       "rater": np.tile([0, 1], 40)})
  table = anova_lm(ols("value ~ C(target) + C(rater)", long).fit())
  ms_rows, ms_error = table.loc["C(target)", "mean_sq"], table.loc["Residual",
                                                                   "mean_sq"]
  want = (ms_rows - ms_error) / (ms_rows + ms_error)
  assert metrics.icc3_1(ratings) == pytest.approx(want, rel=1e-9)


def test_intensity_metrics_mask_uncoded_frames_and_match_scipy():
  """Per AU over the coded frames only: PCC = scipy's pearsonr, MAE by hand,
  ICC(3,1) of the (pred, label) pairs; an AU whose codes never vary has PCC
  NaN, left out of the mean."""
  from scipy import stats as sps  # pylint: disable=g-import-not-at-top
  pred = np.array([[0.5, 1.0], [2.0, 1.5], [3.5, 2.0], [4.0, 9.0], [1.0, 0.5]])
  labels = np.array([[0, 1], [2, 1], [3, 1], [-1, -1], [1, 1]])
  r = metrics.intensity_metrics(pred, labels)
  coded = labels[:, 0] >= 0
  assert r["n_coded"].tolist() == [4, 4]
  assert r["pcc"][0] == pytest.approx(sps.pearsonr(pred[coded, 0],
                                                   labels[coded, 0])[0])
  assert r["mae"][0] == pytest.approx((0.5 + 0 + 0.5 + 0) / 4)
  assert r["mae"][1] == pytest.approx((0 + 0.5 + 1.0 + 0.5) / 4)   # 9.0 masked
  assert r["icc"][0] == pytest.approx(metrics.icc3_1(
      np.stack([pred[coded, 0], labels[coded, 0]], 1)))
  assert np.isnan(r["pcc"][1]) and r["mean_pcc"] == pytest.approx(r["pcc"][0])
  # A perfect estimate: ICC 1, PCC 1, MAE 0.
  perfect = metrics.intensity_metrics(labels[coded].astype(float), labels[coded])
  assert perfect["icc"][0] == pytest.approx(1.0) and perfect["mae"][0] == 0.0
  table = metrics.intensity_table(r, [6, 12], "t")
  assert "| AU06 | " in table and "| AU12 | " in table and "n/a" in table
