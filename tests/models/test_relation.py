"""The inter-AU relation head: shapes, AU relabelling, and in SFAENet."""

import jax
import jax.numpy as jnp
import numpy as np

from sfae_jax.models import relation
from sfae_jax.models.sfae_net import SFAENetTiny


def _head(a=5, d=12, seed=0):
  head = relation.AURelationHead(a, features=8, layers=2)
  x = jax.random.normal(jax.random.key(seed), (3, d))
  params = head.init(jax.random.key(1), x)
  # a non-zero relation matrix, so that relabelling must move it too, and a
  # non-zero classifier (both start at zero), so that the logits depend on it all
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: (jax.random.normal(jax.random.key(len(p[-1].key)), v.shape)
                    if p[-1].key in ("relation", "classifier") else v), params)
  return head, params, x


def test_shapes_and_rows_of_attention_sum_to_one():
  head, params, x = _head()
  logits, att = head.apply(params, x)
  assert logits.shape == (3, 5) and att.shape == (3, 5, 5)
  np.testing.assert_allclose(att.sum(-1), 1.0, rtol=1e-5)


def test_relabelling_the_au_nodes_permutes_the_outputs():
  head, params, x = _head()
  perm = np.array([3, 0, 4, 1, 2])
  p = params["params"]
  moved = dict(p)
  for name in ("node_kernel", "node_bias", "classifier", "classifier_bias"):
    moved[name] = p[name][perm]
  moved["relation"] = p["relation"][perm][:, perm]
  logits, att = head.apply(params, x)
  logits2, att2 = head.apply({"params": moved}, x)
  np.testing.assert_allclose(logits2, logits[:, perm], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(att2, att[:, perm][:, :, perm], rtol=1e-5, atol=1e-6)
  # and moving the relation matrix alone changes them: it is used
  alone = dict(p, relation=p["relation"][perm][:, perm])
  assert not np.allclose(head.apply({"params": alone}, x)[0], logits)


def test_the_relation_path_starts_as_a_zero_correction():
  head = relation.AURelationHead(5, features=8)
  x = jax.random.normal(jax.random.key(0), (3, 12))
  logits, _ = head.apply(head.init(jax.random.key(1), x), x)
  np.testing.assert_array_equal(logits, 0.0)


def test_sfae_net_with_relations_returns_the_au_by_au_attention():
  model = SFAENetTiny(landmark_scheme="bp4d49", local_branch="light",
                      au_relation=True, relation_features=8)
  images = jnp.zeros((2, 64, 64, 3), jnp.uint8)
  variables = jax.jit(lambda k: model.init(k, images, train=False))(
      jax.random.key(0))
  assert "relation_head" in variables["params"]
  out = model.apply(variables, images, train=False)
  assert out.au_logits.shape == (2, 12) and out.relation.shape == (2, 12, 12)
  # the plain head's logits plus the relation correction (zero at init)
  plain = SFAENetTiny(landmark_scheme="bp4d49", local_branch="light")
  without = {"params": {k: v for k, v in variables["params"].items()
                        if k != "relation_head"},
             "batch_stats": variables["batch_stats"]}
  np.testing.assert_allclose(
      out.au_logits, plain.apply(without, images, train=False).au_logits,
      rtol=1e-6)


def test_cooccurrence_by_hand():
  from sfae_jax.data import sources  # pylint: disable=g-import-not-at-top
  labels = np.array([[1, 1, 0], [1, 0, -1], [0, 1, 1], [1, 1, 1]])
  co = sources.cooccurrence(labels)
  # AU0 present in rows 0, 1, 3; AU1 present with it in 0, 3 (coded in all 3)
  assert co[0, 1] == 2 / 3 and co[0, 0] == 1.0
  # AU2 coded in rows 0, 3 when AU0 is present; present in row 3 only
  assert co[0, 2] == 1 / 2


def test_prior_logits_are_log_cooccurrence_with_a_floor():
  co = np.array([[1.0, 0.5, 0.0], [0.25, 1.0, np.nan], [0.0, 0.0, 1.0]])
  prior = relation.prior_logits(co)
  assert prior[0, 1] == np.float32(np.log(0.5)) and prior[1, 0] == np.float32(np.log(0.25))
  assert prior[0, 2] == prior[1, 2] == np.float32(np.log(relation.PRIOR_FLOOR))
  np.testing.assert_array_equal(np.diag(prior), 0.0)
  # with equal query-key logits, attention is P(j | i) renormalised over j
  att = np.exp(prior[0]) / np.exp(prior[0]).sum()
  np.testing.assert_allclose(att[:2], np.array([1.0, 0.5]) / 1.51, rtol=1e-5)
