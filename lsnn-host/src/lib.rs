//! # lsnn-host
//!
//! LSNN on a workstation: the fixture checker, and (as the issues land) the batched BPTT
//! trainer, DEEP R, the tasks and the `lsnn-host` command line.
#![deny(unsafe_code)]
pub mod error;
pub mod fixture;
pub mod input;
pub mod plot;
pub mod tasks;
pub mod train;

pub use error::HostError;
pub mod apps;
pub mod data;
