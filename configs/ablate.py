"""The ablation recipe: the embedded default (configs/synthetic.py) cut to fit 2 CPU
cores x 21 runs (docs/results.md's 7 variants x 3 seeds).

  python -m sfae_jax.tools.ablate --config configs/ablate.py --workdir runs/ablate \
      --variants full,no_lrl,no_msl,stem_only,light_local,gt_attention,refine

Same synthetic BP4D (41 subjects x 2 tasks; train parts 1+2, test part 3 = 13
unseen subjects), tiny SFAE-Net, AdamW; reduced to a 64x64 input (the 176 crop
resized) and 2 epochs (276 steps; lr x 0.3 after the first), every variant alike.
About 2.5 minutes per run on 2 CPU cores; `sfae_jax.tools.ablate` runs each variant
with 3 seeds (docs/results.md, "Ablations").
"""

from configs import synthetic


def get_config(arg=None):
  c = synthetic.get_config(arg)
  c.model.local_branch = "deep"     # the full model's (synthetic.py runs light)
  c.input_size = 64
  c.num_epochs = 2
  c.lr_decay_epochs = 1
  c.log_every_steps = 100
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 1
  return c
