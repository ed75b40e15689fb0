//! # lsnn-host
//!
//! Train LSNNs (recurrent networks of LIF and ALIF spiking neurons, BPTT through a
//! pseudo-derivative, sparse matrices under DEEP R) on a workstation, for a task of your
//! own, and export them for `lsnn-core` on a microcontroller.
//!
//! ## Use as a library
//!
//! A task is a network and batches of input with what the readout should answer
//! ([`tasks::Task`]); a [`train::Trainer`] makes one training iteration per
//! [`Trainer::step`](train::Trainer::step) call, or loops with [`Trainer::fit`](train::Trainer::fit):
//!
//! ```
//! use lsnn_host::input::InputBatch;
//! use lsnn_host::loss::{Target, Window};
//! use lsnn_host::network::{Delays, Matrix, NetworkBuilder, Population, Sparse};
//! use lsnn_host::tasks::Task;
//! use lsnn_host::train::{Control, Schedule, Trainer, TrainerOptions};
//! use lsnn_host::HostError;
//! use rand::{Rng, SeedableRng};
//! use rand_chacha::ChaCha8Rng;
//!
//! /// Which of two input channels is busier (channel 0 or 1, 40 steps of spikes).
//! struct Busier;
//!
//! impl Task for Busier {
//!     fn network(&self) -> NetworkBuilder {
//!         NetworkBuilder::new(2, 2)
//!             .population(Population::lif(10, 20.0, 0.03))
//!             .population(Population::alif(10, 20.0, 0.03, 1.8))
//!             .delays(Delays::Range(0, 2))
//!             .sparse(Matrix::Rec, Sparse::Unsigned { connectivity: 0.5 })
//!     }
//!
//!     fn batch(&mut self, rng: &mut ChaCha8Rng) -> Result<(InputBatch, Target), HostError> {
//!         let classes: Vec<usize> = (0..16).map(|_| rng.gen_range(0..2)).collect();
//!         let mut input = InputBatch::new(40, 2);
//!         for &class in &classes {
//!             input.push_poisson(rng, |_, channel| if channel == class { 0.3 } else { 0.05 });
//!         }
//!         Ok((input, Target::classes(&classes, Window { start: 20, end: 40 })))
//!     }
//! }
//!
//! # fn main() -> Result<(), HostError> {
//! let mut task = Busier;
//! let network = task.network().build(&mut ChaCha8Rng::seed_from_u64(1))?;
//! let options = TrainerOptions { schedule: Schedule::Constant(0.01), ..TrainerOptions::default() };
//! let mut trainer = Trainer::new(network, options)?;
//! let mut losses = Vec::new();
//! trainer.fit(&mut task, 40, &mut ChaCha8Rng::seed_from_u64(2), |_, _, step| {
//!     losses.push(step.loss);
//!     Ok(Control::Continue)
//! })?;
//! assert!(losses[35..].iter().sum::<f32>() < losses[..5].iter().sum::<f32>());
//!
//! // Export with 8-bit weights for lsnn-core.
//! let trained = trainer.network()?;
//! let model = lsnn_host::export::encode_model_as(
//!     &trained.spec,
//!     &trained.weights.params,
//!     lsnn_core::model::WeightKind::I8,
//! )?;
//! assert!(lsnn_core::model::Model::parse(&model).is_ok());
//! # Ok(())
//! # }
//! ```
//!
//! What goes with it:
//!
//! - the network ([`network::NetworkBuilder`]): inputs, LIF / ALIF populations with their
//!   constants, delays fixed or drawn from a range, refractoriness, dt, V0, readout size and
//!   bias; matrices kept sparse by DEEP R, chosen by [`network::Matrix`], unsigned or signed
//!   (Dale's law); the tutorials' initialisers. The engine applies V0 and leaves out the
//!   diagonal of `w_rec` itself.
//! - the loss ([`loss::Target`]): the tutorials' windowed softmax cross-entropy, per-step
//!   squared error, or a loss of your own ([`loss::Loss`], a closure will do) that gets the
//!   readout per step or window means and returns the loss and its gradient; the rate
//!   regulariser ([`loss::RateRegulariser`]) in [`train::TrainerOptions`].
//! - training ([`train::TrainerOptions`]): the device at run time (cpu, or cuda in a build
//!   with the `cuda` feature), Adam or SGD, a learning-rate [`train::Schedule`], DEEP R's
//!   settings. A NaN or infinite loss or gradient stops a step with an error and changes
//!   nothing; results do not depend on the number of threads. Tasks whose batches continue
//!   one another carry their states ([`Trainer::step_carrying`](train::Trainer::step_carrying));
//!   the next batch can be drawn while a step runs, from the trainer's generator if the data
//!   should share it ([`Trainer::step_overlapped`](train::Trainer::step_overlapped)): the two
//!   tutorials train through these calls.
//! - run folders ([`runs::TaskRun`]): checkpoints that resume exactly, `results.json`, a
//!   progress bar, the learning curve and the raster / threshold figure.
//! - export ([`export`]): `.lsnn` model files with f32, i16 or i8 weights, run through
//!   lsnn-core on the host ([`export::run_model`]).
//!
//! Bad input (shapes that do not fit, a loss gradient of the wrong length, a NaN from a
//! user loss, an unknown matrix name) is an `Err` whose message names the argument.
//! `examples/custom_task.rs` and `examples/regression.rs` are complete programs.
//!
//! ## Modules
//!
//! Dependencies run one way (`scripts/module-cycles.py` checks it in CI):
//! [`data`] and [`input`] -> [`network`] and [`loss`] -> [`tasks`] -> [`train`] (the step,
//! the devices, [`train::Trainer`]) -> [`runs`] -> [`tutorials`] (the original's two
//! tutorials on this library, bit for bit as before) -> [`apps`] (one file per command of the
//! `lsnn-host` binary, used only by `main`). [`fixture`] checks the shared fixtures against
//! every backend; [`export`] writes and runs model files.
#![deny(unsafe_code)]
pub mod apps;
pub mod data;
pub mod error;
pub mod export;
pub mod files;
pub mod fixture;
pub mod input;
pub mod loss;
pub mod network;
pub mod runs;
pub mod tasks;
pub mod train;
pub mod tutorials;

pub use error::HostError;
