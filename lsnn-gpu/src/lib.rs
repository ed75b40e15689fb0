//! # lsnn-gpu
//!
//! The CUDA training path of lsnn-rs: the whole training iteration (event-driven forward with a
//! compact trace, readout and loss, BPTT, gradient reduction, Adam and DEEP R) as CUDA kernels,
//! launched with `cust`.
//!
//! - `kernels/*.cu` are plain CUDA C; `build.rs` compiles them to PTX with nvcc and [`ptx`]
//!   embeds it. The neuron equations in `kernels/lsnn.cuh` mirror `lsnn-core/src/neuron.rs`.
//! - [`layout`] is everything that needs no GPU: sizes, the flat parameter layout, launch
//!   geometry, packing (tested on the CPU).
//! - [`args`] holds the kernels' argument structs (checked against the CUDA header), and
//!   [`launch`] fills them from buffer addresses (shared with the CPU emulator of the tests).
//! - [`step`] holds what an update step is told (optimiser, learning rate, DEEP R's key).
//! - [`trainer`] launches the kernels: [`GpuTrainer`] for a network, [`DeviceParamSet`] for the
//!   update kernels alone.
//! - `emu/` (feature `emu`, tests only) runs the kernels' own sources on the CPU, compared with
//!   lsnn-core and lsnn-host.
//!
//! The crate depends on lsnn-core only and takes plain slices; lsnn-host converts its trainer's
//! types (feature `cuda` of lsnn-host). It is outside the workspace's default members: building
//! it needs nvcc, and `CUDA_LIBRARY_PATH` for cust (see NOTES.md).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod error;
pub mod launch;
pub mod layout;
pub mod ptx;
pub mod step;
pub mod trainer;

#[cfg(all(test, feature = "emu"))]
#[allow(unsafe_code)]
mod emu;

pub use error::GpuError;
pub use layout::{BatchState, Dims, PackedInput, PackedTerms, Param, ParamLayout, Term, Trace};
pub use step::{OptimizerKind, StepConfig};
pub use trainer::{
    device_available, probe, BatchInput, DeviceParamSet, Gpu, GpuTrainer, NetworkSpec, Outcome,
    ParamValues, PassOutput, Rewired, SetPart, Snapshot, StepOutput,
};
