//! Test support, not for training: engines that inject a fault, to prove the guards that
//! stop a run. The production engines ([`super::engine`]) know nothing of them.

use rand_chacha::ChaCha8Rng;

use super::cpu::{cpu_step, StepParts};
use super::{check_device, Device, Engine, Overlap, States, Stepped};
use crate::error::HostError;
use crate::network::Weights;
use crate::train::optim::Optimizer;
use crate::train::step::TrainStep;
use crate::train::Workspace;

/// The engine of `device` making the entry `[0, 1]` of the gradient of `w_rec` NaN at
/// iteration `at` (on the GPU: the same entry, flat index 1 of `w_rec`).
pub fn nan_gradient_engine(device: Device, at: usize) -> Result<Box<dyn Engine>, HostError> {
    check_device(device)?;
    match device {
        Device::Cpu => Ok(Box::new(NanGradientCpu {
            workspace: Workspace::default(),
            at,
        })),
        Device::Cuda => nan_gradient_cuda(at),
    }
}

#[cfg(feature = "cuda")]
fn nan_gradient_cuda(at: usize) -> Result<Box<dyn Engine>, HostError> {
    Ok(Box::new(super::cuda::NanGradientCuda::new(at)))
}

#[cfg(not(feature = "cuda"))]
fn nan_gradient_cuda(_: usize) -> Result<Box<dyn Engine>, HostError> {
    Err(super::no_cuda_build())
}

struct NanGradientCpu {
    workspace: Workspace<f32>,
    at: usize,
}

impl Engine for NanGradientCpu {
    fn step(
        &mut self,
        step: &TrainStep<'_>,
        weights: &mut Weights<f32>,
        optimizer: &mut Optimizer,
        rng: &mut ChaCha8Rng,
        states: States<'_>,
        overlap: Overlap<'_>,
    ) -> Stepped {
        let poison = step.iteration == self.at;
        let parts = StepParts {
            step,
            weights,
            optimizer,
            rng,
            states,
        };
        cpu_step(&mut self.workspace, parts, overlap, |grads| {
            if poison {
                grads.w_rec[[0, 1]] = f32::NAN;
            }
        })
    }

    fn sync_to_host(&mut self, _: &mut Weights<f32>, _: &mut Optimizer) -> Result<(), HostError> {
        Ok(())
    }
}
