//! # lsnn-host
//!
//! LSNN on a workstation: the fixture checker, and (as the issues land) the batched BPTT
//! trainer, DEEP R, the tasks and the `lsnn-host` command line.
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
