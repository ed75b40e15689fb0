//! `lsnn-host export`: a trained run (or the random sMNIST network) as a model file, f32 or
//! quantised to i16 / i8, and input sequences of its task.

use std::path::{Path, PathBuf};

use lsnn_core::model::{Model, WeightKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::Dataset;
use crate::error::HostError;
use crate::export::{core_err, encode_model_as, sequences_of};
use crate::files::write_atomic;
use crate::input::InputBatch;
use crate::tasks::store_recall::generate;
use crate::tutorials::saved::{load_network, random_smnist_network, NetworkTask};

/// `--weights` of `lsnn-host export`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightsArg {
    /// 32-bit floats, as trained.
    F32,
    /// 16-bit integers times a per-matrix scale.
    I16,
    /// 8-bit integers times a per-matrix scale.
    I8,
}

impl From<WeightsArg> for WeightKind {
    fn from(w: WeightsArg) -> WeightKind {
        match w {
            WeightsArg::F32 => WeightKind::F32,
            WeightsArg::I16 => WeightKind::I16,
            WeightsArg::I8 => WeightKind::I8,
        }
    }
}

/// Arguments of `lsnn-host export`.
#[derive(clap::Args, Clone, Debug)]
pub struct ExportArgs {
    /// Run folder of `train store-recall` or `train smnist` (flags.json, checkpoint.safetensors).
    #[arg(long, value_name = "DIR", required_unless_present = "random_smnist")]
    pub checkpoint: Option<PathBuf>,
    /// Instead of a trained run: the sMNIST tutorial's initial (untrained, random) network,
    /// 80 in, 120 LIF + 100 ALIF, 10 out, DEEP R 12 % with Dale signs, D 10, R 5.
    #[arg(long, conflicts_with = "checkpoint")]
    pub random_smnist: bool,
    /// Seed of --random-smnist and of generated store-recall sequences.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The model file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// How to store the weights.
    #[arg(long, value_enum, default_value = "f32")]
    pub weights: WeightsArg,
    /// Also write input sequences of the network's task (the compact spike format of
    /// `lsnn_core::sequence`): generated store-recall sequences, or the first sMNIST test
    /// images of --data-dir.
    #[arg(long, value_name = "FILE")]
    pub sequences: Option<PathBuf>,
    /// How many sequences to write.
    #[arg(long, default_value_t = 4)]
    pub count: usize,
    /// MNIST-format folder (sMNIST sequences; default: the run's data folder).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// What `export` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    /// The model file.
    pub out: PathBuf,
    /// `f32`, `i16` or `i8`.
    pub weights: String,
    /// The task the network was built for.
    pub task: String,
    /// Size of the model file.
    pub bytes: usize,
    /// Inputs, neurons, outputs.
    pub n_in: usize,
    /// Recurrent neurons.
    pub n_rec: usize,
    /// Readout outputs.
    pub n_out: usize,
    /// Input and recurrent synapses.
    pub synapses: [usize; 2],
    /// Scales of w_in, w_rec, w_out (1 for f32).
    pub scales: [f32; 3],
    /// The integer ring's unit and multipliers (integer models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring: Option<(f32, i32, i32)>,
    /// The sequence file, if written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequences: Option<PathBuf>,
}

/// `lsnn-host export`.
pub fn export(args: &ExportArgs) -> Result<ExportReport, HostError> {
    let kind = WeightKind::from(args.weights);
    let net = match (&args.checkpoint, args.random_smnist) {
        (Some(dir), false) => load_network(dir)?,
        (None, true) => random_smnist_network(
            args.seed,
            args.data_dir
                .as_deref()
                .unwrap_or(Path::new("fixtures/mnist-subset")),
        )?,
        _ => {
            return Err(HostError::Flag {
                flag: "--checkpoint / --random-smnist".into(),
                message: "give exactly one of them".into(),
            })
        }
    };
    let bytes = encode_model_as(&net.spec, &net.params, kind)?;
    write_atomic(&args.out, &bytes)?;
    let model = Model::parse(&bytes).map_err(core_err)?;
    let task_name = match &net.task {
        NetworkTask::StoreRecall(_) => "store-recall",
        NetworkTask::Smnist(..) => "smnist",
    };
    if let Some(path) = &args.sequences {
        let (input, n_windows) = task_inputs(&net.task, args)?;
        write_atomic(path, &sequences_of(&input, n_windows)?)?;
    }
    let ring = model
        .integer_scales()
        .ok()
        .filter(|_| model.is_integer())
        .map(|s| (s.unit, s.m_in, s.m_rec));
    Ok(ExportReport {
        out: args.out.clone(),
        weights: kind.name().into(),
        task: task_name.into(),
        bytes: bytes.len(),
        n_in: model.n_in(),
        n_rec: model.n_rec(),
        n_out: model.n_out(),
        synapses: [model.w_in().nnz(), model.w_rec().nnz()],
        scales: [
            model.w_in().scale(),
            model.w_rec().scale(),
            model.w_out().scale(),
        ],
        ring,
        sequences: args.sequences.clone(),
    })
}

/// `count` input sequences of the task, and the number of readout windows per sequence.
fn task_inputs(task: &NetworkTask, args: &ExportArgs) -> Result<(InputBatch, usize), HostError> {
    match task {
        NetworkTask::StoreRecall(params) => {
            let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
            let batch = generate(&mut rng, args.count, params)?;
            Ok((batch.input, params.seq_len))
        }
        NetworkTask::Smnist(encoding, run_data) => {
            let dir = args.data_dir.as_ref().unwrap_or(run_data);
            let data = Dataset::open(dir, 0)?;
            let n = args.count.min(data.test.len());
            let indices: Vec<usize> = (0..n).collect();
            let batch = encoding.encode(&data.test.batch(&indices))?;
            let (start, end) = encoding.loss_window();
            Ok((batch.input, encoding.n_steps() / (end - start)))
        }
    }
}
