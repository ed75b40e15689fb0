//! Per-network state in storage the caller owns: fixed arrays on a microcontroller,
//! `Vec`s on a host, or borrowed slices.

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
}

impl<F: Real> Accumulator<F> for i32 {
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

/// The state of an LSNN cell between steps: `v`, `z`, `b` per neuron, the delayed-current
/// ring buffer `i_future` (D slots of N currents) and, per neuron, how many refractory steps
/// are left (the original keeps the last R spikes; "any of them > 0" is exactly "a spike in the
/// last R steps", which a counter stores in O(1)).
///
/// With the default ring `R = `[`Inline`], `S` holds `3 N + D N` floats (see
/// [`CellState::float_len`]); with an [`I32Ring`] (integer weights) `S` holds `3 N` floats and
/// the ring `D N` integers. `C` holds `N` counters.
///
/// Besides, a 64-bit summary of where the spikes `z` are: bit `g` is set when a neuron of group
/// `g` (neurons `g << shift ..`, groups of a power of two covering N in at most 64 groups) may
/// have spiked. Delivery and the readout visit only those groups instead of scanning all N.
#[derive(Clone, Debug)]
pub struct CellState<F, S, C, R = Inline> {
    floats: S,
    refractory_left: C,
    ring: R,
    n_rec: usize,
    n_delay: usize,
    head: usize,
    spike_groups: u64,
    group_shift: u32,
    _f: PhantomData<F>,
}

/// `log2` of the smallest power-of-two group size that covers `n` neurons in 64 groups.
fn group_shift(n: usize) -> u32 {
    let per_group = n.div_ceil(64).max(1);
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
    pub fn v(&self) -> &[F] {
        &self.floats.as_ref()[..self.n_rec]
    }

    /// Spikes of the last step (0 or 1/dt).
    pub fn z(&self) -> &[F] {
        &self.floats.as_ref()[self.n_rec..2 * self.n_rec]
    }

    /// Threshold adaptation variables.
    pub fn b(&self) -> &[F] {
        &self.floats.as_ref()[2 * self.n_rec..3 * self.n_rec]
    }

    /// Refractory steps left per neuron.
    pub fn refractory_left(&self) -> &[u16] {
        self.refractory_left.as_ref()
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
        if s.z != F::zero() {
            self.spike_groups |= 1 << ((j >> self.group_shift) & 63);
        }
    }

    /// The spikes of the last step as `(neuron, z)`, neurons ascending: exactly the non-zero
    /// entries of [`CellState::z`], found through the group summary (cost: the groups that
    /// spiked, not N).
    pub fn spikes(&self) -> impl Iterator<Item = (usize, F)> + '_ {
        spikes_in(self.z(), self.spike_groups, self.group_shift)
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
        let recent = &history[history.len().saturating_sub(n_refractory)..];
        let left = recent
            .iter()
            .rposition(|&z| z > F::zero())
            .map_or(0, |k| k + 1 + n_refractory - recent.len());
        self.refractory_left.as_mut()[j] = left as u16;
    }

    /// Sets how many refractory steps neuron `j` has left.
    pub fn set_refractory_left(&mut self, j: usize, left: u16) {
        self.refractory_left.as_mut()[j] = left;
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
            group_shift: self.group_shift,
        }
    }

    /// Moves the ring buffer one step on (the emptied slot 0 becomes slot D-1).
    pub(crate) fn advance(&mut self) {
        self.head += 1;
        if self.head >= self.n_delay {
            self.head = 0;
        }
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
    /// The spike summary (see [`CellState`]); the step rewrites it.
    pub spike_groups: &'a mut u64,
    pub group_shift: u32,
}

/// The non-zero entries of `z` in the groups marked in `groups`, ascending.
#[inline(always)]
pub(crate) fn spikes_in<F: Real>(
    z: &[F],
    groups: u64,
    shift: u32,
) -> impl Iterator<Item = (usize, F)> + '_ {
    let mut bits = groups;
    core::iter::from_fn(move || {
        if bits == 0 {
            return None;
        }
        let g = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        Some(g)
    })
    .flat_map(move |g| {
        let start = (g << shift).min(z.len());
        let end = ((g + 1) << shift).min(z.len());
        z[start..end]
            .iter()
            .enumerate()
            .filter(|(_, &zk)| zk != F::zero())
            .map(move |(k, &zk)| (start + k, zk))
    })
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
