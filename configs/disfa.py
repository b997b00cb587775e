"""DISFA, the second benchmark: 8 AUs (1, 2, 4, 6, 9, 12, 25, 26; present when
intensity >= 2), 3 subject-exclusive folds of 9 subjects, from a BP4D-trained run
(as JAA-Net and ME-GraphAU):

  python -m sfae_jax.train --config configs/disfa.py:fold=1 --workdir runs/disfa_f1 \
      --config.init_from runs/bp4d_f1 --config.data_dir ~/tensorflow_datasets

Needs a built `disfa` (`python -m tfds_bp4d.build --dataset disfa --manual_dir
<DISFA root>`). Training rules are the BP4D recipe's (configs/default.py);
`init_from` copies the BP4D run's parameters, the rows of the AUs both datasets
code (1, 2, 4, 6, 12) in the per-AU branch, and re-initialises the AU head.

`configs/disfa.py:synthetic=1` is the same on a synthetic DISFA generated and built
on first use (tfds_bp4d.synthetic.disfa), with configs/synthetic.py's model and
optimiser, so that it starts from a configs/synthetic.py run:

  python -m sfae_jax.train --config configs/disfa.py:synthetic=1 \
      --workdir runs/disfa_synthetic --config.init_from runs/synthetic

Expected there (measured; docs/results.md): mean F1 on part 1 about 0.2 (DISFA's
rare AUs are predicted absent), accuracy about 0.88, intensity of the 12 AUs mean
ICC(3,1) about 0.14 (the intensity head starts fresh: BP4D codes other AUs).
"""

from configs import default, synthetic as synthetic_config


def get_config(arg=None):
  args = default.parse_arg(arg, fold=1, synthetic=0)
  if args["synthetic"]:
    c = synthetic_config.get_config()
    c.fold = args["fold"]
    c.synthetic.manual_dir = "data/disfa_synthetic"
    c.synthetic.subjects = 27       # DISFA's 27: 9 per part
    c.synthetic.frames = 60         # per subject (DISFA: 4,845)
    c.num_epochs = 4
    c.lr_decay_epochs = 2
  else:
    c = default.get_config(f"fold={args['fold']}")
  c.dataset = "disfa"
  c.dataset_config = "disfa49"      # disfa66: DISFA's 66 points
  return c
