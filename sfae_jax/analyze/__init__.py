"""First-language analysis: AU tracks -> speaker features -> statistics + classifier.

  python -m sfae_jax.analyze --manifest M.csv --out REPORT_DIR [--workdir RUN]
      [--temporal]

`job.run_analysis` is the whole job as a function; the other modules are `tracks`
(manifest, predict with cache), `features`, `stats`, `classify`, `temporal` (the
model over AU time courses, `--temporal`), `figures` (the PNGs) and `report`
(report.html); `planted` makes tracks with planted effects and `power`
(`python -m sfae_jax.analyze.power`) measures what the analysis finds in them.
"""
