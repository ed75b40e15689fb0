//! One training iteration on the host: forward, backward, the non-finite guard, the optimiser
//! and DEEP R.

use crate::error::HostError;
use crate::input::InputBatch;
use crate::loss::{RateRegulariser, Target};
use crate::network::{Params, Spec, Weights};
use crate::train::optim::Optimizer;
use crate::train::update::Rewiring;
use crate::train::{run_pass_in, HostState, PassOptions, PassResult, Workspace};
use std::any::Any;

/// The error that stops training at `iteration`.
pub fn training_error(iteration: usize, e: HostError) -> HostError {
    HostError::Training {
        iteration,
        message: e.to_string(),
    }
}

/// What one training iteration reads: the network, a batch with its loss terms and
/// regulariser, and the settings of the update.
#[derive(Clone, Copy)]
pub struct TrainStep<'a> {
    /// The fixed part of the network.
    pub spec: &'a Spec<f32>,
    /// The batch's input events.
    pub input: &'a InputBatch,
    /// What the batch's readout is compared with.
    pub target: &'a Target,
    /// The firing-rate regulariser, if any.
    pub reg: Option<&'a RateRegulariser<f32>>,
    /// Learning rate.
    pub lr: f64,
    /// DEEP R's settings, for runs with rewired matrices.
    pub rewiring: Option<Rewiring>,
    /// Number of this iteration (0 for the first), for errors.
    pub iteration: usize,
    /// This batch as prepared for the device while the previous step ran (None: prepared
    /// when the step starts).
    pub staged: Option<&'a Staged>,
}

/// One training iteration on a batch: forward, backward, non-finite guard, optimiser and DEEP R.
/// Updates the weights, the optimiser, the run's generator (DEEP R's key) and the states.
pub fn train_step<R: rand::Rng>(
    step: &TrainStep<'_>,
    weights: &mut Weights<f32>,
    optimizer: &mut Optimizer,
    rng: &mut R,
    states: &mut [HostState<f32>],
) -> Result<PassResult<f32>, HostError> {
    train_step_in(
        &mut Workspace::default(),
        step,
        weights,
        optimizer,
        rng,
        states,
    )
}

/// [`train_step`] in the buffers of `workspace` (a training loop keeps one).
pub fn train_step_in<R: rand::Rng>(
    workspace: &mut Workspace<f32>,
    step: &TrainStep<'_>,
    weights: &mut Weights<f32>,
    optimizer: &mut Optimizer,
    rng: &mut R,
    states: &mut [HostState<f32>],
) -> Result<PassResult<f32>, HostError> {
    train_step_with(workspace, step, weights, optimizer, rng, states, |_| {})
}

/// [`train_step_in`] with `tamper` applied to the gradients before the update (the devices'
/// test-only faults).
pub(crate) fn train_step_with<R: rand::Rng>(
    workspace: &mut Workspace<f32>,
    step: &TrainStep<'_>,
    weights: &mut Weights<f32>,
    optimizer: &mut Optimizer,
    rng: &mut R,
    states: &mut [HostState<f32>],
    tamper: impl FnOnce(&mut Params<f32>),
) -> Result<PassResult<f32>, HostError> {
    step.target.check(
        step.input.n_batch(),
        step.input.n_steps(),
        weights.params.n_out(),
    )?;
    let mut result = run_pass_in(
        workspace,
        step.spec,
        &weights.params,
        step.input,
        states,
        &step.target.windows(),
        step.reg,
        PassOptions {
            gradients: true,
            objective: step.target.objective(),
            ..PassOptions::default()
        },
    )?;
    if !result.loss.is_finite() {
        return Err(step.non_finite("the training loss".into()));
    }
    let mut grads = result.grads.take().expect("gradients were asked for");
    tamper(&mut grads);
    weights
        .apply(&grads, optimizer, step.lr, step.rewiring, rng)
        .map_err(|e| training_error(step.iteration, e))?;
    Ok(result)
}

impl TrainStep<'_> {
    /// The error of a non-finite loss or gradient in this iteration.
    pub fn non_finite(&self, what: String) -> HostError {
        training_error(self.iteration, HostError::NonFinite { what })
    }
}

/// A batch prepared for the device ahead of its step ([`crate::train::device::Stager`]); put
/// it in the step's [`TrainStep::staged`]. What it holds is the device's own (nothing on the
/// CPU).
#[derive(Default)]
pub struct Staged(Option<Box<dyn Any + Send>>);

impl Staged {
    /// What a device made of a batch.
    pub fn of<T: Any + Send>(prepared: T) -> Staged {
        Staged(Some(Box::new(prepared)))
    }

    /// What the device made of the batch, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_ref()?.downcast_ref()
    }
}
