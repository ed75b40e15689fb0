#!/usr/bin/env bash
# Installs what building lsnn-gpu needs on Debian 12 (bookworm), idempotently and quietly:
# nvcc 11.8 (nvidia-cuda-toolkit, to compile kernels/*.cu to PTX) and libcuda.so (libcuda1, that
# cust links against; without a GPU it reports "no device" and the device tests skip).
# About 1.6 GB and 3 minutes the first time; nothing when both are already there.
# Then build with CUDA_LIBRARY_PATH=/usr/lib/cuda (cust's build script looks there).
set -euo pipefail

if command -v nvcc >/dev/null 2>&1 && ls /usr/lib/x86_64-linux-gnu/libcuda.so* >/dev/null 2>&1; then
    echo "CUDA toolkit present: $(nvcc --version | tail -1)"
    exit 0
fi
src=/etc/apt/sources.list.d/debian-nonfree.sources
if [ ! -f "$src" ]; then
    cat > "$src" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    nvidia-cuda-toolkit libcuda1 >/dev/null
echo "CUDA toolkit installed: $(nvcc --version | tail -1)"
