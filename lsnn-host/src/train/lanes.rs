//! Forward and backward of a group of [`LANES`] batch elements side by side in SIMD lanes.
//!
//! The state, the trace and the adjoints of one neuron for all elements of a group are one
//! register ([`Reg`]), stepped by the core's lane-generic equations ([`neuron_step_with`],
//! [`neuron_step_backward_at`]); events (input spikes, recurrent spikes) are delivered to the lanes
//! that have them, one masked vector operation per synapse. Every lane computes what the
//! one-element pass of [`crate::train::bptt`] describes: the same IEEE operations on the same
//! values in the same order, so the results are the same bits.

use lsnn_core::{
    neuron_step_backward_at, neuron_step_with, CsrRef, CurrentNoise, Lanes, Mask, Neuron,
    NeuronGrad, NeuronState, Real, StepConsts, Surrogate, Synapses,
};
use ndarray::ArrayView2;

use super::bptt::{ElementGrads, HostState, LossSeeds, LossTerm, ReadoutView, Trace};
use super::simd::{dispatch, Isa, Kernel, Mem, Reg, SimdReal, LANES};
use crate::input::InputBatch;

/// One value per lane, in memory.
pub type V<F> = Mem<F>;
/// Lane bits (lane `l` is bit `l`).
type Bits = u16;

/// A neuron whose `b` the trace does not keep (see `GroupTrace::kept_b`).
const NOT_KEPT: u32 = u32::MAX;

/// The input events of a group's elements, `first..first + count` of a batch: lane l is
/// element `first + l`.
#[derive(Clone, Copy, Debug)]
pub struct GroupInput<'a> {
    batch: &'a InputBatch,
    first: usize,
    count: usize,
}

impl<'a> GroupInput<'a> {
    /// The elements `first..first + count` of `batch`.
    pub fn new(batch: &'a InputBatch, first: usize, count: usize) -> Self {
        GroupInput {
            batch,
            first,
            count,
        }
    }

    /// The events of lane `l` at step t: `(channel, value)`, channels ascending.
    #[inline(always)]
    fn lane(&self, l: usize, t: usize) -> impl Iterator<Item = (usize, f32)> + 'a {
        self.batch.events(self.first + l, t)
    }
}

/// What the backward pass needs from the forward, for a group: `v` and `b` of every neuron
/// before every step and after the last one, the spikes as (neuron, lanes) lists, the
/// refractory lanes of every neuron and step, and the values of the initial spikes.
#[derive(Debug, Default)]
pub struct GroupTrace<F> {
    n: usize,
    steps: usize,
    /// Lanes in use.
    count: usize,
    /// `v[(T - i) n + j]`: voltage of neuron j before step i (i = 0..=T). Latest step first:
    /// the backward, which goes back in time, reads the trace at ascending addresses, which
    /// the CPU prefetches.
    v: Vec<V<F>>,
    /// Same for the adaptation variable b of the neurons it is kept for (`kept_b`).
    b: Vec<V<F>>,
    /// Per neuron, where its b is in a row of `b` (`NOT_KEPT`: nowhere). The threshold of a
    /// neuron with `beta = 0` is `thr` whatever a finite `b` is, and nothing else in the
    /// backward reads `b`: such a neuron's `b` is not kept (unless asked for, or unless some
    /// `b` or `z` it starts from is not finite).
    kept_b: Vec<u32>,
    /// Neurons whose b is kept.
    n_kept: usize,
    /// The initial `z` where it is not 0 (every later spike has the value `1 / dt`).
    z0: Vec<V<F>>,
    /// Spikes present before step i: `spike_neurons[spike_offsets[i]..spike_offsets[i + 1]]`
    /// with their lanes.
    spike_offsets: Vec<u32>,
    spike_neurons: Vec<u16>,
    spike_lanes: Vec<Bits>,
    /// `refractory[i * n + j]`: the lanes where neuron j was refractory during step i.
    refractory: Vec<Bits>,
    /// The input events of step i: `inputs[input_offsets[i]..input_offsets[i + 1]]`, lanes
    /// ascending, each lane's channels ascending. Gathered from the batch once, so that the
    /// forward and the backward walk one short list a step.
    input_offsets: Vec<u32>,
    inputs: Vec<InputEvent<F>>,
}

/// An input event of one lane.
#[derive(Clone, Copy, Debug)]
struct InputEvent<F> {
    lane: u16,
    channel: u16,
    value: F,
}

impl<F: Real> GroupTrace<F> {
    fn reset(&mut self, n: usize, steps: usize, count: usize, keep_b: impl Fn(usize) -> bool) {
        self.n = n;
        self.steps = steps;
        self.count = count;
        self.kept_b.clear();
        self.n_kept = 0;
        for j in 0..n {
            if keep_b(j) {
                self.kept_b.push(self.n_kept as u32);
                self.n_kept += 1;
            } else {
                self.kept_b.push(NOT_KEPT);
            }
        }
        // Reused from pass to pass: sized once, so later passes touch no fresh pages.
        self.v.resize((steps + 1) * n, V::default());
        self.b.resize((steps + 1) * self.n_kept, V::default());
        self.z0.clear();
        self.z0.resize(n, V::default());
        self.spike_offsets.clear();
        self.spike_offsets.push(0);
        self.spike_neurons.clear();
        self.spike_lanes.clear();
        self.refractory.resize(steps * n, 0);
    }

    /// Gathers the group's input events step by step (see `inputs`).
    fn record_inputs(&mut self, input: GroupInput<'_>) {
        self.input_offsets.clear();
        self.input_offsets.push(0);
        self.inputs.clear();
        for t in 0..self.steps {
            for l in 0..input.count {
                self.inputs
                    .extend(input.lane(l, t).map(|(c, value)| InputEvent {
                        lane: l as u16,
                        channel: c as u16,
                        value: F::of(f64::from(value)),
                    }));
            }
            self.input_offsets.push(self.inputs.len() as u32);
        }
    }

    /// The input events of step t.
    #[inline(always)]
    fn inputs(&self, t: usize) -> &[InputEvent<F>] {
        &self.inputs[self.input_offsets[t] as usize..self.input_offsets[t + 1] as usize]
    }

    /// Where the values before step i start in `v` and `b`.
    #[inline(always)]
    fn row(&self, i: usize) -> core::ops::Range<usize> {
        let at = (self.steps - i) * self.n;
        at..at + self.n
    }

    /// Voltages before step i.
    #[inline(always)]
    fn v(&self, i: usize) -> &[V<F>] {
        &self.v[self.row(i)]
    }

    /// Where neuron j's b before step i is in `b`, if it is kept.
    #[inline(always)]
    fn b_at(&self, i: usize, j: usize) -> Option<usize> {
        let kept = self.kept_b[j];
        (kept != NOT_KEPT).then(|| (self.steps - i) * self.n_kept + kept as usize)
    }

    /// The spikes present before step i: `(neuron, lanes)`.
    #[inline(always)]
    fn spikes(&self, i: usize) -> impl Iterator<Item = (usize, Bits)> + '_ {
        let r = self.spike_offsets[i] as usize..self.spike_offsets[i + 1] as usize;
        self.spike_neurons[r.clone()]
            .iter()
            .zip(&self.spike_lanes[r])
            .map(|(&j, &bits)| (usize::from(j), bits))
    }

    /// The value of the spikes of neuron `j` present before step `i`.
    #[inline(always)]
    fn spike_value(&self, i: usize, j: usize, spike: F) -> V<F> {
        if i == 0 {
            self.z0[j]
        } else {
            Lanes([spike; LANES])
        }
    }

    /// `loss` plus the fixtures' linear loss `sum_t c_z[t] . z_t + c_v[t] . v_t` of each lane
    /// in use, lane after lane, step after step (spikes, then voltages), as one sum.
    pub fn linear_loss(
        &self,
        mut loss: F,
        c_z: ArrayView2<'_, F>,
        c_v: ArrayView2<'_, F>,
        spike: F,
    ) -> F {
        for l in 0..self.count {
            for t in 0..self.steps {
                for (j, bits) in self.spikes(t + 1) {
                    if bits >> l & 1 == 1 {
                        loss = loss + c_z[[t, j]] * self.spike_value(t + 1, j, spike).0[l];
                    }
                }
                for (j, v) in self.v(t + 1).iter().enumerate() {
                    loss = loss + c_v[[t, j]] * v.0[l];
                }
            }
        }
        loss
    }

    /// Lane `l` as the one-element trace of [`crate::train::bptt`] (for plots and checks).
    pub fn element(&self, l: usize, spike: F) -> Trace<F> {
        let lane = |rows: fn(&Self, usize) -> &[V<F>]| -> Vec<F> {
            (0..=self.steps)
                .flat_map(|i| rows(self, i).iter().map(|x| x.0[l]))
                .collect()
        };
        let v = lane(Self::v);
        let b = (0..=self.steps)
            .flat_map(|i| {
                (0..self.n).map(move |j| self.b_at(i, j).map_or(F::zero(), |at| self.b[at].0[l]))
            })
            .collect();
        let mut spikes = vec![Vec::new(); self.steps + 1];
        for (i, list) in spikes.iter_mut().enumerate() {
            for (j, bits) in self.spikes(i) {
                if bits >> l & 1 == 1 {
                    list.push((j as u16, self.spike_value(i, j, spike).0[l]));
                }
            }
        }
        let refractory = self.refractory.iter().map(|&bits| bits >> l & 1 == 1);
        Trace::from_parts(self.n, self.steps, v, b, spikes, refractory)
    }
}

/// The per-element results of a group's forward: the filtered spikes summed over each loss
/// term's window, and each neuron's spike count times the spike value.
#[derive(Clone, Debug, Default)]
pub struct GroupReadout<F> {
    /// Per lane, per term: `sum_{t in window} psp_t`, `[N]` each.
    pub psp_sums: Vec<Vec<Vec<F>>>,
    /// Per lane: the sum over the steps of each neuron's output z.
    pub z_sums: Vec<Vec<F>>,
}

/// Everything a group's forward reads besides its input and states.
pub struct ForwardContext<'a, F> {
    /// The per-neuron constants.
    pub neurons: &'a [Neuron<F>],
    /// The per-step constants.
    pub consts: StepConsts<F>,
    /// Number of delay slots.
    pub n_delay: usize,
    /// Refractory period in steps.
    pub n_refractory: u16,
    /// Standard deviation of the current noise (0: none).
    pub noise_std: F,
    /// Effective input synapses.
    pub w_in: CsrRef<'a, F>,
    /// Effective recurrent synapses.
    pub w_rec: CsrRef<'a, F>,
    /// `d N + j` of each input synapse to neuron j with delay d, in the order of `w_in`
    /// ([`csr_arrival_offsets`]).
    pub arrive_in: &'a [u32],
    /// The same for `w_rec`.
    pub arrive_rec: &'a [u32],
    /// The readout's filter decay `exp(-dt / tau_out)`.
    pub readout_decay: F,
    /// Which registers to run in.
    pub isa: Isa,
    /// Keep every neuron's `b` in the trace (for [`GroupTrace::element`]).
    pub keep_all_b: bool,
}

/// The state of a group between steps, one [`Lanes`] value per neuron.
struct LaneState<F> {
    v: Vec<V<F>>,
    z: Vec<V<F>>,
    b: Vec<V<F>>,
    /// Refractory steps left, as floats (small integers, exact), so that they are counted down
    /// in the registers.
    left: Vec<V<F>>,
    /// Slots of `N`, sliding: the slot that arrives in `d` steps is `head + d` (no wrap per
    /// synapse); when the D slots from `head` on would pass the end, they move to the start.
    ring: Vec<V<F>>,
    d_slots: usize,
    head: usize,
}

impl<F: Real> LaneState<F> {
    /// The states of the lanes' elements (padding lanes: the zero state).
    fn load(states: &[HostState<F>], n: usize, d_slots: usize) -> Self {
        let mut s = LaneState {
            v: vec![V::default(); n],
            z: vec![V::default(); n],
            b: vec![V::default(); n],
            left: vec![V::default(); n],
            // A power of two, so that delivery can mask its indices (see `Ring::entry`), with
            // room for the D slots to slide about 2 D steps between moves.
            ring: vec![V::default(); (3 * d_slots * n).next_power_of_two()],
            d_slots,
            head: 0,
        };
        for (l, state) in states.iter().enumerate() {
            for j in 0..n {
                s.v[j].0[l] = state.v()[j];
                s.z[j].0[l] = state.z()[j];
                s.b[j].0[l] = state.b()[j];
                s.left[j].0[l] = F::of(f64::from(state.refractory_left()[j]));
                for d in 0..d_slots {
                    s.ring[d * n + j].0[l] = state.i_future(j, d);
                }
            }
        }
        s
    }

    /// Writes the lanes' states back to their elements.
    fn store(&self, states: &mut [HostState<F>]) {
        let (n, d_slots) = (self.v.len(), self.d_slots);
        for (l, state) in states.iter_mut().enumerate() {
            state.reset();
            for j in 0..n {
                state.set_neuron(
                    j,
                    NeuronState {
                        v: self.v[j].0[l],
                        z: self.z[j].0[l],
                        b: self.b[j].0[l],
                    },
                );
                state.set_refractory_left(j, self.left[j].0[l].to_f64() as u16);
                for d in 0..d_slots {
                    let slot = self.head + d;
                    state.set_i_future(j, d, self.ring[slot * n + j].0[l]);
                }
            }
        }
    }

    /// The next step's slots: `head + 1`, or, where its D slots would pass the end, the D - 1
    /// slots that hold deliveries moved to the start (zeros left behind; every slot after
    /// them is zero: it was cleared when its step read it).
    fn advance(&mut self) {
        let n = self.v.len();
        self.head += 1;
        if (self.head + self.d_slots) * n > self.ring.len() {
            let live = self.head * n..(self.head + self.d_slots - 1) * n;
            let len = live.len();
            self.ring.copy_within(live.clone(), 0);
            self.ring[live.start.max(len)..live.end].fill(V::default());
            self.head = 0;
        }
    }
}

/// Gaussian current noise, one generator per lane.
pub struct LaneNoise<'a, N> {
    /// The generators of the lanes in use.
    pub lanes: &'a mut [N],
}

impl<N> LaneNoise<'_, N> {
    #[inline(always)]
    fn draw<F: Real>(&mut self) -> V<F>
    where
        N: CurrentNoise<F>,
    {
        let mut x = V::default();
        for (l, noise) in self.lanes.iter_mut().enumerate() {
            x.0[l] = noise.standard_normal();
        }
        x
    }
}

/// Runs the group's elements (`states`, one per lane in use) through their input, leaves the
/// states at the final ones, records `trace` and returns the readout's sums for `terms`.
#[allow(clippy::too_many_arguments)]
pub fn forward_group<F: SimdReal, N: CurrentNoise<F>>(
    ctx: &ForwardContext<'_, F>,
    input: GroupInput<'_>,
    steps: usize,
    states: &mut [HostState<F>],
    terms: &[Vec<LossTerm<F>>],
    noise: &mut LaneNoise<'_, N>,
    trace: &mut GroupTrace<F>,
) -> GroupReadout<F> {
    let n = ctx.neurons.len();
    let mut s = LaneState::load(states, n, ctx.n_delay);
    let finite = |x: &V<F>| x.0.iter().all(|x| x.is_finite());
    let keep_all = ctx.keep_all_b || !s.b.iter().chain(&s.z).all(finite);
    let keep_b = |j: usize| keep_all || ctx.neurons[j].beta != F::zero();
    trace.reset(n, steps, states.len(), keep_b);
    let first = trace.row(0);
    trace.v[first].copy_from_slice(&s.v);
    for (j, b) in s.b.iter().enumerate() {
        if let Some(at) = trace.b_at(0, j) {
            trace.b[at] = *b;
        }
    }
    record_initial_spikes(trace, &s.z);
    trace.record_inputs(input);
    let mut readout = FilteredSpikes::new(n, terms, steps);
    dispatch(
        ctx.isa,
        Forward {
            ctx,
            steps,
            s: &mut s,
            noise,
            trace,
            readout: &mut readout,
        },
    );
    s.store(states);
    readout.finish(states.len())
}

/// The step loop of [`forward_group`].
struct Forward<'a, 'c, 'n, 't, F, N> {
    ctx: &'a ForwardContext<'c, F>,
    steps: usize,
    s: &'a mut LaneState<F>,
    noise: &'a mut LaneNoise<'n, N>,
    trace: &'a mut GroupTrace<F>,
    readout: &'a mut FilteredSpikes<'t, F>,
}

impl<F: Real, N: CurrentNoise<F>> Kernel<F> for Forward<'_, '_, '_, '_, F, N> {
    type Output = ();

    #[inline(always)]
    fn run<X: Reg<Scalar = F>>(self, x: X) {
        let Forward {
            ctx,
            steps,
            s,
            noise,
            trace,
            readout,
        } = self;
        let n = ctx.neurons.len();
        let k = ctx.consts.splat(x);
        let noise_std = (ctx.noise_std > F::zero()).then(|| x.splat(ctx.noise_std));
        let zero = x.splat(F::zero());
        let one = x.splat(F::one());
        let n_refractory = x.splat(F::of(f64::from(ctx.n_refractory)));

        for t in 0..steps {
            let ring = Ring { at: s.head * n };
            deliver_inputs(ctx, trace.inputs(t), ring, &mut s.ring);
            deliver_spikes(x, ctx, trace, t, &s.z, ring, &mut s.ring);
            let now = s.head * n;
            for j in 0..n {
                let mut i_t = x.load(&s.ring[now + j]);
                if let Some(std) = noise_std {
                    i_t = i_t + std * x.load(&noise.draw());
                }
                let nj = ctx.neurons[j].splat(x);
                let left = x.load(&s.left[j]);
                let refractory = left.gt(zero);
                let out = neuron_step_with::<X, X, X, X, false>(
                    &nj,
                    &k,
                    k.dt,
                    k.v0,
                    x.load(&s.v[j]),
                    x.load(&s.z[j]),
                    x.load(&s.b[j]),
                    nj.one_minus_decay * i_t,
                    refractory,
                );
                out.state.v.store(&mut s.v[j]);
                out.state.z.store(&mut s.z[j]);
                out.state.b.store(&mut s.b[j]);
                zero.store(&mut s.ring[now + j]);
                X::select(out.spiked, n_refractory, (left - one).max(zero)).store(&mut s.left[j]);
                let fired = x.bits(out.spiked);
                let at = trace.row(t + 1).start + j;
                out.state.v.store(&mut trace.v[at]);
                if let Some(at) = trace.b_at(t + 1, j) {
                    out.state.b.store(&mut trace.b[at]);
                }
                trace.refractory[t * n + j] = x.bits(refractory);
                if fired != 0 {
                    trace.spike_neurons.push(j as u16);
                    trace.spike_lanes.push(fired);
                }
            }
            trace.spike_offsets.push(trace.spike_neurons.len() as u32);
            s.advance();
            readout.step(x, ctx, t, &s.z, trace.spikes(t + 1));
        }
    }
}

/// The bits of the lanes `l` for which `set(l)`.
#[inline(always)]
fn lane_bits(set: impl Fn(usize) -> bool) -> Bits {
    (0..LANES).fold(0, |bits, l| bits | (Bits::from(set(l)) << l))
}

fn record_initial_spikes<F: Real>(trace: &mut GroupTrace<F>, z: &[V<F>]) {
    for (j, zj) in z.iter().enumerate() {
        let set = lane_bits(|l| zj.0[l] != F::zero());
        if set != 0 {
            trace.z0[j] = Lanes(core::array::from_fn(|l| {
                if set >> l & 1 == 1 {
                    zj.0[l]
                } else {
                    F::zero()
                }
            }));
            trace.spike_neurons.push(j as u16);
            trace.spike_lanes.push(set);
        }
    }
    trace.spike_offsets.push(trace.spike_neurons.len() as u32);
}

/// The input events of step `t` into the ring, masked to the lanes that have them.
#[inline(always)]
fn deliver_inputs<F: Real>(
    ctx: &ForwardContext<'_, F>,
    events: &[InputEvent<F>],
    ring: Ring,
    slots: &mut [V<F>],
) {
    for e in events {
        let synapses = row_of(ctx.w_in, ctx.arrive_in, usize::from(e.channel));
        deliver_lane(synapses, usize::from(e.lane), e.value, ring, slots);
    }
}

/// The spikes present before step `t` (values `z`) into the ring, masked to their lanes.
#[inline(always)]
fn deliver_spikes<F: Real, X: Reg<Scalar = F>>(
    x: X,
    ctx: &ForwardContext<'_, F>,
    trace: &GroupTrace<F>,
    t: usize,
    z: &[V<F>],
    ring: Ring,
    slots: &mut [V<F>],
) {
    for (k, bits) in trace.spikes(t) {
        let synapses = row_of(ctx.w_rec, ctx.arrive_rec, k);
        deliver(x, synapses, bits, &z[k], ring, slots);
    }
}

/// Where in the ring a delivery lands during one step: the slot that arrives in d steps
/// starts `d N` entries after `at` (the slot of this step; see `LaneState::advance`).
#[derive(Clone, Copy, Debug)]
struct Ring {
    at: usize,
}

impl Ring {
    /// The entry of offset `d N + j` ([`csr_arrival_offsets`]), masked by `mask` (the ring's
    /// length minus 1, a power of two beyond every entry of the D slots from `at`: it changes
    /// no index but spares the bounds check).
    #[inline(always)]
    fn entry(self, arrive: u32, mask: usize) -> usize {
        (self.at + arrive as usize) & mask
    }
}

/// The synapses of row `pre` of `syn`: their weights and arrival offsets.
#[inline(always)]
fn row_of<'a, F: Copy>(syn: CsrRef<'a, F>, arrive: &'a [u32], pre: usize) -> (&'a [F], &'a [u32]) {
    let range = syn.offsets()[pre] as usize..syn.offsets()[pre + 1] as usize;
    (&syn.weights()[range.clone()], &arrive[range])
}

/// Adds `value * w` of the lanes in `bits` through each synapse (weights and arrival offsets).
/// Events are seldom in more than one lane: those go lane by lane, in scalars (half the work
/// of a 16-lane register on the machines that split it in two).
#[inline(always)]
fn deliver<F: Real, X: Reg<Scalar = F>>(
    x: X,
    (weights, arrive): (&[F], &[u32]),
    bits: Bits,
    value: &V<F>,
    ring: Ring,
    slots: &mut [V<F>],
) {
    if bits.is_power_of_two() {
        let l = bits.trailing_zeros() as usize;
        return deliver_lane((weights, arrive), l, value.0[l], ring, slots);
    }
    let mask = slots.len() - 1;
    let (lanes, value) = (x.mask(bits), x.load(value));
    for (&w, &a) in weights.iter().zip(arrive) {
        let e = &mut slots[ring.entry(a, mask)];
        add_where(x.load(e), lanes, value * x.splat(w)).store(e);
    }
}

/// [`deliver`] for one lane, `l`.
#[inline(always)]
fn deliver_lane<F: Real>(
    (weights, arrive): (&[F], &[u32]),
    l: usize,
    value: F,
    ring: Ring,
    slots: &mut [V<F>],
) {
    let mask = slots.len() - 1;
    for (&w, &a) in weights.iter().zip(arrive) {
        let e = &mut slots[ring.entry(a, mask)].0[l];
        *e = *e + value * w;
    }
}

/// `sum + addend` in the lanes of `lanes`, `sum` in the others: there `sum + (-0)`, which is
/// `sum` for every float (-0 is the identity of IEEE addition). Written so, the result is
/// stored whole: a masked store would stall the next load of the same entry.
#[inline(always)]
fn add_where<X: Reg>(sum: X, lanes: X::Mask, addend: X) -> X {
    sum + X::select(lanes, addend, sum.splat(<X::Scalar as Real>::of(-0.0)))
}

/// The readout's exponential filter of the spikes, summed over each lane's loss windows.
struct FilteredSpikes<'t, F> {
    psp: Vec<V<F>>,
    z_sums: Vec<V<F>>,
    terms: &'t [Vec<LossTerm<F>>],
    /// The windows, where no two of a lane overlap; each lane's running sum is then its lane
    /// of `sums`.
    windows: Option<Windows>,
    sums: Vec<V<F>>,
    psp_sums: Vec<Vec<Vec<F>>>,
}

/// The loss windows of a group's lanes, where no two windows of a lane overlap: a lane is then
/// inside at most one window at a time. Step by step: the lanes inside a window, and the
/// windows that end with the step.
struct Windows {
    /// `inside[t]`: the lanes inside a window at step t.
    inside: Vec<Bits>,
    /// The windows ending with step t (their last step is t) are
    /// `ends[ends_at[t]..ends_at[t + 1]]`, as `(lane, term)`.
    ends_at: Vec<u32>,
    ends: Vec<(usize, usize)>,
}

impl Windows {
    /// The windows of `terms` (per lane) over `steps` steps, unless two of a lane overlap.
    fn disjoint<F>(terms: &[Vec<LossTerm<F>>], steps: usize) -> Option<Self> {
        let mut inside = vec![0 as Bits; steps];
        let mut ending: Vec<(usize, usize, usize)> = Vec::new();
        for (l, element) in terms.iter().enumerate() {
            let mut w: Vec<(usize, usize, usize)> = element
                .iter()
                .enumerate()
                .map(|(k, term)| (term.start, term.end.min(steps), k))
                .collect();
            w.sort_unstable();
            if w.windows(2).any(|pair| pair[0].1 > pair[1].0) {
                return None;
            }
            for &(start, end, k) in &w {
                for bits in &mut inside[start..end] {
                    *bits |= 1 << l;
                }
                if start < end {
                    ending.push((end - 1, l, k));
                }
            }
        }
        ending.sort_unstable();
        let mut ends_at = vec![0u32; steps + 1];
        for &(last, _, _) in &ending {
            ends_at[last + 1] += 1;
        }
        for t in 0..steps {
            ends_at[t + 1] += ends_at[t];
        }
        Some(Windows {
            inside,
            ends_at,
            ends: ending.into_iter().map(|(_, l, k)| (l, k)).collect(),
        })
    }

    /// The windows whose last step is t: `(lane, term)`.
    #[inline(always)]
    fn ending(&self, t: usize) -> &[(usize, usize)] {
        &self.ends[self.ends_at[t] as usize..self.ends_at[t + 1] as usize]
    }
}

impl<'t, F: Real> FilteredSpikes<'t, F> {
    fn new(n: usize, terms: &'t [Vec<LossTerm<F>>], steps: usize) -> Self {
        FilteredSpikes {
            psp: vec![V::default(); n],
            z_sums: vec![V::default(); n],
            terms,
            windows: Windows::disjoint(terms, steps),
            sums: vec![V::default(); n],
            psp_sums: terms
                .iter()
                .map(|element| vec![vec![F::zero(); n]; element.len()])
                .collect(),
        }
    }

    /// Step `t` produced `z` (spikes `fired`).
    #[inline(always)]
    fn step<X: Reg<Scalar = F>>(
        &mut self,
        x: X,
        ctx: &ForwardContext<'_, F>,
        t: usize,
        z: &[V<F>],
        fired: impl Iterator<Item = (usize, Bits)>,
    ) {
        let decay = x.splat(ctx.readout_decay);
        let gain = x.splat(F::one() - ctx.readout_decay);
        for (p, zj) in self.psp.iter_mut().zip(z) {
            (x.load(p) * decay + gain * x.load(zj)).store(p);
        }
        let spike = x.splat(ctx.consts.spike);
        for (j, bits) in fired {
            add_where(x.load(&self.z_sums[j]), x.mask(bits), spike).store(&mut self.z_sums[j]);
        }
        let Some(windows) = &self.windows else {
            return self.sum_windows_by_lane(t);
        };
        // Lanes inside a window add psp to their running sum; where the window ends, the sum
        // is its term's and the lane's sum restarts from 0.
        let inside = windows.inside[t];
        if inside != 0 {
            let m = x.mask(inside);
            for (s, p) in self.sums.iter_mut().zip(&self.psp) {
                add_where(x.load(s), m, x.load(p)).store(s);
            }
        }
        for &(l, term) in windows.ending(t) {
            for (out, s) in self.psp_sums[l][term].iter_mut().zip(&mut self.sums) {
                *out = s.0[l];
                s.0[l] = F::zero();
            }
        }
    }

    /// The running sums where windows of a lane overlap: lane by lane, window by window.
    fn sum_windows_by_lane(&mut self, t: usize) {
        for (l, (element, sums)) in self.terms.iter().zip(&mut self.psp_sums).enumerate() {
            for (term, sum) in element.iter().zip(sums.iter_mut()) {
                if (term.start..term.end).contains(&t) {
                    for (s, p) in sum.iter_mut().zip(&self.psp) {
                        *s = *s + p.0[l];
                    }
                }
            }
        }
    }

    fn finish(self, count: usize) -> GroupReadout<F> {
        GroupReadout {
            psp_sums: self.psp_sums,
            z_sums: (0..count)
                .map(|l| self.z_sums.iter().map(|s| s.0[l]).collect())
                .collect(),
        }
    }
}

/// Everything a group's backward reads besides the trace and its input.
pub struct BackwardContext<'a, F> {
    /// The per-neuron constants.
    pub neurons: &'a [Neuron<F>],
    /// The per-step constants.
    pub consts: StepConsts<F>,
    /// Effective recurrent synapses (the forward's).
    pub w_rec: CsrRef<'a, F>,
    /// The delays of the input synapses `[I, N]`, as the weight rows read them.
    pub delays_in: DelayMasks,
    /// The same for the recurrent synapses `[N, N]`.
    pub delays_rec: DelayMasks,
    /// The same for the connected recurrent synapses, in the order of `w_rec`.
    pub arrive_rec_csr: &'a [u32],
    /// Number of delay slots.
    pub n_delay: usize,
    /// The readout.
    pub readout: ReadoutView<'a, F>,
    /// Which registers to run in.
    pub isa: Isa,
}

/// `d * N + j` for the synapse to neuron j (of N) of each row of `delays`: where, in a lane's
/// window of dL/di (N values per step), the step its delivery arrives at is, counted from the
/// step it was delivered in.
pub fn arrival_offsets(delays: ArrayView2<'_, u8>) -> Vec<u32> {
    let n = delays.ncols();
    delays
        .rows()
        .into_iter()
        .flat_map(|row| {
            row.into_iter()
                .enumerate()
                .map(move |(j, &d)| (usize::from(d) * n + j) as u32)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// [`arrival_offsets`] of the synapses of `syn`, in its order.
pub fn csr_arrival_offsets<F: Copy>(syn: CsrRef<'_, F>) -> Vec<u32> {
    let n = syn.n_post();
    syn.delays()
        .iter()
        .zip(syn.targets())
        .map(|(&d, &j)| (usize::from(d) * n + usize::from(j)) as u32)
        .collect()
}

/// Steps of a block whose weight-gradient rows are updated together.
const BLOCK: usize = 64;

/// How many events ahead a lane's weight-gradient rows are fetched into cache.
const AHEAD: usize = 2;

/// dL/di of the steps the backward is at, kept twice: all lanes of a neuron together, for the
/// recurrent adjoints, over the last D steps (a ring small enough for the cache), and lane by
/// lane, for the weight gradients, over a block of steps and the `D - 1` after it (where the
/// block's deliveries arrive). The weight gradients are added block by block: once a block is
/// done, each lane's events of the block update that lane's gradient rows in one go, while
/// those rows and that lane's dL/di stay in cache.
#[derive(Debug, Default)]
pub struct AdjointWindow<F> {
    n: usize,
    d_slots: usize,
    /// Rows of N values of a lane's window: the block's steps and the `D - 1` after it.
    window: usize,
    /// The last D steps, twice: step u in slots `u mod D` and `u mod D + D`, so that the D
    /// steps from any step t on are the slots from `t mod D` on (N entries each), without
    /// wrapping. Rounded up to a power of two entries; zeros past the end of the sequence.
    all: Vec<V<F>>,
    /// Floats per row of a lane's window: N rounded up to a multiple of [`LANES`].
    row: usize,
    /// Floats [`DelayMasks::add_row`] reads from a row on: the D rows, rounded up to a power
    /// of two.
    reach: usize,
    /// Where lane l's window starts: `l stride` (`window row + reach` and a cache line more, so
    /// that the lanes' windows do not all fall into the same cache sets).
    stride: usize,
    /// `[LANES][stride]` from `base` on: the entries of `all` lane by lane, row `u - t0`
    /// holding step u.
    lanes: Vec<F>,
    /// Where the windows start in `lanes`: on a 64-byte boundary.
    base: usize,
    /// First step of the current block.
    t0: usize,
    /// Per lane, the block's events in the order its rows take them (buffers kept across
    /// blocks and passes).
    events: Vec<Vec<RowEvent<F>>>,
}

/// One event of a block as the weight-gradient rows take it: `x * dL/di` from step `t0 +
/// step` on into row `row` of `w_in` (`input`) or `w_rec`.
#[derive(Clone, Copy, Debug)]
struct RowEvent<F> {
    input: bool,
    row: u16,
    step: u16,
    value: F,
}

impl<F> RowEvent<F> {
    /// Where its row is in a matrix of N = `n` columns.
    #[inline(always)]
    fn columns(&self, n: usize) -> core::ops::Range<usize> {
        let row = usize::from(self.row);
        row * n..(row + 1) * n
    }
}

impl<F: Real> AdjointWindow<F> {
    /// Ready for a backward over `steps` steps of N = `n` neurons and D = `d_slots` delays:
    /// zeros, in the buffers of the last pass where they are large enough (the lanes' windows
    /// only for rows that are not narrow).
    fn reset(&mut self, n: usize, d_slots: usize, steps: usize) {
        let window = BLOCK + d_slots - 1;
        let row = n.div_ceil(LANES) * LANES;
        let reach = (d_slots * row).next_power_of_two();
        let stride = window * row + reach + LANES;
        self.n = n;
        self.d_slots = d_slots;
        self.window = window;
        self.row = row;
        self.reach = reach;
        self.stride = stride;
        self.all.clear();
        self.all
            .resize((2 * d_slots * n).next_power_of_two(), V::default());
        self.lanes.clear();
        if !self.narrow() {
            // One register more, to start the windows on a register's (cache line's) boundary.
            self.lanes.resize(LANES * stride + LANES, F::zero());
        }
        self.base = self.lanes.as_ptr().align_offset(64).min(LANES);
        self.t0 = steps.saturating_sub(1) / BLOCK * BLOCK;
    }

    /// Where neuron j's dL/di of step t is in `all` (the first of its two places).
    #[inline(always)]
    fn at(&self, t: usize, j: usize) -> usize {
        (t % self.d_slots) * self.n + j
    }

    /// Keeps neuron j's dL/di of step t.
    #[inline(always)]
    fn set<X: Reg<Scalar = F>>(&mut self, t: usize, j: usize, g: X) {
        let at = self.at(t, j);
        let second = at + self.d_slots * self.n;
        g.store(&mut self.all[at]);
        g.store(&mut self.all[second]);
    }

    /// `sum_s w_s dL/di` over the synapses `s` of one presynaptic neuron (weights `w`, offsets
    /// `arrive` from [`csr_arrival_offsets`]) delivered at step t, in their order, from 0.
    #[inline(always)]
    fn weighted_sum<X: Reg<Scalar = F>>(&self, x: X, t: usize, (w, arrive): (&[F], &[u32])) -> X {
        let mut acc = x.splat(F::zero());
        self.add_terms(x, t, &mut acc, w, arrive);
        acc
    }

    /// The weighted sums of two presynaptic neurons, side by side: each is a chain of dependent
    /// additions, and two chains keep the adder busier than one.
    #[inline(always)]
    fn weighted_sums<X: Reg<Scalar = F>>(
        &self,
        x: X,
        t: usize,
        (w1, a1): (&[F], &[u32]),
        (w2, a2): (&[F], &[u32]),
    ) -> (X, X) {
        let both = w1.len().min(a1.len()).min(w2.len()).min(a2.len());
        let (mut acc1, mut acc2) = (x.splat(F::zero()), x.splat(F::zero()));
        let (base, mask) = (self.at(t, 0), self.all.len() - 1);
        let term = |w: F, a: u32| x.splat(w) * x.load(&self.all[(base + a as usize) & mask]);
        for i in 0..both {
            acc1 = acc1 + term(w1[i], a1[i]);
            acc2 = acc2 + term(w2[i], a2[i]);
        }
        self.add_terms(x, t, &mut acc1, &w1[both..], &a1[both..]);
        self.add_terms(x, t, &mut acc2, &w2[both..], &a2[both..]);
        (acc1, acc2)
    }

    /// `acc += w_s dL/di` for the synapses `s` given by `w` and `arrive`, in order.
    #[inline(always)]
    fn add_terms<X: Reg<Scalar = F>>(&self, x: X, t: usize, acc: &mut X, w: &[F], arrive: &[u32]) {
        let base = self.at(t, 0);
        // Entries are below `2 D N`, `all.len()` is a power of two at least that large: the
        // mask changes no index but spares the bounds check.
        let mask = self.all.len() - 1;
        for (&w, &a) in w.iter().zip(arrive) {
            *acc = *acc + x.splat(w) * x.load(&self.all[(base + a as usize) & mask]);
        }
    }

    /// Copies step t's dL/di into the lanes' windows, 16 neurons at a time through a
    /// transpose (the padding after N gets zeros).
    #[inline(always)]
    fn spread<X: Reg<Scalar = F>>(&mut self, x: X, t: usize) {
        let (n, stride) = (self.n, self.stride);
        let (from, row) = (self.at(t, 0), (t - self.t0) * self.row);
        for j0 in (0..n).step_by(LANES) {
            let len = LANES.min(n - j0);
            let neurons = &self.all[from + j0..from + j0 + len];
            let lanes = match <&[V<F>; LANES]>::try_from(neurons) {
                Ok(tile) => x.transpose(tile),
                Err(_) => {
                    let mut tile = [V::default(); LANES];
                    tile[..len].copy_from_slice(neurons);
                    x.transpose(&tile)
                }
            };
            for (l, lane) in lanes.into_iter().enumerate() {
                let at = self.base + l * stride + row + j0;
                lane.store_slice(&mut self.lanes[at..at + LANES]);
            }
        }
    }

    /// The block starting at step t0 is complete: each lane's events of its steps, latest
    /// first, add `x * dL/di` to that lane's rows; then the window moves to the block before.
    #[inline(always)]
    fn flush<X: Reg<Scalar = F>>(
        &mut self,
        x: X,
        ctx: &BackwardContext<'_, F>,
        trace: &GroupTrace<F>,
        spike: F,
        grads: &mut [ElementGrads<F>],
    ) {
        let (row_len, stride, t0) = (self.row, self.stride, self.t0);
        let steps = t0..trace.steps.min(t0 + BLOCK);
        self.list_events(trace, steps, spike);
        self.add_rows_lane_by_lane(x, ctx, grads);
        if t0 > 0 {
            // Steps t0 .. t0 + D - 2 are where the block before delivers last.
            let keep = (self.window - BLOCK) * row_len;
            for l in 0..LANES {
                let lane = &mut self.lanes[self.base + l * stride..self.base + (l + 1) * stride];
                lane.copy_within(0..keep, BLOCK * row_len);
            }
            self.t0 = t0 - BLOCK;
        }
    }

    /// Whether rows of N columns are narrow ([`is_narrow`]): their weight gradients are added
    /// at each step from `all`, and the lanes' windows are not used.
    fn narrow(&self) -> bool {
        is_narrow(self.n)
    }

    /// For narrow rows: the weight-gradient rows of the events delivered at step t, added
    /// right after step t's dL/di is known (the D steps from t on are in `all`). Per lane and
    /// row the same order as through the windows: later steps first.
    #[inline(always)]
    fn add_narrow_rows(
        &self,
        ctx: &BackwardContext<'_, F>,
        trace: &GroupTrace<F>,
        t: usize,
        spike: F,
        grads: &mut [ElementGrads<F>],
    ) {
        let (n, base) = (self.n, self.at(t, 0));
        for e in trace.inputs(t) {
            let l = usize::from(e.lane);
            let w_in = grads[l].w_in.as_slice_mut().expect("standard layout");
            let row = usize::from(e.channel);
            let g = &mut w_in[row * n..(row + 1) * n];
            ctx.delays_in
                .add_narrow_row(g, row, &self.all, base, l, e.value);
        }
        for (k, bits) in trace.spikes(t) {
            let z = trace.spike_value(t, k, spike);
            for_lanes(bits, |l| {
                let w_rec = grads[l].w_rec.as_slice_mut().expect("standard layout");
                let g = &mut w_rec[k * n..(k + 1) * n];
                ctx.delays_rec
                    .add_narrow_row(g, k, &self.all, base, l, z.0[l]);
            });
        }
    }

    /// Lane `l`'s window from step `t0 + step` on.
    #[inline(always)]
    fn lane_window(&self, l: usize, step: usize) -> &[F] {
        let at = self.base + l * self.stride + step * self.row;
        &self.lanes[at..at + self.reach]
    }

    /// Lists each lane's events of the block's `steps` in the order its rows take their terms:
    /// latest step first, and in a step inputs before spikes (the one-element backward's).
    fn list_events(&mut self, trace: &GroupTrace<F>, steps: core::ops::Range<usize>, spike: F) {
        let t0 = steps.start;
        self.events.resize_with(LANES, Vec::new);
        for list in &mut self.events {
            list.clear();
        }
        for t in steps.rev() {
            let step = (t - t0) as u16;
            for e in trace.inputs(t) {
                self.events[usize::from(e.lane)].push(RowEvent {
                    input: true,
                    row: e.channel,
                    step,
                    value: e.value,
                });
            }
            for (k, bits) in trace.spikes(t) {
                let z = trace.spike_value(t, k, spike);
                for_lanes(bits, |l| {
                    self.events[l].push(RowEvent {
                        input: false,
                        // The trace keeps neurons as u16.
                        row: k as u16,
                        step,
                        value: z.0[l],
                    });
                });
            }
        }
    }

    /// The listed events' weight-gradient rows, lane by lane: one lane's window stays in
    /// cache, and the rows of the events ahead are fetched while the current one is added
    /// (they are far apart in memory).
    #[inline(always)]
    fn add_rows_lane_by_lane<X: Reg<Scalar = F>>(
        &self,
        x: X,
        ctx: &BackwardContext<'_, F>,
        grads: &mut [ElementGrads<F>],
    ) {
        let n = self.n;
        for (l, (list, g)) in self.events.iter().zip(grads.iter_mut()).enumerate() {
            let w_in = g.w_in.as_slice_mut().expect("standard layout");
            let w_rec = g.w_rec.as_slice_mut().expect("standard layout");
            for (i, e) in list.iter().enumerate() {
                if let Some(ahead) = list.get(i + AHEAD) {
                    let rows = if ahead.input { &*w_in } else { &*w_rec };
                    x.prefetch(&rows[ahead.columns(n)]);
                }
                let window = self.lane_window(l, usize::from(e.step));
                let (w, delays) = if e.input {
                    (&mut w_in[e.columns(n)], &ctx.delays_in)
                } else {
                    (&mut w_rec[e.columns(n)], &ctx.delays_rec)
                };
                delays.add_row(x, w, usize::from(e.row), window, e.value);
            }
        }
    }
}

/// Calls `f(l)` for each lane `l` of `bits`.
#[inline(always)]
fn for_lanes(mut bits: Bits, mut f: impl FnMut(usize)) {
    while bits != 0 {
        f(bits.trailing_zeros() as usize);
        bits &= bits - 1;
    }
}

/// The delays of a matrix's synapses `[rows, N]` as the weight rows read them: for each row,
/// each register of [`LANES`] columns and each delay d, the columns with that delay as lane
/// bits (and the delays themselves, for narrow rows).
#[derive(Clone, Debug, Default)]
pub struct DelayMasks {
    n: usize,
    d_slots: usize,
    /// `[rows][ceil(N / LANES)][D]`, for rows that are not narrow.
    masks: Vec<u16>,
    /// `[rows, N]`, for narrow rows: `d N + j` for the synapse to neuron j with delay d (where
    /// its delivery arrives in the adjoint ring, counted from the step it was delivered in).
    arrive: Vec<u32>,
}

/// Rows narrower than this many registers are added column by column: picking each register
/// from D rows costs more than reading its columns one by one, and the lanes' windows, their
/// event lists and copies more than reading the adjoint ring where it is.
const NARROW: usize = 3;

/// Whether rows of `n` columns are narrow: added column by column, straight from the adjoint
/// ring ([`DelayMasks::add_narrow_row`]), not through the lanes' windows.
fn is_narrow(n: usize) -> bool {
    n.div_ceil(LANES) < NARROW
}

impl DelayMasks {
    /// The masks of `delays` (`[rows, N]`, each below `d_slots`).
    pub fn new(delays: ArrayView2<'_, u8>, d_slots: usize) -> Self {
        let n = delays.ncols();
        let (mut masks, mut arrive) = (Vec::new(), Vec::new());
        if is_narrow(n) {
            arrive = arrival_offsets(delays);
        } else {
            let chunks = n.div_ceil(LANES);
            masks.reserve(delays.nrows() * chunks * d_slots);
            for row in delays.rows() {
                for c in 0..chunks {
                    for d in 0..d_slots {
                        let bits = (c * LANES..n.min((c + 1) * LANES))
                            .filter(|&j| usize::from(row[j]) == d)
                            .fold(0u16, |m, j| m | 1 << (j - c * LANES));
                        masks.push(bits);
                    }
                }
            }
        }
        DelayMasks {
            n,
            d_slots,
            masks,
            arrive,
        }
    }

    /// `row[j] += x * dL/di` of lane `l` at the step where synapse j's delivery arrives, for
    /// the synapses of matrix row `k` delivered at the step whose slots start at `base` in the
    /// adjoint ring `all` (a power of two entries, holding the D steps from there on).
    #[inline(always)]
    fn add_narrow_row<F: Real>(
        &self,
        row: &mut [F],
        k: usize,
        all: &[V<F>],
        base: usize,
        l: usize,
        value: F,
    ) {
        let n = self.n;
        // The masks change no index but spare the bounds checks.
        let (mask, l) = (all.len() - 1, l & (LANES - 1));
        let arrive = &self.arrive[k * n..(k + 1) * n];
        for (g, &a) in row.iter_mut().zip(arrive) {
            *g = *g + value * all[(base + a as usize) & mask].0[l];
        }
    }

    /// `row[j] += x * dL/di` of the step where synapse j's delivery arrives, for the synapses
    /// of matrix row `k` delivered at the first step of `window` (a lane's D rows of dL/di from
    /// that step on, rows of N rounded up to a multiple of [`LANES`], a power of two floats in
    /// all): each register of columns picked from the D rows by the columns' delays (one
    /// masked move a delay). Rows that are not narrow ([`is_narrow`]).
    #[inline(always)]
    fn add_row<F: Real, X: Reg<Scalar = F>>(
        &self,
        x: X,
        row: &mut [F],
        k: usize,
        window: &[F],
        value: F,
    ) {
        let (n, d_slots) = (self.n, self.d_slots);
        let chunks = n.div_ceil(LANES);
        let masks = &self.masks[k * chunks * d_slots..(k + 1) * chunks * d_slots];
        let zero = x.splat(F::zero());
        let v = x.splat(value);
        // As registers, a power of two of them: the mask changes no index but spares the
        // bounds checks.
        let (registers, _) = window.as_chunks::<LANES>();
        let mask = registers.len() - 1;
        let picked = |c: usize, masks: &[u16]| {
            let mut h = zero;
            for (d, &m) in masks.iter().enumerate() {
                let register = &registers[(d * chunks + c) & mask];
                h = X::select(x.mask(m), x.load_slice(register), h);
            }
            h
        };
        let full = n / LANES;
        for (c, masks) in masks.chunks_exact(d_slots).enumerate().take(full) {
            let g = &mut row[c * LANES..(c + 1) * LANES];
            (x.load_slice(g) + v * picked(c, masks)).store_slice(g);
        }
        if full < chunks {
            // The last columns, in the first lanes of a register.
            let tail = &mut row[full * LANES..];
            let masks = &masks[full * d_slots..];
            (x.load_partial(tail) + v * picked(full, masks)).store_partial(tail);
        }
    }
}

/// Reverse-mode pass over a group: each lane's gradients (w.r.t. the effective weights) into
/// its element's `grads`, which start at zero.
pub fn backward_group<F: SimdReal>(
    ctx: &BackwardContext<'_, F>,
    trace: &GroupTrace<F>,
    psp_sums: &[Vec<Vec<F>>],
    seeds: &[LossSeeds<'_, F>],
    window: &mut AdjointWindow<F>,
    grads: &mut [ElementGrads<F>],
) {
    let term_psp_grads: Vec<Vec<(LossTerm<F>, Vec<F>)>> = seeds
        .iter()
        .zip(psp_sums)
        .zip(grads.iter_mut())
        .map(|((seed, sums), g)| readout_grads(ctx, trace.n, seed, sums, g))
        .collect();
    dispatch(
        ctx.isa,
        Backward {
            ctx,
            trace,
            term_psp_grads: &term_psp_grads,
            z_every_step: seeds.first().and_then(|s| s.z_every_step),
            linear: seeds
                .first()
                .and_then(|s| s.linear.as_ref().map(|(a, b)| (a.view(), b.view()))),
            window,
            grads,
        },
    );
}

/// The step loop of [`backward_group`].
struct Backward<'a, 'c, 's, F> {
    ctx: &'a BackwardContext<'c, F>,
    trace: &'a GroupTrace<F>,
    /// Per lane, per loss term: its window and dL/dpsp.
    term_psp_grads: &'a [Vec<(LossTerm<F>, Vec<F>)>],
    z_every_step: Option<&'s [F]>,
    linear: Option<(ArrayView2<'s, F>, ArrayView2<'s, F>)>,
    window: &'a mut AdjointWindow<F>,
    grads: &'a mut [ElementGrads<F>],
}

impl<F: Real> Kernel<F> for Backward<'_, '_, '_, F> {
    type Output = ();

    #[inline(always)]
    fn run<X: Reg<Scalar = F>>(self, x: X) {
        let Backward {
            ctx,
            trace,
            term_psp_grads,
            z_every_step,
            linear,
            window,
            grads,
        } = self;
        let n = trace.n;
        let steps = trace.steps;
        let k = ctx.consts.splat(x);
        let spike = ctx.consts.spike;
        let zero = x.splat(F::zero());
        let decay_out = x.splat(ctx.readout.decay);
        let gain_out = x.splat(F::one() - ctx.readout.decay);
        let mut carry = vec![V::default(); n];
        let windows = Windows::disjoint(
            &term_psp_grads
                .iter()
                .map(|element| element.iter().map(|(term, _)| *term).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
            steps,
        );
        let mut current = vec![V::default(); n];
        let mut g_v = vec![V::default(); n];
        let mut g_z = vec![V::default(); n];
        let mut g_b = vec![V::default(); n];
        let mut g_z_rec = vec![V::default(); n];
        let mut z_prev = vec![V::default(); n];
        let g_i = window;
        g_i.reset(n, ctx.n_delay, steps);
        // Read once: a local the compiler can take the branch on out of the step loop.
        let narrow = g_i.narrow();
        let rec_rows = ctx.w_rec.offsets();

        for t in (0..steps).rev() {
            // 1. Adjoints of the outputs of step t.
            match &windows {
                Some(windows) => {
                    // Each lane adds its window's dL/dpsp, held in its lane of `current`.
                    for &(l, term) in windows.ending(t) {
                        for (c, &g) in current.iter_mut().zip(&term_psp_grads[l][term].1) {
                            c.0[l] = g;
                        }
                    }
                    let inside = windows.inside[t];
                    if inside != 0 {
                        let m = x.mask(inside);
                        for (c, g) in carry.iter_mut().zip(&current) {
                            add_where(x.load(c), m, x.load(g)).store(c);
                        }
                    }
                }
                None => {
                    for (l, element) in term_psp_grads.iter().enumerate() {
                        for (term, g_psp) in element {
                            if (term.start..term.end).contains(&t) {
                                for (c, &g) in carry.iter_mut().zip(g_psp) {
                                    c.0[l] = c.0[l] + g;
                                }
                            }
                        }
                    }
                }
            }
            for (j, bits) in trace.spikes(t) {
                let value = x.load(&trace.spike_value(t, j, spike));
                X::select(x.mask(bits), value, zero).store(&mut z_prev[j]);
            }
            let v_before = trace.v(t);
            let refractory = &trace.refractory[t * n..(t + 1) * n];
            for j in 0..n {
                let nj = ctx.neurons[j].splat(x);
                let v_prev = x.load(&v_before[j]);
                // b after the step: the kept one, else any finite value (see `kept_b`).
                let b_new = trace.b_at(t + 1, j).map_or(zero, |at| x.load(&trace.b[at]));
                let surrogate = Surrogate::of(&nj, &k, v_prev, b_new);
                let refractory = x.mask(refractory[j]);
                // What z_t does through the recurrent synapses (summed at step t + 1) counts
                // only where its pseudo-derivative is not 0 and the neuron not refractory.
                let through = surrogate.pseudo.ne(zero).and_not(refractory);
                let recurrent = X::select(through, x.load(&g_z_rec[j]), zero);
                let c = x.load(&carry[j]);
                let mut out_z = x.load(&g_z[j]) + recurrent + gain_out * c;
                (c * decay_out).store(&mut carry[j]);
                let mut out_v = x.load(&g_v[j]);
                if let Some(every) = z_every_step {
                    out_z = out_z + x.splat(every[j]);
                }
                if let Some((c_z, c_v)) = &linear {
                    out_z = out_z + x.splat(c_z[[t, j]]);
                    out_v = out_v + x.splat(c_v[[t, j]]);
                }
                // 2. The neuron's own equations, backwards.
                let back = neuron_step_backward_at(
                    &nj,
                    &k,
                    // The backward does not read b before the step.
                    NeuronState {
                        v: v_prev,
                        z: x.load(&z_prev[j]),
                        b: zero,
                    },
                    surrogate,
                    refractory,
                    NeuronGrad {
                        v: out_v,
                        z: out_z,
                        b: x.load(&g_b[j]),
                    },
                    zero,
                );
                back.prev.v.store(&mut g_v[j]);
                back.prev.z.store(&mut g_z[j]);
                back.prev.b.store(&mut g_b[j]);
                g_i.set(t, j, back.i_t);
            }

            // 3. Synapses: what was delivered at step t arrives at step t + d. The weight
            // gradients are added block by block, or for narrow rows now (see
            // `AdjointWindow`).
            if narrow {
                g_i.add_narrow_rows(ctx, trace, t, spike, grads);
            } else {
                g_i.spread(x, t);
                if t == g_i.t0 {
                    // Touches only the windows: it may come before the recurrent sums.
                    g_i.flush(x, ctx, trace, spike, grads);
                }
            }
            // dL/dz_{t-1} through the recurrent synapses (masked at step t - 1, where its
            // pseudo-derivative is known). Connected synapses, j ascending: lsnn-gpu's backward
            // sums in this order too.
            if t > 0 {
                let synapses = |kk: usize| {
                    let syn = rec_rows[kk] as usize..rec_rows[kk + 1] as usize;
                    (&ctx.w_rec.weights()[syn.clone()], &ctx.arrive_rec_csr[syn])
                };
                let mut pairs = (0..n).step_by(2);
                for k1 in &mut pairs {
                    if k1 + 1 < n {
                        let (s1, s2) = g_i.weighted_sums(x, t, synapses(k1), synapses(k1 + 1));
                        s1.store(&mut g_z_rec[k1]);
                        s2.store(&mut g_z_rec[k1 + 1]);
                    } else {
                        g_i.weighted_sum(x, t, synapses(k1)).store(&mut g_z_rec[k1]);
                    }
                }
            }
            for (j, _) in trace.spikes(t) {
                z_prev[j] = V::default();
            }
        }
    }
}

/// The readout's part of one element's backward: dL/dw_out, dL/db_out into `g`, and per term
/// dL/dpsp_t = w_out . dlogits / len.
fn readout_grads<F: Real>(
    ctx: &BackwardContext<'_, F>,
    n: usize,
    seeds: &LossSeeds<'_, F>,
    psp_sums: &[Vec<F>],
    g: &mut ElementGrads<F>,
) -> Vec<(LossTerm<F>, Vec<F>)> {
    let n_out = ctx.readout.w_out.ncols();
    let mut term_psp_grads = Vec::with_capacity(seeds.term_grads.len());
    for ((term, dlogits), sum) in seeds.term_grads.iter().zip(psp_sums) {
        let len = F::of((term.end - term.start) as f64);
        for (g, &dl) in g.b_out.iter_mut().zip(dlogits) {
            *g = *g + dl;
        }
        for (mut row, &s) in g.w_out.rows_mut().into_iter().zip(sum) {
            for (g, &dl) in row.iter_mut().zip(dlogits) {
                *g = *g + s * dl / len;
            }
        }
        let g_psp: Vec<F> = (0..n)
            .map(|j| {
                (0..n_out).fold(F::zero(), |acc, o| {
                    acc + ctx.readout.w_out[[j, o]] * dlogits[o]
                }) / len
            })
            .collect();
        term_psp_grads.push((*term, g_psp));
    }
    term_psp_grads
}
