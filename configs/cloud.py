"""The paper's BP4D recipe on cloud accelerators (GPU / TPU), in bfloat16.

  python -m sfae_jax.train --config configs/cloud.py:fold=1 \
      --workdir gs://BUCKET/sfae/bp4d_f1 --config.data_dir /mnt/data/tfds

Same model, losses, optimiser and schedule as `configs/default.py` (SGD + Nesterov,
lr 0.01 x 0.3 every 2 epochs, 12 epochs, global batch 16); convolutions and matmuls
in bfloat16, everything that accumulates (parameters, BatchNorm statistics, the
loss, the optimiser state) in float32. `launch/` starts it on a Cloud TPU VM or a
SLURM GPU cluster; see docs/cluster.md.

The global batch stays the paper's 16 so the recipe is the paper's; on many
devices that is 1-2 images per device (BatchNorm statistics are synchronised over
all of them). To use a large slice efficiently, raise `batch_size` and scale
`learning_rate` with it (linear scaling); that is no longer the paper's recipe.
"""

from configs import default


def get_config(arg=None):
  args = default.parse_arg(arg, fold=1)
  c = default.get_config(f"fold={args['fold']}")
  c.dtype = "bfloat16"
  c.grain_workers = -1              # JPEG decoding processes: from the host's cores
  c.eval_batch_size = 256
  c.log_every_steps = 100
  c.checkpoint_every_steps = 2000
  return c
