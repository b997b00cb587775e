"""Predicting the first language from AU features, speaker-grouped.

Rows are videos; folds are `StratifiedGroupKFold` by speaker, so no speaker is in
both the training and the test side of a fold. A speaker's prediction is the mean
of their videos' class probabilities, and every score is over speakers (balanced
accuracy, confusion matrix): a speaker with many videos counts once. The model is a
standardised, L2-regularised logistic regression (few speakers, many features),
each video weighted 1 / (the speaker's videos). A permutation test shuffles the
language labels across speakers (a speaker's videos keep one label) and refits.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, confusion_matrix
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@dataclasses.dataclass
class Result:
  balanced_accuracy: float
  chance: float
  p_value: float
  confusion: pd.DataFrame         # speakers: rows true, columns predicted
  importances: pd.Series          # mean |standardised coefficient| over folds
  speaker_predictions: pd.DataFrame
  n_splits: int
  n_permutations: int
  null: np.ndarray


def speaker_folds(labels, groups, n_splits: int, seed: int):
  """(train_idx, test_idx) pairs; a group (speaker) never appears on both sides."""
  cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
  return list(cv.split(np.zeros(len(labels)), labels, groups))


def _fit_predict(x, y, groups, weights, folds, classes):
  proba = np.zeros((len(y), len(classes)))
  coefs = []
  for train, test in folds:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    model.fit(x[train], y[train], logisticregression__sample_weight=weights[train])
    fitted = list(model.classes_)
    p = model.predict_proba(x[test])
    for k, c in enumerate(fitted):
      proba[test, classes.index(c)] = p[:, k]
    coefs.append(np.abs(model[-1].coef_).mean(axis=0))
  per_speaker = pd.DataFrame(proba, columns=classes).groupby(groups).mean()
  return per_speaker, np.mean(coefs, axis=0)


def _score(per_speaker, speaker_lang):
  pred = per_speaker.idxmax(axis=1)
  return balanced_accuracy_score(speaker_lang.loc[pred.index], pred), pred


def classify(videos: pd.DataFrame, feature_cols, n_splits: int = 5,
             n_permutations: int = 200, seed: int = 0) -> Result:
  data = videos.dropna(subset=list(feature_cols)).reset_index(drop=True)
  speaker_lang = data.groupby("speaker")["first_language"].first()
  counts = speaker_lang.value_counts()
  n_splits = int(min(n_splits, counts.min()))
  if n_splits < 2 or len(counts) < 2:
    raise ValueError("the classifier needs at least 2 first languages with 2 "
                     f"speakers each; have {counts.to_dict()}")
  x = data[list(feature_cols)].to_numpy(float)
  groups = data["speaker"].to_numpy()
  weights = 1.0 / data.groupby("speaker")["speaker"].transform("count").to_numpy()
  classes = sorted(counts.index)
  y = data["first_language"].to_numpy()
  folds = speaker_folds(y, groups, n_splits, seed)
  per_speaker, imp = _fit_predict(x, y, groups, weights, folds, classes)
  score, pred = _score(per_speaker, speaker_lang)

  rng = np.random.default_rng(seed)
  null = np.empty(n_permutations)
  speakers = speaker_lang.index.to_numpy()
  for i in range(n_permutations):
    shuffled = pd.Series(rng.permutation(speaker_lang.to_numpy()), index=speakers)
    y_perm = shuffled.loc[groups].to_numpy()
    folds_p = speaker_folds(y_perm, groups, n_splits, seed + 1 + i)
    per_p, _ = _fit_predict(x, y_perm, groups, weights, folds_p, classes)
    null[i] = _score(per_p, shuffled)[0]
  p = (1 + np.sum(null >= score)) / (1 + n_permutations)
  cm = confusion_matrix(speaker_lang.loc[pred.index], pred, labels=classes)
  table = pd.DataFrame({"speaker": pred.index,
                        "first_language": speaker_lang.loc[pred.index].to_numpy(),
                        "predicted": pred.to_numpy()})
  return Result(
      balanced_accuracy=float(score), chance=1.0 / len(classes), p_value=float(p),
      confusion=pd.DataFrame(cm, index=classes, columns=classes),
      importances=pd.Series(imp, index=list(feature_cols)).sort_values(
          ascending=False),
      speaker_predictions=table, n_splits=n_splits,
      n_permutations=n_permutations, null=null)
