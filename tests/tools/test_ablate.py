"""sfae_jax.tools.ablate: variants as config overrides, resumable runs, the table."""

import json
import statistics

import pytest

from configs import test as test_config
from sfae_jax.tools import ablate


def _fake_train(calls):
  def train(config, workdir):
    calls.append((workdir, config.seed, config.model.use_lrl, config.model.use_msl,
                  config.model.local_branch, config.gt_landmark_attention))
    f1 = 0.5 + 0.1 * config.model.use_lrl + 0.01 * config.seed
    return {"mean_f1": f1, "mean_accuracy": 0.8, "step": 6, "split": "part3",
            "f1": [f1] * 12}
  return train


def test_variants_override_only_their_fields():
  base = test_config.get_config()
  c = ablate.variant_config(base, "stem_only", 2)
  assert (c.model.use_lrl, c.model.use_msl, c.seed) == (False, False, 2)
  assert (base.model.use_lrl, base.model.use_msl) == (True, True)  # base untouched
  g = ablate.variant_config(base, "gt_attention", 0)
  assert g.gt_landmark_attention and g.model.local_branch == base.model.local_branch
  assert ablate.variant_config(base, "light_local", 0).model.local_branch == "light"
  with pytest.raises(ValueError, match="Unknown variant"):
    ablate.variant_config(base, "no_head", 0)


def test_runs_each_variant_and_seed_once_and_tabulates(tmp_path):
  calls = []
  config = test_config.get_config()
  out = ablate.run(config, str(tmp_path), ["full", "no_lrl"], [0, 1, 2],
                   train_fn=_fake_train(calls))
  assert len(calls) == 6
  assert {c[0] for c in calls} == {str(tmp_path / v / f"seed{s}")
                                   for v in ("full", "no_lrl") for s in (0, 1, 2)}
  assert [r["mean_f1"] for r in out["full"]] == pytest.approx([0.6, 0.61, 0.62])
  text = (tmp_path / "ablation.md").read_text()
  sd = statistics.stdev([60.0, 61.0, 62.0])
  assert f"| full | the config as it is | 61.0 ± {sd:.1f} | 60.0, 61.0, 62.0 |" in text
  assert "| no_lrl |" in text and "51.0 ±" in text
  assert json.loads((tmp_path / "ablation.json").read_text())["seeds"] == [0, 1, 2]
  # Rerun with one more seed: only the two new runs (one per variant) train.
  ablate.run(config, str(tmp_path), ["full", "no_lrl"], [0, 1, 2, 3],
             train_fn=_fake_train(calls))
  assert len(calls) == 8 and all(c[1] == 3 for c in calls[6:])


def test_unknown_variant_fails_before_any_training(tmp_path):
  calls = []
  with pytest.raises(ValueError, match="Unknown variant"):
    ablate.run(test_config.get_config(), str(tmp_path), ["full", "nope"], [0],
               train_fn=_fake_train(calls))
  assert not calls


def test_cli_trains_a_variant_and_writes_its_row(synthetic_tfds, tmp_path):
  """The relation variant with the co-occurrence prior: the prior in
  run.json, the relation matrix started from it, trained, checkpointed, restored
  by `evaluate` (same table) and by `sfae_jax.tools.relations` (its figure)."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  cmd = [sys.executable, "-m", "sfae_jax.tools.ablate", "--config", "configs/test.py",
         "--workdir", str(tmp_path), "--seeds", "4",
         f"--config.data_dir={synthetic_tfds}", "--config.num_train_steps=2"]
  bad = subprocess.run(cmd + ["--variants", "full,no_such"], capture_output=True,
                       text=True, timeout=300)
  assert bad.returncode == 2 and "Unknown variant 'no_such'" in bad.stderr
  assert "Traceback" not in bad.stderr and not (tmp_path / "full").exists()
  out = subprocess.run(cmd + ["--variants", "relation_prior"],
                       capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-2000:]
  run = tmp_path / "relation_prior" / "seed4"
  result = json.loads((run / "result.json").read_text())
  assert result["step"] == 2 and len(result["f1"]) == 12
  row = (f"| relation_prior | + relation head, matrix from the co-occurrence "
         f"prior | {100 * result['mean_f1']:.1f} ± 0.0 |")
  assert row in (tmp_path / "ablation.md").read_text()
  recorded = json.loads((run / "run.json").read_text())
  assert recorded["config"]["model"]["au_relation"] is True
  assert recorded["config"]["relation_prior"] is True
  assert recorded["config"]["seed"] == 4
  # checkpoint round trip: the trained relation head is restored (its classifier
  # starts at zero), and evaluation from the checkpoint gives the run's table
  import numpy as np  # pylint: disable=g-import-not-at-top
  from sfae_jax import evaluate  # pylint: disable=g-import-not-at-top
  from sfae_jax.tools import relations  # pylint: disable=g-import-not-at-top
  again = evaluate.evaluate_workdir(str(run))
  np.testing.assert_array_equal(again["f1"], result["f1"])
  png = tmp_path / "relations.png"
  assert relations.main(["--workdir", str(run), "--out", str(png),
                         "--frames", "32"]) == 0
  assert png.read_bytes()[:4] == b"\x89PNG"
  _, _, variables, step = relations.load(str(run))
  assert step == 2
  head = variables["params"]["relation_head"]
  assert np.abs(head["classifier"]).max() > 0
  # the prior: P(j | i) over the training split, and the matrix started there
  from sfae_jax.data import sources  # pylint: disable=g-import-not-at-top
  from sfae_jax.models import relation  # pylint: disable=g-import-not-at-top
  labels = sources.labels_of(sources.open_split(
      synthetic_tfds, "bp4d49", "part1+part2", dataset="bp4d",
      decode_images=False))
  co = np.asarray(recorded["cooccurrence"])
  i, j = 0, 1  # AU1 and AU2: P(AU2 | AU1) by hand
  both = ((labels[:, i] == 1) & (labels[:, j] == 1)).sum()
  assert co[i, j] == pytest.approx(both / ((labels[:, i] == 1)
                                           & (labels[:, j] >= 0)).sum())
  prior = relation.prior_logits(co)
  assert prior.min() < -1.0  # not a flat start
  np.testing.assert_allclose(head["relation"], prior, atol=0.05)
