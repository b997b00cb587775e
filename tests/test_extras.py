"""Which extra each command needs, and that no command imports TensorFlow.

Every command is imported in a fresh interpreter where only the distributions of
its extra (as pyproject.toml declares it, with their own requirements) can be
imported: the dev environment has all of them installed, so without this guard a
command would quietly depend on a package its extra lacks. Imports sit at module
level (tests/test_layout.py), so importing a command imports what it runs.
"""

import importlib.metadata as md
import os
import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The extra each command needs, in two chains where each extra contains the
# one before (one interpreter per chain: a module imported under a smaller
# extra stays allowed under the larger one).
CHAINS = (
    (("faces", "sfae_jax.predict.__main__"), ("analysis", "sfae_jax.analyze.__main__")),
    (("data", "sfae_jax.evaluate"), ("train", "sfae_jax.train")),
)


def _name(dist: str) -> str:
  return re.sub(r"[-_.]+", "-", dist).lower()


def _closure(extra: str) -> set[str]:
  """The distributions `pip install -e .[extra]` brings: ours, then each
  requirement's own requirements (installed metadata), recursively."""
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
  todo = [Requirement(r) for r in project["dependencies"]]
  extras, seen = [extra], {"sfae-jax"}
  while extras:
    for r in map(Requirement, project["optional-dependencies"][extras.pop()]):
      if _name(r.name) == "sfae-jax":
        extras += sorted(r.extras)
      else:
        todo.append(r)
  while todo:
    r = todo.pop()
    if r.marker is not None and not r.marker.evaluate({"extra": ""}):
      continue
    name = _name(r.name)
    wanted = {f"{name}[{e}]" for e in r.extras} | {name}
    if wanted <= seen:
      continue
    seen |= wanted
    try:
      requires = md.requires(r.name) or []
    except md.PackageNotFoundError:  # a platform-only extra (jax[tpu] on a GPU)
      continue
    for line in requires:
      req = Requirement(line)
      if req.marker is None or any(req.marker.evaluate({"extra": e})
                                   for e in ("", *r.extras)):
        todo.append(req)
  return {s for s in seen if "[" not in s}


def _blocked(extra: str) -> list[str]:
  """Top-level modules of installed distributions outside `extra`'s closure."""
  allowed = _closure(extra)
  return sorted(module for module, dists in md.packages_distributions().items()
                if not any(_name(d) in allowed for d in dists))


def _import_with_only(chain) -> subprocess.CompletedProcess:
  """Imports each (extra, module) of `chain` in turn in one fresh interpreter,
  only `extra`'s distributions importable while its module is imported."""
  steps = [(extra, module, _blocked(extra)) for extra, module in chain]
  code = f"""
import importlib, importlib.abc, sys
class Guard(importlib.abc.MetaPathFinder):
  extra, blocked = None, set()
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in self.blocked:
      raise ModuleNotFoundError(f"{{name}} is not in the {{self.extra!r}} extra",
                                name=name)
    return None
guard = Guard()
sys.meta_path.insert(0, guard)
for extra, module, blocked in {steps!r}:
  guard.extra, guard.blocked = extra, set(blocked)
  importlib.import_module(module)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
"""
  return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                        text=True, timeout=300)


@pytest.mark.parametrize("chain", CHAINS, ids=lambda c: "+".join(e for e, _ in c))
def test_each_command_runs_from_its_extra_without_tensorflow(chain):
  out = _import_with_only(chain)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == "[]"  # no TensorFlow, whatever is installed


def test_the_guard_refuses_what_an_extra_lacks():
  # predict's extra has no grain; the training loader needs it
  assert "grain" in _blocked("faces") and "grain" not in _blocked("train")
  out = _import_with_only([("faces", "sfae_jax.data.loader")])
  assert out.returncode != 0
  assert "is not in the 'faces' extra" in out.stderr
