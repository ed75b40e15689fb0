//! [`Trainer`]: one call per training iteration for any network and loss, on the device
//! chosen at run time, and [`Trainer::fit`], a loop over a [`Task`]'s batches with a hook.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::device::{engine, Device, Engine, Staged, Stager, States};
use super::optim::{Optimizer, OptimizerKind};
use super::step::TrainStep;
use super::update::Rewiring;
use super::{run_pass_in, zero_states, HostState, PassOptions, PassResult, Workspace};
use crate::error::HostError;
use crate::input::InputBatch;
use crate::loss::{RateRegulariser, Target};
use crate::network::{Network, Params, Spec, Weights};
use crate::tasks::Task;

/// The learning rate of each iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The same rate throughout.
    Constant(f64),
    /// `lr * factor^(iteration / every)`: the tutorials' decay every `every` iterations.
    Decay {
        /// The first rate.
        lr: f64,
        /// Iterations between decays.
        every: usize,
        /// The factor of each decay.
        factor: f64,
    },
}

impl Schedule {
    /// The rate of `iteration` (0 for the first).
    pub fn at(&self, iteration: usize) -> f64 {
        match *self {
            Schedule::Constant(lr) => lr,
            Schedule::Decay { lr, every, factor } => {
                lr * factor.powi((iteration / every.max(1)) as i32)
            }
        }
    }
}

/// How a [`Trainer`] trains.
#[derive(Clone, Debug)]
pub struct TrainerOptions {
    /// Where the iterations run.
    pub device: Device,
    /// Adam or plain gradient descent.
    pub optimizer: OptimizerKind,
    /// The learning rate per iteration.
    pub schedule: Schedule,
    /// DEEP R's L1 and temperature, for networks with sparse matrices (None: `l1` and
    /// `temperature` 0, the connections still rewired where a magnitude turns negative).
    pub rewiring: Option<Rewiring>,
    /// The firing-rate regulariser added to every loss, if any.
    pub regulariser: Option<RateRegulariser<f32>>,
    /// Seed of DEEP R's random numbers.
    pub seed: u64,
}

impl Default for TrainerOptions {
    /// CPU, Adam, learning rate 1e-3, no regulariser, seed 0.
    fn default() -> Self {
        TrainerOptions {
            device: Device::Cpu,
            optimizer: OptimizerKind::Adam,
            schedule: Schedule::Constant(1e-3),
            rewiring: None,
            regulariser: None,
            seed: 0,
        }
    }
}

/// A network in training: weights, optimiser state and the device's engine. Each
/// [`Trainer::step`] is one iteration (forward, loss, backward, NaN guard, optimiser, DEEP R);
/// results do not depend on the number of threads.
pub struct Trainer {
    spec: Spec<f32>,
    weights: Weights<f32>,
    optimizer: Optimizer,
    rng: ChaCha8Rng,
    engine: Box<dyn Engine>,
    options: TrainerOptions,
    iteration: usize,
    workspace: Workspace<f32>,
    last_step_seconds: f64,
}

/// The outputs and loss of `spec` with `params` on `input` against `target` (forward only, every
/// element from the zero state): [`Trainer::evaluate`] for any weights (exported ones, say).
pub fn evaluate(
    spec: &Spec<f32>,
    params: &Params<f32>,
    input: &InputBatch,
    target: &Target,
) -> Result<PassResult<f32>, HostError> {
    let pass = Pass {
        input,
        target,
        reg: None,
        keep_traces: false,
    };
    evaluate_in(&mut Workspace::default(), spec, params, pass)
}

/// What a forward pass without update reads besides the network.
struct Pass<'a> {
    input: &'a InputBatch,
    target: &'a Target,
    reg: Option<&'a RateRegulariser<f32>>,
    keep_traces: bool,
}

fn evaluate_in(
    workspace: &mut Workspace<f32>,
    spec: &Spec<f32>,
    params: &Params<f32>,
    pass: Pass<'_>,
) -> Result<PassResult<f32>, HostError> {
    let Pass {
        input,
        target,
        reg,
        keep_traces,
    } = pass;
    spec.check(params)?;
    target.check(input.n_batch(), input.n_steps(), params.n_out())?;
    let mut states = zero_states(spec, input.n_batch());
    let windows = target.windows();
    let opts = PassOptions {
        objective: target.objective(),
        keep_traces,
        ..PassOptions::default()
    };
    run_pass_in(
        workspace,
        spec,
        params,
        input,
        &mut states,
        &windows,
        reg,
        opts,
    )
}

/// One step's batch, initial states and staged form.
struct StepRun<'s, 'a> {
    input: &'a InputBatch,
    target: &'a Target,
    states: States<'s>,
    staged: Option<&'a Staged>,
}

/// A trainer's state besides its network: what a checkpoint saves for an exact resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Iterations run.
    pub iteration: usize,
    /// The optimiser's moments and step count.
    pub optimizer: Optimizer,
    /// DEEP R's generator.
    pub rng: ChaCha8Rng,
}

/// What a [`Trainer::fit`] hook tells the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on with the next iteration.
    Continue,
    /// Stop after this iteration.
    Stop,
}

impl Trainer {
    /// A trainer of `network`; an error if the network's arrays do not fit its spec or the
    /// device is not available.
    pub fn new(network: Network, options: TrainerOptions) -> Result<Trainer, HostError> {
        network.spec.check(&network.weights.params)?;
        if let Some(reg) = &options.regulariser {
            if reg.coeff.len() != network.spec.n_rec() {
                return Err(HostError::Network(format!(
                    "regulariser: {} coefficients for {} neurons",
                    reg.coeff.len(),
                    network.spec.n_rec()
                )));
            }
        }
        let optimizer = match options.optimizer {
            OptimizerKind::Adam => Optimizer::adam(),
            OptimizerKind::Sgd => Optimizer::sgd(),
        };
        Ok(Trainer {
            spec: network.spec,
            weights: network.weights,
            optimizer,
            rng: ChaCha8Rng::seed_from_u64(options.seed),
            engine: engine(options.device)?,
            options,
            iteration: 0,
            workspace: Workspace::default(),
            last_step_seconds: 0.0,
        })
    }

    /// This trainer with its steps run by `engine` from now on (a device of one's own, say),
    /// the network and optimiser brought back from the old engine first.
    pub fn with_engine(mut self, engine: Box<dyn Engine>) -> Result<Trainer, HostError> {
        self.sync()?;
        self.engine = engine;
        Ok(self)
    }

    /// One training iteration on `input` against `target`, every element from the zero
    /// state. An error (nothing applied) if the shapes do not fit, the loss or a gradient is
    /// not finite, or a user loss answers wrongly.
    pub fn step(
        &mut self,
        input: &InputBatch,
        target: &Target,
    ) -> Result<PassResult<f32>, HostError> {
        self.step_overlapping(input, target, None, |_| Ok(()))
            .map(|(result, _)| result)
    }

    /// [`Trainer::step`] from the states `states` (one per element), which become the
    /// final states: a task whose batches continue one another (store-recall).
    pub fn step_carrying(
        &mut self,
        input: &InputBatch,
        target: &Target,
        states: &mut [HostState<f32>],
    ) -> Result<PassResult<f32>, HostError> {
        let run = StepRun {
            input,
            target,
            states: States::Carried(states),
            staged: None,
        };
        self.step_run(run, |_, _| Ok(())).0
    }

    /// [`Trainer::step`] on a batch `staged` for the device ahead (see [`Stager`]), running
    /// `overlap` while the device computes, after DEEP R drew from the trainer's generator:
    /// `overlap` gets that generator (a task drawing its data from DEEP R's generator, as
    /// the tutorials do) and the device's stager for the next batch. Returns the step's
    /// result and the overlap's value, None when the step failed before the overlap ran; a
    /// failed step leaves the generator as the overlap left it.
    #[allow(clippy::type_complexity)]
    pub fn step_overlapped<X>(
        &mut self,
        input: &InputBatch,
        target: &Target,
        staged: Option<&Staged>,
        overlap: impl FnOnce(&mut ChaCha8Rng, &mut dyn Stager) -> Result<X, HostError>,
    ) -> (
        Result<PassResult<f32>, HostError>,
        Option<Result<X, HostError>>,
    ) {
        let run = StepRun {
            input,
            target,
            states: States::Zero,
            staged,
        };
        self.step_run(run, overlap)
    }

    /// [`Trainer::step_overlapped`] with the overlap's error folded into the result.
    fn step_overlapping<X>(
        &mut self,
        input: &InputBatch,
        target: &Target,
        staged: Option<&Staged>,
        overlap: impl FnOnce(&mut dyn Stager) -> Result<X, HostError>,
    ) -> Result<(PassResult<f32>, X), HostError> {
        let (result, value) = self.step_overlapped(input, target, staged, |_, s| overlap(s));
        let result = result?;
        let value = value.ok_or_else(|| {
            HostError::Network("the device did not run the step's overlap work".into())
        })??;
        Ok((result, value))
    }

    #[allow(clippy::type_complexity)]
    fn step_run<X>(
        &mut self,
        run: StepRun<'_, '_>,
        overlap: impl FnOnce(&mut ChaCha8Rng, &mut dyn Stager) -> Result<X, HostError>,
    ) -> (
        Result<PassResult<f32>, HostError>,
        Option<Result<X, HostError>>,
    ) {
        let step = TrainStep {
            spec: &self.spec,
            input: run.input,
            target: run.target,
            reg: self.options.regulariser.as_ref(),
            lr: self.options.schedule.at(self.iteration),
            rewiring: self.options.rewiring,
            iteration: self.iteration,
            staged: run.staged,
        };
        let (stepped, value) = self.engine.step_with(
            &step,
            &mut self.weights,
            &mut self.optimizer,
            &mut self.rng,
            run.states,
            overlap,
        );
        self.last_step_seconds = stepped.seconds;
        if stepped.result.is_ok() {
            self.iteration += 1;
        }
        (stepped.result, value)
    }

    /// The generator DEEP R draws from (saved by [`Trainer::state`]): a task may draw its
    /// data from it too, as the original tutorials do.
    pub fn rng_mut(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Seconds of the last step's computation (without its overlap work).
    pub fn last_step_seconds(&self) -> f64 {
        self.last_step_seconds
    }

    /// The weights as trained so far (brought back from the device first).
    pub fn weights(&mut self) -> Result<&Weights<f32>, HostError> {
        self.sync()?;
        Ok(&self.weights)
    }

    /// The network's outputs and loss on `input` against `target` (no update; the same
    /// pass as a step's forward).
    pub fn evaluate(
        &mut self,
        input: &InputBatch,
        target: &Target,
    ) -> Result<PassResult<f32>, HostError> {
        self.pass(input, target, false)
    }

    fn pass(
        &mut self,
        input: &InputBatch,
        target: &Target,
        keep_traces: bool,
    ) -> Result<PassResult<f32>, HostError> {
        self.sync()?;
        let reg = self.options.regulariser.as_ref();
        let (spec, params) = (&self.spec, &self.weights.params);
        let pass = Pass {
            input,
            target,
            reg,
            keep_traces,
        };
        evaluate_in(&mut self.workspace, spec, params, pass)
    }

    /// Trains on `task`'s batches, drawn from `data`, until [`Trainer::iteration`] reaches
    /// `n_iter`, calling `hook` after each step with the trainer, the step's iteration and its
    /// result (validation, checkpoints, logging, a learning-rate change through
    /// [`Trainer::options_mut`]); the hook may stop the loop. Each next batch is drawn and
    /// staged for the device while the step before it runs (on a GPU, while it computes), so
    /// `data` has given one batch more than was trained on when the hook stops the loop.
    /// Returns the iterations run.
    pub fn fit<T: Task + ?Sized>(
        &mut self,
        task: &mut T,
        n_iter: usize,
        data: &mut ChaCha8Rng,
        mut hook: impl FnMut(&mut Trainer, usize, &PassResult<f32>) -> Result<Control, HostError>,
    ) -> Result<usize, HostError> {
        let first = self.iteration;
        let mut next = match self.iteration < n_iter {
            true => Some((task.batch(data)?, None)),
            false => None,
        };
        while let Some(((input, target), staged)) = next.take() {
            let more = self.iteration + 1 < n_iter;
            let prefetch = |stager: &mut dyn Stager| {
                if !more {
                    return Ok(None);
                }
                let (input, target) = task.batch(data)?;
                let staged = stager.stage(&input, &target)?;
                Ok(Some(((input, target), Some(staged))))
            };
            let (result, prefetched) =
                self.step_overlapping(&input, &target, staged.as_ref(), prefetch)?;
            next = prefetched;
            if hook(self, self.iteration - 1, &result)? == Control::Stop {
                break;
            }
        }
        Ok(self.iteration - first)
    }

    /// What [`Trainer::resume`] needs besides the network to go on exactly where this trainer
    /// is (brought back from the device first).
    pub fn state(&mut self) -> Result<TrainerState, HostError> {
        self.sync()?;
        Ok(TrainerState {
            iteration: self.iteration,
            optimizer: self.optimizer.clone(),
            rng: self.rng.clone(),
        })
    }

    /// A trainer that goes on from `state` with `network` (both saved from a trainer with the
    /// same options): its steps are those the saved trainer would have made.
    pub fn resume(
        network: Network,
        options: TrainerOptions,
        state: TrainerState,
    ) -> Result<Trainer, HostError> {
        let mut trainer = Trainer::new(network, options)?;
        if state.optimizer.kind != trainer.optimizer.kind {
            return Err(HostError::Network(format!(
                "state: saved with the {:?} optimiser, the options ask for {:?}",
                state.optimizer.kind, trainer.optimizer.kind
            )));
        }
        trainer.iteration = state.iteration;
        trainer.optimizer = state.optimizer;
        trainer.rng = state.rng;
        Ok(trainer)
    }

    /// The options, to change the schedule or the regulariser between steps.
    pub fn options_mut(&mut self) -> &mut TrainerOptions {
        &mut self.options
    }

    /// [`Trainer::evaluate`] keeping every element's trace (spikes, voltages, thresholds'
    /// adaptation), for figures.
    pub fn trace(
        &mut self,
        input: &InputBatch,
        target: &Target,
    ) -> Result<PassResult<f32>, HostError> {
        self.pass(input, target, true)
    }

    /// The network as trained so far (brought back from the device first).
    pub fn network(&mut self) -> Result<Network, HostError> {
        self.sync()?;
        Ok(Network {
            spec: self.spec.clone(),
            weights: self.weights.clone(),
        })
    }

    /// The fixed part of the network.
    pub fn spec(&self) -> &Spec<f32> {
        &self.spec
    }

    /// Iterations run so far.
    pub fn iteration(&self) -> usize {
        self.iteration
    }

    fn sync(&mut self) -> Result<(), HostError> {
        self.engine
            .sync_to_host(&mut self.weights, &mut self.optimizer)
    }
}
