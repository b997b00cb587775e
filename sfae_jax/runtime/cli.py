"""Command-line parsing shared by the commands: absl flags (train, ablate, aot),
config files given by path with the same `--config.a.b=value` overrides
(the argparse tools: benchmark, summary), and the benchmarks' flags after `--`
for the command they run."""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import sys

from absl import flags
from ml_collections import config_flags

HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")


def split_at_dashes(argv=None) -> tuple[list[str], list[str]]:
  """(this command's arguments, those after `--`: for the command it runs)."""
  argv = sys.argv[1:] if argv is None else list(argv)
  if "--" not in argv:
    return argv, []
  return argv[:argv.index("--")], argv[argv.index("--") + 1:]


def parse_flags(argv):
  """absl flag parsing, with config mistakes as one-line errors (no traceback);
  --help exits 0 (absl's exits 1, which scripts read as a failure)."""
  for spec in _config_specs(argv).values():
    _importable_base(spec)
  try:
    return flags.FLAGS(argv)
  except SystemExit as e:
    if e.code == 1 and any(a in HELP_FLAGS for a in argv[1:]):
      sys.exit(0)
    raise
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    print(f"error: {_one_line(argv, e)}", file=sys.stderr)
    sys.exit(2)


def _one_line(argv, error: Exception) -> str:
  """A flag-parsing error as one line: the override at fault and the nearest
  field, else the parser's own message."""
  message = str(error) if isinstance(error, flags.Error) else str(
      error.args[0] if error.args else error)
  message = message.replace("\\n", " ").replace("\\", "").replace("'", "")
  return _override_error(argv) or " ".join(message.split())


def config_from_args(spec: str, overrides=()):
  """The config file `spec` ('configs/x.py[:arg]') with `--config.a.b=value`
  `overrides` applied as `train` applies them (ml_collections' config flags).
  ValueError with one line naming the override and the nearest field."""
  _check_exists(spec)
  _importable_base(spec)
  argv = ["prog", "--config", spec, *overrides]
  bad = [a for a in overrides if not a.startswith("--config.")]
  if bad:
    raise ValueError(f"unrecognized arguments: {' '.join(bad)}")
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, flag_values=values,
                                  sys_argv=argv)
  try:
    values(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    raise ValueError(_one_line(argv, e)) from None
  return values.config


def _override_error(argv) -> str | None:
  """For a `--config.a.b=v` override that names no field of the config, or gives
  a value of the wrong type: that flag, and the nearest field or the type
  wanted. None when no override is at fault."""
  specs = _config_specs(argv)
  overrides = [(a.split("=", 1)[0][2:], a.split("=", 1)[1] if "=" in a else None)
               for a in argv[1:] if re.match(r"^--\w+\.", a)]
  loaded = {}
  for flag, value in overrides:
    name, path = flag.split(".", 1)
    if name not in specs:
      continue
    try:
      config = loaded.setdefault(name, load_config(specs[name]))
    except Exception:  # pylint: disable=broad-except  (the parser's message stands)
      return None
    node, parts = config, path.split(".")
    for i, key in enumerate(parts):
      keys = list(node.keys()) if hasattr(node, "keys") else []
      if key not in keys:
        near = difflib.get_close_matches(key, keys, n=1)
        where = ".".join(parts[:i + 1])
        return (f"--{name}.{path}: the config has no field {where}"
                + (f"; did you mean --{name}.{'.'.join(parts[:i] + near)}?"
                   if near else f" (fields here: {', '.join(sorted(keys))})."))
      node = node[key]
    if value is not None and not _parses_as(node, value):
      kind = ("true or false" if isinstance(node, bool) else
              "an integer" if isinstance(node, int) else "a number")
      return (f"--{name}.{path}={value}: {path} must be {kind}, as in "
              f"{specs[name].partition(':')[0]} ({node!r}); {value!r} is not.")
  return None


def _config_specs(argv) -> dict:
  """{flag name: value} of the `--name value` and `--name=value` flags: the
  config files among them."""
  specs = dict(re.findall(r"^--(\w+)=?(.*)$", a)[0] for a in argv[1:]
               if re.match(r"^--\w+=", a))
  specs.update({a[2:]: b for a, b in zip(argv[1:], argv[2:])
                if re.fullmatch(r"--\w+", a)})
  return specs


def _importable_base(spec: str) -> None:
  """A config in a package folder imports its base config by package
  (`from configs import default`): the folder above it goes on sys.path, so
  the command runs from any working directory."""
  path = spec.partition(":")[0]
  folder = os.path.dirname(os.path.abspath(path))
  if path.endswith(".py") and os.path.isfile(os.path.join(folder, "__init__.py")):
    above = os.path.dirname(folder)
    if above not in sys.path:
      sys.path.append(above)


def _parses_as(current, value: str) -> bool:
  if isinstance(current, bool):
    return value.lower() in ("true", "false", "1", "0")
  if isinstance(current, (int, float)):
    try:
      type(current)(value)
    except ValueError:
      return False
  return True


def _check_exists(spec: str) -> None:
  path = spec.partition(":")[0]
  if not os.path.isfile(path):
    raise OSError(f"--config {path}: no such file (run from the repository root, "
                  "or give the path to a config such as configs/default.py).")


def load_config(spec: str):
  """'configs/x.py[:arg]' -> the ConfigDict its get_config(arg) returns."""
  path, _, arg = spec.partition(":")
  _check_exists(spec)
  _importable_base(spec)
  module_spec = importlib.util.spec_from_file_location("sfae_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)
