//! The cell's fast step, for steps without noise of cells whose neurons all
//! [`allows_shortcuts`] (and `dt = V0 = 1`), on states with no `b` or `z` out of the plain range
//! (see [`CellState`](crate::CellState)). Four neurons at a time, using the state's summaries:
//! a group at rest that no current reaches stays at rest and is skipped; in a group where no
//! `z` is set, every `z` is `+0` (no loads or stores of `z` unless a neuron spikes; the
//! refractory counter is read only when a neuron is above its threshold). The counters are
//! counted down afterwards, through the list of refractory neurons.
//!
//! The neurons are swept in runs of identical constants ([`Segments`]: the sMNIST network's
//! LIF and ALIF populations), whose constants stay in registers; in a lean step (inference) the
//! runs of LIF neurons skip `b` altogether ([`lif_step_with`]). Every value the step keeps is
//! the one [`neuron_step`](crate::neuron_step) gives.

use super::Cell;
use crate::neuron::{
    add_previous_spike, add_previous_spike_lif, lif_step_with, neuron_step_with, NoSpikeFinite,
    One, PrevSpike,
};
use crate::state::{group_bit, group_half_bit, Accumulator, NeuronList, StepView};
use crate::unchecked::quads_mut;
use crate::{rare, Neuron, Real, StepConsts};

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

/// Runs of neurons that the fast step sweeps with their constants in registers.
const MAX_SEGMENTS: usize = 4;

/// The neurons as the fast step sweeps them: up to [`MAX_SEGMENTS`] runs of neurons with
/// bit-identical constants (each a [`Same`]), or, for cells with more runs than that, one run
/// of all neurons with their own constants.
#[derive(Clone, Copy, Debug)]
pub(super) struct Segments<F> {
    runs: [Segment<F>; MAX_SEGMENTS],
    len: usize,
}

#[derive(Clone, Copy, Debug)]
struct Segment<F> {
    start: usize,
    end: usize,
    /// The constants of every neuron of the run, if they can be kept in registers.
    same: Option<Same<F>>,
    /// `beta = 0`: the run's neurons are LIF neurons.
    lif: bool,
}

impl<F: Real> Segments<F> {
    /// The runs of `neurons` for a ring of `A` whose unit is `unit`.
    pub(super) fn new<A: Accumulator<F>>(neurons: &[Neuron<F>], unit: F) -> Self {
        let none = Segment {
            start: 0,
            end: neurons.len(),
            same: None,
            lif: false,
        };
        let mut segments = Segments {
            runs: [none; MAX_SEGMENTS],
            len: 1,
        };
        let mut start = 0;
        let mut len = 0;
        while let Some(first) = neurons.get(start) {
            let run = neurons[start..]
                .iter()
                .take_while(|n| same_bits(n, first))
                .count();
            let Some(slot) = segments.runs.get_mut(len) else {
                // Too many runs: every neuron with its own constants.
                segments.runs[0] = none;
                segments.len = 1;
                return segments;
            };
            *slot = Segment {
                start,
                end: start + run,
                same: Same::new::<A>(first, unit),
                lif: first.beta == F::zero(),
            };
            len += 1;
            start += run;
        }
        segments.len = len.max(1);
        segments
    }

    fn runs(&self) -> &[Segment<F>] {
        self.runs.get(..self.len).unwrap_or_default()
    }
}

fn same_bits<F: Real>(a: &Neuron<F>, b: &Neuron<F>) -> bool {
    let bits = |n: &Neuron<F>| [n.decay, n.one_minus_decay, n.thr, n.beta].map(|x| x.to_bits_u64());
    bits(a) == bits(b)
}

/// The constants of the neurons of a sweep, and how a ring entry becomes the input term
/// `(1 - decay) * i_t`.
trait Constants<F: Real>: Copy {
    /// The constants of neuron `j` of `neurons`.
    fn neuron(self, neurons: &[Neuron<F>], j: usize) -> Neuron<F>;
    /// The input term of neuron `n` for the (not clear) ring entry `e`.
    fn term<A: Accumulator<F>>(self, n: &Neuron<F>, e: A, unit: F) -> F;
}

/// Every neuron of the run has the constants `n`; `scale` is `(1 - decay) * unit`, exact.
///
/// For `unit = 1` that is `1 - decay` itself. Otherwise, for rings that
/// [`Accumulator::FOLDS_UNIT`] (the `i32` ring), the input term `(1 - decay) * (e * unit)` is `scale * e`, one product instead of two:
/// for a unit that is a normal power of two, `e * unit` is exact for every ring entry (an `i32`
/// rounded to `F`, so between 1 and 2^31 in magnitude, scaled into the normal range), and so
/// is `scale`; both forms then round the same real number `(1 - decay) * unit * e` once.
#[derive(Clone, Copy, Debug)]
struct Same<F> {
    n: Neuron<F>,
    scale: F,
}

impl<F: Real> Same<F> {
    fn new<A: Accumulator<F>>(n: &Neuron<F>, unit: F) -> Option<Self> {
        let (mantissa, _, sign) = unit.integer_decode();
        let power_of_two = unit.is_normal() && sign > 0 && mantissa.is_power_of_two();
        let largest_entry = F::of(2_147_483_648.0) * unit;
        let scale = n.one_minus_decay * unit;
        let exact = scale / unit == n.one_minus_decay && (scale.is_normal() || scale == F::zero());
        let folds = A::FOLDS_UNIT && power_of_two && largest_entry.is_finite() && exact;
        (unit == F::one() || folds).then_some(Same { n: *n, scale })
    }
}

impl<F: Real> Constants<F> for Same<F> {
    #[inline(always)]
    fn neuron(self, _neurons: &[Neuron<F>], _j: usize) -> Neuron<F> {
        self.n
    }
    #[inline(always)]
    fn term<A: Accumulator<F>>(self, _n: &Neuron<F>, e: A, _unit: F) -> F {
        self.scale * e.current(F::one())
    }
}

/// Every neuron with its own constants.
#[derive(Clone, Copy, Debug)]
struct Each;

impl<F: Real> Constants<F> for Each {
    #[inline(always)]
    fn neuron(self, neurons: &[Neuron<F>], j: usize) -> Neuron<F> {
        neurons.get(j).copied().unwrap_or_default()
    }
    #[inline(always)]
    fn term<A: Accumulator<F>>(self, n: &Neuron<F>, e: A, unit: F) -> F {
        n.one_minus_decay * e.current(unit)
    }
}

impl<F: Real, A: Accumulator<F>, In, Rec, Ns: AsRef<[Neuron<F>]>> Cell<'_, F, In, Rec, A, Ns> {
    /// The fast step (see the module). `LEAN`: `b` of LIF neurons is not kept, and the
    /// refractory counters are stamps (inference; see [`crate::state::Stamps`]).
    #[inline(never)]
    pub(super) fn update_quiet<const LEAN: bool>(&self, view: StepView<'_, F, A>) {
        let n = view.v.len();
        let start = view.head * n;
        let Some(i_now) = view.ring.get_mut(start..start + n) else {
            return;
        };
        let n = n
            .min(self.neurons.as_ref().len())
            .min(view.z.len())
            .min(view.b.len())
            .min(view.refractory_left.len());
        let list = view.refractory;
        let before = list.len();
        // A neuron that spiked in the last step is refractory now: the sweep steps it as if it
        // had not spiked, and `fix_spikes` adds its spike afterwards, through the list of them
        // (or, without a valid list, the sweep takes their chunks one by one).
        // The new spikes are listed after them until then.
        let by_list = self.config.n_refractory > 0 && !view.loose_spikes && view.spiked.valid;
        let n_old = if by_list { view.spiked.len() } else { 0 };
        if !by_list {
            view.spiked.clear();
        }
        let old_active = *view.active_groups;
        let old_spikes = *view.spike_groups;
        let (v, b, e) = (&mut view.v[..n], &mut view.b[..n], &mut i_now[..n]);
        let mut s = Sweep::<F, LEAN> {
            z: &mut view.z[..n],
            left: &mut view.refractory_left[..n],
            neurons: &self.neurons.as_ref()[..n],
            list: &mut *list,
            spiked: &mut *view.spiked,
            marks: Marks {
                old_spikes,
                spikes: GroupBits::default(),
                woke: 0,
                shift: view.group_shift,
            },
            // A bit for each group that may be at rest, or where some `z` may be set that
            // the sweep itself must handle.
            special: !old_active | if by_list { 0 } else { old_spikes },
            by_list,
            q: Quiet {
                k: self.consts,
                unit: self.unit,
                n_refractory: self.config.n_refractory as u16,
                clock: view.clock,
            },
        };
        // The neurons before `done` are stepped: runs of identical neurons by chunks of four
        // with their constants in registers, a chunk across runs with each neuron's own.
        let mut done = 0;
        for seg in self.segments.runs() {
            let (lo, hi) = (seg.start.max(done).min(n), seg.end.min(n));
            if lo >= hi {
                continue;
            }
            let (v, b, e) = (&mut *v, &mut *b, &mut *e);
            let Some(same) = seg.same else {
                // Neurons with constants of their own: one by one.
                s.partial(v.get_mut(lo..hi), b.get_mut(lo..hi), e.get_mut(lo..hi), lo);
                done = hi;
                continue;
            };
            let first = lo.next_multiple_of(4).min(hi);
            if lo < first {
                s.partial(
                    v.get_mut(lo..first),
                    b.get_mut(lo..first),
                    e.get_mut(lo..first),
                    lo,
                );
            }
            let last = (hi / 4 * 4).max(first);
            if let (Some(v4), Some(b4), Some(e4)) = (
                v.get_mut(first..last),
                b.get_mut(first..last),
                e.get_mut(first..last),
            ) {
                let parts = (v4, b4, e4);
                if LEAN && seg.lif {
                    chunks::<_, _, _, false, LEAN>(&mut s, parts, same, first);
                } else {
                    chunks::<_, _, _, true, LEAN>(&mut s, parts, same, first);
                }
            }
            done = hi;
            if last < hi {
                if last + 4 <= n {
                    s.mixed((&mut *v, &mut *b, &mut *e), last);
                    done = last + 4;
                } else {
                    s.partial(
                        v.get_mut(last..hi),
                        b.get_mut(last..hi),
                        e.get_mut(last..hi),
                        last,
                    );
                }
            }
        }
        s.fix_spikes::<LEAN>(v, b, n_old);
        s.spiked.drop_first(n_old);
        let marks = s.marks;
        // The counters: set to R where a neuron spiked (listed as it spiked), counted down
        // where one was refractory. (Stamps are not counted down.)
        if !LEAN {
            list.count_down(before, &mut view.refractory_left[..n], &view.z[..n]);
        }
        *view.spike_groups = marks.spikes.get();
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

/// The summary bits a step reads and writes outside its common path.
#[derive(Clone, Copy)]
struct Marks {
    old_spikes: u64,
    spikes: GroupBits,
    woke: u64,
    shift: u32,
}

impl Marks {
    #[inline(always)]
    fn bit(&self, j: usize) -> u64 {
        group_bit(j, self.shift)
    }
}

/// 64 group bits being set, as two 32-bit words: setting one is a shift and an OR (in a
/// `u64`, a shift by a variable is about ten instructions on a 32-bit core).
#[derive(Clone, Copy, Default)]
struct GroupBits([u32; 2]);

impl GroupBits {
    /// Sets the bit of the group of neuron `j` (groups of `1 << shift`).
    #[inline(always)]
    fn set(&mut self, j: usize, shift: u32) {
        let (half, bit) = group_half_bit(j, shift);
        self.0[half] |= bit;
    }

    fn get(self) -> u64 {
        u64::from(self.0[0]) | u64::from(self.0[1]) << 32
    }
}

/// `v`, `b` and the ring entries of this step, equally long: what every neuron's step touches.
type Parts<'p, F, A> = (&'p mut [F], &'p mut [F], &'p mut [A]);

/// The rest of one fast step: what the neurons off the common path touch (equally long
/// slices), the lists and summaries.
/// `STAMPS`: the refractory counters are stamps (see [`crate::state::Stamps`]).
struct Sweep<'p, F, const STAMPS: bool> {
    z: &'p mut [F],
    left: &'p mut [u16],
    neurons: &'p [Neuron<F>],
    list: &'p mut NeuronList,
    spiked: &'p mut NeuronList,
    marks: Marks,
    special: u64,
    q: Quiet<F>,
    /// The neurons that spiked in the last step get their spike from [`Sweep::fix_spikes`].
    by_list: bool,
}

/// The chunks of four of a run of identical neurons (`v`, `b`, `e` from neuron `first` on, a
/// multiple of 4), whose constants `c` gives. `ADAPT`: `b` is kept (else the neurons are LIF
/// neurons whose `b` is not, see [`lif_step_with`]). Chunks whose group is not marked special
/// are told apart by one bit each (a shift and a test).
#[inline(always)]
fn chunks<F: Real, A: Accumulator<F>, C: Constants<F>, const ADAPT: bool, const STAMPS: bool>(
    s: &mut Sweep<'_, F, STAMPS>,
    (v4, b4, e4): Parts<'_, F, A>,
    c: C,
    first: usize,
) {
    let (vq, bq, eq) = (quads_mut(v4), quads_mut(b4), quads_mut(e4));
    let n_q = vq.len().min(bq.len()).min(eq.len());
    let (vq, bq, eq) = (&mut vq[..n_q], &mut bq[..n_q], &mut eq[..n_q]);
    let base = first / 4;
    // A copy in registers (the sweep's own may change in `fire_one`, as far as the compiler
    // knows).
    let quiet = s.q;
    let mut i = 0;
    while i < n_q {
        // Bit `30 - k`: chunk `base + i + k` is special; a shift by one brings it to the sign
        // bit, and the shift's own flags test it (two instructions a chunk).
        let mut bits = chunk_bits(s.special, s.marks.shift, base + i).reverse_bits() >> 1;
        let end = n_q.min(i + 31);
        let mut at = 4 * (base + i);
        let (Some(vr), Some(br), Some(er)) =
            (vq.get_mut(i..end), bq.get_mut(i..end), eq.get_mut(i..end))
        else {
            return;
        };
        i = end;
        for ((vc, bc), ec) in vr.iter_mut().zip(br).zip(er) {
            bits <<= 1;
            let special = (bits as i32) < 0;
            let this = at;
            at += 4;
            if special {
                rare();
                if !s.by_list && s.marks.old_spikes & s.marks.bit(this) != 0 {
                    // Some `z` may be set: the general step, one by one.
                    s.partial(Some(vc), Some(bc), Some(ec), this);
                    continue;
                }
                if ec[0].clear_bits() | ec[1].clear_bits() | ec[2].clear_bits() | ec[3].clear_bits()
                    == 0
                {
                    // At rest (the group is marked special and has no spike): stays so
                    // without input.
                    continue;
                }
                s.marks.woke |= s.marks.bit(this);
            }
            chunk::<F, A, C, ADAPT, STAMPS>(s, &quiet, c, (vc, bc, ec), this);
        }
    }
}

/// The four neurons at `at`, as if every `z` were `+0` ([`NoSpikeFinite`]; see
/// [`Sweep::fix_spikes`] for the others); a neuron above its threshold branches out to
/// [`Sweep::above`] (a test and a branch each, where collecting bits cost four).
#[inline(always)]
fn chunk<F: Real, A: Accumulator<F>, C: Constants<F>, const ADAPT: bool, const STAMPS: bool>(
    s: &mut Sweep<'_, F, STAMPS>,
    q: &Quiet<F>,
    c: C,
    (vc, bc, ec): (&mut [F; 4], &mut [F; 4], &mut [A; 4]),
    at: usize,
) {
    if ADAPT {
        four!(j => {
            let n = c.neuron(s.neurons, at + j);
            if q.adapting(c, &n, &mut vc[j], &mut bc[j], &mut ec[j], NoSpikeFinite) {
                s.above(at + j);
            }
        });
    } else {
        four!(j => {
            let n = c.neuron(s.neurons, at + j);
            if q.lif(c, &n, &mut vc[j], &mut ec[j], NoSpikeFinite) {
                s.above(at + j);
            }
        });
    }
}

impl<F: Real, const STAMPS: bool> Sweep<'_, F, STAMPS> {
    /// Neuron `j` was above its threshold: it spikes unless it is refractory (most neurons
    /// above their thresholds spiked in the last steps: tested here, before the call).
    #[inline(always)]
    fn above(&mut self, j: usize) {
        rare();
        if self.left.get(j).is_some_and(|&l| self.q.free::<STAMPS>(l)) {
            self.fire_one(j);
        }
    }

    /// Neuron `j`, not refractory ([`Sweep::above`] tested it), was above its threshold: it
    /// spikes.
    #[inline(never)]
    #[cold]
    fn fire_one(&mut self, j: usize) {
        let q = &self.q;
        let (Some(z), Some(left)) = (self.z.get_mut(j), self.left.get_mut(j)) else {
            return;
        };
        *z = q.k.spike;
        *left = q.mark::<STAMPS>();
        self.spiked.push(j);
        if !STAMPS && q.n_refractory > 0 {
            self.list.push(j);
        }
        self.marks.spikes.set(j, self.marks.shift);
    }

    /// After the sweep, for the first `n_old` neurons listed in `spiked` (those that spiked
    /// in the last step, refractory now): the step with its spike `z`
    /// ([`add_previous_spike`]) from the one the sweep gave it (with [`NoSpikeFinite`]), and
    /// `z` cleared. Its spike test, done with the other threshold, does not matter: it is
    /// refractory. In a `LEAN` step the `b` of LIF neurons is not kept
    /// ([`add_previous_spike_lif`]: `thr + b 0 = thr` for a finite `b`).
    #[inline(never)]
    fn fix_spikes<const LEAN: bool>(&mut self, v: &mut [F], b: &mut [F], n_old: usize) {
        let k = &self.q.k;
        for &j in self.spiked.ids().get(..n_old).unwrap_or_default() {
            let j = usize::from(j);
            let (Some(v), Some(b), Some(z), Some(n)) = (
                v.get_mut(j),
                b.get_mut(j),
                self.z.get_mut(j),
                self.neurons.get(j),
            ) else {
                return;
            };
            if z.to_bits_u64() == 0 {
                // Stepped one by one, with its spike (a chunk at the edge of a run).
                continue;
            }
            if LEAN && n.beta == F::zero() {
                *v = add_previous_spike_lif(n, One, *v, *z);
            } else {
                (*v, *b) = add_previous_spike(n, k, One, One, *v, *b, *z);
            }
            *z = F::zero();
        }
    }

    /// The chunk of four at `at` that holds the end of one run and the start of another:
    /// as a chunk of a run, each neuron with its own constants.
    #[inline(never)]
    fn mixed<A: Accumulator<F>>(&mut self, (v, b, e): Parts<'_, F, A>, at: usize) {
        let (Some(Ok(vc)), Some(Ok(bc)), Some(Ok(ec))) = (
            v.get_mut(at..at + 4).map(<&mut [F; 4]>::try_from),
            b.get_mut(at..at + 4).map(<&mut [F; 4]>::try_from),
            e.get_mut(at..at + 4).map(<&mut [A; 4]>::try_from),
        ) else {
            return;
        };
        let g = self.marks.bit(at);
        if !self.by_list && self.marks.old_spikes & g != 0 {
            // Some `z` may be set: the general step, one by one.
            self.partial(Some(vc), Some(bc), Some(ec), at);
            return;
        }
        self.marks.woke |= g;
        // As `chunk` does, one neuron at a time (a loop: small).
        for (j, ((v, b), e)) in vc.iter_mut().zip(bc).zip(ec).enumerate() {
            let n = Each.neuron(self.neurons, at + j);
            if self.q.adapting(Each, &n, v, b, e, NoSpikeFinite) {
                self.above(at + j);
            }
        }
    }

    /// The neurons `first..` of `v`, `b`, `e` (a few at the edge of a run, a chunk where some
    /// `z` may be set, or a run of neurons with constants of their own), one by one, by
    /// [`Sweep::general`].
    #[inline(never)]
    fn partial<A: Accumulator<F>>(
        &mut self,
        v: Option<&mut [F]>,
        b: Option<&mut [F]>,
        e: Option<&mut [A]>,
        first: usize,
    ) {
        let (Some(v), Some(b), Some(e)) = (v, b, e) else {
            return;
        };
        let mut j = first;
        while j < first + v.len() {
            self.marks.woke |= self.marks.bit(j);
            j = ((j >> self.marks.shift) + 1) << self.marks.shift;
        }
        self.general((v, b, e), first);
    }

    /// The neurons `first..` of `v`, `b`, `e` with any `z`: the general step, refractory as
    /// the counters say (they are counted down afterwards, see [`NeuronList::count_down`]).
    fn general<A: Accumulator<F>>(&mut self, (v, b, e): Parts<'_, F, A>, first: usize) {
        let q = &self.q;
        let end = first.saturating_add(v.len());
        let (Some(z), Some(left), Some(nr)) = (
            self.z.get_mut(first..end),
            self.left.get_mut(first..end),
            self.neurons.get(first..end),
        ) else {
            return;
        };
        for j in 0..v
            .len()
            .min(z.len())
            .min(b.len())
            .min(e.len())
            .min(left.len())
            .min(nr.len())
        {
            let input = take_term(Each, &nr[j], &mut e[j], q.unit);
            let out = neuron_step_with::<F, F, One, One, true>(
                &nr[j],
                &q.k,
                One,
                One,
                v[j],
                z[j],
                b[j],
                input,
                !q.free::<STAMPS>(left[j]),
            );
            v[j] = out.state.v;
            b[j] = out.state.b;
            z[j] = out.state.z;
            if out.spiked {
                left[j] = q.mark::<STAMPS>();
                self.spiked.push(first + j);
                if !STAMPS && q.n_refractory > 0 {
                    self.list.push(first + j);
                }
                self.marks.spikes.set(first + j, self.marks.shift);
            }
        }
    }
}

/// What the fast step of one neuron needs. Its cells have `dt = V0 = 1`: the equations leave
/// those factors out ([`One`]).
#[derive(Clone, Copy)]
struct Quiet<F> {
    k: StepConsts<F>,
    unit: F,
    n_refractory: u16,
    /// The step's clock, for stamps.
    clock: u16,
}

impl<F: Real> Quiet<F> {
    /// Whether a neuron whose counter (`STAMPS`: stamp) is `left` is not refractory in this
    /// step.
    #[inline(always)]
    fn free<const STAMPS: bool>(&self, left: u16) -> bool {
        if STAMPS {
            self.clock.wrapping_sub(left) > self.n_refractory
        } else {
            left == 0
        }
    }

    /// The counter (`STAMPS`: stamp) of a neuron that spikes in this step.
    #[inline(always)]
    fn mark<const STAMPS: bool>(&self) -> u16 {
        if STAMPS {
            self.clock
        } else {
            self.n_refractory
        }
    }

    /// A neuron with previous spike `z`: updates `v`, `b` and the ring entry, returns whether
    /// `v` (the previous one) is above the threshold: the neuron spikes unless it is refractory
    /// (the caller then sets `z` and the counter).
    #[inline(always)]
    fn adapting<A: Accumulator<F>, C: Constants<F>, Z: PrevSpike<F>>(
        &self,
        c: C,
        n: &Neuron<F>,
        v: &mut F,
        b: &mut F,
        e: &mut A,
        z: Z,
    ) -> bool {
        let input = take_term(c, n, e, self.unit);
        let out =
            neuron_step_with::<F, Z, One, One, true>(n, &self.k, One, One, *v, z, *b, input, false);
        *v = out.state.v;
        *b = out.state.b;
        out.spiked
    }

    /// [`Quiet::adapting`] for a LIF neuron whose `b` is not kept ([`lif_step_with`]).
    #[inline(always)]
    fn lif<A: Accumulator<F>, C: Constants<F>, Z: PrevSpike<F>>(
        &self,
        c: C,
        n: &Neuron<F>,
        v: &mut F,
        e: &mut A,
        z: Z,
    ) -> bool {
        let input = take_term(c, n, e, self.unit);
        let out = lif_step_with::<F, Z, One, true>(n, &self.k, One, *v, z, input, false);
        *v = out.v;
        out.spiked
    }
}

/// The input term `(1 - decay) * i_t` of a ring entry, which is cleared. Computed for clear
/// entries too: on a Cortex-M4 a test for them cost more than the conversion and the product
/// it saved (every neuron paid the test and a move; 6 993 against 7 094 instructions a step,
/// i8 sMNIST-sized), and a workstation core would mispredict it.
#[inline(always)]
fn take_term<F: Real, A: Accumulator<F>, C: Constants<F>>(
    c: C,
    n: &Neuron<F>,
    e: &mut A,
    unit: F,
) -> F {
    let x = *e;
    *e = A::default();
    c.term(n, x, unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neuron::allows_shortcuts;
    extern crate std;
    use std::vec::Vec;

    /// The one product of [`Same`] is the two of [`Each`], every entry is left clear, and a
    /// clear entry gives `+0` (what lets a group at rest skip its step), for neurons that
    /// allow the shortcuts.
    #[test]
    fn input_terms_are_exact() {
        let neurons = [
            Neuron::new(20.0f32, 0.01, 0.0, 1.0).unwrap(),
            Neuron::new(1e-3f32, 0.01, 1.8, 1.0).unwrap(),
            Neuron::new(1e30f32, 0.01, 1.8, 1.0).unwrap(),
            Neuron::new(3.7f32, 0.01, 1.8, 1.0).unwrap(),
            Neuron {
                decay: 0.0,
                one_minus_decay: 0.0,
                thr: 1.0,
                beta: 0.0,
            },
        ];
        let entries = [0i32, 1, -1, 3, 12345, 1 << 24 | 1, i32::MAX, i32::MIN];
        for n in &neurons {
            assert!(allows_shortcuts(n));
            for unit in [
                1.0f32,
                2f32.powi(-20),
                2f32.powi(-126),
                2f32.powi(90),
                2f32.powi(-140),
                0.3,
            ] {
                let same = Same::new::<i32>(n, unit);
                for x in entries {
                    let mut b = x;
                    let tb = take_term(Each, n, &mut b, unit);
                    assert_eq!(b, 0);
                    let two = n.one_minus_decay * (x as f32 * unit);
                    assert!(tb.to_bits() == two.to_bits() || (tb.is_nan() && two.is_nan()));
                    if x == 0 {
                        assert_eq!(tb.to_bits(), 0);
                    }
                    if let Some(same) = same {
                        let mut c = x;
                        let tc = take_term(same, n, &mut c, unit);
                        assert_eq!((tc.to_bits(), c), (tb.to_bits(), b), "{n:?} {unit} {x}");
                    }
                }
                // Units that are not normal powers of two keep both products.
                if unit == 1.0 || unit == 2f32.powi(-20) {
                    assert!(same.is_some());
                }
                if unit == 0.3 || unit == 2f32.powi(-140) {
                    assert!(same.is_none());
                }
            }
            for x in [0.0f32, -0.0, 1.0, -1e-40, f32::INFINITY, f32::NAN] {
                let mut b = x;
                let tb = take_term(Each, n, &mut b, 1.0);
                assert_eq!(b.to_bits(), 0);
                if x.to_bits() == 0 {
                    assert_eq!(tb.to_bits(), 0);
                }
                let same = Same::new::<f32>(n, 1.0).unwrap();
                let mut c = x;
                let tc = take_term(same, n, &mut c, 1.0);
                assert!(tc.to_bits() == tb.to_bits() || (tc.is_nan() && tb.is_nan()));
            }
        }
    }

    #[test]
    fn group_bits_in_halves_are_the_bits_of_the_groups() {
        for shift in [0, 2, 3, 6] {
            let mut halves = GroupBits::default();
            let mut plain = 0u64;
            for j in (0..300).step_by(7).chain([4095, 1 << 20]) {
                halves.set(j, shift);
                plain |= group_bit(j, shift);
                assert_eq!(halves.get(), plain, "{j} {shift}");
            }
        }
    }

    #[test]
    fn segments_are_the_runs_of_identical_neurons() {
        let lif = Neuron::new(20.0f32, 0.03, 0.0, 1.0).unwrap();
        let alif = Neuron::new(20.0f32, 0.03, 1.8, 1.0).unwrap();
        let other = Neuron::new(21.0f32, 0.03, 1.8, 1.0).unwrap();
        let runs = |ns: &[Neuron<f32>]| {
            Segments::new::<i32>(ns, 1.0 / 1024.0)
                .runs()
                .iter()
                .map(|s| (s.start, s.end, s.same.is_some(), s.lif))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            runs(&[lif, lif, lif, alif, alif]),
            [(0, 3, true, true), (3, 5, true, false)]
        );
        assert_eq!(runs(&[lif, alif, other, alif, lif]), [(0, 5, false, false)]);
        assert_eq!(
            runs(&[lif, alif, other, lif]),
            [
                (0, 1, true, true),
                (1, 2, true, false),
                (2, 3, true, false),
                (3, 4, true, true)
            ]
        );
    }
}
