#!/usr/bin/env bash
# Times lsnn-rs, optionally an earlier lsnn-rs commit, and the PyTorch peer (same network, same
# math) on this machine's CPU cores in one run, and prints a markdown table with the ratios.
#
#   scripts/bench-vs-torch.sh [PATH/TO/torch_lsnn.py]
#
# BASELINE: a commit (or any revision) to time beside the working tree, e.g. BASELINE=8044544;
#   it is built once into target/baseline/<commit> from a temporary worktree.
# PYTHON: a python with torch and numpy (default: a venv in ~/.cache/lsnn-rs/torchenv, created
#   with `pip install torch numpy` when missing).
# ITERS: timed iterations of lsnn-rs per configuration (default 5; the peer runs 3, 2 and 1).
# ROUNDS: how many times lsnn-rs, the baseline and the peer are timed, alternately, per
#   configuration (default 1). Two tables: the fastest round of each program (this VM's speed
#   drops by up to 40 % for minutes while its neighbours are busy: the fastest round is the one
#   closest to an idle machine), then the median of the rounds.
# Each timing is the median of its iterations after one warm-up, as `lsnn-host bench` prints.
# PAUSE: seconds between runs (default 5). On a shared machine run it as
#   `chrt -f 50 scripts/bench-vs-torch.sh` (real-time priority keeps other jobs off the cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PEER=${1:-../shared/bench/torch_lsnn.py}
ITERS=${ITERS:-5}
ROUNDS=${ROUNDS:-1}
PAUSE=${PAUSE:-5}
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

BASE_BIN=
if [ -n "${BASELINE:-}" ]; then
  commit=$(git rev-parse --short "$BASELINE^{commit}") \
    || { echo "error: BASELINE=$BASELINE is not a commit of this repository" >&2; exit 2; }
  BASE_BIN=target/baseline/$commit/lsnn-host
  if [ ! -x "$BASE_BIN" ]; then
    tree=$(mktemp -d)
    git worktree add -q --detach "$tree" "$commit"
    (cd "$tree" && CARGO_TARGET_DIR="$tree/target" cargo build --release -q -p lsnn-host)
    mkdir -p "target/baseline/$commit"
    cp "$tree/target/release/lsnn-host" "$BASE_BIN"
    git worktree remove --force "$tree"
  fi
fi

field() { python3 -c "import json,sys; print(json.loads(sys.stdin.readlines()[-1])['$1'])"; }
ratio() { python3 -c "print(f'{float($1)/float($2):.1f}x')"; }
ms() { python3 -c "print(f'{float($1):.0f} ms')"; }
median() { python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }
fastest() { python3 -c "import sys; print(min(map(float, sys.argv[1:])))" "$@"; }

FASTEST=() MEDIAN=() RAW=()
line() { # name, statistic, ours, baseline, peer timings (the baseline's may be empty)
  local name=$1 stat=$2 ours base torch
  ours=$($stat $3)
  torch=$($stat $5)
  if [ -n "$BASE_BIN" ]; then
    base=$($stat $4)
    echo "| $name | $(ms "$ours") | $(ms "$base") | $(ms "$torch") | $(ratio "$base" "$ours") | $(ratio "$torch" "$ours") |"
  else
    echo "| $name | $(ms "$ours") | $(ms "$torch") | $(ratio "$torch" "$ours") |"
  fi
}

row() { # name, torch args, lsnn args
  # Ours first: a run right after one that allocated and freed a lot of memory (the peer, the
  # baseline's per-pass trace buffers) is measurably slower on some VMs while the kernel
  # reclaims; a pause between runs for the same reason.
  local ours=() base=() torch=()
  for _ in $(seq "$ROUNDS"); do
    ours+=("$($BIN bench --device cpu $3 --iters "$ITERS" | field ms_median)")
    sleep "$PAUSE"
    if [ -n "$BASE_BIN" ]; then
      base+=("$($BASE_BIN bench --device cpu $3 --iters 3 | field ms_median)")
      sleep "$PAUSE"
    fi
    torch+=("$("$PYTHON" "$PEER" --device cpu $2 2>/dev/null | field ms_median)")
    sleep "$PAUSE"
  done
  RAW+=("$1: lsnn-rs ${ours[*]}; baseline ${base[*]:-none}; peer ${torch[*]}")
  FASTEST+=("$(line "$1" fastest "${ours[*]}" "${base[*]}" "${torch[*]}")")
  MEDIAN+=("$(line "$1" median "${ours[*]}" "${base[*]}" "${torch[*]}")")
}

torch_version=$("$PYTHON" -c 'import torch; print(torch.__version__)')
if [ -n "$BASE_BIN" ]; then
  header="| config | lsnn-rs | lsnn-rs $commit | PyTorch $torch_version | vs $commit | vs PyTorch |
|---|---:|---:|---:|---:|---:|"
else
  header="| config | lsnn-rs | PyTorch $torch_version | ratio |
|---|---:|---:|---:|"
fi
row "store-recall (B 128, T 2400, 100 in, 10+10 rec, D 10, R 3)" "--config storerecall --iters 3" "--task store-recall"
row "sMNIST (B 64, T 840, 80 in, 120+100 rec, D 10, R 5)" "--config smnist --iters 2 --batch 64" "--task smnist --batch 64"
row "sMNIST (B 256, same network)" "--config smnist --iters 1 --batch 256" "--task smnist --batch 256"
echo "Fastest of $ROUNDS rounds:"
echo
echo "$header"
printf '%s\n' "${FASTEST[@]}"
echo
echo "Median of $ROUNDS rounds:"
echo
echo "$header"
printf '%s\n' "${MEDIAN[@]}"
echo
echo "Every round's median (ms):"
printf '%s\n' "${RAW[@]}"
