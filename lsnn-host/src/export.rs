//! A trained network in the core's binary model format (f32, or quantised to i16 / i8), the
//! input sequences a device replays, and models run through `lsnn-core` (the same code a
//! microcontroller runs: the reference the firmware is compared against).

use std::path::Path;

use lsnn_core::model::{Model, ModelParts, WeightKind};
use lsnn_core::sequence::{
    encode_sequences, run_sequence, spike_events, window_class, write_result_line, Observation,
    Sequences, WindowMeans,
};
use lsnn_core::{argmax, Accumulator, Cell, CellState, LeWeights, Neuron, RingStore, Synapses};
use ndarray::Array3;

use crate::error::HostError;
use crate::files::write_atomic;
use crate::input::InputBatch;
use crate::network::{Params, Spec};

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

/// The weights a model file holds (quantised where it stores integers), back in the host's
/// dense form: what [`run_model`] runs, for a host pass that computes what the core computes.
/// `spec` is the network the model was exported from (V0 is divided out again).
pub fn exported_params(model_bytes: &[u8], spec: &Spec<f32>) -> Result<Params<f32>, HostError> {
    let model = Model::parse(model_bytes).map_err(core_err)?;
    let (n_in, n, n_out) = (model.n_in(), model.n_rec(), model.n_out());
    if (n_in, n) != (spec.n_in(), spec.n_rec()) {
        return Err(HostError::Network(format!(
            "spec: the model has {n_in} inputs and {n} neurons, the spec {} and {}",
            spec.n_in(),
            spec.n_rec()
        )));
    }
    let v0 = model.config().v0;
    let dense = |synapses: lsnn_core::model::ModelSynapses<'_>, rows: usize| {
        let mut w = ndarray::Array2::zeros((rows, n));
        for pre in 0..rows {
            for k in synapses.row(pre).unwrap_or(0..0) {
                if let Some((post, _, value)) = synapses.synapse(k) {
                    w[[pre, post]] = value / v0;
                }
            }
        }
        w
    };
    let w_out: Vec<f32> = model.w_out().iter().collect();
    Ok(Params {
        w_in: dense(model.w_in(), n_in),
        w_rec: dense(model.w_rec(), n),
        w_out: ndarray::Array2::from_shape_vec((n, n_out), w_out)
            .map_err(|e| HostError::Network(format!("model readout: {e}")))?,
        b_out: model.b_out().map(|b| b.iter().collect()),
    })
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

pub(crate) fn core_err(e: lsnn_core::CoreError) -> HostError {
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
