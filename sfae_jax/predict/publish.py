"""`predict --out gs://...` (or `--stage DIR`): the chunks, locks and resume
state live in a staging folder on a filesystem, and each finished file is then
copied to `--out` with its provenance record, through `etils.epath` (a bucket,
or another filesystem).

Object stores have no atomic rename or lock, which the chunk store's resume rests
on, so the work happens in the stage; the destination only ever receives whole
files, the record last: a file whose record is there is complete. A rerun skips
inputs complete at the destination (made with the same settings; other settings
are refused, as on a filesystem, unless --fresh) and continues the others from
the stage, so a job killed before its files were copied loses nothing while its
stage is kept.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterable

from etils import epath

from sfae_jax.predict import outputs, provenance


class DestinationError(RuntimeError):
  """--out cannot be read or written (a bucket unreachable or refused, no
  filesystem for its scheme); the message names it and the cause."""


def _reaching(dest: str, action):
  """`action()`, its failure (whatever the filesystem raises: OSError, a
  TensorFlow or gcsfs error) as a DestinationError naming `dest`."""
  try:
    return action()
  except outputs.SettingsMismatch:
    raise
  except Exception as e:  # pylint: disable=broad-except  (each backend its own)
    cause = str(e).strip().splitlines()[0] if str(e).strip() else ""
    raise DestinationError(f"{dest}: {type(e).__name__}: {cause}") from None


def is_remote(out: str) -> bool:
  """A URL (`gs://...`), not a local path."""
  return "://" in out


def default_stage(out: str) -> str:
  """The staging folder for `out`: one per destination, under the user's
  cache, so that the same command finds it again."""
  key = hashlib.sha1(out.rstrip("/").encode()).hexdigest()[:12]
  return os.path.join(os.path.expanduser("~"), ".cache", "sfae_jax", "stage", key)


def complete_at(dest: str, names: dict[str, str], settings: dict,
                fresh: bool) -> list[str]:
  """The inputs (keys of `names`: input -> file name) whose file is complete
  in the folder `dest` (its record there), made with `settings`. One made with
  other settings raises outputs.SettingsMismatch naming it; with `fresh`,
  nothing is complete (and the old file is replaced when the new one is
  copied)."""
  if fresh:
    return []
  return _reaching(dest, lambda: _complete_at(dest, names, settings))


def _complete_at(dest, names, settings) -> list[str]:
  done = []
  for path, name in names.items():
    out = str(epath.Path(dest) / name)
    record = provenance.read_for(out)
    if record is not None:
      outputs.made_with(out, record, settings)
      done.append(path)
  return done


def copy_out(files: Iterable[str], dest: str) -> list[str]:
  """Each staged file, then its record, copied into the folder `dest`, then
  removed from the stage. Returns the destinations."""
  return _reaching(dest, lambda: _copy_out(files, dest))


def _copy_out(files, dest) -> list[str]:
  target = epath.Path(dest)
  target.mkdir(parents=True, exist_ok=True)
  copied = []
  for local in files:
    name = os.path.basename(local)
    for src, dst in ((local, target / name),
                     (provenance.path_for(local),
                      target / (name + provenance.SUFFIX))):
      epath.Path(src).copy(dst, overwrite=True)
    os.remove(local)
    os.remove(provenance.path_for(local))
    copied.append(str(target / name))
  return copied
