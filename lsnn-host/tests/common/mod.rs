//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

use lsnn_host::runs::Hooks;
use lsnn_host::tutorials::store_recall::StoreRecallFlags;

/// The shipped 600-image MNIST subset: under `$LSNN_FIXTURES` when set (the device machine runs
/// the test binaries away from the source tree), else in the source tree's `fixtures/`.
pub fn mnist_subset() -> PathBuf {
    std::env::var_os("LSNN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures"))
        .join("mnist-subset")
}

/// Runs the `lsnn-host` binary from the crate's folder: (exit code, stdout + stderr).
pub fn run_cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lsnn-host"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run lsnn-host");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// No progress bar, no prints.
pub fn quiet() -> Hooks {
    Hooks { quiet: true }
}

/// A small but complete store-recall configuration (seconds, not minutes), seed 11.
pub fn small_store_recall_flags(results: &Path, n_iter: usize) -> StoreRecallFlags {
    StoreRecallFlags {
        batch_train: 8,
        batch_val: 8,
        batch_test: 8,
        n_in: 20,
        seq_len: 8,
        seq_delay: 2,
        tau_char: 20,
        n_iter,
        print_every: 2,
        lr_decay_every: 3,
        stop_crit: 0.0,
        seed: 11,
        do_plot: false,
        results_dir: results.to_path_buf(),
        ..StoreRecallFlags::defaults()
    }
}
