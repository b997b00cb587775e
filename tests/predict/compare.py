"""Outputs compared across ways of running predict."""

import json
import os


def output_files(folder) -> dict:
  """{name: bytes} of the files in `folder` (not its folders: locks, parts),
  a provenance record parsed and without its date."""
  found = {}
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
      continue
    with open(path, "rb") as f:
      data = f.read()
    if name.endswith(".provenance.json"):
      record = json.loads(data)
      record.pop("date")
      found[name] = record
    else:
      found[name] = data
  return found
