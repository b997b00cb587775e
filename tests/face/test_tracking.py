"""The IoU tracker: ids stay with faces, in any box order; a lost face returns
with its id within max_gap frames and with a new one after."""

from sfae_jax.face import tracking


def test_iou_of_hand_computed_boxes():
  assert tracking.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
  assert tracking.iou((0, 0, 10, 10), (5, 0, 10, 10)) == 50 / 150
  assert tracking.iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_two_faces_keep_their_ids_in_any_order_and_across_a_gap():
  t = tracking.IoUTracker(min_iou=0.3, max_gap=3)
  left, right = (10, 10, 50, 50), (200, 10, 50, 50)
  a, b = t.update([left, right])
  assert a != b
  # moving a little, listed in the other order
  assert t.update([(204, 12, 50, 50), (13, 11, 50, 50)]) == [b, a]
  # the right face is gone for 2 frames, then back where it was
  assert t.update([(15, 12, 50, 50)]) == [a]
  assert t.update([(16, 12, 50, 50)]) == [a]
  assert t.update([(205, 12, 50, 50), (17, 12, 50, 50)]) == [b, a]
  # a face far from both is new
  (c,) = t.update([(400, 300, 40, 40)])
  assert c not in (a, b)


def test_a_face_lost_longer_than_max_gap_gets_a_new_id():
  t = tracking.IoUTracker(max_gap=2)
  (a,) = t.update([(0, 0, 50, 50)])
  for _ in range(3):
    t.update([])
  (b,) = t.update([(0, 0, 50, 50)])
  assert b != a


def test_two_boxes_never_share_an_id():
  t = tracking.IoUTracker(min_iou=0.1)
  (a,) = t.update([(0, 0, 50, 50)])
  ids = t.update([(5, 0, 50, 50), (0, 5, 50, 50)])   # both overlap the one track
  assert a in ids and len(set(ids)) == 2
