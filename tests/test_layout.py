"""The package's layering, as pyproject.toml's import-linter contracts state it,
and imports at module level only (except the optional landmark backends and Ray)."""

import ast
import os
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Optional heavy dependencies, imported where they are used (each says why).
OPTIONAL = {("sfae_jax/face/backends.py", "dlib"),
            ("sfae_jax/face/backends.py", "face_alignment"),
            ("sfae_jax/predict/cluster.py", "ray")}


def test_import_contracts_hold():
  lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
  r = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout[-3000:] + r.stderr


def _function_level_imports(path):
  tree = ast.parse(open(path).read())
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      for inner in ast.walk(node):
        if isinstance(inner, ast.Import):
          yield from (a.name for a in inner.names)
        elif isinstance(inner, ast.ImportFrom):
          yield inner.module or "."


def test_no_function_level_imports_but_the_optional_backends():
  found = set()
  for package in ("sfae_jax", "tfds_bp4d"):
    for folder, _, names in os.walk(os.path.join(ROOT, package)):
      for name in names:
        if name.endswith(".py"):
          path = os.path.join(folder, name)
          rel = os.path.relpath(path, ROOT)
          found |= {(rel, m.split(".")[0]) for m in _function_level_imports(path)}
  assert found == OPTIONAL, sorted(found - OPTIONAL)


def test_predict_contract_forbids_every_training_module_but_the_loaded_run():
  """A module added to training/ is out of predict's reach until it is meant
  to be in it (the contract lists modules one by one)."""
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    contracts = tomllib.load(f)["tool"]["importlinter"]["contracts"]
  predict = next(c for c in contracts
                 if c.get("source_modules") == ["sfae_jax.predict"])
  training = {f"sfae_jax.training.{f[:-3]}" for f in
              os.listdir(os.path.join(ROOT, "sfae_jax", "training"))
              if f.endswith(".py") and f != "__init__.py"}
  assert training - set(predict["forbidden_modules"]) == {
      "sfae_jax.training.trained_run"}
