"""Group differences per AU between first languages, speaker-level.

Two languages: Mann-Whitney U, effect size the rank-biserial correlation
r = 2U / (n1 n2) - 1 (positive: the second language, alphabetically, is higher).
More: Kruskal-Wallis H, effect size epsilon^2 = H / (n - 1). p-values are
Benjamini-Hochberg adjusted across the AUs of one feature kind (for the lead-lag
kind: across every pair x lag, a family of 3 x 66 for 12 AUs). Effect sizes get a
percentile bootstrap CI, resampling speakers within each language. A language with
fewer than `min_per_group` speakers makes the test undefined: the row says so and
carries no p-value.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
from scipy import stats as sps
import statsmodels.formula.api as smf

from sfae_jax.analyze import features

MIN_PER_GROUP = 3


def bh_fdr(p) -> np.ndarray:
  """Benjamini-Hochberg adjusted p-values (q); NaN stays NaN."""
  p = np.asarray(p, float)
  q = np.full_like(p, np.nan)
  ok = ~np.isnan(p)
  m = ok.sum()
  if not m:
    return q
  order = np.argsort(p[ok])
  ranked = p[ok][order] * m / np.arange(1, m + 1)
  ranked = np.minimum.accumulate(ranked[::-1])[::-1]
  out = np.empty(m)
  out[order] = np.minimum(ranked, 1.0)
  q[ok] = out
  return q


def _effect(groups: list[np.ndarray]) -> float:
  if len(groups) == 2:
    u = sps.mannwhitneyu(groups[1], groups[0], alternative="two-sided").statistic
    return 2 * u / (len(groups[0]) * len(groups[1])) - 1
  h = sps.kruskal(*groups).statistic
  return h / (sum(len(g) for g in groups) - 1)


def _test(groups: list[np.ndarray]) -> tuple[str, float, float]:
  if len(groups) == 2:
    res = sps.mannwhitneyu(groups[1], groups[0], alternative="two-sided")
    return "mann-whitney-u", float(res.statistic), float(res.pvalue)
  res = sps.kruskal(*groups)
  return "kruskal-wallis", float(res.statistic), float(res.pvalue)


def rank_biserial(first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """`_effect` of two groups for many resamples at once: rows of `first` `[R, n0]`
  and `second` `[R, n1]` -> `[R]` rank-biserial r = 2 U / (n0 n1) - 1, U the
  Mann-Whitney statistic of `second` (ties count one half; 0 when all are equal).
  U from `second`'s rank sum in each row (average ranks for ties): memory and
  time grow as R (n0 + n1), not R n0 n1 (a corpus's 1,000 speakers a language
  would need 1 GB per feature)."""
  n0, n1 = first.shape[1], second.shape[1]
  ranks = sps.rankdata(np.concatenate([first, second], axis=1), axis=1)
  u = ranks[:, n0:].sum(axis=1) - n1 * (n1 + 1) / 2
  return 2 * u / (n0 * n1) - 1


def _bootstrap_ci(groups, n_boot: int, rng) -> tuple[float, float]:
  """95 % percentile interval of the effect size; NaN with `n_boot=0` (tests
  only, as the power table needs)."""
  if n_boot == 0:
    return float("nan"), float("nan")
  if len(groups) == 2:  # vectorised: all resamples at once
    a, b = groups
    values = rank_biserial(a[rng.integers(0, len(a), (n_boot, len(a)))],
                           b[rng.integers(0, len(b), (n_boot, len(b)))])
    return tuple(np.percentile(values, [2.5, 97.5]))
  values = []
  for _ in range(n_boot):
    resampled = [g[rng.integers(0, len(g), len(g))] for g in groups]
    if np.ptp(np.concatenate(resampled)) == 0:
      values.append(0.0)
      continue
    values.append(_effect(resampled))
  return tuple(np.percentile(values, [2.5, 97.5]))


def group_tests(speakers: pd.DataFrame, kind: str = "rate",
                min_per_group: int = MIN_PER_GROUP, n_boot: int = 1000,
                seed: int = 0) -> pd.DataFrame:
  """One row per AU feature of `kind`: test, statistic, p, q (BH), effect size
  with 95 % CI, group sizes and medians, and a note when no test was possible."""
  rng = np.random.default_rng(seed)
  langs = sorted(speakers["first_language"].unique())
  rows = []
  for col in features.feature_names(speakers.columns, kind):
    data = speakers[["first_language", col]].dropna()
    groups = [data.loc[data["first_language"] == g, col].to_numpy(float)
              for g in langs]
    sizes = {f"n_{g}": len(x) for g, x in zip(langs, groups)}
    medians = {f"median_{g}": (float(np.median(x)) if len(x) else np.nan)
               for g, x in zip(langs, groups)}
    row = {"feature": col, "au": col.split("_")[0], "kind": kind, **sizes, **medians}
    if kind == features.LEAD:  # lead_06x12_250ms: the pair, and the lag
      _, pair, lag = col.split("_")
      row.update(au="AU{}-AU{}".format(*pair.split("x")), lag_ms=int(lag[:-2]))
    small = [g for g, x in zip(langs, groups) if len(x) < min_per_group]
    if len(langs) < 2 or small:
      why = ("only one first language" if len(langs) < 2 else
             f"too few speakers in {', '.join(small)} (need {min_per_group} per "
             "language)")
      row.update(test="none", statistic=np.nan, p=np.nan, effect=np.nan,
                 effect_lo=np.nan, effect_hi=np.nan, note=why)
    elif np.ptp(np.concatenate(groups)) == 0:
      row.update(test="none", statistic=np.nan, p=1.0, effect=0.0, effect_lo=0.0,
                 effect_hi=0.0, note="identical values in every speaker")
    else:
      test, stat, p = _test(groups)
      lo, hi = _bootstrap_ci(groups, n_boot, rng)
      row.update(test=test, statistic=stat, p=p, effect=_effect(groups),
                 effect_lo=lo, effect_hi=hi, note="")
    rows.append(row)
  table = pd.DataFrame(rows)
  if not table.empty:
    table["q"] = bh_fdr(table["p"].to_numpy())
    table["effect_size"] = ("rank-biserial r" if len(langs) == 2 else "epsilon^2")
  return table


def mixed_models(videos: pd.DataFrame, kind: str = "rate",
                 covariates: Optional[list[str]] = None) -> pd.DataFrame:
  """Video-level linear mixed models per AU (statsmodels): feature ~ language
  (+ covariates), speaker as random intercept. Returns the likelihood-ratio-free
  Wald p-value of the language terms (joint), BH-adjusted across AUs."""
  rows = []
  covariates = covariates or []
  for col in features.feature_names(videos.columns, kind):
    data = videos[["speaker", "first_language", col, *covariates]].dropna()
    data = data.rename(columns={col: "y"})
    formula = "y ~ C(first_language)" + "".join(f" + C({c})" for c in covariates)
    row = {"feature": col, "n_videos": len(data)}
    try:
      fit = smf.mixedlm(formula, data, groups=data["speaker"]).fit(reml=True)
      terms = [n for n in fit.params.index if n.startswith("C(first_language)")]
      test = fit.wald_test(" = 0, ".join(terms) + " = 0", scalar=True)
      row.update(p=float(test.pvalue), converged=bool(fit.converged), note="")
    except (ValueError, np.linalg.LinAlgError) as e:
      row.update(p=np.nan, converged=False, note=f"not fitted: {e}")
    rows.append(row)
  table = pd.DataFrame(rows)
  if not table.empty:
    table["q"] = bh_fdr(table["p"].to_numpy())
  return table
