//! Training on the host: batched BPTT, optimisers, DEEP R.

pub mod batch;
pub mod bptt;
pub mod device;
pub mod lanes;
pub mod simd;
pub mod step;
mod trainer;

pub use batch::{run_pass, run_pass_in, zero_states, PassOptions, PassResult, Workspace};
pub use bptt::{HostState, Trace};
pub use trainer::{evaluate, Control, Schedule, Trainer, TrainerOptions, TrainerState};
pub mod deepr;
pub mod optim;
pub mod update;
