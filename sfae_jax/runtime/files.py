"""Writing a file so that a reader, or a crash, sees the old file or the new one,
never half of one: the text goes to a temporary file beside it, renamed over it.
Local paths or any filesystem `etils.epath` knows (`gs://...`)."""

from __future__ import annotations

from etils import epath


def write_atomically(path, text: str, suffix: str = ".tmp") -> None:
  """Writes `text` to `path` through `path + suffix`, then renames it."""
  target = epath.Path(path)
  tmp = target.parent / (target.name + suffix)
  try:
    tmp.write_text(text)
    tmp.replace(target)
  except BaseException:
    if tmp.exists():
      tmp.unlink()
    raise
