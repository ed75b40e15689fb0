//! Training on the host: the network in dense form, batched BPTT, optimisers, DEEP R.

pub mod batch;
pub mod bptt;
pub mod network;

pub use batch::{run_pass, zero_states, PassOptions, PassResult, RateRegulariser};
pub use bptt::{HostState, LossTerm, Trace};
pub use network::{Params, Spec};
pub mod deepr;
pub mod optim;
pub mod update;
