//! The tutorials as applications: flags, training loop, results folder, plots, checkpoints.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod export;
pub mod gpu;
pub mod infer;
pub mod run;
pub mod smnist;
pub mod store_recall;
