//! The floating-point types the dynamics run in (f32 on devices, f64 for reference checks).

use core::fmt::Debug;
use num_traits::Float;

/// A float type the LSNN equations can be evaluated in.
pub trait Real: Float + Debug + Default + Send + Sync + 'static {
    /// Converts a constant written in f64 (rounded to nearest for f32).
    fn of(x: f64) -> Self;
    /// Widens to f64 (exact).
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}
