//! `lsnn-host eval`: the test accuracy of a trained sMNIST run (the host's forward pass).

use std::path::PathBuf;

use crate::error::HostError;
use crate::runs::use_threads;
use crate::tutorials::smnist::SmnistSession;

/// Arguments of `lsnn-host eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A run folder of `train smnist` (its checkpoint.safetensors and flags.json).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// The MNIST-format folder whose test set to evaluate.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Evaluate only the first N test images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// The accuracy over the test set (or its first `--limit` images) and the number of images.
pub fn eval(args: &EvalArgs) -> Result<(f64, usize), HostError> {
    use_threads(args.threads);
    let session = SmnistSession::resume(&args.checkpoint, Some(&args.data_dir), None)?;
    let (predictions, accuracy) = session.predict_split(&session.data.test, args.limit)?;
    Ok((accuracy, predictions.len()))
}
