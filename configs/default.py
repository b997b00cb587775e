"""The paper's BP4D recipe (SFAE-Net, JAA-Net's training rules).

  python -m sfae_jax.train --config configs/default.py:fold=1 --workdir runs/bp4d_f1 \
      --config.data_dir ~/tensorflow_datasets

Fold k tests on BP4D part k and trains on the other two (subject-exclusive, JAA-Net's
parts). Needs a built `bp4d` (`tfds build tfds_bp4d/bp4d --manual_dir <BP4D root>`).
Expected (paper, 3-fold average): mean F1 62.7 %, mean accuracy 79.5 %; average three
folds with `python -m sfae_jax.evaluate --workdirs runs/bp4d_f1 runs/bp4d_f2 runs/bp4d_f3`.
Other configs start from this one and change a few fields.
"""

import ml_collections


def parse_arg(arg, **defaults) -> dict:
  """'fold=2,seed=3' -> {'fold': 2, 'seed': 3}, typed like the defaults."""
  out = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in defaults:
      raise ValueError(f"Unknown config argument {key!r}; known: {sorted(defaults)}.")
    out[key] = type(defaults[key])(value)
  return out


def get_config(arg=None):
  args = parse_arg(arg, fold=1)
  c = ml_collections.ConfigDict()

  # Data.
  c.data_dir = "~/tensorflow_datasets"  # TFDS folder holding the built dataset
  c.dataset = "bp4d"                # bp4d | disfa (builders in tfds_bp4d/<name>/)
  c.dataset_config = "bp4d49"       # builder config: bp4d49 (BP4D's 49 points) or
                                    # ibug68; DISFA: disfa49 or disfa66
  c.fold = args["fold"]             # test part; train on the other two
  c.train_split = ""                # '' = derived from fold, e.g. 'part2+part3'
  c.eval_split = ""                 # '' = derived from fold, e.g. 'part1'
  c.grain_workers = -1              # JPEG-decoding processes: -1 = from the host's
                                    # cores (2 kept for training), 0 = inline
  c.synthetic = ml_collections.ConfigDict()
  c.synthetic.enabled = False       # generate + build a synthetic BP4D if not built
  c.synthetic.manual_dir = ""       # where the generated BP4D layout goes
  c.synthetic.subjects = 12         # BP4D subject ids, drawn from the 3 parts in turn
  c.synthetic.tasks = 4             # tasks T1..Tn per subject
  c.synthetic.frames = 40           # AU-coded frames per task
  c.synthetic.size = (320, 240)     # rendered frame size (W, H)
  c.synthetic.seed = 0
  c.synthetic.workers = 2           # generator processes

  # Model: `model_name` built with the fields of `model` (sfae_jax.models.registry).
  c.model_name = "sfae_net"         # sfae_net | sfae_net_tiny
  c.model = ml_collections.ConfigDict()
  c.model.use_lrl = True            # landmark-assisted region learning (f1, f2)
  c.model.use_msl = True            # multi-scale region learning (f3)
  c.model.local_branch = "deep"     # per-AU local learning: deep (JAA-Net's
                                    # extractor, spatial f1) | light (2 convs, pooled)
  c.model.attention_refine = False  # JAA-Net's attention refinement (+ refine_weight)
  c.model.au_relation = False       # inter-AU relation head (beyond the paper;
  c.model.relation_features = 64    # sfae_jax/models/relation.py): AU nodes,
  c.model.relation_layers = 1       # attention across them, per-AU classifier
  c.relation_prior = False          # start the relation head's matrix at log P(j | i)
                                    # of the training split (run.json)
  c.crop_size = 176                 # crop of the 200x200 stored face (paper: 176)
  c.input_size = 176                # network input side; the crop is resized to it
  c.max_rotation = 10.0             # degrees, uniform +-: the paper's "randomly
                                    # rotated" (it gives no range; JAA-Net's code has
                                    # no rotation); landmarks rotate with the image
  c.flip = True                     # mirror with p=0.5, landmarks re-indexed
  c.gt_landmark_attention = False   # False: attention on the model's own landmarks
                                    # (paper, JAA-Net); True: on ground truth (ablation)
  c.dtype = "float32"               # float32 | bfloat16: convolutions and matmuls
                                    # (params, BN statistics, attention maps, loss
                                    # and optimiser state stay float32)
  c.conv_impl = "auto"              # auto | xla | cpu | grouped: sfae_jax.models.conv
                                    # (same maths; 'auto' picks by platform)

  # Loss (JAA-Net): au_weight * (ce + dice) + landmark_weight * landmark
  # (+ refine_weight * refine with attention_refine); the landmark term is
  # normalised by the eye-centre distance, as JAA-Net's.
  c.au_weight = 1.0
  c.dice_weight = 1.0
  c.dice_divide_by_batch = False    # True: JAA-Net's code (dice ratio / batch size)
  c.landmark_weight = 0.5
  c.refine_weight = 2e-4            # JAA-Net's lambda_refine
  # AU intensity (0-5): a second head on the fused feature for the AUs the
  # training data codes intensity for (BP4D: 6, 10, 12, 14, 17; DISFA: its 12),
  # + intensity_weight * masked squared error on the 0-1 scale.
  c.intensity = "auto"              # auto (on when the data has intensity) | on | off
  c.intensity_weight = 1.0

  # Optimisation: SGD + Nesterov, lr 0.01 x 0.3 every 2 epochs, 12 epochs.
  c.batch_size = 16                 # global batch (all devices, all hosts)
  c.num_epochs = 12
  c.num_train_steps = -1            # -1: num_epochs of data; > 0 caps the run
  c.learning_rate = 0.01
  c.lr_decay_rate = 0.3
  c.lr_decay_epochs = 2             # staircase: decay every this many epochs
  c.optimizer = "sgd"               # sgd (paper) | adamw
  c.momentum = 0.9
  c.nesterov = True
  c.weight_decay = 5e-4             # L2 added to the gradient (PyTorch SGD style)
  c.seed = 0
  c.init_from = ""                  # a run folder: start from its parameters (newest
                                    # readable checkpoint; AU head re-initialised when
                                    # the AU sets differ; sfae_jax.training.transfer)

  # Evaluation, logging, checkpoints.
  c.eval_batch_size = 64            # global; the last batch is padded, never dropped
  c.threshold = 0.5                 # probability -> occurrence
  c.log_every_steps = 50
  c.checkpoint_every_steps = 1000   # and always at the end
  c.keep_checkpoints = 3
  return c
