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
/// once by the model parser: every target is `< n_post`, every delay `< n_delay`, and the
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

/// The synapses of a row as the model format stores them (see [`CheckedRows`]), read one
/// after the other without bounds checks, from the row's slices (borrowed for `'a`).
struct RowReader<'a> {
    targets: *const u8,
    delays: *const u8,
    weights: *const u8,
    _row: PhantomData<&'a [u8]>,
}

impl<'a> RowReader<'a> {
    /// Reads the synapses of the row whose targets (two bytes each), delays and weights these
    /// slices hold, from the first on.
    #[inline(always)]
    fn new(targets: &'a [u8], delays: &'a [u8], weights: &'a [u8]) -> Self {
        RowReader {
            targets: targets.as_ptr(),
            delays: delays.as_ptr(),
            weights: weights.as_ptr(),
            _row: PhantomData,
        }
    }

    /// The target, delay and weight bytes of the next synapse.
    ///
    /// # Safety
    ///
    /// A synapse of the row the pointers started at is left.
    #[inline(always)]
    unsafe fn take<const W: usize>(&mut self) -> (usize, usize, &'a [u8; W]) {
        // SAFETY: the next synapse is in the row (the caller's bound): two target bytes, a
        // delay and `W` weight bytes at the pointers.
        unsafe {
            let t = self.targets.cast::<[u8; 2]>().read();
            let d = *self.delays;
            let w = &*self.weights.cast::<[u8; W]>();
            self.targets = self.targets.add(2);
            self.delays = self.delays.add(1);
            self.weights = self.weights.add(W);
            (usize::from(u16::from_le_bytes(t)), usize::from(d), w)
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
        // `head < n_delay <= RING_ROWS`: the window lies within the table's `2 RING_ROWS`
        // entries; entry `d` is `((head + d) mod n_delay) n`.
        let window = table.rows.get(head..head + table.n_delay)?;
        // Filled in place (a table filled first was copied into the value).
        let mut ring = DelayRing {
            rows: [MaybeUninit::uninit(); RING_ROWS],
            n: table.n,
            n_delay: table.n_delay,
            _slots: PhantomData,
            _f: PhantomData,
        };
        for (row, &start) in ring.rows.iter_mut().zip(window) {
            // SAFETY: `start <= (n_delay - 1) n` (`RowTable::new`) and `n_delay n <=
            // slots.len()` (tested above): `start` lies within `slots`.
            *row = MaybeUninit::new(unsafe { base.add(start as usize) });
        }
        Some(ring)
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
        // `targets`, `delays` and `weights` hold 2, 1 and W bytes for each of the row's `len`
        // synapses (`CheckedRows::parts`, the `get` above).
        let len = delays.len().min(targets.len() / 2).min(weights.len() / W);
        let mut next = RowReader::new(targets, delays, weights);
        // Four synapses a round: the loop's count and branch are paid once for them.
        for _ in 0..len / 4 {
            // SAFETY (all four): four of the `len` synapses are left (the round's count), the
            // targets are `< rows.n_post = n` and the delays `< rows.n_delay <= n_delay`
            // (`CheckedRows::new`, the test above).
            unsafe {
                self.add_next(&mut next, &value);
                self.add_next(&mut next, &value);
                self.add_next(&mut next, &value);
                self.add_next(&mut next, &value);
            }
        }
        for _ in 0..len % 4 {
            // SAFETY: as above, for the last ones.
            unsafe { self.add_next(&mut next, &value) };
        }
    }

    /// Adds the next synapse of `next`'s row: `value` of its weight bytes, to its target in
    /// its delay.
    ///
    /// # Safety
    ///
    /// A synapse of the row is left ([`RowReader::take`]), and the row's targets are `< n` and
    /// its delays `< n_delay` ([`DelayRing::add_unchecked`]).
    #[inline(always)]
    unsafe fn add_next<const W: usize>(
        &mut self,
        next: &mut RowReader<'_>,
        value: &impl Fn(&[u8; W]) -> A,
    ) {
        // SAFETY: the caller's bounds.
        unsafe {
            let (target, delay, w) = next.take::<W>();
            self.add_unchecked(target, delay, value(w));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn quads_are_the_whole_fours() {
        for len in 0..10usize {
            let mut s: Vec<u32> = (0..len as u32).collect();
            let quads = quads_mut(&mut s);
            assert_eq!(quads.len(), len / 4);
            for (i, q) in quads.iter_mut().enumerate() {
                assert_eq!(*q, core::array::from_fn(|j| (4 * i + j) as u32));
                q[3] += 100;
            }
            for (i, &x) in s.iter().enumerate() {
                let moved = i % 4 == 3 && i < len / 4 * 4;
                assert_eq!(x, i as u32 + if moved { 100 } else { 0 });
            }
        }
    }

    #[test]
    fn row_tables_cover_rings_of_at_most_16_slots() {
        assert!(RowTable::new(5, 0).is_none());
        assert!(RowTable::new(5, RING_ROWS + 1).is_none());
        assert!(RowTable::new(usize::MAX / 2, 4).is_none());
        let t = RowTable::new(7, 3).unwrap();
        assert_eq!(t.rows[..7], [0, 7, 14, 0, 7, 14, 0]);
    }

    /// A CSR matrix as the model format stores it.
    fn csr(offsets: &[u32], targets: &[u16]) -> (Vec<u8>, Vec<u8>) {
        (
            offsets.iter().flat_map(|o| o.to_le_bytes()).collect(),
            targets.iter().flat_map(|t| t.to_le_bytes()).collect(),
        )
    }

    #[test]
    fn checked_rows_reject_what_they_cannot_vouch_for() {
        let (o, t) = csr(&[0, 2, 2, 3], &[1, 4, 0]);
        let d = [0u8, 2, 1];
        let rows = CheckedRows::new(&o, &t, &d, 5, 3).unwrap();
        assert_eq!((rows.n_pre(), rows.n_post(), rows.nnz()), (3, 5, 3));
        assert_eq!(rows.row(0), Some(0..2));
        assert_eq!(rows.row(1), Some(2..2));
        assert_eq!(rows.row(2), Some(2..3));
        assert_eq!(rows.row(3), None);
        assert_eq!(rows.synapse(1), Some((4, 2)));
        assert_eq!(rows.synapse(3), None);
        let mut seen = Vec::new();
        rows.for_each_in_row(0, |t, d, k| seen.push((t, d, k)));
        assert_eq!(seen, [(1, 0, 0), (4, 2, 1)]);
        // A target, a delay out of range; offsets that decrease, start or end wrong; lengths.
        assert!(CheckedRows::new(&o, &t, &d, 4, 3).is_none());
        assert!(CheckedRows::new(&o, &t, &d, 5, 2).is_none());
        let (bad, _) = csr(&[0, 2, 1, 3], &[]);
        assert!(CheckedRows::new(&bad, &t, &d, 5, 3).is_none());
        let (bad, _) = csr(&[1, 2, 2, 3], &[]);
        assert!(CheckedRows::new(&bad, &t, &d, 5, 3).is_none());
        let (bad, _) = csr(&[0, 2, 2, 2], &[]);
        assert!(CheckedRows::new(&bad, &t, &d, 5, 3).is_none());
        assert!(CheckedRows::new(&o, &t[..4], &d, 5, 3).is_none());
        assert!(CheckedRows::new(&o[..3], &t, &d, 5, 3).is_none());
        assert!(CheckedRows::new(&[], &[], &[], 5, 3).is_none());
    }

    /// Every synapse lands where a plain ring (slot `(head + d) mod D`) puts it, at every head,
    /// through the unchecked loop and the checked one (rows of another shape).
    #[test]
    fn delivery_lands_where_the_plain_ring_puts_it() {
        let (n, n_delay) = (5usize, 3usize);
        let (o, t) = csr(&[0, 3, 3, 5], &[4, 0, 2, 1, 4]);
        let d = [2u8, 0, 1, 1, 2];
        let w: Vec<u8> = [3i8, -5, 7, 11, -13].iter().map(|&q| q as u8).collect();
        let rows = CheckedRows::new(&o, &t, &d, n, n_delay).unwrap();
        let table = RowTable::new(n, n_delay).unwrap();
        for head in 0..n_delay {
            let mut want = [0i32; 15];
            for pre in 0..3 {
                rows.for_each_in_row(pre, |t, d, k| {
                    want[(head + d) % n_delay * n + t] += i32::from(w[k] as i8) * 10;
                });
            }
            let mut slots = [0i32; 15];
            let mut ring = DelayRing::<f32, i32>::new(&mut slots, &table, head).unwrap();
            for pre in 0..4 {
                ring.add_row::<1>(&rows, pre, &w, |b| i32::from(b[0] as i8) * 10);
            }
            assert_eq!(slots, want, "head {head}");
            // Rows that claim another shape: the same through the checked adds.
            let wide = CheckedRows::new(&o, &t, &d, n + 1, n_delay).unwrap();
            let mut slots = [0i32; 15];
            let mut ring = DelayRing::<f32, i32>::new(&mut slots, &table, head).unwrap();
            for pre in 0..3 {
                ring.add_row::<1>(&wide, pre, &w, |b| i32::from(b[0] as i8) * 10);
            }
            ring.add(n, 0, 1);
            ring.add(0, n_delay, 1);
            assert_eq!(slots, want, "head {head}, checked");
        }
        let mut short = [0i32; 14];
        assert!(DelayRing::<f32, i32>::new(&mut short, &table, 0).is_none());
        let mut slots = [0i32; 15];
        assert!(DelayRing::<f32, i32>::new(&mut slots, &table, n_delay).is_none());
    }

    /// Rows of every length from 0 to 9 (the four-at-a-time part and every remainder), with
    /// one- and two-byte weights: every synapse lands where the plain ring puts it.
    #[test]
    fn rows_of_any_length_land_where_the_plain_ring_puts_them() {
        let (n, n_delay) = (7usize, 4usize);
        let mut offsets = vec![0u32];
        let (mut targets, mut delays, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        for len in 0..10u32 {
            for k in 0..len {
                targets.push(((3 * len + 5 * k) % n as u32) as u16);
                delays.push(((len + k) % n_delay as u32) as u8);
                weights.push(((7 * k + len) % 23) as i16 - 11);
            }
            offsets.push(targets.len() as u32);
        }
        let (o, t) = csr(&offsets, &targets);
        let rows = CheckedRows::new(&o, &t, &delays, n, n_delay).unwrap();
        let w1: Vec<u8> = weights.iter().map(|&q| q as i8 as u8).collect();
        let w2: Vec<u8> = weights
            .iter()
            .flat_map(|&q| (q * 300).to_le_bytes())
            .collect();
        let table = RowTable::new(n, n_delay).unwrap();
        for head in 0..n_delay {
            for pre in 0..10 {
                let mut want = vec![0i32; n * n_delay];
                rows.for_each_in_row(pre, |t, d, k| {
                    want[(head + d) % n_delay * n + t] += i32::from(weights[k]) * 300;
                });
                let mut slots = vec![0i32; n * n_delay];
                let mut ring = DelayRing::<f32, i32>::new(&mut slots, &table, head).unwrap();
                ring.add_row::<1>(&rows, pre, &w1, |b| i32::from(b[0] as i8) * 300);
                assert_eq!(slots, want, "head {head}, row {pre}, i8");
                let mut slots = vec![0i32; n * n_delay];
                let mut ring = DelayRing::<f32, i32>::new(&mut slots, &table, head).unwrap();
                ring.add_row::<2>(&rows, pre, &w2, |b| i32::from(i16::from_le_bytes(*b)));
                assert_eq!(slots, want, "head {head}, row {pre}, i16");
            }
        }
    }
}
