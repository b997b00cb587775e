"""What the inter-AU relation head learned, beside what the data say.

  python -m sfae_jax.relations --workdir RUN [--out relations.png] [--step N]

Left: the training split's co-occurrence, P(AU j present | AU i present) over frames
where both are coded. Middle: the relation head's attention across AU nodes, averaged
over held-out faces (the test split, up to `--frames`): row i, how much AU i's node
draws on each AU's node, what the model actually uses. Right: its face-independent
part, softmax over each row of the learned `relation` parameter (what it would use
if faces said nothing).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def learned_relation(params: dict) -> np.ndarray:
  """Row-softmax of the relation head's `relation` parameter."""
  r = np.asarray(params["relation_head"]["relation"], np.float64)
  e = np.exp(r - r.max(1, keepdims=True))
  return e / e.sum(1, keepdims=True)


def mean_attention(info, variables, split: str, frames: int = 512,
                   batch: int = 32) -> tuple[np.ndarray, int]:
  """(`[A, A]` relation attention averaged over the first `frames` frames of
  `split`, frames used), on one device, as evaluation sees faces (centre crop)."""
  import jax  # pylint: disable=g-import-not-at-top
  from sfae_jax.data import augment, pipeline  # pylint: disable=g-import-not-at-top
  from sfae_jax.models import create_model  # pylint: disable=g-import-not-at-top
  config = info.config
  model = create_model(config, info.au_ids, info.landmark_scheme)
  spec = augment.AugmentSpec.from_config(config, model.landmark_scheme)

  @jax.jit
  def attention(variables, images, landmarks):
    images, _ = augment.centre_crop(images, landmarks, spec)
    return model.apply(variables, images, train=False).relation

  source = pipeline.open_split(info.data_dir, config.dataset_config, split,
                               dataset=pipeline.dataset_of(config))
  total, n = 0.0, 0
  for b in pipeline.eval_batches(source, batch):
    att = np.asarray(attention(variables, b["image"], b["landmarks"]))
    mask = np.asarray(b["mask"])[: max(0, frames - n)]
    total = total + att[: len(mask)][mask].sum(0)
    n += int(mask.sum())
    if n >= frames:
      break
  return total / max(n, 1), n


def figure(co: np.ndarray, att: np.ndarray, rel: np.ndarray, au_ids, path: str,
           frames: int) -> str:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = [f"AU{a:02d}" for a in au_ids]
  co = np.array(co, np.float64)
  np.fill_diagonal(co, np.nan)  # P(i | i) = 1 would set the colour scale
  fig, axes = plt.subplots(1, 3, figsize=(16, 5))
  for ax, m, title in (
      (axes[0], co, "training split: P(column | row), diagonal blank"),
      (axes[1], att, f"relation attention, mean over {frames} held-out faces"),
      (axes[2], rel, "face-independent part: softmax(relation)")):
    im = ax.imshow(m, cmap="viridis", vmin=0)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def load(workdir, step=None):
  """(run record, variables, step) of a relation run's checkpoint `step`
  (default: the newest readable)."""
  from sfae_jax import checkpoints, run_info, sharding  # pylint: disable=g-import-not-at-top
  from sfae_jax.models import create_model  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  info = run_info.read(workdir)
  if not info.config.get("au_relation", False):
    raise ValueError(f"{workdir} has no relation head (config.au_relation is "
                     "off): nothing learned to show.")
  model = create_model(info.config, info.au_ids, info.landmark_scheme)
  variables, step = checkpoints.restore_variables(
      workdir, model, info.config.input_size,
      sharding.replicated(sharding.make_mesh(jax.devices()[:1])), step)
  return info, variables, step


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m sfae_jax.relations",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", help="PNG (default: WORKDIR/relations.png)")
  parser.add_argument("--step", type=int)
  parser.add_argument("--frames", type=int, default=512,
                      help="held-out frames to average the attention over")
  args = parser.parse_args(argv)
  from sfae_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from sfae_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  try:
    info, variables, step = load(args.workdir, args.step)
    train_split, test_split = pipeline.splits(info.config)[:2]
    att, frames = mean_attention(info, variables, test_split, args.frames)
  except (FileNotFoundError, ValueError, checkpoints.CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  out = args.out or os.path.join(args.workdir, "relations.png")
  # the training split's co-occurrence, computed once when the run started
  figure(np.asarray(info.cooccurrence), att, learned_relation(variables["params"]),
         info.au_ids, out, frames)
  print(f"wrote {out} (step {step}; co-occurrence over {info.train_examples} "
        f"{train_split} "
        f"frames, attention over {frames} {test_split} frames)", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
