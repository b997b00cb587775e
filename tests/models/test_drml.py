"""DRML, the second model family: its layers, and the shared train, evaluate,
predict and compile code running it with nothing model-specific."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import drml as drml_config
from configs import test as test_config
from sfae_jax.face import action_units
from sfae_jax.models import create_model
from sfae_jax.models.drml import DRML, DRMLTiny


def _faces(n=2, size=96, seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)),
                     jnp.uint8)


def test_the_papers_layers_at_its_input_size():
  # 170 in the paper; the first convolution is SAME here, so 176 keeps the 8x8
  # region grid: 176 -> pool 88 -> 81 -> 74 -> 69 -> 65 (8, 8, 6, 5 VALID).
  model = DRML(au_ids=action_units.BP4D)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), _faces(1, 176),
                                             train=False))["params"]
  assert shapes["conv1"]["kernel"].shape == (11, 11, 3, 32)
  # the region layer: one 3x3 kernel per cell of the 8x8 grid
  assert shapes["region"]["conv"]["kernel"].shape[0] == 64
  assert shapes["fc7"]["kernel"].shape == (65 * 65 * 16, 4096)
  assert shapes["fc8"]["kernel"].shape == (4096, 2048)
  assert shapes["head"]["kernel"].shape == (2048, 12)


def test_outputs_dropout_and_refusals():
  model = DRMLTiny(au_ids=(1, 2, 4), intensity_au_ids=(6, 12))
  faces = _faces()
  variables = model.init(jax.random.key(0), faces, train=False)
  out = model.apply(variables, faces, train=False)
  assert out.au_logits.shape == (2, 3) and out.attention is None
  assert out.intensity.shape == (2, 2)
  assert bool(jnp.all((out.intensity >= 0) & (out.intensity <= 5)))
  again = model.apply(variables, faces, train=False)
  np.testing.assert_array_equal(out.au_logits, again.au_logits)

  def train_logits(seed):
    out, _ = model.apply(variables, faces, train=True, mutable=["batch_stats"],
                         rngs={"dropout": jax.random.key(seed)})
    return np.asarray(out.au_logits)
  assert not np.allclose(train_logits(1), train_logits(2))  # dropout is on

  with pytest.raises(ValueError, match="gt_landmark_attention"):
    model.apply(variables, faces, train=False, landmarks=jnp.zeros((2, 68, 2)))
  with pytest.raises(ValueError, match="too small"):
    model.init(jax.random.key(0), _faces(1, 32), train=False)
  assert model.loss_terms(out, None, None, None) == {}


def test_configs_drml_builds_drml_on_the_synthetic_default():
  config = drml_config.get_config()
  assert config.synthetic.enabled and config.input_size == 96
  model = create_model(config, action_units.BP4D, "ibug68")
  assert isinstance(model, DRML) and tuple(model.fc_features) == (512, 256)
  paper = create_model(drml_config.get_config("synthetic=0"), action_units.BP4D,
                       "ibug68")
  assert tuple(paper.fc_features) == (4096, 2048)


@pytest.fixture(scope="module")
def drml_run(synthetic_tfds, tmp_path_factory):
  """configs/test.py with DRML (tiny) through `train.train_and_evaluate`."""
  from sfae_jax import train  # pylint: disable=g-import-not-at-top
  config = test_config.with_data(synthetic_tfds)
  config.model_name = "drml_tiny"
  config.model = ml_collections.ConfigDict()
  workdir = str(tmp_path_factory.mktemp("drml") / "run")
  return workdir, train.train_and_evaluate(config, workdir)


def test_drml_trains_and_evaluates_through_the_shared_code(drml_run):
  from sfae_jax import evaluate  # pylint: disable=g-import-not-at-top
  workdir, result = drml_run
  assert result["step"] == 6 and result["num_examples"] == 20
  with open(os.path.join(workdir, "run.json")) as f:
    assert json.load(f)["config"]["model_name"] == "drml_tiny"
  # DRML's loss is the shared AU (+ intensity) loss alone: no landmark terms
  params = open(os.path.join(workdir, "parameters.txt")).read()
  assert "landmark" not in params and "fc7/kernel" in params
  again = evaluate.evaluate_workdir(workdir)
  np.testing.assert_array_equal(np.asarray(again["f1"], float),
                                np.asarray(result["f1"], float))
  assert result["intensity"]["au_ids"] == [6, 10, 12, 14, 17]


def test_drml_predicts_through_the_shared_code(drml_run, faces_dir):
  from sfae_jax.predict.detector import Detector  # pylint: disable=g-import-not-at-top
  det = Detector(drml_run[0], backend="dlib")
  table = det.detect([os.path.join(faces_dir, "single_face.jpg")])
  assert list(table["success"]) == [1]
  probs = table[[f"AU{a:02d}" for a in action_units.BP4D]].to_numpy()
  assert probs.shape == (1, 12) and ((probs > 0) & (probs < 1)).all()
  assert table[[f"AU{a:02d}_r" for a in action_units.BP4D_INTENSITY]].notna().all(
      axis=None)


def test_drml_compiles_for_a_tpu_slice():
  # predict's forward: the train and eval steps (which compile here with the
  # same builders, 3-4x slower) run on the CPU above; `tools.aot` compiles
  # them for TPUs from the command line.
  from sfae_jax.tools.aot import fit, targets  # pylint: disable=g-import-not-at-top
  config = test_config.with_data("")
  config.model_name = "drml_tiny"
  config.model = ml_collections.ConfigDict()
  check = fit.check(config, targets.parse("v5e:2x2"), "predict_forward", batch=2)
  assert check.compiled, check.error
  assert check.memory.total < check.usable_bytes
