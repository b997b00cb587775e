"""The corpus benchmark's generated tracks: predict's columns, both formats alike."""

import pandas as pd

from sfae_jax.analyze import planted, tracks
from sfae_jax.face import action_units
from sfae_jax.predict import rows
from sfae_jax.tools import corpus_benchmark


def test_a_generated_corpus_has_predicts_columns_and_equal_formats(tmp_path):
  manifests = corpus_benchmark.generate(str(tmp_path), videos=10, frames=30)
  read = {fmt: tracks.read_manifest(m) for fmt, m in manifests.items()}
  assert len(read["csv"]) == 10 and read["csv"]["speaker"].nunique() == 2
  assert sorted(read["csv"]["first_language"].unique()) == ["A", "B"]
  for c, p in zip(read["csv"]["video"], read["parquet"]["video"]):
    full = pd.read_csv(c)
    assert list(full.columns) == rows.columns(action_units.BP4D)
    assert (full["success"] == 0).equals(full["x_0"].isna())
    pd.testing.assert_frame_equal(tracks.read_track(p), tracks.read_track(c),
                                  check_exact=True)
    assert set(planted.AUS) <= {int(col[2:4]) for col in tracks.read_track(c)
                               if col.startswith("AU")}
