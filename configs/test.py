"""A few steps of the tiny model on a small synthetic BP4D, for tests (seconds).

  python -m sfae_jax.train --config configs/test.py --workdir /tmp/t \
      --config.data_dir DIR   # DIR holds a built synthetic bp4d
"""

from configs import default


def get_config(arg=None):
  del arg
  c = default.get_config("fold=3")
  c.model_name = "sfae_net_tiny"
  c.model.local_branch = "light"  # the deep branch is tested in tests/models (speed)
  c.grain_workers = 0
  c.crop_size = 176
  c.input_size = 64
  c.max_rotation = 5.0
  c.batch_size = 8
  c.eval_batch_size = 16
  c.num_epochs = 1
  c.num_train_steps = 6
  c.log_every_steps = 2
  c.checkpoint_every_steps = 3
  c.keep_checkpoints = 5
  return c


def with_data(data_dir, model=None, **overrides):
  """This config, unlocked, reading `data_dir`, with `overrides` of its fields and
  `model` (a dict) of its model block's (for tests). A field the config does not
  have is a KeyError: a test must not set a field nothing reads."""
  c = get_config()
  c.unlock()
  c.data_dir = data_dir
  for block, values in ((c.model, model or {}), (c, overrides)):
    unknown = sorted(set(values) - set(block.keys()))
    if unknown:
      raise KeyError(f"configs/test.py has no field {unknown}")
    block.update(values)
  return c
