//! `lsnn-host bench`: times full training iterations of a tutorial configuration.

use crate::error::HostError;
use crate::tutorials::bench::{bench, BenchResult, BenchTask};

/// Arguments of `lsnn-host bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which tutorial configuration.
    #[arg(long, value_enum)]
    pub task: BenchTask,
    /// Batch size (default: the tutorial's, 128 or 256).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Timed iterations (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// cpu, or cuda (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Runs the benchmark on the device asked for.
pub fn run_bench(args: &BenchArgs) -> Result<BenchResult, HostError> {
    match args.device.as_str() {
        "cpu" => bench(args.task, args.batch, args.iters, args.threads),
        "cuda" => cuda(args),
        other => Err(HostError::Flag {
            flag: "--device".into(),
            message: format!("`{other}` is not a device (cpu or cuda)"),
        }),
    }
}

#[cfg(feature = "cuda")]
fn cuda(args: &BenchArgs) -> Result<BenchResult, HostError> {
    crate::tutorials::bench::bench_cuda(args.task, args.batch, args.iters)
}

#[cfg(not(feature = "cuda"))]
fn cuda(_: &BenchArgs) -> Result<BenchResult, HostError> {
    Err(crate::train::device::no_cuda_build())
}
