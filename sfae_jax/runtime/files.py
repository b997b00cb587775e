"""Writing a file so that a reader, or a crash, sees the old file or the new one,
never half of one: the text goes to a temporary file beside it (a name of its
own, so concurrent writers do not share it), renamed over it. Local paths or any
filesystem `etils.epath` knows (`gs://...`)."""

from __future__ import annotations

import uuid

from etils import epath


def write_atomically(path, text: str) -> None:
  """Writes `text` to `path` through a temporary file beside it, then renames it."""
  target = epath.Path(path)
  tmp = target.parent / f"{target.name}.{uuid.uuid4().hex[:12]}.tmp"
  try:
    tmp.write_text(text)
    tmp.replace(target)
  except BaseException:
    if tmp.exists():
      tmp.unlink()
    raise
