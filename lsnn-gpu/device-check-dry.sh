#!/usr/bin/env bash
# Runs lsnn-gpu/device-check.sh here, without a GPU, against stand-ins for everything it calls
# (the test binaries, lsnn-host, the PyTorch peer, nvidia-smi, compute-sanitizer), and checks
# what it decides: which steps run with which kernels, the A/B only when the shipped kernels
# miss the target, the fastest variant kept for PART=long only after its fixtures pass, a long
# run resumed by the next call, steps skipped past the deadline, the tables it prints, and that
# a device test that finds no device (it skips and passes) fails the call.
# A device session has 15 minutes in all: a mistake in that script costs one, so CI runs this.
#
# bash lsnn-gpu/device-check-dry.sh     (exit 0: every check passed)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=$work/gpu-bin stubs=$work/stubs calls=$work/calls
mkdir -p "$bin/mnist" "$stubs"
grep -v '^#' lsnn-gpu/variants.txt | while read -r name _; do
    [ -z "$name" ] || mkdir -p "$bin/ptx/$name"
done
variants=$(grep -v '^#' lsnn-gpu/variants.txt | awk 'NF { print $1 }')
fast=$(sed -n 2p <<< "$variants") # the variant the stand-in makes fastest

# lsnn-host: records its call; `bench` prints the median STUB_MS gives the kernels in use
# ("shipped=6.2 s4n=5.8", "*" for any other variant); `train` writes a run folder as the real
# one does; `fixtures check` prints core, host and gpu lines (no gpu line when STUB_NO_DEVICE
# is set) and fails with a variant's kernels when STUB_VARIANT_FIXTURES=fail.
cat > "$bin/lsnn-host" <<'EOF'
#!/usr/bin/env bash
v=shipped
[ -n "${LSNN_GPU_PTX_DIR:-}" ] && v=$(basename "$LSNN_GPU_PTX_DIR")
echo "lsnn-host kernels=$v $*" >> "$STUB_CALLS"
case "$1" in
bench)
    ms=$(tr ' ' '\n' <<< "$STUB_MS" | sed -n "s/^$v=//p")
    [ -n "$ms" ] || ms=$(tr ' ' '\n' <<< "$STUB_MS" | sed -n 's/^\*=//p')
    echo "{\"task\": \"x\", \"ms_median\": $ms}" ;;
fixtures)
    [ "$v" != shipped ] && [ "${STUB_VARIANT_FIXTURES:-pass}" = fail ] && { echo "1 failed"; exit 1; }
    for b in core host gpu; do
        [ "$b" = gpu ] && [ -n "${STUB_NO_DEVICE:-}" ] && continue
        echo "PASS  fixtures/forward_a.json  $b  forward.z  max abs err 0"
    done
    echo "all passed" ;;
train)
    shift 2
    while [ $# -gt 0 ]; do
        case "$1" in
        --results-dir) run="$2/smnist/20261129_seed1" ;;
        --resume) run=$2 ;;
        esac
        shift
    done
    mkdir -p "$run"
    echo '{"test_accuracy": 0.95}' > "$run/results.json"
    echo '{}' > "$run/flags.json"
    touch "$run/checkpoint.safetensors" ;;
esac
EOF
# The test binaries: libtest's output with --nocapture --test-threads 1 for three tests that
# probe the device (the first twice) and one that does not; a probe prints "device: <name>" on
# stderr, or "skipped: no CUDA device" when STUB_NO_DEVICE is set or STUB_SKIP names its test
# (the test then passes, as the real ones do).
for t in lsnn_gpu_device lsnn_host_gpu; do
    cat > "$bin/$t" <<EOF
#!/usr/bin/env bash
echo "$t sync=\${LSNN_GPU_SYNC:-} \$*" >> "\$STUB_CALLS"
probe() {
    if [ -n "\${STUB_NO_DEVICE:-}" ] || [ "\$1" = "\${STUB_SKIP:-}" ]; then
        echo "skipped: no CUDA device"
    else
        echo "device: stand-in" >&2
    fi
}
echo "running 4 tests"
printf 'test a ... '; probe a; probe a; echo ok
printf 'test b ... '; probe b; echo ok
printf 'test c ... '; probe c; echo ok
echo "test on_the_cpu ... ok"
echo "test result: ok. 4 passed; 0 failed"
EOF
done
printf 'import json\nprint(json.dumps({"ms_median": 1000.0}))\n' > "$bin/torch_lsnn.py"
printf '#!/usr/bin/env bash\necho "GPU 0: stand-in"\n' > "$stubs/nvidia-smi"
# compute-sanitizer --tool T --error-exitcode 9 PROGRAM...: runs the program.
printf '#!/usr/bin/env bash\necho "sanitizer $2" >> "$STUB_CALLS"\nshift 4\nexec "$@"\n' > "$stubs/compute-sanitizer"
chmod +x "$bin"/lsnn-host "$bin"/lsnn_gpu_device "$bin"/lsnn_host_gpu "$stubs"/*

failures=0
check() { # description, command...
    local what=$1
    shift
    if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; failures=$((failures + 1)); fi
}
has() { grep -qE -- "$1" "$2"; }
lacks() { ! grep -qE -- "$1" "$2"; }

device_check() { # log name, then VAR=value settings for the call
    local name=$1
    shift
    : > "$calls"
    local rc=0
    env PATH="$stubs:$PATH" STUB_CALLS="$calls" OUT="$work/out-$name" KEEP="$work/keep" "$@" \
        bash "$root/lsnn-gpu/device-check.sh" "$bin" > "$work/$name.log" 2>&1 || rc=$?
    echo "$rc" > "$work/$name.rc"
    cp "$calls" "$work/$name.calls"
}
exited() { # exit status, log name
    [ "$(cat "$work/$2.rc")" = "$1" ]
}

echo "== the shipped kernels miss 5 ms: everything runs, then the variants"
device_check miss STUB_MS="shipped=6.2 $fast=5.8 *=6.5" PART='main train san ab' SEEDS=1 \
    SAN_TOOLS='memcheck racecheck' AB_ABOVE_MS=5 AB_NCU=none DEADLINE=300
log=$work/miss.log c=$work/miss.calls
check "no step failed or was skipped" lacks 'rc=[1-9]|[1-9][0-9]* skipped|skipped \(' "$log"
check "the call exits 0" exited 0 miss
check "the summary counts the tests on the GPU (once each)" \
    has '^gpu-tests +rc=0 .* 3 of 4 tests on the GPU, 0 skipped$' "$log"
check "and the host's GPU tests" has '^host-gpu-tests +rc=0 .* 3 of 4 tests on the GPU, 0 skipped$' "$log"
check "and the gpu backend's fixture lines" has '^fixtures-all +rc=0 .* 1 lines from the gpu backend$' "$log"
for s in gpu-tests host-gpu-tests fixtures-all bench-smnist bench-storerecall torch-smnist \
    torch-storerecall train-smnist-200-seed1 san-memcheck-smnist san-memcheck-store-recall \
    san-racecheck-smnist san-racecheck-store-recall; do
    check "step $s ran" has "^$s +rc=0 " "$log"
done
check "the test binaries synchronise every launch" has '^lsnn_gpu_device sync=1 ' "$c"
check "the host's GPU tests synchronise every launch" has '^lsnn_host_gpu sync=1 ' "$c"
check "no initcheck when SAN_TOOLS leaves it out" lacks 'initcheck' "$c"
for v in $variants; do
    check "variant $v benchmarked with its own kernels" \
        has "^lsnn-host kernels=$v bench --task smnist --device cuda --iters 20" "$c"
done
check "the fastest variant is kept when 3 % faster" has "^best-variant +$fast \\(5.8 ms; shipped 6.2 ms\\)" "$log"
check "and remembered for PART=long" grep -qx "$fast" "$work/keep/lsnn-gpu-best-variant"
check "the table has ours and the peer's time" has '^\| sMNIST B256 T840 \| 6.2 \| 1000.0 \| 161x \|' "$log"
check "the variants' table has every variant" test "$(grep -c "^| [a-z0-9]* | 6.5 \\|^| $fast | 5.8" "$log")" -eq "$(wc -w <<< "$variants")"
check "the logs come back as one archive" tar -tzf "$work/out-miss/logs.tgz" ./bench-smnist.log > /dev/null

echo "== the target is met: no variants"
device_check met STUB_MS="*=4.8" PART='main ab' AB_ABOVE_MS=5 DEADLINE=300 KEEP="$work/keep-met"
check "the A/B is skipped" has '^ab +skipped \(sMNIST 4.8 ms <= 5\)' "$work/met.log"
check "no variant ran" lacks 'kernels=[a-z0-9]+ ' <(grep -v 'kernels=shipped' "$work/met.calls")

echo "== the long run with the fastest variant, then resumed by the next call"
device_check long1 STUB_MS="*=6" PART=long LONG_PTX=best N_ITER=36000 DEADLINE=200
c=$work/long1.calls
check "fixtures checked with the variant first" has "^lsnn-host kernels=$fast fixtures check fixtures/" "$c"
check "the run uses the variant" \
    has "^lsnn-host kernels=$fast train smnist --device cuda .*--n-iter 36000 --seed 1 " "$c"
check "the summary says which kernels ran" has "train-smnist-long +kernels of variant $fast" "$work/long1.log"
check "the results come back" test -s "$work/out-long1/results.json"
device_check long2 STUB_MS="*=6" PART=long LONG_PTX=best N_ITER=36000 DEADLINE=200
check "the next call resumes the run" \
    has "^lsnn-host kernels=$fast train smnist .*--resume $work/keep/runs-long/smnist/20261129_seed1/" "$work/long2.calls"

echo "== variants and the long run in one call (the target missed): the fastest trains"
device_check ablong STUB_MS="shipped=6.2 $fast=5.8 *=6.5" PART='ab long' LONG_PTX=best \
    AB_NCU=none DEADLINE=300 KEEP="$work/keep-ablong"
c=$work/ablong.calls
check "the shipped kernels timed first, as the reference" \
    has '^lsnn-host kernels=shipped bench --task smnist' <(head -1 "$c")
check "the variants ran before the run" \
    test "$(grep -n ' bench --task smnist' "$c" | tail -1 | cut -d: -f1)" -lt "$(grep -n ' train smnist' "$c" | cut -d: -f1)"
check "the run uses the fastest variant" has "^lsnn-host kernels=$fast train smnist " "$c"

echo "== the variant fails its fixtures on the device: the shipped kernels train"
rm -rf "$work/keep/runs-long"
device_check long3 STUB_MS="*=6" STUB_VARIANT_FIXTURES=fail PART=long LONG_PTX=best DEADLINE=200
check "the variant's fixtures failed" has "^fixtures-variant-$fast +rc=1 " "$work/long3.log"
check "the run uses the shipped kernels" has '^lsnn-host kernels=shipped train smnist ' "$work/long3.calls"

echo "== past the deadline nothing starts"
device_check late STUB_MS="*=6" PART=main DEADLINE=20
check "every step is skipped" has '^gpu-tests +skipped \(deadline\)' "$work/late.log"
check "nothing was called" test ! -s "$work/late.calls"
check "and the device tests count as failed" exited 1 late

echo "== no device found on the device machine: the tests skip and pass, the call fails"
device_check nodevice STUB_MS="*=6" STUB_NO_DEVICE=1 PART=main DEADLINE=300
log=$work/nodevice.log
check "the device tests' step fails" has '^gpu-tests +rc=1 .* 0 of 4 tests on the GPU, 3 skipped$' "$log"
check "the host's GPU tests' step fails" \
    has '^host-gpu-tests +rc=1 .* 0 of 4 tests on the GPU, 3 skipped$' "$log"
check "fixtures without the gpu backend fail" has '^fixtures-all +rc=1 .* 0 lines from the gpu backend$' "$log"
check "the call exits 1, naming the steps" \
    test "$(cat "$work/nodevice.rc") $(tail -1 "$log")" = "1 device-check: FAILED: gpu-tests host-gpu-tests fixtures-all (see the summary)"
device_check oneskip STUB_MS="*=6" STUB_SKIP=b PART=main DEADLINE=300
check "one test skipped among others fails its step" \
    has '^host-gpu-tests +rc=1 .* 2 of 4 tests on the GPU, 1 skipped$' "$work/oneskip.log"
check "and the call" exited 1 oneskip

if [ "$failures" -ne 0 ]; then
    echo "device-check-dry: $failures check(s) failed; logs:"
    tail -n 60 "$work"/*.log
    exit 1
fi
echo "device-check-dry: every check passed"
