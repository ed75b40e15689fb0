//! The numbers the neuron equations run on: one float (the cell, a microcontroller), or `L`
//! floats side by side in SIMD lanes, one batch element each (the trainer). Every lane runs the
//! same IEEE operations in the same order as the scalar, so a lane computes the scalar's bits.

use core::ops::{Add, Div, Mul, Sub};

use crate::Real;

/// A value of the neuron equations: a [`Real`], or [`Lanes`] of them.
pub trait Value:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self>
{
    /// The float of one lane.
    type Scalar: Real;
    /// A comparison's outcome, per lane.
    type Mask: Mask;
    /// `x` in every lane, a value of the same kind as `self` (a SIMD register's value is the
    /// proof that the CPU has the instructions, so new values are made from one).
    fn splat(self, x: Self::Scalar) -> Self;
    /// `|x|` per lane.
    fn abs(self) -> Self;
    /// The larger of the two per lane, the other one where one is NaN (as `f32::max`).
    fn max(self, other: Self) -> Self;
    /// `self > other` per lane.
    fn gt(self, other: Self) -> Self::Mask;
    /// `if mask { yes } else { no }` per lane.
    fn select(mask: Self::Mask, yes: Self, no: Self) -> Self;
}

/// The outcome of a comparison of [`Value`]s, per lane.
pub trait Mask: Copy {
    /// Whether every lane is set.
    fn all(self) -> bool;
    /// `self && !other` per lane.
    fn and_not(self, other: Self) -> Self;
    /// `if self { yes } else { no }` per lane.
    fn pick(self, yes: Self, no: Self) -> Self;
}

impl<F: Real> Value for F {
    type Scalar = F;
    type Mask = bool;
    #[inline(always)]
    fn splat(self, x: F) -> F {
        x
    }
    #[inline(always)]
    fn abs(self) -> F {
        num_traits::Float::abs(self)
    }
    #[inline(always)]
    fn max(self, other: F) -> F {
        num_traits::Float::max(self, other)
    }
    #[inline(always)]
    fn gt(self, other: F) -> bool {
        self > other
    }
    #[inline(always)]
    fn select(mask: bool, yes: F, no: F) -> F {
        if mask {
            yes
        } else {
            no
        }
    }
}

impl Mask for bool {
    #[inline(always)]
    fn all(self) -> bool {
        self
    }
    #[inline(always)]
    fn and_not(self, other: bool) -> bool {
        self && !other
    }
    #[inline(always)]
    fn pick(self, yes: bool, no: bool) -> bool {
        if self {
            yes
        } else {
            no
        }
    }
}

/// `L` floats, one per lane, aligned for SIMD loads.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
pub struct Lanes<F, const L: usize>(pub [F; L]);

/// Per-lane flags of [`Lanes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneMask<const L: usize>(pub [bool; L]);

impl<F: Real, const L: usize> Lanes<F, L> {
    /// Applies `f` lane by lane.
    #[inline(always)]
    pub fn map(self, f: impl Fn(F) -> F) -> Self {
        Lanes(core::array::from_fn(|l| f(self.0[l])))
    }

    /// Applies `f` to the lanes of `self` and `other`, lane by lane.
    #[inline(always)]
    pub fn zip(self, other: Self, f: impl Fn(F, F) -> F) -> Self {
        Lanes(core::array::from_fn(|l| f(self.0[l], other.0[l])))
    }

    /// Zero in every lane.
    #[inline(always)]
    pub fn zero() -> Self {
        Lanes([F::zero(); L])
    }
}

impl<F: Real, const L: usize> Default for Lanes<F, L> {
    fn default() -> Self {
        Self::zero()
    }
}

macro_rules! lane_op {
    ($trait:ident, $method:ident, $op:tt) => {
        impl<F: Real, const L: usize> $trait for Lanes<F, L> {
            type Output = Self;
            #[inline(always)]
            fn $method(self, other: Self) -> Self {
                self.zip(other, |a, b| a $op b)
            }
        }
    };
}

lane_op!(Add, add, +);
lane_op!(Sub, sub, -);
lane_op!(Mul, mul, *);
lane_op!(Div, div, /);

impl<F: Real, const L: usize> Value for Lanes<F, L> {
    type Scalar = F;
    type Mask = LaneMask<L>;
    #[inline(always)]
    fn splat(self, x: F) -> Self {
        Lanes([x; L])
    }
    #[inline(always)]
    fn abs(self) -> Self {
        self.map(Value::abs)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        self.zip(other, Value::max)
    }
    #[inline(always)]
    fn gt(self, other: Self) -> LaneMask<L> {
        LaneMask(core::array::from_fn(|l| self.0[l] > other.0[l]))
    }
    #[inline(always)]
    fn select(mask: LaneMask<L>, yes: Self, no: Self) -> Self {
        Lanes(core::array::from_fn(|l| {
            if mask.0[l] {
                yes.0[l]
            } else {
                no.0[l]
            }
        }))
    }
}

impl<const L: usize> LaneMask<L> {
    /// Every lane `set`.
    #[inline(always)]
    pub fn splat(set: bool) -> Self {
        LaneMask([set; L])
    }

    /// Whether some lane is set.
    #[inline(always)]
    pub fn any(self) -> bool {
        self.0.iter().any(|&m| m)
    }

    /// Lane `l` is bit `l`.
    #[inline(always)]
    pub fn bits(self) -> u32 {
        self.0
            .iter()
            .enumerate()
            .fold(0, |acc, (l, &m)| acc | (u32::from(m) << l))
    }

    /// The lanes of the bits of `bits` (lane `l` is bit `l`).
    #[inline(always)]
    pub fn from_bits(bits: u32) -> Self {
        LaneMask(core::array::from_fn(|l| (bits >> l) & 1 != 0))
    }
}

impl<const L: usize> Mask for LaneMask<L> {
    #[inline(always)]
    fn all(self) -> bool {
        self.0.iter().all(|&m| m)
    }
    #[inline(always)]
    fn and_not(self, other: Self) -> Self {
        LaneMask(core::array::from_fn(|l| self.0[l] && !other.0[l]))
    }
    #[inline(always)]
    fn pick(self, yes: Self, no: Self) -> Self {
        LaneMask(core::array::from_fn(|l| {
            if self.0[l] {
                yes.0[l]
            } else {
                no.0[l]
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lane_computes_the_scalar_bits() {
        let a = [1.5f32, -0.0, f32::NAN, 3.0, f32::INFINITY, -2.0, 1e-40, 0.0];
        let b = [0.25f32, 0.0, 1.0, f32::NAN, 2.0, -2.0, 1e-40, -0.0];
        let (la, lb) = (Lanes(a), Lanes(b));
        let same = |lanes: Lanes<f32, 8>, scalar: &dyn Fn(f32, f32) -> f32| {
            for l in 0..8 {
                assert_eq!(
                    lanes.0[l].to_bits(),
                    scalar(a[l], b[l]).to_bits(),
                    "lane {l}"
                );
            }
        };
        same(la + lb, &|x, y| x + y);
        same(la - lb, &|x, y| x - y);
        same(la * lb, &|x, y| x * y);
        same(la / lb, &|x, y| x / y);
        same(la.max(lb), &|x, y| x.max(y));
        same(la.abs(), &|x, _| x.abs());
        let gt = la.gt(lb);
        same(Lanes::select(gt, la, lb), &|x, y| if x > y { x } else { y });
        assert_eq!(LaneMask::<8>::from_bits(gt.bits()), gt);
        assert!(!gt.all() && gt.any());
    }
}
