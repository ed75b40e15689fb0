//! What every device implements: the [`Engine`] of a training loop, its [`Stager`] for the
//! next batch, and the states a step starts from.

use rand_chacha::ChaCha8Rng;

use crate::error::HostError;
use crate::input::InputBatch;
use crate::loss::Target;
use crate::network::Weights;
use crate::train::optim::Optimizer;
pub use crate::train::step::Staged;
use crate::train::step::TrainStep;
use crate::train::{HostState, PassResult};

/// The initial states of a training step's batch, and what becomes of its final states.
pub enum States<'a> {
    /// Every element starts from the zero state and the final states are not needed (sMNIST):
    /// the GPU neither uploads nor downloads them.
    Zero,
    /// Start from these states and write the final states back (store-recall carries them).
    Carried(&'a mut [HostState<f32>]),
}

/// Handed to a step's `overlap` work: prepares the next batch for the device while the
/// current step runs.
pub trait Stager {
    /// Packs a batch's input events and loss terms in the device's layout and, on a GPU,
    /// queues the events' copy behind the running step, so that its step starts with only
    /// the loss terms to upload. Nothing on the CPU.
    fn stage(&mut self, input: &InputBatch, target: &Target) -> Result<Staged, HostError>;
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

/// A device running the training steps of one loop: the CPU ([`CpuEngine`](super::CpuEngine)) or, with the
/// `cuda` feature, a GPU that keeps the network between steps.
pub trait Engine: Send {
    /// One training iteration as [`train_step`](crate::train::step::train_step) (the host's `optimizer.step` counts it), then
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
