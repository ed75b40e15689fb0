//! Exporting a trained network in the core's binary model format (f32, or quantised to i16 /
//! i8), the input sequences a device replays, and running models through `lsnn-core` (the
//! same code a microcontroller runs: this is the reference the firmware is compared against).

use std::path::{Path, PathBuf};

use lsnn_core::model::{Model, ModelParts, WeightKind};
use lsnn_core::sequence::{
    encode_sequences, run_sequence, spike_events, window_class, write_result_line, Observation,
    Sequences, WindowMeans,
};
use lsnn_core::{argmax, Accumulator, Cell, CellState, LeWeights, Neuron, RingStore, Synapses};
use ndarray::Array3;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::checkpoint::{load_run, read_flags, restore_network};
use super::run::write_atomic;
use super::smnist::SmnistFlags;
use super::store_recall::StoreRecallFlags;
use crate::data::Dataset;
use crate::error::HostError;
use crate::input::InputBatch;
use crate::tasks::smnist::SmnistEncoding;
use crate::tasks::store_recall::{generate, StoreRecallParams};
use crate::train::update::Weights;
use crate::train::{Params, Spec};

/// Writes `spec` + `params` as a `.lsnn` model file (f32 weights, V0 applied, no autapses).
pub fn export_model(path: &Path, spec: &Spec<f32>, params: &Params<f32>) -> Result<(), HostError> {
    let bytes = encode_model(spec, params)?;
    write_atomic(path, &bytes)
}

/// The model file's bytes (f32 weights).
pub fn encode_model(spec: &Spec<f32>, params: &Params<f32>) -> Result<Vec<u8>, HostError> {
    encode_model_as(spec, params, WeightKind::F32)
}

/// The model file's bytes with weights stored as `kind`: per-matrix symmetric quantisation
/// for i16 / i8 of `w_in`, `w_rec` and the readout `w_out` (the bias stays f32), done by
/// [`ModelParts::encode`].
pub fn encode_model_as(
    spec: &Spec<f32>,
    params: &Params<f32>,
    kind: WeightKind,
) -> Result<Vec<u8>, HostError> {
    let (w_in, w_rec) = params.synapses(spec)?;
    let w_out = params.w_out.as_standard_layout();
    let parts = ModelParts {
        config: spec.config,
        tau: &spec.tau,
        thr: &spec.thr,
        beta: &spec.beta,
        w_in: w_in.view(),
        w_rec: w_rec.view(),
        w_out: w_out.as_slice().expect("standard layout"),
        b_out: params.b_out.as_ref().and_then(|b| b.as_slice()),
        tau_out: spec.tau_out,
        weights: kind,
    };
    parts
        .to_vec()
        .map_err(|e| HostError::Network(format!("encoding the model: {e}")))
}

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

/// The task a network was trained for, with what is needed to make its inputs.
#[derive(Clone, Debug)]
pub enum NetworkTask {
    /// Store-recall with these task parameters.
    StoreRecall(StoreRecallParams),
    /// sMNIST with this encoding and data folder.
    Smnist(SmnistEncoding, PathBuf),
}

/// A network loaded from a run folder (or built at random).
#[derive(Clone, Debug)]
pub struct LoadedNetwork {
    /// Fixed part.
    pub spec: Spec<f32>,
    /// Trained arrays.
    pub params: Params<f32>,
    /// Its task.
    pub task: NetworkTask,
}

/// Loads the network of a `train store-recall` or `train smnist` run folder: the flags
/// rebuild the network's shape, the checkpoint fills in its arrays.
pub fn load_network(dir: &Path) -> Result<LoadedNetwork, HostError> {
    let (mut spec, mut weights, task) = match read_flags::<SmnistFlags>(dir) {
        Ok(flags) => {
            let mut rng = ChaCha8Rng::seed_from_u64(flags.seed as u64);
            let spec = super::smnist::build_spec(&flags, &mut rng);
            let weights = super::smnist::init_weights(&flags, &mut rng)?;
            let task = NetworkTask::Smnist(flags.encoding(), flags.data_dir.clone());
            (spec, weights, task)
        }
        Err(_) => {
            let flags: StoreRecallFlags = read_flags(dir)?;
            flags.validate()?;
            let mut rng = ChaCha8Rng::seed_from_u64(flags.seed as u64);
            let spec = super::store_recall::build_spec(&flags, &mut rng);
            let weights = super::store_recall::init_weights(&flags, &mut rng)?;
            (spec, weights, NetworkTask::StoreRecall(flags.task()))
        }
    };
    let (ckpt, _progress) = load_run::<serde_json::Value>(dir)?;
    restore_network(&ckpt, &mut spec, &mut weights).map_err(|m| {
        super::checkpoint::checkpoint_error(&dir.join(super::checkpoint::CHECKPOINT_FILE), m)
    })?;
    Ok(LoadedNetwork {
        spec,
        params: weights.params,
        task,
    })
}

/// The sMNIST tutorial's network at iteration 0 (its defaults, DEEP R initialisation with
/// Dale signs at 12 % connectivity for w_in, w_rec and w_out, b_out = 0), from `seed`.
pub fn random_smnist_network(seed: u64, data_dir: &Path) -> Result<LoadedNetwork, HostError> {
    let flags = SmnistFlags::defaults(data_dir);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let spec = super::smnist::build_spec(&flags, &mut rng);
    let weights: Weights<f32> = super::smnist::init_weights(&flags, &mut rng)?;
    Ok(LoadedNetwork {
        spec,
        params: weights.params,
        task: NetworkTask::Smnist(flags.encoding(), data_dir.to_path_buf()),
    })
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

/// The compact sequence file of a batch of spike inputs.
pub fn sequences_of(input: &InputBatch, n_windows: usize) -> Result<Vec<u8>, HostError> {
    let mut seqs = Vec::with_capacity(input.n_batch());
    for b in 0..input.n_batch() {
        let mut steps = Vec::with_capacity(input.n_steps());
        for t in 0..input.n_steps() {
            let mut channels = Vec::new();
            for (c, v) in input.events(b, t) {
                if v != 1.0 {
                    return Err(HostError::Network(format!(
                        "sequence files hold spikes only; element {b} step {t} channel {c} has {v}"
                    )));
                }
                channels.push(u8::try_from(c).map_err(|_| {
                    HostError::Network("sequence files hold at most 255 channels".into())
                })?);
            }
            steps.push(channels);
        }
        seqs.push(steps);
    }
    encode_sequences(input.n_in(), input.n_steps(), n_windows, &seqs).map_err(core_err)
}

fn core_err(e: lsnn_core::CoreError) -> HostError {
    HostError::Network(format!("model: {e}"))
}

/// What the core computes on one batch: spikes and the per-window mean readout.
pub struct CoreRun {
    /// Spikes `[B, T, N]` as 0/1.
    pub spikes: Array3<u8>,
    /// Mean readout per window `[B, n_windows, O]`.
    pub window_logits: Array3<f32>,
}

/// Runs every element of `input` through the model with `lsnn-core` (event-driven cell and
/// readout, from zero state), averaging the readout over `n_windows` equal windows. Models
/// with integer `w_in` and `w_rec` run on the integer cell (i32 ring), as on a device.
pub fn run_model(
    model_bytes: &[u8],
    input: &InputBatch,
    n_windows: usize,
) -> Result<CoreRun, HostError> {
    let model = Model::parse(model_bytes).map_err(core_err)?;
    if model.n_in() != input.n_in() {
        return Err(HostError::Network(format!(
            "the model has {} inputs, the data {}",
            model.n_in(),
            input.n_in()
        )));
    }
    let steps = input.n_steps();
    if n_windows == 0 || !steps.is_multiple_of(n_windows) {
        return Err(HostError::Network(format!(
            "{steps} steps cannot be split into {n_windows} equal windows"
        )));
    }
    let (n, n_out) = (model.n_rec(), model.n_out());
    let mut spikes = Array3::zeros((input.n_batch(), steps, n));
    let mut window_logits = Array3::zeros((input.n_batch(), n_windows, n_out));
    let elements = (0..input.n_batch()).map(|b| (0..steps).map(move |t| input.events(b, t)));
    with_core(&model, steps / n_windows, elements, |b, obs| match obs {
        Observation::Stepped { t, z, .. } => {
            for (j, &zj) in z.iter().enumerate() {
                spikes[[b, t, j]] = u8::from(zj != 0.0);
            }
        }
        Observation::Window { index, means } => {
            for (o, &m) in means.iter().enumerate() {
                window_logits[[b, index, o]] = m;
            }
        }
        _ => {}
    })?;
    Ok(CoreRun {
        spikes,
        window_logits,
    })
}

/// Runs a sequence file through the model and returns one result line per sequence, in the
/// firmware's format ([`write_result_line`]), and the total number of spikes.
pub fn run_sequences(model_bytes: &[u8], seq_bytes: &[u8]) -> Result<Vec<String>, HostError> {
    let model = Model::parse(model_bytes).map_err(core_err)?;
    let seqs = Sequences::parse(seq_bytes).map_err(|e| HostError::Network(format!("{e}")))?;
    if seqs.n_in() != model.n_in() {
        return Err(HostError::Network(format!(
            "the model has {} inputs, the sequences {}",
            model.n_in(),
            seqs.n_in()
        )));
    }
    let mut classes = vec![Vec::new(); seqs.len()];
    let elements = (0..seqs.len()).map(|s| seqs.steps(s).map(spike_events));
    let spikes = with_core(&model, seqs.window_len(), elements, |s, obs| {
        if let Observation::Window { means, .. } = obs {
            classes[s].push(window_class(means));
        }
    })?;
    let mut lines = Vec::with_capacity(seqs.len());
    for (s, (c, k)) in classes.into_iter().zip(spikes).enumerate() {
        let mut line = String::new();
        write_result_line(&mut line, s, k, c).map_err(|e| HostError::Network(e.to_string()))?;
        lines.push(line);
    }
    Ok(lines)
}

/// Runs elements (each an iterator of steps' events) through the model's cell (integer cell
/// for integer models) with [`run_sequence`], from the zero state each; returns the spikes of
/// each element.
fn with_core<E, S, I>(
    model: &Model<'_>,
    window_len: usize,
    elements: E,
    mut observe: impl FnMut(usize, Observation<'_>),
) -> Result<Vec<u64>, HostError>
where
    E: IntoIterator<Item = S>,
    S: IntoIterator<Item = I>,
    I: IntoIterator<Item = (usize, f32)>,
{
    let (n, d) = (model.n_rec(), model.config().n_delay);
    let mut neurons = vec![Neuron::default(); n];
    model.neurons_into(&mut neurons).map_err(core_err)?;
    let readout = model.readout().map_err(core_err)?;
    if model.is_integer() {
        let cell = model.integer_cell(&neurons).map_err(core_err)?;
        let state = CellState::with_i32_ring(vec![0.0; 3 * n], vec![0; n], vec![0i32; d * n], n, d)
            .map_err(core_err)?;
        run_elements(&cell, &readout, state, window_len, elements, &mut observe)
    } else {
        let cell = model.cell(&neurons).map_err(core_err)?;
        let state = cell
            .state_in(vec![0.0; (3 + d) * n], vec![0; n])
            .map_err(core_err)?;
        run_elements(&cell, &readout, state, window_len, elements, &mut observe)
    }
}

fn run_elements<In, Rec, A, R, E, S, I>(
    cell: &Cell<'_, f32, In, Rec, A>,
    readout: &lsnn_core::Readout<'_, f32, LeWeights<'_>>,
    mut state: CellState<f32, Vec<f32>, Vec<u16>, R>,
    window_len: usize,
    elements: E,
    observe: &mut impl FnMut(usize, Observation<'_>),
) -> Result<Vec<u64>, HostError>
where
    In: Synapses<A>,
    Rec: Synapses<A>,
    A: Accumulator<f32>,
    R: RingStore<f32, Acc = A>,
    E: IntoIterator<Item = S>,
    S: IntoIterator<Item = I>,
    I: IntoIterator<Item = (usize, f32)>,
{
    let n_out = readout.n_out();
    let (mut filtered, mut out) = (vec![0.0f32; n_out], vec![0.0f32; n_out]);
    let mut windows = WindowMeans::new(vec![0.0f32; n_out], window_len).map_err(core_err)?;
    let mut spikes = Vec::new();
    for (b, steps) in elements.into_iter().enumerate() {
        state.reset();
        let k = run_sequence(
            cell,
            readout,
            &mut state,
            &mut filtered,
            &mut out,
            &mut windows,
            steps,
            |obs| observe(b, obs),
        )
        .map_err(core_err)?;
        spikes.push(k);
    }
    Ok(spikes)
}

/// Predicted class per element and window.
pub fn predictions(window_logits: &Array3<f32>) -> Vec<Vec<usize>> {
    window_logits
        .outer_iter()
        .map(|w| {
            w.outer_iter()
                .map(|row| argmax(row.as_slice().unwrap_or(&row.to_vec())).unwrap_or(0))
                .collect()
        })
        .collect()
}
