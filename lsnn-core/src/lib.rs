//! # lsnn-core
//!
//! Runs a trained LSNN (recurrent LIF/ALIF spiking network) on anything from a workstation to a
//! microcontroller: `no_std`, no allocator needed, bit for bit what the trainer computed.
//!
//! ## How to use it
//!
//! A model is a byte buffer (written by `lsnn-host export`, or by [`ModelParts`]); parse it in
//! place with [`Model::parse`], then step a [`runner`] with each time step's input spikes and
//! read the readout's outputs, per step or as means over windows of steps:
//!
//! ```
//! use lsnn_core::runner::Runner;
//! use lsnn_core::{CellConfig, CsrRef, Model, ModelParts, WeightKind};
//!
//! // A tiny model: 2 inputs, 2 LIF neurons, 2 outputs (here built in place; usually the
//! // bytes come from `lsnn-host export`).
//! let w_in = CsrRef::new(2, &[0, 1, 2], &[0, 1], &[0, 1], &[2.0, 1.5])?;
//! let w_rec = CsrRef::new(2, &[0, 1, 1], &[1], &[0], &[0.5])?;
//! let parts = ModelParts {
//!     config: CellConfig { n_delay: 2, n_refractory: 2, ..CellConfig::new() },
//!     tau: &[20.0, 20.0],
//!     thr: &[0.03, 0.03],
//!     beta: &[0.0, 0.0],
//!     w_in,
//!     w_rec,
//!     w_out: &[1.0, -1.0, -1.0, 1.0], // [N, O] row-major
//!     b_out: None,
//!     tau_out: 20.0,
//!     weights: WeightKind::I8,
//! };
//! let bytes = parts.to_vec()?;
//!
//! let model = Model::parse(&bytes)?;
//! let mut run = Runner::new(&model, 4)?; // readout means over windows of 4 steps
//! let mut last_window = None;
//! for t in 0..8 {
//!     let channels: &[u8] = if t % 2 == 0 { &[0] } else { &[] }; // input 0 spikes
//!     let out = run.step_channels(channels)?;
//!     assert_eq!(out.y.len(), 2); // this step's readout
//!     if let Some(means) = out.window {
//!         last_window = Some(lsnn_core::sequence::window_class(means)); // predicted class
//!     }
//! }
//! assert!(run.spike_count() > 0);
//! assert_eq!(last_window, Some(0)); // neuron 0 spikes most, output 0 is its readout
//! # Ok::<(), lsnn_core::CoreError>(())
//! ```
//!
//! `runner::Runner` (feature `alloc`) sizes its buffers from the model;
//! [`runner::FixedRunner`] keeps them in arrays with capacities given as const generics, for
//! targets without an allocator. For the parts themselves: [`Model`] (the format, read in
//! place), [`Cell`] and [`CellState`] (the network and its state, in storage the caller owns),
//! [`Readout`], and [`sequence`] (the input-sequence format and the per-sequence driver that
//! the firmware and `lsnn-host infer` share).
//!
//! ## What it computes
//!
//! The LSNN neuron model of Bellec et al. (NeurIPS 2018) — recurrent LIF and adaptive-threshold
//! ALIF neurons with synaptic delays, refractoriness and soft reset: the exact dynamics of the
//! original TensorFlow code, sparse delayed connectivity driven by spike events, the tutorials'
//! readout, and a compact model format.
//!
//! The equations live in [`neuron`] only; [`Cell`] delivers spikes and calls them per neuron.
//! Models with i16/i8 weights run on the same cell with an `i32` delay ring
//! ([`Model::integer_cell`], see [`model`]).
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod cell;
mod error;
pub mod lanes;
pub mod model;
pub mod neuron;
pub mod philox;
mod readout;
mod real;
pub mod runner;
pub mod sequence;
mod state;
pub mod synapse;
#[allow(unsafe_code)]
mod unchecked;

pub use cell::{Cell, CurrentNoise, NoNoise};

/// Marks the branch it is called in as rare, so that the compiler lays it out of the common
/// path (a step's loops on a microcontroller: every instruction counts there).
#[cold]
#[inline(always)]
pub(crate) fn rare() {}
pub use error::CoreError;
pub use lanes::{LaneMask, Lanes, Mask, Value};
pub use model::{
    IntegerScales, IntegerSynapses, LeF32Slice, LeWeights, Model, ModelParts, ModelSynapses,
    WeightKind,
};
pub use neuron::{
    allows_shortcuts, neuron_step, neuron_step_backward, neuron_step_backward_at, neuron_step_with,
    pseudo_derivative, CellConfig, Factor, Neuron, NeuronBackward, NeuronGrad, NeuronState,
    NeuronStep, One, StepConsts, Surrogate,
};
pub use readout::{argmax, downsample, exp_convolve, Readout, WeightSource};
pub use real::Real;
pub use state::{
    fixed_state, Accumulator, CellState, FixedCellState, FixedI32CellState, FloatRing, I32Ring,
    Inline, RingStore,
};
#[cfg(feature = "alloc")]
pub use synapse::Csr;
pub use synapse::{CsrRef, DenseRef, Synapses};
