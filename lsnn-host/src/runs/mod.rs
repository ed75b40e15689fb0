//! What a training run keeps around its steps: the run folder, seeds and thread pools, the
//! loop state a checkpoint restores ([`Progress`]), validation lists, statistics, the progress
//! display ([`printer`]), checkpoints ([`checkpoint`]), figures ([`plot`], [`traces`]) and
//! flags from files ([`config`]).

pub mod checkpoint;
pub mod config;
pub mod plot;
pub mod printer;
mod task_run;
pub mod traces;

pub use task_run::{RunResults, RunSettings, TaskRun};

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::HostError;
use crate::loss::RateRegulariser;
use crate::network::{Network, Weights};
use crate::train::device::Device;
use crate::train::optim::{Optimizer, OptimizerKind};
use crate::train::update::Rewiring;
use crate::train::{PassResult, Schedule, Trainer, TrainerOptions, TrainerState};

/// Resolves the original's `seed = -1` (random) convention to a concrete, recorded seed.
pub fn resolve_seed(seed: i64) -> u64 {
    if seed >= 0 {
        seed as u64
    } else {
        rand::random::<u32>() as u64 % 1_000_000
    }
}

/// Makes the global rayon pool use `threads` threads (0: one per core). Only the first call in
/// a process takes effect; later calls keep that pool.
pub fn use_threads(threads: usize) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
}

/// Creates `results_dir/task/<timestamp>_seed<seed>[_comment]/` and returns it.
pub fn new_run_dir(
    results_dir: &Path,
    task: &str,
    seed: u64,
    comment: &str,
) -> Result<PathBuf, HostError> {
    let stamp = chrono::Local::now().format("%Y_%m_%d_%H_%M_%S");
    let mut name = format!("{stamp}_seed{seed}");
    if !comment.is_empty() {
        let clean: String = comment
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        name.push('_');
        name.push_str(&clean);
    }
    let mut dir = results_dir.join(task).join(&name);
    let mut k = 1;
    while dir.exists() {
        dir = results_dir.join(task).join(format!("{name}_{k}"));
        k += 1;
    }
    std::fs::create_dir_all(dir.join("plots")).map_err(|source| HostError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// min, max, mean, std and how many neurons sit at the min and the max, like the original's
/// `get_stats`.
pub fn stats(values: &[f64]) -> (f64, f64, f64, f64, usize, usize) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN, f64::NAN, 0, 0);
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    let at_min = values.iter().filter(|&&v| v == min).count();
    let at_max = values.iter().filter(|&&v| v == max).count();
    (min, max, mean, var.sqrt(), at_min, at_max)
}

/// Mean of the last `k` entries.
pub fn mean_last(values: &[f64], k: usize) -> f64 {
    let tail = &values[values.len().saturating_sub(k)..];
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// How a tutorial run talks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hooks {
    /// No progress bar and no prints.
    pub quiet: bool,
}

/// Mean firing rate in Hz of per-neuron rates in spikes per ms.
pub fn mean_hz(rates: &[f32]) -> f64 {
    rates.iter().map(|&r| f64::from(r) * 1000.0).sum::<f64>() / rates.len().max(1) as f64
}

/// Wall-clock seconds of training, across resumes.
pub struct Clock {
    started: std::time::Instant,
    before: f64,
}

impl Clock {
    /// Starts now, after `before` seconds of earlier invocations.
    pub fn start(before: f64) -> Clock {
        Clock {
            started: std::time::Instant::now(),
            before,
        }
    }

    /// Seconds of training in all invocations so far.
    pub fn elapsed(&self) -> f64 {
        self.before + self.this_run()
    }

    /// Seconds of this invocation.
    pub fn this_run(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// What every validation records (the original's result lists).
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ValidationLists {
    /// Iteration of each validation.
    pub iteration_list: Vec<usize>,
    /// Classification (recall) loss.
    pub loss_list: Vec<f64>,
    /// Regularisation loss.
    pub loss_reg_list: Vec<f64>,
    /// Total loss.
    pub loss_with_reg_list: Vec<f64>,
    /// Mean firing rate (Hz).
    pub rate_list: Vec<f64>,
    /// Seconds of the training step before each validation.
    pub training_time: Vec<f64>,
    /// Seconds since the start of training.
    pub time_to_ref: Vec<f64>,
}

impl ValidationLists {
    /// Records the validation pass of iteration `k`.
    pub fn record(&mut self, k: usize, pass: &PassResult<f32>, train_s: f64, elapsed_s: f64) {
        self.iteration_list.push(k);
        self.loss_list.push(f64::from(pass.loss_ce));
        self.loss_reg_list.push(f64::from(pass.loss_reg));
        self.loss_with_reg_list.push(f64::from(pass.loss));
        self.rate_list.push(mean_hz(&pass.rates));
        self.training_time.push(train_s);
        self.time_to_ref.push(elapsed_s);
    }
}

/// The state of a training loop that a checkpoint restores, around the task's own part `T`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Progress<T> {
    /// Next iteration to run.
    pub iteration: usize,
    /// Current learning rate.
    pub learning_rate: f64,
    /// Optimiser state.
    pub optimizer: Optimizer,
    /// The random generator (data, noise, rewiring).
    pub rng: rand_chacha::ChaCha8Rng,
    /// The validation lists so far.
    pub lists: ValidationLists,
    /// Seconds of training before this checkpoint (time_to_ref continues across resumes).
    pub elapsed_s: f64,
    /// Seconds of the last training step.
    pub last_train_s: f64,
    /// What the task adds.
    pub task: T,
}

impl<T> Progress<T> {
    /// The state before the first iteration.
    pub fn start(learning_rate: f64, rng: rand_chacha::ChaCha8Rng, task: T) -> Self {
        Progress {
            iteration: 0,
            learning_rate,
            optimizer: Optimizer::adam(),
            rng,
            lists: ValidationLists::default(),
            elapsed_s: 0.0,
            last_train_s: 0.0,
            task,
        }
    }

    /// A [`Trainer`] of `network` on `device` at this point of the run, as the tutorials
    /// train: Adam at the run's learning rate, the regulariser `reg`, DEEP R's `rewiring`; its
    /// generator is the run's (the tutorials draw data and DEEP R's numbers from one
    /// generator, as the original).
    pub fn trainer(
        &self,
        network: Network,
        device: Device,
        rewiring: Option<Rewiring>,
        reg: RateRegulariser<f32>,
    ) -> Result<Trainer, HostError> {
        let options = TrainerOptions {
            device,
            optimizer: OptimizerKind::Adam,
            schedule: Schedule::Constant(self.learning_rate),
            rewiring,
            regulariser: Some(reg),
            seed: 0,
        };
        let state = TrainerState {
            iteration: self.iteration,
            optimizer: self.optimizer.clone(),
            rng: self.rng.clone(),
        };
        Trainer::resume(network, options, state)
    }

    /// Brings the optimiser, the generator and (into `weights`) the network back from
    /// `trainer`.
    pub fn take_from(
        &mut self,
        trainer: &mut Trainer,
        weights: &mut Weights<f32>,
    ) -> Result<(), HostError> {
        let state = trainer.state()?;
        weights.clone_from(trainer.weights()?);
        self.optimizer = state.optimizer;
        self.rng = state.rng;
        Ok(())
    }

    /// Multiplies the learning rate by `factor` and says so, in the tutorials' words.
    pub fn decay_learning_rate(&mut self, factor: f64, say: impl FnOnce(String)) {
        let old = self.learning_rate;
        self.learning_rate *= factor;
        say(format!(
            "Decaying learning rate: {old:.2} -> {:.2}",
            self.learning_rate
        ));
    }
}
