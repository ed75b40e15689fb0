//! Per-network state in storage the caller owns: fixed arrays on a microcontroller,
//! `Vec`s on a host, or borrowed slices.

use crate::{CoreError, NeuronState, Real};
use core::marker::PhantomData;

/// The state of an LSNN cell between steps: `v`, `z`, `b` per neuron, the delayed-current
/// ring buffer `i_future` (D slots of N currents) and, per neuron, how many refractory steps
/// are left (the original keeps the last R spikes; "any of them > 0" is exactly "a spike in the
/// last R steps", which a counter stores in O(1)).
///
/// `S` holds `3 N + D N` floats (see [`CellState::float_len`]), `C` holds `N` counters.
#[derive(Clone, Debug)]
pub struct CellState<F, S, C> {
    floats: S,
    refractory_left: C,
    n_rec: usize,
    n_delay: usize,
    head: usize,
    _f: PhantomData<F>,
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
        if n_delay == 0 {
            return Err(CoreError::Size {
                what: "n_delay",
                value: 0,
                allowed: ">= 1",
            });
        }
        let need = Self::float_len(n_rec, n_delay);
        if floats.as_ref().len() != need {
            return Err(CoreError::Length {
                what: "state float storage (3 N + D N)",
                expected: need,
                got: floats.as_ref().len(),
            });
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
            n_rec,
            n_delay,
            head: 0,
            _f: PhantomData,
        };
        state.reset();
        Ok(state)
    }

    /// Back to the all-zero initial state.
    pub fn reset(&mut self) {
        self.floats.as_mut().fill(F::zero());
        self.refractory_left.as_mut().fill(0);
        self.head = 0;
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
    }

    /// The current that will arrive at neuron `j` in `delay` steps (0 = this coming step).
    pub fn i_future(&self, j: usize, delay: usize) -> F {
        self.floats.as_ref()[self.slot_offset(delay) + j]
    }

    /// Sets the current that will arrive at neuron `j` in `delay` steps.
    pub fn set_i_future(&mut self, j: usize, delay: usize, value: F) {
        let at = self.slot_offset(delay) + j;
        self.floats.as_mut()[at] = value;
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
    fn slot_offset(&self, delay: usize) -> usize {
        let slot = (self.head + delay) % self.n_delay;
        (3 + slot) * self.n_rec
    }

    /// Adds `value` to the current arriving at `target` after `delay` steps.
    #[inline(always)]
    pub(crate) fn add_future_current(&mut self, target: usize, delay: usize, value: F) {
        let at = self.slot_offset(delay) + target;
        let f = self.floats.as_mut();
        f[at] = f[at] + value;
    }

    /// Splits the storage for one step of all neurons: (v, z, b, current slot, counters).
    pub(crate) fn step_view(&mut self) -> StepView<'_, F> {
        let n = self.n_rec;
        let current = self.slot_offset(0);
        let (vzb, ring) = self.floats.as_mut().split_at_mut(3 * n);
        let (v, zb) = vzb.split_at_mut(n);
        let (z, b) = zb.split_at_mut(n);
        let ring_start = current - 3 * n;
        StepView {
            v,
            z,
            b,
            i_now: &mut ring[ring_start..ring_start + n],
            refractory_left: self.refractory_left.as_mut(),
        }
    }

    /// Moves the ring buffer one step on (the emptied slot 0 becomes slot D-1).
    pub(crate) fn advance(&mut self) {
        self.head = (self.head + 1) % self.n_delay;
    }
}

pub(crate) struct StepView<'a, F> {
    pub v: &'a mut [F],
    pub z: &'a mut [F],
    pub b: &'a mut [F],
    pub i_now: &'a mut [F],
    pub refractory_left: &'a mut [u16],
}

/// A [`CellState`] in fixed arrays: no allocator, capacity known at compile time.
/// `FL` must equal `(3 + D) * N` (checked by [`CellState::new`]).
pub type FixedCellState<F, const FL: usize, const N: usize> = CellState<F, [F; FL], [u16; N]>;

/// Builds a zeroed [`FixedCellState`].
pub fn fixed_state<F: Real, const FL: usize, const N: usize>(
    n_delay: usize,
) -> Result<FixedCellState<F, FL, N>, CoreError> {
    CellState::new([F::zero(); FL], [0u16; N], N, n_delay)
}
