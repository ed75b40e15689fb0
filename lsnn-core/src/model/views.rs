//! Zero-copy views that decode little-endian values from model bytes on access.

use crate::readout::WeightSource;
use crate::synapse::Synapses;

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

/// Synapses read in place from a matrix section of a model (see the format in
/// [`crate::model`]); implements [`Synapses<f32>`] for the cell.
///
/// Built by [`crate::model::Model::parse`] after validation. [`Synapses::for_each_outgoing`]
/// is total: a presynaptic index out of range has no synapses.
#[derive(Clone, Copy, Debug)]
pub struct ModelSynapses<'a> {
    n_pre: usize,
    n_post: usize,
    offsets: &'a [u8],
    targets: &'a [u8],
    delays: &'a [u8],
    weights: &'a [u8],
}

impl<'a> ModelSynapses<'a> {
    pub(super) fn from_parts(
        n_pre: usize,
        n_post: usize,
        offsets: &'a [u8],
        targets: &'a [u8],
        delays: &'a [u8],
        weights: &'a [u8],
    ) -> Self {
        ModelSynapses {
            n_pre,
            n_post,
            offsets,
            targets,
            delays,
            weights,
        }
    }

    /// Number of synapses.
    pub fn nnz(&self) -> usize {
        self.delays.len()
    }

    /// The index range of the synapses of presynaptic neuron `pre` (`None` out of range).
    pub fn row(&self, pre: usize) -> Option<core::ops::Range<usize>> {
        let start = super::read_u32(self.offsets, pre.checked_mul(4)?)? as usize;
        let end = super::read_u32(self.offsets, pre.checked_add(1)?.checked_mul(4)?)? as usize;
        (start <= end && end <= self.nnz()).then_some(start..end)
    }

    /// Synapse `k` as `(target, delay, weight)`, or `None` past the end.
    pub fn synapse(&self, k: usize) -> Option<(usize, usize, f32)> {
        let target = super::read_u16(self.targets, k.checked_mul(2)?)?;
        let delay = *self.delays.get(k)?;
        let weight = super::read_f32(self.weights, k.checked_mul(4)?)?;
        Some((usize::from(target), usize::from(delay), weight))
    }
}

impl Synapses<f32> for ModelSynapses<'_> {
    fn n_pre(&self) -> usize {
        self.n_pre
    }

    fn n_post(&self) -> usize {
        self.n_post
    }

    #[inline]
    fn for_each_outgoing(&self, pre: usize, mut f: impl FnMut(usize, usize, f32)) {
        let Some(range) = self.row(pre) else { return };
        // `row` bounds the range by nnz; saturation and `get` keep this total regardless.
        let targets = self
            .targets
            .get(range.start.saturating_mul(2)..range.end.saturating_mul(2));
        let delays = self.delays.get(range.clone());
        let weights = self
            .weights
            .get(range.start.saturating_mul(4)..range.end.saturating_mul(4));
        let (Some(targets), Some(delays), Some(weights)) = (targets, delays, weights) else {
            return;
        };
        for ((t, &d), w) in targets
            .chunks_exact(2)
            .zip(delays)
            .zip(weights.chunks_exact(4))
        {
            f(
                usize::from(u16::from_le_bytes([t[0], t[1]])),
                usize::from(d),
                decode_f32(w),
            );
        }
    }
}

/// Decodes a 4-byte chunk (callers pass `chunks_exact(4)` items).
#[inline(always)]
fn decode_f32(w: &[u8]) -> f32 {
    f32::from_le_bytes([w[0], w[1], w[2], w[3]])
}
