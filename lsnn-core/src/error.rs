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
    /// A per-neuron parameter (e.g. `tau`, `thr`) of neuron `index` is not usable.
    #[error("neuron {index}: parameter {what} is invalid: {why}")]
    NeuronParameter {
        index: usize,
        what: &'static str,
        why: &'static str,
    },
    /// Model bytes: the buffer does not start with the model magic `b"LSNNMDL\0"`.
    #[error("not an LSNN model: bad magic bytes")]
    BadMagic,
    /// Model bytes: a format version this build cannot read.
    #[error("model format version {version} is not supported (this build reads version 1)")]
    UnsupportedVersion { version: u16 },
    /// Model bytes: the buffer ends before `what` does.
    #[error("model truncated: {what} needs {needed} bytes, the buffer has {got}")]
    Truncated {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    /// Model bytes: the trailing CRC-32 does not match the contents.
    #[error("model checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadChecksum { stored: u32, computed: u32 },
    /// Model bytes: a header field or framing rule is violated.
    #[error("model {what}: {why}")]
    Format {
        what: &'static str,
        why: &'static str,
    },
    /// Model bytes: section `id` is misplaced, duplicated or missing.
    #[error("model section {id}: {why}")]
    Section { id: u16, why: &'static str },
    /// Model bytes: section `id` does not have the length the header sizes imply.
    #[error("model section {id}: expected length {expected}, got {got}")]
    SectionLength {
        id: u16,
        expected: usize,
        got: usize,
    },
    /// Model bytes: section `id` is marked required but this version does not know it.
    #[error("model section {id} is required but not supported by this version")]
    UnsupportedSection { id: u16 },
    /// Model bytes: a weight matrix uses a weight kind this version cannot decode.
    #[error("{matrix}: weight kind {kind} is not supported (0 = f32, 1 = i16, 2 = i8)")]
    UnsupportedWeightKind { matrix: &'static str, kind: u8 },
    /// Model bytes: the framing of a weight matrix (kind, scale, padding) is invalid.
    #[error("{matrix}: {why}")]
    Matrix {
        matrix: &'static str,
        why: &'static str,
    },
    /// Model bytes: the CSR row offsets of a matrix are inconsistent at row `pre`.
    #[error("{matrix} CSR offsets at presynaptic neuron {pre}: {why}")]
    CsrOffsets {
        matrix: &'static str,
        pre: usize,
        why: &'static str,
    },
}

/// `Ok` if a buffer has the length `what` needs, else [`CoreError::Length`].
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), CoreError> {
    if expected == got {
        Ok(())
    } else {
        Err(CoreError::Length {
            what,
            expected,
            got,
        })
    }
}
