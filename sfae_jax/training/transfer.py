"""Starting a run from another run's parameters (`config.init_from = RUN`).

JAA-Net and ME-GraphAU train DISFA from a BP4D-trained model. The new run's freshly
initialised parameters and BatchNorm statistics take the source run's (its newest
readable checkpoint) wherever they mean the same thing:

* every array whose path and shape match, outside the per-AU modules and the heads;
* in the per-AU modules (the model's `per_au_modules`: one row per AU), the rows
  of the AUs both runs detect (BP4D -> DISFA: AUs 1, 2, 4, 6, 12), the other AUs'
  rows keeping their fresh initialisation;
* the AU heads (the model's `au_heads`) are re-initialised whenever the AU sets
  differ, the intensity head (`intensity_heads`) whenever the intensity AU sets
  do (BP4D's 6, 10, 12, 14, 17 -> DISFA's 12).

Everything else (a shape that differs: another input size, landmark count or
width) keeps its fresh initialisation, and the summary says so.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from flax import traverse_util
import jax

from sfae_jax.runtime import sharding as sharding_lib
from sfae_jax.training import run_info, trained_run


@dataclasses.dataclass
class TransferReport:
  source: str
  step: int
  copied: list[str] = dataclasses.field(default_factory=list)
  per_au: list[str] = dataclasses.field(default_factory=list)
  fresh: list[str] = dataclasses.field(default_factory=list)
  shared_aus: tuple[int, ...] = ()

  def summary(self) -> str:
    n = len(self.copied) + len(self.per_au) + len(self.fresh)
    return (f"Initialised from {self.source} (step {self.step}): {len(self.copied)} "
            f"of {n} arrays copied, {len(self.per_au)} per-AU arrays copied for "
            f"AUs {list(self.shared_aus)}, {len(self.fresh)} left as initialised"
            + (f" ({', '.join(self.fresh[:6])}{' ...' if len(self.fresh) > 6 else ''})"
               if self.fresh else "") + ".")


def transplant(target: dict, source: dict, target_aus: Sequence[int],
               source_aus: Sequence[int], report: TransferReport, model,
               target_intensity_aus: Sequence[int] = (),
               source_intensity_aus: Sequence[int] = ()) -> dict:
  """`target` (a params or batch_stats tree) with `source`'s arrays where they
  mean the same thing (module docstring), as numpy arrays. `model` (a model or
  its class) names its per-AU modules and heads."""
  # On the host, in numpy: the arrays may be replicated over several processes'
  # devices, where eager jax ops are not allowed; every process computes the same.
  target = jax.tree.map(sharding_lib.replicated_value, target)
  source = jax.tree.map(sharding_lib.replicated_value, source)
  same_aus = tuple(target_aus) == tuple(source_aus)
  same_intensity = tuple(target_intensity_aus) == tuple(source_intensity_aus)
  rows = [(target_aus.index(a), source_aus.index(a)) for a in target_aus
          if a in source_aus]
  flat_t = traverse_util.flatten_dict(target)
  flat_s = traverse_util.flatten_dict(source)
  out = {}
  for path, t in flat_t.items():
    s = flat_s.get(path)
    name = "/".join(path)
    if (s is None or (path[0] in model.au_heads and not same_aus)
        or (path[0] in model.intensity_heads and not same_intensity)):
      out[path] = t
      report.fresh.append(name)
    elif path[0] in model.per_au_modules and not same_aus:
      if rows and s.shape[1:] == t.shape[1:]:
        ti, si = (list(i) for i in zip(*rows))
        value = t.copy()
        value[ti] = s[si].astype(t.dtype)
        out[path] = value
        report.per_au.append(name)
      else:
        out[path] = t
        report.fresh.append(name)
    elif s.shape == t.shape:
      out[path] = s.astype(t.dtype)
      report.copied.append(name)
    else:
      out[path] = t
      report.fresh.append(name)
  return traverse_util.unflatten_dict(out)


def init_from(source_workdir: str, state, model, au_ids: Sequence[int],
              landmark_scheme: str, sharding) -> tuple:
  """(state of `model` with the source run's parameters transplanted,
  TransferReport)."""
  try:
    src = run_info.read(source_workdir)
  except FileNotFoundError as e:
    raise ValueError(f"config.init_from: {e}") from None
  if src.landmark_scheme != landmark_scheme:
    raise ValueError(
        f"config.init_from: {source_workdir} predicts {src.landmark_scheme} "
        f"landmarks, this run {landmark_scheme}: the landmark branch cannot carry "
        "over. Build the dataset with the same landmark scheme.")
  _, _, variables, step = trained_run.load(source_workdir, sharding=sharding)
  report = TransferReport(str(source_workdir), step,
                          shared_aus=tuple(a for a in au_ids if a in src.au_ids))
  params = transplant(state.params, variables["params"], list(au_ids),
                      list(src.au_ids), report, model, model.intensity_au_ids,
                      src.intensity_au_ids)
  stats = transplant(state.batch_stats, variables.get("batch_stats", {}),
                     list(au_ids), list(src.au_ids), report, model)
  put = lambda tree: jax.device_put(tree, sharding)  # noqa: E731
  return state.replace(params=put(params), batch_stats=put(stats)), report
