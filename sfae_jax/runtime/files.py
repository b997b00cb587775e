"""Writing a file so that a reader, or a crash, sees the old file or the new one,
never half of one: the text goes to a temporary file beside it (a name of its
own, so concurrent writers do not share it), renamed over it. Local paths or any
filesystem `etils.epath` knows (`gs://...`)."""

from __future__ import annotations

import contextlib
import uuid
from typing import IO, Iterator

from etils import epath


def write_atomically(path, text: str) -> None:
  """Writes `text` to `path` through a temporary file beside it, then renames it."""
  with open_atomically(path) as f:
    f.write(text)


@contextlib.contextmanager
def open_atomically(path, mode: str = "w") -> Iterator[IO]:
  """A file to write in pieces (`mode` "w": text, "wb": bytes); it replaces
  `path` when the block ends without an exception, and is removed otherwise."""
  target = epath.Path(path)
  tmp = target.parent / f"{target.name}.{uuid.uuid4().hex[:12]}.tmp"
  try:
    with tmp.open(mode) as f:
      yield f
    tmp.replace(target)
  except BaseException as e:
    if tmp.exists():
      tmp.unlink()
    if isinstance(e, OSError) and e.filename is None:  # a failed write names no file
      e.filename = str(target)
    raise
