import numpy as np
import pytest

from sfae_jax.face import schemes


@pytest.mark.parametrize("name", [schemes.IBUG68, schemes.BP4D49])
def test_flip_permutation_is_an_involution_swapping_the_eyes(name):
  s = schemes.get_scheme(name)
  perm = s.flip_permutation
  assert sorted(perm) == list(range(s.num_points))
  np.testing.assert_array_equal(perm[perm], np.arange(s.num_points))
  assert [perm[i] for i in s.left_eye] == [s.right_eye[k] for k in (3, 2, 1, 0, 5, 4)]


def test_49_point_mapping_follows_the_reference():
  s = schemes.get_scheme(schemes.BP4D49)
  assert s.from_68[0] == 17 and s.from_68[42] == 59
  assert s.from_68[43:] == (61, 62, 63, 65, 66, 67)
  assert s.index(39) == 22 and s.index(42) == 25
  with pytest.raises(ValueError, match="no counterpart"):
    s.index(60)  # inner mouth corner is not in the 49-point scheme


def test_unknown_scheme():
  with pytest.raises(ValueError, match="Unknown landmark scheme"):
    schemes.get_scheme("ibug5")


def test_a_builder_config_names_its_scheme_or_is_the_49_point_one():
  assert schemes.of_dataset_config("ibug68") == "ibug68"
  assert schemes.of_dataset_config("disfa66") == "disfa66"
  assert schemes.of_dataset_config("disfa49") == schemes.BP4D49
  assert schemes.get_scheme(schemes.of_dataset_config("disfa49")).num_points == 49
