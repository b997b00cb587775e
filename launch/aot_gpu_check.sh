#!/usr/bin/env bash
# Compile-only checks for NVIDIA GPUs, on any machine (no GPU needed):
#
#   bash launch/aot_gpu_check.sh            # the gpu_compile tests (tiny model, H100)
#   FULL=1 bash launch/aot_gpu_check.sh     # + configs/cloud.py's train step on
#                                           #   h100, h200 and 8xh100 (~10 minutes)
#
# Installs the aot-gpu extra (the CUDA plugin, ~180 MB) into the active
# environment. It is not part of dev: without NVIDIA's runtime the plugin makes
# every JAX process on a CPU machine print a traceback at start, unless
# JAX_PLATFORMS=cpu (which the tests and the fit check set).
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q -e ".[aot-gpu]"
JAX_PLATFORMS=cpu python -m pytest -q -m gpu_compile tests/tools/test_aot.py
if [[ "${FULL:-0}" == 1 ]]; then
  python -m sfae_jax.tools.aot --config configs/cloud.py --target h100,h200,8xh100 \
    --batch 16,256 --programs train_step --nomax_batch
fi
