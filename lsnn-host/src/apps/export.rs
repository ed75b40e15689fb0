//! Exporting a trained network in the core's binary model format, and running such a model
//! through `lsnn-core` (the same code a microcontroller runs).

use std::path::Path;

use lsnn_core::model::{Model, ModelParts};
use lsnn_core::{argmax, Neuron};
use ndarray::Array3;

use super::run::write_atomic;
use crate::error::HostError;
use crate::input::InputBatch;
use crate::train::{Params, Spec};

/// Writes `spec` + `params` as a `.lsnn` model file (f32 weights, V0 applied, no autapses).
pub fn export_model(path: &Path, spec: &Spec<f32>, params: &Params<f32>) -> Result<(), HostError> {
    let bytes = encode_model(spec, params)?;
    write_atomic(path, &bytes)
}

/// The model file's bytes.
pub fn encode_model(spec: &Spec<f32>, params: &Params<f32>) -> Result<Vec<u8>, HostError> {
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
    };
    parts
        .to_vec()
        .map_err(|e| HostError::Network(format!("encoding the model: {e}")))
}

/// What the core computes on one batch: spikes and the per-window mean readout.
pub struct CoreRun {
    /// Spikes `[B, T, N]` as 0/1.
    pub spikes: Array3<u8>,
    /// Mean readout per window `[B, n_windows, O]`.
    pub window_logits: Array3<f32>,
}

/// Runs every element of `input` through the model with `lsnn-core` (event-driven cell and
/// readout, from zero state), averaging the readout over `n_windows` equal windows.
pub fn run_model(
    model_bytes: &[u8],
    input: &InputBatch,
    n_windows: usize,
) -> Result<CoreRun, HostError> {
    let bad = |e: lsnn_core::CoreError| HostError::Network(format!("model: {e}"));
    let model = Model::parse(model_bytes).map_err(bad)?;
    if model.n_in() != input.n_in() {
        return Err(HostError::Network(format!(
            "the model has {} inputs, the data {}",
            model.n_in(),
            input.n_in()
        )));
    }
    let steps = input.n_steps();
    if n_windows == 0 || steps % n_windows != 0 {
        return Err(HostError::Network(format!(
            "{steps} steps cannot be split into {n_windows} equal windows"
        )));
    }
    let (n, n_out) = (model.n_rec(), model.n_out());
    let mut neurons = vec![Neuron::default(); n];
    model.neurons_into(&mut neurons).map_err(bad)?;
    let cell = model.cell(&neurons).map_err(bad)?;
    let readout = model.readout().map_err(bad)?;
    let mut spikes = Array3::zeros((input.n_batch(), steps, n));
    let mut window_logits = Array3::zeros((input.n_batch(), n_windows, n_out));
    let window = steps / n_windows;
    for b in 0..input.n_batch() {
        let mut state = cell
            .state_in(vec![0.0; (3 + cell.config().n_delay) * n], vec![0; n])
            .map_err(bad)?;
        let (mut filtered, mut out) = (vec![0.0f32; n_out], vec![0.0f32; n_out]);
        for t in 0..steps {
            let events = input.events(b, t);
            cell.step_events(&mut state, events, &mut lsnn_core::NoNoise)
                .map_err(bad)?;
            readout
                .step(state.z(), &mut filtered, &mut out)
                .map_err(bad)?;
            for (j, &z) in state.z().iter().enumerate() {
                spikes[[b, t, j]] = u8::from(z != 0.0);
            }
            for (o, &y) in out.iter().enumerate() {
                window_logits[[b, t / window, o]] += y / window as f32;
            }
        }
    }
    Ok(CoreRun {
        spikes,
        window_logits,
    })
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
