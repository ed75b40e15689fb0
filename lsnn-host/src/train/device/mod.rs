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

use std::time::Instant;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use super::step::Staged;
use super::step::{train_step, train_step_with, TrainStep};
use crate::error::HostError;
use crate::input::InputBatch;
use crate::loss::Target;
use crate::network::{Params, Weights};
use crate::train::optim::Optimizer;
use crate::train::{zero_states, HostState, PassResult, Workspace};

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

/// The initial states of a training step's batch, and what becomes of its final states.
pub enum States<'a> {
    /// Every element starts from the zero state and the final states are not needed (sMNIST):
    /// the GPU neither uploads nor downloads them.
    Zero,
    /// Start from these states and write the final states back (store-recall carries them).
    Carried(&'a mut [HostState<f32>]),
}

/// Test-only faults a device injects into its steps, to prove the guards that stop a run
/// (never set by training runs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Make an entry of the gradient of `w_rec` NaN at this iteration.
    pub nan_gradient_at: Option<usize>,
}

/// Handed to a step's `overlap` work: prepares the next batch for the device while the
/// current step runs.
pub trait Stager {
    /// Packs a batch's input events and loss terms in the device's layout and, on a GPU,
    /// queues the events' copy behind the running step, so that its step starts with only
    /// the loss terms to upload. Nothing on the CPU.
    fn stage(&mut self, input: &InputBatch, target: &Target) -> Result<Staged, HostError>;
}

/// The stager of devices that prepare nothing ahead.
struct NoStaging;

impl Stager for NoStaging {
    fn stage(&mut self, _: &InputBatch, _: &Target) -> Result<Staged, HostError> {
        Ok(Staged::default())
    }
}

/// Work run while a step computes (drawing the next batch, say), with the run's generator as
/// the step left it and the device's [`Stager`].
pub type Overlap<'o> = &'o mut dyn FnMut(&mut ChaCha8Rng, &mut dyn Stager) -> Result<(), HostError>;

/// What [`Engine::step`] did.
pub struct Stepped {
    /// The step's result; an error when it failed (the device applied nothing then).
    pub result: Result<PassResult<f32>, HostError>,
    /// What the overlap work returned; None when the step failed before it could run.
    pub overlap: Option<Result<(), HostError>>,
    /// Seconds of the step itself, without the overlap work.
    pub seconds: f64,
}

/// A device running the training steps of one loop: the CPU ([`CpuEngine`]) or, with the
/// `cuda` feature, a GPU that keeps the network between steps.
pub trait Engine: Send {
    /// One training iteration as [`train_step`] (the host's `optimizer.step` counts it), then
    /// `overlap`: on the GPU it runs after DEEP R's key was drawn from `rng`, while the device
    /// computes; on the CPU after the step. Either way the run's generator sees the same draws
    /// in the same order. On the GPU the host's weights and optimiser moments are left as they
    /// were: [`Engine::sync_to_host`] brings them up to date.
    fn step(
        &mut self,
        step: &TrainStep<'_>,
        weights: &mut Weights<f32>,
        optimizer: &mut Optimizer,
        rng: &mut ChaCha8Rng,
        states: States<'_>,
        overlap: Overlap<'_>,
    ) -> Stepped;

    /// Writes the device's parameters, DEEP R magnitudes and Adam moments into the host's
    /// structures, if the device is ahead of them (nothing on the CPU). An error if the host's
    /// weights were changed since the device took over: both would hold work.
    fn sync_to_host(
        &mut self,
        weights: &mut Weights<f32>,
        optimizer: &mut Optimizer,
    ) -> Result<(), HostError>;
}

/// The engine of `device` (see [`check_device`]), injecting `faults` (tests only; else
/// `Faults::default()`).
pub fn engine(device: Device, faults: Faults) -> Result<Box<dyn Engine>, HostError> {
    check_device(device)?;
    match device {
        Device::Cpu => Ok(Box::new(CpuEngine::new(faults))),
        Device::Cuda => cuda_engine(faults),
    }
}

#[cfg(feature = "cuda")]
fn cuda_engine(faults: Faults) -> Result<Box<dyn Engine>, HostError> {
    Ok(Box::new(cuda::CudaEngine::new(faults)))
}

#[cfg(not(feature = "cuda"))]
fn cuda_engine(_: Faults) -> Result<Box<dyn Engine>, HostError> {
    Err(no_cuda_build())
}

impl dyn Engine + '_ {
    /// [`Engine::step`] with overlap work that returns a value (`None` when the step failed
    /// before it could run).
    #[allow(clippy::type_complexity)]
    pub fn step_with<X>(
        &mut self,
        step: &TrainStep<'_>,
        weights: &mut Weights<f32>,
        optimizer: &mut Optimizer,
        rng: &mut ChaCha8Rng,
        states: States<'_>,
        overlap: impl FnOnce(&mut ChaCha8Rng, &mut dyn Stager) -> Result<X, HostError>,
    ) -> (Stepped, Option<Result<X, HostError>>) {
        let mut overlap = Some(overlap);
        let mut value = None;
        let mut run = |rng: &mut ChaCha8Rng, stager: &mut dyn Stager| {
            if let Some(work) = overlap.take() {
                value = Some(work(rng, stager));
            }
            Ok(())
        };
        let stepped = self.step(step, weights, optimizer, rng, states, &mut run);
        (stepped, value)
    }

    /// [`Engine::sync_to_host`] after a training loop: the loop's error, if any, comes first
    /// (after syncing, so that the host holds the device's latest state).
    pub fn finish_loop<T>(
        &mut self,
        looped: Result<T, HostError>,
        weights: &mut Weights<f32>,
        optimizer: &mut Optimizer,
    ) -> Result<T, HostError> {
        let synced = self.sync_to_host(weights, optimizer);
        let value = looped?;
        synced.map(|()| value)
    }
}

/// The host trainer as an engine: the trace and gradient buffers kept from step to step.
#[derive(Default)]
pub struct CpuEngine {
    workspace: Workspace<f32>,
    faults: Faults,
}

impl CpuEngine {
    /// An engine injecting `faults`.
    pub fn new(faults: Faults) -> Self {
        CpuEngine {
            workspace: Workspace::default(),
            faults,
        }
    }
}

impl Engine for CpuEngine {
    fn step(
        &mut self,
        step: &TrainStep<'_>,
        weights: &mut Weights<f32>,
        optimizer: &mut Optimizer,
        rng: &mut ChaCha8Rng,
        states: States<'_>,
        overlap: Overlap<'_>,
    ) -> Stepped {
        let t0 = Instant::now();
        let faults = self.faults;
        let tamper = |grads: &mut Params<f32>| {
            if faults.nan_gradient_at == Some(step.iteration) {
                grads.w_rec[[0, 1]] = f32::NAN;
            }
        };
        let workspace = &mut self.workspace;
        let result = match states {
            States::Carried(s) => {
                train_step_with(workspace, step, weights, optimizer, rng, s, tamper)
            }
            States::Zero => {
                let mut s = zero_states(step.spec, step.input.n_batch());
                train_step_with(workspace, step, weights, optimizer, rng, &mut s, tamper)
            }
        };
        let seconds = t0.elapsed().as_secs_f64();
        let overlap = result.is_ok().then(|| overlap(rng, &mut NoStaging));
        Stepped {
            result,
            overlap,
            seconds,
        }
    }

    fn sync_to_host(&mut self, _: &mut Weights<f32>, _: &mut Optimizer) -> Result<(), HostError> {
        Ok(())
    }
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

#[cfg(feature = "cuda")]
pub mod cuda;
