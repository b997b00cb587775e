"""The report's figures: PNGs drawn with matplotlib (Agg), each saved beside
report.html; every function returns the file name for `report.img`."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sfae_jax.analyze import features  # noqa: E402


def heatmap(speakers: pd.DataFrame, path: str) -> str:
  cols = features.feature_names(speakers.columns, "rate")
  table = speakers.groupby("first_language")[cols].mean()
  fig, ax = plt.subplots(figsize=(1 + 0.6 * len(cols), 1 + 0.5 * len(table)))
  im = ax.imshow(table.to_numpy(float), cmap="viridis", aspect="auto", vmin=0,
                 vmax=max(1e-6, float(np.nanmax(table.to_numpy(float)))))
  ax.set_xticks(range(len(cols)), [c.split("_")[0] for c in cols], rotation=90)
  ax.set_yticks(range(len(table)), table.index)
  ax.set_title("mean occurrence rate per speaker, by first language")
  fig.colorbar(im, ax=ax)
  return _save(fig, path)


def distributions(speakers: pd.DataFrame, path: str) -> str:
  cols = features.feature_names(speakers.columns, "rate")
  langs = sorted(speakers["first_language"].unique())
  ncol = 4
  nrow = max(1, -(-len(cols) // ncol))
  fig, axes = plt.subplots(nrow, ncol, figsize=(3 * ncol, 2.4 * nrow), squeeze=False)
  rng = np.random.default_rng(0)
  for ax, col in zip(axes.ravel(), cols):
    for k, lang in enumerate(langs):
      v = speakers.loc[speakers["first_language"] == lang, col].dropna().to_numpy()
      ax.scatter(k + rng.uniform(-0.15, 0.15, len(v)), v, s=12, alpha=0.7)
      if len(v):
        ax.hlines(np.median(v), k - 0.3, k + 0.3, color="k")
    ax.set_xticks(range(len(langs)), langs, fontsize=7)
    ax.set_title(col.split("_")[0], fontsize=9)
  for ax in axes.ravel()[len(cols):]:
    ax.axis("off")
  fig.suptitle("occurrence rate per speaker (dots) and median (bar)")
  fig.tight_layout()
  return _save(fig, path)


def confusion(cm: pd.DataFrame, path: str) -> str:
  fig, ax = plt.subplots(figsize=(2 + 0.7 * len(cm), 1.6 + 0.7 * len(cm)))
  ax.imshow(cm.to_numpy(), cmap="Blues")
  for (i, j), v in np.ndenumerate(cm.to_numpy()):
    ax.text(j, i, str(v), ha="center", va="center")
  ax.set_xticks(range(len(cm)), cm.columns)
  ax.set_yticks(range(len(cm)), cm.index)
  ax.set_xlabel("predicted")
  ax.set_ylabel("first language (speakers)")
  return _save(fig, path)


def importances(imp: pd.Series, path: str, top: int = 20) -> str:
  imp = imp.head(top)[::-1]
  fig, ax = plt.subplots(figsize=(6, 1 + 0.25 * len(imp)))
  ax.barh(range(len(imp)), imp.to_numpy())
  ax.set_yticks(range(len(imp)), imp.index, fontsize=7)
  ax.set_xlabel("mean |standardised coefficient| over folds")
  fig.tight_layout()
  return _save(fig, path)


def temporal_courses(courses: dict, au_names, fps: float, path: str,
                     top: int = 4) -> str:
  """One panel per language: the mean AU time courses (probabilities) around the
  temporal model's most confident moments for it (time 0), for the `top` AUs
  whose courses differ most between the languages."""
  stack = np.stack(list(courses.values()))             # [K, W, A]
  spread = (stack - stack.mean(0)).std(axis=(0, 1))    # per AU
  shown = np.argsort(-spread)[:top]
  t = (np.arange(stack.shape[1]) - stack.shape[1] // 2) / fps
  fig, axes = plt.subplots(1, len(courses), figsize=(4 * len(courses), 3),
                           sharey=True, squeeze=False)
  for ax, (lang, course) in zip(axes[0], courses.items()):
    for a in shown:
      ax.plot(t, course[:, a], label=au_names[a])
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_title(f"{lang}: around its most confident moments", fontsize=9)
    ax.set_xlabel("seconds")
  axes[0, 0].set_ylabel("mean AU probability")
  axes[0, -1].legend(fontsize=7)
  fig.tight_layout()
  return _save(fig, path)


def _save(fig, path: str) -> str:
  fig.savefig(path, dpi=90, bbox_inches="tight")
  plt.close(fig)
  return os.path.basename(path)
