"""`python -m sfae_jax.tools.summary`: the config's model as a run builds it (49
points and the intensity head for BP4D), and the variants that apply to it."""

import functools
import importlib

import jax
import jax.numpy as jnp

from sfae_jax.face import action_units
from sfae_jax.models.drml import DRML
from sfae_jax.models.sfae_net import SFAENetTiny

cli = importlib.import_module("sfae_jax.tools.summary")


def _params(model, size):
  _, v = jax.eval_shape(functools.partial(model.init_with_output, train=False),
                        jax.random.key(0), jnp.zeros((1, size, size, 3)))
  return sum(x.size for x in jax.tree.leaves(v["params"]))


def test_summary_prints_the_49_point_model_of_the_default_config(capsys):
  cli.main(["--tiny", "--size", "64"])
  out = capsys.readouterr().out
  assert "49 landmarks, 12 AUs (5 with intensity), 64x64 input" in out
  rows = {l.split()[0]: l.split()[1:] for l in out.splitlines()[2:]}
  assert set(rows) == set(cli.SUMMARY_VARIANTS)
  tiny = functools.partial(SFAENetTiny, landmark_scheme="bp4d49",
                           intensity_au_ids=action_units.BP4D_INTENSITY)
  want = _params(tiny(), 64)
  assert rows["full"][0] == f"{want:,}"
  assert rows["full"][0] != f"{_params(SFAENetTiny(), 64):,}"  # not the 68-point
  light = _params(tiny(local_branch="light"), 64)
  assert rows["light_local"][0] == f"{light:,}"
  assert float(rows["stem_only"][1]) < float(rows["full"][1])


def test_summary_of_drml_has_no_sfae_variants(capsys):
  cli.main(["--config", "configs/drml.py", "--size", "96"])
  out = capsys.readouterr().out
  rows = {l.split()[0]: l.split()[1:] for l in out.splitlines()[2:]}
  assert list(rows) == ["full"]
  want = _params(DRML(landmark_scheme="bp4d49", fc_features=(512, 256),
                      intensity_au_ids=action_units.BP4D_INTENSITY), 96)
  assert rows["full"][0] == f"{want:,}"


def test_config_overrides_apply_as_in_train(capsys):
  cli.main(["--config", "configs/drml.py", "--config.model.fc_features=(64, 32)",
            "--size", "96"])
  rows = {l.split()[0]: l.split()[1:]
          for l in capsys.readouterr().out.splitlines()[2:]}
  want = _params(DRML(landmark_scheme="bp4d49", fc_features=(64, 32),
                      intensity_au_ids=action_units.BP4D_INTENSITY), 96)
  assert rows["full"][0] == f"{want:,}"
