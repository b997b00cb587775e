"""What the inter-AU relation head learned, beside what the data say.

  python -m sfae_jax.tools.relations --workdir RUN [--out relations.png] [--step N]

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

import jax
import matplotlib
import numpy as np

from sfae_jax.data import loader, registry, sources
from sfae_jax.training import trained_run

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file backend)


def learned_relation(params: dict) -> np.ndarray:
  """Row-softmax of the relation head's `relation` parameter."""
  r = np.asarray(params["relation_head"]["relation"], np.float64)
  e = np.exp(r - r.max(1, keepdims=True))
  return e / e.sum(1, keepdims=True)


def mean_attention(run: trained_run.TrainedRun, split: str, frames: int = 512,
                   batch: int = 32) -> tuple[np.ndarray, int]:
  """(`[A, A]` relation attention averaged over the first `frames` frames of
  `split`, frames used), on one device, through the inference forward."""
  config = run.info.config
  forward = trained_run.inference_forward(run.model, config)
  attention = jax.jit(lambda variables, images: forward(variables, images)[1].relation)
  source = sources.open_split(run.info.data_dir, config.dataset_config, split,
                               dataset=registry.of_config(config).name)
  total, n = 0.0, 0
  for b in loader.eval_batches(source, batch):
    att = np.asarray(attention(run.variables, b["image"]))
    mask = np.asarray(b["mask"])[: max(0, frames - n)]
    total = total + att[: len(mask)][mask].sum(0)
    n += int(mask.sum())
    if n >= frames:
      break
  return total / max(n, 1), n


def figure(co: np.ndarray, att: np.ndarray, rel: np.ndarray, au_ids, path: str,
           frames: int) -> str:
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


def load(workdir, step=None) -> trained_run.TrainedRun:
  """A relation run's checkpoint `step` (default: the newest readable)."""
  run = trained_run.load(workdir, step)
  if not run.info.config.model.get("au_relation"):
    raise ValueError(f"{workdir} has no relation head (config.model.au_relation "
                     "is off): nothing learned to show.")
  return run


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m sfae_jax.tools.relations",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", help="PNG (default: WORKDIR/relations.png)")
  parser.add_argument("--step", type=int)
  parser.add_argument("--frames", type=int, default=512,
                      help="held-out frames to average the attention over")
  args = parser.parse_args(argv)
  try:
    run = load(args.workdir, args.step)
    info, variables, step = run.info, run.variables, run.step
    train_split, test_split = sources.splits(info.config)[:2]
    att, frames = mean_attention(run, test_split, args.frames)
  except trained_run.LOAD_ERRORS as e:
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
