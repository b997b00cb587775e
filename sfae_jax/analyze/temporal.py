"""The deep first-language model the paper proposes: a small temporal
network over per-frame AU tracks, speaker-grouped, with a permutation test.

Averages (`features`, `classify`) cannot see *how* AUs move while a person speaks:
the order and timing of activations. This model reads the tracks themselves:

* **Input**: per video, the main face's AU probabilities frame by frame (the
  face_id with the most successful frames, as `features`), resampled to `fps`;
  frames with `success=0` (no face, decode errors, another face) are masked, never
  interpolated.
* **Model** (`TemporalAUNet`, small by design: data sets of this kind have tens of
  speakers): two 1-D convolutions over time (kernel 5, the second dilated x2: a
  receptive field of 13 frames, 1.3 s at 10 fps) with `features` channels, a masked
  mean over each fixed-length window (`window_s` seconds), dropout, a linear layer:
  one prediction per window. Windows with under half their frames analysed are
  left out. A video's probabilities are the mean over its windows; a speaker's,
  the mean over their videos; every score is over speakers.
* **Training**: AdamW with weight decay, window-level cross-entropy weighted so that
  every speaker counts once and both languages equally; early stopping on an inner
  split of the training speakers (the parameters of the step with the lowest inner
  loss are kept).
* **Splits** (`speaker_splits`): outer folds stratified by language over
  speakers, an inner validation set taken from each fold's training speakers, so
  that no speaker is ever on two sides of any split (tested).
* **Permutation test**: the speakers' languages are shuffled and the whole thing
  (splits, training, early stopping, scoring) is run again, `n_permutations`
  times; p = (1 + #null >= observed) / (1 + n).

All trainings (folds x label permutations) run at once: `jax.vmap` over tasks,
the whole optimisation in one `lax.scan`, in chunks of `chunk` tasks.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from sfae_jax.analyze import features


@dataclasses.dataclass(frozen=True)
class TemporalConfig:
  fps: float = 10.0           # tracks are resampled to this rate
  window_s: float = 4.0       # seconds per window
  features: int = 8           # channels of both convolutions
  kernel: int = 5
  dropout: float = 0.3        # on the pooled window features
  learning_rate: float = 2e-2
  weight_decay: float = 1e-2
  steps: int = 100            # full-batch AdamW steps per training
  n_splits: int = 4           # outer folds (speaker-grouped, stratified)
  inner_fraction: float = 0.25  # of each fold's training speakers, for early stopping
  chunk: int = 32             # trainings per vmapped call
  top_moments: int = 40       # per class, for the figure


@dataclasses.dataclass
class Sequences:
  """Every video's AU track on one time grid, padded to a whole number of
  windows."""
  x: np.ndarray           # [V, T, A] probabilities, 0 where masked
  mask: np.ndarray        # [V, T] bool: an analysed frame of the main face
  videos: list
  speakers: np.ndarray    # [V]
  au_names: list
  window: int             # frames per window
  left_out: list          # "video: why" for the manifest's videos not used

  @property
  def valid(self) -> np.ndarray:
    """[V, S] windows with at least half their frames analysed."""
    v, t = self.mask.shape
    return self.mask.reshape(v, t // self.window, self.window).mean(-1) >= 0.5


def video_sequence(track: pd.DataFrame, fps: float) -> tuple[np.ndarray, np.ndarray,
                                                              list]:
  """(x `[T, A]`, mask `[T]`, AU names) of one track at about `fps` frames/s."""
  aus = [f"AU{a:02d}" for a in features.au_ids_of(track)]
  frames = np.sort(track["frame"].unique())
  main = features.main_face(track)
  if main is None or len(frames) == 0:
    return np.zeros((0, len(aus)), np.float32), np.zeros(0, bool), aus
  stamps = track.drop_duplicates("frame").set_index("frame")["timestamp"]
  dt = float(np.median(np.diff(stamps.loc[frames].to_numpy(float)))) \
      if len(frames) > 1 else 1.0 / fps
  step = max(1, int(round(1.0 / (fps * dt)))) if dt > 0 else 1
  grid = frames[::step]
  face = track[(track["face_id"] == main) & (track["success"] == 1)]
  face = face.drop_duplicates("frame").set_index("frame")
  rows = face.reindex(grid)
  mask = rows[aus].notna().all(axis=1).to_numpy()
  x = np.nan_to_num(rows[aus].to_numpy(np.float32)) * mask[:, None]
  return x.astype(np.float32), mask, aus


def sequences(manifest: pd.DataFrame, track_map: dict,
              config: TemporalConfig) -> Sequences:
  """The manifest's videos that have a track and an analysable window."""
  window = max(1, int(round(config.window_s * config.fps)))
  xs, masks, names, speakers, aus, left_out = [], [], [], [], None, []
  for _, m in manifest.iterrows():
    if m["video"] not in track_map:
      left_out.append(f"{m['video']}: no track")
      continue
    x, mask, names_v = video_sequence(track_map[m["video"]], config.fps)
    if aus is None:
      aus = names_v
    elif names_v != aus:
      raise ValueError(f"{m['video']}: AU columns {names_v} differ from the other "
                       f"tracks' {aus}")
    n_windows = len(mask) // window + (len(mask) % window > 0)
    padded = np.zeros(n_windows * window, bool)
    padded[:len(mask)] = mask
    if not (padded.reshape(n_windows, window).mean(1) >= 0.5).any():
      left_out.append(f"{m['video']}: no {config.window_s:g} s window with half "
                      "its frames analysed")
      continue
    xs.append(x)
    masks.append(mask)
    names.append(m["video"])
    speakers.append(m["speaker"])
  if not xs:
    raise ValueError("no video has a window with half its frames analysed: "
                     + "; ".join(left_out))
  t = window * max(1, math.ceil(max(len(x) for x in xs) / window))
  x_all = np.zeros((len(xs), t, len(aus)), np.float32)
  m_all = np.zeros((len(xs), t), bool)
  for i, (x, mask) in enumerate(zip(xs, masks)):
    x_all[i, :len(x)] = x
    m_all[i, :len(mask)] = mask
  return Sequences(x_all, m_all, names, np.asarray(speakers), aus, window,
                   left_out)


def speaker_splits(languages: pd.Series, n_splits: int, inner_fraction: float,
                   seed: int) -> list[dict]:
  """Outer folds over speakers, stratified by language, each with an inner
  validation set from its training speakers: a list of
  {'fit', 'val', 'test'} arrays of speaker names, pairwise disjoint."""
  rng = np.random.default_rng(seed)
  fold_of = {}
  for lang in sorted(languages.unique()):
    names = rng.permutation(languages.index[languages == lang].to_numpy())
    offset = rng.integers(n_splits)
    for i, name in enumerate(names):
      fold_of[name] = (i + offset) % n_splits
  out = []
  for k in range(n_splits):
    test = [s for s in languages.index if fold_of[s] == k]
    fit, val = [], []
    for lang in sorted(languages.unique()):
      train = rng.permutation([s for s in languages.index
                               if fold_of[s] != k and languages[s] == lang])
      n_val = min(len(train) - 1, max(1, int(round(len(train) * inner_fraction))))
      val += list(train[:n_val])
      fit += list(train[n_val:])
    out.append({"fit": np.asarray(fit), "val": np.asarray(val),
                "test": np.asarray(test)})
  return out


def _model(num_classes: int, config: TemporalConfig, window: int):
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  class TemporalConv(nn.Module):
    """1-D 'SAME' convolution over time as a Dense layer on the `kernel` shifted
    copies: under `vmap` over trainings it is one batched matrix product (XLA's
    CPU convolutions batched over kernels were 10x slower)."""
    features: int
    dilation: int = 1

    @nn.compact
    def __call__(self, h):
      half = config.kernel // 2 * self.dilation
      padded = jnp.pad(h, ((0, 0), (half, half), (0, 0)))
      t = h.shape[1]
      taps = [padded[:, k * self.dilation:k * self.dilation + t]
              for k in range(config.kernel)]
      return nn.Dense(self.features)(jnp.concatenate(taps, axis=-1))

  class TemporalAUNet(nn.Module):
    """`x [V, T, A], mask [V, T] -> (window logits [V, S, K], frame logits
    [V, T, K])`: a window's logits are the masked mean of its frames' (the same
    as the linear layer on the mean feature), so the frame logits say which
    moments carry the evidence."""

    @nn.compact
    def __call__(self, x, mask, *, train: bool):
      h = x * mask[..., None]
      h = nn.gelu(TemporalConv(config.features)(h))
      h = nn.gelu(TemporalConv(config.features, dilation=2)(h))
      h = nn.Dropout(config.dropout, deterministic=not train)(h)
      frames = nn.Dense(num_classes)(h)
      v, t, k = frames.shape
      m = mask.reshape(v, t // window, window, 1).astype(frames.dtype)
      windows = (frames.reshape(v, t // window, window, k) * m).sum(2) / \
          jnp.maximum(m.sum(2), 1.0)
      return windows, frames

  return TemporalAUNet()


@functools.lru_cache(maxsize=8)
def _trainer(num_classes: int, config: TemporalConfig, window: int):
  """jit(vmap over tasks) of a whole training: (keys [P], x, mask, y [P, V],
  w_fit [P, V, S], w_val [P, V, S]) -> (window probabilities [P, V, S, K],
  frame evidence [P, V, T, K]: frame logits minus their mean over classes) of
  the parameters with the lowest inner-validation loss."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  model = _model(num_classes, config, window)
  tx = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)

  def loss_fn(params, key, x, mask, y, w, train):
    logits, _ = model.apply({"params": params}, x, mask, train=train,
                            rngs={"dropout": key})
    ce = optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.broadcast_to(y[:, None], logits.shape[:2]))
    return (ce * w).sum()

  def one(key, x, mask, y, w_fit, w_val):
    init_key, key = jax.random.split(key)
    params = model.init(init_key, x[:1], mask[:1], train=False)["params"]
    opt = tx.init(params)
    best = (params, loss_fn(params, key, x, mask, y, w_val, False))

    def step(carry, k):
      params, opt, best = carry
      grads = jax.grad(loss_fn)(params, k, x, mask, y, w_fit, True)
      updates, opt = tx.update(grads, opt, params)
      params = optax.apply_updates(params, updates)
      val = loss_fn(params, k, x, mask, y, w_val, False)
      better = val < best[1]
      best = jax.tree.map(lambda a, b: jnp.where(better, a, b),
                          (params, val), best)
      return (params, opt, best), None

    (_, _, (params, _)), _ = jax.lax.scan(
        step, (params, opt, best), jax.random.split(key, config.steps))
    logits, frames = model.apply({"params": params}, x, mask, train=False)
    return jax.nn.softmax(logits, -1), frames - frames.mean(-1, keepdims=True)

  return jax.jit(jax.vmap(one, in_axes=(0, None, None, 0, 0, 0)))


def _weights(seqs: Sequences, speakers, y_video, num_classes) -> np.ndarray:
  """[V, S] window weights: speakers in `speakers` only, each speaker's windows
  summing to 1 / (its language's speakers), so that every speaker counts once
  and every language equally; all summing to 1."""
  valid = seqs.valid.astype(np.float64)
  on = np.isin(seqs.speakers, speakers)
  w = np.zeros_like(valid)
  for s in np.unique(seqs.speakers[on]):
    rows = seqs.speakers == s
    n = valid[rows].sum()
    if n:
      w[rows] = valid[rows] / n
  for c in range(num_classes):
    rows = on & (y_video == c)
    n = len(np.unique(seqs.speakers[rows]))
    if n:
      w[rows] /= n
  total = w.sum()
  return (w / total if total else w).astype(np.float32)


@dataclasses.dataclass
class Result:
  balanced_accuracy: float
  chance: float
  p_value: float
  n_permutations: int
  n_splits: int
  null: np.ndarray
  speaker_predictions: pd.DataFrame
  confusion: pd.DataFrame
  courses: dict            # language -> [3 fps + 1, A] mean AU time course
                           # around its most confident moments
  au_names: list
  fps: float
  window: int              # frames per window
  windows: int             # analysable windows
  videos: int
  left_out: list           # "video: why" for videos not used
  splits: list             # the real labels' {'fit', 'val', 'test'} speakers


def classify(manifest: pd.DataFrame, track_map: dict,
             config: Optional[TemporalConfig] = None, n_permutations: int = 50,
             seed: int = 0, progress=None) -> Result:
  """Speaker-grouped cross-validated temporal model + its permutation test."""
  import jax  # pylint: disable=g-import-not-at-top
  config = config or TemporalConfig()
  seqs = sequences(manifest, track_map, config)
  lang_of = manifest.drop_duplicates("speaker").set_index("speaker")[
      "first_language"]
  languages = lang_of.loc[sorted(set(seqs.speakers))]
  classes = sorted(languages.unique())
  counts = languages.value_counts()
  n_splits = int(min(config.n_splits, counts.min()))
  if len(classes) < 2 or n_splits < 2 or counts.min() < 3:
    raise ValueError("the temporal model needs at least 2 first languages with 3 "
                     f"speakers each (fit, early stopping, test); have "
                     f"{counts.to_dict()}")
  code = {c: i for i, c in enumerate(classes)}
  rng = np.random.default_rng(seed)
  labellings = [languages] + [
      pd.Series(rng.permutation(languages.to_numpy()), index=languages.index)
      for _ in range(n_permutations)]
  tasks = []  # (labelling, split)
  for i, lab in enumerate(labellings):
    for split in speaker_splits(lab, n_splits, config.inner_fraction, seed + i):
      tasks.append((i, split))
  y = np.stack([lab.loc[seqs.speakers].map(code).to_numpy() for lab in labellings])
  train = _trainer(len(classes), config, seqs.window)
  probs, evidence = [], []
  chunk = min(config.chunk, len(tasks))
  for start in range(0, len(tasks), chunk):
    part = tasks[start:start + chunk]
    pad = part + [part[-1]] * (chunk - len(part))  # one compiled shape
    ys = np.stack([y[i] for i, _ in pad])
    w_fit = np.stack([_weights(seqs, s["fit"], y[i], len(classes)) for i, s in pad])
    w_val = np.stack([_weights(seqs, s["val"], y[i], len(classes)) for i, s in pad])
    keys = jax.random.split(jax.random.key(seed), len(tasks) + chunk)[
        start:start + chunk]
    out, frames = train(keys, seqs.x, seqs.mask, ys, w_fit, w_val)
    probs.extend(np.asarray(out)[:len(part)])
    # the frame evidence only for the real labels' trainings (the figure)
    evidence.extend(np.asarray(frames[k]) if i == 0 else None
                    for k, (i, _) in enumerate(part))
    if progress:
      progress(min(start + chunk, len(tasks)), len(tasks))
  valid = seqs.valid
  video_p = [(p * valid[..., None]).sum(1) / np.maximum(valid.sum(1), 1)[:, None]
             for p in probs]  # [V, K] per task
  speakers = languages.index.to_numpy()
  scores = np.zeros(len(labellings))
  predicted = [dict() for _ in labellings]
  for (i, split), vp in zip(tasks, video_p):
    for s in split["test"]:
      predicted[i][s] = vp[seqs.speakers == s].mean(0)
  for i, lab in enumerate(labellings):
    pred = np.array([np.argmax(predicted[i][s]) for s in speakers])
    scores[i] = balanced_accuracy_score(lab.map(code).to_numpy(), pred)
  observed, null = scores[0], scores[1:]
  p_value = (1 + np.sum(null >= observed)) / (1 + n_permutations)
  pred = np.array([classes[np.argmax(predicted[0][s])] for s in speakers])
  table = pd.DataFrame({"speaker": speakers,
                        "first_language": languages.to_numpy(),
                        "predicted": pred,
                        **{f"p_{c}": [predicted[0][s][k] for s in speakers]
                           for k, c in enumerate(classes)}})
  cm = pd.crosstab(table["first_language"], table["predicted"]).reindex(
      index=classes, columns=classes, fill_value=0)
  courses = _confident_courses(seqs, tasks, evidence, languages, classes,
                               config)
  return Result(
      balanced_accuracy=float(observed), chance=1.0 / len(classes),
      p_value=float(p_value), n_permutations=n_permutations, n_splits=n_splits,
      null=null, speaker_predictions=table, confusion=cm, courses=courses,
      au_names=seqs.au_names, fps=config.fps, window=seqs.window,
      windows=int(valid.sum()), videos=len(seqs.videos), left_out=seqs.left_out,
      splits=[split for i, split in tasks if i == 0])


def _confident_courses(seqs, tasks, evidence, languages, classes, config) -> dict:
  """Per language: the mean AU time course `[2 * half + 1, A]` (half = 1.5
  seconds either side) around the `top_moments` held-out frames of that
  language's speakers where the model saw the most evidence for it (real labels;
  at most one moment per 3 seconds of a video)."""
  half = max(1, int(round(1.5 * config.fps)))
  v, t, a = seqs.x.shape
  padded = np.pad(seqs.x, ((0, 0), (half, half), (0, 0)))
  pmask = np.pad(seqs.mask, ((0, 0), (half, half)))
  out = {}
  for k, lang in enumerate(classes):
    scored = []
    for (i, split), ev in zip(tasks, evidence):
      if i != 0:
        continue
      for vid in np.flatnonzero(np.isin(seqs.speakers, split["test"])):
        if languages[seqs.speakers[vid]] != lang:
          continue
        e = np.where(seqs.mask[vid], ev[vid, :, k], -np.inf)
        for start in range(0, t, 2 * half):  # the best frame of each 3 s
          f = start + int(np.argmax(e[start:start + 2 * half]))
          if np.isfinite(e[f]):
            scored.append((e[f], vid, f))
    scored.sort(key=lambda r: -r[0])
    chosen = scored[:config.top_moments]
    if chosen:
      segs = np.stack([padded[vid, f:f + 2 * half + 1] for _, vid, f in chosen])
      masks = np.stack([pmask[vid, f:f + 2 * half + 1] for _, vid, f in chosen])
      out[lang] = (segs * masks[..., None]).sum(0) / np.maximum(
          masks.sum(0), 1)[:, None]
  return out
