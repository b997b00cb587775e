"""What the inter-AU relation head learned, beside what the data say (issue 15).

  python -m sfae_jax.relations --workdir RUN [--out relations.png] [--step N]

Left: the training split's co-occurrence, P(AU j present | AU i present) over frames
where both are coded. Right: the relation head's learned face-independent relation
matrix as attention weights, softmax over each row of its `relation` parameter
(row i: how much AU i's node draws on each AU's when faces say nothing).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def cooccurrence(labels: np.ndarray) -> np.ndarray:
  """`[N, A]` labels in {-1, 0, 1} -> `[A, A]` P(j present | i present), NaN where
  AU i is never present with j coded."""
  labels = np.asarray(labels)
  present, known = labels == 1, labels >= 0
  both = present[:, :, None] & present[:, None, :]
  given = present[:, :, None] & known[:, None, :]
  with np.errstate(invalid="ignore", divide="ignore"):
    return both.sum(0) / given.sum(0)


def learned_relation(params: dict) -> np.ndarray:
  """Row-softmax of the relation head's `relation` parameter."""
  r = np.asarray(params["relation_head"]["relation"], np.float64)
  e = np.exp(r - r.max(1, keepdims=True))
  return e / e.sum(1, keepdims=True)


def figure(co: np.ndarray, rel: np.ndarray, au_ids, path: str) -> str:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = [f"AU{a:02d}" for a in au_ids]
  fig, axes = plt.subplots(1, 2, figsize=(11, 5))
  for ax, m, title in ((axes[0], co, "training split: P(column | row)"),
                       (axes[1], rel, "learned relation (row softmax)")):
    im = ax.imshow(m, cmap="viridis", vmin=0)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m sfae_jax.relations",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", help="PNG (default: WORKDIR/relations.png)")
  parser.add_argument("--step", type=int)
  args = parser.parse_args(argv)
  from sfae_jax import checkpoints, run_info, sharding  # pylint: disable=g-import-not-at-top
  from sfae_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from sfae_jax.models import create_model  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  try:
    info = run_info.read(args.workdir)
    if not info.config.get("au_relation", False):
      raise ValueError(f"{args.workdir} has no relation head (config.au_relation "
                       "is off): nothing learned to show.")
    model = create_model(info.config, info.au_ids, info.landmark_scheme)
    variables, step = checkpoints.restore_variables(
        args.workdir, model, info.config.input_size,
        sharding.replicated(sharding.make_mesh(jax.devices()[:1])), args.step)
    split = pipeline.splits(info.config)[0]
    source = pipeline.open_split(info.data_dir, info.config.dataset_config, split,
                                 decode_images=False,
                                 dataset=pipeline.dataset_of(info.config))
    labels = np.stack([source[i]["au"] for i in range(len(source))])
  except (FileNotFoundError, ValueError, checkpoints.CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  out = args.out or os.path.join(args.workdir, "relations.png")
  figure(cooccurrence(labels), learned_relation(variables["params"]),
         info.au_ids, out)
  print(f"wrote {out} (step {step}, {len(labels)} training frames)", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
