"""The temporal power table's command: its counting, and its resumable run."""

import json
import os

import pytest

from sfae_jax.analyze import power


def _result(lag, episode, planted, seed, temporal_p, lead_found, lead_any,
            averages_p):
  return {"lag_s": lag, "episode_s": episode, "planted": planted, "seed": seed,
          "temporal": {"p": temporal_p, "balanced_accuracy": 0.5, "seconds": 1.0},
          "lead_lag": {"found": lead_found, "any": lead_any, "family": 198,
                       "seconds": 1.0},
          "averages": {"p": averages_p, "balanced_accuracy": 0.5, "seconds": 1.0}}


def test_table_counts_finds_on_planted_data_and_false_alarms_on_nulls():
  results = [
      _result(0.25, 0.33, True, 1, 0.025, True, True, 0.5),
      _result(0.25, 0.33, True, 2, 0.05, False, True, 0.01),  # p = 0.05: no find
      _result(0.25, 0.33, False, 1, 0.04, False, True, 0.3),  # another pair
      _result(0.25, 0.33, False, 2, 0.5, False, False, 0.2),
  ]
  row = power.table(results, lags=(0.25,), episodes=(0.33,)).splitlines()[-1]
  cells = [c.strip() for c in row.strip("|").split("|")]
  # lag, episode, then (found, false alarms) of temporal, lead-lag, averages
  assert cells == ["0.25", "0.33", "1 / 2", "1 / 2", "1 / 2", "1 / 2", "1 / 2",
                   "0 / 2"]


def test_a_run_resumes_and_refuses_other_settings(tmp_path, capsys):
  """One cell, one seed, one permutation: 2 data sets written; a rerun computes
  nothing; a deleted data set is computed again, alone."""
  out = str(tmp_path / "power")
  grid = dict(seeds=1, permutations=1, lags=(0.5,), episodes=(1.0,))
  first = power.run(out, **grid)
  assert [(r["planted"], r["seed"]) for r in first] == [
      (True, power.FIRST_SEED), (False, power.FIRST_SEED)]
  files = sorted(f for f in os.listdir(out) if f != "settings.json")
  assert len(files) == 2
  stamps = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in files}
  assert power.run(out, **grid) == first
  assert {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in files} == stamps
  os.remove(os.path.join(out, files[0]))
  again = power.run(out, **grid)
  assert "1 data sets already" in capsys.readouterr().err
  assert sorted(os.listdir(out)) == sorted(files + ["settings.json"])
  assert [r["temporal"]["p"] for r in again] == [r["temporal"]["p"] for r in first]
  with pytest.raises(SystemExit, match="other settings"):
    power.run(out, **{**grid, "permutations": 2})
  with open(os.path.join(out, files[1]), "w") as f:
    f.write("{")  # a damaged result names its file
  with pytest.raises(SystemExit, match=files[1]):
    power.run(out, **grid)
  assert json.load(open(os.path.join(out, "settings.json")))["permutations"] == 1
