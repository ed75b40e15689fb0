#!/usr/bin/env bash
# The device session's calls: runs on the GPU machine (CUDA 13, driver 580, an H200, torch,
# no Rust) from the repository root, with the binaries of lsnn-gpu/device-build.sh carried in
# BIN (default target/gpu-bin). Writes every log under $OUT and prints a short table last.
#
#   1. lsnn-gpu's device tests: Philox, forward == lsnn-core bit for bit, Adam/SGD, DEEP R
#   2. lsnn-host's GPU tests: every fixture on the gpu backend, 20 store-recall iterations vs the
#      host (the same losses, weights and states, bit for bit), sMNIST DEEP R budget/signs, the
#      app (train + resume), NaN
#   3. `fixtures check fixtures/` (every backend, gpu included)
#   Steps 1-3 fail when a test finds no device (it prints "skipped: no CUDA device" and passes)
#   or no line comes from the gpu backend; the summary counts the tests that ran on the GPU, and
#   the script then exits 1.
#   4. the benchmark of both configurations next to the PyTorch peer, in this same call
#   5. a short sMNIST training run on the GPU (real MNIST, carried in BIN/mnist): speed of the
#      whole application (host data pipeline and validation included) and its accuracy
#   6. compute-sanitizer memcheck, racecheck and initcheck on small training runs
#   7. Nsight Compute's duration of every kernel of one iteration of each configuration
#
# bash lsnn-gpu/device-check.sh [BIN]
#   8. kernel variants (BIN/ptx/*/, compile-time options of lsnn-gpu/device-build.sh): the
#      benchmark and Nsight Compute's kernel times with each, via LSNN_GPU_PTX_DIR
#
# Usage: PART="main ab" (any of these words) or PART=all (default: main train ncu san ab)
#   main 1-4   train 5   ncu 7   san 6   ab 8
#   long       the sMNIST tutorial on the GPU: N_ITER (36000) iterations, test accuracy, wall time
#   SAN_TOOLS, SAN_TASKS: the sanitizer runs (default: all three tools, both tasks)
#   AB_NCU: the variants that also get Nsight Compute (default: all)
#   AB_ABOVE_MS: run the variants only when this call's `bench-smnist` median is above it (ms;
#                default: always), i.e. only when the shipped kernels miss the target
#   SEEDS        seeds of the short sMNIST runs (default 1)
#   DEADLINE     seconds for the whole script (default 540): a step gets at most what is left
#                (minus a margin for the summary) and is skipped when under 10 s are left.
#   KEEP         where the runs and the chosen variant stay between calls on a warm machine
#                (default /tmp; lsnn-gpu/device-check-dry.sh points it elsewhere)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/gpu-bin}
BIN=$(cd "$BIN" && pwd) || exit 2
OUT=${OUT:-/tmp/lsnn-gpu-out}
KEEP=${KEEP:-/tmp}
DEADLINE=${DEADLINE:-540}
# Only 8 files come back from $OUT: the logs go to LOGS and travel as one archive.
LOGS=$(mktemp -d)
mkdir -p "$OUT" "$KEEP"
export LSNN_FIXTURES=$PWD/fixtures
export LSNN_HOST_BIN=$BIN/lsnn-host
chmod +x "$BIN"/lsnn-host "$BIN"/lsnn_gpu_device "$BIN"/lsnn_host_gpu 2>/dev/null
summary=()
failed=()
# STEP_CHECK, when set: a function given the step's log that prints a note for the summary and
# fails when the step did not do what it must (then the step fails).
step() { # name, timeout seconds, command...
    local name=$1 limit=$2
    shift 2
    local left=$((DEADLINE - 15 - SECONDS))
    if [ "$left" -lt 10 ]; then
        summary+=("$(printf '%-26s skipped (deadline)' "$name")")
        return 1
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local t0=$SECONDS
    timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
    local rc=$? note=""
    if [ -n "${STEP_CHECK:-}" ]; then
        note=$("$STEP_CHECK" "$LOGS/$name.log") || { [ "$rc" -ne 0 ] || rc=1; }
    fi
    summary+=("$(printf '%-26s rc=%-3s %4ss%s' "$name" "$rc" $((SECONDS - t0)) "${note:+  $note}")")
    tail -4 "$LOGS/$name.log" | cut -c1-300 | sed "s/^/  [$name] /"
    return $rc
}

# The device tests print "device: <name>" when they run on the GPU and "skipped: no CUDA device"
# (and pass) when the probe finds none: here a device must be there, so a skip fails the step,
# and so does a run where no test reached the GPU. libtest's "test NAME ... " starts each test's
# output (--nocapture --test-threads 1): a test counts once however often it probes.
on_the_gpu() { # log
    awk '/^test [^ ]+ \.\.\. / { name = $2; tests[name] = 1 }
         /(^|\.\.\. )device: / { ran[name] = 1 }
         /skipped: no CUDA device/ { skipped[name] = 1 }
         END {
             for (t in tests) n++
             for (t in ran) r++
             for (t in skipped) s++
             printf "%d of %d tests on the GPU, %d skipped\n", r, n, s
             exit (s > 0 || r == 0)
         }' "$1"
}
# `fixtures check` leaves the gpu backend out when it finds no device: here its lines must be
# there.
gpu_lines() { # log
    local n
    n=$(grep -cE '^(PASS|FAIL)  [^ ]+  gpu' "$1")
    echo "$n lines from the gpu backend"
    [ "$n" -gt 0 ]
}
device_step() { # name, timeout seconds, command... (a step that must use the GPU)
    step "$@" || failed+=("$1")
}

{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw --format=csv; uname -r; } > "$LOGS/device.txt" 2>&1
cat "$LOGS/device.txt"

PART=${PART:-all}
want() { [[ " $PART " == *" $1 "* || ($PART == all && $1 != long) ]]; }
if want main; then
    # Synchronise after every launch in the tests, so an error names its kernel.
    LSNN_GPU_SYNC=1 STEP_CHECK=on_the_gpu device_step gpu-tests 90 \
        "$BIN"/lsnn_gpu_device --nocapture --test-threads 1
    LSNN_GPU_SYNC=1 STEP_CHECK=on_the_gpu device_step host-gpu-tests 150 \
        "$BIN"/lsnn_host_gpu --nocapture --test-threads 1
    STEP_CHECK=gpu_lines device_step fixtures-all 60 "$BIN"/lsnn-host fixtures check fixtures/
    step bench-smnist 60 "$BIN"/lsnn-host bench --task smnist --device cuda --iters 20
    step bench-storerecall 60 "$BIN"/lsnn-host bench --task store-recall --device cuda --iters 20
    if [ -f "$BIN/torch_lsnn.py" ]; then
        step torch-smnist 60 python3 "$BIN/torch_lsnn.py" --device cuda --config smnist --iters 5
        step torch-storerecall 60 python3 "$BIN/torch_lsnn.py" --device cuda --config storerecall --iters 3
    fi
fi

if want train; then
    if [ -d "$BIN/mnist" ]; then
        for seed in ${SEEDS:-1}; do
            step "train-smnist-200-seed$seed" 90 "$BIN"/lsnn-host train smnist --device cuda \
                --data-dir "$BIN/mnist" --n-iter 200 --print-every 100 --seed "$seed" \
                --do-plot false --results-dir "$KEEP/runs-short"
        done
    fi
fi

if want ncu; then
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
fi

if want san; then
    san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
    if [ -n "$san" ]; then
        # One training iteration (--iters 0: the warm-up only) of each configuration at B 2:
        # every kernel runs, with DEEP R in the sMNIST one.
        for tool in ${SAN_TOOLS:-memcheck racecheck initcheck}; do
            for task in ${SAN_TASKS:-smnist store-recall}; do
                step "san-$tool-$task" 60 "$san" --tool "$tool" --error-exitcode 9 \
                    "$BIN"/lsnn-host bench --task "$task" --device cuda --batch 2 --iters 0
            done
        done
    else
        summary+=("compute-sanitizer          not found")
    fi
fi

# The median of a bench log's JSON line (empty when there is none).
bench_ms() {
    grep '^{' "$LOGS/$1.log" 2>/dev/null | tail -1 | python3 -c \
        'import json, sys; print(json.loads(sys.stdin.read()).get("ms_median", ""))' 2>/dev/null
}
if want ab && [ -n "${AB_ABOVE_MS:-}" ]; then
    ms=$(bench_ms bench-smnist)
    if [ -n "$ms" ] && python3 -c "import sys; sys.exit(0 if $ms <= $AB_ABOVE_MS else 1)"; then
        summary+=("$(printf '%-26s skipped (sMNIST %s ms <= %s)' ab "$ms" "$AB_ABOVE_MS")")
        skip_ab=1
    fi
fi
if want ab && [ -z "${skip_ab:-}" ]; then
    # The shipped kernels' time, the reference, when this call has not measured it yet.
    [ -f "$LOGS/bench-smnist.log" ] \
        || step bench-smnist 60 "$BIN"/lsnn-host bench --task smnist --device cuda --iters 20
    # The same binaries with each variant's PTX (same kernel arguments, other compile-time
    # options): iteration time and, for sMNIST, every kernel's duration.
    ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
    for dir in "$BIN"/ptx/*/; do
        v=$(basename "$dir")
        export LSNN_GPU_PTX_DIR=$dir
        step "ab-$v-bench-smnist" 40 "$BIN"/lsnn-host bench --task smnist --device cuda --iters 20
        step "ab-$v-bench-storerecall" 40 "$BIN"/lsnn-host bench --task store-recall --device cuda --iters 20
        [ -n "$ncu" ] && [[ " ${AB_NCU:-$v} " == *" $v "* ]] && step "ab-$v-ncu-smnist" 60 "$ncu" --clock-control none \
            --metrics gpu__time_duration.sum,sm__warps_active.avg.pct_of_peak_sustained_active --csv "$BIN"/lsnn-host bench --task smnist --device cuda --iters 1
        unset LSNN_GPU_PTX_DIR
    done
    # The fastest variant, when it beats the shipped kernels by over 3 %, for PART=long with
    # LONG_PTX=best on this (still warm) machine.
    best=$(for dir in "$BIN"/ptx/*/; do
        v=$(basename "$dir"); ms=$(bench_ms "ab-$v-bench-smnist"); [ -n "$ms" ] && echo "$ms $v"
    done | sort -g | head -1)
    shipped=$(bench_ms bench-smnist)
    if [ -n "$best" ] && [ -n "$shipped" ] \
        && python3 -c "import sys; sys.exit(0 if ${best% *} < 0.97 * $shipped else 1)"; then
        echo "${best#* }" > "$KEEP/lsnn-gpu-best-variant"
        summary+=("$(printf '%-26s %s (%s ms; shipped %s ms)' best-variant "${best#* }" "${best% *}" "$shipped")")
    fi
fi

if want long; then
    # The sMNIST tutorial's defaults (B 256, 36 000 iterations, validation every 400) on the GPU;
    # only the small result files come back (no plots). A warm machine keeps KEEP: when the
    # previous call's deadline cut the run, this call resumes it from its last checkpoint.
    # LONG_PTX=best: the variant the A/B of an earlier call on this machine found fastest,
    # after `fixtures check` (gpu backend included) passes with it.
    if [ "${LONG_PTX:-}" = best ] && [ -s "$KEEP/lsnn-gpu-best-variant" ]; then
        v=$(cat "$KEEP/lsnn-gpu-best-variant")
        export LSNN_GPU_PTX_DIR=$BIN/ptx/$v
        if step "fixtures-variant-$v" 60 "$BIN"/lsnn-host fixtures check fixtures/; then
            summary+=("$(printf '%-26s kernels of variant %s' train-smnist-long "$v")")
        else
            unset LSNN_GPU_PTX_DIR
        fi
    fi
    prev=$(ls -d "$KEEP"/runs-long/smnist/*/ 2>/dev/null | head -1)
    if [ -n "$prev" ] && [ -f "$prev/checkpoint.safetensors" ]; then
        step train-smnist-long $((DEADLINE - 20)) "$BIN"/lsnn-host train smnist --device cuda \
            --data-dir "$BIN/mnist" --n-iter "${N_ITER:-36000}" --resume "$prev"
    else
        step train-smnist-long $((DEADLINE - 20)) "$BIN"/lsnn-host train smnist --device cuda \
            --data-dir "$BIN/mnist" --n-iter "${N_ITER:-36000}" --seed 1 --do-plot false \
            --results-dir "$KEEP/runs-long"
    fi
    # results.json is rewritten at every validation: a run cut short still has its curve.
    run=$(ls -d "$KEEP"/runs-long/smnist/*/ 2>/dev/null | head -1)
    [ -n "$run" ] && cp "$run/results.json" "$run/flags.json" "$OUT/" 2>/dev/null
fi

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
python3 - "$LOGS" <<'PY'
import csv, glob, json, os, sys
out = sys.argv[1]
def last_json(path):
    try:
        lines = [l for l in open(path) if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None
def kernels(path):
    # Nsight Compute CSV: the last launch of each kernel (the timed iteration, after warm-up).
    times = {}
    try:
        rows = [l for l in open(path) if l.startswith('"')]
        for r in csv.DictReader(rows):
            if r.get("Metric Name") == "gpu__time_duration.sum":
                unit = r.get("Metric Unit", "")
                v = float(r["Metric Value"].replace(",", ""))
                scale = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0}.get(unit, float("nan"))
                times[r["Kernel Name"].split("(")[0]] = v * scale
    except (OSError, ValueError, KeyError):
        pass
    return times
variants = sorted({os.path.basename(p).split("-")[1] for p in glob.glob(os.path.join(out, "ab-*-bench-smnist.log"))})
if variants:
    print("\n| variant | sMNIST ms | store-recall ms | sMNIST kernels (ms) |")
    print("|---|---|---|---|")
    for v in variants:
        s = last_json(os.path.join(out, f"ab-{v}-bench-smnist.log")) or {}
        r = last_json(os.path.join(out, f"ab-{v}-bench-storerecall.log")) or {}
        k = kernels(os.path.join(out, f"ab-{v}-ncu-smnist.log"))
        ks = ", ".join(f"{n.replace('lsnn_', '')} {t:.2f}" for n, t in k.items() if t >= 0.05)
        print(f"| {v} | {s.get('ms_median', '-')} | {r.get('ms_median', '-')} | {ks} |")
PY
if [ ${#failed[@]} -gt 0 ]; then
    echo "device-check: FAILED: ${failed[*]} (see the summary)"
    exit 1
fi
