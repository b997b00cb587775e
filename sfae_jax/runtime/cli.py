"""Command-line parsing shared by the commands: absl flags (train, ablate, aot)
and config files given by path (the tools' `--config`)."""

from __future__ import annotations

import importlib.util
import os
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


def load_config(spec: str):
  """'configs/x.py[:arg]' -> the ConfigDict its get_config(arg) returns."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise OSError(f"--config {path}: no such file (run from the repository root, "
                  "or give the path to a config such as configs/default.py).")
  module_spec = importlib.util.spec_from_file_location("sfae_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)
