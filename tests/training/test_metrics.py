"""Metrics against scikit-learn, with unknown labels excluded."""

import numpy as np
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
