"""report.html: what was analysed, the group statistics, the classifier, where the
AU values came from; self-contained HTML around the PNGs of `figures`."""

from __future__ import annotations

import html
import os

import pandas as pd

from sfae_jax.analyze import features, figures
from sfae_jax.runtime import files


def _data_section(manifest, videos, speakers, left_out, errors) -> str:
  counts = speakers.groupby("first_language").agg(
      speakers=("speaker", "count"), videos=("videos", "sum"),
      frames=("frames", "sum"), frames_no_face=("frames_no_face", "sum"),
      frames_decode_error=("frames_decode_error", "sum"),
      frames_analysed=("frames_analysed", "sum")).reset_index()
  body = table_html(counts)
  body += (f"<p>{len(manifest)} manifest rows, {len(videos)} videos analysed, "
           f"{len(speakers)} speakers. Frames without a face (success=0; among "
           "them frames the video decoder damaged, decode_error=1) are "
           "excluded and counted; the speaker is the unit of analysis (features "
           "are averaged over a speaker's videos).</p>")
  if len(left_out):
    body += note(f"{len(left_out)} speaker(s) of the manifest are left out:")
    body += table_html(left_out)
  if errors:
    body += note("These inputs failed and are left out: " + "; ".join(errors))
  return body


def _stats_section(table, mixed_table) -> str:
  rate = table[table["kind"] == "rate"]
  body = ""
  untested = rate[rate["test"] == "none"]
  if len(untested) == len(rate) and len(rate):
    body += note("No group test was run: " + untested["note"].iloc[0]
                        + ". There is no p-value to report; the figures only "
                        "describe these speakers.")
  else:
    sig = rate[rate["q"] < 0.05]["au"].tolist()
    body += (f"<p>Occurrence rate, BH-FDR across AUs: "
             f"{', '.join(sig) if sig else 'no AU'} differs at q &lt; 0.05. "
             "All feature kinds are in stats.csv.</p>")
  shown = ["au", "test", "statistic", "p", "q", "effect_size", "effect",
           "effect_lo", "effect_hi", "note"]
  shown += [c for c in rate.columns if c.startswith(("n_", "median_"))]
  body += table_html(rate[[c for c in shown if c in rate.columns]])
  if mixed_table is not None:
    body += "<h3>Mixed models (video level, speaker random intercept)</h3>"
    body += table_html(mixed_table)
  return body


def _intensity_section(table) -> str:
  """How strongly each AU moves when it does, by language (AUxx_r tracks)."""
  rows = table[table["kind"].isin(features.INTENSITY)]
  if rows.empty:
    return note("The tracks have no intensity columns (AUxx_r): the run that "
                "made them has no intensity head.")
  tested = rows[rows["test"] != "none"]
  if tested.empty:
    return note("No intensity test was run: " + rows["note"].iloc[0] + ".")
  found = []
  for kind, what in (("intensity", "mean intensity while present"),
                     ("peak", f"{features.PEAK_PERCENTILE}th-percentile intensity")):
    sig = rows[(rows["kind"] == kind) & (rows["q"] < 0.05)]["au"].tolist()
    found.append(f"{what}: {', '.join(sig) if sig else 'no AU'}")
  body = ("<p>Per AU with intensity (0-5): a speaker's mean intensity over the "
          "frames the AU is on, and their peak intensity, tested between "
          "languages with speakers as the unit, BH-FDR across AUs within each. "
          "Differs at q &lt; 0.05 in " + "; ".join(found) + ". An AU used as "
          "often but more strongly shows here, not in the occurrence rate.</p>")
  shown = ["au", "kind", "test", "p", "q", "effect", "effect_lo",
           "effect_hi", "note"]
  shown += [c for c in rows.columns if c.startswith("median_")]
  return body + table_html(rows[[c for c in shown if c in rows.columns]])


def _lead_section(table) -> str:
  """Which pair of AUs, at which lag, moves in another order by language."""
  lead = table[table["kind"] == features.LEAD]
  if lead.empty or lead["p"].isna().all():
    return note("No lead-lag test was run (" + (lead["note"].iloc[0] if len(lead)
                                                else "no timestamps") + ").")
  lags = ", ".join(f"{round(l * 1000)} ms" for l in features.LAGS_S)
  sig = lead[lead["q"] < 0.05]
  body = (f"<p>For each pair of AUs and each lag ({lags}): the asymmetry of their "
          "lagged cross-correlation, mean x(t) y(t+lag) - mean y(t) x(t+lag) on "
          "the mean-removed probabilities (positive: the first AU moves that much "
          "before the second), averaged over a speaker's videos, tested between "
          f"languages with speakers as the unit. BH-FDR across the family of "
          f"{len(lead)} pairs x lags: a single true difference must reach p &lt; "
          f"{0.05 / len(lead):.1e} to be found, the price of testing them all. "
          f"{len(sig)} differ at q &lt; 0.05; the 8 smallest p are shown, all in "
          "stats.csv (kind 'lead').</p>")
  shown = ["au", "lag_ms", "test", "p", "q", "effect", "effect_lo", "effect_hi"]
  shown += [c for c in lead.columns if c.startswith("median_")]
  return body + table_html(lead.nsmallest(8, "p")[[c for c in shown
                                                   if c in lead.columns]])


def _classifier_section(out_dir, result, why) -> str:
  if result is None:
    return note(f"No classifier was fitted: {why}.")
  body = (f"<p>Balanced accuracy over speakers {result.balanced_accuracy:.3f} "
          f"(chance {result.chance:.3f}), permutation p = {result.p_value:.4f} "
          f"({result.n_permutations} permutations of the speakers' labels), "
          f"{result.n_splits}-fold speaker-grouped cross-validation.</p>")
  body += img(figures.confusion(result.confusion,
                                      os.path.join(out_dir, "confusion.png")),
                     "confusion matrix")
  body += img(figures.importances(result.importances,
                                         os.path.join(out_dir, "importances.png")),
                     "feature importances")
  return body


POWER_TABLE = ("the power table in docs/analysis.md "
               "(python -m sfae_jax.analyze.power)")


def _temporal_section(out_dir, temporal, averages) -> str:
  deep, why = temporal
  if deep is None:
    return note(f"No temporal model was fitted: {why}.")
  rows = [("temporal model (AU time courses)", deep.balanced_accuracy, deep.chance,
           deep.p_value, deep.n_permutations, deep.n_splits)]
  if averages is not None:
    rows.insert(0, ("average features + logistic regression",
                    averages.balanced_accuracy, averages.chance, averages.p_value,
                    averages.n_permutations, averages.n_splits))
  body = table_html(pd.DataFrame(rows, columns=[
      "model", "balanced accuracy (speakers)", "chance", "permutation p",
      "permutations", "folds"]))
  body += (f"<p>{deep.videos} videos, {deep.windows} windows of {deep.window} "
           f"bins at {deep.fps:g} bins/s. Model: lagged products of every ordered "
           f"pair of AUs, {deep.settings}. Each permutation shuffles the speakers' "
           "languages and reruns the whole training, early stopping included; "
           "no speaker is ever on two sides of a split. Per speaker: "
           "temporal_speakers.csv. Its power and false alarms on planted order "
           f"and lag differences: {POWER_TABLE}. The lead-lag tests above say "
           "which pair and lag differ, with the speaker as the unit.</p>")
  if deep.left_out:
    body += note(f"{len(deep.left_out)} video(s) left out of the temporal "
                 "model: " + "; ".join(deep.left_out))
  body += img(figures.confusion(deep.confusion,
                                os.path.join(out_dir, "temporal_confusion.png")),
              "temporal model confusion matrix")
  if deep.courses:
    body += img(figures.temporal_courses(
        deep.courses, deep.au_names, deep.fps,
        os.path.join(out_dir, "temporal_courses.png")),
        "AU time courses of the most confident windows")
    body += ("<p>What the temporal model uses: per language, the mean AU time "
             "courses 1.5 seconds either side of the held-out moments (frames) "
             "where it saw the most evidence for that language, for the AUs "
             "whose courses differ most between languages.</p>")
  return body


def _provenance_section(origin) -> str:
  rows = "".join(
      f"<tr><td>{html.escape(str(r['run']))}</td><td>{r['step']}</td>"
      f"<td>{html.escape(str(r['model']))}</td>"
      f"<td>{'synthetic' if r['trained_on_synthetic'] else 'real'}: "
      f"{html.escape(str((r['training_dataset'] or {}).get('path')))}</td>"
      f"<td>{html.escape(str(r['landmark_backend']))}</td>"
      f"<td>{html.escape(str(r['sfae_jax_version']))}</td></tr>"
      for r in origin["runs"])
  body = ("<table><tr><th>run</th><th>step</th><th>model</th><th>trained on</th>"
          f"<th>landmarks</th><th>sfae_jax</th></tr>{rows}</table>" if rows else "")
  if origin["unknown_provenance"]:
    body += note("Track CSVs without a provenance file (their run is "
                        "unknown): " + ", ".join(origin["unknown_provenance"]))
  return body + note("Full record: provenance.json.")


def write(out_dir, manifest, videos, speakers, table, mixed_table, result, why,
          errors, left_out, origin=None, temporal=None) -> None:
  """`left_out`: the speakers left out and why (`run.left_out`); `temporal`:
  (temporal.Result or None, why not) when the temporal model was asked for."""
  analysable = speakers.dropna(subset=features.feature_names(speakers.columns,
                                                             "rate"))
  figs = ""
  if len(analysable):
    figs += img(figures.heatmap(analysable, os.path.join(out_dir,
                                                               "heatmap.png")),
                       "AU x language heat map")
    figs += img(figures.distributions(
        analysable, os.path.join(out_dir, "distributions.png")),
        "per-AU distributions")
  else:
    figs = note("No speaker has an analysable frame: nothing to plot.")
  labels = manifest.get("label_note")
  title = "AU use by first language"
  sections = [("Data", _data_section(manifest, videos, speakers, left_out,
                                     errors)),
              ("AU use by language", figs),
              ("Group differences per AU", _stats_section(table, mixed_table)),
              ("AU intensity by language", _intensity_section(table)),
              ("Classifier: first language from AU features",
               _classifier_section(out_dir, result, why))]
  if temporal is None:
    sections.append(("Timing between AUs (lead-lag)", _lead_section(table)))
  else:  # the pair-by-pair tests beside the model, so a find names its pair and lag
    sections.append(("Temporal: order and lag between AUs, and the temporal model",
                     "<h3>Lead-lag, pair by pair</h3>" + _lead_section(table)
                     + "<h3>Temporal model: first language from AU dynamics</h3>"
                     + _temporal_section(out_dir, temporal, result)))
  if origin is not None:
    sections.append(("Where these AU values come from",
                     _provenance_section(origin)))
    if origin["warning"]:
      sections.insert(0, ("Warning", note(origin["warning"])))
  if labels is not None and (labels != "").any():
    sections.insert(0, ("About these labels", note(
        "; ".join(sorted(set(labels[labels != ""]))))))
  write_html(os.path.join(out_dir, "report.html"), sections, title)


def write_html(path: str, sections: list[tuple[str, str]], title: str) -> None:
  """sections: (heading, HTML body) pairs."""
  parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>"
           f"{html.escape(title)}</title><style>body{{font-family:sans-serif;"
           "max-width:1100px;margin:auto}table{border-collapse:collapse;"
           "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
           ".note{background:#fff3cd;padding:8px}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
  for heading, body in sections:
    parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
  parts.append("</body></html>")
  files.write_atomically(path, "\n".join(parts))


def img(name: str, alt: str) -> str:
  return f"<p><img src='{html.escape(name)}' alt='{html.escape(alt)}'></p>"


def note(text: str) -> str:
  return f"<p class='note'>{html.escape(text)}</p>"


def table_html(df: pd.DataFrame, float_format="{:.4g}") -> str:
  return df.to_html(index=False, float_format=float_format.format, na_rep="",
                    border=0)
