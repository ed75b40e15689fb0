#!/usr/bin/env bash
# A detailed Nsight Compute profile (--set full, clocks left as they are) of the forward and
# backward kernels of one training iteration of each configuration, for tuning: reports and
# their details pages land in $OUT. Runs on the device machine with the binaries of
# lsnn-gpu/device-build.sh (BIN, default target/gpu-bin).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/gpu-bin}
OUT=${OUT:-/tmp/lsnn-gpu-profile}
mkdir -p "$OUT"
chmod +x "$BIN"/lsnn-host
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -n "$ncu" ] || { echo "ncu not found"; exit 1; }
for task in smnist store-recall; do
    timeout 150 "$ncu" --clock-control none --set full -k 'regex:lsnn_(forward|backward)' -c 2 \
        -f -o "$OUT/$task" "$BIN"/lsnn-host bench --task "$task" --device cuda --iters 0 \
        > "$OUT/$task-run.txt" 2>&1
    echo "$task: rc=$?"
    "$ncu" --import "$OUT/$task.ncu-rep" --page details > "$OUT/$task-details.txt" 2>&1
    grep -E "lsnn_|Duration|Registers|Achieved Occupancy|Warp Cycles Per Issued|Stall|L1/TEX Hit|L2 Hit|Memory Throughput|Compute \(SM\) Throughput" \
        "$OUT/$task-details.txt" | head -60
done
ls -la "$OUT"
