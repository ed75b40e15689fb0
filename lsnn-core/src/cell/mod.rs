//! The LSNN cell: event-driven delivery into the delay ring, then one [`neuron_step`] per neuron.

mod quiet;

use core::marker::PhantomData;

use crate::error::check_len;
use crate::neuron::allows_shortcuts;
use crate::state::{group_bit, Accumulator, RingStore, StepView};
use crate::synapse::{self, DelayRing, Synapses};
use crate::{neuron_step, CellConfig, CellState, CoreError, Neuron, NeuronState, Real, StepConsts};
use quiet::Segments;

/// A source of standard-normal samples for the injected current noise; the caller supplies it
/// (an RNG on the host, a hardware RNG or a small PRNG on a device).
pub trait CurrentNoise<F> {
    /// One draw from N(0, 1).
    fn standard_normal(&mut self) -> F;
}

/// No noise (the default of both tutorials).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNoise;

impl<F: Real> CurrentNoise<F> for NoNoise {
    fn standard_normal(&mut self) -> F {
        F::zero()
    }
}

/// An LSNN cell (recurrent ALIF population with delayed input and recurrent synapses).
///
/// `A` is the element type of the delay ring (see [`Accumulator`]): `F` for float weights
/// ([`Cell::new`]), `i32` for integer weights ([`Cell::new_integer`]). The neuron equations are
/// the same [`neuron_step`] either way; only the delivery arithmetic and the conversion of a
/// ring entry into the current `i_t` differ.
///
/// `Ns` holds the neurons' constants: borrowed by default, or owned (a `Vec`, a fixed array;
/// see [`crate::runner`]).
#[derive(Clone, Debug)]
pub struct Cell<'a, F, In, Rec, A = F, Ns = &'a [Neuron<F>]> {
    config: CellConfig<F>,
    consts: StepConsts<F>,
    neurons: Ns,
    w_in: In,
    w_rec: Rec,
    /// Current of one ring unit (1 for float rings).
    unit: F,
    /// Every neuron [`allows_shortcuts`] and `dt = V0 = 1`: steps without noise take the
    /// exact shortcuts.
    shortcuts: bool,
    /// How the shortcuts sweep the neurons.
    segments: Segments<F>,
    _acc: PhantomData<(A, &'a ())>,
}

impl<F: Real, In, Rec, A: Accumulator<F>, Ns: AsRef<[Neuron<F>]>> Cell<'_, F, In, Rec, A, Ns> {
    /// The one place a cell is put together (after its checks).
    fn assemble(config: CellConfig<F>, neurons_in: Ns, w_in: In, w_rec: Rec, unit: F) -> Self {
        let consts = config.step_consts();
        let neurons = neurons_in.as_ref();
        Cell {
            // Also `beta <= 2^32`: with the bounds the state keeps on `b` (see
            // `CellState`), every threshold is then finite (see `NoSpikeFinite`).
            shortcuts: neurons
                .iter()
                .all(|n| allows_shortcuts(n) && n.beta <= F::of(4_294_967_296.0))
                && consts.decay_b.is_finite()
                && consts.decay_b.is_sign_positive()
                && consts.one_minus_decay_b.is_finite()
                && consts.one_minus_decay_b.is_sign_positive()
                && consts.spike > F::zero()
                // The shortcuts leave out the factors dt and V0 (see `One`).
                && consts.dt == F::one()
                && consts.v0 == F::one(),
            segments: Segments::new::<A>(neurons, unit),
            consts,
            config,
            neurons: neurons_in,
            w_in,
            w_rec,
            unit,
            _acc: PhantomData,
        }
    }
}

impl<'a, F: Real, In: Synapses<F>, Rec: Synapses<F>> Cell<'a, F, In, Rec> {
    /// Assembles a cell with float weights after validating every size, delay and weight
    /// (once, so that [`Cell::step`] only has to check the input length).
    pub fn new(
        config: CellConfig<F>,
        neurons: &'a [Neuron<F>],
        w_in: In,
        w_rec: Rec,
    ) -> Result<Self, CoreError> {
        check_shapes(&config, neurons, &w_in, &w_rec)?;
        synapse::validate(&w_in, "w_in", config.n_delay, false)?;
        synapse::validate(&w_rec, "w_rec", config.n_delay, true)?;
        Ok(Cell::assemble(config, neurons, w_in, w_rec, F::one()))
    }
}

impl<'a, F: Real, In: Synapses<i32>, Rec: Synapses<i32>> Cell<'a, F, In, Rec, i32> {
    /// Assembles a cell with integer weights: an input spike through synapse `w` adds `w` to the
    /// i32 ring, a recurrent spike too (the spike value `1/dt` must be folded into the
    /// recurrent weights), and a ring entry `acc` arrives as the current `acc as F * unit`.
    ///
    /// Besides what [`Cell::new`] checks, the sum of `|w|` over all synapses of both matrices
    /// must fit in an `i32`: every synapse adds to a given ring entry at most once (one arrival
    /// step per synapse and step, inputs are spikes), so no entry can overflow.
    pub fn new_integer(
        config: CellConfig<F>,
        neurons: &'a [Neuron<F>],
        w_in: In,
        w_rec: Rec,
        unit: F,
    ) -> Result<Self, CoreError> {
        check_shapes(&config, neurons, &w_in, &w_rec)?;
        synapse::validate_with(&w_in, "w_in", config.n_delay, false, |_| true)?;
        synapse::validate_with(&w_rec, "w_rec", config.n_delay, true, |_| true)?;
        if !(unit.is_finite() && unit > F::zero()) {
            return Err(CoreError::Parameter {
                what: "integer ring unit",
                why: "must be finite and > 0",
            });
        }
        let total = synapse::abs_sum(&w_in).saturating_add(synapse::abs_sum(&w_rec));
        if total > i32::MAX as u64 {
            return Err(CoreError::Parameter {
                what: "integer weights",
                why: "the sum of |w| over all synapses exceeds i32::MAX (the ring could overflow)",
            });
        }
        Ok(Cell::assemble(config, neurons, w_in, w_rec, unit))
    }
}

impl<F: Real, A: Accumulator<F>, In: Synapses<A>, Rec: Synapses<A>, Ns: AsRef<[Neuron<F>]>>
    Cell<'_, F, In, Rec, A, Ns>
{
    /// A cell whose synapses were validated elsewhere (a parsed model's, whose parser checked
    /// targets, delays, autapses, finiteness and, for integer weights, the i32 bound): only the
    /// shapes are checked here, which keeps a second validation pass out of device builds.
    pub(crate) fn from_validated(
        config: CellConfig<F>,
        neurons: Ns,
        w_in: In,
        w_rec: Rec,
        unit: F,
    ) -> Result<Self, CoreError> {
        check_shapes(&config, neurons.as_ref(), &w_in, &w_rec)?;
        Ok(Cell::assemble(config, neurons, w_in, w_rec, unit))
    }
}

fn check_shapes<F: Real, W, In: Synapses<W>, Rec: Synapses<W>>(
    config: &CellConfig<F>,
    neurons: &[Neuron<F>],
    w_in: &In,
    w_rec: &Rec,
) -> Result<(), CoreError> {
    config.validate()?;
    let n = neurons.len();
    if n == 0 || n > usize::from(u16::MAX) + 1 {
        return Err(CoreError::Size {
            what: "n_rec",
            value: n,
            allowed: "1..=65536",
        });
    }
    check_len("w_in columns (n_rec)", n, w_in.n_post())?;
    check_len("w_rec rows (n_rec)", n, w_rec.n_pre())?;
    check_len("w_rec columns (n_rec)", n, w_rec.n_post())
}

impl<F: Real, A: Accumulator<F>, In: Synapses<A>, Rec: Synapses<A>, Ns: AsRef<[Neuron<F>]>>
    Cell<'_, F, In, Rec, A, Ns>
{
    /// The cell's parameters.
    pub fn config(&self) -> &CellConfig<F> {
        &self.config
    }

    /// The derived per-step constants.
    pub fn consts(&self) -> &StepConsts<F> {
        &self.consts
    }

    /// The neurons.
    pub fn neurons(&self) -> &[Neuron<F>] {
        self.neurons.as_ref()
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.w_in.n_pre()
    }

    /// Number of recurrent neurons.
    pub fn n_rec(&self) -> usize {
        self.neurons().len()
    }

    /// The input synapses.
    pub fn w_in(&self) -> &In {
        &self.w_in
    }

    /// The recurrent synapses.
    pub fn w_rec(&self) -> &Rec {
        &self.w_rec
    }

    /// The current one ring unit stands for (1 for float weights).
    pub fn unit(&self) -> F {
        self.unit
    }

    /// The threshold neuron `j` used in the last step, from its adaptation `b` (state after step).
    pub fn threshold(&self, j: usize, b: F) -> F {
        self.neurons()[j].threshold(b, self.consts.v0)
    }

    /// A zeroed state sized for this cell in caller-provided storage (float ring; see
    /// [`CellState::with_ring`] for others).
    pub fn state_in<S, C>(&self, floats: S, counters: C) -> Result<CellState<F, S, C>, CoreError>
    where
        S: AsRef<[F]> + AsMut<[F]>,
        C: AsRef<[u16]> + AsMut<[u16]>,
    {
        CellState::new(floats, counters, self.n_rec(), self.config.n_delay)
    }

    /// Advances `state` by one step with the dense input `x` (length n_in; zeros cost nothing).
    ///
    /// Afterwards `state.z()`, `state.v()` are the step's outputs `z_new`, `v_new`, and
    /// [`Cell::threshold`] of `state.b()` gives its threshold `A`.
    pub fn step<S, C, R, Noise>(
        &self,
        state: &mut CellState<F, S, C, R>,
        x: &[F],
        noise: &mut Noise,
    ) -> Result<(), CoreError>
    where
        S: AsRef<[F]> + AsMut<[F]>,
        C: AsRef<[u16]> + AsMut<[u16]>,
        R: RingStore<F, Acc = A>,
        Noise: CurrentNoise<F>,
    {
        check_len("input x_t (n_in)", self.n_in(), x.len())?;
        let events = x
            .iter()
            .enumerate()
            .filter(|(_, &xi)| xi != F::zero())
            .map(|(i, &xi)| (i, xi));
        self.step_events(state, events, noise)
    }

    /// Advances `state` by one step whose input is given as events `(input index, value)`
    /// (a spike is value 1); inputs not listed are 0. Cells with integer weights take spike
    /// events only (value exactly 1).
    pub fn step_events<S, C, R, Noise, E>(
        &self,
        state: &mut CellState<F, S, C, R>,
        events: E,
        noise: &mut Noise,
    ) -> Result<(), CoreError>
    where
        S: AsRef<[F]> + AsMut<[F]>,
        C: AsRef<[u16]> + AsMut<[u16]>,
        R: RingStore<F, Acc = A>,
        Noise: CurrentNoise<F>,
        E: IntoIterator<Item = (usize, F)>,
    {
        self.advance::<false, _, _, _, _, _>(state, events, noise)
    }

    /// [`Cell::step_events`] for inference: the same spikes, voltages, ring and refractory
    /// periods, but the adaptation `b` of LIF neurons (`beta = 0`) is not kept, because
    /// nothing reads it: their threshold is `thr` whatever (finite) `b` is. Afterwards
    /// `state.b()` holds, for LIF neurons, a value that steps since [`CellState::reset`] or
    /// [`CellState::set_neuron`] may not have updated; and the refractory counters are kept
    /// as the steps at which the neurons spiked, not counted down:
    /// [`CellState::refractory_left_of`] gives the counts, [`CellState::refractory_left`] does
    /// after [`CellState::settle`]. Every other value is the one [`Cell::step_events`] gives. A
    /// later [`Cell::step_events`] behaves the same either way (but its `b` of LIF neurons
    /// starts from what is there).
    pub fn step_inference<S, C, R, Noise, E>(
        &self,
        state: &mut CellState<F, S, C, R>,
        events: E,
        noise: &mut Noise,
    ) -> Result<(), CoreError>
    where
        S: AsRef<[F]> + AsMut<[F]>,
        C: AsRef<[u16]> + AsMut<[u16]>,
        R: RingStore<F, Acc = A>,
        Noise: CurrentNoise<F>,
        E: IntoIterator<Item = (usize, F)>,
    {
        self.advance::<true, _, _, _, _, _>(state, events, noise)
    }

    /// One step; `LEAN`: see [`Cell::step_inference`].
    #[inline(never)]
    fn advance<const LEAN: bool, S, C, R, Noise, E>(
        &self,
        state: &mut CellState<F, S, C, R>,
        events: E,
        noise: &mut Noise,
    ) -> Result<(), CoreError>
    where
        S: AsRef<[F]> + AsMut<[F]>,
        C: AsRef<[u16]> + AsMut<[u16]>,
        R: RingStore<F, Acc = A>,
        Noise: CurrentNoise<F>,
        E: IntoIterator<Item = (usize, F)>,
    {
        check_len("state n_rec", self.n_rec(), state.n_rec())?;
        check_len("state n_delay", self.config.n_delay, state.n_delay())?;
        let quiet = self.shortcuts && !state.is_odd() && !self.noisy();
        // A lean step keeps the refractory counters as stamps (nothing counted down).
        let stamps = LEAN && quiet && state.use_stamps(self.config.n_refractory);
        if !stamps {
            state.use_counts();
        }
        let view = state.step_view();
        let n = view.v.len();
        let (z, spiked) = (&*view.z, &*view.spiked);
        let (groups, shift) = (*view.spike_groups, view.group_shift);
        let spikes = crate::state::spikes_of(z, spiked, groups, shift);
        let (head, n_delay) = (view.head, view.n_delay);
        let slots = &mut *view.ring;
        match view.rows {
            Some(table) => {
                let got = slots.len();
                let Some(mut ring) = DelayRing::new(slots, table, head) else {
                    return Err(CoreError::Length {
                        what: "state ring storage (D N)",
                        expected: n_delay * n,
                        got,
                    });
                };
                self.deliver_all(&mut ring, events, spikes)?
            }
            None => {
                let rows = Computed { head, n_delay, n };
                self.deliver_all(&mut Ring::new(slots, rows), events, spikes)?
            }
        }
        if stamps {
            self.update_quiet::<true>(view);
        } else if quiet && !LEAN {
            self.update_quiet::<false>(view);
        } else {
            self.update_neurons(view, noise);
        }
        state.advance();
        if stamps {
            state.tick();
        }
        Ok(())
    }

    /// Delivers the input events, then the PREVIOUS spikes `z` (still in the state), visiting
    /// only the groups of neurons that the spike summary marks (neurons ascending, as a scan
    /// of `z` would).
    #[inline(always)]
    fn deliver_all<E: IntoIterator<Item = (usize, F)>, T: Target<F, A>>(
        &self,
        ring: &mut T,
        events: E,
        spikes: impl Iterator<Item = (usize, F)>,
    ) -> Result<(), CoreError> {
        for (i, xi) in events {
            if i >= self.n_in() {
                crate::rare();
                return Err(CoreError::Size {
                    what: "input event index",
                    value: i,
                    allowed: "< n_in",
                });
            }
            if !A::takes_input(xi) {
                crate::rare();
                return Err(CoreError::Parameter {
                    what: "input event value",
                    why: "cells with integer weights take spike events (value 1) only",
                });
            }
            deliver(&self.w_in, i, ring, |w| A::input(xi, w));
        }
        spikes.for_each(|(k, zk)| deliver(&self.w_rec, k, ring, |w| A::spike(zk, w)));
        Ok(())
    }

    /// Whether the step adds current noise.
    fn noisy(&self) -> bool {
        self.config.injected_noise_current > F::zero()
    }

    /// The step of every neuron by [`neuron_step`], with noise if the cell has it. Out of line:
    /// one call per step, and a function of its own keeps the loop's values in registers on a
    /// Cortex-M4.
    #[inline(never)]
    fn update_neurons<Noise: CurrentNoise<F>>(&self, view: StepView<'_, F, A>, noise: &mut Noise) {
        let noisy = self.noisy();
        let noise_std = self.config.injected_noise_current;
        let n_refractory = self.config.n_refractory as u16;
        let n = view.v.len();
        let start = view.head * n;
        let Some(i_now) = view.ring.get_mut(start..start + n) else {
            return;
        };
        let unit = self.unit;
        let consts = &self.consts;
        // One index over equally long slices: the bounds checks fold away and the loop keeps
        // one counter (a six-way zip costs a dozen instructions per neuron on a Cortex-M4).
        let neurons = self.neurons();
        let neurons = &neurons[..n.min(neurons.len())];
        let n = neurons.len();
        let (v, z, b) = (&mut view.v[..n], &mut view.z[..n], &mut view.b[..n]);
        let (i_now, refractory_left) = (&mut i_now[..n], &mut view.refractory_left[..n]);
        let shift = view.group_shift;
        let mut groups = 0u64;
        view.spiked.clear();
        for j in 0..n {
            let mut i_t = i_now[j].current(unit);
            if noisy {
                i_t = i_t + noise_std * noise.standard_normal();
            }
            let prev = NeuronState {
                v: v[j],
                z: z[j],
                b: b[j],
            };
            let left = refractory_left[j];
            let out = neuron_step(&neurons[j], consts, prev, i_t, left > 0);
            v[j] = out.state.v;
            z[j] = out.state.z;
            b[j] = out.state.b;
            let bit = group_bit(j, shift);
            if out.spiked {
                refractory_left[j] = n_refractory;
                groups |= bit;
                view.spiked.push(j);
            } else if left > 0 {
                refractory_left[j] = left - 1;
            }
            i_now[j] = A::default();
        }
        *view.spike_groups = groups;
        view.refractory.valid = false;
        *view.active_groups = u64::MAX;
    }
}

/// Delivers the outgoing synapses of `pre` into the ring, each weight mapped by `value`. Out of
/// line (one call per spike) so that the per-synapse loop keeps its values in registers.
#[inline(never)]
fn deliver<F, A: Accumulator<F>, S: Synapses<A>, T: Target<F, A>>(
    syn: &S,
    pre: usize,
    ring: &mut T,
    value: impl Fn(A) -> A,
) {
    ring.deliver(syn, pre, value);
}

/// A delay ring during delivery: a [`DelayRing`] (at most 16 slots), or a [`Ring`] whose
/// slots start where [`Computed`] says.
trait Target<F, A> {
    /// Adds `value(w)` for every synapse `w` of `pre` in `syn`.
    fn deliver<S: Synapses<A>>(&mut self, syn: &S, pre: usize, value: impl Fn(A) -> A);
}

impl<F, A: Accumulator<F>> Target<F, A> for DelayRing<'_, F, A> {
    #[inline(always)]
    fn deliver<S: Synapses<A>>(&mut self, syn: &S, pre: usize, value: impl Fn(A) -> A) {
        syn.deliver(pre, self, value);
    }
}

impl<F, A: Accumulator<F>> Target<F, A> for Ring<'_, F, A, Computed> {
    #[inline(always)]
    fn deliver<S: Synapses<A>>(&mut self, syn: &S, pre: usize, value: impl Fn(A) -> A) {
        syn.for_each_outgoing(pre, |target, delay, w| self.add(target, delay, value(w)));
    }
}

/// Where in the ring the slot that arrives in `delay` steps starts, during one step.
trait Rows {
    fn row(&self, delay: usize) -> usize;
}

/// The start of a slot, computed (more than 16 slots).
struct Computed {
    head: usize,
    n_delay: usize,
    n: usize,
}

impl Rows for Computed {
    #[inline(always)]
    fn row(&self, delay: usize) -> usize {
        let mut slot = self.head + delay;
        if slot >= self.n_delay {
            slot -= self.n_delay;
        }
        slot * self.n
    }
}

/// The delay ring during delivery.
struct Ring<'s, F, A, W> {
    slots: &'s mut [A],
    rows: W,
    _f: PhantomData<F>,
}

impl<'s, F, A: Accumulator<F>, W: Rows> Ring<'s, F, A, W> {
    #[inline(always)]
    fn new(slots: &'s mut [A], rows: W) -> Self {
        Ring {
            slots,
            rows,
            _f: PhantomData,
        }
    }

    /// Adds `x` to what arrives at `target` in `delay` steps. Targets and delays were validated
    /// when the cell was built; `get_mut` keeps this total anyway.
    #[inline(always)]
    fn add(&mut self, target: usize, delay: usize, x: A) {
        if let Some(e) = self.slots.get_mut(self.rows.row(delay) + target) {
            *e = e.add(x);
        }
    }
}
