#!/usr/bin/env bash
# The GPU check, for a GPU machine with no network whose image already has torch (CUDA),
# transformers and the scientific stack: install the few wheels the image lacks, offline, from
# benchmarks/gpu_wheels/ (filled beforehand by `--fetch` on a machine with network; they travel with
# the tree), put the project's src/ on the path (no install: no build backend is needed), train a
# random Qwen2.5-0.5B-architecture model on CUDA in bf16 for a few steps with hf rollouts
# (seconds per step, tokens/s, peak memory, model FLOP utilisation), and run the CUDA tests.
#
#   benchmarks/gpu_check.sh --fetch        # here, with network: download the wheels
#   benchmarks/gpu_check.sh --list         # the wheels it installs
#   benchmarks/gpu_check.sh [OUT]          # on the GPU machine: the check, results under OUT
#
# Environment: DEVICE (cuda; cpu for a dry run), STEPS (4), MAX_NEW_TOKENS (256), LAYERS (24),
# PROMPTS (8), GROUP (8). It finishes in a few minutes on one H200.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=benchmarks/gpu_wheels
list=benchmarks/gpu_wheels.txt
python=${PYTHON:-python3}
requirements=$(grep -v '^#' "$list" | grep .)

case "${1:-}" in
    --fetch)
        # shellcheck disable=SC2086
        exec "$python" -m pip download --no-deps --only-binary=:all: --dest "$wheels" $requirements
        ;;
    --list)
        echo "$requirements"
        exit 0
        ;;
    -h | --help)
        sed -n '2,16p' "$0"
        exit 0
        ;;
esac
out=${1:-${OUT:-gpu_check_out}}
mkdir -p "$out"
device=${DEVICE:-cuda}

echo "== wheels (offline)"
if ! "$python" -c "import math_verify" 2>/dev/null; then
    # shellcheck disable=SC2086
    "$python" -m pip install --no-deps --no-index --find-links "$wheels" $requirements
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$python" -c "import torch, transformers, entropy_rl; print('torch', torch.__version__, '| transformers', transformers.__version__, '| cuda', torch.cuda.is_available())"

echo "== RL steps: random Qwen2.5-0.5B architecture, hf rollouts, $device"
"$python" benchmarks/gpu_train.py --device "$device" --rollouts hf --steps "${STEPS:-4}" \
    --max-new-tokens "${MAX_NEW_TOKENS:-256}" --layers "${LAYERS:-24}" --prompts "${PROMPTS:-8}" \
    --group "${GROUP:-8}" --json "$out/gpu_train.json"

echo "== CUDA tests"
if [[ "$device" == cuda ]]; then
    "$python" -m pytest --noconftest -o addopts="" -q -p no:cacheprovider tests/test_cuda.py
else
    echo "skipped (DEVICE=$device)"
fi
