//! Sparse delayed connectivity: for each presynaptic neuron, its outgoing synapses
//! `(target, delay, weight)`, so delivering a spike costs O(fan-out).

use crate::state::Accumulator;
pub use crate::unchecked::{CheckedRows, DelayRing};
use crate::{CoreError, Real};

/// A connectivity matrix as seen by event-driven delivery.
///
/// Weights are the effective ones (already multiplied by V0, no autapses).
pub trait Synapses<F> {
    /// Number of presynaptic neurons (rows).
    fn n_pre(&self) -> usize;
    /// Number of postsynaptic neurons (columns).
    fn n_post(&self) -> usize;
    /// Calls `f(target, delay, weight)` for every outgoing synapse of `pre`.
    fn for_each_outgoing(&self, pre: usize, f: impl FnMut(usize, usize, F));

    /// Delivers a spike of `pre`: adds `value(weight)` for every outgoing synapse into `ring`.
    /// By default through [`Synapses::for_each_outgoing`]; a model's matrices, whose targets
    /// and delays were checked once, add without bounds checks.
    #[inline(always)]
    fn deliver<R>(&self, pre: usize, ring: &mut DelayRing<'_, R, F>, value: impl Fn(F) -> F)
    where
        F: Accumulator<R>,
    {
        self.for_each_outgoing(pre, |target, delay, w| ring.add(target, delay, value(w)));
    }
}

/// Checks every synapse of `syn`: targets in range, delays below `n_delay`, finite weights,
/// and (for recurrent matrices) no autapse.
pub fn validate<F: Real, S: Synapses<F>>(
    syn: &S,
    matrix: &'static str,
    n_delay: usize,
    no_autapse: bool,
) -> Result<(), CoreError> {
    validate_with(syn, matrix, n_delay, no_autapse, |w: F| w.is_finite())
}

/// [`validate`] with any weight type: `usable(w)` says whether a weight is acceptable
/// (finite, for floats).
pub fn validate_with<W, S: Synapses<W>>(
    syn: &S,
    matrix: &'static str,
    n_delay: usize,
    no_autapse: bool,
    usable: impl Fn(W) -> bool,
) -> Result<(), CoreError> {
    for pre in 0..syn.n_pre() {
        let mut err = None;
        let mut index = 0;
        syn.for_each_outgoing(pre, |target, delay, w| {
            let why = if target >= syn.n_post() {
                Some("target neuron out of range")
            } else if delay >= n_delay {
                Some("delay index >= n_delay")
            } else if !usable(w) {
                Some("weight is not finite")
            } else if no_autapse && target == pre {
                Some("autapse (self-connection) in a recurrent matrix")
            } else {
                None
            };
            if let (None, Some(why)) = (err, why) {
                err = Some(CoreError::Synapse {
                    matrix,
                    pre,
                    index,
                    why,
                });
            }
            index += 1;
        });
        if let Some(e) = err {
            return Err(e);
        }
    }
    Ok(())
}

/// The sum of `|w|` over every synapse of an integer matrix (saturating; at most
/// `nnz * 2^31`, so it cannot saturate for any matrix that fits in memory).
pub fn abs_sum<S: Synapses<i32>>(syn: &S) -> u64 {
    let mut total = 0u64;
    for pre in 0..syn.n_pre() {
        syn.for_each_outgoing(pre, |_, _, w| {
            total = total.saturating_add(u64::from(w.unsigned_abs()))
        });
    }
    total
}

/// Compressed sparse rows over borrowed slices: the synapses of presynaptic neuron `i` are
/// `offsets[i]..offsets[i + 1]` of `targets`, `delays` and `weights`.
#[derive(Clone, Copy, Debug)]
pub struct CsrRef<'a, F> {
    n_post: usize,
    offsets: &'a [u32],
    targets: &'a [u16],
    delays: &'a [u8],
    weights: &'a [F],
}

impl<'a, F: Copy> CsrRef<'a, F> {
    /// Wraps CSR slices after checking that they are consistent.
    pub fn new(
        n_post: usize,
        offsets: &'a [u32],
        targets: &'a [u16],
        delays: &'a [u8],
        weights: &'a [F],
    ) -> Result<Self, CoreError> {
        let nnz = targets.len();
        if delays.len() != nnz || weights.len() != nnz {
            return Err(CoreError::Length {
                what: "CSR delays/weights (one per target)",
                expected: nnz,
                got: if delays.len() != nnz {
                    delays.len()
                } else {
                    weights.len()
                },
            });
        }
        if offsets.is_empty() || offsets[0] != 0 {
            return Err(CoreError::Parameter {
                what: "CSR offsets",
                why: "must start with 0",
            });
        }
        if offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(CoreError::Parameter {
                what: "CSR offsets",
                why: "must be non-decreasing",
            });
        }
        if offsets[offsets.len() - 1] as usize != nnz {
            return Err(CoreError::Length {
                what: "CSR offsets (last = number of synapses)",
                expected: nnz,
                got: offsets[offsets.len() - 1] as usize,
            });
        }
        Ok(CsrRef {
            n_post,
            offsets,
            targets,
            delays,
            weights,
        })
    }

    /// Number of synapses.
    pub fn nnz(&self) -> usize {
        self.targets.len()
    }

    /// Row starts, `n_pre + 1` entries.
    pub fn offsets(&self) -> &'a [u32] {
        self.offsets
    }

    /// Postsynaptic neuron of each synapse.
    pub fn targets(&self) -> &'a [u16] {
        self.targets
    }

    /// Delay index of each synapse.
    pub fn delays(&self) -> &'a [u8] {
        self.delays
    }

    /// Effective weight of each synapse.
    pub fn weights(&self) -> &'a [F] {
        self.weights
    }
}

impl<F: Copy> Synapses<F> for CsrRef<'_, F> {
    fn n_pre(&self) -> usize {
        self.offsets.len() - 1
    }
    fn n_post(&self) -> usize {
        self.n_post
    }
    #[inline(always)]
    fn for_each_outgoing(&self, pre: usize, mut f: impl FnMut(usize, usize, F)) {
        let range = self.offsets[pre] as usize..self.offsets[pre + 1] as usize;
        let targets = &self.targets[range.clone()];
        let delays = &self.delays[range.clone()];
        let weights = &self.weights[range];
        for ((&t, &d), &w) in targets.iter().zip(delays).zip(weights) {
            f(usize::from(t), usize::from(d), w);
        }
    }
}

/// A dense matrix `w[pre * n_post + post]` with a delay per entry; for tests and references.
/// Every entry is a synapse, zeros included.
#[derive(Clone, Copy, Debug)]
pub struct DenseRef<'a, F> {
    n_pre: usize,
    n_post: usize,
    weights: &'a [F],
    delays: &'a [u8],
}

impl<'a, F: Real> DenseRef<'a, F> {
    /// Wraps a row-major `n_pre x n_post` weight matrix and its delays.
    pub fn new(
        n_pre: usize,
        n_post: usize,
        weights: &'a [F],
        delays: &'a [u8],
    ) -> Result<Self, CoreError> {
        for (what, len) in [
            ("dense weights", weights.len()),
            ("dense delays", delays.len()),
        ] {
            if len != n_pre * n_post {
                return Err(CoreError::Length {
                    what,
                    expected: n_pre * n_post,
                    got: len,
                });
            }
        }
        Ok(DenseRef {
            n_pre,
            n_post,
            weights,
            delays,
        })
    }
}

impl<F: Real> Synapses<F> for DenseRef<'_, F> {
    fn n_pre(&self) -> usize {
        self.n_pre
    }
    fn n_post(&self) -> usize {
        self.n_post
    }
    fn for_each_outgoing(&self, pre: usize, mut f: impl FnMut(usize, usize, F)) {
        let row = pre * self.n_post..(pre + 1) * self.n_post;
        for (post, (&w, &d)) in self.weights[row.clone()]
            .iter()
            .zip(&self.delays[row])
            .enumerate()
        {
            f(post, usize::from(d), w);
        }
    }
}

#[cfg(feature = "alloc")]
pub use owned::Csr;

#[cfg(feature = "alloc")]
mod owned {
    use super::{CsrRef, Synapses};
    use crate::{CoreError, Real};
    use alloc::vec::Vec;

    /// Owned compressed sparse rows (host side); see [`CsrRef`].
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Csr<F> {
        /// Number of postsynaptic neurons.
        pub n_post: usize,
        /// Row starts, `n_pre + 1` entries.
        pub offsets: Vec<u32>,
        /// Postsynaptic neuron of each synapse.
        pub targets: Vec<u16>,
        /// Delay index of each synapse.
        pub delays: Vec<u8>,
        /// Effective weight of each synapse.
        pub weights: Vec<F>,
    }

    impl<F: Real> Csr<F> {
        /// Builds the sparse form of a dense row-major matrix as the original cell uses it:
        /// weights multiplied by `v0`, the diagonal removed when `no_autapse`, exact zeros
        /// dropped (they contribute nothing).
        pub fn from_dense(
            n_pre: usize,
            n_post: usize,
            weights: &[F],
            delays: &[usize],
            v0: F,
            no_autapse: bool,
        ) -> Result<Self, CoreError> {
            for (what, len) in [
                ("dense weights", weights.len()),
                ("dense delays", delays.len()),
            ] {
                if len != n_pre * n_post {
                    return Err(CoreError::Length {
                        what,
                        expected: n_pre * n_post,
                        got: len,
                    });
                }
            }
            Csr::from_entries(n_pre, n_post, no_autapse, |pre, post| {
                let w = weights[pre * n_post + post] * v0;
                if w == F::zero() {
                    return Ok(None);
                }
                let d =
                    u8::try_from(delays[pre * n_post + post]).map_err(|_| CoreError::Synapse {
                        matrix: "dense",
                        pre,
                        index: post,
                        why: "delay index does not fit in u8",
                    })?;
                Ok(Some((w, d)))
            })
        }
    }

    impl<F: Copy> Csr<F> {
        /// The synapses for which `entry(pre, post)` gives `(weight, delay)`, row by row,
        /// targets ascending; the diagonal is not asked for when `no_autapse`. Any weight type
        /// (the integer rings' too).
        pub fn from_entries(
            n_pre: usize,
            n_post: usize,
            no_autapse: bool,
            mut entry: impl FnMut(usize, usize) -> Result<Option<(F, u8)>, CoreError>,
        ) -> Result<Self, CoreError> {
            if n_post > usize::from(u16::MAX) + 1 {
                return Err(CoreError::Size {
                    what: "n_post",
                    value: n_post,
                    allowed: "<= 65536",
                });
            }
            let mut csr = Csr {
                n_post,
                offsets: Vec::with_capacity(n_pre + 1),
                targets: Vec::new(),
                delays: Vec::new(),
                weights: Vec::new(),
            };
            csr.offsets.push(0);
            for pre in 0..n_pre {
                for post in 0..n_post {
                    if no_autapse && pre == post {
                        continue;
                    }
                    if let Some((w, d)) = entry(pre, post)? {
                        csr.targets.push(post as u16);
                        csr.delays.push(d);
                        csr.weights.push(w);
                    }
                }
                csr.offsets.push(csr.targets.len() as u32);
            }
            Ok(csr)
        }

        /// A borrowed view.
        pub fn view(&self) -> CsrRef<'_, F> {
            CsrRef {
                n_post: self.n_post,
                offsets: &self.offsets,
                targets: &self.targets,
                delays: &self.delays,
                weights: &self.weights,
            }
        }
    }

    impl<F: Real> Synapses<F> for Csr<F> {
        fn n_pre(&self) -> usize {
            self.offsets.len().saturating_sub(1)
        }
        fn n_post(&self) -> usize {
            self.n_post
        }
        #[inline(always)]
        fn for_each_outgoing(&self, pre: usize, f: impl FnMut(usize, usize, F)) {
            self.view().for_each_outgoing(pre, f)
        }
    }
}
