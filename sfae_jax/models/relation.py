"""Inter-AU relation learning: the paper's own future work, an option of
SFAENet (`config.au_relation`).

Between the fused features and the AU outputs, in the spirit of ME-GraphAU's
AU-relationship-aware node features (Luo et al., IJCAI 2022):

* one node per AU: its own projection of the fused feature (f1, f2, f3), as
  ME-GraphAU's per-AU linear layers, `[B, D] -> [B, A, C]`, after one shared
  bottleneck layer (D is ~9,200 in the full model: per-AU projections of it
  would cost 7 M parameters; through a 256-wide bottleneck, 2.6 M);
* relations: self-attention across the AU nodes, whose logits add a learned
  `[A, A]` relation matrix (face-independent, what the model learned about how AUs
  go together) to the face-specific query-key similarity (what this face shows);
  ME-GraphAU builds a k-nearest-neighbour graph from the node similarity instead;
  soft attention keeps the whole thing differentiable and readable (its matrix is
  what `python -m sfae_jax.tools.relations` draws);
* a per-AU classifier on the updated node, whose output is a *correction* added to
  the plain head's logits (`SFAENet` keeps its `head`, `Dense(fused)`): the
  classifier starts at zero, so at initialisation the model is exactly the one
  without relations and the relation path only has to learn what the plain head
  misses. (Measured on the synthetic BP4D: without this direct path the head replacing the
  plain one learned so slowly that at the ablation budget it never predicted five
  of the twelve AUs, 26.8 % mean F1 against 43.4 %.)

Nothing is shared across AUs but the attention's projections, so relabelling the
AU nodes (permuting every per-AU row and the relation matrix's rows and columns)
permutes the outputs in the same way (tested).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# A prior P(j | i) below this counts as this: log(0.01) = -4.6, the floor of the
# relation logits the prior starts from.
PRIOR_FLOOR = 0.01


def prior_logits(cooccurrence) -> np.ndarray:
  """`[A, A]` P(AU j present | AU i present) -> the relation matrix to start from:
  log P(j | i), floored at log(PRIOR_FLOOR), so that with faces saying nothing
  (query-key logits equal) node i attends to node j in proportion to P(j | i)
  (config.relation_prior)."""
  co = np.nan_to_num(np.asarray(cooccurrence, np.float64), nan=0.0)
  return np.log(np.clip(co, PRIOR_FLOOR, 1.0)).astype(np.float32)


class AURelationHead(nn.Module):
  """`fused [B, D] -> (logit corrections [B, A], attention [B, A, A])`."""
  num_aus: int
  features: int = 64
  layers: int = 1
  bottleneck: int = 256
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, fused: jax.Array):
    a, c = self.num_aus, self.features
    shared = nn.Dense(self.bottleneck, dtype=self.dtype, name="bottleneck")(fused)
    shared = nn.relu(nn.LayerNorm(dtype=jnp.float32, name="bottleneck_norm")(shared))
    kernel = self.param("node_kernel", nn.initializers.variance_scaling(
        1.0, "fan_in", "truncated_normal", in_axis=1, out_axis=2),
                        (a, self.bottleneck, c))
    bias = self.param("node_bias", nn.initializers.zeros, (a, c))
    nodes = jnp.einsum("bd,adc->bac", shared.astype(self.dtype),
                       kernel.astype(self.dtype)) + bias
    nodes = nn.relu(nn.LayerNorm(dtype=jnp.float32, name="node_norm")(nodes))
    relation = self.param("relation", nn.initializers.zeros, (a, a))
    attention = None
    for i in range(self.layers):
      q, k, v = (nn.Dense(c, dtype=self.dtype, name=f"{n}{i}")(nodes)
                 for n in ("query", "key", "value"))
      logits = jnp.einsum("bic,bjc->bij", q, k).astype(jnp.float32) / jnp.sqrt(c)
      attention = jax.nn.softmax(logits + relation, axis=-1)
      update = jnp.einsum("bij,bjc->bic", attention.astype(self.dtype), v)
      update = nn.Dense(c, dtype=self.dtype, name=f"out{i}")(update)
      nodes = nn.LayerNorm(dtype=jnp.float32, name=f"norm{i}")(nodes + update)
    weight = self.param("classifier", nn.initializers.zeros, (a, c))
    out_bias = self.param("classifier_bias", nn.initializers.zeros, (a,))
    logits = jnp.einsum("bac,ac->ba", nodes.astype(jnp.float32), weight) + out_bias
    return logits, attention
