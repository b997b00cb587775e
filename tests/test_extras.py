"""What each command imports: no TensorFlow outside the dataset builders' tests."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_train_evaluate_predict_and_analyze_import_no_tensorflow():
  # Everything the commands import up front, plus what they import on the way
  # (the TensorBoard writer, dataset preparation, the synthetic generators).
  modules = ["sfae_jax.train", "sfae_jax.evaluate", "sfae_jax.predict.__main__",
             "sfae_jax.analyze.__main__", "sfae_jax.training.tensorboard",
             "tensorboardX", "tfds_bp4d.prepare", "tfds_bp4d.synthetic.bp4d"]
  code = ("import importlib, sys\n"
          f"for m in {modules!r}: importlib.import_module(m)\n"
          "print(sorted(m for m in sys.modules if m.split('.')[0] in "
          "('tensorflow', 'keras', 'tf_keras')))\n")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                       text=True, check=True)
  assert out.stdout.strip() == "[]"
