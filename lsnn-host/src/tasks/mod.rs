//! The tutorial tasks: data generators and their error measures.
//!
//! - [`store_recall`]: the store-recall task of `tutorial_storerecall_with_LSNN.py`.
//! - [`smnist`]: the sequential-MNIST input encoding of `tutorial_sequential_mnist_with_LSNN.py`.

pub mod smnist;
pub mod store_recall;

pub use crate::error::TaskError;
