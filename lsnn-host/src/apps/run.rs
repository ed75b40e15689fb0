//! What every training application shares: the results folder, seeds, thread pools, progress
//! display and firing-rate statistics.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use serde::Serialize;

use crate::error::HostError;
use crate::input::InputBatch;
use crate::train::optim::Optimizer;
use crate::train::update::{Rewiring, Weights};
use crate::train::{
    run_pass_in, HostState, LossTerm, Params, PassOptions, PassResult, RateRegulariser, Spec,
    Trace, Workspace,
};

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

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), HostError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| HostError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}

/// Writes bytes to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    let io = |source| HostError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// A progress bar for `n` iterations starting at `start` (hidden when `quiet`).
pub fn progress_bar(n: usize, start: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar =
        ProgressBar::with_draw_target(Some(n as u64), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} it  {per_sec}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(start as u64);
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
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

/// Test-only faults, to prove the NaN guard, and quiet runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hooks {
    /// Poison the gradient of w_rec with NaN at this iteration.
    pub nan_gradient_at: Option<usize>,
    /// No progress bar and no prints.
    pub quiet: bool,
}

/// Prints above the progress bar (or plainly when there is no terminal), unless quiet.
pub struct Printer {
    /// The bar.
    pub bar: ProgressBar,
    quiet: bool,
}

impl Printer {
    /// A bar for `n` iterations starting at `start`.
    pub fn new(n: usize, start: usize, quiet: bool) -> Printer {
        Printer {
            bar: progress_bar(n, start, quiet),
            quiet,
        }
    }

    /// Prints one block of text.
    pub fn say(&self, text: String) {
        if self.quiet {
        } else if self.bar.is_hidden() {
            println!("{text}");
        } else {
            self.bar.println(text);
        }
    }
}

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
    /// The loss terms of each element.
    pub terms: &'a [Vec<LossTerm<f32>>],
    /// The firing-rate regulariser.
    pub reg: &'a RateRegulariser<f32>,
    /// Learning rate.
    pub lr: f64,
    /// DEEP R's settings, for runs with rewired matrices.
    pub rewiring: Option<Rewiring>,
    /// Number of this iteration (0 for the first), for errors and hooks.
    pub iteration: usize,
    /// Test-only faults.
    pub hooks: &'a Hooks,
    /// This batch as prepared for the device while the previous step ran (None: prepared
    /// when the step starts).
    pub staged: Option<&'a super::gpu::Staged>,
}

impl TrainStep<'_> {
    /// The error of a non-finite loss or gradient in this iteration.
    pub fn non_finite(&self, what: String) -> HostError {
        training_error(self.iteration, HostError::NonFinite { what })
    }
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
    let mut result = run_pass_in(
        workspace,
        step.spec,
        &weights.params,
        step.input,
        states,
        step.terms,
        Some(step.reg),
        PassOptions {
            gradients: true,
            ..PassOptions::default()
        },
    )?;
    if !result.loss.is_finite() {
        return Err(step.non_finite("the training loss".into()));
    }
    let mut grads = result.grads.take().expect("gradients were asked for");
    if step.hooks.nan_gradient_at == Some(step.iteration) {
        grads.w_rec[[0, 1]] = f32::NAN;
    }
    weights
        .apply(&grads, optimizer, step.lr, step.rewiring, rng)
        .map_err(|e| training_error(step.iteration, e))?;
    Ok(result)
}

/// What the figures show of one element: spikes, thresholds and the readout's softmax.
pub struct ElementTraces {
    /// Spikes `[T, N]`.
    pub z: Array2<f32>,
    /// Thresholds `[T, N]`.
    pub thr: Array2<f32>,
    /// Softmax of the readout at every step `[T, O]`.
    pub out_softmax: Array2<f32>,
}

impl ElementTraces {
    /// Recomputes the readout of a trace with the core's `exp_convolve`.
    pub fn new(
        spec: &Spec<f32>,
        params: &Params<f32>,
        trace: &Trace<f32>,
    ) -> Result<Self, HostError> {
        let z = trace.z_dense();
        let (steps, n) = z.dim();
        let neurons = spec.neurons()?;
        let thr = Array2::from_shape_fn((steps, n), |(t, j)| {
            neurons[j].threshold(trace.b(t + 1)[j], spec.config.v0)
        });
        let decay = (-spec.config.dt / spec.tau_out).exp();
        let mut psp = vec![0.0f32; steps * n];
        lsnn_core::exp_convolve(z.as_slice().expect("standard"), n, decay, &mut psp)
            .map_err(|e| HostError::Network(e.to_string()))?;
        let psp = Array2::from_shape_vec((steps, n), psp).expect("sized");
        let mut out = psp.dot(&params.w_out);
        if let Some(b) = &params.b_out {
            out += b;
        }
        for mut row in out.rows_mut() {
            let max = row.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            row.mapv_inplace(|x| (x - max).exp());
            let sum = row.sum();
            row.mapv_inplace(|x| x / sum);
        }
        Ok(ElementTraces {
            z,
            thr,
            out_softmax: out,
        })
    }
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

/// Flag range checks shared by the trainers; each error names the flag.
pub mod flag_checks {
    use crate::error::HostError;

    fn error(flag: &str, message: String) -> HostError {
        HostError::Flag {
            flag: flag.to_string(),
            message,
        }
    }

    /// The error of a bad flag: which one and why.
    pub fn bad<T>(flag: &str, message: String) -> Result<T, HostError> {
        Err(error(flag, message))
    }

    /// Every count must be >= 1.
    pub fn at_least_one(flags: &[(&str, usize)]) -> Result<(), HostError> {
        match flags.iter().find(|(_, v)| *v == 0) {
            Some((flag, _)) => bad(flag, "must be >= 1".into()),
            None => Ok(()),
        }
    }

    /// Every value must be finite and > 0.
    pub fn positive(flags: &[(&str, f64)]) -> Result<(), HostError> {
        match flags.iter().find(|(_, x)| !(x.is_finite() && *x > 0.0)) {
            Some((flag, x)) => bad(flag, format!("{x} must be a finite number > 0")),
            None => Ok(()),
        }
    }

    /// Every value must be finite and >= 0.
    pub fn non_negative(flags: &[(&str, f64)]) -> Result<(), HostError> {
        match flags.iter().find(|(_, x)| !(x.is_finite() && *x >= 0.0)) {
            Some((flag, x)) => bad(flag, format!("{x} must be a finite number >= 0")),
            None => Ok(()),
        }
    }
}
