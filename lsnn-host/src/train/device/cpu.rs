//! The CPU device: the host trainer, its buffers kept from step to step.

use std::time::Instant;

use rand_chacha::ChaCha8Rng;

use super::engine::{Engine, Faults, Overlap, Staged, Stager, States, Stepped};
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
