//! The common unit of the integer cell's delay ring.
//!
//! An input spike through synapse `q` of `w_in` delivers the current `s_in * q`; a recurrent
//! spike (value `1/dt`) through `q` of `w_rec` delivers `s_rec / dt * q`. Both land in the same
//! ring entry, so the ring needs one unit for both: a power of two `unit` of which both
//! `s_in` and `s_rec / dt` are exact integer multiples `m_in`, `m_rec`. Then the ring adds the
//! integers `q * m_in` and `q * m_rec` exactly, and a ring entry `acc` is the current
//! `acc * unit` — the exact sum of the dequantised weights, rounded once to f32 (not at all
//! while `|acc| < 2^24`). Alternatives were worse for a microcontroller: one scale shared by
//! both matrices wastes the resolution of the one with the smaller weights, and two rings (one
//! per matrix) double the ring, which is most of the cell's RAM (`D N` entries).
//!
//! Any two finite positive f32 scales have such a unit (every f32 is an odd integer times a
//! power of two), but the multipliers may be huge; [`IntegerScales::derive`] accepts them when
//! the sum of `|q| * m` over all synapses of both matrices fits in an `i32`, which bounds every
//! ring entry (a synapse adds to a given entry at most once). The writer
//! ([`IntegerScales::candidate`]) rounds the natural scales `max|w| / q_max` up to a few
//! significant bits so that this holds with as much precision as possible.

use super::views::ModelSynapses;
use crate::CoreError;

/// How the integer cell scales its ring: `unit` (a power of two) and the integer multipliers
/// of the two matrices (`s_in = m_in * unit`, `s_rec * spike = m_rec * unit`, exactly).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntegerScales {
    /// The current of one ring unit.
    pub unit: f32,
    /// Multiplier of the stored input weights.
    pub m_in: i32,
    /// Multiplier of the stored recurrent weights (the spike value `1/dt` included).
    pub m_rec: i32,
}

/// `x = mantissa * 2^exp` for a finite `x > 0` (exact, integer arithmetic only).
fn f32_parts(x: f32) -> Option<(u64, i32)> {
    if !(x.is_finite() && x > 0.0) {
        return None;
    }
    let bits = x.to_bits();
    let biased = ((bits >> 23) & 0xff) as i32;
    let fraction = u64::from(bits & 0x7f_ffff);
    Some(if biased == 0 {
        (fraction, -149)
    } else {
        (fraction | (1 << 23), biased - 150)
    })
}

/// `mantissa * 2^exp` as `odd * 2^exp'`.
fn to_odd((mantissa, exp): (u64, i32)) -> Option<(u64, i32)> {
    (mantissa != 0).then(|| {
        let tz = mantissa.trailing_zeros();
        (mantissa >> tz, exp + tz as i32)
    })
}

/// `x = odd * 2^exp` for a finite `x > 0` (exact).
fn odd_and_exponent(x: f64) -> Option<(u64, i32)> {
    if !(x.is_finite() && x > 0.0) {
        return None;
    }
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mantissa, exp) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    let tz = mantissa.trailing_zeros();
    Some((mantissa >> tz, exp + tz as i32))
}

/// `2^e` as a normal f32, if it is one.
fn pow2_f32(e: i32) -> Option<f32> {
    (-126..=127)
        .contains(&e)
        .then(|| f32::from_bits(((e + 127) as u32) << 23))
}

const INCOMMENSURATE: CoreError = CoreError::Matrix {
    matrix: "w_in/w_rec",
    why: "the scales of w_in and w_rec x 1/dt have no common power-of-two unit within i32",
};

impl IntegerScales {
    /// Derives the unit and the multipliers from the scales of `w_in` and `w_rec` (both of
    /// integer kinds) and the spike value `1/dt`, and checks that no ring entry can overflow.
    pub fn derive(
        w_in: &ModelSynapses<'_>,
        w_rec: &ModelSynapses<'_>,
        spike: f32,
    ) -> Result<Self, CoreError> {
        for (syn, matrix) in [(w_in, "w_in"), (w_rec, "w_rec")] {
            if !syn.kind().is_integer() {
                return Err(CoreError::Matrix {
                    matrix,
                    why: "the integer cell needs integer weights (i16 or i8)",
                });
            }
        }
        let scales = Self::from_scales(w_in.scale(), w_rec.scale(), spike)?;
        let total = w_in
            .raw_abs_sum()
            .checked_mul(scales.m_in as u64)
            .zip(w_rec.raw_abs_sum().checked_mul(scales.m_rec as u64))
            .and_then(|(a, b)| a.checked_add(b));
        if total.is_none_or(|t| t > i32::MAX as u64) {
            return Err(CoreError::Matrix {
                matrix: "w_in/w_rec",
                why: "the sum of |q| x multiplier over all synapses exceeds i32::MAX",
            });
        }
        Ok(scales)
    }

    /// The unit and multipliers of two scales (no overflow check of the weights).
    pub fn from_scales(s_in: f32, s_rec: f32, spike: f32) -> Result<Self, CoreError> {
        // s_in and s_rec * spike exactly, as odd integers times powers of two (the product of
        // two 24-bit mantissas fits in 48 bits; no float arithmetic, which a Cortex-M4F would
        // have to emulate in f64).
        let a = f32_parts(s_in).and_then(to_odd);
        let b = f32_parts(s_rec)
            .zip(f32_parts(spike))
            .and_then(|((m1, e1), (m2, e2))| to_odd((m1 * m2, e1 + e2)));
        let (Some((odd_a, exp_a)), Some((odd_b, exp_b))) = (a, b) else {
            return Err(INCOMMENSURATE);
        };
        let e = exp_a.min(exp_b);
        let multiplier = |odd: u64, exp: i32| {
            u32::try_from(exp - e)
                .ok()
                .filter(|&shift| shift < 32)
                .map(|shift| u128::from(odd) << shift)
                .and_then(|m| i32::try_from(m).ok())
        };
        let (Some(m_in), Some(m_rec), Some(unit)) = (
            multiplier(odd_a, exp_a),
            multiplier(odd_b, exp_b),
            pow2_f32(e),
        ) else {
            return Err(INCOMMENSURATE);
        };
        Ok(IntegerScales { unit, m_in, m_rec })
    }

    /// The scales the writer stores for weights with largest magnitudes `max_in`, `max_rec`
    /// (effective weights) quantised to `|q| <= q_max`, on the ring unit `2^e`: each natural
    /// scale `max / q_max` rounded UP to a multiple of the unit (so `|w| / scale <= q_max`
    /// still; `s_rec` such that `s_rec * spike` is that multiple). Returns `(s_in, s_rec)`, or
    /// `None` when `2^e` or a scale is not a normal f32 or a multiplier reaches 2^24. A zero
    /// matrix borrows the other's scale.
    ///
    /// Needs a spike value that is a power of two (`dt` = 1, 0.5, 2, ... ms), so that
    /// `s_rec = m_rec * unit / spike` is exact: see [`IntegerScales::check_spike`]. The writer
    /// starts at `e` = [`IntegerScales::finest_exponent`] and coarsens until the quantised
    /// weights pass [`IntegerScales::derive`].
    pub fn candidate(
        max_in: f32,
        max_rec: f32,
        q_max: i32,
        spike: f32,
        e: i32,
    ) -> Option<(f32, f32)> {
        let spike_exp = Self::check_spike(spike).ok()?;
        let (a, b) = Self::natural(max_in, max_rec, q_max, spike);
        let unit = pow2_f32(e)?;
        let unit = f64::from(unit);
        let m_a = libm::ceil(a / unit);
        let m_b = libm::ceil(b / unit);
        if m_a >= 16_777_216.0 || m_b >= 16_777_216.0 {
            return None;
        }
        let s_in = m_a * unit;
        let s_rec = libm::ldexp(m_b * unit, -spike_exp);
        let (s_in32, s_rec32) = (s_in as f32, s_rec as f32);
        (f64::from(s_in32) == s_in
            && f64::from(s_rec32) == s_rec
            && s_in32.is_normal()
            && s_rec32.is_normal())
        .then_some((s_in32, s_rec32))
    }

    /// The exponent of the finest unit worth trying: 16 significant bits of the smaller
    /// natural scale.
    pub fn finest_exponent(max_in: f32, max_rec: f32, q_max: i32, spike: f32) -> i32 {
        let (a, b) = Self::natural(max_in, max_rec, q_max, spike);
        (libm::floor(libm::log2(a.min(b))) as i32 - 15).max(-126)
    }

    /// The exponent of the spike value `1/dt`, which must be a power of two for integer
    /// weights.
    pub fn check_spike(spike: f32) -> Result<i32, CoreError> {
        odd_and_exponent(f64::from(spike))
            .filter(|&(odd, _)| odd == 1)
            .map(|(_, e)| e)
            .ok_or(CoreError::Parameter {
                what: "dt",
                why: "integer weights need 1/dt to be a power of two (dt = 1 ms, 0.5 ms, ...)",
            })
    }

    /// The natural scales `max_in / q_max` and `max_rec * spike / q_max` (a zero one borrows
    /// the other; 1 for both when both are zero).
    fn natural(max_in: f32, max_rec: f32, q_max: i32, spike: f32) -> (f64, f64) {
        let q = f64::from(q_max.max(1));
        let nat = |max: f32| (max.is_finite() && max > 0.0).then(|| f64::from(max) / q);
        match (nat(max_in), nat(max_rec).map(|x| x * f64::from(spike))) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) => (a, a),
            (None, Some(b)) => (b, b),
            (None, None) => (1.0, 1.0),
        }
    }
}
