//! `lsnn-host infer`: an exported model run by `lsnn-core` on freshly generated task data.

use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::Dataset;
use crate::error::HostError;
use crate::export::{predictions, run_model, run_sequences};
use crate::tasks::smnist::SmnistEncoding;
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
    /// MNIST-format folder whose test set `--task smnist` runs.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Only the first N test images (smnist).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Time extension of the sMNIST encoding (as in training).
    #[arg(long, default_value_t = 1)]
    pub ext_time: usize,
    /// Run these input sequences (a file written by `lsnn-host export --sequences`) instead of
    /// task data, and print one line per sequence exactly as the firmware does:
    /// `seq <s> spikes <count> pred <class of each readout window>`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data_dir", "limit"])]
    pub inputs: Option<PathBuf>,
}

/// What `infer` measured.
#[derive(Clone, Debug, Serialize)]
pub struct InferReport {
    /// Task.
    pub task: String,
    /// Sequences run.
    pub sequences: usize,
    /// Recall characters among them (store-recall) or images (smnist): the scored answers.
    pub recalls: usize,
    /// Fraction of answers that are wrong.
    pub error: f64,
    /// Predicted class of every scored answer, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<usize>,
    /// Total number of spikes of the recurrent neurons.
    pub spikes: u64,
    /// Mean firing rate (Hz).
    pub rate_hz: f64,
    /// With `--inputs`: one result line per sequence, in the firmware's format.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
}

impl InferReport {
    /// One human-readable line (with `--inputs`: the result line of every sequence).
    pub fn summary_line(&self) -> String {
        if !self.lines.is_empty() {
            return self.lines.join("\n");
        }
        format!(
            "{}: recall error {:.4} over {} recalls in {} sequences, mean rate {:.1} Hz",
            self.task, self.error, self.recalls, self.sequences, self.rate_hz
        )
    }
}

/// Runs the model on task data: `args.batch` generated store-recall sequences (scoring the
/// recalls) or the sMNIST test set of `--data-dir` (scoring every image).
pub fn infer(args: &InferArgs) -> Result<InferReport, HostError> {
    let bytes = std::fs::read(&args.model).map_err(|source| HostError::Io {
        path: args.model.clone(),
        source,
    })?;
    let model = lsnn_core::model::Model::parse(&bytes).map_err(|e| HostError::Flag {
        flag: format!("--model {}", args.model.display()),
        message: format!("not a valid lsnn model: {e}"),
    })?;
    if let Some(path) = &args.inputs {
        return infer_sequences(args, path, &bytes, &model);
    }
    match args.task.as_str() {
        "store-recall" => {}
        "smnist" => return infer_smnist(args, &bytes, &model),
        other => {
            return Err(HostError::Flag {
                flag: "--task".into(),
                message: format!("`{other}` is not supported (store-recall or smnist)"),
            })
        }
    }
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
    let mut answers = Vec::new();
    for ((b, c), _) in batch.recall_mask.indexed_iter().filter(|(_, &r)| r) {
        recalls += 1;
        answers.push(predicted[b][c]);
        wrong += usize::from(predicted[b][c] != usize::from(batch.target_nums[[b, c]]));
    }
    let spikes: u64 = run.spikes.iter().map(|&s| u64::from(s)).sum();
    let (n_batch, steps, n) = run.spikes.dim();
    Ok(InferReport {
        task: args.task.clone(),
        sequences: n_batch,
        recalls,
        error: wrong as f64 / recalls.max(1) as f64,
        predictions: answers,
        spikes,
        rate_hz: spikes as f64 / (n_batch * steps * n) as f64 / f64::from(model.config().dt)
            * 1000.0,
        lines: Vec::new(),
    })
}

/// `--inputs`: the sequences of a file through the core, one firmware-format line each.
fn infer_sequences(
    args: &InferArgs,
    path: &std::path::Path,
    bytes: &[u8],
    model: &lsnn_core::model::Model<'_>,
) -> Result<InferReport, HostError> {
    let seq_bytes = std::fs::read(path).map_err(|source| HostError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let seqs = lsnn_core::sequence::Sequences::parse(&seq_bytes).map_err(|e| HostError::Flag {
        flag: format!("--inputs {}", path.display()),
        message: format!("not a valid sequence file: {e}"),
    })?;
    let lines = run_sequences(bytes, &seq_bytes)?;
    let spikes = lines
        .iter()
        .filter_map(|l| l.split(' ').nth(3)?.parse::<u64>().ok())
        .sum::<u64>();
    let steps = (seqs.len() * seqs.n_steps() * model.n_rec()).max(1);
    Ok(InferReport {
        task: format!("sequences ({})", args.task),
        sequences: seqs.len(),
        recalls: 0,
        error: 0.0,
        predictions: Vec::new(),
        spikes,
        rate_hz: spikes as f64 / steps as f64 / f64::from(model.config().dt) * 1000.0,
        lines,
    })
}

/// The sMNIST test set through the core: the prediction is the argmax of the mean readout over
/// the training loss window (the last 28 steps, or the last step for analog input).
fn infer_smnist(
    args: &InferArgs,
    bytes: &[u8],
    model: &lsnn_core::model::Model<'_>,
) -> Result<InferReport, HostError> {
    let data_dir = args.data_dir.as_ref().ok_or_else(|| HostError::Flag {
        flag: "--data-dir".into(),
        message: "--task smnist needs the MNIST-format folder holding the test set".into(),
    })?;
    let encoding = SmnistEncoding {
        n_in: model.n_in(),
        crs_thr: model.n_in() > 1,
        ext_time: args.ext_time,
    };
    let data = Dataset::open(data_dir, 0)?;
    let n = args.limit.unwrap_or(data.test.len()).min(data.test.len());
    let (start, end) = encoding.loss_window();
    let window = end - start;
    let n_windows = encoding.n_steps() / window;
    let (mut answers, mut wrong, mut spikes) = (Vec::with_capacity(n), 0usize, 0u64);
    let indices: Vec<usize> = (0..n).collect();
    for chunk in indices.chunks(args.batch.max(1)) {
        let batch = encoding.encode(&data.test.batch(chunk))?;
        let run = run_model(bytes, &batch.input, n_windows)?;
        for (windows, &label) in predictions(&run.window_logits).iter().zip(&batch.labels) {
            let predicted = windows[n_windows - 1];
            wrong += usize::from(predicted != label);
            answers.push(predicted);
        }
        spikes += run.spikes.iter().map(|&s| u64::from(s)).sum::<u64>();
    }
    let steps = (n * encoding.n_steps() * model.n_rec()).max(1);
    Ok(InferReport {
        task: args.task.clone(),
        sequences: n,
        recalls: n,
        error: wrong as f64 / n.max(1) as f64,
        predictions: answers,
        spikes,
        rate_hz: spikes as f64 / steps as f64 / f64::from(model.config().dt) * 1000.0,
        lines: Vec::new(),
    })
}
