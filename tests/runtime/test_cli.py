"""A mistyped `--config.x=y` override is one line naming the flag and the
nearest field, or the type the field wants."""

import os

import pytest

from sfae_jax.runtime import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "test.py")


@pytest.mark.parametrize("override,expected", [
    ("--config.learning_rat=0.1", "--config.learning_rat: the config has no field "
     "learning_rat; did you mean --config.learning_rate?"),
    ("--config.model.use_lrll=False", "--config.model.use_lrll: the config has no "
     "field model.use_lrll; did you mean --config.model.use_lrl?"),
    ("--config.modl.use_lrl=False", "--config.modl.use_lrl: the config has no field "
     "modl; did you mean --config.model?"),
    ("--config.batch_size=abc", f"--config.batch_size=abc: batch_size must be an "
     f"integer, as in {CONFIG} (8); 'abc' is not."),
    ("--config.learning_rate=fast", "--config.learning_rate=fast: learning_rate "
     f"must be a number, as in {CONFIG} (0.01); 'fast' is not."),
    ("--config.flip=maybe", "--config.flip=maybe: flip must be true or false, as "
     f"in {CONFIG} (True); 'maybe' is not."),
])
def test_the_faulty_override_is_named_with_the_fix(override, expected):
  for spec in (["--config", CONFIG], [f"--config={CONFIG}"]):
    argv = ["train", *spec, "--workdir", "w", "--config.batch_size=4", override]
    assert cli._override_error(argv) == expected  # pylint: disable=protected-access


def test_good_overrides_leave_the_parsers_message():
  argv = ["train", "--config", CONFIG, "--config.batch_size=4", "--config.flip=0",
          "--config.model.use_lrl=False"]
  assert cli._override_error(argv) is None  # pylint: disable=protected-access
