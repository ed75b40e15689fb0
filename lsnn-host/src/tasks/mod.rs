//! The tutorial tasks: data generators and their error measures.
//!
//! - [`store_recall`]: the store-recall task of `tutorial_storerecall_with_LSNN.py`.
//! - [`smnist`]: the sequential-MNIST input encoding of `tutorial_sequential_mnist_with_LSNN.py`.

pub mod smnist;
pub mod store_recall;

/// What can go wrong when generating task data or scoring a network's answers.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// A task parameter is out of its range.
    #[error("invalid {task} parameter {name}: {message}")]
    InvalidParam {
        /// The task (e.g. "store-recall").
        task: &'static str,
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The rejection sampler found no valid sequence in its budget of attempts: the parameters
    /// make valid sequences too rare (e.g. a very long sequence with frequent store / recall).
    #[error(
        "{task}: no valid sequence after {attempts} attempts; valid sequences are too rare \
         with these parameters (shorten seq_len or raise seq_delay)"
    )]
    TooManyRejections {
        /// The task.
        task: &'static str,
        /// The attempts made for one sequence.
        attempts: usize,
    },
    /// An array does not have the shape the task's data asks for.
    #[error("{task}: {what} has shape {got:?}, expected {expected:?}")]
    Shape {
        /// The task.
        task: &'static str,
        /// Which array.
        what: &'static str,
        /// Its shape.
        got: Vec<usize>,
        /// The expected shape.
        expected: Vec<usize>,
    },
}
