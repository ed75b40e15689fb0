//! [`TaskRun`]: a run folder for any [`Task`] trained by a [`Trainer`]: checkpoints that
//! resume exactly, `results.json`, a progress bar, the learning curve and the raster /
//! threshold figure.
//!
//! A run folder `results_dir/name/<date>_seed<seed>/` holds `checkpoint.safetensors` (the
//! network, the trainer's state, the data generator and the losses so far), `results.json`
//! and `plots/` (`learning_curve.png`, `activity.png`).

use std::path::{Path, PathBuf};

use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::checkpoint::{checkpoint_error, load_run, restore_network, save_run, CHECKPOINT_FILE};
use super::plot::{plot_learning_curve, plot_smnist, SmnistMonitor};
use super::printer::Printer;
use super::traces::ElementTraces;
use super::{new_run_dir, Clock};
use crate::error::HostError;
use crate::files::write_json;
use crate::network::Network;
use crate::tasks::Task;
use crate::train::{Control, Trainer, TrainerOptions, TrainerState};

/// What a task run's checkpoint holds besides the network's arrays.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RunState {
    /// The seed the network and the data were drawn from.
    seed: u64,
    trainer: TrainerState,
    data: ChaCha8Rng,
    /// `(iteration, training loss)` of every iteration.
    losses: Vec<(usize, f64)>,
    elapsed_s: f64,
}

/// How a [`TaskRun`] trains.
#[derive(Clone, Copy, Debug)]
pub struct RunSettings {
    /// Train until this many iterations (counted across resumes).
    pub n_iter: usize,
    /// Checkpoint and plot every this many iterations (and at the end).
    pub every: usize,
    /// No progress bar and no prints.
    pub quiet: bool,
    /// Draw the figures.
    pub plots: bool,
}

/// What a finished [`TaskRun::train`] wrote into `results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Iterations run, across resumes.
    pub iterations: usize,
    /// The training loss of the last iteration.
    pub final_loss: f64,
    /// `(iteration, training loss)` of every iteration.
    pub losses: Vec<(usize, f64)>,
    /// Seconds of training, across resumes.
    pub seconds: f64,
}

/// A run folder and the state that goes with it.
pub struct TaskRun {
    /// The run folder.
    pub dir: PathBuf,
    state: RunState,
}

impl TaskRun {
    /// A new run of `task` under `results_dir/name/`: the network drawn from `seed`, the data
    /// from its own generator (seed + 1), DEEP R's from `options.seed`.
    pub fn start<T: Task + ?Sized>(
        task: &T,
        options: TrainerOptions,
        results_dir: &Path,
        name: &str,
        seed: u64,
    ) -> Result<(TaskRun, Trainer), HostError> {
        let network = task.network().build(&mut ChaCha8Rng::seed_from_u64(seed))?;
        let mut trainer = Trainer::new(network, options)?;
        let dir = new_run_dir(results_dir, name, seed, "")?;
        let state = RunState {
            seed,
            trainer: trainer.state()?,
            data: ChaCha8Rng::seed_from_u64(seed.wrapping_add(1)),
            losses: Vec::new(),
            elapsed_s: 0.0,
        };
        Ok((TaskRun { dir, state }, trainer))
    }

    /// The run saved in `dir`, to go on exactly where its last checkpoint was (`options`
    /// must be those it was started with).
    pub fn resume<T: Task + ?Sized>(
        task: &T,
        options: TrainerOptions,
        dir: &Path,
    ) -> Result<(TaskRun, Trainer), HostError> {
        let (ckpt, state) = load_run::<RunState>(dir)?;
        let Network {
            mut spec,
            mut weights,
        } = task
            .network()
            .build(&mut ChaCha8Rng::seed_from_u64(state.seed))?;
        restore_network(&ckpt, &mut spec, &mut weights)
            .map_err(|m| checkpoint_error(&dir.join(CHECKPOINT_FILE), m))?;
        let trainer = Trainer::resume(Network { spec, weights }, options, state.trainer.clone())?;
        let run = TaskRun {
            dir: dir.to_path_buf(),
            state,
        };
        Ok((run, trainer))
    }

    /// Trains `trainer` on `task` up to `settings.n_iter` iterations, checkpointing and
    /// plotting every `settings.every`; `hook` runs after every step as in
    /// [`Trainer::fit`]. A failed step stops the run with its error, the last checkpoint
    /// intact.
    pub fn train<T: Task + ?Sized>(
        &mut self,
        trainer: &mut Trainer,
        task: &mut T,
        settings: RunSettings,
        mut hook: impl FnMut(&mut Trainer, usize) -> Result<Control, HostError>,
    ) -> Result<RunResults, HostError> {
        let printer = Printer::new(settings.n_iter, trainer.iteration(), settings.quiet);
        let clock = Clock::start(self.state.elapsed_s);
        let every = settings.every.max(1);
        while trainer.iteration() < settings.n_iter {
            let (input, target) = task.batch(&mut self.state.data)?;
            let step = trainer.step(&input, &target)?;
            let k = trainer.iteration() - 1;
            self.state.losses.push((k, f64::from(step.loss)));
            printer.bar.set_position(k as u64 + 1);
            let control = hook(trainer, k)?;
            let last = control == Control::Stop || trainer.iteration() == settings.n_iter;
            if (k + 1).is_multiple_of(every) || last {
                self.state.elapsed_s = clock.elapsed();
                self.checkpoint(trainer)?;
                if settings.plots {
                    self.plot(trainer, task)?;
                }
            }
            if control == Control::Stop {
                break;
            }
        }
        printer.bar.finish_and_clear();
        let results = RunResults {
            run_dir: self.dir.clone(),
            iterations: trainer.iteration(),
            final_loss: self.state.losses.last().map_or(f64::NAN, |l| l.1),
            losses: self.state.losses.clone(),
            seconds: self.state.elapsed_s,
        };
        write_json(&self.dir.join("results.json"), &results)?;
        Ok(results)
    }

    /// Writes the network, the trainer's state, the data generator and the losses.
    pub fn checkpoint(&mut self, trainer: &mut Trainer) -> Result<(), HostError> {
        self.state.trainer = trainer.state()?;
        let network = trainer.network()?;
        save_run(
            &self.dir,
            &network.spec,
            &network.weights,
            &self.state,
            |_| {},
        )
    }

    /// The learning curve and the activity of the first element of a batch (drawn from a
    /// generator of its own, so that the training data are not disturbed).
    pub fn plot<T: Task + ?Sized>(
        &self,
        trainer: &mut Trainer,
        task: &mut T,
    ) -> Result<(), HostError> {
        let plots = self.dir.join("plots");
        let curve: Vec<(f64, f64)> = self
            .state
            .losses
            .iter()
            .map(|&(k, l)| (k as f64, l))
            .collect();
        plot_learning_curve(
            &plots.join("learning_curve.png"),
            "Training loss",
            "iteration",
            &[("loss", &curve)],
        )?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.state.seed.wrapping_add(2));
        let (input, target) = task.batch(&mut rng)?;
        let pass = trainer.trace(&input, &target)?;
        let Some(trace) = pass.traces.as_ref().and_then(|t| t.first()) else {
            return Ok(());
        };
        let network = trainer.network()?;
        let traces = ElementTraces::new(&network.spec, &network.weights.params, trace)?;
        let lif: Vec<usize> = (0..network.spec.n_rec())
            .filter(|&j| network.spec.beta[j] == 0.0)
            .collect();
        let alif: Vec<usize> = (0..network.spec.n_rec())
            .filter(|&j| network.spec.beta[j] != 0.0)
            .collect();
        let columns = |a: &Array2<f32>, js: &[usize]| a.select(Axis(1), js);
        let monitor = SmnistMonitor {
            input: input.dense_element(0),
            z_lif: columns(&traces.z, &lif),
            z_alif: columns(&traces.z, &alif),
            thr_alif: columns(&traces.thr, &alif),
            out_softmax: traces.out_softmax,
            // The class of the element's last cross-entropy term (0 for other losses).
            target: target
                .class_terms()
                .and_then(|terms| terms.first()?.last())
                .map_or(0, |term| term.target.min(255) as u8),
            n_inhibitory_lif: 0,
            max_raster: 300,
        };
        plot_smnist(&plots.join("activity.png"), &monitor)?;
        Ok(())
    }
}
