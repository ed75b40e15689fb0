//! The sequential-MNIST tutorial: the original `tutorial_sequential_mnist_with_LSNN.py`, end to end.
//!
//! As in the tutorial: 120 LIF + 100 ALIF neurons, threshold-crossing input (80 channels), the
//! loss on the mean readout of the last 28 steps, DEEP R on w_in, w_rec and w_out (12 %) with
//! Dale's-law signs, validation every `print_every` iterations, learning-rate decay every
//! `lr_decay_every` iterations once the first epoch is complete, and the test set at the end.
//! Every batch starts from the zero state (the tutorial does not carry state).

use std::path::{Path, PathBuf};

use ndarray::Axis;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::flags as flag_checks;
use crate::data::{Dataset, Split, SplitPosition, N_CLASSES};
use crate::error::HostError;
use crate::export::export_model;
use crate::files::write_json;
use crate::loss::{LossTerm, RateRegulariser, Target};
use crate::network::{Delays, Matrix, Network, NetworkBuilder, Population, Sparse, Spec, Weights};
use crate::runs::checkpoint::{
    checkpoint_error, load_run, read_flags, restore_network, save_run, CHECKPOINT_FILE,
};
use crate::runs::plot::{plot_learning_curve, plot_smnist, SmnistMonitor};
use crate::runs::printer::Printer;
use crate::runs::traces::ElementTraces;
use crate::runs::{mean_hz, new_run_dir, resolve_seed, stats, use_threads, Clock, Hooks};
use crate::tasks::smnist::{SmnistBatch, SmnistEncoding};
use crate::train::device::{check_device, engine, Device, Engine, Staged, Stager};
use crate::train::update::Rewiring;
use crate::train::{run_pass, zero_states, PassOptions, PassResult, Schedule, Trainer};

/// The tutorial's flags (same names in kebab case, same defaults), plus lsnn-rs's own.
#[derive(clap::Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmnistFlags {
    /// MNIST-format folder (train-images-idx3-ubyte[.gz], ...): MNIST or Fashion-MNIST.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Comment appended to the run folder's name.
    #[arg(long, default_value = "")]
    pub comment: String,
    /// Network model: LSNN (n_regular LIF + n_adaptive ALIF) or LIF (no adaptation).
    #[arg(long, default_value = "LSNN")]
    pub model: String,
    /// Save results, checkpoint and the exported model.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub save_data: bool,
    /// Not supported (the original's 14x14 pooling of analog input); must stay false.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub downsampled: bool,
    /// Training batch size.
    #[arg(long, default_value_t = 256)]
    pub n_batch_train: usize,
    /// Validation (and test) batch size.
    #[arg(long, default_value_t = 256)]
    pub n_batch_validation: usize,
    /// Number of input channels of the threshold-crossing encoding (even; the last is the cue).
    #[arg(long, default_value_t = 80)]
    pub n_in: usize,
    /// Number of LIF neurons.
    #[arg(long, default_value_t = 120)]
    pub n_regular: usize,
    /// Number of ALIF neurons.
    #[arg(long, default_value_t = 100)]
    pub n_adaptive: usize,
    /// Target rate of the regulariser (Hz).
    #[arg(long, default_value_t = 10.0)]
    pub reg_rate: f64,
    /// Number of iterations.
    #[arg(long, default_value_t = 36000)]
    pub n_iter: usize,
    /// Number of synaptic delay slots.
    #[arg(long, default_value_t = 10)]
    pub n_delay: usize,
    /// Refractory steps.
    #[arg(long, default_value_t = 5)]
    pub n_ref: usize,
    /// Decay the learning rate every this many iterations (after the first epoch).
    #[arg(long, default_value_t = 2500)]
    pub lr_decay_every: usize,
    /// Validate, print, plot and checkpoint every this many iterations.
    #[arg(long, default_value_t = 400)]
    pub print_every: usize,
    /// Repeat factor of every pixel (time extension).
    #[arg(long, default_value_t = 1)]
    pub ext_time: usize,
    /// Adaptation strength of the ALIF neurons.
    #[arg(long, default_value_t = 1.8)]
    pub beta: f64,
    /// Adaptation time constant (ms).
    #[arg(long, default_value_t = 700.0)]
    pub tau_a: f64,
    /// Membrane and readout time constant (ms).
    #[arg(long, default_value_t = 20.0)]
    pub tau_v: f64,
    /// Baseline threshold.
    #[arg(long, default_value_t = 0.01)]
    pub thr: f64,
    /// Base learning rate.
    #[arg(long, default_value_t = 1e-2)]
    pub learning_rate: f64,
    /// Learning-rate decay factor.
    #[arg(long, default_value_t = 0.8)]
    pub lr_decay: f64,
    /// Firing-rate regularisation coefficient.
    #[arg(long, default_value_t = 1e-1)]
    pub reg: f64,
    /// DEEP R temperature.
    #[arg(long, default_value_t = 0.0)]
    pub rewiring_temperature: f64,
    /// Proportion of excitatory neurons (Dale's law signs).
    #[arg(long, default_value_t = 0.75)]
    pub proportion_excitatory: f64,
    /// Voltage unit.
    #[arg(long = "V0", alias = "v0", default_value_t = 1.0)]
    pub v0: f64,
    /// Accepted for compatibility; figures are written as PNG files.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub interactive_plot: bool,
    /// Print the statistics block at every validation.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub verbose: bool,
    /// Fix the signs of input and recurrent neurons (with rewiring).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub neuron_sign: bool,
    /// Threshold-crossing input (false: the analog pixel on one input, n_in = 1).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub crs_thr: bool,
    /// DEEP R connectivity of w_in, w_rec and w_out (<= 0: dense, no rewiring).
    #[arg(long, default_value_t = 0.12, allow_negative_numbers = true)]
    pub rewiring_connectivity: f64,
    /// DEEP R l1 shrinkage.
    #[arg(long, default_value_t = 1e-2)]
    pub l1: f64,
    /// Height of the pseudo-derivative.
    #[arg(long, default_value_t = 0.3)]
    pub dampening_factor: f64,
    /// Training images held out for validation (TensorFlow's loader: 5000).
    #[arg(long, default_value_t = 5000)]
    pub validation_size: usize,
    /// Draw the figures (PNG).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub do_plot: bool,
    /// Random seed (-1: draw one and record it).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub seed: i64,
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

impl SmnistFlags {
    /// Every default, reading data from `data_dir`.
    pub fn defaults(data_dir: &Path) -> Self {
        use clap::FromArgMatches;
        let cmd = <Self as clap::Args>::augment_args(clap::Command::new("defaults"));
        let dir = data_dir.to_string_lossy().into_owned();
        Self::from_arg_matches(&cmd.get_matches_from(["defaults", "--data-dir", &dir]))
            .expect("defaults parse")
    }

    /// The input encoding.
    pub fn encoding(&self) -> SmnistEncoding {
        SmnistEncoding {
            n_in: if self.crs_thr { self.n_in } else { 1 },
            crs_thr: self.crs_thr,
            ext_time: self.ext_time,
        }
    }

    fn n_neurons(&self) -> usize {
        self.n_regular + self.n_adaptive
    }

    fn rewired(&self) -> bool {
        self.rewiring_connectivity > 0.0
    }

    /// Checks every flag; the message names the flag and how to fix it.
    pub fn validate(&self) -> Result<(), HostError> {
        check_device(self.device)?;
        use flag_checks::bad;
        flag_checks::at_least_one(&[
            ("--n-batch-train", self.n_batch_train),
            ("--n-batch-validation", self.n_batch_validation),
            ("--n-iter", self.n_iter),
            ("--n-delay", self.n_delay),
            ("--lr-decay-every", self.lr_decay_every),
            ("--print-every", self.print_every),
            ("--ext-time", self.ext_time),
        ])?;
        if self.n_delay > 256 {
            return bad("--n-delay", format!("{} must be <= 256", self.n_delay));
        }
        if self.n_neurons() == 0 {
            return bad(
                "--n-regular/--n-adaptive",
                "the network needs at least one neuron".into(),
            );
        }
        if !matches!(self.model.as_str(), "LSNN" | "LIF") {
            return bad("--model", format!("`{}` is not LSNN or LIF", self.model));
        }
        if self.downsampled {
            return bad(
                "--downsampled",
                "the 14x14 pooled variant is not supported".into(),
            );
        }
        let p = self.rewiring_connectivity;
        if p > 1.0 || p.is_nan() {
            return bad(
                "--rewiring-connectivity",
                format!("{p} must be in (0, 1], or <= 0 for no rewiring"),
            );
        }
        if !(0.0..=1.0).contains(&self.proportion_excitatory) {
            return bad("--proportion-excitatory", "must be in [0, 1]".into());
        }
        flag_checks::positive(&[
            ("--thr", self.thr),
            ("--tau-a", self.tau_a),
            ("--tau-v", self.tau_v),
            ("--learning-rate", self.learning_rate),
            ("--V0", self.v0),
        ])?;
        flag_checks::non_negative(&[
            ("--lr-decay", self.lr_decay),
            ("--reg", self.reg),
            ("--reg-rate", self.reg_rate),
            ("--beta", self.beta),
            ("--l1", self.l1),
            ("--rewiring-temperature", self.rewiring_temperature),
            ("--dampening-factor", self.dampening_factor),
        ])?;
        self.encoding().validate().map_err(|e| HostError::Flag {
            flag: "--n-in/--ext-time/--crs-thr".into(),
            message: e.to_string(),
        })
    }
}

/// The tutorial's network: `n_regular` LIF then `n_adaptive` ALIF neurons (all LIF with
/// `--model LIF`), delays drawn from `0..n_delay`, a readout with bias; with rewiring, DEEP R
/// matrices for w_in, w_rec and w_out (signed by neuron when `--neuron-sign`), else
/// `randn / sqrt(fan_in)` and Glorot-uniform w_out.
pub fn network_builder(flags: &SmnistFlags) -> NetworkBuilder {
    let beta = if flags.model == "LIF" {
        0.0
    } else {
        flags.beta as f32
    };
    let (tau, thr) = (flags.tau_v as f32, flags.thr as f32);
    let mut builder = NetworkBuilder::new(flags.encoding().n_channels(), N_CLASSES)
        .population(Population::lif(flags.n_regular, tau, thr))
        .population(Population::alif(flags.n_adaptive, tau, thr, beta))
        .dt(1.0)
        .tau_adaptation(flags.tau_a as f32)
        .v0(flags.v0 as f32)
        .refractory(flags.n_ref)
        .dampening(flags.dampening_factor as f32)
        .delays(Delays::Range(0, flags.n_delay.saturating_sub(1) as u8))
        .tau_out(tau)
        .readout_bias(true)
        .excitatory(flags.proportion_excitatory);
    if flags.rewired() {
        let connectivity = flags.rewiring_connectivity;
        let sparse = if flags.neuron_sign {
            Sparse::Signed { connectivity }
        } else {
            Sparse::Unsigned { connectivity }
        };
        for matrix in Matrix::ALL {
            builder = builder.sparse(matrix, sparse);
        }
    }
    builder
}

/// The fixed part of the tutorial's network ([`network_builder`]), its delays from `rng`.
pub fn build_spec<R: Rng>(flags: &SmnistFlags, rng: &mut R) -> Spec<f32> {
    network_builder(flags).draw_spec(rng)
}

/// The tutorial's initial weights ([`network_builder`]), drawn after [`build_spec`].
pub fn init_weights<R: Rng>(flags: &SmnistFlags, rng: &mut R) -> Result<Weights<f32>, HostError> {
    network_builder(flags).draw_weights(rng)
}

/// The loss of a batch: cross-entropy of the mean readout over the last window, batch mean.
pub fn loss_terms(encoding: &SmnistEncoding, labels: &[usize]) -> Vec<Vec<LossTerm<f32>>> {
    let (start, end) = encoding.loss_window();
    let weight = 1.0 / labels.len().max(1) as f32;
    labels
        .iter()
        .map(|&target| {
            vec![LossTerm {
                start,
                end,
                target,
                weight,
            }]
        })
        .collect()
}

/// What sMNIST adds to the loop state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmnistState {
    /// Validation accuracy (the original stores it as `error_list`).
    pub accuracy_list: Vec<f64>,
    /// Connectivity of w_in, w_rec and w_out together at each validation.
    pub connectivity_list: Vec<f64>,
    /// Position of the training split.
    pub train_position: SplitPosition,
    /// Position of the validation split.
    pub validation_position: SplitPosition,
}

/// Everything a checkpoint holds besides the arrays.
pub type SmnistProgress = crate::runs::Progress<SmnistState>;

/// How a run ended.
#[derive(Clone, Debug, Serialize)]
pub struct SmnistOutcome {
    /// The run folder.
    pub run_dir: Option<PathBuf>,
    /// Iterations run in total.
    pub iterations: usize,
    /// Last validation accuracy.
    pub validation_accuracy: f64,
    /// Accuracy over the whole test set.
    pub test_accuracy: f64,
    /// Test images.
    pub n_test: usize,
    /// Wall-clock seconds of this invocation.
    pub seconds: f64,
}

/// A run in memory.
pub struct SmnistSession {
    /// The flags (seed resolved).
    pub flags: SmnistFlags,
    /// The fixed part of the network.
    pub spec: Spec<f32>,
    /// The trained arrays.
    pub weights: Weights<f32>,
    /// The data.
    pub data: Dataset,
    /// Loop state.
    pub progress: SmnistProgress,
    /// The run folder (when saving).
    pub run_dir: Option<PathBuf>,
    /// Draw and encode the next training batch while a step runs, where that keeps the run's
    /// draws in order (the default); false: every batch at its own iteration.
    pub overlap_batches: bool,
}

/// A training batch, encoded, with its loss terms and (when drawn during the previous step)
/// its form for the device.
struct TrainBatch {
    batch: SmnistBatch,
    target: Target,
    staged: Staged,
}

/// The next iteration's batch as drawn while a step ran (or the error of drawing it).
type NextBatch = Result<TrainBatch, HostError>;

/// The next iteration's batch, drawn while a step ran.
struct Prefetched {
    next: NextBatch,
    /// The run's generator and the training split before the draw: restored when the step
    /// fails, so that the run stands where the sequential loop would have stopped.
    before: (ChaCha8Rng, SplitPosition),
}

/// Draws and encodes the next training batch (and stages it for the device, if asked).
fn draw_batch(
    train: &mut Split,
    rng: &mut ChaCha8Rng,
    flags: &SmnistFlags,
    stager: Option<&mut dyn Stager>,
) -> Result<TrainBatch, HostError> {
    let encoding = flags.encoding();
    let images = train.next_batch(rng, flags.n_batch_train)?;
    let batch = encoding.encode(&images)?;
    let target = Target::Classes(loss_terms(&encoding, &batch.labels));
    let staged = match stager {
        Some(s) => s.stage(&batch.input, &target)?,
        None => Staged::default(),
    };
    Ok(TrainBatch {
        batch,
        target,
        staged,
    })
}

fn load_data(flags: &SmnistFlags) -> Result<Dataset, HostError> {
    Ok(Dataset::open(&flags.data_dir, flags.validation_size)?)
}

impl SmnistSession {
    /// A fresh run.
    pub fn new(mut flags: SmnistFlags) -> Result<SmnistSession, HostError> {
        flags.validate()?;
        let data = load_data(&flags)?;
        let seed = resolve_seed(flags.seed);
        flags.seed = seed as i64;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let spec = build_spec(&flags, &mut rng);
        let weights = init_weights(&flags, &mut rng)?;
        let run_dir = if flags.save_data {
            let dir = new_run_dir(&flags.results_dir, "smnist", seed, &flags.comment)?;
            write_json(&dir.join("flags.json"), &flags)?;
            Some(dir)
        } else {
            None
        };
        Ok(SmnistSession {
            progress: SmnistProgress::start(
                flags.learning_rate,
                rng,
                SmnistState {
                    accuracy_list: Vec::new(),
                    connectivity_list: Vec::new(),
                    train_position: data.train.position(),
                    validation_position: data.validation.position(),
                },
            ),
            spec,
            weights,
            data,
            flags,
            run_dir,
            overlap_batches: true,
        })
    }

    /// Loads the run saved in `dir`; `data_dir` replaces the recorded data folder (the data
    /// must be the same), `n_iter` may raise the number of iterations.
    pub fn resume(
        dir: &Path,
        data_dir: Option<&Path>,
        n_iter: Option<usize>,
    ) -> Result<SmnistSession, HostError> {
        let mut flags: SmnistFlags = read_flags(dir)?;
        if let Some(d) = data_dir {
            flags.data_dir = d.to_path_buf();
        }
        if let Some(n) = n_iter {
            flags.n_iter = n;
        }
        flags.validate()?;
        let mut data = load_data(&flags)?;
        let (ckpt, progress) = load_run::<SmnistProgress>(dir)?;
        let bad = |m: String| checkpoint_error(&dir.join(CHECKPOINT_FILE), m);
        data.train.restore(progress.task.train_position.clone())?;
        data.validation
            .restore(progress.task.validation_position.clone())?;
        let mut rng = ChaCha8Rng::seed_from_u64(flags.seed as u64);
        let mut spec = build_spec(&flags, &mut rng);
        let mut weights = init_weights(&flags, &mut rng)?;
        restore_network(&ckpt, &mut spec, &mut weights).map_err(bad)?;
        Ok(SmnistSession {
            flags,
            spec,
            weights,
            data,
            progress,
            run_dir: Some(dir.to_path_buf()),
            overlap_batches: true,
        })
    }

    /// Writes the checkpoint (weights, optimiser, generator, data positions) into the run
    /// folder, if saving; after a training error it holds the last trained state.
    pub fn save_checkpoint(&mut self) -> Result<(), HostError> {
        self.progress.task.train_position = self.data.train.position();
        self.progress.task.validation_position = self.data.validation.position();
        match &self.run_dir {
            Some(dir) => save_run(dir, &self.spec, &self.weights, &self.progress, |_| {}),
            None => Ok(()),
        }
    }

    fn regulariser(&self) -> RateRegulariser<f32> {
        RateRegulariser::uniform(self.flags.n_neurons(), self.flags.reg, self.flags.reg_rate)
    }

    fn encode(&self, batch: &crate::data::Batch) -> Result<SmnistBatch, HostError> {
        Ok(self.flags.encoding().encode(batch)?)
    }

    /// Forward pass (zero initial state) over an encoded batch.
    pub fn evaluate(
        &self,
        batch: &SmnistBatch,
        keep_traces: bool,
    ) -> Result<PassResult<f32>, HostError> {
        let terms = loss_terms(&self.flags.encoding(), &batch.labels);
        let mut states = zero_states(&self.spec, batch.labels.len());
        run_pass(
            &self.spec,
            &self.weights.params,
            &batch.input,
            &mut states,
            &terms,
            Some(&self.regulariser()),
            PassOptions {
                keep_traces,
                ..PassOptions::default()
            },
        )
    }

    /// Predicted digit of every image of a split (in file order) and the accuracy.
    pub fn predict_split(
        &self,
        split: &Split,
        limit: Option<usize>,
    ) -> Result<(Vec<usize>, f64), HostError> {
        let n = limit.unwrap_or(split.len()).min(split.len());
        let mut predictions = Vec::with_capacity(n);
        let mut correct = 0usize;
        let indices: Vec<usize> = (0..n).collect();
        for chunk in indices.chunks(self.flags.n_batch_validation) {
            let batch = self.encode(&split.batch(chunk))?;
            let pass = self.evaluate(&batch, false)?;
            for (logits, &label) in pass.logits.iter().zip(&batch.labels) {
                let predicted = lsnn_core::argmax(&logits[0]).unwrap_or(0);
                correct += usize::from(predicted == label);
                predictions.push(predicted);
            }
        }
        Ok((predictions, correct as f64 / n.max(1) as f64))
    }

    /// Trains to `n_iter`, then evaluates the whole test set.
    pub fn run(&mut self, hooks: Hooks) -> Result<SmnistOutcome, HostError> {
        let engine = engine(self.flags.device)?;
        self.run_on(engine, hooks)
    }

    /// [`SmnistSession::run`] with the steps run by `engine` (a device of one's own, or a
    /// test engine injecting a fault) instead of the flags' device's.
    pub fn run_on(
        &mut self,
        engine: Box<dyn Engine>,
        hooks: Hooks,
    ) -> Result<SmnistOutcome, HostError> {
        use_threads(self.flags.threads);
        let clock = Clock::start(self.progress.elapsed_s);
        let printer = Printer::new(self.flags.n_iter, self.progress.iteration, hooks.quiet);
        let mut trainer = self.trainer()?.with_engine(engine)?;
        let trained = self.train(&mut trainer, &printer, &clock);
        let synced = self.take_from(&mut trainer);
        trained?;
        synced?;
        printer.bar.finish_and_clear();
        self.progress.elapsed_s = clock.elapsed();
        self.save_checkpoint()?;
        let (_, test_accuracy) = self.predict_split(&self.data.test, None)?;
        printer.say(format!(
            "Statistics on the test set: accuracy {test_accuracy:.4} over {} images",
            self.data.test.len()
        ));
        let outcome = SmnistOutcome {
            run_dir: self.run_dir.clone(),
            iterations: self.progress.iteration,
            validation_accuracy: self
                .progress
                .task
                .accuracy_list
                .last()
                .copied()
                .unwrap_or(f64::NAN),
            test_accuracy,
            n_test: self.data.test.len(),
            seconds: clock.this_run(),
        };
        self.write_results(Some(&outcome))?;
        if let Some(dir) = &self.run_dir {
            export_model(&dir.join("model.lsnn"), &self.spec, &self.weights.params)?;
        }
        Ok(outcome)
    }

    /// The library's [`Trainer`] at this session's state.
    fn trainer(&self) -> Result<Trainer, HostError> {
        let network = Network {
            spec: self.spec.clone(),
            weights: self.weights.clone(),
        };
        let rewiring = self.flags.rewired().then_some(Rewiring {
            l1: self.flags.l1,
            temperature: self.flags.rewiring_temperature,
        });
        let reg = self.regulariser();
        (self.progress).trainer(network, self.flags.device, rewiring, reg)
    }

    /// Brings the weights, the optimiser and the generator back from `trainer`.
    fn take_from(&mut self, trainer: &mut Trainer) -> Result<(), HostError> {
        self.progress.take_from(trainer, &mut self.weights)
    }

    /// The training loop. Validations read the trainer's weights (copied into the session)
    /// and draw from its generator, the run's; checkpoints take the whole state back, and so
    /// does the caller at the end.
    fn train(
        &mut self,
        trainer: &mut Trainer,
        printer: &Printer,
        clock: &Clock,
    ) -> Result<(), HostError> {
        let mut next: Option<TrainBatch> = None;
        while self.progress.iteration < self.flags.n_iter {
            let k = self.progress.iteration;
            if k > 0
                && k.is_multiple_of(self.flags.lr_decay_every)
                && self.data.train.epochs_completed() > 0
            {
                self.progress
                    .decay_learning_rate(self.flags.lr_decay, |text| printer.say(text));
            }
            if k.is_multiple_of(self.flags.print_every) {
                self.weights.clone_from(trainer.weights()?);
                self.validate(k, printer, clock.elapsed(), trainer.rng_mut())?;
            }
            let batch = match next.take() {
                Some(b) => b,
                None => draw_batch(&mut self.data.train, trainer.rng_mut(), &self.flags, None)?,
            };
            let (result, prefetched) = self.train_iteration(trainer, k, &batch)?;
            self.progress.iteration = k + 1;
            printer.bar.set_position(self.progress.iteration as u64);
            printer.bar.set_message(format!(
                "loss {:.3}  rate {:.1} Hz",
                result.loss,
                mean_hz(&result.rates)
            ));
            next = prefetched.transpose()?;
            if self
                .progress
                .iteration
                .is_multiple_of(self.flags.print_every)
            {
                self.progress.elapsed_s = clock.elapsed();
                self.take_from(trainer)?;
                self.save_checkpoint()?;
            }
        }
        Ok(())
    }

    /// Whether iteration `j`'s batch may be drawn during the step before it: not when `j`
    /// validates (its validation batch comes first from the same generator), checkpoints
    /// after the previous step (it records the split's position), may decay the learning rate
    /// (the condition reads the epoch count the draw changes), or is not run.
    fn may_prefetch(&self, j: usize) -> bool {
        self.overlap_batches
            && j < self.flags.n_iter
            && !j.is_multiple_of(self.flags.print_every)
            && !j.is_multiple_of(self.flags.lr_decay_every)
    }

    /// Training step `k` on `batch`; when allowed, the next batch is drawn (and staged for
    /// the device) while the step runs, after DEEP R's key of step `k` was drawn: the order
    /// of the sequential loop.
    fn train_iteration(
        &mut self,
        trainer: &mut Trainer,
        k: usize,
        batch: &TrainBatch,
    ) -> Result<(PassResult<f32>, Option<NextBatch>), HostError> {
        trainer.options_mut().schedule = Schedule::Constant(self.progress.learning_rate);
        let prefetch = self.may_prefetch(k + 1);
        let (train, flags) = (&mut self.data.train, &self.flags);
        let (stepped, overlapped) = trainer.step_overlapped(
            &batch.batch.input,
            &batch.target,
            Some(&batch.staged),
            |rng, stager| {
                Ok(prefetch.then(|| Prefetched {
                    before: (rng.clone(), train.position()),
                    next: draw_batch(train, rng, flags, Some(stager)),
                }))
            },
        );
        self.progress.last_train_s = trainer.last_step_seconds();
        let prefetched = overlapped.and_then(Result::ok).flatten();
        match stepped {
            Ok(result) => Ok((result, prefetched.map(|p| p.next))),
            Err(e) => {
                if let Some(Prefetched {
                    before: (rng, position),
                    ..
                }) = prefetched
                {
                    *trainer.rng_mut() = rng;
                    self.data.train.restore(position)?;
                }
                Err(e)
            }
        }
    }

    /// Validation at iteration `k` on a batch drawn from `rng` (the run's generator).
    fn validate(
        &mut self,
        k: usize,
        printer: &Printer,
        elapsed: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<(), HostError> {
        let images = self
            .data
            .validation
            .next_batch(rng, self.flags.n_batch_validation)?;
        let batch = self.encode(&images)?;
        let pass = self.evaluate(&batch, self.flags.do_plot)?;
        let correct = pass
            .logits
            .iter()
            .zip(&batch.labels)
            .filter(|(l, &y)| lsnn_core::argmax(&l[0]) == Some(y))
            .count();
        let accuracy = correct as f64 / batch.labels.len() as f64;
        let rates_hz: Vec<f64> = pass.rates.iter().map(|&r| f64::from(r) * 1000.0).collect();
        let (connected, sizes): (Vec<usize>, Vec<usize>) = [
            &self.weights.params.w_in,
            &self.weights.params.w_rec,
            &self.weights.params.w_out,
        ]
        .iter()
        .map(|w| (w.iter().filter(|&&x| x != 0.0).count(), w.len()))
        .unzip();
        let connectivity =
            connected.iter().sum::<usize>() as f64 / sizes.iter().sum::<usize>() as f64;
        let train_s = self.progress.last_train_s;
        self.progress.lists.record(k, &pass, train_s, elapsed);
        self.progress.task.accuracy_list.push(accuracy);
        self.progress.task.connectivity_list.push(connectivity);
        printer.say(format!(
            "Iteration {k}, epoch {} validation accuracy {accuracy:.3}",
            self.data.train.epochs_completed()
        ));
        if self.flags.verbose {
            let (mn, mx, mean, sd, kmin, kmax) = stats(&rates_hz);
            let ratio = |i: usize| connected[i] as f64 / sizes[i] as f64;
            printer.say(format!(
                "    firing rate (Hz)  min {mn:.0} ({kmin})  max {mx:.0} ({kmax})  average {mean:.0} +- std {sd:.0} (over neurons)\n    connectivity (total {connectivity:.3})  W_in {:.3}  W_rec {:.2}  w_out {:.2}\n    number of non zero weights  W_in {}/{}  W_rec {}/{}  w_out {}/{}\n    classification loss {:.3}  regularization loss {:.3}\n    learning rate {:.3}  training op. time {:.3}s",
                ratio(0), ratio(1), ratio(2),
                connected[0], sizes[0], connected[1], sizes[1], connected[2], sizes[2],
                pass.loss_ce, pass.loss_reg, self.progress.learning_rate, self.progress.last_train_s
            ));
        }
        if self.flags.do_plot {
            self.plot(&pass, &batch, &format!("smnist_iter{k:05}.png"))?;
        }
        self.write_results(None)
    }

    fn plot(
        &self,
        pass: &PassResult<f32>,
        batch: &SmnistBatch,
        name: &str,
    ) -> Result<(), HostError> {
        let (Some(dir), Some(trace)) =
            (&self.run_dir, pass.traces.as_ref().and_then(|t| t.first()))
        else {
            return Ok(());
        };
        let traces = ElementTraces::new(&self.spec, &self.weights.params, trace)?;
        let n_lif = self.flags.n_regular;
        let n_inhibitory = if self.flags.neuron_sign && self.flags.rewired() {
            self.flags.n_neurons()
                - ((self.flags.proportion_excitatory * self.flags.n_neurons() as f64) as usize + 1)
                    .min(self.flags.n_neurons())
        } else {
            0
        };
        let monitor = SmnistMonitor {
            input: batch.input.dense_element(0),
            z_lif: traces.z.slice_axis(Axis(1), (0..n_lif).into()).to_owned(),
            z_alif: traces.z.slice_axis(Axis(1), (n_lif..).into()).to_owned(),
            thr_alif: traces.thr.slice_axis(Axis(1), (n_lif..).into()).to_owned(),
            out_softmax: traces.out_softmax,
            target: batch.labels[0] as u8,
            n_inhibitory_lif: n_inhibitory.min(n_lif),
            max_raster: 300,
        };
        plot_smnist(&dir.join("plots").join(name), &monitor)?;
        let lists = &self.progress.lists;
        let curve: Vec<(f64, f64)> = lists
            .iteration_list
            .iter()
            .zip(&self.progress.task.accuracy_list)
            .map(|(&k, &a)| (k as f64, a))
            .collect();
        plot_learning_curve(
            &dir.join("plots").join("learning_curve.png"),
            "sMNIST: validation accuracy",
            "iteration",
            &[("accuracy", &curve)],
        )?;
        Ok(())
    }

    fn write_results(&self, outcome: Option<&SmnistOutcome>) -> Result<(), HostError> {
        let Some(dir) = &self.run_dir else {
            return Ok(());
        };
        write_json(
            &dir.join("results.json"),
            &serde_json::json!({
                "accuracy": self.progress.task.accuracy_list.last(),
                "task": self.progress.task,
                "lists": self.progress.lists,
                "iterations": self.progress.iteration,
                "flags": self.flags,
                "test": outcome,
            }),
        )
    }
}
