//! The floating-point types the dynamics run in (f32 on devices, f64 for reference checks).

use core::fmt::Debug;
use num_traits::Float;

/// A float type the LSNN equations can be evaluated in.
pub trait Real: Float + Debug + Default + Send + Sync + 'static {
    /// Converts a constant written in f64 (rounded to nearest for f32).
    fn of(x: f64) -> Self;
    /// Widens to f64 (exact).
    fn to_f64(self) -> f64;
    /// Converts an integer, rounding to nearest (one `vcvt` on a Cortex-M4F for f32).
    fn from_i32(x: i32) -> Self;
    /// The IEEE-754 bit pattern, zero-extended.
    fn to_bits_u64(self) -> u64;
    /// The sign bit of [`Real::to_bits_u64`].
    const SIGN_BIT: u64;
}

impl Real for f32 {
    const SIGN_BIT: u64 = 1 << 31;
    #[inline(always)]
    fn to_bits_u64(self) -> u64 {
        u64::from(self.to_bits())
    }
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_i32(x: i32) -> Self {
        x as f32
    }
}

impl Real for f64 {
    const SIGN_BIT: u64 = 1 << 63;
    #[inline(always)]
    fn to_bits_u64(self) -> u64 {
        self.to_bits()
    }
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_i32(x: i32) -> Self {
        f64::from(x)
    }
}
