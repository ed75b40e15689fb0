//! The one error type of `lsnn-core`.

/// Everything that can go wrong in `lsnn-core`; each variant says what and where.
#[allow(missing_docs)] // the fields are spelled out by each message
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A buffer or array has the wrong length.
    #[error("{what}: expected length {expected}, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A size parameter is out of its allowed range.
    #[error("{what} = {value} is out of range ({allowed})")]
    Size {
        what: &'static str,
        value: usize,
        allowed: &'static str,
    },
    /// A parameter value is not usable (not finite, not positive, ...).
    #[error("parameter {what} is invalid: {why}")]
    Parameter {
        what: &'static str,
        why: &'static str,
    },
    /// A synapse points outside the network or uses a delay >= n_delay.
    #[error("synapse {index} of presynaptic neuron {pre} in {matrix}: {why}")]
    Synapse {
        matrix: &'static str,
        pre: usize,
        index: usize,
        why: &'static str,
    },
    /// The caller's fixed storage cannot hold the requested network.
    #[error("{what}: capacity {capacity} is smaller than the required {required}")]
    Capacity {
        what: &'static str,
        capacity: usize,
        required: usize,
    },
}
