#!/usr/bin/env bash
# predict's throughput on a Ray cluster of 1 and of 2 nodes (1 CPU each) started
# on this machine, against plain `predict --workers 1` (which uses two cores: the
# face worker, and the main process decoding and running the model; also pinned
# to one core, where `taskset` exists): a folder of COPIES copies of a clip, the
# figures from `python -m sfae_jax.tools.predict_benchmark`.
#
#   bash launch/ray_benchmark.sh RUN CLIP.mp4 [COPIES]     # e.g. runs/synthetic
#
# The nodes are this machine's (`ray start`, RAY_USAGE_STATS_ENABLED=0) and are
# stopped by their process groups at the end, whatever happens.
set -euo pipefail
RUN=${1:?the trained run}; CLIP=${2:?a video}; COPIES=${3:-8}
PY=${PYTHON:-python}
RAY="$(dirname "$(command -v "$PY")")/ray"
export RAY_USAGE_STATS_ENABLED=0 JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
WORK=$(mktemp -d /tmp/raybench.XXXXXX)
NODES=()
cleanup() {
  for pid in "${NODES[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${NODES[@]}"; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/clips"
for i in $(seq "$COPIES"); do ln -s "$(realpath "$CLIP")" "$WORK/clips/copy$i.mp4"; done
IP=$("$PY" -c "from ray.util import get_node_ip_address as a; print(a())")
PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])")
ADDRESS=$IP:$PORT

node() {  # ray start ... --block in a process group of its own
  setsid "$RAY" start --block --num-cpus 1 --object-store-memory $((300 << 20)) "$@" \
    > "$WORK/node${#NODES[@]}.log" 2>&1 &
  NODES+=($!)
}
wait_nodes() {
  for _ in $(seq 90); do
    if "$RAY" status --address "$ADDRESS" 2>/dev/null | grep -c " node_" \
        | grep -qx "$1"; then return 0; fi
    sleep 1
  done
  echo "the cluster did not reach $1 node(s)" >&2; exit 1
}
bench() {  # bench LABEL INPUT [predict flags]; $PIN: a command to run it under
  echo "== $1"
  ${PIN:-} "$PY" -m sfae_jax.tools.predict_benchmark --workdir "$RUN" "$2" -- "${@:3}"
}

bench "warm-up (compilation cache): one clip" "$CLIP" --workers 1 | tail -1
bench "plain predict --workers 1" "$WORK/clips/" --workers 1
if command -v taskset > /dev/null; then
  PIN="taskset -c 0" bench "plain predict --workers 1, on one core" "$WORK/clips/" --workers 1
fi
node --head --port "$PORT" --include-dashboard=false --temp-dir "$WORK/ray"
wait_nodes 1
bench "Ray, 1 node of 1 CPU" "$WORK/clips/" --ray "$ADDRESS"
node --address "$ADDRESS"
wait_nodes 2
bench "Ray, 2 nodes of 1 CPU" "$WORK/clips/" --ray "$ADDRESS"
