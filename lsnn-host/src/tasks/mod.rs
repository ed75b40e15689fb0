//! Tasks: the [`Task`] trait any task implements, and the tutorials' data generators and
//! their error measures.
//!
//! - [`store_recall`]: the store-recall task of `tutorial_storerecall_with_LSNN.py`.
//! - [`smnist`]: the sequential-MNIST input encoding of `tutorial_sequential_mnist_with_LSNN.py`.

pub mod smnist;
pub mod store_recall;

pub use crate::error::TaskError;

use rand_chacha::ChaCha8Rng;

use crate::error::HostError;
use crate::input::InputBatch;
use crate::loss::Target;
use crate::network::NetworkBuilder;

/// A learning task: the network that learns it and its batches with what the readout is
/// compared with. [`crate::train::Trainer::fit`] trains any task.
pub trait Task {
    /// The network to train (built with its initial weights by [`NetworkBuilder::build`]).
    fn network(&self) -> NetworkBuilder;

    /// A training batch drawn from `rng`: its input and its target.
    fn batch(&mut self, rng: &mut ChaCha8Rng) -> Result<(InputBatch, Target), HostError>;
}
