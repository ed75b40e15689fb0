//! `lsnn-host fixtures check`: every backend against every quantity of fixture files.

use std::path::PathBuf;

use crate::fixture::{check_file, expand_paths, select_backends, CheckLine, CheckOptions, Summary};

/// Arguments of `lsnn-host fixtures check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Fixture files, or directories whose *.json files are checked (sorted).
    #[arg(required = true, value_name = "FILE")]
    pub paths: Vec<PathBuf>,
    /// Only these backends (repeatable; default: all available).
    #[arg(long = "backend", value_name = "NAME")]
    pub backends: Vec<String>,
    /// Also check float64 fixtures in f32 on backends that compute in f64 (as "(f32)" lines).
    #[arg(long)]
    pub also_f32: bool,
}

/// Checks every file, handing each line (or each file's error) to `report` as it comes, and
/// returns the summary (its exit code: 0 all passed, 1 a check failed, 2 bad input).
pub fn check(
    args: &CheckArgs,
    mut report: impl FnMut(Result<&CheckLine, String>),
) -> Result<Summary, String> {
    let backends = select_backends(&args.backends).map_err(|e| e.to_string())?;
    let options = CheckOptions {
        also_f32: args.also_f32,
    };
    let mut summary = Summary::default();
    for item in expand_paths(&args.paths) {
        match item.and_then(|path| check_file(&path, &backends, &options)) {
            Ok(lines) => {
                for line in &lines {
                    report(Ok(line));
                    summary.record(line);
                }
            }
            Err(e) => {
                report(Err(e.to_string()));
                summary.record_bad_input();
            }
        }
    }
    Ok(summary)
}
