//! The `lsnn-host` commands, one file each: their arguments and what they run. Only `main`
//! uses them.

pub mod bench;
pub mod eval;
pub mod export;
pub mod fixtures;
pub mod infer;
pub mod train;
