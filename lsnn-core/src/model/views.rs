//! Zero-copy views that decode little-endian values from model bytes on access.

use crate::readout::WeightSource;
use crate::state::Accumulator;
use crate::synapse::Synapses;
use crate::unchecked::{CheckedRows, DelayRing};

use super::WeightKind;

/// A sequence of little-endian `f32` inside model bytes (any alignment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeF32Slice<'a> {
    bytes: &'a [u8],
}

impl<'a> LeF32Slice<'a> {
    /// Views `bytes` as `f32`s; `None` unless the length is a multiple of 4.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() % 4 == 0).then_some(LeF32Slice { bytes })
    }

    /// Number of floats.
    pub fn len(&self) -> usize {
        self.bytes.len() / 4
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Float `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<f32> {
        super::read_f32(self.bytes, i.checked_mul(4)?)
    }

    /// All floats in order.
    pub fn iter(&self) -> impl Iterator<Item = f32> + 'a {
        self.bytes.chunks_exact(4).map(decode_f32)
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl WeightSource<f32> for LeF32Slice<'_> {
    fn len(&self) -> usize {
        LeF32Slice::len(self)
    }

    #[inline]
    fn for_each_in(&self, start: usize, n: usize, mut f: impl FnMut(usize, f32)) {
        let end = start.saturating_add(n).min(LeF32Slice::len(self));
        if let Some(part) = self
            .bytes
            .get(start.saturating_mul(4)..end.saturating_mul(4))
        {
            for (k, w) in part.chunks_exact(4).enumerate() {
                f(k, decode_f32(w));
            }
        }
    }
}

/// Weights of any [`WeightKind`] inside model bytes: `f32` as stored, or integers that read as
/// `scale * q` (rounded to f32). The readout's weights and bias use it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeWeights<'a> {
    bytes: &'a [u8],
    kind: WeightKind,
    scale: f32,
}

impl<'a> LeWeights<'a> {
    /// Views `bytes` as weights of `kind` (`None` unless the length is a multiple of the width).
    pub fn new(bytes: &'a [u8], kind: WeightKind, scale: f32) -> Option<Self> {
        (bytes.len() % kind.width() == 0).then_some(LeWeights { bytes, kind, scale })
    }

    /// The stored kind.
    pub fn kind(&self) -> WeightKind {
        self.kind
    }

    /// The per-matrix scale (1 for f32).
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Number of weights.
    pub fn len(&self) -> usize {
        self.bytes.len() / self.kind.width()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Weight `i` as f32, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<f32> {
        let w = self.kind.width();
        let at = i.checked_mul(w)?;
        let b = self.bytes.get(at..at.checked_add(w)?)?;
        Some(self.decode(b))
    }

    /// The stored integer `q` of weight `i` (`None` for f32 weights or past the end).
    pub fn raw(&self, i: usize) -> Option<i32> {
        let w = self.kind.width();
        let at = i.checked_mul(w)?;
        let b = self.bytes.get(at..at.checked_add(w)?)?;
        decode_int(self.kind, b)
    }

    /// All weights in order, as f32.
    pub fn iter(&self) -> impl Iterator<Item = f32> + 'a {
        let this = *self;
        self.bytes
            .chunks_exact(self.kind.width())
            .map(move |b| this.decode(b))
    }

    #[inline(always)]
    fn decode(&self, b: &[u8]) -> f32 {
        match decode_int(self.kind, b) {
            Some(q) => self.scale * q as f32,
            None => decode_f32(b),
        }
    }
}

impl WeightSource<f32> for LeWeights<'_> {
    fn len(&self) -> usize {
        LeWeights::len(self)
    }

    #[inline]
    fn for_each_in(&self, start: usize, n: usize, mut f: impl FnMut(usize, f32)) {
        let mut k = 0;
        self.each_in(start, n, |w| {
            f(k, w);
            k += 1;
        });
    }

    #[inline(always)]
    fn mul_add_into(&self, start: usize, a: f32, y: &mut [f32]) {
        // The weights `start..start + y.len()` (fewer at the end; zip stops there).
        let n = y.len();
        let from = |width: usize| self.part(start, n, width).unwrap_or_default();
        let scale = self.scale;
        match self.kind {
            WeightKind::F32 => {
                for (y, b) in y.iter_mut().zip(from(4).chunks_exact(4)) {
                    *y += a * decode_f32(b);
                }
            }
            WeightKind::I16 => {
                for (y, b) in y.iter_mut().zip(from(2).chunks_exact(2)) {
                    *y += a * (scale * f32::from(i16::from_le_bytes([b[0], b[1]])));
                }
            }
            WeightKind::I8 => {
                for (y, &q) in y.iter_mut().zip(from(1)) {
                    *y += a * (scale * f32::from(q as i8));
                }
            }
        }
    }

    #[inline(always)]
    fn add_to(&self, x: &[f32], out: &mut [f32]) {
        // (The zip below stops at the end of `out`, `x` or the source.)
        let part = self.bytes;
        let scale = self.scale;
        let pairs = out.iter_mut().zip(x);
        match self.kind {
            WeightKind::F32 => {
                for ((o, &x), b) in pairs.zip(part.chunks_exact(4)) {
                    *o = x + decode_f32(b);
                }
            }
            WeightKind::I16 => {
                for ((o, &x), b) in pairs.zip(part.chunks_exact(2)) {
                    *o = x + scale * f32::from(i16::from_le_bytes([b[0], b[1]]));
                }
            }
            WeightKind::I8 => {
                for ((o, &x), &q) in pairs.zip(part) {
                    *o = x + scale * f32::from(q as i8);
                }
            }
        }
    }
}

impl<'a> LeWeights<'a> {
    /// The bytes of weights `start..start + n` (fewer at the end; `None` when `start` is past
    /// it), `width` bytes each: all `n` when the source holds them, so that a loop over a whole
    /// row (a readout row) knows its length.
    #[inline(always)]
    fn part(&self, start: usize, n: usize, width: usize) -> Option<&'a [u8]> {
        let at = start.saturating_mul(width);
        let row = at
            .checked_add(n.saturating_mul(width))
            .and_then(|end| self.bytes.get(at..end));
        row.or_else(|| self.bytes.get(at..))
    }

    /// Calls `f(w)` for the weights `start..start + n` in order (stopping early at the end),
    /// decoded as [`LeWeights::get`] does, with the kind decided once.
    #[inline(always)]
    fn each_in(&self, start: usize, n: usize, mut f: impl FnMut(f32)) {
        let Some(part) = self.part(start, n, self.kind.width()) else {
            return;
        };
        let scale = self.scale;
        match self.kind {
            WeightKind::F32 => part.chunks_exact(4).for_each(|b| f(decode_f32(b))),
            WeightKind::I16 => part
                .chunks_exact(2)
                .for_each(|b| f(scale * f32::from(i16::from_le_bytes([b[0], b[1]])))),
            WeightKind::I8 => part.iter().for_each(|&q| f(scale * f32::from(q as i8))),
        }
    }
}

/// Synapses read in place from a matrix section of a model (see the format in
/// [`crate::model`]); implements [`Synapses<f32>`] for the float cell (integer weights read as
/// `scale * q`, rounded to f32).
///
/// Built by [`crate::model::Model::parse`] after validation, with the rows checked once more
/// by [`CheckedRows`] (whose bounds delivery relies on). [`Synapses::for_each_outgoing`] is
/// total: a presynaptic index out of range has no synapses.
#[derive(Clone, Copy, Debug)]
pub struct ModelSynapses<'a> {
    rows: CheckedRows<'a>,
    weights: LeWeights<'a>,
}

impl<'a> ModelSynapses<'a> {
    /// `weights` holds whole weights of `kind` (the parser cut it at `nnz * kind.width()`).
    pub(super) fn from_parts(
        rows: CheckedRows<'a>,
        kind: WeightKind,
        scale: f32,
        weights: &'a [u8],
    ) -> Self {
        let weights = LeWeights {
            bytes: weights,
            kind,
            scale,
        };
        ModelSynapses { rows, weights }
    }

    /// Number of synapses.
    pub fn nnz(&self) -> usize {
        self.rows.nnz()
    }

    /// How the weights are stored.
    pub fn kind(&self) -> WeightKind {
        self.weights.kind
    }

    /// The matrix scale: a weight is `scale * q` (1 for f32 weights).
    pub fn scale(&self) -> f32 {
        self.weights.scale
    }

    /// The index range of the synapses of presynaptic neuron `pre` (`None` out of range).
    pub fn row(&self, pre: usize) -> Option<core::ops::Range<usize>> {
        self.rows.row(pre)
    }

    /// Synapse `k` as `(target, delay, weight as f32)`, or `None` past the end.
    pub fn synapse(&self, k: usize) -> Option<(usize, usize, f32)> {
        let (target, delay) = self.rows.synapse(k)?;
        Some((target, delay, self.weights.get(k)?))
    }

    /// The stored integer of synapse `k` (`None` for f32 weights or past the end).
    pub fn raw_weight(&self, k: usize) -> Option<i32> {
        self.weights.raw(k)
    }

    /// Calls `f(target, delay, q)` with the stored integer `q` of every outgoing synapse of
    /// `pre` (nothing for f32 weights).
    #[inline(always)]
    pub fn for_each_outgoing_raw(&self, pre: usize, mut f: impl FnMut(usize, usize, i32)) {
        if self.kind().is_integer() {
            self.rows.for_each_in_row(pre, |t, d, k| {
                if let Some(q) = self.raw_weight(k) {
                    f(t, d, q);
                }
            });
        }
    }

    /// Sum of `|q|` over all synapses (0 for f32 weights).
    pub fn raw_abs_sum(&self) -> u64 {
        (0..self.nnz())
            .filter_map(|k| self.raw_weight(k))
            .map(|q| u64::from(q.unsigned_abs()))
            .sum()
    }
}

impl Synapses<f32> for ModelSynapses<'_> {
    fn n_pre(&self) -> usize {
        self.rows.n_pre()
    }

    fn n_post(&self) -> usize {
        self.rows.n_post()
    }

    #[inline]
    fn for_each_outgoing(&self, pre: usize, mut f: impl FnMut(usize, usize, f32)) {
        self.rows.for_each_in_row(pre, |t, d, k| {
            if let Some(w) = self.weights.get(k) {
                f(t, d, w);
            }
        });
    }

    #[inline(always)]
    fn deliver<R>(&self, pre: usize, ring: &mut DelayRing<'_, R, f32>, value: impl Fn(f32) -> f32)
    where
        f32: Accumulator<R>,
    {
        let LeWeights {
            bytes: weights,
            kind,
            scale,
        } = self.weights;
        let rows = &self.rows;
        match kind {
            WeightKind::F32 => {
                ring.add_row::<4>(rows, pre, weights, |b| value(f32::from_le_bytes(*b)))
            }
            WeightKind::I16 => ring.add_row::<2>(rows, pre, weights, |b| {
                value(scale * f32::from(i16::from_le_bytes(*b)))
            }),
            WeightKind::I8 => {
                ring.add_row::<1>(rows, pre, weights, |b| value(scale * f32::from(b[0] as i8)))
            }
        }
    }
}

/// The synapses of an integer matrix as the integer cell adds them: `q * multiplier` (see
/// [`crate::model::IntegerScales`]). Built by [`crate::model::Model::integer_cell`], which has
/// checked that no product (nor any sum of them) overflows an `i32`.
#[derive(Clone, Copy, Debug)]
pub struct IntegerSynapses<'a> {
    syn: ModelSynapses<'a>,
    multiplier: i32,
}

impl<'a> IntegerSynapses<'a> {
    pub(super) fn new(syn: ModelSynapses<'a>, multiplier: i32) -> Self {
        IntegerSynapses { syn, multiplier }
    }

    /// The stored matrix.
    pub fn synapses(&self) -> &ModelSynapses<'a> {
        &self.syn
    }

    /// The integer every stored weight is multiplied by.
    pub fn multiplier(&self) -> i32 {
        self.multiplier
    }
}

impl Synapses<i32> for IntegerSynapses<'_> {
    fn n_pre(&self) -> usize {
        self.syn.n_pre()
    }

    fn n_post(&self) -> usize {
        self.syn.n_post()
    }

    #[inline(always)]
    fn for_each_outgoing(&self, pre: usize, mut f: impl FnMut(usize, usize, i32)) {
        let m = self.multiplier;
        self.syn
            .for_each_outgoing_raw(pre, |t, d, q| f(t, d, q.wrapping_mul(m)));
    }

    #[inline(always)]
    fn deliver<R>(&self, pre: usize, ring: &mut DelayRing<'_, R, i32>, value: impl Fn(i32) -> i32)
    where
        i32: Accumulator<R>,
    {
        let (rows, weights, m) = (&self.syn.rows, self.syn.weights.bytes, self.multiplier);
        match self.syn.kind() {
            WeightKind::F32 => {}
            WeightKind::I16 => ring.add_row::<2>(rows, pre, weights, |b| {
                value(i32::from(i16::from_le_bytes(*b)).wrapping_mul(m))
            }),
            WeightKind::I8 => ring.add_row::<1>(rows, pre, weights, |b| {
                value(i32::from(b[0] as i8).wrapping_mul(m))
            }),
        }
    }
}

/// Decodes a 4-byte chunk (callers pass `chunks_exact(4)` items).
#[inline(always)]
fn decode_f32(w: &[u8]) -> f32 {
    f32::from_le_bytes([w[0], w[1], w[2], w[3]])
}

/// The stored integer of a weight of `kind` (callers pass `kind.width()` bytes).
#[inline(always)]
fn decode_int(kind: WeightKind, b: &[u8]) -> Option<i32> {
    match kind {
        WeightKind::F32 => None,
        WeightKind::I16 => Some(i32::from(i16::from_le_bytes([b[0], b[1]]))),
        WeightKind::I8 => Some(i32::from(b[0] as i8)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    /// `mul_add_into`, `for_each_in` and `add_to` are the plain loops over `LeWeights::get`, bit
    /// for bit, for every kind, for whole rows, rows cut by the end of the source and starts
    /// past it.
    #[test]
    fn weight_rows_are_the_plain_loops() {
        let q: Vec<i32> = (0..23).map(|k| (k * 37 % 29) - 14).collect();
        let bytes = |kind: WeightKind| -> Vec<u8> {
            match kind {
                WeightKind::F32 => q
                    .iter()
                    .flat_map(|&x| (x as f32 * 0.37).to_le_bytes())
                    .collect(),
                WeightKind::I16 => q
                    .iter()
                    .flat_map(|&x| ((x * 999) as i16).to_le_bytes())
                    .collect(),
                WeightKind::I8 => q.iter().map(|&x| x as i8 as u8).collect(),
            }
        };
        for kind in [WeightKind::F32, WeightKind::I16, WeightKind::I8] {
            let b = bytes(kind);
            let w = LeWeights::new(&b, kind, 0.013).unwrap();
            for start in [0usize, 5, 17, 20, 22, 23, 30, usize::MAX / 2] {
                for n in [0usize, 1, 3, 6] {
                    let a = 0.71f32;
                    let mut got: Vec<f32> = (0..n).map(|k| k as f32 * 0.5 - 1.0).collect();
                    let mut want = got.clone();
                    w.mul_add_into(start, a, &mut got);
                    for (k, y) in want.iter_mut().enumerate() {
                        if let Some(x) = start.checked_add(k).and_then(|i| w.get(i)) {
                            *y += a * x;
                        }
                    }
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{kind:?} start {start} n {n}");
                }
                for n in [0usize, 1, 3, 6, usize::MAX / 2 + 1, usize::MAX] {
                    let mut got = Vec::new();
                    w.for_each_in(start, n, |k, x| got.push((k, x.to_bits())));
                    let want: Vec<(usize, u32)> = (0..n)
                        .map_while(|k| Some((k, w.get(start.checked_add(k)?)?.to_bits())))
                        .collect();
                    assert_eq!(got, want, "{kind:?} for_each_in start {start} n {n}");
                }
            }
            let x: Vec<f32> = (0..30).map(|k| k as f32 * 0.25).collect();
            let mut out = [0f32; 30];
            w.add_to(&x, &mut out);
            for (k, &o) in out.iter().enumerate() {
                let want = w.get(k).map_or(0.0, |b| x[k] + b);
                assert_eq!(o.to_bits(), want.to_bits(), "{kind:?} bias {k}");
            }
        }
    }
}
