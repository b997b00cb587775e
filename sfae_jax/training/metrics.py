"""AU metrics: per-AU F1 and accuracy of detection, and ICC(3,1), Pearson
correlation and mean absolute error of intensity, unknown labels excluded.

Computed on the host in numpy from every frame's probability (the F1 of a dataset
is not a mean of per-batch F1s); `sfae_jax.evaluate.predict_split` gathers them
from every host and orders them by example id. `TrainAverages` averages the train
step's scalars between two log lines.
"""

from typing import Sequence

import jax
import numpy as np


def au_metrics(probs, labels, threshold: float = 0.5) -> dict:
  """Per-AU F1 (positive class) and accuracy, and their means over AUs.

  probs: `[N, A]` in [0, 1]; labels: `[N, A]` in {-1, 0, 1}, -1 excluded.
  An AU with no known label gets NaN and is left out of the means (counted in
  `n_known`). An AU whose known labels and predictions are all negative has F1 0
  (scikit-learn's `zero_division=0`)."""
  probs = np.asarray(probs, np.float64)
  labels = np.asarray(labels)
  if probs.shape != labels.shape or probs.ndim != 2:
    raise ValueError(f"probs {probs.shape} and labels {labels.shape} must both be "
                     "[N, A].")
  known = labels >= 0
  pred = probs >= threshold
  pos = labels == 1
  tp = (pred & pos & known).sum(0)
  fp = (pred & ~pos & known).sum(0)
  fn = (~pred & pos & known).sum(0)
  n = known.sum(0)
  correct = ((pred == pos) & known).sum(0)
  denom = 2 * tp + fp + fn
  with np.errstate(invalid="ignore", divide="ignore"):
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    acc = correct / n
  f1 = np.where(n > 0, f1, np.nan)
  return {
      "f1": f1, "accuracy": acc, "n_known": n, "n_positive": (pos & known).sum(0),
      "mean_f1": float(np.nanmean(f1)) if np.any(n > 0) else float("nan"),
      "mean_accuracy": float(np.nanmean(acc)) if np.any(n > 0) else float("nan"),
  }


def average_folds(results: Sequence[dict]) -> dict:
  """Papers' 3-fold figure: per-AU F1 and accuracy averaged over folds, then the
  mean over AUs of those averages."""
  f1 = np.nanmean(np.stack([np.asarray(r["f1"], float) for r in results]), 0)
  acc = np.nanmean(np.stack([np.asarray(r["accuracy"], float) for r in results]), 0)
  return {"f1": f1, "accuracy": acc,
          "n_known": np.sum([np.asarray(r["n_known"]) for r in results], 0),
          "n_positive": np.sum([np.asarray(r["n_positive"]) for r in results], 0),
          "mean_f1": float(np.nanmean(f1)), "mean_accuracy": float(np.nanmean(acc))}


def markdown_table(result: dict, au_ids: Sequence[int], title: str = "") -> str:
  """Per-AU F1 / accuracy (percent) as a markdown table, the mean as last row."""
  lines = [f"### {title}", ""] if title else []
  lines += ["| AU | F1 % | accuracy % | known | positive |",
            "|---|---:|---:|---:|---:|"]
  for i, au in enumerate(au_ids):
    lines.append(f"| AU{au:02d} | {100 * result['f1'][i]:.1f} | "
                 f"{100 * result['accuracy'][i]:.1f} | {int(result['n_known'][i])} | "
                 f"{int(result['n_positive'][i])} |")
  lines.append(f"| **mean** | **{100 * result['mean_f1']:.1f}** | "
               f"**{100 * result['mean_accuracy']:.1f}** | | |")
  return "\n".join(lines)


def icc3_1(ratings) -> float:
  """ICC(3,1) of `[n, k]` ratings (n targets, k raters): Shrout & Fleiss's
  two-way mixed, consistency, single-rater intraclass correlation,
  (MS_rows - MS_error) / (MS_rows + (k - 1) MS_error), from the two-way ANOVA
  without replication. NaN for fewer than 2 targets or no variance at all.

  Hand-written (six lines of ANOVA) rather than a dependency: the statistics
  packages that have it (pingouin) pull in far more than the formula; the tests
  check it against a statsmodels ANOVA and Shrout & Fleiss's worked example."""
  y = np.asarray(ratings, np.float64)
  n, k = y.shape
  if n < 2 or k < 2:
    return float("nan")
  grand = y.mean()
  ss_rows = k * ((y.mean(1) - grand) ** 2).sum()
  ss_cols = n * ((y.mean(0) - grand) ** 2).sum()
  ss_error = ((y - grand) ** 2).sum() - ss_rows - ss_cols
  ms_rows = ss_rows / (n - 1)
  ms_error = ss_error / ((n - 1) * (k - 1))
  denom = ms_rows + (k - 1) * ms_error
  return float((ms_rows - ms_error) / denom) if denom > 0 else float("nan")


def intensity_metrics(pred, labels) -> dict:
  """Per AU: ICC(3,1) and Pearson correlation between predicted and coded
  intensity, mean absolute error, over the coded frames (labels >= 0); and the
  means over AUs (NaN AUs left out).

  pred: `[N, K]` floats in [0, 5]; labels: `[N, K]` ints 0-5, -1 not coded. An AU
  whose predictions or codes do not vary has PCC NaN (undefined)."""
  pred = np.asarray(pred, np.float64)
  labels = np.asarray(labels)
  if pred.shape != labels.shape or pred.ndim != 2:
    raise ValueError(f"pred {pred.shape} and labels {labels.shape} must both be "
                     "[N, K].")
  icc, pcc, mae, n = [], [], [], []
  for j in range(pred.shape[1]):
    coded = labels[:, j] >= 0
    p, y = pred[coded, j], labels[coded, j].astype(np.float64)
    n.append(int(coded.sum()))
    icc.append(icc3_1(np.stack([p, y], 1)) if len(p) else float("nan"))
    varies = len(p) > 1 and p.std() > 0 and y.std() > 0
    pcc.append(float(np.corrcoef(p, y)[0, 1]) if varies else float("nan"))
    mae.append(float(np.abs(p - y).mean()) if len(p) else float("nan"))
  icc, pcc, mae = (np.array(v) for v in (icc, pcc, mae))

  def mean(v):
    return float(np.nanmean(v)) if np.any(np.isfinite(v)) else float("nan")
  return {"icc": icc, "pcc": pcc, "mae": mae, "n_coded": np.array(n),
          "mean_icc": mean(icc), "mean_pcc": mean(pcc), "mean_mae": mean(mae)}


def intensity_table(result: dict, au_ids: Sequence[int], title: str = "") -> str:
  """Per-AU ICC(3,1) / PCC / MAE as a markdown table, the mean as last row."""
  def f(v):
    return "n/a" if not np.isfinite(v) else f"{v:.3f}"
  lines = [f"### {title}", ""] if title else []
  lines += ["| AU | ICC(3,1) | PCC | MAE | coded |", "|---|---:|---:|---:|---:|"]
  for i, au in enumerate(au_ids):
    lines.append(f"| AU{au:02d} | {f(result['icc'][i])} | {f(result['pcc'][i])} | "
                 f"{f(result['mae'][i])} | {int(result['n_coded'][i])} |")
  lines.append(f"| **mean** | **{f(result['mean_icc'])}** | "
               f"**{f(result['mean_pcc'])}** | **{f(result['mean_mae'])}** | |")
  return "\n".join(lines)


class TrainAverages:
  """The train step's scalars (whichever loss terms the model has) averaged over
  the steps since the last `compute`; `LAST` ones are the latest value. Sums stay
  on the device until `compute`, so adding a step never waits for it."""
  LAST = ("param_norm", "learning_rate")

  def __init__(self):
    self._sums, self._last, self._steps = None, {}, 0

  def add(self, values: dict) -> None:
    mean = {k: v for k, v in values.items() if k not in self.LAST}
    self._last = {k: v for k, v in values.items() if k in self.LAST}
    self._sums = mean if self._sums is None else jax.tree.map(
        lambda a, b: a + b, self._sums, mean)
    self._steps += 1

  def compute(self) -> dict[str, float]:
    """The averages (and last values) as floats; starts a new interval."""
    if not self._steps:
      raise ValueError("TrainAverages.compute: no step was added.")
    out = {k: float(v) / self._steps for k, v in self._sums.items()}
    out.update({k: float(v) for k, v in self._last.items()})
    self._sums, self._last, self._steps = None, {}, 0
    return out
