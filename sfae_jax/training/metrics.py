"""AU detection metrics: per-AU F1 and accuracy with unknown labels excluded.

Computed on the host in numpy from every frame's probability (the F1 of a dataset
is not a mean of per-batch F1s); `sfae_jax.evaluate.predict_split` gathers them
from every host and orders them by example id, which a clu collecting metric
cannot, so there is none here.
"""

from typing import Sequence

from clu import metrics as clu_metrics
import flax
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


@flax.struct.dataclass
class TrainMetrics(clu_metrics.Collection):
  """Training losses averaged over the steps between two log lines."""
  loss: clu_metrics.Average.from_output("loss")
  ce: clu_metrics.Average.from_output("ce")
  dice: clu_metrics.Average.from_output("dice")
  landmark: clu_metrics.Average.from_output("landmark")
  landmark_error: clu_metrics.Average.from_output("landmark_error")
  refine: clu_metrics.Average.from_output("refine")
  grad_norm: clu_metrics.Average.from_output("grad_norm")
  param_norm: clu_metrics.LastValue.from_output("param_norm")
  learning_rate: clu_metrics.LastValue.from_output("learning_rate")
