"""DRML (Zhao et al. 2016), the second model family, through the same train,
evaluate, predict and aot code as SFAE-Net (sfae_jax/models/drml.py).

  python -m sfae_jax.train --config configs/drml.py --workdir runs/drml_synthetic
  python -m sfae_jax.train --config configs/drml.py:synthetic=0,fold=1 \
      --workdir runs/drml_f1 --config.data_dir ~/tensorflow_datasets

By default it trains on the embedded synthetic BP4D with configs/synthetic.py's
data, input size and optimiser, so that its result sits beside SFAE-Net's on
the same frames (docs/results.md). `synthetic=0` is the paper-sized DRML on a
built BP4D with the BP4D recipe of configs/default.py. DRML learns from the AU
labels alone: the landmark and refinement weights have nothing to act on.
"""

import ml_collections

from configs import default, synthetic


def get_config(arg=None):
  args = default.parse_arg(arg, fold=1, synthetic=1, seed=0)
  if args["synthetic"]:
    c = synthetic.get_config(f"seed={args['seed']}")
  else:
    c = default.get_config(f"fold={args['fold']}")
    c.seed = args["seed"]
  c.model_name = "drml"
  c.model = ml_collections.ConfigDict()
  c.model.conv_features = 32        # conv1, 11x11 (the paper's)
  c.model.conv_kernel = 11
  c.model.region_grid = 8           # the region layer's 8x8 cells
  c.model.trunk_features = (16, 16, 16, 16)
  c.model.trunk_kernels = (8, 8, 6, 5)
  c.model.fc_features = (4096, 2048)
  c.model.dropout = 0.5
  if args["synthetic"]:
    # The synthetic run's 96x96 faces leave a 25x25x16 map: fully connected
    # layers of 4096 and 2048 would be 50M parameters for 2,220 frames.
    c.model.fc_features = (512, 256)
  return c
