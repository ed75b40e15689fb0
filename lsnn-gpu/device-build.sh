#!/usr/bin/env bash
# Builds, on a machine with the CUDA toolkit (see install-cuda-toolkit.sh) but no GPU, everything
# lsnn-gpu/device-check.sh runs on the device machine (which has CUDA 13 and a driver but no
# Rust), into target/gpu-bin/ (git-ignored; carry it with the device call):
#   lsnn-host             the CLI with the `cuda` feature (bench, fixtures check, train)
#   lsnn_gpu_device       lsnn-gpu's device tests (tests/device.rs)
#   lsnn_host_gpu         lsnn-host's GPU tests (tests/gpu.rs)
#   torch_lsnn.py         the PyTorch peer (from shared/bench)
# Binaries are stripped of debug info to fit the carry limit (64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDA_LIBRARY_PATH=${CUDA_LIBRARY_PATH:-/usr/lib/cuda}
out=target/gpu-bin
rm -rf "$out"
mkdir -p "$out"

exe_of() { # the test executable cargo built, from its JSON messages
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1" | tail -1
}

cargo build --release -p lsnn-host --features cuda
cp target/release/lsnn-host "$out/lsnn-host"
exe=$(cargo test --release -p lsnn-gpu --test device --no-run --message-format=json 2>/dev/null | exe_of device)
cp "$exe" "$out/lsnn_gpu_device"
exe=$(cargo test --release -p lsnn-host --features cuda --test gpu --no-run --message-format=json 2>/dev/null | exe_of gpu)
cp "$exe" "$out/lsnn_host_gpu"
for b in "$out"/lsnn-host "$out"/lsnn_gpu_device "$out"/lsnn_host_gpu; do
    objcopy --strip-debug "$b"
done
peer=""
for p in ../shared/bench/torch_lsnn.py shared/bench/torch_lsnn.py /work/shared/bench/torch_lsnn.py; do
    if [ -f "$p" ]; then peer=$p; break; fi
done
if [ -n "$peer" ]; then cp "$peer" "$out/"; else echo "warning: torch_lsnn.py not found" >&2; fi
# The original MNIST for the training runs on the device (11 MB of IDX .gz files).
for d in ../shared/data/mnist shared/data/mnist /work/shared/data/mnist; do
    if [ -f "$d/train-images-idx3-ubyte.gz" ]; then mkdir -p "$out/mnist" && cp "$d"/*.gz "$out/mnist/"; break; fi
done
[ -d "$out/mnist" ] || echo "warning: MNIST not found: PART=train will be skipped" >&2
# Kernel variants for `PART=ab` of device-check.sh: lsnn-gpu/variants.txt (s4 = the shipped
# kernels, g1 = about version 4, b1 and b4 version 7 with fewer input events per batch, the
# others one change of version 5 at a time).
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
grep -v '^#' lsnn-gpu/variants.txt | while read -r name options; do
    [ -n "$name" ] || continue
    mkdir -p "$out/ptx/$name"
    for src in lsnn-gpu/kernels/*.cu; do
        # shellcheck disable=SC2086 # the options are words
        "$nvcc" -ptx -arch=compute_80 -fmad=false -std=c++14 $options -I lsnn-gpu/kernels \
            -o "$out/ptx/$name/$(basename "$src" .cu).ptx" "$src"
    done
done
git rev-parse --short HEAD > "$out/commit" 2>/dev/null || true
ls -la "$out"
du -sh "$out"
