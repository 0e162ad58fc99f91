#!/usr/bin/env bash
# GPU check, one call of at most ~8 minutes on a machine with an NVIDIA GPU (`make gpu-check` runs it):
# trains the demo with trainer=gpu_bf16 (bf16-mixed, channels_last where the model supports it), embeds the
# full synthetic catalog, times faiss-gpu when installed, and prints the figures for docs/SCALING.md.
# Arguments are passed on: --out DIR, --workers N, --faiss-vectors N, and Hydra overrides for the training run.
# Without a GPU it stops at once with one error line and exit code 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"
[[ -x "$PY" ]] || PY="$(command -v python3)"
# A hard stop, so a hung run cannot hold a lent GPU machine: 9 minutes, then 10 s to exit cleanly.
limit_s="${GPU_CHECK_LIMIT_S:-540}"
rc=0
timeout --kill-after=10 "$limit_s" "$PY" scripts/gpu_check.py "$@" || rc=$?
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
  echo "error: the GPU check ran past ${limit_s} s and was stopped; rerun with fewer --faiss-vectors or set GPU_CHECK_LIMIT_S" >&2
fi
exit "$rc"
