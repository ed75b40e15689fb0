//! What one update step is told: the optimiser of a parameter set and the settings of a step.
//! Both the launcher ([`crate::launch`]) and the trainer ([`crate::trainer`]) read them.

/// The optimiser of a parameter set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// TensorFlow 1's Adam (moments kept in f64 like the host's).
    Adam {
        /// beta1.
        beta1: f64,
        /// beta2.
        beta2: f64,
        /// epsilon.
        epsilon: f64,
    },
    /// Plain gradient descent.
    Sgd,
}

impl OptimizerKind {
    /// Adam with TensorFlow's defaults.
    pub fn adam() -> Self {
        OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

/// One update step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepConfig {
    /// Learning rate.
    pub lr: f64,
    /// Number of this update (1 for the first): Adam's bias correction.
    pub step: u64,
    /// DEEP R's `(l1, temperature)` when matrices are rewired.
    pub rewiring: Option<(f64, f64)>,
    /// Key of the DEEP R random numbers of this step (Philox).
    pub key: u64,
}
