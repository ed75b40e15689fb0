//! Embeds the model and the input sequences named by `LSNN_FW_MODEL` and `LSNN_FW_INPUTS`
//! (paths), and sizes the firmware's static buffers exactly for that model: the parser of
//! lsnn-core reads the sizes here, at build time, so the firmware needs no allocator.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    for map in ["memory-an386.x", "memory-an505.x", "memory-virt.x"] {
        println!("cargo:rerun-if-changed={map}");
    }
    println!("cargo:rerun-if-env-changed=LSNN_FW_MODEL");
    println!("cargo:rerun-if-env-changed=LSNN_FW_INPUTS");
    println!("cargo::rustc-check-cfg=cfg(lsnn_integer)");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    // The board's memory map as memory.x, on the linker's search path for the runtime's link.x
    // (cortex-m-rt, riscv-rt). No memory.x in this directory: the linker would look here first.
    let target = env::var("TARGET").expect("TARGET");
    let memory = match target.as_str() {
        t if t.starts_with("thumbv8m") => "memory-an505.x",
        t if t.starts_with("riscv32") => "memory-virt.x",
        _ => "memory-an386.x",
    };
    fs::copy(manifest.join(memory), out.join("memory.x")).expect("copy the memory map");
    if target.starts_with("riscv") {
        // riscv-rt's link.x expects memory.x on the command line (cortex-m-rt's includes it).
        println!("cargo:rustc-link-arg=-Tmemory.x");
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg=-Tlink.x");

    let read = |var: &str| {
        let path = env::var_os(var).unwrap_or_else(|| {
            panic!("set {var} to a file (see scripts/firmware-check.sh): the firmware embeds it")
        });
        let path = PathBuf::from(path);
        println!("cargo:rerun-if-changed={}", path.display());
        fs::read(&path).unwrap_or_else(|e| panic!("{var}={}: {e}", path.display()))
    };
    let model_bytes = read("LSNN_FW_MODEL");
    let input_bytes = read("LSNN_FW_INPUTS");
    let model = lsnn_core::Model::parse(&model_bytes)
        .unwrap_or_else(|e| panic!("LSNN_FW_MODEL is not a valid model: {e}"));
    let seqs = lsnn_core::sequence::Sequences::parse(&input_bytes)
        .unwrap_or_else(|e| panic!("LSNN_FW_INPUTS is not a valid sequence file: {e}"));
    assert_eq!(seqs.n_in(), model.n_in(), "the inputs do not fit the model");
    if model.is_integer() {
        println!("cargo:rustc-cfg=lsnn_integer");
    }
    fs::write(out.join("model.lsnn"), &model_bytes).expect("write model");
    fs::write(out.join("inputs.seq"), &input_bytes).expect("write inputs");
    let config = format!(
        "/// Recurrent neurons of the embedded model.\n\
         pub const N_REC: usize = {};\n\
         /// Delay slots.\n\
         pub const N_DELAY: usize = {};\n\
         /// Readout outputs.\n\
         pub const N_OUT: usize = {};\n\
         /// Readout windows per sequence.\n\
         pub const N_WINDOWS: usize = {};\n\
         /// Weight kind of the embedded model.\n\
         pub const WEIGHTS: &str = \"{}\";\n",
        model.n_rec(),
        model.config().n_delay,
        model.n_out(),
        seqs.n_windows(),
        model.w_rec().kind().name(),
    );
    fs::write(out.join("config.rs"), config).expect("write config.rs");
}
