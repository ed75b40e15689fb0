//! The LSNN cell: event-driven delivery into the delay ring, then one [`neuron_step`] per neuron.

use core::marker::PhantomData;

use crate::neuron::{allows_shortcuts, neuron_step_with, NoSpike, One, PrevSpike};
use crate::state::{Accumulator, NeuronList, RingStore, StepView};
use crate::synapse::{self, Synapses};
use crate::{neuron_step, CellConfig, CellState, CoreError, Neuron, NeuronState, Real, StepConsts};

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

/// The body for `j` = 0, 1, 2, 3, written out: the firmware's size-optimised link-time pipeline
/// would keep a loop of four (or a closure called four times) instead.
macro_rules! four {
    ($j:ident => $body:block) => {{
        {
            let $j = 0;
            $body
        }
        {
            let $j = 1;
            $body
        }
        {
            let $j = 2;
            $body
        }
        {
            let $j = 3;
            $body
        }
    }};
}

/// An LSNN cell (recurrent ALIF population with delayed input and recurrent synapses).
///
/// `A` is the element type of the delay ring (see [`Accumulator`]): `F` for float weights
/// ([`Cell::new`]), `i32` for integer weights ([`Cell::new_integer`]). The neuron equations are
/// the same [`neuron_step`] either way; only the delivery arithmetic and the conversion of a
/// ring entry into the current `i_t` differ.
#[derive(Clone, Debug)]
pub struct Cell<'a, F, In, Rec, A = F> {
    config: CellConfig<F>,
    consts: StepConsts<F>,
    neurons: &'a [Neuron<F>],
    w_in: In,
    w_rec: Rec,
    /// Current of one ring unit (1 for float rings).
    unit: F,
    /// Every neuron [`allows_shortcuts`] and `dt = V0 = 1`: steps without noise take the
    /// exact shortcuts.
    shortcuts: bool,
    _acc: PhantomData<A>,
}

impl<'a, F: Real, In, Rec, A> Cell<'a, F, In, Rec, A> {
    /// The one place a cell is put together (after its checks).
    fn assemble(
        config: CellConfig<F>,
        neurons: &'a [Neuron<F>],
        w_in: In,
        w_rec: Rec,
        unit: F,
    ) -> Self {
        let consts = config.step_consts();
        Cell {
            shortcuts: neurons.iter().all(allows_shortcuts)
                && consts.decay_b.is_finite()
                && consts.decay_b.is_sign_positive()
                && consts.one_minus_decay_b.is_finite()
                && consts.one_minus_decay_b.is_sign_positive()
                && consts.spike > F::zero()
                // The shortcuts leave out the factors dt and V0 (see `One`).
                && consts.dt == F::one()
                && consts.v0 == F::one(),
            consts,
            config,
            neurons,
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

impl<'a, F: Real, A, In: Synapses<A>, Rec: Synapses<A>> Cell<'a, F, In, Rec, A> {
    /// A cell whose synapses were validated elsewhere (a parsed model's, whose parser checked
    /// targets, delays, autapses, finiteness and, for integer weights, the i32 bound): only the
    /// shapes are checked here, which keeps a second validation pass out of device builds.
    pub(crate) fn from_validated(
        config: CellConfig<F>,
        neurons: &'a [Neuron<F>],
        w_in: In,
        w_rec: Rec,
        unit: F,
    ) -> Result<Self, CoreError> {
        check_shapes(&config, neurons, &w_in, &w_rec)?;
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

impl<'a, F: Real, A: Accumulator<F>, In: Synapses<A>, Rec: Synapses<A>> Cell<'a, F, In, Rec, A> {
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
        self.neurons
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.w_in.n_pre()
    }

    /// Number of recurrent neurons.
    pub fn n_rec(&self) -> usize {
        self.neurons.len()
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
        self.neurons[j].threshold(b, self.consts.v0)
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
        check_len("state n_rec", self.n_rec(), state.n_rec())?;
        check_len("state n_delay", self.config.n_delay, state.n_delay())?;
        let view = state.step_view();
        let n = view.v.len();
        let (z, spiked) = (&*view.z, &*view.spiked);
        let (groups, shift) = (*view.spike_groups, view.group_shift);
        let spikes = crate::state::spikes_of(z, spiked, groups, shift);
        let slots = &mut *view.ring;
        match view.rows {
            Some(rows) => self.deliver_all(Ring::new(slots, Table(rows)), events, spikes)?,
            None => {
                let (head, n_delay) = (view.head, view.n_delay);
                let rows = Computed { head, n_delay, n };
                self.deliver_all(Ring::new(slots, rows), events, spikes)?
            }
        }
        if self.shortcuts && !view.maybe_negative && !self.noisy() {
            self.update_quiet(view);
        } else {
            self.update_neurons(view, noise);
        }
        state.advance();
        Ok(())
    }

    /// Delivers the input events, then the PREVIOUS spikes `z` (still in the state), visiting
    /// only the groups of neurons that the spike summary marks (neurons ascending, as a scan
    /// of `z` would).
    #[inline(always)]
    fn deliver_all<E: IntoIterator<Item = (usize, F)>, W: Rows>(
        &self,
        mut ring: Ring<'_, F, A, W>,
        events: E,
        spikes: impl Iterator<Item = (usize, F)>,
    ) -> Result<(), CoreError> {
        for (i, xi) in events {
            if i >= self.n_in() {
                return Err(CoreError::Size {
                    what: "input event index",
                    value: i,
                    allowed: "< n_in",
                });
            }
            if !A::takes_input(xi) {
                return Err(CoreError::Parameter {
                    what: "input event value",
                    why: "cells with integer weights take spike events (value 1) only",
                });
            }
            deliver(&self.w_in, i, &mut ring, |w| A::input(xi, w));
        }
        for (k, zk) in spikes {
            deliver(&self.w_rec, k, &mut ring, |w| A::spike(zk, w));
        }
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
        let neurons = &self.neurons[..n.min(self.neurons.len())];
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
            let bit = 1 << ((j >> shift) & 63);
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

    /// The step without noise, for cells whose neurons all [`allows_shortcuts`] and states with
    /// no `b` or `z` below 0 (or `b` `-0`), using the summaries of [`CellState`], four neurons
    /// at a time: a group at rest that no current reaches stays at rest and is skipped; in a
    /// group where no `z` is set, every `z` is `+0` (no loads or stores of `z` unless a neuron
    /// spikes; the refractory counter is read only when a neuron is above its threshold); a
    /// ring entry that is clear gives the input term `+0` (no conversion, no store). The
    /// counters are counted down afterwards, through the list of refractory neurons. Every
    /// value is the one [`neuron_step`] gives (see [`neuron_step_with`]).
    #[inline(never)]
    fn update_quiet(&self, view: StepView<'_, F, A>) {
        let n = view.v.len();
        let start = view.head * n;
        let Some(i_now) = view.ring.get_mut(start..start + n) else {
            return;
        };
        let q = Quiet {
            k: &self.consts,
            unit: self.unit,
            n_refractory: self.config.n_refractory as u16,
        };
        let n = n
            .min(self.neurons.len())
            .min(view.z.len())
            .min(view.b.len());
        let n = n.min(view.refractory_left.len());
        let whole = n / 4 * 4;
        let (v, v_tail) = view.v[..n].split_at_mut(whole);
        let (z, z_tail) = view.z[..n].split_at_mut(whole);
        let (b, b_tail) = view.b[..n].split_at_mut(whole);
        let (e, e_tail) = i_now[..n].split_at_mut(whole);
        let (left, left_tail) = view.refractory_left[..n].split_at_mut(whole);
        let (neurons, neurons_tail) = self.neurons[..n].split_at(whole);
        let list = view.refractory;
        let before = list.len();
        let spiked = view.spiked;
        spiked.clear();
        let shift = view.group_shift;
        let mut marks = Marks {
            old_spikes: *view.spike_groups,
            spikes: 0,
            woke: 0,
            shift,
        };
        // `special` has a bit for each group that is at rest or where some `z` may be set;
        // the chunks of four are taken 32 at a time, with a bit each (32-bit shifts are cheap).
        let old_active = *view.active_groups;
        let special = marks.old_spikes | !old_active;
        let mut at = 0usize;
        while at < whole {
            let mut bits = chunk_bits(special, shift, at / 4);
            let end = whole.min(at + 128);
            while at + 4 <= end {
                let this = at;
                at += 4;
                let is_special = bits & 1 != 0;
                bits >>= 1;
                let mut spike_chunk = false;
                if is_special {
                    let g = (this >> shift) & 63;
                    if (marks.old_spikes >> g) & 1 != 0 {
                        spike_chunk = true;
                    } else if e
                        .get(this..at)
                        .is_some_and(|e| e.iter().all(|x| x.is_clear()))
                    {
                        // At rest: stays so without input.
                        continue;
                    } else {
                        marks.woke |= 1 << g;
                    }
                }
                let (Some(vc), Some(bc), Some(ec), Some(nc)) = (
                    v.get_mut(this..at),
                    b.get_mut(this..at),
                    e.get_mut(this..at),
                    neurons.get(this..at),
                ) else {
                    break;
                };
                let (Ok(vc), Ok(bc), Ok(ec), Ok(nc)) = (
                    <&mut [F; 4]>::try_from(vc),
                    <&mut [F; 4]>::try_from(bc),
                    <&mut [A; 4]>::try_from(ec),
                    <&[Neuron<F>; 4]>::try_from(nc),
                ) else {
                    break;
                };
                let mut above = 0u32;
                if !spike_chunk {
                    four!(j => {
                        if q.step(&nc[j], &mut vc[j], &mut bc[j], &mut ec[j], NoSpike) {
                            above |= 1 << j;
                        }
                    });
                } else if let Some(Ok(zc)) = z.get_mut(this..at).map(<&mut [F; 4]>::try_from) {
                    // Some `z` may be set: read, and cleared (set again below if it spikes).
                    four!(j => {
                        if q.step(&nc[j], &mut vc[j], &mut bc[j], &mut ec[j], zc[j]) {
                            above |= 1 << j;
                        }
                        zc[j] = F::zero();
                    });
                }
                if above != 0 {
                    let lists = [&mut *spiked, &mut *list];
                    q.fire(&mut *z, &mut *left, lists, &mut marks, this, above);
                }
            }
        }
        // The last (n mod 4) neurons.
        if whole < n {
            let g = (whole >> shift).min(63);
            marks.woke |= 1 << g;
            let tail = Slices {
                v: v_tail,
                z: z_tail,
                b: b_tail,
                e: e_tail,
                left: left_tail,
                neurons: neurons_tail,
                list: &mut *list,
                spiked: &mut *spiked,
            };
            if q.general(tail, whole, 0, n - whole) {
                marks.spikes |= 1 << g;
            }
        }
        // The counters: set to R where a neuron spiked (listed as it spiked), counted down
        // where one was refractory.
        list.count_down(before, &mut view.refractory_left[..n], &view.z[..n]);
        *view.spike_groups = marks.spikes;
        *view.active_groups = old_active | marks.woke;
    }
}

/// Bit `i` tells whether the group of chunk `first + i` (neurons `4 (first + i) ..`, groups of
/// `1 << shift` neurons) is marked in `groups`.
#[inline(always)]
fn chunk_bits(groups: u64, shift: u32, first: usize) -> u32 {
    if shift == 2 {
        return (groups >> (first & 63)) as u32;
    }
    let mut bits = 0u32;
    for i in 0..32 {
        let g = (4 * (first + i)) >> shift;
        if g < 64 && (groups >> g) & 1 != 0 {
            bits |= 1 << i;
        }
    }
    bits
}

/// The per-neuron slices of a step (or of its last few neurons), for the paths off the
/// common one (see [`Cell::update_quiet`]).
struct Slices<'p, F, A> {
    v: &'p mut [F],
    z: &'p mut [F],
    b: &'p mut [F],
    e: &'p mut [A],
    left: &'p mut [u16],
    neurons: &'p [Neuron<F>],
    list: &'p mut NeuronList,
    spiked: &'p mut NeuronList,
}

/// The summary bits a step reads and writes outside its common path (see
/// [`Cell::update_quiet`]).
struct Marks {
    old_spikes: u64,
    spikes: u64,
    woke: u64,
    shift: u32,
}

/// What the quiet step of one neuron needs (see [`Cell::update_quiet`]). Its cells have
/// `dt = V0 = 1`: the equations leave those factors out ([`One`]).
struct Quiet<'k, F> {
    k: &'k StepConsts<F>,
    unit: F,
    n_refractory: u16,
}

impl<F: Real> Quiet<'_, F> {
    /// A neuron with previous spike `z`: updates `v`, `b` and the ring entry, returns whether
    /// `v` (the previous one) is above the threshold: the neuron spikes unless it is refractory
    /// (the caller then sets `z` and the counter).
    #[inline(always)]
    fn step<A: Accumulator<F>, Z: PrevSpike<F>>(
        &self,
        n: &Neuron<F>,
        v: &mut F,
        b: &mut F,
        e: &mut A,
        z: Z,
    ) -> bool {
        let input = input_term(e, n, self.unit);
        let out =
            neuron_step_with::<F, Z, One, One, true>(n, self.k, One, One, *v, z, *b, input, false);
        *v = out.state.v;
        *b = out.state.b;
        out.spiked
    }

    /// The neurons `at + j` for the bits `j` of `above` were above their thresholds in
    /// [`Quiet::quiet`]: those that are not refractory spike.
    #[inline(never)]
    #[cold]
    fn fire(
        &self,
        z: &mut [F],
        left: &mut [u16],
        [spiked, list]: [&mut NeuronList; 2],
        marks: &mut Marks,
        at: usize,
        above: u32,
    ) {
        let (Some(z), Some(left)) = (z.get_mut(at..at + 4), left.get_mut(at..at + 4)) else {
            return;
        };
        let mut fired = false;
        let mut above = above;
        while above != 0 {
            let j = above.trailing_zeros() as usize;
            above &= above - 1;
            if let (Some(z), Some(left)) = (z.get_mut(j), left.get_mut(j)) {
                if *left == 0 {
                    *z = self.k.spike;
                    *left = self.n_refractory;
                    spiked.push(at + j);
                    if self.n_refractory > 0 {
                        list.push(at + j);
                    }
                    fired = true;
                }
            }
        }
        if fired {
            marks.spikes |= 1 << ((at >> marks.shift) & 63);
        }
    }

    /// Neurons `lo..hi` of the slices (neuron `first + j` at index `j`) with any `z`: the
    /// general step, refractory as the counters say (they are counted down afterwards, see
    /// [`NeuronList::count_down`]). Returns whether one spiked.
    #[inline(never)]
    fn general<A: Accumulator<F>>(
        &self,
        s: Slices<'_, F, A>,
        first: usize,
        lo: usize,
        hi: usize,
    ) -> bool {
        let mut spiked = false;
        let hi = hi.min(s.v.len());
        let lo = lo.min(hi);
        let (v, z, b) = (&mut s.v[lo..hi], &mut s.z[lo..hi], &mut s.b[lo..hi]);
        let (e, left, nr) = (&mut s.e[lo..hi], &mut s.left[lo..hi], &s.neurons[lo..hi]);
        for j in 0..v
            .len()
            .min(z.len())
            .min(b.len())
            .min(e.len())
            .min(left.len())
            .min(nr.len())
        {
            let input = input_term(&mut e[j], &nr[j], self.unit);
            let out = neuron_step_with::<F, F, One, One, true>(
                &nr[j],
                self.k,
                One,
                One,
                v[j],
                z[j],
                b[j],
                input,
                left[j] > 0,
            );
            v[j] = out.state.v;
            b[j] = out.state.b;
            z[j] = out.state.z;
            if out.spiked {
                left[j] = self.n_refractory;
                s.spiked.push(first + lo + j);
                if self.n_refractory > 0 {
                    s.list.push(first + lo + j);
                }
                spiked = true;
            }
        }
        spiked
    }
}

/// Whether [`input_term`] tests for a clear entry. On a microcontroller (32-bit ARM) the test
/// saves the conversion, the product and the store for the many neurons that no current
/// reaches in a step; a workstation core would mispredict the branch about as often as it
/// saved anything, so there the term is always computed. The result is the same bits.
const SKIP_CLEAR_ENTRIES: bool = cfg!(target_arch = "arm");

/// The input term `(1 - decay) * i_t` of a ring entry, which is cleared.
#[inline(always)]
fn input_term<F: Real, A: Accumulator<F>>(e: &mut A, n: &Neuron<F>, unit: F) -> F {
    input_term_with::<F, A, SKIP_CLEAR_ENTRIES>(e, n, unit)
}

/// [`input_term`], testing for a clear entry or not: when the entry is clear (`i_t = +0`,
/// and the cell checked that `1 - decay` is finite with its sign bit clear) the term is `+0`,
/// and clearing the entry changes nothing.
#[inline(always)]
fn input_term_with<F: Real, A: Accumulator<F>, const SKIP: bool>(
    e: &mut A,
    n: &Neuron<F>,
    unit: F,
) -> F {
    let x = *e;
    if SKIP && x.is_clear() {
        return F::zero();
    }
    *e = A::default();
    n.one_minus_decay * x.current(unit)
}

/// Delivers the outgoing synapses of `pre` into the ring, each weight mapped by `value`. Out of
/// line (one call per spike) so that the per-synapse loop keeps its values in registers.
#[inline(never)]
fn deliver<F, A: Accumulator<F>, S: Synapses<A>, W: Rows>(
    syn: &S,
    pre: usize,
    ring: &mut Ring<'_, F, A, W>,
    value: impl Fn(A) -> A,
) {
    syn.for_each_outgoing(pre, |target, delay, w| ring.add(target, delay, value(w)));
}

/// Delay slots up to which delivery looks the slots up in a [`Table`].
const RING_ROWS: usize = crate::state::RING_ROWS;

/// Where in the ring the slot that arrives in `delay` steps starts, during one step.
trait Rows {
    fn row(&self, delay: usize) -> usize;
}

/// The start of every slot in this step (see [`CellState`]'s table; `n_delay <= RING_ROWS`).
struct Table<'t>(&'t [u32; RING_ROWS]);

impl Rows for Table<'_> {
    /// Delays are below `n_delay <= RING_ROWS` (validated): the mask changes none of them.
    #[inline(always)]
    fn row(&self, delay: usize) -> usize {
        self.0[delay & (RING_ROWS - 1)] as usize
    }
}

/// The start of a slot, computed (more than [`RING_ROWS`] slots).
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

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), CoreError> {
    if expected == got {
        Ok(())
    } else {
        Err(CoreError::Length {
            what,
            expected,
            got,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both forms of the input term give the same bits and leave the same entry, for neurons
    /// that allow the shortcuts.
    #[test]
    fn input_term_skips_clear_entries_exactly() {
        let neurons = [
            Neuron::new(20.0f32, 0.01, 0.0, 1.0).unwrap(),
            Neuron::new(1e-3f32, 0.01, 1.8, 1.0).unwrap(),
            Neuron::new(1e30f32, 0.01, 1.8, 1.0).unwrap(),
            Neuron {
                decay: 0.0,
                one_minus_decay: 0.0,
                thr: 1.0,
                beta: 0.0,
            },
        ];
        for n in &neurons {
            assert!(allows_shortcuts(n));
            for unit in [1.0f32, 2f32.powi(-20), 2f32.powi(-140)] {
                for x in [0i32, 1, -1, i32::MAX, i32::MIN] {
                    let (mut a, mut b) = (x, x);
                    let ta = input_term_with::<f32, i32, true>(&mut a, n, unit);
                    let tb = input_term_with::<f32, i32, false>(&mut b, n, unit);
                    assert_eq!((ta.to_bits(), a), (tb.to_bits(), b));
                }
                for x in [0.0f32, -0.0, 1.0, -1e-40, f32::INFINITY, f32::NAN] {
                    let (mut a, mut b) = (x, x);
                    let ta = input_term_with::<f32, f32, true>(&mut a, n, unit);
                    let tb = input_term_with::<f32, f32, false>(&mut b, n, unit);
                    assert!(ta.to_bits() == tb.to_bits() || (ta.is_nan() && tb.is_nan()));
                    assert_eq!(a.to_bits(), b.to_bits());
                }
            }
        }
    }
}
