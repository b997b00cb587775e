"""The chunk store: a chunk counts once its state is written; names; settings."""

import json
import os

import pandas as pd
import pytest

from sfae_jax.face import tracking
from sfae_jax.predict import outputs

SETTINGS = {"run": "/runs/a", "step": 6, "every": 1, "detect_every": 5}


def _store(tmp_path):
  return outputs.ChunkStore(str(tmp_path), lambda p: os.path.basename(p) + ".csv")


def test_a_chunk_without_its_state_is_redone_and_the_rest_joined(tmp_path):
  store = _store(tmp_path)
  store.start("in/v.mp4", SETTINGS)
  for n in range(3):
    store.append("in/v.mp4", pd.DataFrame({"frame": [2 * n, 2 * n + 1]}),
                 {"position": 2 * n + 2, "tracker": {"n": n}, "flagged": [n]})
  os.remove(tmp_path / "v.mp4.csv.partial" / "000002.json")  # killed writing it
  resume = store.resume("in/v.mp4", SETTINGS)
  assert (resume.done, resume.position, resume.tracker, resume.flagged) == (
      False, 4, {"n": 1}, (1,))
  assert not (tmp_path / "v.mp4.csv.partial" / "000002.csv").exists()
  store.start("in/v.mp4", SETTINGS)
  store.append("in/v.mp4", pd.DataFrame({"frame": [4, 5, 6]}),
               {"position": 7, "tracker": {}, "flagged": []})
  out = store.finish("in/v.mp4", {"settings": SETTINGS})
  assert list(pd.read_csv(out)["frame"]) == list(range(7))
  assert not (tmp_path / "v.mp4.csv.partial").exists()
  assert store.resume("in/v.mp4", SETTINGS).done


def test_other_settings_are_refused_naming_the_difference_unless_fresh(tmp_path):
  store = _store(tmp_path)
  store.start("v.mp4", SETTINGS)
  with pytest.raises(outputs.SettingsMismatch, match=r"every 1 -> 2.*--fresh"):
    store.resume("v.mp4", dict(SETTINGS, every=2))
  assert store.resume("v.mp4", dict(SETTINGS, every=2), fresh=True).position == 0
  assert not (tmp_path / "v.mp4.csv.partial").exists()
  (tmp_path / "v.mp4.csv").write_text("frame\n0\n")
  (tmp_path / "v.mp4.csv.provenance.json").write_text(json.dumps(
      {"settings": dict(SETTINGS, step=5)}))
  with pytest.raises(outputs.SettingsMismatch, match="step 5 -> 6"):
    store.resume("v.mp4", SETTINGS)


def test_inputs_sharing_a_file_name_get_distinct_csvs():
  names = outputs.names_for(["a/clip.mp4", "b/clip.mp4", "c/other.mp4"])
  assert names["c/other.mp4"] == "other.mp4.csv"
  assert len({names["a/clip.mp4"], names["b/clip.mp4"]}) == 2
  assert all(n.startswith("clip.mp4-") for n in (names["a/clip.mp4"],
                                                  names["b/clip.mp4"]))


def test_a_tracker_restored_from_its_state_gives_the_same_ids():
  boxes = [[(10, 10, 50, 50)], [(12, 11, 50, 50), (200, 10, 40, 40)], [],
           [(14, 12, 50, 50)], [(300, 300, 30, 30), (201, 12, 40, 40)]]
  whole = tracking.IoUTracker(max_gap=2)
  want = [whole.update(b) for b in boxes]
  first = tracking.IoUTracker(max_gap=2)
  got = [first.update(b) for b in boxes[:2]]
  state = json.loads(json.dumps(first.state()))
  second = tracking.IoUTracker.from_state(state, max_gap=2)
  got += [second.update(b) for b in boxes[2:]]
  # the box at 201 was last seen 3 frames before (> max_gap): a new id, 3
  assert got == want == [[0], [0, 1], [], [0], [2, 3]]


def test_parquet_holds_the_rows_a_csv_reader_gets_and_resumes_alike(tmp_path):
  """Chunks whose columns differ in type (integers in one, missing values in
  the next) join into one Parquet file that reads back exactly as the CSV of
  the same chunks does; a chunk without its state is redone in either."""
  chunks = [pd.DataFrame({"input": ["v.mp4"] * 2, "frame": [0, 1],
                          "face_x": [float("nan")] * 2, "AU01": [None, None],
                          "success": [0, 0], "n": [1, 2]}),
            pd.DataFrame({"input": ["v.mp4"] * 3, "frame": [2, 3, 4],
                          "face_x": [10.123456, 11.5, 12.0], "AU01": [0.25, 0.5, 1.0],
                          "success": [1, 1, 1], "n": [float("nan"), 1.0, 2.0]})]
  got = {}
  for fmt in outputs.FORMATS:
    store = outputs.ChunkStore(str(tmp_path / fmt), lambda p, f=fmt: f"{p}.{f}",
                               float_format="%.4f", fmt=fmt)
    store.start("v.mp4", SETTINGS)
    for n, chunk in enumerate(chunks + chunks[1:]):
      store.append("v.mp4", chunk, {"position": n + 1, "tracker": {}, "flagged": []})
    partial = tmp_path / fmt / f"v.mp4.{fmt}.partial"
    os.remove(partial / "000002.json")                   # killed writing it
    assert store.resume("v.mp4", SETTINGS).position == 2
    assert sorted(os.listdir(partial)) == sorted([
        "000000.json", f"000000.{fmt}", "000001.json", f"000001.{fmt}",
        "settings.json"])
    out = store.finish("v.mp4", {"settings": SETTINGS})
    assert out == str(tmp_path / fmt / f"v.mp4.{fmt}")
    got[fmt] = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out)
  pd.testing.assert_frame_equal(got["parquet"], got["csv"], check_exact=True)
  assert got["csv"]["face_x"].tolist()[2:] == [10.1235, 11.5, 12.0]


def test_a_parquet_file_is_refused_by_a_csv_store_name_and_format():
  with pytest.raises(ValueError, match="output format 'json'"):
    outputs.ChunkStore("/tmp", str, fmt="json")
  assert outputs.names_for(["a/clip.mp4"], "parquet") == {"a/clip.mp4": "clip.mp4.parquet"}
