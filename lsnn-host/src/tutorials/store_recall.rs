//! The store-recall tutorial: the original `tutorial_storerecall_with_LSNN.py`, end to end.
//!
//! Faithful to the tutorial: a validation batch before every training step (its error feeds the
//! stop criterion, the mean of the last `print_every` validation errors), the network state
//! carried from batch to batch (separately for training and validation), learning-rate decay
//! every `lr_decay_every` iterations, the final test over 16 batches.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::flags as flag_checks;
use crate::error::HostError;
use crate::export::export_model;
use crate::files::write_json;
use crate::loss::{LossTerm, RateRegulariser, Target};
use crate::network::{
    Delays, Matrix, Network, NetworkBuilder, Params, Population, Sparse, Spec, Weights,
};
use crate::runs::checkpoint::{
    checkpoint_error, load_run, read_flags, restore_network, save_run, CHECKPOINT_FILE,
};
use crate::runs::plot::{plot_learning_curve, plot_store_recall, StoreRecallMonitor};
use crate::runs::printer::Printer;
use crate::runs::traces::ElementTraces;
use crate::runs::{mean_last, new_run_dir, resolve_seed, stats, use_threads, Clock, Hooks};
use crate::tasks::store_recall::{generate, recall_error, StoreRecallBatch, StoreRecallParams};
use crate::train::device::{check_device, engine, Device, Engine};
use crate::train::update::Rewiring;
use crate::train::{run_pass, zero_states, HostState, PassOptions, PassResult, Schedule, Trainer};

/// The tutorial's flags (same names in kebab case, same defaults), plus lsnn-rs's own.
#[derive(clap::Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreRecallFlags {
    /// Network model: ALIF (= LSNN: n_rec LIF + n_con ALIF neurons) or LIF (all beta = 0).
    #[arg(long, default_value = "ALIF")]
    pub model: String,
    /// Comment appended to the run folder's name.
    #[arg(long, default_value = "")]
    pub comment: String,
    /// Batch size of training.
    #[arg(long, default_value_t = 128)]
    pub batch_train: usize,
    /// Batch size of the validation set.
    #[arg(long, default_value_t = 128)]
    pub batch_val: usize,
    /// Batch size of the test set.
    #[arg(long, default_value_t = 128)]
    pub batch_test: usize,
    /// Number of characters (values) in the recall task.
    #[arg(long, default_value_t = 2)]
    pub n_charac: usize,
    /// Number of input units.
    #[arg(long, default_value_t = 100)]
    pub n_in: usize,
    /// Number of recurrent LIF units.
    #[arg(long, default_value_t = 10)]
    pub n_rec: usize,
    /// Number of adaptive (ALIF) "controller" units.
    #[arg(long, default_value_t = 10)]
    pub n_con: usize,
    /// Input firing rate (Hz).
    #[arg(long, default_value_t = 50.0)]
    pub f0: f64,
    /// Target rate of the regulariser (Hz).
    #[arg(long, default_value_t = 10.0)]
    pub reg_rate: f64,
    /// Unused by the tutorial (kept for compatibility).
    #[arg(long, default_value_t = 100.0)]
    pub reg_max_rate: f64,
    /// Number of iterations.
    #[arg(long, default_value_t = 200)]
    pub n_iter: usize,
    /// Number of synaptic delay slots.
    #[arg(long, default_value_t = 10)]
    pub n_delay: usize,
    /// Number of refractory steps.
    #[arg(long, default_value_t = 3)]
    pub n_ref: usize,
    /// Number of character steps per sequence.
    #[arg(long, default_value_t = 12)]
    pub seq_len: usize,
    /// Expected delay in character steps; must be <= seq_len - 2 (as the original checks).
    #[arg(long, default_value_t = 6)]
    pub seq_delay: usize,
    /// Duration of a character (ms).
    #[arg(long, default_value_t = 200)]
    pub tau_char: usize,
    /// Random seed (-1: draw one; the drawn seed is recorded in the run's flags).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub seed: i64,
    /// Decay the learning rate every this many iterations.
    #[arg(long, default_value_t = 100)]
    pub lr_decay_every: usize,
    /// Print, plot, checkpoint and check the stop criterion every this many iterations.
    #[arg(long, default_value_t = 20)]
    pub print_every: usize,
    /// Stop when the mean validation recall error of the last print_every iterations is below.
    #[arg(long, default_value_t = 0.05)]
    pub stop_crit: f64,
    /// Adaptation strength of the ALIF neurons.
    #[arg(long, default_value_t = 1.7)]
    pub beta: f64,
    /// Adaptation time constant (ms).
    #[arg(long, default_value_t = 1200.0)]
    pub tau_a: f64,
    /// Time constant of membranes and of the readout filter (ms).
    #[arg(long, default_value_t = 20.0)]
    pub tau_out: f64,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub learning_rate: f64,
    /// Learning-rate decay factor.
    #[arg(long, default_value_t = 0.3)]
    pub lr_decay: f64,
    /// Firing-rate regularisation coefficient.
    #[arg(long, default_value_t = 1e-2)]
    pub reg: f64,
    /// DEEP R connectivity of w_in and w_rec (negative: no rewiring, the tutorial's default).
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    pub rewiring_connectivity: f64,
    /// DEEP R connectivity of w_out (negative: not rewired).
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    pub readout_rewiring_connectivity: f64,
    /// DEEP R temperature.
    #[arg(long, default_value_t = 0.0)]
    pub rewiring_temperature: f64,
    /// DEEP R l1 shrinkage (used only with rewiring; the tutorial has no such flag, sMNIST's
    /// default is kept).
    #[arg(long, default_value_t = 1e-2)]
    pub l1: f64,
    /// Height of the pseudo-derivative.
    #[arg(long, default_value_t = 0.3)]
    pub dampening_factor: f64,
    /// Unused by the tutorial (kept for compatibility).
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    pub stochastic_factor: f64,
    /// Simulation step (ms).
    #[arg(long, default_value_t = 1.0)]
    pub dt: f64,
    /// Baseline threshold.
    #[arg(long, default_value_t = 0.01)]
    pub thr: f64,
    /// Save results, checkpoint and the exported model.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub save_data: bool,
    /// Draw the figures (PNG).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub do_plot: bool,
    /// Draw the monitor figure at every print (else only at the end).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub monitor_plot: bool,
    /// Accepted for compatibility; figures are written as PNG files.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub interactive_plot: bool,
    /// Accepted for compatibility (TensorFlow device placement log).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub device_placement: bool,
    /// Print the statistics block at every print.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub verbose: bool,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Folder receiving one sub-folder per run.
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
    /// Where training iterations run: cpu, or cuda (a build with the `cuda` feature).
    #[arg(long, value_enum, default_value = "cpu")]
    #[serde(default)]
    pub device: Device,
}

impl StoreRecallFlags {
    /// The flags with every default (as if no argument was given).
    pub fn defaults() -> Self {
        use clap::FromArgMatches;
        let cmd = <Self as clap::Args>::augment_args(clap::Command::new("defaults"));
        Self::from_arg_matches(&cmd.get_matches_from(["defaults"])).expect("defaults parse")
    }

    /// Checks every flag; the message names the flag and how to fix it.
    pub fn validate(&self) -> Result<(), HostError> {
        check_device(self.device)?;
        use flag_checks::bad;
        flag_checks::at_least_one(&[
            ("--batch-train", self.batch_train),
            ("--batch-val", self.batch_val),
            ("--batch-test", self.batch_test),
            ("--n-in", self.n_in),
            ("--n-iter", self.n_iter),
            ("--n-delay", self.n_delay),
            ("--seq-len", self.seq_len),
            ("--tau-char", self.tau_char),
            ("--lr-decay-every", self.lr_decay_every),
            ("--print-every", self.print_every),
        ])?;
        if self.n_rec + self.n_con == 0 {
            return bad(
                "--n-rec/--n-con",
                "the network needs at least one neuron".into(),
            );
        }
        if !matches!(self.model.as_str(), "ALIF" | "LSNN" | "LIF") {
            return bad(
                "--model",
                format!("`{}` is not ALIF, LSNN or LIF", self.model),
            );
        }
        for (flag, p) in [
            ("--rewiring-connectivity", self.rewiring_connectivity),
            (
                "--readout-rewiring-connectivity",
                self.readout_rewiring_connectivity,
            ),
        ] {
            if !(p < 0.0 || (p > 0.0 && p <= 1.0)) {
                return bad(
                    flag,
                    format!("{p} must be in (0, 1], or negative to disable rewiring"),
                );
            }
        }
        flag_checks::positive(&[
            ("--dt", self.dt),
            ("--thr", self.thr),
            ("--tau-a", self.tau_a),
            ("--tau-out", self.tau_out),
            ("--learning-rate", self.learning_rate),
        ])?;
        flag_checks::non_negative(&[
            ("--lr-decay", self.lr_decay),
            ("--reg", self.reg),
            ("--reg-rate", self.reg_rate),
            ("--beta", self.beta),
            ("--dampening-factor", self.dampening_factor),
            ("--l1", self.l1),
            ("--rewiring-temperature", self.rewiring_temperature),
            ("--stop-crit", self.stop_crit),
        ])?;
        self.task().validate().map_err(|e| HostError::Flag {
            flag: "--seq-len/--seq-delay/--n-charac/--n-in/--f0".into(),
            message: e.to_string(),
        })
    }

    /// The task parameters.
    pub fn task(&self) -> StoreRecallParams {
        StoreRecallParams {
            n_charac: self.n_charac,
            n_in: self.n_in,
            f0_hz: self.f0,
            seq_len: self.seq_len,
            seq_delay: self.seq_delay,
            tau_char: self.tau_char,
        }
    }

    fn n_neurons(&self) -> usize {
        self.n_rec + self.n_con
    }

    /// DEEP R's step settings when a matrix is rewired, as the training loop uses them.
    pub fn rewiring(&self) -> Option<Rewiring> {
        (self.rewiring_connectivity > 0.0 || self.readout_rewiring_connectivity > 0.0).then_some(
            Rewiring {
                l1: self.l1,
                temperature: self.rewiring_temperature,
            },
        )
    }
}

/// The tutorial's network: `n_rec` LIF then `n_con` ALIF neurons (all LIF with `--model LIF`),
/// delays drawn from `0..n_delay`, `randn / sqrt(fan_in)` for w_in and w_rec, Glorot-uniform
/// w_out, no bias, DEEP R matrices (unsigned) where asked, drawn after the dense ones.
pub fn network_builder(flags: &StoreRecallFlags) -> NetworkBuilder {
    let beta_alif = if flags.model == "LIF" {
        0.0
    } else {
        flags.beta
    };
    let (tau, thr) = (flags.tau_out as f32, flags.thr as f32);
    let mut builder = NetworkBuilder::new(flags.n_in, flags.n_charac)
        .population(Population::lif(flags.n_rec, tau, thr))
        .population(Population::alif(flags.n_con, tau, thr, beta_alif as f32))
        .dt(flags.dt as f32)
        .tau_adaptation(flags.tau_a as f32)
        .v0(1.0)
        .refractory(flags.n_ref)
        .dampening(flags.dampening_factor as f32)
        .delays(Delays::Range(0, flags.n_delay.saturating_sub(1) as u8))
        .tau_out(tau)
        .dense_first(true);
    let unsigned = |connectivity| Sparse::Unsigned { connectivity };
    if flags.rewiring_connectivity > 0.0 {
        let p = flags.rewiring_connectivity;
        builder = builder
            .sparse(Matrix::In, unsigned(p))
            .sparse(Matrix::Rec, unsigned(p));
    }
    if flags.readout_rewiring_connectivity > 0.0 {
        builder = builder.sparse(Matrix::Out, unsigned(flags.readout_rewiring_connectivity));
    }
    builder
}

/// The fixed part of the tutorial's network ([`network_builder`]), its delays from `rng`.
pub fn build_spec<R: Rng>(flags: &StoreRecallFlags, rng: &mut R) -> Spec<f32> {
    network_builder(flags).draw_spec(rng)
}

/// The tutorial's initial weights ([`network_builder`]), drawn after [`build_spec`].
pub fn init_weights<R: Rng>(
    flags: &StoreRecallFlags,
    rng: &mut R,
) -> Result<Weights<f32>, HostError> {
    network_builder(flags).draw_weights(rng)
}

/// One cross-entropy term per character: recall characters weighted by 1 / (number of recalls
/// in the batch), the others with weight 0 (their logits are still computed, for the error).
pub fn loss_terms(batch: &StoreRecallBatch) -> Vec<Vec<LossTerm<f32>>> {
    let tau = batch.params.tau_char;
    let weight = 1.0 / batch.n_recalls().max(1) as f32;
    batch
        .recall_mask
        .outer_iter()
        .zip(batch.target_nums.outer_iter())
        .map(|(mask, targets)| {
            mask.iter()
                .zip(targets.iter())
                .enumerate()
                .map(|(c, (&recall, &target))| LossTerm {
                    start: c * tau,
                    end: (c + 1) * tau,
                    target: if recall { usize::from(target) } else { 0 },
                    weight: if recall { weight } else { 0.0 },
                })
                .collect()
        })
        .collect()
}

/// Per-character logits `[B, seq_len, n_charac]` of a pass over a batch.
pub fn char_logits(pass: &PassResult<f32>, n_out: usize) -> Array3<f32> {
    let (b, c) = (pass.logits.len(), pass.logits.first().map_or(0, Vec::len));
    Array3::from_shape_fn((b, c, n_out), |(i, k, o)| pass.logits[i][k][o])
}

/// What store-recall adds to the loop state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreRecallState {
    /// Validation recall error at every iteration (the stop criterion's input).
    pub error_list: Vec<f64>,
    /// Iteration at which the stop criterion was met.
    pub solved_at: Option<usize>,
}

/// Everything a checkpoint holds besides the arrays.
pub type Progress = crate::runs::Progress<StoreRecallState>;

/// A run in memory.
pub struct Session {
    /// The flags (seed resolved).
    pub flags: StoreRecallFlags,
    /// The fixed part of the network.
    pub spec: Spec<f32>,
    /// The trained arrays.
    pub weights: Weights<f32>,
    /// Training state carried between batches.
    pub train_state: Vec<HostState<f32>>,
    /// Validation state carried between batches.
    pub val_state: Vec<HostState<f32>>,
    /// Test state (the last validation's final state, as the original).
    pub test_state: Vec<HostState<f32>>,
    /// Loop state.
    pub progress: Progress,
    /// The run folder (when saving).
    pub run_dir: Option<PathBuf>,
}

/// How a run ended.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The run folder (None when `--save-data false`).
    pub run_dir: Option<PathBuf>,
    /// Iterations run in total (across resumes).
    pub iterations: usize,
    /// Iteration at which the stop criterion was met.
    pub solved_at: Option<usize>,
    /// Mean validation error over the last print_every iterations.
    pub final_error: f64,
    /// Mean test error over 16 batches.
    pub test_error: f64,
    /// Wall-clock seconds of this invocation.
    pub seconds: f64,
}

impl Session {
    /// A fresh run from flags.
    pub fn new(mut flags: StoreRecallFlags) -> Result<Session, HostError> {
        flags.validate()?;
        let seed = resolve_seed(flags.seed);
        flags.seed = seed as i64;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let spec = build_spec(&flags, &mut rng);
        let weights = init_weights(&flags, &mut rng)?;
        let run_dir = if flags.save_data {
            let dir = new_run_dir(&flags.results_dir, "store-recall", seed, &flags.comment)?;
            write_json(&dir.join("flags.json"), &flags)?;
            Some(dir)
        } else {
            None
        };
        Ok(Session {
            train_state: zero_states(&spec, flags.batch_train),
            val_state: zero_states(&spec, flags.batch_val),
            test_state: zero_states(&spec, flags.batch_test),
            progress: Progress::start(flags.learning_rate, rng, StoreRecallState::default()),
            spec,
            weights,
            flags,
            run_dir,
        })
    }

    /// Continues the run saved in `dir` (its flags.json and checkpoint.safetensors); `n_iter`
    /// may raise the number of iterations.
    pub fn resume(dir: &Path, n_iter: Option<usize>) -> Result<Session, HostError> {
        let mut flags: StoreRecallFlags = read_flags(dir)?;
        if let Some(n) = n_iter {
            flags.n_iter = n;
        }
        flags.validate()?;
        let (ckpt, progress) = load_run::<Progress>(dir)?;
        let bad = |m: String| checkpoint_error(&dir.join(CHECKPOINT_FILE), m);
        let mut rng = ChaCha8Rng::seed_from_u64(flags.seed as u64);
        let mut spec = build_spec(&flags, &mut rng);
        let mut weights = init_weights(&flags, &mut rng)?;
        restore_network(&ckpt, &mut spec, &mut weights).map_err(bad)?;
        let mut session = Session {
            train_state: zero_states(&spec, flags.batch_train),
            val_state: zero_states(&spec, flags.batch_val),
            test_state: zero_states(&spec, flags.batch_test),
            progress,
            spec,
            weights,
            flags,
            run_dir: Some(dir.to_path_buf()),
        };
        ckpt.states_into("train_state", &mut session.train_state)
            .map_err(bad)?;
        ckpt.states_into("val_state", &mut session.val_state)
            .map_err(bad)?;
        ckpt.states_into("test_state", &mut session.test_state)
            .map_err(bad)?;
        Ok(session)
    }

    /// Writes the checkpoint (weights, optimiser, generator, states) into the run folder, if
    /// saving; after a training error it holds the last trained state.
    pub fn save_checkpoint(&self) -> Result<(), HostError> {
        let Some(dir) = &self.run_dir else {
            return Ok(());
        };
        save_run(dir, &self.spec, &self.weights, &self.progress, |ckpt| {
            ckpt.put_states("train_state", &self.train_state);
            ckpt.put_states("val_state", &self.val_state);
            ckpt.put_states("test_state", &self.test_state);
        })
    }

    fn regulariser(&self) -> RateRegulariser<f32> {
        RateRegulariser::uniform(self.flags.n_neurons(), self.flags.reg, self.flags.reg_rate)
    }

    fn pass(
        &self,
        batch: &StoreRecallBatch,
        states: &mut [HostState<f32>],
        gradients: bool,
        keep_traces: bool,
    ) -> Result<PassResult<f32>, HostError> {
        let terms = loss_terms(batch);
        let reg = self.regulariser();
        run_pass(
            &self.spec,
            &self.weights.params,
            &batch.input,
            states,
            &terms,
            Some(&reg),
            PassOptions {
                gradients,
                keep_traces,
                ..PassOptions::default()
            },
        )
    }

    /// Runs the training loop to `n_iter` or the stop criterion, then the final test.
    pub fn run(&mut self, hooks: Hooks) -> Result<Outcome, HostError> {
        let engine = engine(self.flags.device)?;
        self.run_on(engine, hooks)
    }

    /// [`Session::run`] with the steps run by `engine` (a device of one's own, or a test
    /// engine injecting a fault) instead of the flags' device's.
    pub fn run_on(&mut self, engine: Box<dyn Engine>, hooks: Hooks) -> Result<Outcome, HostError> {
        use_threads(self.flags.threads);
        let clock = Clock::start(self.progress.elapsed_s);
        let printer = Printer::new(self.flags.n_iter, self.progress.iteration, hooks.quiet);
        let mut trainer = self.trainer()?.with_engine(engine)?;
        let trained = self.train(&mut trainer, &printer, &clock);
        let synced = self.progress.take_from(&mut trainer, &mut self.weights);
        trained?;
        synced?;
        printer.bar.finish_and_clear();
        self.progress.elapsed_s = clock.elapsed();
        self.save_checkpoint()?;
        printer.say(format!("FINISHED IN {:.2} s", clock.this_run()));
        let test_error = self.finish(&hooks)?;
        Ok(Outcome {
            run_dir: self.run_dir.clone(),
            iterations: self.progress.iteration,
            solved_at: self.progress.task.solved_at,
            final_error: mean_last(&self.progress.task.error_list, self.flags.print_every),
            test_error,
            seconds: clock.this_run(),
        })
    }

    /// The library's [`Trainer`] at this session's state.
    fn trainer(&self) -> Result<Trainer, HostError> {
        let network = Network {
            spec: self.spec.clone(),
            weights: self.weights.clone(),
        };
        let (rewiring, reg) = (self.flags.rewiring(), self.regulariser());
        (self.progress).trainer(network, self.flags.device, rewiring, reg)
    }

    /// The training loop. Validations (before every step, as the tutorial) read the
    /// trainer's weights (copied into the session) and draw from its generator, the run's;
    /// checkpoints take the whole state back, and so does the caller at the end.
    fn train(
        &mut self,
        trainer: &mut Trainer,
        printer: &Printer,
        clock: &Clock,
    ) -> Result<(), HostError> {
        let task = self.flags.task();
        let (bar, say) = (&printer.bar, |text: String| printer.say(text));
        while self.progress.iteration < self.flags.n_iter && self.progress.task.solved_at.is_none()
        {
            let k = self.progress.iteration;
            if k > 0 && k.is_multiple_of(self.flags.lr_decay_every) {
                self.progress.decay_learning_rate(self.flags.lr_decay, say);
            }
            let printing = k.is_multiple_of(self.flags.print_every);

            // Validation before each training step, as the original.
            self.weights.clone_from(trainer.weights()?);
            let val_batch = generate(trainer.rng_mut(), self.flags.batch_val, &task)?;
            let mut val_state = std::mem::take(&mut self.val_state);
            let t_val = Instant::now();
            let val = self.pass(&val_batch, &mut val_state, false, printing)?;
            let t_run = t_val.elapsed().as_secs_f64();
            self.test_state = val_state.clone();
            self.val_state = val_state;
            let error = recall_error(char_logits(&val, self.flags.n_charac).view(), &val_batch)?;
            let rate_hz: Vec<f64> = val.rates.iter().map(|&r| f64::from(r) * 1000.0).collect();
            self.progress.task.error_list.push(error);
            let elapsed = clock.elapsed();
            let train_s = self.progress.last_train_s;
            self.progress.lists.record(k, &val, train_s, elapsed);
            let lists = &self.progress.lists;
            bar.set_message(format!(
                "loss {:.3}  err {:.3}  rate {:.1} Hz",
                val.loss,
                error,
                lists.rate_list.last().unwrap_or(&f64::NAN)
            ));
            let errors = &self.progress.task.error_list;

            if printing {
                let mean_err = mean_last(errors, self.flags.print_every);
                let tail = &errors[errors.len().saturating_sub(self.flags.print_every)..];
                let (_, _, _, std_err, _, _) = stats(tail);
                say(format!(
                    "Iteration {k}, statistics on the validation set average error {mean_err:.2} +- {std_err:.2} (trial averaged)"
                ));
                if self.flags.verbose {
                    let (mn, mx, mean, sd, kmin, kmax) = stats(&rate_hz);
                    say(format!(
                        "    firing rate (Hz)  min {mn:.0} ({kmin})  max {mx:.0} ({kmax})  average {mean:.0} +- std {sd:.0} (averaged over batches and time)\n    comput. time (s)  training {:.2}  validation {t_run:.2}\n    loss              classif. {:.3}  reg. loss {:.3}",
                        self.progress.last_train_s, val.loss_ce, val.loss_reg
                    ));
                }
                if self.flags.do_plot && self.flags.monitor_plot {
                    self.plot(&val, &val_batch, &format!("monitor_iter{k:05}.png"))?;
                }
                if mean_err < self.flags.stop_crit {
                    say(format!(
                        "LESS THAN {} ERROR ACHIEVED - STOPPING - SOLVED at epoch {k}",
                        self.flags.stop_crit
                    ));
                    self.progress.task.solved_at = Some(k);
                    self.progress.iteration = k + 1;
                    break;
                }
            }

            // Training step.
            trainer.options_mut().schedule = Schedule::Constant(self.progress.learning_rate);
            let train_batch = generate(trainer.rng_mut(), self.flags.batch_train, &task)?;
            let target = Target::Classes(loss_terms(&train_batch));
            let stepped = trainer.step_carrying(&train_batch.input, &target, &mut self.train_state);
            self.progress.last_train_s = trainer.last_step_seconds();
            stepped?;
            self.progress.iteration = k + 1;
            bar.set_position(self.progress.iteration as u64);
            if self
                .progress
                .iteration
                .is_multiple_of(self.flags.print_every)
            {
                self.progress.elapsed_s = clock.elapsed();
                self.progress.take_from(trainer, &mut self.weights)?;
                self.save_checkpoint()?;
            }
        }
        Ok(())
    }

    /// Results, final plots, the test over 16 batches (from its own generator, so the run
    /// state is untouched) and the exported model.
    fn finish(&mut self, hooks: &Hooks) -> Result<f64, HostError> {
        let task = self.flags.task();
        let mut rng = self.progress.rng.clone();
        rng.set_stream(1);
        let mut test_errors = Vec::new();
        let mut last = None;
        let mut test_state = self.test_state.clone();
        for i in 0..16 {
            let batch = generate(&mut rng, self.flags.batch_test, &task)?;
            let pass = self.pass(&batch, &mut test_state, false, i == 15)?;
            test_errors.push(recall_error(
                char_logits(&pass, self.flags.n_charac).view(),
                &batch,
            )?);
            last = Some((pass, batch));
        }
        let (mean, _, std) = {
            let (_, _, mean, std, _, _) = stats(&test_errors);
            (mean, 0, std)
        };
        if !hooks.quiet {
            println!(
                "Statistics on the test set average error {mean:.2} +- {std:.2} (averaged over 16 test batches of size {})",
                self.flags.batch_test
            );
        }
        if let Some(dir) = &self.run_dir {
            let lists = &self.progress.lists;
            write_json(
                &dir.join("results.json"),
                &serde_json::json!({
                    "error": self.progress.task.error_list.last(),
                    "loss": lists.loss_list.last(),
                    "loss_with_reg": lists.loss_with_reg_list.last(),
                    "error_list": self.progress.task.error_list,
                    "loss_list": lists.loss_list,
                    "loss_reg_list": lists.loss_reg_list,
                    "loss_with_reg_list": lists.loss_with_reg_list,
                    "rate_list": lists.rate_list,
                    "training_time": lists.training_time,
                    "time_to_ref": lists.time_to_ref,
                    "iterations": self.progress.iteration,
                    "solved_at": self.progress.task.solved_at,
                    "flags": self.flags,
                    "test_errors": test_errors,
                    "test_errors_mean": mean,
                    "test_errors_std": std,
                }),
            )?;
            if self.flags.do_plot {
                if let Some((pass, batch)) = &last {
                    self.plot(pass, batch, "monitor_final.png")?;
                }
                let curve = |v: &[f64]| -> Vec<(f64, f64)> {
                    v.iter().enumerate().map(|(i, &e)| (i as f64, e)).collect()
                };
                let (err, loss) = (
                    curve(&self.progress.task.error_list),
                    curve(&lists.loss_list),
                );
                plot_learning_curve(
                    &dir.join("plots").join("learning_curve.png"),
                    "store-recall: validation",
                    "iteration",
                    &[("recall error", &err), ("recall loss", &loss)],
                )?;
            }
            export_model(&dir.join("model.lsnn"), &self.spec, &self.weights.params)?;
        }
        Ok(mean)
    }

    fn plot(
        &self,
        pass: &PassResult<f32>,
        batch: &StoreRecallBatch,
        name: &str,
    ) -> Result<(), HostError> {
        let Some(dir) = &self.run_dir else {
            return Ok(());
        };
        let Some(trace) = pass.traces.as_ref().and_then(|t| t.first()) else {
            return Ok(());
        };
        let monitor = monitor_data(
            &self.spec,
            &self.weights.params,
            trace,
            batch,
            self.flags.n_con,
        )?;
        plot_store_recall(&dir.join("plots").join(name), &monitor)?;
        Ok(())
    }
}

/// The monitor figure's data for batch element 0.
fn monitor_data(
    spec: &Spec<f32>,
    params: &Params<f32>,
    trace: &crate::train::Trace<f32>,
    batch: &StoreRecallBatch,
    n_thr_curves: usize,
) -> Result<StoreRecallMonitor, HostError> {
    let traces = ElementTraces::new(spec, params, trace)?;
    let seq_len = batch.params.seq_len;
    let n_out = params.n_out();
    let mut char_softmax = vec![0.0f32; seq_len * n_out];
    lsnn_core::downsample(
        traces.out_softmax.as_slice().expect("standard"),
        n_out,
        seq_len,
        &mut char_softmax,
    )
    .map_err(|e| HostError::Network(e.to_string()))?;
    Ok(StoreRecallMonitor {
        input: batch.input.dense_element(0),
        z: traces.z,
        thr: traces.thr,
        out_softmax: traces.out_softmax,
        char_softmax: Array2::from_shape_vec((seq_len, n_out), char_softmax).expect("sized"),
        target_nums: batch.target_nums.row(0).to_vec(),
        recall_mask: batch.recall_mask.row(0).to_vec(),
        tau_char: batch.params.tau_char,
        n_thr_curves,
    })
}
