"""Builds BP4D or DISFA with one-line errors: the builders `tfds build` runs.

  python -m tfds_bp4d.build --manual_dir /path/to/BP4D [--data_dir ~/tensorflow_datasets]
      [--config bp4d49|bp4d49_nminus1|ibug68]
  python -m tfds_bp4d.build --dataset disfa --manual_dir /path/to/DISFA
      [--config disfa49|disfa66]

A layout problem (an empty or partial manual_dir, an unreadable CSV) is one line
naming the file and the fix, exit status 1; `tfds build` reports the same error
under TFDS's traceback. Prints each split's size and where its build summary is.
"""

from __future__ import annotations

import argparse
import os
import sys

from tfds_bp4d import prepare
from tfds_bp4d.layout import LayoutError


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m tfds_bp4d.build",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--manual_dir", required=True, help="root of the BP4D copy")
  parser.add_argument("--data_dir", default="~/tensorflow_datasets")
  parser.add_argument("--dataset", default="bp4d", choices=tuple(prepare.BUILDS))
  parser.add_argument("--config", help="bp4d: bp4d49 (default), bp4d49_nminus1, "
                      "ibug68; disfa: disfa49 (default), disfa66")
  args = parser.parse_args(argv)
  configs = prepare.builder_configs(args.dataset)
  args.config = args.config or configs[0]
  if args.config not in configs:
    parser.error(f"--config for {args.dataset} is one of {', '.join(configs)}")
  try:
    prepare.build(os.path.expanduser(args.manual_dir),
                  os.path.expanduser(args.data_dir), args.config, args.dataset)
  except LayoutError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
