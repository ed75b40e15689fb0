//! Compiles every `kernels/*.cu` to PTX with nvcc (`-arch=compute_80`: PTX that the driver
//! JIT-compiles for any newer GPU; `-fmad=false`: no fused multiply-adds, so the neuron
//! equations round as lsnn-core's do). The crate embeds the PTX (`src/ptx.rs`).
//!
//! `NVCC` names the compiler (default: `nvcc` on the PATH, then /usr/local/cuda/bin/nvcc).

use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALL_HINT: &str = "lsnn-gpu needs the CUDA toolkit's nvcc to compile its kernels to PTX.\n\
     On Debian 12: add the contrib/non-free components (see lsnn-gpu/NOTES.md or .ci/run), then\n\
     \n    apt-get install -y --no-install-recommends nvidia-cuda-toolkit libcuda1\n\n\
     and build with CUDA_LIBRARY_PATH=/usr/lib/cuda (cust's build script needs it).\n\
     Elsewhere install a CUDA toolkit (>= 11.8) and put nvcc on the PATH or set NVCC=/path/to/nvcc.\n\
     Plain `cargo build` / `cargo test` at the workspace root do not build lsnn-gpu.";

fn nvcc() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NVCC") {
        return Some(PathBuf::from(p));
    }
    let on_path = Command::new("nvcc").arg("--version").output();
    if on_path.map(|o| o.status.success()).unwrap_or(false) {
        return Some(PathBuf::from("nvcc"));
    }
    let local = Path::new("/usr/local/cuda/bin/nvcc");
    local.exists().then(|| local.to_path_buf())
}

/// With the `emu` feature (default; off in lsnn-host's dependency): the CPU emulator of the
/// kernels (emu/emu.cpp, which includes kernels/*.cu) as a static library for the tests.
fn build_emulator(out: &Path) {
    println!("cargo:rerun-if-changed=emu");
    println!("cargo:rerun-if-env-changed=CXX");
    // Compile-time options of the kernels for the emulator only (e.g. the variants of
    // device-build.sh: `LSNN_EMU_DEFINES="-DLSNN_EVENT_BATCH=1" cargo test -p lsnn-gpu`).
    println!("cargo:rerun-if-env-changed=LSNN_EMU_DEFINES");
    let defines = std::env::var("LSNN_EMU_DEFINES").unwrap_or_default();
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    // A sanitizer among the options (`-fsanitize=thread`, `-fsanitize=address,undefined`) needs
    // its runtime in the test binaries too, and tells the tests which checks to prove (emu.rs).
    println!(
        r#"cargo:rustc-check-cfg=cfg(emu_sanitizer, values("thread", "address", "undefined"))"#
    );
    for flag in defines.split_whitespace() {
        if let Some(list) = flag.strip_prefix("-fsanitize=") {
            for which in list.split(',') {
                link_sanitizer_runtime(&cxx, which);
                println!("cargo:rustc-cfg=emu_sanitizer=\"{which}\"");
            }
        }
    }
    let obj = out.join("lsnn_emu.o");
    let status = Command::new(&cxx)
        .args([
            "-std=c++20",
            "-O2",
            "-ffp-contract=off",
            "-fPIC",
            "-pthread",
            "-c",
        ])
        .args(defines.split_whitespace())
        .arg("emu/emu.cpp")
        .arg("-o")
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("\n\ncould not run {cxx} for the kernel emulator: {e}\n"));
    assert!(status.success(), "{cxx} failed on emu/emu.cpp");
    let lib = out.join("liblsnn_emu.a");
    let _ = std::fs::remove_file(&lib);
    let status = Command::new("ar")
        .arg("crs")
        .arg(&lib)
        .arg(&obj)
        .status()
        .expect("ar");
    assert!(status.success(), "ar failed");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=lsnn_emu");
    println!("cargo:rustc-link-lib=dylib=stdc++");
}

/// rustc links with `-nodefaultlibs`, so the sanitizer's runtime (`libtsan`, `libasan`) is named
/// here, from where the C++ compiler keeps it.
fn link_sanitizer_runtime(cxx: &str, which: &str) {
    let lib = match which {
        "thread" => "tsan",
        "address" => "asan",
        "undefined" => "ubsan",
        other => panic!("LSNN_EMU_DEFINES: -fsanitize={other} is not one the emulator links"),
    };
    let out = Command::new(cxx)
        .arg(format!("-print-file-name=lib{lib}.so"))
        .output()
        .unwrap_or_else(|e| panic!("could not run {cxx}: {e}"));
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let dir = path
        .parent()
        .filter(|_| path.is_absolute())
        .unwrap_or_else(|| {
            panic!("{cxx} does not know lib{lib}.so (install its sanitizer runtime)")
        });
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=dylib={lib}");
}

fn main() {
    let dir = Path::new("kernels");
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-env-changed=NVCC");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("lsnn-gpu/kernels exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    sources.sort();
    for s in &sources {
        println!("cargo:rerun-if-changed={}", s.display());
    }
    let Some(nvcc) = nvcc() else {
        panic!("\n\nnvcc not found.\n{INSTALL_HINT}\n");
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if std::env::var_os("CARGO_FEATURE_EMU").is_some() {
        build_emulator(&out);
    }
    for src in sources
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
    {
        let stem = src.file_stem().expect("a file name").to_string_lossy();
        let ptx = out.join(format!("{stem}.ptx"));
        let result = Command::new(&nvcc)
            .args([
                "-ptx",
                "-arch=compute_80",
                "-fmad=false",
                "-std=c++14",
                "-I",
            ])
            .arg(dir)
            .arg("-o")
            .arg(&ptx)
            .arg(src)
            .output();
        match result {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "\n\nnvcc failed on {}:\n{}{}\n",
                src.display(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!(
                "\n\ncould not run {}: {e}\n{INSTALL_HINT}\n",
                nvcc.display()
            ),
        }
    }
}
