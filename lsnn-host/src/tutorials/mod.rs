//! The two tutorials of the original, end to end on the library: their flags, training loops,
//! validation and results ([`store_recall`], [`smnist`]), their benchmarks ([`bench`](mod@bench)) and their
//! saved networks ([`saved`]).

pub mod bench;
pub mod flags;
pub mod saved;
pub mod smnist;
pub mod store_recall;
