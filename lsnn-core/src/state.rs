//! Per-network state in storage the caller owns: fixed arrays on a microcontroller,
//! `Vec`s on a host, or borrowed slices.

use crate::unchecked::RowTable;
use crate::{CoreError, NeuronState, Real};
use core::fmt::Debug;
use core::marker::PhantomData;

/// What the delay ring holds and how a ring entry becomes an input current.
///
/// Synapses add into the ring (event by event, in delivery order); once per step each
/// neuron's entry of the current slot becomes its current `i_t` with [`Accumulator::current`].
///
/// - `F` itself (f32 or f64): float weights, `x * w` added in float, `i_t` = the entry. This is
///   the original's arithmetic and the trainer's.
/// - `i32`: integer weights (the model format's i16/i8 kinds, each matrix's integer weights
///   times an integer multiplier, see [`crate::model::IntegerScales`]). Integer addition is
///   exact and associative, so a ring entry is the exact sum of its quantised weights whatever
///   the delivery order, and the float conversion happens once per neuron and step:
///   `i_t = (entry as F) * unit`.
pub trait Accumulator<F>: Copy + Default + PartialEq + Debug {
    /// `self + w` (for `i32`: wrapping; cells check that their weights cannot overflow).
    fn add(self, w: Self) -> Self;
    /// Whether input events of value `x` can be delivered: always for floats; integer rings
    /// take spikes only (`x == 1`).
    fn takes_input(x: F) -> bool;
    /// What an input event of value `x` (see [`Accumulator::takes_input`]) through weight `w`
    /// adds: `x * w` for floats, `w` for integers.
    fn input(x: F, w: Self) -> Self;
    /// What a recurrent spike `z` (the spike value `1/dt`) through weight `w` adds: `z * w` for
    /// floats; for integers the spike value is part of the recurrent multiplier, so `w`.
    fn spike(z: F, w: Self) -> Self;
    /// The input current of a ring entry: itself for floats, `(self as F) * unit` for integers.
    fn current(self, unit: F) -> F;
    /// Whether the entry is bit for bit the cleared entry (`+0`, not `-0`; `0` for integers):
    /// its current is then `+0`, and clearing it changes nothing.
    fn is_clear(self) -> bool;
    /// 0 exactly when the entry [`Accumulator::is_clear`] (the entry's bits, for the rings
    /// here: a test of several entries is then one test of their `|`).
    #[inline(always)]
    fn clear_bits(self) -> u64 {
        u64::from(!self.is_clear())
    }
    /// Whether `current(unit)` is `current(1) * unit`, a product that is exact when `unit` is
    /// a normal power of two and the result is normal or 0 (the cell then folds `unit` into
    /// another factor). `false` makes no such claim.
    const FOLDS_UNIT: bool = false;
}

impl<F: Real> Accumulator<F> for F {
    #[inline(always)]
    fn add(self, w: Self) -> Self {
        self + w
    }
    #[inline(always)]
    fn takes_input(_x: F) -> bool {
        true
    }
    #[inline(always)]
    fn input(x: F, w: Self) -> Self {
        x * w
    }
    #[inline(always)]
    fn spike(z: F, w: Self) -> Self {
        z * w
    }
    #[inline(always)]
    fn current(self, _unit: F) -> F {
        self
    }
    #[inline(always)]
    fn is_clear(self) -> bool {
        self.to_bits_u64() == 0
    }
    #[inline(always)]
    fn clear_bits(self) -> u64 {
        self.to_bits_u64()
    }
}

impl<F: Real> Accumulator<F> for i32 {
    /// (`current(1)` is the entry rounded to `F`, at most 2^31 in magnitude.)
    const FOLDS_UNIT: bool = true;
    #[inline(always)]
    fn add(self, w: Self) -> Self {
        self.wrapping_add(w)
    }
    #[inline(always)]
    fn takes_input(x: F) -> bool {
        x == F::one()
    }
    #[inline(always)]
    fn input(_x: F, w: Self) -> Self {
        w
    }
    #[inline(always)]
    fn spike(_z: F, w: Self) -> Self {
        w
    }
    #[inline(always)]
    fn current(self, unit: F) -> F {
        F::from_i32(self) * unit
    }
    #[inline(always)]
    fn is_clear(self) -> bool {
        self == 0
    }
    #[inline(always)]
    fn clear_bits(self) -> u64 {
        u64::from(self as u32)
    }
}

/// Where a [`CellState`] keeps its delay ring (D slots of N accumulators).
pub trait RingStore<F> {
    /// The ring's element type.
    type Acc: Accumulator<F>;
    /// How many floats the ring takes inside the float storage (D N inline, 0 when separate).
    fn inline_len(n_rec: usize, n_delay: usize) -> usize;
    /// Length of the separate storage (`None` when inline).
    fn separate_len(&self) -> Option<usize>;
    /// The ring; `tail` is the float storage after `v`, `z`, `b`.
    fn slots<'s>(&'s mut self, tail: &'s mut [F]) -> &'s mut [Self::Acc];
    /// The ring, read-only.
    fn slots_ref<'s>(&'s self, tail: &'s [F]) -> &'s [Self::Acc];
}

/// The ring lives in the float storage after `v`, `z`, `b` (float weights; the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inline;

impl<F: Real> RingStore<F> for Inline {
    type Acc = F;
    fn inline_len(n_rec: usize, n_delay: usize) -> usize {
        n_delay * n_rec
    }
    fn separate_len(&self) -> Option<usize> {
        None
    }
    #[inline(always)]
    fn slots<'s>(&'s mut self, tail: &'s mut [F]) -> &'s mut [F] {
        tail
    }
    #[inline(always)]
    fn slots_ref<'s>(&'s self, tail: &'s [F]) -> &'s [F] {
        tail
    }
}

/// A separate ring of `i32` (integer weights): `D N` entries in storage `R`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct I32Ring<R>(pub R);

impl<F: Real, R: AsRef<[i32]> + AsMut<[i32]>> RingStore<F> for I32Ring<R> {
    type Acc = i32;
    fn inline_len(_n_rec: usize, _n_delay: usize) -> usize {
        0
    }
    fn separate_len(&self) -> Option<usize> {
        Some(self.0.as_ref().len())
    }
    #[inline(always)]
    fn slots<'s>(&'s mut self, _tail: &'s mut [F]) -> &'s mut [i32] {
        self.0.as_mut()
    }
    #[inline(always)]
    fn slots_ref<'s>(&'s self, _tail: &'s [F]) -> &'s [i32] {
        self.0.as_ref()
    }
}

/// A separate ring of floats: `D N` entries in storage `R`, apart from the `3 N` floats of
/// `v`, `z`, `b` (float weights, as [`Inline`], for storage that comes in two parts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloatRing<R>(pub R);

impl<F: Real, R: AsRef<[F]> + AsMut<[F]>> RingStore<F> for FloatRing<R> {
    type Acc = F;
    fn inline_len(_n_rec: usize, _n_delay: usize) -> usize {
        0
    }
    fn separate_len(&self) -> Option<usize> {
        Some(self.0.as_ref().len())
    }
    #[inline(always)]
    fn slots<'s>(&'s mut self, _tail: &'s mut [F]) -> &'s mut [F] {
        self.0.as_mut()
    }
    #[inline(always)]
    fn slots_ref<'s>(&'s self, _tail: &'s [F]) -> &'s [F] {
        self.0.as_ref()
    }
}

/// The state of an LSNN cell between steps: `v`, `z`, `b` per neuron, the delayed-current
/// ring buffer `i_future` (D slots of N currents) and, per neuron, how many refractory steps
/// are left (the original keeps the last R spikes; "any of them > 0" is exactly "a spike in the
/// last R steps", which a counter stores in O(1)).
///
/// With the default ring `R = `[`Inline`], `S` holds `3 N + D N` floats (see
/// [`CellState::float_len`]); with an [`I32Ring`] (integer weights) `S` holds `3 N` floats and
/// the ring `D N` integers. `C` holds `N` counters.
///
/// Besides, 64-bit summaries over groups of neurons (group `g` is neurons `g << shift ..`; a
/// power of two, at least 4, covering N in at most 64 groups), each bit a superset of what it
/// stands for, so that a step can skip the groups it does not need to visit:
///
/// - spikes: the bit of a group is clear only if every `z` of the group is `+0` (bit for bit).
///   Delivery and the readout visit only the other groups instead of scanning all N.
/// - active: clear only if the whole group is at rest: `v`, `z`, `b` all `+0` and no neuron
///   refractory. Such a group stays exactly at rest in a step without input (see
///   [`crate::neuron::allows_shortcuts`]), so the cell skips it unless a current arrives.
///
/// Also, as short lists (up to 64 neurons each, ascending; past that, or after the state was set
/// by hand, the summaries above or a scan of all counters stand in): the neurons that spiked in
/// the last step, and the refractory neurons. And whether some `b` or `z` might be out of the
/// range steps keep them in (`< 0`, `-0` for `b`, infinite, NaN or above 2^32; only
/// [`CellState::set_neuron`] can put one there): while none is, every threshold is positive
/// for neurons with `beta >= 0`, the spike test is one comparison, a neuron that did not spike
/// adapts as `b_new = decay_b * b` (see [`crate::neuron::NoSpike`]), and every `b` stays
/// finite, so LIF neurons need no `b` (see [`crate::neuron::lif_step_with`]).
#[derive(Clone, Debug)]
pub struct CellState<F, S, C, R = Inline> {
    floats: S,
    refractory_left: C,
    ring: R,
    n_rec: usize,
    n_delay: usize,
    head: usize,
    spike_groups: u64,
    active_groups: u64,
    spiked: NeuronList,
    refractory: NeuronList,
    /// Where each slot starts, for `D <= 16` (see [`RowTable`]).
    rows: Option<RowTable>,
    /// How `refractory_left` is kept (see [`Stamps`]).
    stamps: Stamps,
    odd: bool,
    loose_spikes: bool,
    group_shift: u32,
    _f: PhantomData<F>,
}

/// Whether `x` (a `b` or `z` set by hand) is in the range that steps keep `b` and `z` in, with
/// room to spare: `0 <= x <= 2^32` (`-0` included, NaN not). While every `b` and `z` is, and no
/// `b` is `-0`, every `b` a step computes stays `>= +0` and far from overflow (steps add at
/// most `(1 - decay_b) z <= 1` to a decayed `b`), so for neurons with `0 <= beta <= 2^32`
/// every threshold is finite and positive.
fn plain<F: Real>(x: F) -> bool {
    x >= F::zero() && x <= F::of(4_294_967_296.0)
}

/// `log2` of the smallest power-of-two group size, at least 4, that covers `n` neurons in 64
/// groups.
fn group_shift(n: usize) -> u32 {
    let per_group = n.div_ceil(64).max(4);
    per_group.next_power_of_two().trailing_zeros()
}

impl<F: Real, S: AsRef<[F]> + AsMut<[F]>, C: AsRef<[u16]> + AsMut<[u16]>> CellState<F, S, C> {
    /// Number of floats the storage `S` must hold for `n_rec` neurons and `n_delay` slots.
    pub const fn float_len(n_rec: usize, n_delay: usize) -> usize {
        (3 + n_delay) * n_rec
    }

    /// Wraps zeroed-or-not storage and resets it to the all-zero initial state.
    pub fn new(
        floats: S,
        refractory_left: C,
        n_rec: usize,
        n_delay: usize,
    ) -> Result<Self, CoreError> {
        Self::with_ring(floats, refractory_left, Inline, n_rec, n_delay)
    }

    /// The current that will arrive at neuron `j` in `delay` steps (0 = this coming step).
    pub fn i_future(&self, j: usize, delay: usize) -> F {
        self.ring_entry(j, delay)
    }

    /// Sets the current that will arrive at neuron `j` in `delay` steps.
    pub fn set_i_future(&mut self, j: usize, delay: usize, value: F) {
        let at = self.ring_index(j, delay);
        let n3 = 3 * self.n_rec;
        self.floats.as_mut()[n3 + at] = value;
    }
}

impl<F: Real, S: AsRef<[F]> + AsMut<[F]>, C: AsRef<[u16]> + AsMut<[u16]>, R>
    CellState<F, S, C, I32Ring<R>>
where
    R: AsRef<[i32]> + AsMut<[i32]>,
{
    /// A state for integer weights: `floats` holds `3 N` floats (`v`, `z`, `b`), `ring` the
    /// `D N` integer accumulators of the delay ring.
    pub fn with_i32_ring(
        floats: S,
        refractory_left: C,
        ring: R,
        n_rec: usize,
        n_delay: usize,
    ) -> Result<Self, CoreError> {
        Self::with_ring(floats, refractory_left, I32Ring(ring), n_rec, n_delay)
    }
}

impl<F: Real, S, C, R> CellState<F, S, C, R>
where
    S: AsRef<[F]> + AsMut<[F]>,
    C: AsRef<[u16]> + AsMut<[u16]>,
    R: RingStore<F>,
{
    /// Wraps storage with any ring and resets it to the all-zero initial state.
    pub fn with_ring(
        floats: S,
        refractory_left: C,
        ring: R,
        n_rec: usize,
        n_delay: usize,
    ) -> Result<Self, CoreError> {
        if n_delay == 0 {
            return Err(CoreError::Size {
                what: "n_delay",
                value: 0,
                allowed: ">= 1",
            });
        }
        let ring_len = n_delay.checked_mul(n_rec).ok_or(CoreError::Size {
            what: "n_delay x n_rec",
            value: usize::MAX,
            allowed: "a ring that fits in memory",
        })?;
        let need = R::inline_len(n_rec, n_delay) + 3 * n_rec;
        if floats.as_ref().len() != need {
            return Err(CoreError::Length {
                what: if ring.separate_len().is_some() {
                    "state float storage (3 N)"
                } else {
                    "state float storage (3 N + D N)"
                },
                expected: need,
                got: floats.as_ref().len(),
            });
        }
        if let Some(got) = ring.separate_len() {
            if got != ring_len {
                return Err(CoreError::Length {
                    what: "state ring storage (D N)",
                    expected: ring_len,
                    got,
                });
            }
        }
        if refractory_left.as_ref().len() != n_rec {
            return Err(CoreError::Length {
                what: "refractory counter storage (N)",
                expected: n_rec,
                got: refractory_left.as_ref().len(),
            });
        }
        let mut state = CellState {
            floats,
            refractory_left,
            ring,
            n_rec,
            n_delay,
            head: 0,
            spike_groups: 0,
            active_groups: 0,
            spiked: NeuronList::new(),
            refractory: NeuronList::new(),
            rows: RowTable::new(n_rec, n_delay),
            stamps: Stamps::new(),
            odd: false,
            loose_spikes: false,
            group_shift: group_shift(n_rec),
            _f: PhantomData,
        };
        state.reset();
        Ok(state)
    }

    /// Back to the all-zero initial state.
    pub fn reset(&mut self) {
        self.floats.as_mut().fill(F::zero());
        let n3 = 3 * self.n_rec;
        let tail = self.floats.as_mut().get_mut(n3..).unwrap_or_default();
        self.ring.slots(tail).fill(Default::default());
        self.refractory_left.as_mut().fill(0);
        self.head = 0;
        self.spike_groups = 0;
        self.active_groups = 0;
        self.spiked = NeuronList::new();
        self.refractory = NeuronList::new();
        // Every counter is 0: free as a count and as a stamp.
        self.stamps = Stamps::new();
        self.odd = false;
        self.loose_spikes = false;
    }

    /// Whether some `b` or `z` might be out of the range steps keep them in.
    pub(crate) fn is_odd(&self) -> bool {
        self.odd
    }

    /// Number of neurons N.
    pub fn n_rec(&self) -> usize {
        self.n_rec
    }

    /// Number of delay slots D.
    pub fn n_delay(&self) -> usize {
        self.n_delay
    }

    /// Membrane voltages.
    #[inline]
    pub fn v(&self) -> &[F] {
        self.row_of_n(0)
    }

    /// Spikes of the last step (0 or 1/dt).
    #[inline]
    pub fn z(&self) -> &[F] {
        self.row_of_n(1)
    }

    /// Threshold adaptation variables.
    #[inline]
    pub fn b(&self) -> &[F] {
        self.row_of_n(2)
    }

    /// Row `k` of N floats (`v`, `z`, `b`). `floats` holds at least `3 N` (checked by
    /// `CellState::with_ring`), so the `get` never falls back; it keeps a panic out of the
    /// step's code.
    #[inline(always)]
    fn row_of_n(&self, k: usize) -> &[F] {
        let n = self.n_rec;
        self.floats
            .as_ref()
            .get(k * n..(k + 1) * n)
            .unwrap_or_default()
    }

    /// Refractory steps left per neuron, as of the last [`CellState::settle`] or step other
    /// than [`crate::Cell::step_inference`] (which keeps, instead of counters, the steps at
    /// which the neurons spiked: see [`CellState::refractory_left_of`] for the count either
    /// way).
    pub fn refractory_left(&self) -> &[u16] {
        self.refractory_left.as_ref()
    }

    /// Refractory steps left of neuron `j` (0 past the last neuron), also after lean steps.
    pub fn refractory_left_of(&self, j: usize) -> u16 {
        let l = self.refractory_left.as_ref().get(j).copied().unwrap_or(0);
        if self.stamps.on {
            self.stamps.left(l)
        } else {
            l
        }
    }

    /// Brings what lean steps ([`crate::Cell::step_inference`]) keep in their own form back
    /// to the form of the accessors: [`CellState::refractory_left`] counts again.
    pub fn settle(&mut self) {
        self.use_counts();
    }

    /// The state of neuron `j`.
    #[inline(always)]
    pub fn neuron(&self, j: usize) -> NeuronState<F> {
        let f = self.floats.as_ref();
        NeuronState {
            v: f[j],
            z: f[self.n_rec + j],
            b: f[2 * self.n_rec + j],
        }
    }

    /// Overwrites the state of neuron `j`.
    #[inline(always)]
    pub fn set_neuron(&mut self, j: usize, s: NeuronState<F>) {
        let n = self.n_rec;
        let f = self.floats.as_mut();
        f[j] = s.v;
        f[n + j] = s.z;
        f[2 * n + j] = s.b;
        let bit = self.group_bit(j);
        if s.z.to_bits_u64() != 0 {
            self.spike_groups |= bit;
        }
        self.spiked.valid = false;
        if s.z.to_bits_u64() != 0 {
            self.loose_spikes = true;
        }
        if (s.v.to_bits_u64() | s.z.to_bits_u64() | s.b.to_bits_u64()) != 0 {
            self.active_groups |= bit;
        }
        if !(plain(s.z) && plain(s.b)) || s.b.is_sign_negative() {
            self.odd = true;
        }
    }

    /// The summary bit of the group of neuron `j`.
    #[inline(always)]
    fn group_bit(&self, j: usize) -> u64 {
        group_bit(j, self.group_shift)
    }

    /// After a counter was set by hand: the list of refractory neurons is rebuilt by the next
    /// step, and the group of neuron `j` is no longer at rest if it is refractory.
    fn note_refractory(&mut self, j: usize) {
        self.refractory.valid = false;
        self.loose_spikes = true;
        if self.refractory_left.as_ref()[j] > 0 {
            self.active_groups |= self.group_bit(j);
        }
    }

    /// The spikes of the last step as `(neuron, z)`, neurons ascending: exactly the non-zero
    /// entries of [`CellState::z`], found through the group summary (cost: the groups that
    /// spiked, not N).
    pub fn spikes(&self) -> impl Iterator<Item = (usize, F)> + '_ {
        spikes_of(self.z(), &self.spiked, self.spike_groups, self.group_shift)
    }

    /// The ring entry that will arrive at neuron `j` in `delay` steps (0 = this coming step),
    /// in the ring's own unit (see [`Accumulator`]).
    pub fn ring_entry(&self, j: usize, delay: usize) -> R::Acc {
        let at = self.ring_index(j, delay);
        let tail = &self.floats.as_ref()[3 * self.n_rec..];
        self.ring.slots_ref(tail)[at]
    }

    /// Sets the refractory history of neuron `j` from the original's `z_buffer` row (oldest
    /// first, newest last; any length, only its last R entries matter for R = `n_refractory`).
    pub fn set_refractory_history(&mut self, j: usize, history: &[F], n_refractory: usize) {
        self.use_counts();
        let recent = &history[history.len().saturating_sub(n_refractory)..];
        let left = recent
            .iter()
            .rposition(|&z| z > F::zero())
            .map_or(0, |k| k + 1 + n_refractory - recent.len());
        self.refractory_left.as_mut()[j] = left as u16;
        self.note_refractory(j);
    }

    /// Sets how many refractory steps neuron `j` has left.
    pub fn set_refractory_left(&mut self, j: usize, left: u16) {
        self.use_counts();
        self.refractory_left.as_mut()[j] = left;
        self.note_refractory(j);
    }

    #[inline(always)]
    fn ring_index(&self, j: usize, delay: usize) -> usize {
        let slot = (self.head + delay) % self.n_delay;
        slot * self.n_rec + j
    }

    /// Splits the storage for one step: the ring (with its head slot) and the neurons' part.
    #[inline(always)]
    pub(crate) fn step_view(&mut self) -> StepView<'_, F, R::Acc> {
        let n = self.n_rec;
        let (vzb, tail) = self.floats.as_mut().split_at_mut(3 * n);
        let (v, zb) = vzb.split_at_mut(n);
        let (z, b) = zb.split_at_mut(n);
        StepView {
            v,
            z,
            b,
            ring: self.ring.slots(tail),
            head: self.head,
            n_delay: self.n_delay,
            refractory_left: self.refractory_left.as_mut(),
            spike_groups: &mut self.spike_groups,
            active_groups: &mut self.active_groups,
            spiked: &mut self.spiked,
            refractory: &mut self.refractory,
            loose_spikes: self.loose_spikes,
            group_shift: self.group_shift,
            rows: self.rows.as_ref(),
            clock: self.stamps.clock,
        }
    }

    /// Before a lean step of a cell with refractory period `r`: the counters become stamps
    /// (see [`Stamps`]), unless some counter set by hand exceeds `r` or `r` is too long for
    /// stamps (`false`: the step counts them down, as other steps do).
    pub(crate) fn use_stamps(&mut self, r: usize) -> bool {
        let Ok(r) = u16::try_from(r) else {
            return false;
        };
        if r > MAX_STAMPED_REFRACTORY {
            return false;
        }
        let st = &mut self.stamps;
        if (st.on && st.r == r) || st.zeroed {
            // (Counters all 0 since the reset: stamps already.)
            st.on = true;
            st.zeroed = false;
            st.r = r;
            return true;
        }
        self.use_counts();
        let left = self.refractory_left.as_mut();
        if left.iter().any(|&l| l > r) {
            return false;
        }
        let st = &mut self.stamps;
        for l in left.iter_mut().filter(|l| **l > 0) {
            // Spiked `r + 1 - l` steps ago (as of this coming step).
            *l = st.clock - (r + 1 - *l);
        }
        st.on = true;
        st.r = r;
        true
    }

    /// The counters as counts again (before any step other than a lean one, and before they
    /// are read or set by hand).
    pub(crate) fn use_counts(&mut self) {
        let st = &mut self.stamps;
        st.zeroed = false;
        if !st.on {
            return;
        }
        for l in self.refractory_left.as_mut().iter_mut() {
            *l = st.left(*l);
        }
        st.on = false;
        // Rebuilt from the counters by the next count-down.
        self.refractory.valid = false;
    }

    /// After a lean step (stamps on): the clock moves on.
    pub(crate) fn tick(&mut self) {
        let st = &mut self.stamps;
        st.clock += 1;
        if st.clock >= CLOCK_CEIL {
            st.rebase(self.refractory_left.as_mut());
        }
    }

    /// Moves the ring buffer one step on (the emptied slot 0 becomes slot D-1).
    pub(crate) fn advance(&mut self) {
        // Every `z` now set is a spike of this step, whose neuron's counter is R.
        self.loose_spikes = false;
        self.head += 1;
        if self.head >= self.n_delay {
            self.head = 0;
        }
    }
}

/// Where the clock of [`Stamps`] starts and above which it stays: a free neuron's 0 then looks
/// at least this many steps old.
const CLOCK_FLOOR: u16 = 0x4000;
/// The clock is set back by `CLOCK_CEIL - CLOCK_FLOOR` when it reaches this.
const CLOCK_CEIL: u16 = 0xC000;
/// The longest refractory period kept as stamps.
const MAX_STAMPED_REFRACTORY: u16 = CLOCK_FLOOR - 2;

/// The refractory counters as lean steps keep them: instead of the steps left (counted down
/// every step), the clock reading of the step at which the neuron spiked (0: never, or long
/// ago). A neuron is refractory in the step at clock `c` while `0 < c - stamp <= R`: for a
/// free neuron `c - 0 >= CLOCK_FLOOR > R`. Nothing is counted down; the clock moves on once
/// per step and is set back, with the stamps still in use, every 32 768 steps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamps {
    /// The counters hold stamps.
    on: bool,
    /// Every counter is 0 (since a reset): counts and stamps at once.
    zeroed: bool,
    /// This coming step's reading.
    clock: u16,
    /// The refractory period `R` the stamps were made for.
    r: u16,
}

impl Stamps {
    const fn new() -> Self {
        Stamps {
            on: false,
            zeroed: true,
            clock: CLOCK_FLOOR,
            r: 0,
        }
    }

    /// The steps left of stamp `s` (as [`NeuronList::count_down`] would have left them):
    /// `R + 1 - (clock - s)` for the `clock - s` in `1..=R` of a refractory neuron, else 0.
    fn left(&self, s: u16) -> u16 {
        let age = self.clock.wrapping_sub(s);
        if (1..=self.r).contains(&age) {
            self.r + 1 - age
        } else {
            0
        }
    }

    /// Sets the clock back, keeping the stamps of refractory neurons (the others become 0).
    #[cold]
    #[inline(never)]
    fn rebase(&mut self, stamps: &mut [u16]) {
        let shift = CLOCK_CEIL - CLOCK_FLOOR;
        for s in stamps.iter_mut() {
            *s = if self.clock.wrapping_sub(*s) <= self.r {
                *s - shift
            } else {
                0
            };
        }
        self.clock -= shift;
    }
}

/// Capacity of [`NeuronList`].
const NEURON_LIST: usize = 64;

/// A short list of neurons (those that spiked, or that are refractory), when they fit and
/// `valid` (otherwise the summaries stand in, or a step scans every counter and rebuilds it).
#[derive(Clone, Debug)]
pub(crate) struct NeuronList {
    ids: [u16; NEURON_LIST],
    len: usize,
    /// The list holds exactly the neurons it stands for (those that spiked in the last step,
    /// ascending; or the refractory ones), each once.
    pub valid: bool,
}

impl NeuronList {
    const fn new() -> Self {
        NeuronList {
            ids: [0; NEURON_LIST],
            len: 0,
            valid: true,
        }
    }

    /// Empty and valid.
    #[inline(always)]
    pub fn clear(&mut self) {
        self.len = 0;
        self.valid = true;
    }

    /// The neurons listed.
    #[inline(always)]
    pub fn ids(&self) -> &[u16] {
        self.ids.get(..self.len).unwrap_or_default()
    }

    /// Adds neuron `j` (not listed yet); the list is no longer valid if it is full.
    #[inline(always)]
    pub fn push(&mut self, j: usize) {
        match self.ids.get_mut(self.len) {
            Some(slot) => {
                *slot = j as u16;
                self.len += 1;
            }
            None => {
                crate::rare();
                self.valid = false;
            }
        }
    }

    /// Counts down the counters at the end of a step: the neurons listed before the step
    /// (the first `before`) by one, dropping those that reach 0; those added in the step
    /// (spikes, counters just set to R) stay. If the list is not valid, every counter that is
    /// not 0 and whose neuron did not spike (`z` is `+0`) is counted down, and the list
    /// rebuilt if it can be.
    #[inline(never)]
    pub fn count_down<F: Real>(&mut self, before: usize, left: &mut [u16], z: &[F]) {
        if !self.valid {
            self.len = 0;
            self.valid = true;
            for (j, (l, z)) in left.iter_mut().zip(z).enumerate() {
                if *l > 0 {
                    if z.to_bits_u64() == 0 {
                        *l -= 1;
                    }
                    if *l > 0 {
                        self.push(j);
                    }
                }
            }
            return;
        }
        let len = self.len.min(NEURON_LIST);
        let before = before.min(len);
        let mut kept = 0;
        for i in 0..before {
            // Refractory during the step, so it did not spike.
            let j = self.ids[i];
            if let Some(l) = left.get_mut(usize::from(j)) {
                *l = l.saturating_sub(1);
                if *l > 0 {
                    self.ids[kept] = j;
                    kept += 1;
                }
            }
        }
        // Those added in the step, moved down (no memmove: it would cost the firmware flash).
        for i in before..len {
            self.ids[kept] = self.ids[i];
            kept += 1;
        }
        self.len = kept;
    }

    /// Number of neurons listed.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Removes the first `k` neurons listed (moving the others down; no memmove, which would
    /// cost the firmware flash).
    pub fn drop_first(&mut self, k: usize) {
        let len = self.len.min(NEURON_LIST);
        let k = k.min(len);
        for i in k..len {
            self.ids[i - k] = self.ids[i];
        }
        self.len = len - k;
    }
}

/// The parts of a state one step works on.
pub(crate) struct StepView<'a, F, A> {
    pub v: &'a mut [F],
    pub z: &'a mut [F],
    pub b: &'a mut [F],
    /// D slots of N accumulators; slot `(head + d) mod D` arrives in `d` steps.
    pub ring: &'a mut [A],
    pub head: usize,
    pub n_delay: usize,
    pub refractory_left: &'a mut [u16],
    /// The summaries (see [`CellState`]); the step rewrites them.
    pub spike_groups: &'a mut u64,
    pub active_groups: &'a mut u64,
    pub spiked: &'a mut NeuronList,
    pub refractory: &'a mut NeuronList,
    /// Whether some `z` or counter was set by hand since the last step (so a neuron with `z`
    /// set might not be refractory).
    pub loose_spikes: bool,
    pub group_shift: u32,
    /// Where each slot starts (rings of at most 16 slots).
    pub rows: Option<&'a RowTable>,
    /// The clock of the stamps (lean steps, see [`Stamps`]).
    pub clock: u16,
}

/// The summary bit of the group of neuron `j` (groups of `1 << shift` neurons; bit
/// `(j >> shift) mod 64`): a 32-bit shift and a choice of half ([`group_half_bit`]), where a
/// 64-bit shift by a variable costs about ten instructions on a 32-bit core.
#[inline(always)]
pub(crate) fn group_bit(j: usize, shift: u32) -> u64 {
    let (half, bit) = group_half_bit(j, shift);
    if half == 0 {
        u64::from(bit)
    } else {
        u64::from(bit) << 32
    }
}

/// The bit of [`group_bit`] as the half of the `u64` it lies in (0: low, 1: high) and the bit
/// within that half.
#[inline(always)]
pub(crate) fn group_half_bit(j: usize, shift: u32) -> (usize, u32) {
    let g = (j >> shift) as u32;
    (((g >> 5) & 1) as usize, 1 << (g & 31))
}

/// The non-zero entries of `z`, ascending: the listed ones, or (when the list is not valid)
/// those in the groups marked in `groups`.
#[inline(always)]
pub(crate) fn spikes_of<'a, F: Real>(
    z: &'a [F],
    list: &'a NeuronList,
    groups: u64,
    shift: u32,
) -> Spikes<'a, F> {
    Spikes {
        z,
        ids: if list.valid { list.ids() } else { &[] },
        groups: if list.valid { 0 } else { groups },
        shift,
        at: 0,
        end: 0,
    }
}

/// The iterator of [`spikes_of`].
pub(crate) struct Spikes<'a, F> {
    z: &'a [F],
    /// Listed spikes still to come.
    ids: &'a [u16],
    /// Groups still to scan, and the part of the current one still to scan.
    groups: u64,
    shift: u32,
    at: usize,
    end: usize,
}

impl<F: Real> Iterator for Spikes<'_, F> {
    type Item = (usize, F);

    #[inline(always)]
    fn next(&mut self) -> Option<(usize, F)> {
        if let Some((&j, rest)) = self.ids.split_first() {
            self.ids = rest;
            let j = usize::from(j);
            return self.z.get(j).map(|&zj| (j, zj));
        }
        loop {
            while self.at < self.end {
                let k = self.at;
                self.at += 1;
                // `x & !sign != 0` is `x != 0.0` (NaN included), without a float comparison.
                match self.z.get(k) {
                    Some(&zk) if zk.to_bits_u64() & !F::SIGN_BIT != 0 => return Some((k, zk)),
                    _ => {}
                }
            }
            if self.groups == 0 {
                return None;
            }
            // (Only without a valid list of the spikes.)
            crate::rare();
            let g = self.groups.trailing_zeros() as usize;
            self.groups &= self.groups - 1;
            self.at = (g << self.shift).min(self.z.len());
            self.end = ((g + 1) << self.shift).min(self.z.len());
        }
    }

    /// The listed spikes in a loop of their own (delivery's `for_each`: its state in
    /// registers), then the rest as `next` gives them.
    #[inline(always)]
    fn fold<B, G: FnMut(B, Self::Item) -> B>(mut self, init: B, mut g: G) -> B {
        let mut acc = init;
        for &j in self.ids {
            let j = usize::from(j);
            let Some(&zj) = self.z.get(j) else {
                return acc;
            };
            acc = g(acc, (j, zj));
        }
        self.ids = &[];
        for spike in self {
            acc = g(acc, spike);
        }
        acc
    }
}

/// A [`CellState`] in fixed arrays: no allocator, capacity known at compile time.
/// `FL` must equal `(3 + D) * N` (checked by [`CellState::new`]).
pub type FixedCellState<F, const FL: usize, const N: usize> = CellState<F, [F; FL], [u16; N]>;

/// A [`CellState`] for integer weights in fixed arrays: `FL` = `3 N` floats, `RL` = `D N`
/// ring entries.
pub type FixedI32CellState<F, const FL: usize, const N: usize, const RL: usize> =
    CellState<F, [F; FL], [u16; N], I32Ring<[i32; RL]>>;

/// Builds a zeroed [`FixedCellState`].
pub fn fixed_state<F: Real, const FL: usize, const N: usize>(
    n_delay: usize,
) -> Result<FixedCellState<F, FL, N>, CoreError> {
    CellState::new([F::zero(); FL], [0u16; N], N, n_delay)
}

#[cfg(test)]
mod tests {
    use super::group_bit;

    #[test]
    fn group_bits_are_the_64_bit_shift_they_stand_for() {
        for shift in [0, 1, 2, 3, 5, 8] {
            for j in (0..1024).chain([usize::MAX, usize::MAX / 3, 1 << 31, (1 << 32) + 37]) {
                assert_eq!(
                    group_bit(j, shift),
                    1u64 << ((j >> shift) & 63),
                    "{j} {shift}"
                );
            }
        }
    }
}
