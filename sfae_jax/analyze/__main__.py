"""python -m sfae_jax.analyze --manifest M.csv --out REPORT_DIR [--workdir RUN]"""

import argparse
import sys

from sfae_jax.analyze import job
from sfae_jax.predict import cluster, outputs
from sfae_jax.runtime import host


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m sfae_jax.analyze",
      description="AU tracks -> group differences by first language + classifiers.")
  parser.add_argument("--manifest", required=True,
                      help="CSV: video, speaker, first_language[, covariates...]")
  parser.add_argument("--out", required=True, help="report folder")
  parser.add_argument("--workdir", help="trained run, for media files")
  parser.add_argument("--every", type=int, default=1, help="every N-th frame")
  parser.add_argument("--backend", default="auto", help="face backend for predict")
  parser.add_argument("--workers", type=int, default=host.cores(),
                      help="face-detection processes for media files (default: one "
                      "per core available, here %(default)s; 0: in this process)")
  parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                      help="media files' face work on a Ray cluster, as predict "
                      "--ray does (docs/cluster.md)")
  parser.add_argument("--format", choices=outputs.FORMATS, default="csv",
                      help="the tracks cached in OUT/tracks/ for media files, as "
                      "predict --format writes them (the manifest may list track "
                      "files of either format)")
  parser.add_argument("--mixed", action="store_true",
                      help="also fit video-level mixed models (statsmodels)")
  parser.add_argument("--permutations", type=int, default=200)
  parser.add_argument("--min-speakers", type=int, default=3,
                      help="per language, below which no test is run")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--temporal", action="store_true",
                      help="also fit the temporal model on the AU time courses "
                           "(sfae_jax/analyze/temporal.py)")
  parser.add_argument("--temporal-permutations", type=int, default=99,
                      help="its permutation test's label shuffles (each retrains "
                           "every fold; see docs/analysis.md for the time)")
  args = parser.parse_args(argv)
  if args.workers < 0:
    parser.error("--workers must be >= 0")
  try:
    out = job.run_analysis(args.manifest, args.out, args.workdir, args.every,
                               args.backend, args.mixed, args.permutations,
                               min_per_group=args.min_speakers, seed=args.seed,
                               temporal_model=args.temporal,
                               temporal_permutations=args.temporal_permutations,
                               workers=args.workers, cluster=args.ray,
                               fmt=args.format)
  except (FileNotFoundError, ValueError, cluster.ClusterUnavailable) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {args.out}/report.html ({len(out['speakers'])} speakers, "
        f"{len(out['videos'])} videos)", file=sys.stderr)
  return 1 if out["errors"] else 0


if __name__ == "__main__":
  sys.exit(main())
