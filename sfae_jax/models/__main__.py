"""Model size and speed.

  python -m sfae_jax.models --summary              # params + GFLOPs per 176x176 image
  python -m sfae_jax.models --benchmark --batch 32 # forward / train-step images/s

FLOPs are XLA's count for one image's forward pass in eval mode (a multiply-add is
two FLOPs). The benchmark's train step is the full thing: forward in train mode,
gradients of the AU + landmark loss, SGD (Nesterov 0.9, weight decay 5e-4) update.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import optax

from sfae_jax.models.sfae_net import SFAENet, SFAENetTiny

VARIANTS = {
    "full": {},
    "no LRL": {"use_lrl": False},
    "no MSL": {"use_msl": False},
    "stem only": {"use_lrl": False, "use_msl": False},
}


def abstract_variables(model, size: int):
  """The model's variables as shapes only, for a 1 x size x size x 3 input."""
  return jax.eval_shape(functools.partial(model.init, train=False),
                        jax.random.key(0), jnp.zeros((1, size, size, 3)))


def count_params(model, size: int) -> int:
  variables = abstract_variables(model, size)
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


def forward_flops(model, size: int) -> float:
  """XLA's FLOP count of one image's eval-mode forward pass."""
  variables = abstract_variables(model, size)
  fwd = jax.jit(functools.partial(model.apply, train=False))
  cost = fwd.lower(variables, jax.ShapeDtypeStruct((1, size, size, 3),
                                                   jnp.float32)).cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost["flops"])


def summary(make_model, size: int) -> None:
  print(f"{'variant':<10} {'params':>12} {'GFLOPs/image':>13}   ({size}x{size} input)")
  for name, kw in VARIANTS.items():
    model = make_model(**kw)
    print(f"{name:<10} {count_params(model, size):>12,} "
          f"{forward_flops(model, size) / 1e9:>13.2f}")


def _train_step(model, tx):
  def step(variables, opt_state, images, labels, landmarks):
    def loss_fn(params):
      out, new = model.apply({"params": params,
                              "batch_stats": variables["batch_stats"]},
                             images, train=True, mutable=["batch_stats"])
      au = optax.sigmoid_binary_cross_entropy(out.au_logits, labels).mean()
      return au + 0.5 * jnp.mean((out.landmarks - landmarks) ** 2) / 100.0, new
    (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        variables["params"])
    updates, opt_state = tx.update(grads, opt_state, variables["params"])
    params = optax.apply_updates(variables["params"], updates)
    return {"params": params, **new}, opt_state, loss
  return jax.jit(step, donate_argnums=(0, 1))


def _time(fn, repeats: int) -> float:
  fn()  # compile + warm-up
  start = time.perf_counter()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - start) / repeats


def benchmark(make_model, size: int, batch: int, repeats: int) -> None:
  model = make_model()
  key = jax.random.key(0)
  images = jax.random.randint(key, (batch, size, size, 3), 0, 256).astype(jnp.uint8)
  labels = (jax.random.uniform(key, (batch, model_aus := len(model.au_ids))) > .5
            ).astype(jnp.float32)
  landmarks = jax.random.uniform(key, (batch, model.num_points, 2), maxval=size)
  variables = jax.jit(functools.partial(model.init, train=False))(key, images)
  fwd = jax.jit(functools.partial(model.apply, train=False))
  t_fwd = _time(lambda: fwd(variables, images).au_logits.block_until_ready(),
                repeats)
  tx = optax.chain(optax.add_decayed_weights(5e-4),
                   optax.sgd(0.01, momentum=0.9, nesterov=True))
  step = _train_step(model, tx)
  state = {"v": variables, "o": tx.init(variables["params"])}

  def run_step():
    state["v"], state["o"], loss = step(state["v"], state["o"], images, labels,
                                        landmarks)
    loss.block_until_ready()

  t_step = _time(run_step, repeats)
  print(f"backend {jax.default_backend()} ({jax.device_count()} device(s)), "
        f"batch {batch}, {size}x{size}, {model_aus} AUs")
  print(f"forward (eval):          {t_fwd * 1e3:8.1f} ms/batch  "
        f"{batch / t_fwd:8.1f} images/s")
  print(f"train step (grad + SGD): {t_step * 1e3:8.1f} ms/batch  "
        f"{batch / t_step:8.1f} images/s")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m sfae_jax.models",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--summary", action="store_true",
                      help="print parameter count and GFLOPs per image")
  parser.add_argument("--benchmark", action="store_true",
                      help="time the forward pass and a full train step")
  parser.add_argument("--tiny", action="store_true", help="the tiny test variant")
  parser.add_argument("--size", type=int, default=176, help="input side in pixels")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args(argv)
  if not (args.summary or args.benchmark):
    parser.error("nothing to do: pass --summary and/or --benchmark")
  make_model = SFAENetTiny if args.tiny else SFAENet
  if args.summary:
    summary(make_model, args.size)
  if args.benchmark:
    benchmark(make_model, args.size, args.batch, args.repeats)


if __name__ == "__main__":
  main()
