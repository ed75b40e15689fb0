#!/usr/bin/env bash
# The device session's one call: runs on the GPU machine (CUDA 13, driver 580, an H200, torch,
# no Rust) from the repository root, with the binaries of lsnn-gpu/device-build.sh carried in
# BIN (default target/gpu-bin). Writes every log under $OUT and prints a short table last.
#
#   1. lsnn-gpu's device tests: Philox, forward == lsnn-core bit for bit, Adam/SGD, DEEP R
#   2. lsnn-host's GPU tests: every fixture on the gpu backend, 20 store-recall iterations vs the
#      host (losses within 1e-4), sMNIST DEEP R budget/signs, the app (train + resume), NaN
#   3. `fixtures check fixtures/` (every backend; gpu is one of them when a device is present)
#   4. compute-sanitizer memcheck, racecheck (and initcheck) on small training runs
#   5. the benchmark of both configurations next to the PyTorch peer, in this same call
#
# Usage: bash lsnn-gpu/device-check.sh [BIN]
#   PART=main   tests, fixtures, benchmark and peer only (about 4-5 minutes)
#   PART=san    the sanitizers only (run as a second call if the first used most of the limit)
#   PART=all    both (default)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/gpu-bin}
OUT=${OUT:-/tmp/lsnn-gpu-out}
mkdir -p "$OUT"
export LSNN_FIXTURES=$PWD/fixtures
export LSNN_HOST_BIN=$PWD/$BIN/lsnn-host
chmod +x "$BIN"/lsnn-host "$BIN"/lsnn_gpu_device "$BIN"/lsnn_host_gpu 2>/dev/null
summary=()
step() { # name, timeout seconds, command...
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    summary+=("$(printf '%-26s rc=%-3s %4ss' "$name" "$rc" $((SECONDS - t0)))")
    tail -3 "$OUT/$name.log" | sed "s/^/  [$name] /"
}

{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw --format=csv; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

PART=${PART:-all}
if [ "$PART" != san ]; then
step gpu-tests 240 "$BIN"/lsnn_gpu_device --nocapture --test-threads 1
step host-gpu-tests 420 "$BIN"/lsnn_host_gpu --nocapture --test-threads 1
step fixtures-all 180 "$BIN"/lsnn-host fixtures check fixtures/   # core, host and gpu
fi

if [ "$PART" != main ]; then
    san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
    if [ -n "$san" ]; then
        # One training iteration (--iters 0: the warm-up only) of each configuration at B 2:
        # every kernel runs, with DEEP R in the sMNIST one.
        for tool in memcheck racecheck initcheck; do
            step "san-$tool-smnist" 150 "$san" --tool "$tool" --error-exitcode 9 \
                "$BIN"/lsnn-host bench --task smnist --device cuda --batch 2 --iters 0
            step "san-$tool-storerecall" 150 "$san" --tool "$tool" --error-exitcode 9 \
                "$BIN"/lsnn-host bench --task store-recall --device cuda --batch 2 --iters 0
        done
    else
        summary+=("compute-sanitizer          not found")
    fi
fi

if [ "$PART" != san ]; then
step bench-smnist 180 "$BIN"/lsnn-host bench --task smnist --device cuda --iters 20
step bench-storerecall 180 "$BIN"/lsnn-host bench --task store-recall --device cuda --iters 20
if [ -f "$BIN/torch_lsnn.py" ]; then
    step torch-smnist 180 python3 "$BIN/torch_lsnn.py" --device cuda --config smnist --iters 5
    step torch-storerecall 180 python3 "$BIN/torch_lsnn.py" --device cuda --config storerecall --iters 3
fi
fi

echo
echo "== summary (logs in $OUT)"
printf '%s\n' "${summary[@]}"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def last_json(name):
    try:
        lines = [l for l in open(os.path.join(out, name + ".log")) if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except OSError:
        return None
print("| config | lsnn-gpu ms | PyTorch ms | ratio |")
print("|---|---|---|---|")
for ours, peer, name in [("bench-smnist", "torch-smnist", "sMNIST B256 T840"),
                         ("bench-storerecall", "torch-storerecall", "store-recall B128 T2400")]:
    a, b = last_json(ours), last_json(peer)
    ma = a and a.get("ms_median")
    mb = b and b.get("ms_median")
    ratio = f"{mb / ma:.0f}x" if ma and mb else "-"
    print(f"| {name} | {ma if ma else '-'} | {mb if mb else '-'} | {ratio} |")
PY
