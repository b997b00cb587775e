"""The temporal first-language model: which AU moves before which, and by how
much, learned from per-frame AU tracks, speaker-grouped, with a permutation test.

Averages (`features`, `classify`) cannot see *how* AUs move while a person speaks:
the order and timing of activations at phonetic scales (tens to hundreds of
milliseconds). This model reads the tracks themselves:

* **Input**: per video, the main face's AU probabilities (the face_id with the
  most successful frames, as `features`), averaged into bins of 1/`fps` seconds
  where `fps` is the tracks' own frame rate, or `max_fps` when they are faster
  (`model_fps`). A bin with under half its frames analysed (`success=0`: no face,
  decode errors, another face) is masked, never interpolated.
* **Lagged products**: each AU's track minus its video mean, over its standard
  deviation across all videos (labels play no part), and per window of
  `window_s` seconds the mean of z_a(t) z_b(t + l) for every ordered pair of AUs
  (a, b) and every lag l from 0 to `max_lag_s`. Order is explicit here:
  a before b shows at (a, b, l > 0), b before a at (b, a, l > 0).
* **Model** (`LaggedBilinear`): `order_rank` order components, each a
  weighting u of leading AUs, v of following AUs and g of the lags; its value in
  a window is sum g_l (u C_l v - v C_l u), i.e. the mean over the window of
  (u . z)(t) ((g * v . z))(t + l) minus the same with u and v swapped: "u before
  v" against "v before u", blind to co-movement without an order (rates,
  durations and co-occurrence are the average features' job). `rank` general
  components (without the swap) can be added. A linear layer on the components
  gives one prediction per window. Windows with under half their bins analysed
  are left out. A video's probabilities are the mean over its windows; a
  speaker's, the mean over their videos; every score is over speakers.
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
the whole optimisation in one `lax.scan`, in chunks of `chunk` tasks. Its power
on order and lag differences from 0.1 to 0.5 s, with episodes of 0.2 to 1 s, is
the table in docs/analysis.md (`python -m sfae_jax.analyze.power`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from sfae_jax.analyze import features


@dataclasses.dataclass(frozen=True)
class TemporalConfig:
  max_fps: float = 15.0       # tracks are averaged down to at most this rate
  max_lag_s: float = 1.0      # lags 0 .. max_lag_s between every pair of AUs
  window_s: float = 20.0      # seconds per window (one training example)
  order_rank: int = 4         # order components: u before v minus v before u
  rank: int = 0               # general components: u before v (order, rhythm
                              # and co-movement together)
  learning_rate: float = 2e-2
  weight_decay: float = 1e-2
  steps: int = 200            # full-batch AdamW steps per training
  n_splits: int = 4           # outer folds (speaker-grouped, stratified)
  inner_fraction: float = 0.25  # of each fold's training speakers, for early stopping
  chunk: int = 32             # trainings per vmapped call
  top_moments: int = 40       # per class, for the figure

  def describe(self) -> str:
    general = f" and {self.rank} general ones" if self.rank else ""
    return (f"{self.order_rank} order components{general} over lags "
            f"0-{self.max_lag_s:g} s, "
            f"{self.window_s:g} s windows, AdamW (learning rate "
            f"{self.learning_rate:g}, weight decay {self.weight_decay:g}) for "
            f"{self.steps} full-batch steps with early stopping, "
            f"{self.n_splits} speaker-grouped folds")


@dataclasses.dataclass
class Sequences:
  """Every video's AU track on one time grid, padded to a whole number of
  windows."""
  x: np.ndarray           # [V, T, A] probabilities, 0 where masked
  mask: np.ndarray        # [V, T] bool: a bin with the main face analysed
  videos: list
  speakers: np.ndarray    # [V]
  au_names: list
  fps: float              # bins per second
  window: int             # bins per window
  left_out: list          # "video: why" for the manifest's videos not used

  @property
  def valid(self) -> np.ndarray:
    """[V, S] windows with at least half their bins analysed."""
    v, t = self.mask.shape
    return self.mask.reshape(v, t // self.window, self.window).mean(-1) >= 0.5


def native_fps(track: pd.DataFrame) -> float:
  """Frames per second of a track (its median timestamp step); NaN when it
  cannot tell (fewer than two frames, constant timestamps)."""
  stamps = np.sort(track.drop_duplicates("frame")["timestamp"].to_numpy(float))
  dt = float(np.median(np.diff(stamps))) if len(stamps) > 1 else 0.0
  return 1.0 / dt if dt > 0 else float("nan")


def model_fps(track_map: dict, videos, max_fps: float) -> float:
  """The model's rate: the slowest of the videos' own frame rates, at most
  `max_fps`."""
  rates = [native_fps(track_map[v]) for v in videos]
  rates = [r for r in rates if np.isfinite(r)]
  return float(min([max_fps] + rates))


def video_sequence(track: pd.DataFrame, fps: float) -> tuple[np.ndarray, np.ndarray,
                                                              list]:
  """(x `[T, A]`, mask `[T]`, AU names) of one track in bins of 1/`fps` s: a
  bin's value is the mean of its analysed frames of the main face, and it is
  masked (0) when under half of its frames are analysed. ValueError when its
  timestamps cannot place the frames."""
  aus = [f"AU{a:02d}" for a in features.au_ids_of(track)]
  frames = track.drop_duplicates("frame").sort_values("frame")
  main = features.main_face(track)
  if main is None or frames.empty:
    return np.zeros((0, len(aus)), np.float32), np.zeros(0, bool), aus
  stamps = frames["timestamp"].to_numpy(float)
  if not np.isfinite(stamps).all() or (np.diff(stamps) < 0).any():
    raise ValueError("its timestamps are missing or go backwards")
  t0 = stamps[0]
  bin_of = pd.Series(np.floor((stamps - t0) * fps + 1e-6).astype(int),
                     index=frames["frame"].to_numpy())
  n_bins = int(bin_of.max()) + 1
  per_bin = np.bincount(bin_of.to_numpy(), minlength=n_bins)  # frames of each bin
  face = track[(track["face_id"] == main) & (track["success"] == 1)]
  face = face.drop_duplicates("frame")
  face = face[face[aus].notna().all(axis=1)]
  bins = bin_of.loc[face["frame"].to_numpy()].to_numpy()
  counts = np.bincount(bins, minlength=n_bins)
  sums = np.stack([np.bincount(bins, face[a].to_numpy(float), minlength=n_bins)
                   for a in aus], axis=-1)
  mask = counts >= 0.5 * per_bin
  x = np.where(mask[:, None], sums / np.maximum(counts, 1)[:, None], 0.0)
  return x.astype(np.float32), mask, aus


def sequences(manifest: pd.DataFrame, track_map: dict,
              config: TemporalConfig) -> Sequences:
  """The manifest's videos that have a track and an analysable window."""
  have = [v for v in manifest["video"] if v in track_map]
  fps = model_fps(track_map, have, config.max_fps)
  window = max(1, int(round(config.window_s * fps)))
  xs, masks, names, speakers, aus, left_out = [], [], [], [], None, []
  for _, m in manifest.iterrows():
    if m["video"] not in track_map:
      left_out.append(f"{m['video']}: no track")
      continue
    try:
      x, mask, names_v = video_sequence(track_map[m["video"]], fps)
    except ValueError as e:
      left_out.append(f"{m['video']}: {e}")
      continue
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
  t = window * max(1, -(-max(len(x) for x in xs) // window))
  x_all = np.zeros((len(xs), t, len(aus)), np.float32)
  m_all = np.zeros((len(xs), t), bool)
  for i, (x, mask) in enumerate(zip(xs, masks)):
    x_all[i, :len(x)] = x
    m_all[i, :len(mask)] = mask
  return Sequences(x_all, m_all, names, np.asarray(speakers), aus, fps, window,
                   left_out)


def standardized(seqs: Sequences) -> np.ndarray:
  """[V, T, A]: each AU minus its video's mean over analysed bins, over its
  standard deviation across all videos' analysed bins; 0 where masked."""
  m = seqs.mask[..., None]
  n = np.maximum(m.sum(1, keepdims=True), 1)
  centred = np.where(m, seqs.x - (seqs.x * m).sum(1, keepdims=True) / n, 0.0)
  sd = np.sqrt((centred ** 2).sum((0, 1)) / max(int(seqs.mask.sum()), 1))
  return (centred / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def lags(seqs: Sequences, config: TemporalConfig) -> np.ndarray:
  """Lags in bins, 0 .. max_lag_s."""
  n = int(round(config.max_lag_s * seqs.fps))
  if not 0 <= n < seqs.window:
    raise ValueError(f"max_lag_s={config.max_lag_s:g} must be at least 0 and "
                     f"shorter than a window (window_s={config.window_s:g})")
  return np.arange(n + 1)


def lagged_products(seqs: Sequences, lag_bins: np.ndarray) -> np.ndarray:
  """C `[V, S, A, A, L]`: per window s, the mean over its bins t (with t and
  t + l both analysed) of z_a(t) z_b(t + l), z = `standardized`; 0 when no such
  pair of bins."""
  z = standardized(seqs)
  v, t, a = z.shape
  s, w = t // seqs.window, seqs.window
  out = np.zeros((v, s, a, a, len(lag_bins)), np.float32)
  for k, lag in enumerate(lag_bins):
    follow = np.pad(z, ((0, 0), (0, lag), (0, 0)))[:, lag:]      # z(t + l)
    both = seqs.mask & np.pad(seqs.mask, ((0, 0), (0, lag)))[:, lag:]
    lead = (z * both[..., None]).reshape(v, s, w, a)
    # summed inside the product: memory of the tracks, not of tracks x AUs
    sums = np.einsum("vswa,vswb->vsab", lead, follow.reshape(v, s, w, a),
                     optimize=True)
    n = both.reshape(v, s, w).sum(2)
    out[..., k] = sums / np.maximum(n, 1)[..., None, None]
  return out


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


def _factors(params) -> tuple:
  """(u [R, A], v [R, A], g [R, L]) of the parameters, scaled so that a unit
  normal initialisation gives components of order 1."""
  a, n_lags = params["lead"].shape[1], params["lag"].shape[1]
  return (params["lead"] / np.sqrt(a), params["follow"] / np.sqrt(a),
          params["lag"] / np.sqrt(n_lags))


class LaggedBilinear(nn.Module):
  """`C [V, S, A, A, L] -> window logits [V, S, K]`: `rank` general components
  sum_abl u_a v_b g_l C_abl (leading AUs u, following AUs v, lag profile g) and
  `order_rank` order components sum_abl (u_a v_b - v_a u_b) g_l C_abl, then a
  linear layer."""
  num_classes: int
  rank: int
  order_rank: int = 0

  @nn.compact
  def __call__(self, c):
    _, _, a, _, n_lags = c.shape
    comps = self.rank + self.order_rank
    init = nn.initializers.normal(1.0)
    u, v, g = _factors({"lead": self.param("lead", init, (comps, a)),
                        "follow": self.param("follow", init, (comps, a)),
                        "lag": self.param("lag", init, (comps, n_lags))})
    # the components as one [A * A * L, comps] matrix: a single matrix product
    # with the data, which `vmap` over trainings turns into one larger one
    weights = jnp.einsum("ra,rb,rl->ablr", u, v, g)
    order = jnp.arange(comps) >= self.rank  # u before v minus v before u
    weights = jnp.where(order, weights - weights.transpose(1, 0, 2, 3), weights)
    z = c.reshape(*c.shape[:2], -1) @ weights.reshape(-1, comps)
    return nn.Dense(self.num_classes)(z)


@functools.lru_cache(maxsize=8)
def _trainer(num_classes: int, config: TemporalConfig):
  """jit(vmap over tasks) of a whole training: (keys [P], C, y [P, V],
  w_fit [P, V, S], w_val [P, V, S]) -> (window probabilities [P, V, S, K], the
  parameters with the lowest inner-validation loss)."""
  model = LaggedBilinear(num_classes, config.rank, config.order_rank)
  tx = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)

  def losses(params, c, y, w_fit, w_val):
    """(fit loss, inner-validation loss) of one forward pass."""
    logits = model.apply({"params": params}, c)
    ce = optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.broadcast_to(y[:, None], logits.shape[:2]))
    return (ce * w_fit).sum(), (ce * w_val).sum()

  def one(key, c, y, w_fit, w_val):
    params = model.init(key, c[:1])["params"]
    opt = tx.init(params)
    best = (params, jnp.inf)

    def step(carry, _):
      params, opt, best = carry
      (_, val), grads = jax.value_and_grad(losses, has_aux=True)(
          params, c, y, w_fit, w_val)
      better = val < best[1]  # `val` is of `params`, before this update
      best = jax.tree.map(lambda a, b: jnp.where(better, a, b),
                          (params, val), best)
      updates, opt = tx.update(grads, opt, params)
      params = optax.apply_updates(params, updates)
      return (params, opt, best), None

    (_, _, (params, _)), _ = jax.lax.scan(step, (params, opt, best), None,
                                          length=config.steps)
    logits = model.apply({"params": params}, c)
    return jax.nn.softmax(logits, -1), params

  return jax.jit(jax.vmap(one, in_axes=(0, None, 0, 0, 0)))


def frame_evidence(params, z: np.ndarray, lag_bins: np.ndarray,
                   rank: int) -> np.ndarray:
  """[V, T, K]: each bin's share of the window logits under `params` (one
  training's): sum_r W_rk sum_l g_rl (u_r . z)(t) (v_r . z)(t + l), minus its
  mean over classes. Where it is high for class k, the moment at t (and what
  follows it) is evidence for k."""
  p = jax.tree.map(np.asarray, params)
  u, v, g = _factors(p)
  lead = z @ u.T                                   # [V, T, R]
  follow = z @ v.T
  t = z.shape[1]
  comp = np.zeros_like(lead)
  for k, lag in enumerate(lag_bins):
    comp[:, :t - lag] += g[:, k] * lead[:, :t - lag] * follow[:, lag:]
    comp[:, :t - lag, rank:] -= (g[rank:, k] * follow[:, :t - lag, rank:]
                                 * lead[:, lag:, rank:])
  frames = comp @ p["Dense_0"]["kernel"]
  return frames - frames.mean(-1, keepdims=True)


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
  window: int              # bins per window
  windows: int             # analysable windows
  videos: int
  left_out: list           # "video: why" for videos not used
  splits: list             # the real labels' {'fit', 'val', 'test'} speakers
  settings: str            # the model's settings, in words


def predict_language(manifest: pd.DataFrame, track_map: dict,
                     config: Optional[TemporalConfig] = None, n_permutations: int = 50,
                     seed: int = 0, progress=None) -> Result:
  """Speaker-grouped cross-validated temporal model + its permutation test."""
  config = config or TemporalConfig()
  seqs = sequences(manifest, track_map, config)
  lag_bins = lags(seqs, config)
  c = lagged_products(seqs, lag_bins)
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
  train = _trainer(len(classes), config)
  probs, evidence = [], []
  z = standardized(seqs)
  chunk = min(config.chunk, len(tasks))
  for start in range(0, len(tasks), chunk):
    part = tasks[start:start + chunk]
    pad = part + [part[-1]] * (chunk - len(part))  # one compiled shape
    ys = np.stack([y[i] for i, _ in pad])
    w_fit = np.stack([_weights(seqs, s["fit"], y[i], len(classes)) for i, s in pad])
    w_val = np.stack([_weights(seqs, s["val"], y[i], len(classes)) for i, s in pad])
    keys = jax.random.split(jax.random.key(seed), len(tasks) + chunk)[
        start:start + chunk]
    out, params = train(keys, c, ys, w_fit, w_val)
    probs.extend(np.asarray(out)[:len(part)])
    # the frame evidence only for the real labels' trainings (the figure)
    evidence.extend(
        frame_evidence(jax.tree.map(lambda p, k=k: p[k], params), z, lag_bins,
                       config.rank)
        if i == 0 else None for k, (i, _) in enumerate(part))
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
      au_names=seqs.au_names, fps=seqs.fps, window=seqs.window,
      windows=int(valid.sum()), videos=len(seqs.videos), left_out=seqs.left_out,
      splits=[split for i, split in tasks if i == 0],
      settings=config.describe())


def _confident_courses(seqs, tasks, evidence, languages, classes, config) -> dict:
  """Per language: the mean AU time course `[2 * half + 1, A]` (half = 1.5
  seconds either side) around the `top_moments` held-out frames of that
  language's speakers where the model saw the most evidence for it (real labels;
  at most one moment per 3 seconds of a video)."""
  half = max(1, int(round(1.5 * seqs.fps)))
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
