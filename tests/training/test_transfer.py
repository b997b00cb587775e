"""BP4D -> DISFA: a DISFA run initialised from a BP4D run (`init_from`), and a BP4D
run evaluated on DISFA's shared AUs, on the two synthetic datasets."""

import json
import os

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import test as test_config
from sfae_jax import evaluate, train
from sfae_jax.face import action_units
from sfae_jax.models.sfae_net import SFAENetTiny
from sfae_jax.training import checkpoints, run_info, transfer

SHARED = [1, 2, 4, 6, 12]


def _variables(au_ids, seed):
  init = jax.jit(lambda key: _model(au_ids).init(
      key, jnp.zeros((1, 64, 64, 3), jnp.uint8), train=False))
  return init(jax.random.key(seed))


def test_transplant_copies_shared_arrays_and_shared_au_rows_only():
  src, fresh = _variables(action_units.BP4D, 0), _variables(action_units.DISFA, 1)
  report = transfer.TransferReport("src", 6)
  out = transfer.transplant(fresh["params"], src["params"], list(action_units.DISFA),
                            list(action_units.BP4D), report,
                            _model(action_units.DISFA))
  f_out, f_src, f_new = (traverse_util.flatten_dict(t) for t in
                         (out, src["params"], fresh["params"]))
  for path, value in f_out.items():
    if path[0] == "head":                      # re-initialised: the fresh one
      np.testing.assert_array_equal(value, f_new[path])
    elif path[0] == "local_au":                # per AU: shared rows from BP4D
      for k, au in enumerate(action_units.DISFA):
        want = (f_src[path][action_units.BP4D.index(au)] if au in SHARED
                else f_new[path][k])
        np.testing.assert_array_equal(value[k], want)
    else:                                      # the rest: BP4D's
      np.testing.assert_array_equal(value, f_src[path])
  assert report.fresh == ["head/bias", "head/kernel"]
  assert len(report.per_au) == 6 and report.copied


def test_the_intensity_head_carries_over_only_for_the_same_intensity_aus():
  """Same occurrence AUs: the intensity head is copied when the intensity AUs
  are the same, re-initialised when they differ (BP4D's 5 -> DISFA's 12 style)
  or when the source has none."""
  def params(intensity, seed):
    model = _model(action_units.BP4D).clone(intensity_au_ids=intensity)
    return model, jax.jit(lambda key: model.init(
        key, jnp.zeros((1, 32, 32, 3), jnp.uint8), train=False))(
            jax.random.key(seed))["params"]
  five = action_units.BP4D_INTENSITY
  model, fresh = params(five, 1)
  for src_int, copied in ((five, True), (five[:3], False), ((), False)):
    _, src = params(src_int, 0)
    report = transfer.TransferReport("src", 6)
    out = transfer.transplant(fresh, src, list(action_units.BP4D),
                              list(action_units.BP4D), report, model, five, src_int)
    want = src if copied else fresh
    np.testing.assert_array_equal(out["intensity_head"]["kernel"],
                                  want["intensity_head"]["kernel"])
    assert ("intensity_head/kernel" in report.fresh) == (not copied)
    np.testing.assert_array_equal(out["head"]["kernel"], src["head"]["kernel"])


def test_disfa_run_from_a_bp4d_run_trains_and_records_it(trained_run,
                                                         synthetic_disfa_tfds,
                                                         tmp_path, capsys):
  bp4d_run = trained_run[0]
  config = test_config.with_data(synthetic_disfa_tfds, dataset="disfa",
                                 dataset_config="disfa49", init_from=bp4d_run,
                                 fold=1, num_train_steps=4, seed=1)
  workdir = str(tmp_path / "disfa")
  result = train.train_and_evaluate(config, workdir)
  out = capsys.readouterr().out
  assert f"Initialised from {bp4d_run} (step 6)" in out
  assert "AUs [1, 2, 4, 6, 12]" in out
  info = run_info.read(workdir)
  assert list(info.au_ids) == list(action_units.DISFA)
  assert info.dataset["name"] == "disfa" and info.dataset["synthetic"]
  assert info.config.init_from == bp4d_run
  assert result["split"] == "part1" and len(result["f1"]) == 8
  # DISFA codes intensity for its 12 AUs: the run has a fresh head for them
  assert list(info.intensity_au_ids) == list(action_units.DISFA_CODED)
  assert result["intensity"]["au_ids"] == list(action_units.DISFA_CODED)
  assert len(result["intensity"]["icc"]) == 12
  # the first checkpoint's trunk started from BP4D's: after 3 SGD steps it is
  # still much closer to BP4D's than a fresh initialisation (seed 1, as this
  # run's; the BP4D run's was seed 0) is
  mine, _ = checkpoints.restore_variables(workdir, _model(action_units.DISFA), 64,
                                          _one_device(), 3)
  theirs, _ = checkpoints.restore_variables(bp4d_run, _model(action_units.BP4D), 64,
                                            _one_device(), 6)
  kernel = lambda v: np.asarray(v["params"]["stem1"]["conv"]["kernel"])  # noqa: E731
  fresh = np.asarray(_variables(action_units.DISFA, 1)["params"]["stem1"]["conv"]["kernel"])
  assert (np.abs(kernel(mine) - kernel(theirs)).mean()
          < 0.2 * np.abs(fresh - kernel(theirs)).mean())


def _model(aus):
  return SFAENetTiny(landmark_scheme="bp4d49", au_ids=aus, local_branch="light")


def _one_device():
  from sfae_jax.runtime import sharding  # pylint: disable=g-import-not-at-top
  return sharding.replicated(sharding.make_mesh(jax.devices()[:1]))


def test_bp4d_run_on_disfa_scores_the_shared_aus_and_says_what_it_left_out(
    trained_run, synthetic_disfa_tfds, capsys):
  workdir = trained_run[0]
  rc = evaluate.main(["--workdir", workdir, "--dataset", "disfa", "--data_dir",
                      synthetic_disfa_tfds])
  out = capsys.readouterr().out
  assert rc == 0
  assert "AU07, AU10, AU14, AU15, AU17, AU23, AU24 (the model detects them" in out
  assert "AU09, AU25, AU26 (disfa codes them" in out
  written = json.loads(open(os.path.join(
      workdir, "eval_disfa_part1+part2+part3_6.json")).read())
  assert written["au_ids"] == SHARED and written["num_examples"] == 35
  assert len(written["f1"]) == 5
  # intensity on the intensity AUs both code: BP4D's 6, 10, 12, 14, 17 x DISFA's 12
  assert written["intensity"]["au_ids"] == [6, 12, 17]
  assert len(written["intensity"]["icc"]) == 3
  assert "intensity (0-5)" in out and "Intensity on AU06, AU12, AU17" in out


def test_init_from_a_run_with_other_landmarks_is_a_clear_error(trained_run,
                                                               tmp_path):
  info = run_info.read(trained_run[0])
  with pytest.raises(ValueError, match="landmark branch cannot carry over"):
    transfer.init_from(trained_run[0], None, _model(action_units.DISFA),
                       action_units.DISFA, "disfa66", None)
  assert info.landmark_scheme == "bp4d49"


def test_disfa_configs_read_disfa_and_the_synthetic_one_matches_the_embedded_model():
  """configs/disfa.py reads DISFA's 49-point build in JAA-Net's 3 folds; its
  synthetic variant keeps configs/synthetic.py's model, so a run of the embedded
  default initialises everything but the head and the non-shared AUs' rows."""
  from configs import disfa, synthetic  # pylint: disable=g-import-not-at-top
  from sfae_jax.data import sources  # pylint: disable=g-import-not-at-top
  for fold in (1, 2, 3):
    c = disfa.get_config(f"fold={fold}")
    assert (c.dataset, c.dataset_config, c.model_name) == ("disfa", "disfa49",
                                                           "sfae_net")
    assert sources.splits(c)[1] == f"part{fold}"
  syn, emb = disfa.get_config("synthetic=1"), synthetic.get_config()
  for key in ("model_name", "model", "input_size", "crop_size"):
    assert syn[key] == emb[key], key
  assert syn.synthetic.enabled and syn.dataset == "disfa"
