#!/usr/bin/env bash
# One accelerator, about 5 minutes: the figures of docs/model.md's Performance section.
#
#   bash launch/gpu_benchmark.sh                 # on a GPU/TPU machine, repo root
#   SMOKE=1 bash launch/gpu_benchmark.sh         # tiny sizes: checks the script on CPU
#
# Prints, for the full model (configs/default.py):
#   0. the compile-only fit check of configs/cloud.py's train step, for this
#      device (--target local) and for the shipped description of an H200: the
#      estimate and memory beside what 1. measures;
#   1. train images/s, GFLOP/s and MFU, float32 and bfloat16, global batch 64 and 256;
#   2. end to end through the grain pipeline on a synthetic BP4D built here, and its
#      ratio to the step alone (grain_workers from the host's cores);
#   3. predict frames/s end to end on a video ($CLIP, default
#      ../shared/faces/WolfgangLanger_Pexels.mp4; skipped with a message if absent)
#      and on a long video generated from $FACE ($LONG frames, default 20000),
#      from a 2-step run of the full model, batches of 256, a worker per core.
# Everything it writes goes under $OUT_DIR (default a temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SMOKE:=0}"
: "${OUT_DIR:=$(mktemp -d -t sfae_gpu_bench.XXXXXX)}"
: "${CLIP:=../shared/faces/WolfgangLanger_Pexels.mp4}"
: "${STEPS:=10}"
: "${FACE:=../shared/faces/single_face.jpg}"
: "${LONG:=20000}"
mkdir -p "$OUT_DIR"

if [[ "$SMOKE" == 1 ]]; then
  CONFIG=configs/test.py; BATCHES="8"; EVAL=16; STEPS=2; SUBJECTS=3; FRAMES=8
  LONG=300
  FIT_CONFIG=configs/test.py; FIT_TARGETS=local
else
  CONFIG=configs/default.py; BATCHES="64 256"; EVAL=256; SUBJECTS=6; FRAMES=40
  FIT_CONFIG=configs/cloud.py; FIT_TARGETS=local,h200
fi
python - <<'EOF'
import jax
d = jax.devices()[0]
print(f"devices: {jax.device_count()} x {d.device_kind} ({d.platform}), jax {jax.__version__}")
EOF

echo "== 0. compile-only fit check (estimates, beside the measurements below)"
# Exit status 1 means a program did not fit at a batch: reported, not fatal here.
python -m sfae_jax.tools.aot --config "$FIT_CONFIG" --target "$FIT_TARGETS" \
  --batch "${BATCHES// /,}" --programs train_step --nomax_batch \
  --json "$OUT_DIR/aot.json" --dump_hlo "$OUT_DIR/hlo" || true

echo "== 1. train step (real: augmentation, loss, update) and forward"
for dtype in float32 bfloat16; do
  for batch in $BATCHES; do
    python -m sfae_jax.tools.benchmark --config "$CONFIG" --batch "$batch" \
      --eval_batch "$EVAL" --dtype "$dtype" --steps "$STEPS" --no_breakdown
  done
done

echo "== 2. end to end through grain (synthetic BP4D: $SUBJECTS subjects x 2 tasks x $FRAMES frames)"
python - "$OUT_DIR" "$SUBJECTS" "$FRAMES" <<'EOF'
import sys
from tfds_bp4d import prepare
from tfds_bp4d.synthetic import bp4d as synthetic
out, subjects, frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
synthetic.generate(f"{out}/manual", subjects=subjects, tasks=2, frames=frames,
                   size_wh=(320, 240), seed=0, progress=False)
prepare.build(f"{out}/manual", f"{out}/tfds", "bp4d49")
EOF
last_batch=${BATCHES##* }
python -m sfae_jax.tools.benchmark --config "$CONFIG:fold=3" --batch "$last_batch" \
  --eval_batch "$EVAL" --dtype bfloat16 --steps "$STEPS" --no_breakdown \
  --data_dir "$OUT_DIR/tfds"

echo "== 3. predict on a video"
if [[ -f "$CLIP" ]]; then
  python -m sfae_jax.train --config "$CONFIG:fold=3" --workdir "$OUT_DIR/run" \
    --config.data_dir "$OUT_DIR/tfds" --config.num_train_steps 2 \
    --config.batch_size 8 --config.eval_batch_size 8 > "$OUT_DIR/train.log" 2>&1 \
    || { tail -20 "$OUT_DIR/train.log"; exit 1; }
  for run in first second; do  # the second run loads the compiled forward from cache
    rm -f "$OUT_DIR/predict.csv"
    python -m sfae_jax.predict --workdir "$OUT_DIR/run" "$CLIP" --batch-size 256 \
      --out "$OUT_DIR/predict.csv" 2>&1 | tr '\r' '\n' | grep -E "model on|frames in|seconds:"
  done
  if [[ -f "$FACE" ]]; then
    python -m sfae_jax.tools.synthetic_video --face "$FACE" --frames "$LONG" \
      --out "$OUT_DIR/long.mp4"
    rm -rf "$OUT_DIR/long"
    python -c "import resource, subprocess, sys, time; t = time.time(); \
r = subprocess.run(sys.argv[1:]); print(f'long video: whole command {time.time() - t:.1f} s, \
peak RSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB', flush=True); \
sys.exit(r.returncode)" python -m sfae_jax.predict --workdir "$OUT_DIR/run" "$OUT_DIR/long.mp4" \
      --batch-size 256 --out "$OUT_DIR/long/" 2>&1 | tr '\r' '\n' \
      | grep -E "frames in|seconds:|whole command"
  else
    echo "long video skipped: no face photo at $FACE (set FACE=...)"
  fi
else
  echo "predict skipped: no video at $CLIP (set CLIP=...)"
fi
echo "outputs in $OUT_DIR"
