//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test crate uses its own subset

use std::process::Command;

use lsnn_host::apps::run::Hooks;

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
    Hooks {
        quiet: true,
        ..Hooks::default()
    }
}
