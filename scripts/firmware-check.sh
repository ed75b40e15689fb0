#!/usr/bin/env bash
# lsnn-core on microcontrollers, checked end to end (CI runs this from .ci/run):
#
#   1. trains a store-recall network (seed 1, ~100 iterations) and builds the sMNIST tutorial's
#      initial network (80 in, 120 LIF + 100 ALIF, 10 out, 12 % connectivity, D 10, R 5; random
#      weights, untrained), exports both with f32, i16 and i8 weights, and writes input
#      sequences: generated store-recall sequences, and real sMNIST encodings of the first
#      images of fixtures/mnist-subset;
#   2. builds lsnn-core/firmware for each of the six models, runs it under QEMU (mps2-an386,
#      Cortex-M4F) and compares its printed predictions and spike counts with
#      `lsnn-host infer --inputs` on the same model and inputs: they must be identical;
#   3. the C API (lsnn-core/capi): checks that its header is what cbindgen makes of the source,
#      builds the static library for the Cortex-M4F, links it into the C firmware
#      (lsnn-core/capi/examples/firmware-c, gcc-arm-none-eabi + newlib) and compares that
#      with the host the same way, for the same six models;
#   4. the Rust firmware on two more cores, compared the same way: a Cortex-M33 (QEMU
#      mps2-an505) and RISC-V rv32imac without FPU (QEMU virt; software floats, IEEE);
#   5. measures budgets: guest instructions per time step (QEMU plugin tools/qemu-insncount),
#      flash and static RAM (llvm-size), and the accuracy of the quantised store-recall
#      networks on the README's pooled sample (generated sequences: 2048 of seed 7, 8192 each
#      of seeds 11 and 12);
#   6. gates the README's targets: the i8 sMNIST-sized model within 64 KB of flash and 16 KB of
#      static RAM and at most 6 000 instructions a step on average (Cortex-M4F, Rust firmware),
#      the pooled recall error of i16 within 0.1 pt and of i8 within 0.5 pt of f32's,
#      the store-recall training (seed 1) solved after 80 to 120 iterations, and the
#      per-function profile run completed.
#
# QEMU comes from Debian's qemu-system-arm and qemu-system-misc packages, unpacked into
# target/qemu with `apt-get download` + `dpkg -x` (installing them would remove the
# preinstalled qemu-utils); gcc-arm-none-eabi, newlib and cbindgen are installed with apt-get.
# The last line printed is one JSON object (the fields up to identical_to_host: the Rust
# firmware on the Cortex-M4F, i8 sMNIST-sized model), unless what failed follows:
#   {"insns_per_step_mean": .., "insns_per_step_max": .., "flash_bytes": .., "ram_bytes": ..,
#    "identical_to_host": true|false, "c_api_identical": true|false,
#    "m33_identical": true|false, "riscv_identical": true|false}
# Exit status: 0 when every firmware run matched the host, the C header is fresh and every
# target of 6. is met, 1
# otherwise, 2 on setup errors.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/target/firmware-check
QEMU_ROOT=$ROOT/target/qemu
START=$(date +%s)
rm -rf "$WORK"
mkdir -p "$WORK"
FAILED=() # what missed its target

echo "== toolchain"
for triple in thumbv7em-none-eabihf thumbv8m.main-none-eabihf riscv32imac-unknown-none-elf; do
  rustup target add $triple >/dev/null 2>&1 || rustup target add $triple
done
rustup component add llvm-tools >/dev/null 2>&1 || rustup component add llvm-tools
HOST_TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
LLVM_BIN=$(rustc --print sysroot)/lib/rustlib/$HOST_TRIPLE/bin
LLVM_SIZE=$LLVM_BIN/llvm-size
LLVM_NM=$LLVM_BIN/llvm-nm
[ -x "$LLVM_SIZE" ] && [ -x "$LLVM_NM" ] || { echo "error: llvm-size/llvm-nm not in $LLVM_BIN" >&2; exit 2; }

echo "== QEMU"
qemu_env() {
  export LD_LIBRARY_PATH="$QEMU_ROOT/usr/lib/$(gcc -dumpmachine):$QEMU_ROOT/lib/$(gcc -dumpmachine)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}
QEMU=$QEMU_ROOT/usr/bin/qemu-system-arm
QEMU_RV=$QEMU_ROOT/usr/bin/qemu-system-riscv32
qemu_env
if ! "$QEMU" --version >/dev/null 2>&1 || ! "$QEMU_RV" --version >/dev/null 2>&1; then
  if ! apt-cache policy qemu-system-misc 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq
  fi
  # qemu-system-arm, qemu-system-misc (RISC-V) and the libraries they need that are not
  # installed (first alternative of each dependency, following library packages only).
  PKGS=$(python3 - <<'PY'
import subprocess
def installed(p):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
    return "install ok installed" in r.stdout
def deps(p):
    out = subprocess.run(["apt-cache", "depends", "--no-recommends", "--no-suggests",
                          "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", p],
                         capture_output=True, text=True).stdout
    res, in_alt = [], False
    for line in out.splitlines()[1:]:
        s = line.strip()
        if not s.lstrip("|").startswith(("Depends:", "PreDepends:")):
            continue
        name = s.split(":", 1)[1].strip()
        if not in_alt and not name.startswith("<"):
            res.append(name)
        in_alt = s.startswith("|")
    return res
wanted = ["qemu-system-arm", "qemu-system-misc"]
todo, seen, need = list(wanted), set(wanted), []
while todo:
    p = todo.pop()
    if p not in wanted and installed(p):
        continue
    need.append(p)
    for d in deps(p):
        if d.startswith("lib") and d not in seen:
            seen.add(d)
            todo.append(d)
print(" ".join(sorted(need)))
PY
)
  rm -rf "$QEMU_ROOT"
  mkdir -p "$QEMU_ROOT/debs"
  (cd "$QEMU_ROOT/debs" && apt-get download $PKGS >/dev/null 2>&1 || apt-get download $PKGS)
  for deb in "$QEMU_ROOT"/debs/*.deb; do dpkg -x "$deb" "$QEMU_ROOT"; done
fi
"$QEMU" --version | head -1
"$QEMU_RV" --version | head -1
gcc -O2 -shared -fPIC -o "$WORK/libinsncount.so" tools/qemu-insncount/insncount.c
gcc -O2 -shared -fPIC -o "$WORK/libinsnprofile.so" tools/qemu-insncount/insnprofile.c

echo "== host CLI and models"
cargo build --release -q -p lsnn-host
HOST=$ROOT/target/release/lsnn-host
"$HOST" train store-recall --seed 1 --results-dir "$WORK/train" > "$WORK/train.log" 2>&1 \
  || { tail -20 "$WORK/train.log"; echo "error: store-recall training failed" >&2; exit 2; }
tail -1 "$WORK/train.log"
# README: the tutorial's network is solved after 80 to 120 iterations (seeds 1-3; here seed 1).
SOLVED_AT=$(tail -1 "$WORK/train.log" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("solved_at"))')
if [[ "$SOLVED_AT" =~ ^[0-9]+$ ]] && [ "$SOLVED_AT" -ge 80 ] && [ "$SOLVED_AT" -le 120 ]; then
  echo "store-recall seed 1 solved at iteration $SOLVED_AT (target 80 to 120)"
else
  echo "FAIL store-recall seed 1: solved at $SOLVED_AT, not after 80 to 120 iterations"
  FAILED+=("solved_at")
fi
RUN=$(ls -d "$WORK"/train/store-recall/*/ | head -1)
for k in f32 i16 i8; do
  "$HOST" export --checkpoint "$RUN" --weights $k --out "$WORK/store-recall_$k.lsnn" \
    --sequences "$WORK/store-recall.seq" --count 4 --seed 3 > "$WORK/export_sr_$k.json"
  "$HOST" export --random-smnist --seed 1 --weights $k --out "$WORK/smnist_$k.lsnn" \
    --sequences "$WORK/smnist.seq" --count 3 --data-dir fixtures/mnist-subset \
    > "$WORK/export_sm_$k.json"
done
cat "$WORK/export_sm_i8.json"

# Runs the firmware $2 as run $1 under QEMU (the command and machine options follow) with the
# instruction counter on its marks, compares its result lines with the host's on the same model
# and inputs ($WORK/$3.host.txt), and records its sizes and marks. Fails when they differ.
run_firmware() {
  local name=$1 elf=$2 host=$WORK/$3.host.txt step seq rc=0
  shift 3
  step=$("$LLVM_NM" "$elf" | awk '$3=="bench_mark"{print "0x"$1}')
  seq=$("$LLVM_NM" "$elf" | awk '$3=="sequence_mark"{print "0x"$1}')
  timeout 600 "$@" -nographic \
    -plugin "$WORK/libinsncount.so,mark=$step,mark=$seq" -d plugin -D "$WORK/$name.insn" \
    -kernel "$elf" > "$WORK/$name.fw.txt" 2>&1 || rc=$?
  "$LLVM_SIZE" -A "$elf" > "$WORK/$name.size"
  echo "$name $step $seq" >> "$WORK/marks.txt"
  if [ $rc -ne 0 ]; then
    echo "FAIL $name: the firmware exited with $rc"; cat "$WORK/$name.fw.txt"; return 1
  elif diff <(grep '^seq ' "$WORK/$name.fw.txt") <(grep '^seq ' "$host") > "$WORK/$name.diff" \
      && [ -s "$host" ] && [ "$(grep -c '^seq ' "$WORK/$name.fw.txt")" -gt 0 ]; then
    echo "PASS $name: $(grep -c '^seq ' "$WORK/$name.fw.txt") sequences identical to the host"
  else
    echo "FAIL $name: firmware and host differ"; cat "$WORK/$name.diff"; return 1
  fi
}
QEMU_M4F=("$QEMU" -cpu cortex-m4 -machine mps2-an386 -semihosting-config enable=on,target=native)
MODELS="store-recall_f32 store-recall_i16 store-recall_i8 smnist_f32 smnist_i16 smnist_i8"

echo "== firmware under QEMU vs lsnn-host infer"
IDENTICAL=true
for task in store-recall smnist; do
  for k in f32 i16 i8; do
    name=${task}_$k
    model=$WORK/$name.lsnn
    seqs=$WORK/$task.seq
    (cd lsnn-core/firmware && LSNN_FW_MODEL=$model LSNN_FW_INPUTS=$seqs cargo build --release -q)
    elf=$WORK/$name.elf
    cp lsnn-core/firmware/target/thumbv7em-none-eabihf/release/lsnn-firmware "$elf"
    "$HOST" infer --model "$model" --inputs "$seqs" > "$WORK/$name.host.txt"
    run_firmware "$name" "$elf" "$name" "${QEMU_M4F[@]}" || IDENTICAL=false
  done
done

# ---- The C API, and the Rust firmware on two more cores (each against the host's lines) ----

# The C firmware for model $1 (one of $MODELS) in $2: the C API's static library linked into
# lsnn-core/capi/examples/firmware-c, the model and inputs embedded.
build_c_firmware() {
  local name=$1 out=$2 c=lsnn-core/capi/examples/firmware-c
  arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard -O2 -g -std=c11 \
    -Wall -Wextra -Werror -ffunction-sections -fdata-sections -I lsnn-core/capi/include \
    -DLSNN_MODEL_FILE="\"$WORK/$name.lsnn\"" -DLSNN_INPUTS_FILE="\"$WORK/${name%_*}.seq\"" \
    -nostartfiles --specs=nano.specs -T $c/link.ld -Wl,--gc-sections,--no-warn-execstack \
    $c/main.c $c/startup.c $c/semihosting.c $c/embed.S \
    target/thumbv7em-none-eabihf/release/liblsnn_capi.a -o "$out"
}

# gcc-arm-none-eabi with newlib, and Debian 12's cbindgen (0.24.3, whose output the checked-in
# header is), installed with apt-get where missing.
c_api_tools() {
  local need=()
  arm-none-eabi-gcc --specs=nano.specs -print-file-name=libc_nano.a 2>/dev/null | grep -q / \
    || need+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
  [ "$(/usr/bin/cbindgen --version 2>/dev/null)" = "cbindgen 0.24.3" ] || need+=(cbindgen)
  if [ ${#need[@]} -gt 0 ]; then
    apt-cache policy cbindgen 2>/dev/null | grep -q 'Candidate: [0-9]' || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
      > "$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log"; echo "error: apt-get install ${need[*]}" >&2; exit 2; }
  fi
  arm-none-eabi-gcc --version | head -1
  /usr/bin/cbindgen --version
}

echo "== C API: header, static library, C firmware on the Cortex-M4F vs lsnn-host infer"
SECTION_START=$SECONDS
c_api_tools
HEADER_FRESH=true
(cd lsnn-core/capi && /usr/bin/cbindgen -q --config cbindgen.toml --output "$WORK/lsnn.h")
if cmp -s lsnn-core/capi/include/lsnn.h "$WORK/lsnn.h"; then
  echo "PASS lsnn-core/capi/include/lsnn.h is what cbindgen makes of the source"
else
  echo "FAIL lsnn-core/capi/include/lsnn.h is stale: regenerate it with"
  echo "  (cd lsnn-core/capi && cbindgen --config cbindgen.toml --output include/lsnn.h)"
  diff "$WORK/lsnn.h" lsnn-core/capi/include/lsnn.h | head -20 || true
  HEADER_FRESH=false
fi
# The README's example compiles (warnings are errors).
arm-none-eabi-gcc -std=c11 -pedantic -Wall -Wextra -Werror -mcpu=cortex-m4 -mthumb \
  -mfpu=fpv4-sp-d16 -mfloat-abi=hard -I lsnn-core/capi/include \
  -c lsnn-core/capi/examples/minimal.c -o "$WORK/minimal.o"
# The library with the Rust firmware's flags (the Cortex-M4's VMLA allowed, see
# lsnn-core/firmware/.cargo/config.toml), one codegen unit and link-time optimisation (less
# flash, same step), at the release profile's opt-level 3: "s" with lsnn-core at 3, as the
# Rust firmware, makes the i8 sMNIST-sized step 14 212 instructions instead of 11 592.
CARGO_TARGET_THUMBV7EM_NONE_EABIHF_RUSTFLAGS="-C target-cpu=cortex-m4 -C target-feature=-slowfpvmlx -C llvm-args=-lsr-exp-narrow" \
  CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
  cargo build --release -q -p lsnn-capi --target thumbv7em-none-eabihf
C_IDENTICAL=true
for name in $MODELS; do
  build_c_firmware "$name" "$WORK/c_$name.elf"
  run_firmware "c_$name" "$WORK/c_$name.elf" "$name" "${QEMU_M4F[@]}" || C_IDENTICAL=false
done
echo "(C API: $((SECONDS - SECTION_START)) s)"

# The Rust firmware built for target $1 and run as $2_<model> for each of $MODELS under the
# QEMU command that follows.
other_core() {
  local triple=$1 tag=$2 name ok=true
  shift 2
  for name in $MODELS; do
    (cd lsnn-core/firmware && LSNN_FW_MODEL=$WORK/$name.lsnn LSNN_FW_INPUTS=$WORK/${name%_*}.seq \
      cargo build --release -q --target "$triple")
    cp "lsnn-core/firmware/target/$triple/release/lsnn-firmware" "$WORK/${tag}_$name.elf"
    run_firmware "${tag}_$name" "$WORK/${tag}_$name.elf" "$name" "$@" || ok=false
  done
  [ $ok = true ]
}

echo "== the firmware on a Cortex-M33 (mps2-an505) and on RISC-V rv32imac (virt) vs lsnn-host infer"
SECTION_START=$SECONDS
M33_IDENTICAL=true
other_core thumbv8m.main-none-eabihf m33 "$QEMU" -cpu cortex-m33 -machine mps2-an505 \
  -semihosting-config enable=on,target=native || M33_IDENTICAL=false
RISCV_IDENTICAL=true
other_core riscv32imac-unknown-none-elf riscv "$QEMU_RV" -machine virt -bios none \
  || RISCV_IDENTICAL=false
echo "(Cortex-M33 and RISC-V: $((SECONDS - SECTION_START)) s)"

echo "== where the i8 sMNIST-sized firmware's instructions go (per function)"
PROF_OUT=$WORK/smnist_i8.prof timeout 600 "$QEMU" -cpu cortex-m4 -machine mps2-an386 -nographic \
  -semihosting-config enable=on,target=native -plugin "$WORK/libinsnprofile.so" \
  -kernel "$WORK/smnist_i8.elf" > /dev/null 2>&1 \
  || { echo "FAIL the profile run"; FAILED+=("profile"); }
"$LLVM_NM" -n -C "$WORK/smnist_i8.elf" > "$WORK/smnist_i8.syms"

echo "== accuracy of the quantised store-recall networks (the README's pooled sample)"
SAMPLE="7:2048 11:8192 12:8192" # seed:sequences
for k in f32 i16 i8; do
  for part in $SAMPLE; do
    "$HOST" infer --model "$WORK/store-recall_$k.lsnn" --batch "${part#*:}" --seed "${part%:*}" \
      | tail -1 > "$WORK/accuracy_${k}_seed${part%:*}.json"
  done
done

echo "== budgets"
python3 - "$WORK" "$IDENTICAL" "$START" "$SAMPLE" "$C_IDENTICAL" "$M33_IDENTICAL" \
  "$RISCV_IDENTICAL" <<'PY' || FAILED+=("budgets")
import json, re, sys, time
work, identical, start = sys.argv[1], sys.argv[2] == "true", int(sys.argv[3])
seeds = [part.split(":")[0] for part in sys.argv[4].split()]
more_cores = dict(zip(("c_api_identical", "m33_identical", "riscv_identical"),
                      (a == "true" for a in sys.argv[5:8])))
missed = []

def steps(name, step, seq):
    """Instructions between consecutive step marks within a sequence (T per sequence)."""
    step, seq = int(step, 16) & ~1, int(seq, 16) & ~1
    diffs, prev = [], None
    for line in open(f"{work}/{name}.insn"):
        m = re.match(r"insncount: mark (0x[0-9a-f]+) at (\d+)", line)
        if not m:
            continue
        addr, n = int(m.group(1), 16), int(m.group(2))
        if addr == seq:
            prev = None
        elif addr == step:
            if prev is not None:
                diffs.append(n - prev)
            prev = n
    return diffs

def size(name):
    sec = {}
    for line in open(f"{work}/{name}.size"):
        f = line.split()
        if len(f) >= 2 and f[0].startswith(".") and f[1].isdigit():
            sec[f[0]] = int(f[1])
    flash = sum(sec.get(s, 0) for s in (".vector_table", ".text", ".rodata", ".data"))
    ram = sec.get(".data", 0) + sec.get(".bss", 0) + sec.get(".uninit", 0)
    return flash, ram, sec.get(".lsnn_inputs", 0)

def arena(name):
    """The RAM the C firmware took at run time for the network and its window sums."""
    for line in open(f"{work}/{name}.fw.txt"):
        m = re.search(r"arena_bytes (\d+)", line)
        if m:
            return int(m.group(1))
    return 0

CORES = {"c": "Cortex-M4F, C API", "m33": "Cortex-M33", "riscv": "RISC-V rv32imac"}
rows = {}
for line in open(f"{work}/marks.txt"):
    name, step, seq = line.split()
    d = steps(name, step, seq)
    flash, ram, inputs = size(name)
    core, model_name = name.split("_", 1) if name.split("_", 1)[0] in CORES else ("", name)
    model = len(open(f"{work}/{model_name}.lsnn", "rb").read())
    rows[name] = dict(mean=sum(d) / max(len(d), 1), max=max(d, default=0), n=len(d),
                      flash=flash, ram=ram + arena(name), inputs=inputs, model=model,
                      core=CORES.get(core, "Cortex-M4F"), model_name=model_name)
print("| core | model | weights | insns/step mean | insns/step max | steps | flash (code + model) | model file | RAM |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for name, r in rows.items():
    task, k = r["model_name"].rsplit("_", 1)
    print(f"| {r['core']} | {task} | {k} | {r['mean']:.0f} | {r['max']} | {r['n']} | {r['flash']} | {r['model']} | {r['ram']} |")
print("(RAM: .data + .bss; the C firmware's also the arena it took at run time for the network)")
print()
print("| store-recall weights | seed | recall error | vs f32 (pt) |")
print("|---|---:|---:|---:|")
acc = {(k, s): json.load(open(f"{work}/accuracy_{k}_seed{s}.json"))
       for k in ("f32", "i16", "i8") for s in seeds}
pooled = {}
for k in ("f32", "i16", "i8"):
    wrong = sum(round(acc[k, s]["error"] * acc[k, s]["recalls"]) for s in seeds)
    recalls = sum(acc[k, s]["recalls"] for s in seeds)
    pooled[k] = (wrong / recalls, recalls)
    for s in seeds:
        e, f = acc[k, s]["error"], acc["f32", s]["error"]
        print(f"| {k} | {s} | {100 * e:.2f} % ({acc[k, s]['recalls']} recalls) | {100 * (e - f):+.2f} |")
    print(f"| {k} | pooled | {100 * pooled[k][0]:.2f} % ({recalls} recalls) | {100 * (pooled[k][0] - pooled['f32'][0]):+.2f} |")
print()

def profile(name, n_steps, top=8):
    """Instructions per step of the functions that execute most (whole run / steps)."""
    import bisect
    syms = []
    for line in open(f"{work}/{name}.syms"):
        f = line.split(None, 2)
        if len(f) == 3 and f[1] in "tTwW":
            syms.append((int(f[0], 16) & ~1, f[2].strip()))
    syms.sort()
    starts = [a for a, _ in syms]
    per = {}
    for line in open(f"{work}/{name}.prof"):
        addr, count = line.split()
        i = bisect.bisect_right(starts, int(addr, 16)) - 1
        fn = syms[i][1] if i >= 0 else "?"
        fn = re.sub(r"::h[0-9a-f]{16}$", "", fn)
        for code, ch in (("$LT$", "<"), ("$GT$", ">"), ("$C$", ","), ("$u20$", " "), ("..", "::")):
            fn = fn.replace(code, ch)
        per[fn] = per.get(fn, 0) + int(count)
    total = sum(per.values())
    print(f"| {name}: function | insns/step | share |")
    print("|---|---:|---:|")
    for fn, c in sorted(per.items(), key=lambda x: -x[1])[:top]:
        print(f"| `{fn[:90]}` | {c / n_steps:.0f} | {100 * c / total:.1f} % |")
    print()

try:
    r = rows["smnist_i8"]
    # Every step is marked (the first of each sequence too): marks = differences + sequences.
    n_seq = sum(1 for l in open(f"{work}/smnist_i8.fw.txt") if l.startswith("seq "))
    profile("smnist_i8", r["n"] + n_seq)
except (OSError, ValueError, KeyError, IndexError) as e:
    print(f"(no profile: {e})")
    missed.append("the per-function profile")
r = rows["smnist_i8"]
# The README's targets (bytes; points of recall error on the pooled sample).
print("| target | measured | limit | |")
print("|---|---:|---:|---|")
targets = [  # what, measured, limit, format
    ("instructions a step, i8 sMNIST-sized (mean, Cortex-M4F)", r["mean"], 6000, ".1f"),
    ("flash, i8 sMNIST-sized (bytes)", r["flash"], 64 * 1024, "d"),
    ("static RAM, i8 sMNIST-sized (bytes)", r["ram"], 16 * 1024, "d"),
    ("store-recall i16 vs f32, pooled (abs. pt)", abs(100 * (pooled["i16"][0] - pooled["f32"][0])), 0.1, ".2f"),
    ("store-recall i8 vs f32, pooled (abs. pt)", abs(100 * (pooled["i8"][0] - pooled["f32"][0])), 0.5, ".2f"),
]
for what, value, limit, fmt in targets:
    ok = value <= limit
    print(f"| {what} | {value:{fmt}} | {limit} | {'met' if ok else 'MISSED'} |")
    if not ok:
        missed.append(what)
print()
print(f"total time {time.time() - start:.0f} s")
print(json.dumps({"insns_per_step_mean": round(r["mean"], 1), "insns_per_step_max": r["max"],
                  "flash_bytes": r["flash"], "ram_bytes": r["ram"],
                  "identical_to_host": identical, **more_cores}))
for m in missed:
    print(f"FAIL target missed: {m}")
sys.exit(1 if missed else 0)
PY
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "firmware-check: FAILED: ${FAILED[*]}"
fi
[ "$IDENTICAL" = true ] && [ "$C_IDENTICAL" = true ] && [ "$M33_IDENTICAL" = true ] \
  && [ "$RISCV_IDENTICAL" = true ] && [ "$HEADER_FRESH" = true ] && [ ${#FAILED[@]} -eq 0 ] || exit 1
