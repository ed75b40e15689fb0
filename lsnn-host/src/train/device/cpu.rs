//! The CPU device: the host trainer, its buffers kept from step to step.

use std::time::Instant;

use rand_chacha::ChaCha8Rng;

use super::engine::{Engine, Overlap, Staged, Stager, States, Stepped};
use crate::error::HostError;
use crate::input::InputBatch;
use crate::loss::Target;
use crate::network::{Params, Weights};
use crate::train::optim::Optimizer;
use crate::train::step::{train_step_with, TrainStep};
use crate::train::{zero_states, Workspace};

/// The stager of devices that prepare nothing ahead.
struct NoStaging;

impl Stager for NoStaging {
    fn stage(&mut self, _: &InputBatch, _: &Target) -> Result<Staged, HostError> {
        Ok(Staged::default())
    }
}

/// The host trainer as an engine: the trace and gradient buffers kept from step to step.
#[derive(Default)]
pub struct CpuEngine {
    workspace: Workspace<f32>,
}

impl CpuEngine {
    /// An engine with empty buffers (they grow at the first step).
    pub fn new() -> Self {
        CpuEngine::default()
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
        let parts = StepParts {
            step,
            weights,
            optimizer,
            rng,
            states,
        };
        cpu_step(&mut self.workspace, parts, overlap, |_| {})
    }

    fn sync_to_host(&mut self, _: &mut Weights<f32>, _: &mut Optimizer) -> Result<(), HostError> {
        Ok(())
    }
}

/// What a step changes besides the engine's buffers.
pub(super) struct StepParts<'s, 'a> {
    pub step: &'s TrainStep<'a>,
    pub weights: &'s mut Weights<f32>,
    pub optimizer: &'s mut Optimizer,
    pub rng: &'s mut ChaCha8Rng,
    pub states: States<'s>,
}

/// A CPU step with `tamper` applied to the gradients before the update (nothing, but for
/// the test engines of [`super::faults`]), then the overlap work.
pub(super) fn cpu_step(
    workspace: &mut Workspace<f32>,
    parts: StepParts<'_, '_>,
    overlap: Overlap<'_>,
    tamper: impl FnOnce(&mut Params<f32>),
) -> Stepped {
    let t0 = Instant::now();
    let StepParts {
        step,
        weights,
        optimizer,
        rng,
        states,
    } = parts;
    let result = match states {
        States::Carried(s) => train_step_with(workspace, step, weights, optimizer, rng, s, tamper),
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
