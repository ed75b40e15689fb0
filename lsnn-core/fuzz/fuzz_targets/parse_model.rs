//! `Model::parse` on arbitrary bytes must return Ok or a typed error, never panic; a model it
//! accepts must build a cell and a readout that run without panicking, and so must the integer
//! cell of a model with i16/i8 weights whenever `integer_cell` accepts it. Each cell also steps
//! a copy of the state with `step_inference`, which must give the same spikes.
//!
//! Each input is tried twice: as given (exercising magic, version, length and checksum), and
//! with its declared length and CRC-32 rewritten to match, so that mutations reach the
//! validation behind the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lsnn_core::model::{checksum, HEADER_LEN};
use lsnn_core::{CellState, Model, Neuron, NoNoise};

fuzz_target!(|data: &[u8]| {
    try_model(data);
    if data.len() >= HEADER_LEN + 4 {
        let mut sealed = data.to_vec();
        let n = sealed.len();
        sealed[12..16].copy_from_slice(&(n as u32).to_le_bytes());
        let crc = checksum(&sealed[..n - 4]);
        sealed[n - 4..].copy_from_slice(&crc.to_le_bytes());
        try_model(&sealed);
    }
});

fn try_model(bytes: &[u8]) {
    let Ok(model) = Model::parse(bytes) else {
        return;
    };
    let n = model.n_rec();
    let mut neurons = vec![Neuron::default(); n];
    model.neurons_into(&mut neurons).expect("validated neurons");
    let cell = model.cell(&neurons).expect("validated model builds a cell");
    let d = model.config().n_delay;
    let floats = CellState::<f32, Vec<f32>, Vec<u16>>::float_len(n, d);
    let mut state = cell
        .state_in(vec![0.0f32; floats], vec![0u16; n])
        .expect("state sized for the cell");
    let readout = model.readout().expect("validated readout");
    let mut filtered = vec![0.0f32; model.n_out()];
    let mut out = vec![0.0f32; model.n_out()];
    let x = vec![1.0f32; model.n_in()];
    let events: Vec<(usize, f32)> = (0..model.n_in()).map(|i| (i, 1.0)).collect();
    let mut lean = state.clone();
    for _ in 0..4 {
        cell.step(&mut state, &x, &mut NoNoise).expect("step");
        cell.step_inference(&mut lean, events.iter().copied(), &mut NoNoise)
            .expect("inference step");
        assert_eq!(state.z(), lean.z(), "step_inference spikes as step_events");
        readout
            .step(state.z(), &mut filtered, &mut out)
            .expect("readout step");
    }
    if model.is_integer() {
        let Ok(cell) = model.integer_cell(&neurons) else {
            return;
        };
        let mut state =
            CellState::with_i32_ring(vec![0.0f32; 3 * n], vec![0u16; n], vec![0i32; d * n], n, d)
                .expect("state sized for the integer cell");
        let mut lean = state.clone();
        for _ in 0..4 {
            cell.step(&mut state, &x, &mut NoNoise)
                .expect("integer step");
            cell.step_inference(&mut lean, events.iter().copied(), &mut NoNoise)
                .expect("integer inference step");
            assert_eq!(state.z(), lean.z(), "step_inference spikes as step_events");
            readout
                .step(state.z(), &mut filtered, &mut out)
                .expect("readout step");
        }
    }
}
