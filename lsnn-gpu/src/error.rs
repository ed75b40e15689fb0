//! The crate's errors.

/// What can go wrong on the GPU path.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No CUDA device (or no driver): the caller should fall back or skip.
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// A CUDA call failed.
    #[error("CUDA error in {what}: {source}")]
    Cuda {
        /// The call or kernel.
        what: String,
        /// CUDA's error.
        source: cust::error::CudaError,
    },
    /// A size the kernels cannot handle, or arrays that do not fit together.
    #[error("{what}: {why}")]
    Shape {
        /// The array or dimension.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A feature of the host trainer the GPU path does not have.
    #[error("not supported on the GPU: {0}")]
    Unsupported(String),
}

impl GpuError {
    pub(crate) fn shape(what: &'static str, why: impl Into<String>) -> Self {
        GpuError::Shape {
            what,
            why: why.into(),
        }
    }
}

/// Attaches the name of the call to a CUDA error.
pub(crate) trait CudaContext<T> {
    fn ctx(self, what: &str) -> Result<T, GpuError>;
}

impl<T> CudaContext<T> for cust::error::CudaResult<T> {
    fn ctx(self, what: &str) -> Result<T, GpuError> {
        self.map_err(|source| GpuError::Cuda {
            what: what.to_string(),
            source,
        })
    }
}
