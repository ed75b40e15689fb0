#!/usr/bin/env bash
# Times lsnn-rs and the PyTorch peer (same network, same math) on this machine's CPU cores in
# one run and prints a markdown table with the ratio (PyTorch time / lsnn-rs time).
#
#   scripts/bench-vs-torch.sh [PATH/TO/torch_lsnn.py]
#
# PYTHON: a python with torch and numpy (default: a venv in ~/.cache/lsnn-rs/torchenv, created
# with `pip install torch numpy` when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PEER=${1:-../shared/bench/torch_lsnn.py}
[ -f "$PEER" ] || { echo "error: PyTorch peer not found at $PEER (pass its path)" >&2; exit 2; }
if [ -z "${PYTHON:-}" ]; then
  VENV=~/.cache/lsnn-rs/torchenv
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch numpy
  fi
  PYTHON=$VENV/bin/python
fi
cargo build --release -q -p lsnn-host
BIN=target/release/lsnn-host
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.readlines()[-1])['$1'])"; }

row() { # name, torch args, lsnn args
  local torch_ms ours_ms
  torch_ms=$("$PYTHON" "$PEER" --device cpu $2 2>/dev/null | field ms_median)
  ours_ms=$($BIN bench --device cpu $3 | field ms_median)
  python3 -c "print(f'| $1 | {float($ours_ms):.0f} ms | {float($torch_ms):.0f} ms | {float($torch_ms)/float($ours_ms):.1f}x |')"
}

echo "| config | lsnn-rs | PyTorch $("$PYTHON" -c 'import torch; print(torch.__version__)') | ratio |"
echo "|---|---|---|---|"
row "store-recall (B 128, T 2400, 100 in, 10+10 rec, D 10, R 3)" "--config storerecall --iters 3" "--task store-recall --iters 3"
row "sMNIST (B 64, T 840, 80 in, 120+100 rec, D 10, R 5)" "--config smnist --iters 2 --batch 64" "--task smnist --batch 64 --iters 3"
row "sMNIST (B 256, same network)" "--config smnist --iters 1 --batch 256" "--task smnist --batch 256 --iters 3"
