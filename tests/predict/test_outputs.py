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
