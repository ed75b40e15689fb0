//! # lsnn-core
//!
//! The LSNN neuron model of Bellec et al. (NeurIPS 2018) — recurrent LIF and adaptive-threshold
//! ALIF neurons with synaptic delays, refractoriness and soft reset — as a `no_std`,
//! allocation-free library: the exact dynamics of the original TensorFlow code, sparse delayed
//! connectivity driven by spike events, the tutorials' readout, and a compact model format.
//!
//! The equations live in [`neuron`] only; [`Cell`] delivers spikes and calls them per neuron.
//! Models with i16/i8 weights run on the same cell with an `i32` delay ring
//! ([`Model::integer_cell`], see [`model`]); [`sequence`] holds the input format and the
//! per-sequence driver that a device and the host share.
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
pub mod sequence;
mod state;
pub mod synapse;
#[allow(unsafe_code)]
mod unchecked;

pub use cell::{Cell, CurrentNoise, NoNoise};
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
    fixed_state, Accumulator, CellState, FixedCellState, FixedI32CellState, I32Ring, Inline,
    RingStore,
};
#[cfg(feature = "alloc")]
pub use synapse::Csr;
pub use synapse::{CsrRef, DenseRef, Synapses};
