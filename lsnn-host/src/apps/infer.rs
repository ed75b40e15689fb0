//! `lsnn-host infer`: an exported model run by `lsnn-core` on freshly generated task data.

use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::export::{predictions, run_model};
use crate::error::HostError;
use crate::tasks::store_recall::{generate, StoreRecallParams};

/// Arguments of `lsnn-host infer`.
#[derive(clap::Args, Clone, Debug)]
pub struct InferArgs {
    /// The model file written by training (`model.lsnn` in the run folder).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Task whose data to generate.
    #[arg(long, default_value = "store-recall")]
    pub task: String,
    /// Number of sequences.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Input rate (Hz) of store-recall.
    #[arg(long, default_value_t = 50.0)]
    pub f0: f64,
    /// Characters per sequence (store-recall).
    #[arg(long, default_value_t = 12)]
    pub seq_len: usize,
    /// Expected store-recall delay in characters.
    #[arg(long, default_value_t = 6)]
    pub seq_delay: usize,
    /// Duration of a character (ms).
    #[arg(long, default_value_t = 200)]
    pub tau_char: usize,
}

/// What `infer` measured.
#[derive(Clone, Debug, Serialize)]
pub struct InferReport {
    /// Task.
    pub task: String,
    /// Sequences run.
    pub sequences: usize,
    /// Recall characters among them.
    pub recalls: usize,
    /// Fraction of recalls answered wrongly.
    pub error: f64,
    /// Total number of spikes of the recurrent neurons.
    pub spikes: u64,
    /// Mean firing rate (Hz).
    pub rate_hz: f64,
}

impl InferReport {
    /// One human-readable line.
    pub fn summary_line(&self) -> String {
        format!(
            "{}: recall error {:.4} over {} recalls in {} sequences, mean rate {:.1} Hz",
            self.task, self.error, self.recalls, self.sequences, self.rate_hz
        )
    }
}

/// Runs the model on `args.batch` generated sequences and scores the recalls.
pub fn infer(args: &InferArgs) -> Result<InferReport, HostError> {
    if args.task != "store-recall" {
        return Err(HostError::Flag {
            flag: "--task".into(),
            message: format!("`{}` is not supported (store-recall)", args.task),
        });
    }
    let bytes = std::fs::read(&args.model).map_err(|source| HostError::Io {
        path: args.model.clone(),
        source,
    })?;
    let model = lsnn_core::model::Model::parse(&bytes).map_err(|e| HostError::Flag {
        flag: format!("--model {}", args.model.display()),
        message: format!("not a valid lsnn model: {e}"),
    })?;
    let params = StoreRecallParams {
        n_charac: model.n_out(),
        n_in: model.n_in(),
        f0_hz: args.f0,
        seq_len: args.seq_len,
        seq_delay: args.seq_delay,
        tau_char: args.tau_char,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let batch = generate(&mut rng, args.batch, &params)?;
    let run = run_model(&bytes, &batch.input, params.seq_len)?;
    let predicted = predictions(&run.window_logits);
    let (mut recalls, mut wrong) = (0usize, 0usize);
    for ((b, c), _) in batch.recall_mask.indexed_iter().filter(|(_, &r)| r) {
        recalls += 1;
        wrong += usize::from(predicted[b][c] != usize::from(batch.target_nums[[b, c]]));
    }
    let spikes: u64 = run.spikes.iter().map(|&s| u64::from(s)).sum();
    let (n_batch, steps, n) = run.spikes.dim();
    Ok(InferReport {
        task: args.task.clone(),
        sequences: n_batch,
        recalls,
        error: wrong as f64 / recalls.max(1) as f64,
        spikes,
        rate_hz: spikes as f64 / (n_batch * steps * n) as f64 / f64::from(model.config().dt)
            * 1000.0,
    })
}
