#!/usr/bin/env bash
# The device session's calls: runs on the GPU machine (CUDA 13, driver 580, an H200, torch,
# no Rust) from the repository root, with the binaries of lsnn-gpu/device-build.sh carried in
# BIN (default target/gpu-bin). Writes every log under $OUT and prints a short table last.
#
#   1. lsnn-gpu's device tests: Philox, forward == lsnn-core bit for bit, Adam/SGD, DEEP R
#   2. lsnn-host's GPU tests: every fixture on the gpu backend, 20 store-recall iterations vs the
#      host (losses within 1e-4), sMNIST DEEP R budget/signs, the app (train + resume), NaN
#   3. `fixtures check fixtures/` (every backend; gpu is one of them when a device is present)
#   4. the benchmark of both configurations next to the PyTorch peer, in this same call
#   5. a short sMNIST training run on the GPU (real MNIST, carried in BIN/mnist): speed of the
#      whole application (host data pipeline and validation included) and its accuracy
#   6. compute-sanitizer memcheck, racecheck and initcheck on small training runs
#   7. Nsight Compute's duration of every kernel of one iteration of each configuration
#
# Usage: bash lsnn-gpu/device-check.sh [BIN]
#   PART=main    1-4             PART=san   6            PART=all   1-7 (default)
#   PART=long    the sMNIST tutorial on the GPU: N_ITER (36000) iterations, test accuracy, wall time
#   SEEDS        seeds of the short sMNIST runs (default 1)
#   DEADLINE     seconds for the whole script (default 540): a step gets at most what is left
#                (minus a margin for the summary) and is skipped when under 10 s are left.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/gpu-bin}
OUT=${OUT:-/tmp/lsnn-gpu-out}
DEADLINE=${DEADLINE:-540}
# Only 8 files come back from $OUT: the logs go to LOGS and travel as one archive.
LOGS=$(mktemp -d)
mkdir -p "$OUT"
export LSNN_FIXTURES=$PWD/fixtures
export LSNN_HOST_BIN=$PWD/$BIN/lsnn-host
chmod +x "$BIN"/lsnn-host "$BIN"/lsnn_gpu_device "$BIN"/lsnn_host_gpu 2>/dev/null
summary=()
step() { # name, timeout seconds, command...
    local name=$1 limit=$2
    shift 2
    local left=$((DEADLINE - 15 - SECONDS))
    if [ "$left" -lt 10 ]; then
        summary+=("$(printf '%-26s skipped (deadline)' "$name")")
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local t0=$SECONDS
    timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
    local rc=$?
    summary+=("$(printf '%-26s rc=%-3s %4ss' "$name" "$rc" $((SECONDS - t0)))")
    tail -4 "$LOGS/$name.log" | cut -c1-300 | sed "s/^/  [$name] /"
}

{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw --format=csv; uname -r; } > "$LOGS/device.txt" 2>&1
cat "$LOGS/device.txt"

PART=${PART:-all}
case $PART in main | all)
    # Synchronise after every launch in the tests, so an error names its kernel.
    LSNN_GPU_SYNC=1 step gpu-tests 90 "$BIN"/lsnn_gpu_device --nocapture --test-threads 1
    LSNN_GPU_SYNC=1 step host-gpu-tests 150 "$BIN"/lsnn_host_gpu --nocapture --test-threads 1
    step fixtures-all 60 "$BIN"/lsnn-host fixtures check fixtures/ # core, host and gpu
    step bench-smnist 60 "$BIN"/lsnn-host bench --task smnist --device cuda --iters 20
    step bench-storerecall 60 "$BIN"/lsnn-host bench --task store-recall --device cuda --iters 20
    if [ -f "$BIN/torch_lsnn.py" ]; then
        step torch-smnist 60 python3 "$BIN/torch_lsnn.py" --device cuda --config smnist --iters 5
        step torch-storerecall 60 python3 "$BIN/torch_lsnn.py" --device cuda --config storerecall --iters 3
    fi
    ;;
esac

case $PART in all)
    if [ -d "$BIN/mnist" ]; then
        for seed in ${SEEDS:-1}; do
            step "train-smnist-200-seed$seed" 90 "$BIN"/lsnn-host train smnist --device cuda \
                --data-dir "$BIN/mnist" --n-iter 200 --print-every 100 --seed "$seed" \
                --do-plot false --results-dir /tmp/runs-short
        done
    fi
    ;;
esac

case $PART in all)
    # Time per kernel (Nsight Compute, clocks left as they are): where an iteration goes.
    ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
    if [ -n "$ncu" ]; then
        for task in smnist store-recall; do
            step "ncu-$task" 90 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv \
                "$BIN"/lsnn-host bench --task "$task" --device cuda --iters 1
        done
    else
        summary+=("ncu                        not found")
    fi
    ;;
esac

case $PART in san | all)
    san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
    if [ -n "$san" ]; then
        # One training iteration (--iters 0: the warm-up only) of each configuration at B 2:
        # every kernel runs, with DEEP R in the sMNIST one.
        for tool in memcheck racecheck initcheck; do
            for task in smnist store-recall; do
                step "san-$tool-$task" 60 "$san" --tool "$tool" --error-exitcode 9 \
                    "$BIN"/lsnn-host bench --task "$task" --device cuda --batch 2 --iters 0
            done
        done
    else
        summary+=("compute-sanitizer          not found")
    fi
    ;;
esac

case $PART in long)
    # The sMNIST tutorial's defaults (B 256, 36 000 iterations, validation every 400) on the GPU;
    # only the small result files come back (no plots).
    step train-smnist-long $((DEADLINE - 20)) "$BIN"/lsnn-host train smnist --device cuda \
        --data-dir "$BIN/mnist" --n-iter "${N_ITER:-36000}" --seed 1 --do-plot false \
        --results-dir /tmp/runs-long
    run=$(ls -d /tmp/runs-long/*/ 2>/dev/null | head -1)
    [ -n "$run" ] && cp "$run/results.json" "$run/flags.json" "$OUT/" 2>/dev/null
    ;;
esac

echo
echo "== summary (logs in $OUT/logs.tgz)"
printf '%s\n' "${summary[@]}" | tee "$LOGS/summary.txt"
tar -czf "$OUT/logs.tgz" -C "$LOGS" .
python3 - "$LOGS" <<'PY'
import json, os, sys
out = sys.argv[1]
def last_json(name):
    try:
        lines = [l for l in open(os.path.join(out, name + ".log")) if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
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
