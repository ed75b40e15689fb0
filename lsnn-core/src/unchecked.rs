//! The one module of this crate with `unsafe` code: indexing without bounds checks in
//! delivery, the loop that adds a spike's synapses into the delay ring (on a Cortex-M4 a check
//! costs 3 of the 13 instructions per synapse), and the neurons as quads for the neuron loop.
//! Each bound is established once, by a constructor in this module that checks it:
//! [`CheckedRows::new`] (called by the model parser) for the synapses' targets and delays,
//! [`RowTable::new`] (called by the state's constructor) and [`DelayRing::new`] (once per step)
//! for the ring. Their fields are private and never written after construction, so the checks
//! hold for as long as a value lives.

use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ops::Range;

use crate::state::Accumulator;

/// `s` as its whole quads `[T; 4]` (the standard library's `as_chunks_mut`, which is newer than
/// this crate's minimum Rust): the neuron loop takes four neurons at a time, and a quad indexed
/// below the quads' count needs no check per element.
#[inline(always)]
pub(crate) fn quads_mut<T>(s: &mut [T]) -> &mut [[T; 4]] {
    let n = s.len() / 4;
    // SAFETY: the first `4 n` elements of `s` are in bounds, and `[T; 4]` is laid out as four
    // consecutive `T`s with the alignment of `T`: they are `n` quads. The exclusive borrow of
    // `s` passes to the result.
    unsafe { core::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<[T; 4]>(), n) }
}

/// Delay slots up to which a step finds where a slot starts in a [`RowTable`].
pub(crate) const RING_ROWS: usize = 16;

/// Where each slot of a delay ring of `n_delay <= RING_ROWS` slots of `n` entries starts:
/// `rows[k] = (k mod n_delay) n` for `k < 2 RING_ROWS`, so the slot that arrives in `d` steps
/// starts at `rows[head + d]`, with no division.
#[derive(Clone, Debug)]
pub(crate) struct RowTable {
    rows: [u32; 2 * RING_ROWS],
    n: usize,
    n_delay: usize,
}

impl RowTable {
    /// The table of a ring of `n_delay` slots of `n` entries (`None` for more than
    /// [`RING_ROWS`] slots, or a ring too large for `u32` offsets).
    pub(crate) fn new(n: usize, n_delay: usize) -> Option<Self> {
        if n_delay == 0 || n_delay > RING_ROWS || n.checked_mul(n_delay)? > u32::MAX as usize {
            return None;
        }
        Some(RowTable {
            // < n_delay n <= u32::MAX: fits
            rows: core::array::from_fn(|k| ((k % n_delay) * n) as u32),
            n,
            n_delay,
        })
    }
}

/// The synapses of a compressed sparse row matrix as the model format stores them (`offsets`
/// as little-endian `u32`, `targets` as little-endian `u16`, one `u8` delay each), checked
/// once by [`CheckedRows::new`]: every target is `< n_post`, every delay `< n_delay`, and the
/// offsets run from 0, non-decreasing, to the number of synapses.
#[derive(Clone, Copy, Debug)]
pub struct CheckedRows<'a> {
    offsets: &'a [u8],
    targets: &'a [u8],
    delays: &'a [u8],
    n_pre: usize,
    n_post: usize,
    n_delay: usize,
}

impl<'a> CheckedRows<'a> {
    /// Checks the rows (`None` when any of the above does not hold, or the lengths disagree:
    /// `offsets` `4 (n_pre + 1)` bytes, `targets` two bytes per delay).
    pub(crate) fn new(
        offsets: &'a [u8],
        targets: &'a [u8],
        delays: &'a [u8],
        n_post: usize,
        n_delay: usize,
    ) -> Option<Self> {
        let nnz = delays.len();
        let n_pre = (offsets.len() / 4).checked_sub(1)?;
        let mut prev = 0u32;
        for (i, o) in offsets.chunks(4).enumerate() {
            let o = u32::from_le_bytes(o.try_into().ok()?);
            if (i == 0 && o != 0) || o < prev {
                return None;
            }
            prev = o;
        }
        let targets_ok = targets.len() == nnz.checked_mul(2)?
            && targets
                .chunks_exact(2)
                .all(|t| usize::from(u16::from_le_bytes([t[0], t[1]])) < n_post);
        let delays_ok = delays.iter().all(|&d| usize::from(d) < n_delay);
        (prev as usize == nnz && targets_ok && delays_ok).then_some(CheckedRows {
            offsets,
            targets,
            delays,
            n_pre,
            n_post,
            n_delay,
        })
    }

    /// Number of rows (presynaptic neurons).
    pub fn n_pre(&self) -> usize {
        self.n_pre
    }

    /// Every target is below this.
    pub fn n_post(&self) -> usize {
        self.n_post
    }

    /// Number of synapses.
    pub fn nnz(&self) -> usize {
        self.delays.len()
    }

    /// The index range of the synapses of row `pre` (`None` past the last row).
    #[inline(always)]
    pub fn row(&self, pre: usize) -> Option<Range<usize>> {
        if pre >= self.n_pre {
            return None;
        }
        // SAFETY: `pre < n_pre` and `offsets` holds `4 (n_pre + 1)` bytes (`new`), so bytes
        // `4 pre .. 4 pre + 8` are in bounds.
        let o = unsafe { self.offsets.get_unchecked(4 * pre..4 * pre + 8) };
        let start = u32::from_le_bytes([o[0], o[1], o[2], o[3]]) as usize;
        let end = u32::from_le_bytes([o[4], o[5], o[6], o[7]]) as usize;
        Some(start..end)
    }

    /// The targets (two little-endian bytes each) and delays of the synapses `range`
    /// of a [`CheckedRows::row`].
    #[inline(always)]
    fn parts(&self, range: Range<usize>) -> (&'a [u8], &'a [u8]) {
        // SAFETY: `range` is a row: `start <= end <= nnz` (the offsets are non-decreasing up
        // to `nnz`, checked by `new`), and `targets` holds `2 nnz` bytes, `delays` `nnz`.
        unsafe {
            (
                self.targets.get_unchecked(2 * range.start..2 * range.end),
                self.delays.get_unchecked(range),
            )
        }
    }

    /// The target and delay of synapse `k` (`None` past the end).
    pub fn synapse(&self, k: usize) -> Option<(usize, usize)> {
        let t = self.targets.get(2 * k..2 * k + 2)?;
        let d = *self.delays.get(k)?;
        Some((
            usize::from(u16::from_le_bytes([t[0], t[1]])),
            usize::from(d),
        ))
    }

    /// Calls `f(target, delay, k)` for the synapses `k` of row `pre` (nothing past the last
    /// row).
    #[inline(always)]
    pub fn for_each_in_row(&self, pre: usize, mut f: impl FnMut(usize, usize, usize)) {
        let Some(range) = self.row(pre) else {
            return;
        };
        let first = range.start;
        let (targets, delays) = self.parts(range);
        for (k, (t, &d)) in targets.chunks_exact(2).zip(delays).enumerate() {
            f(
                usize::from(u16::from_le_bytes([t[0], t[1]])),
                usize::from(d),
                first + k,
            );
        }
    }
}

/// The delay ring of a state during one step's delivery (rings of at most 16 slots): adds a
/// synapse's value to the entry of its target in the slot that arrives after its delay.
pub struct DelayRing<'s, F, A> {
    /// Where the slot that arrives in `d` steps starts, for `d < n_delay` (the others are not
    /// written): `n` entries each, within the borrowed ring.
    rows: [MaybeUninit<*mut A>; RING_ROWS],
    n: usize,
    n_delay: usize,
    _slots: PhantomData<&'s mut [A]>,
    _f: PhantomData<F>,
}

impl<'s, F, A: Accumulator<F>> DelayRing<'s, F, A> {
    /// The ring `slots` of `table`'s shape whose slot 0 is `head` (`None` unless `slots` holds
    /// the whole ring and `head` is a slot).
    #[inline(always)]
    pub(crate) fn new(slots: &'s mut [A], table: &'s RowTable, head: usize) -> Option<Self> {
        if head >= table.n_delay || slots.len() < table.n * table.n_delay {
            return None;
        }
        let base = slots.as_mut_ptr();
        let mut rows = [MaybeUninit::uninit(); RING_ROWS];
        // `head < n_delay <= RING_ROWS`: the window lies within the table's `2 RING_ROWS`
        // entries; entry `d` is `((head + d) mod n_delay) n`.
        let window = table.rows.get(head..head + table.n_delay)?;
        for (row, &start) in rows.iter_mut().zip(window) {
            // SAFETY: `start <= (n_delay - 1) n` (`RowTable::new`) and `n_delay n <=
            // slots.len()` (tested above): `start` lies within `slots`.
            *row = MaybeUninit::new(unsafe { base.add(start as usize) });
        }
        Some(DelayRing {
            rows,
            n: table.n,
            n_delay: table.n_delay,
            _slots: PhantomData,
            _f: PhantomData,
        })
    }

    /// Adds `x` to what arrives at `target` in `delay` steps; nothing when `target` or `delay`
    /// is out of range.
    #[inline(always)]
    pub fn add(&mut self, target: usize, delay: usize, x: A) {
        if target < self.n && delay < self.n_delay {
            // SAFETY: `delay < n_delay <= RING_ROWS` and `target < n`: the entry lies in the
            // slot `rows[delay]` starts (`new`), within the exclusively borrowed ring.
            unsafe { self.add_unchecked(target, delay, x) }
        }
    }

    /// [`DelayRing::add`] without the test.
    ///
    /// # Safety
    ///
    /// `target < self.n` and `delay < self.n_delay`.
    #[inline(always)]
    unsafe fn add_unchecked(&mut self, target: usize, delay: usize, x: A) {
        // SAFETY: the caller's bounds, with `new`: `rows[delay]` is written, and
        // `rows[delay] + target` is an entry of the ring, which this value borrows exclusively.
        unsafe {
            let e = self.rows.get_unchecked(delay).assume_init().add(target);
            *e = (*e).add(x);
        }
    }

    /// Adds the synapses of row `pre` of `rows` into the ring, synapse `k` adding
    /// `value(weights[W k .. W k + W])`: the loop of delivery, without bounds checks. Rows of
    /// another shape than the ring's go through [`DelayRing::add`].
    #[inline(always)]
    pub(crate) fn add_row<const W: usize>(
        &mut self,
        rows: &CheckedRows<'_>,
        pre: usize,
        weights: &[u8],
        value: impl Fn(&[u8; W]) -> A,
    ) {
        let Some(range) = rows.row(pre) else {
            return;
        };
        let Some(weights) = weights.get(W * range.start..W * range.end) else {
            return;
        };
        let (targets, delays) = rows.parts(range);
        if rows.n_post != self.n || rows.n_delay > self.n_delay {
            let synapses = targets
                .chunks_exact(2)
                .zip(delays)
                .zip(weights.chunks_exact(W));
            for ((t, &d), w) in synapses {
                let target = usize::from(u16::from_le_bytes([t[0], t[1]]));
                if let Ok(w) = w.try_into() {
                    self.add(target, usize::from(d), value(w));
                }
            }
            return;
        }
        let synapses = targets
            .chunks_exact(2)
            .zip(delays)
            .zip(weights.chunks_exact(W));
        for ((t, &d), w) in synapses {
            let (Ok(t), Ok(w)) = (<[u8; 2]>::try_from(t), w.try_into()) else {
                continue;
            };
            let target = usize::from(u16::from_le_bytes(t));
            // SAFETY: `target < rows.n_post = n` and `d < rows.n_delay <= n_delay`
            // (`CheckedRows::new`, the test above).
            unsafe { self.add_unchecked(target, usize::from(d), value(w)) };
        }
    }
}
