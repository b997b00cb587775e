"""Command-line flag parsing shared by the absl commands (train, ablate, aot)."""

from __future__ import annotations

import sys

from absl import flags

HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")


def parse_flags(argv):
  """absl flag parsing, with config mistakes as one-line errors (no traceback);
  --help exits 0 (absl's exits 1, which scripts read as a failure)."""
  try:
    return flags.FLAGS(argv)
  except SystemExit as e:
    if e.code == 1 and any(a in HELP_FLAGS for a in argv[1:]):
      sys.exit(0)
    raise
  except flags.Error as e:
    message = str(e)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    message = str(e.args[0] if e.args else e)
  message = message.replace("\\n", " ").replace("\\", "").replace("'", "")
  message = " ".join(message.split())
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)
