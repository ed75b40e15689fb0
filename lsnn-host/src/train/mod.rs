//! Training on the host: the network in dense form, batched BPTT, optimisers, DEEP R.

pub mod batch;
pub mod bptt;
pub mod lanes;
pub mod network;
pub mod simd;

pub use batch::{
    run_pass, run_pass_in, zero_states, PassOptions, PassResult, RateRegulariser, Workspace,
};
pub use bptt::{HostState, LossTerm, Trace};
pub use network::{Params, Spec};
pub mod deepr;
pub mod optim;
pub mod update;
