//! `--device cpu|cuda`: where training iterations run.
//!
//! A training loop owns an [`Engine`] for its device ([`engine`]). On the GPU the network's
//! weights, DEEP R magnitudes and Adam moments stay on the device between steps: a step uploads
//! the batch, launches the iteration, runs the caller's `overlap` work (the next batch, say)
//! while the device computes, and reads the loss. The host's `Weights` and `Optimizer` are
//! brought up to date only by [`Engine::sync_to_host`], which loops call before anything reads
//! them (validation, plots, checkpoints, export, the end of the run, an error). The GPU engine
//! needs the `cuda` feature (which pulls `lsnn-gpu`); without it, choosing `cuda` is a flag
//! error (exit 2).
//!
//! The GPU step computes what the CPU step computes, bit for bit where the device's arithmetic
//! allows it: the same event order and gradient sums (elements in order, the recurrent adjoint
//! in warp order on both), the same softmax `exp` (f64), and DEEP R's random numbers from
//! Philox keyed by the same one draw of the run's generator (`lsnn_core::philox`).

mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod engine;
#[doc(hidden)]
pub mod faults;

use serde::{Deserialize, Serialize};

pub use cpu::CpuEngine;
pub use engine::{Engine, Overlap, Staged, Stager, States, Stepped};

use crate::error::HostError;
use crate::network::Weights;
use crate::train::optim::Optimizer;
use crate::train::step::{train_step, TrainStep};
use crate::train::{HostState, PassResult};

/// Where training iterations run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// The host trainer (rayon over the batch).
    #[default]
    Cpu,
    /// The CUDA kernels of lsnn-gpu (builds with the `cuda` feature).
    Cuda,
}

/// Whether this build and machine can run on `device`: a flag error naming how to get `cuda`
/// in a build without it, or that the machine has no CUDA device (checked with the flags,
/// before a run folder is made or any work done).
pub fn check_device(device: Device) -> Result<(), HostError> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda if !cfg!(feature = "cuda") => Err(no_cuda_build()),
        Device::Cuda if cuda_device_present() => Ok(()),
        Device::Cuda => Err(HostError::Flag {
            flag: "--device".into(),
            message: "`cuda`: no CUDA driver or device on this machine (use `cpu`)".into(),
        }),
    }
}

#[cfg(feature = "cuda")]
fn cuda_device_present() -> bool {
    lsnn_gpu::device_available()
}

#[cfg(not(feature = "cuda"))]
fn cuda_device_present() -> bool {
    false
}

/// The error for `--device cuda` in a build without the `cuda` feature.
pub fn no_cuda_build() -> HostError {
    HostError::Flag {
        flag: "--device".into(),
        message: "`cuda` is not available in this build: build lsnn-host with `--features cuda` \
                  (needs the CUDA toolkit, see lsnn-gpu/NOTES.md)"
            .into(),
    }
}

/// The engine of `device` (see [`check_device`]).
pub fn engine(device: Device) -> Result<Box<dyn Engine>, HostError> {
    check_device(device)?;
    match device {
        Device::Cpu => Ok(Box::new(CpuEngine::new())),
        Device::Cuda => cuda_engine(),
    }
}

#[cfg(feature = "cuda")]
fn cuda_engine() -> Result<Box<dyn Engine>, HostError> {
    Ok(Box::new(cuda::CudaEngine::new()))
}

#[cfg(not(feature = "cuda"))]
fn cuda_engine() -> Result<Box<dyn Engine>, HostError> {
    Err(no_cuda_build())
}

/// One training iteration on `device`, leaving the host's `Weights`, `Optimizer` and states
/// exactly as [`train_step`] does (on the GPU: an engine kept per thread, synced to the host
/// after every step). For tests and one-off steps; training loops keep an [`Engine`].
pub fn train_step_on<R: rand::Rng>(
    device: Device,
    step: &TrainStep<'_>,
    weights: &mut Weights<f32>,
    optimizer: &mut Optimizer,
    rng: &mut R,
    states: &mut [HostState<f32>],
) -> Result<PassResult<f32>, HostError> {
    match device {
        Device::Cpu => train_step(step, weights, optimizer, rng, states),
        #[cfg(feature = "cuda")]
        Device::Cuda => cuda::eager_step(step, weights, optimizer, rng, states),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => Err(no_cuda_build()),
    }
}
