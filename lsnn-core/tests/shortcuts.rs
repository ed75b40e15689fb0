//! The cell's step, with its shortcuts (groups at rest skipped, `z = +0` and clear ring entries
//! not read, the refractory and spike lists, the slot table of delivery), is bit for bit the
//! plain algorithm: deliver every input event, then every spike of the previous step (neurons
//! ascending), into an explicit ring; then `neuron_step` for every neuron. Both f32 and f64, a
//! float ring and an i32 ring, networks that allow the shortcuts and networks that do not
//! (dt or V0 not 1, negative beta), and states set by hand to awkward values (-0, negative,
//! subnormal, infinite, NaN).

use lsnn_core::{
    neuron_step, Accumulator, Cell, CellConfig, CellState, Csr, Neuron, NeuronState, NoNoise, Real,
    Synapses,
};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

static SPIKES: AtomicUsize = AtomicUsize::new(0);

/// A network and a run of it, drawn at random.
#[derive(Debug, Clone)]
struct Case {
    n_in: usize,
    n: usize,
    d: usize,
    r: usize,
    unit_factors: bool,
    /// All neurons alike but for `beta` (sorted, so in runs): the cell sweeps runs of
    /// identical neurons with their constants in registers.
    uniform: bool,
    /// `(w, delay)` dense, row-major; weights are small integers (also the integer ring's).
    w_in: Vec<(i32, u8)>,
    w_rec: Vec<(i32, u8)>,
    beta: Vec<f64>,
    /// Steps: input channels that spike.
    x: Vec<Vec<usize>>,
    /// Before step `t`: set neuron `j` to values drawn from `AWKWARD` (`v`, `z`, `b`), its
    /// counter to `left`, and ring entry `(j, delay)` to a value (float rings).
    edits: Vec<Edit>,
}

#[derive(Debug, Clone, Copy)]
struct Edit {
    t: usize,
    j: usize,
    v: usize,
    z: usize,
    b: usize,
    left: u16,
    delay: usize,
    entry: usize,
}

const AWKWARD: [f64; 14] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    0.03,
    -0.03,
    1e-40,
    -1e-40,
    3.0e38,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    2.0,
];

fn case_strategy() -> impl Strategy<Value = Case> {
    // (Under Miri, which is slow, small networks and short runs.)
    let sizes = if cfg!(miri) {
        (1usize..3, 4usize..12, 1usize..5, 1usize..3).boxed()
    } else {
        prop_oneof![
            8 => (1usize..5, 1usize..40, 1usize..20, 0usize..4),
            1 => (1usize..5, 250usize..300, 1usize..12, 0usize..4),
        ]
        .boxed()
    };
    let steps = if cfg!(miri) { 6usize..10 } else { 10usize..50 };
    (sizes, 0u32..8, steps, any::<bool>()).prop_flat_map(|((n_in, n, d, r), kind, t, uniform)| {
        let w = (prop_oneof![2 => Just(0i32), 3 => -30i32..=50], 0..d as u8);
        (
            prop::collection::vec(w.clone(), n_in * n),
            prop::collection::vec(w, n * n),
            prop::collection::vec(
                if kind == 0 {
                    prop_oneof![Just(0.0), Just(1.7), Just(-0.5)].boxed()
                } else {
                    prop_oneof![Just(0.0), Just(1.7)].boxed()
                },
                n,
            ),
            prop::collection::vec(prop::collection::vec(0..n_in, 0..3), t),
            prop::collection::vec(
                (
                    0..t,
                    0..n,
                    (
                        0..AWKWARD.len(),
                        // mostly `+0`: the quiet path, where `b` matters most
                        prop_oneof![2 => Just(0usize), 1 => 0..AWKWARD.len()],
                        0..AWKWARD.len(),
                    ),
                    0u16..4,
                    0..d,
                    0..AWKWARD.len(),
                ),
                0..6,
            ),
        )
            .prop_map(move |(w_in, w_rec, beta, x, edits)| Case {
                n_in,
                n,
                d,
                r,
                unit_factors: kind != 1,
                uniform,
                w_in,
                w_rec,
                beta,
                x,
                edits: edits
                    .into_iter()
                    .map(|(t, j, (v, z, b), left, delay, entry)| Edit {
                        t,
                        j,
                        v,
                        z,
                        b,
                        left,
                        delay,
                        entry,
                    })
                    .collect(),
            })
    })
}

/// Integer synapses for the i32 ring (the model format's kind, without a model): the dense
/// entries that are not 0, weights scaled by 1000.
type IntCsr = lsnn_core::Csr<i32>;

fn int_csr(n_pre: usize, n_post: usize, dense: &[(i32, u8)], no_autapse: bool) -> IntCsr {
    IntCsr::from_entries(n_pre, n_post, no_autapse, |pre, post| {
        let (w, d) = dense[pre * n_post + post];
        Ok((w != 0).then_some((w * 1000, d)))
    })
    .unwrap()
}

/// The plain algorithm, on its own arrays.
struct Reference<F, A> {
    v: Vec<F>,
    z: Vec<F>,
    b: Vec<F>,
    left: Vec<u16>,
    /// `ring[d][j]` arrives in `d` steps.
    ring: Vec<Vec<A>>,
}

impl<F: Real, A: Accumulator<F>> Reference<F, A> {
    fn new(n: usize, d: usize) -> Self {
        Reference {
            v: vec![F::zero(); n],
            z: vec![F::zero(); n],
            b: vec![F::zero(); n],
            left: vec![0; n],
            ring: vec![vec![A::default(); n]; d],
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        cfg: &CellConfig<F>,
        neurons: &[Neuron<F>],
        w_in: &impl Synapses<A>,
        w_rec: &impl Synapses<A>,
        events: &[usize],
        unit: F,
    ) {
        let k = cfg.step_consts();
        for &i in events {
            w_in.for_each_outgoing(i, |t, d, w| {
                self.ring[d][t] = self.ring[d][t].add(A::input(F::one(), w));
            });
        }
        for pre in 0..self.z.len() {
            let zk = self.z[pre];
            if zk != F::zero() {
                w_rec.for_each_outgoing(pre, |t, d, w| {
                    self.ring[d][t] = self.ring[d][t].add(A::spike(zk, w));
                });
            }
        }
        for (j, n) in neurons.iter().enumerate() {
            let prev = NeuronState {
                v: self.v[j],
                z: self.z[j],
                b: self.b[j],
            };
            let left = self.left[j];
            let out = neuron_step(n, &k, prev, self.ring[0][j].current(unit), left > 0);
            self.v[j] = out.state.v;
            self.z[j] = out.state.z;
            self.b[j] = out.state.b;
            if out.spiked {
                self.left[j] = cfg.n_refractory as u16;
            } else if left > 0 {
                self.left[j] = left - 1;
            }
        }
        let mut emptied = self.ring.remove(0);
        emptied.fill(A::default());
        self.ring.push(emptied);
    }
}

/// The bits of `x`, all NaN alike: Rust leaves the sign and payload of a NaN result open (an
/// optimiser may swap the operands of an addition), and so does IEEE 754.
fn bits<F: Real>(x: F) -> u64 {
    if x.is_nan() {
        u64::MAX
    } else {
        x.to_bits_u64()
    }
}

/// Runs `case` on the cell (state `state`) and on the reference, comparing every bit after
/// every step.
#[allow(clippy::too_many_arguments)]
fn check<F: Real, A: Accumulator<F>, S, C, R, In: Synapses<A>, Rec: Synapses<A>>(
    case: &Case,
    cfg: CellConfig<F>,
    neurons: &[Neuron<F>],
    cell: &Cell<'_, F, In, Rec, A>,
    mut state: CellState<F, S, C, R>,
    set_entry: impl Fn(&mut CellState<F, S, C, R>, usize, usize, F) -> Option<A>,
    entry: impl Fn(&CellState<F, S, C, R>, usize, usize) -> A,
    unit: F,
) -> Result<(), TestCaseError>
where
    S: AsRef<[F]> + AsMut<[F]> + Clone,
    C: AsRef<[u16]> + AsMut<[u16]> + Clone,
    R: lsnn_core::RingStore<F, Acc = A> + Clone,
{
    let mut reference = Reference::<F, A>::new(case.n, case.d);
    // Stepped by `step_inference`: the same, but for `b` of LIF neurons.
    let mut lean = state.clone();
    for (t, x) in case.x.iter().enumerate() {
        for e in case.edits.iter().filter(|e| e.t == t) {
            let s = NeuronState {
                v: F::of(AWKWARD[e.v]),
                z: F::of(AWKWARD[e.z]),
                b: F::of(AWKWARD[e.b]),
            };
            for state in [&mut state, &mut lean] {
                state.set_neuron(e.j, s);
                state.set_refractory_left(e.j, e.left);
            }
            reference.v[e.j] = s.v;
            reference.z[e.j] = s.z;
            reference.b[e.j] = s.b;
            reference.left[e.j] = e.left;
            let value = F::of(AWKWARD[e.entry]);
            if let Some(a) = set_entry(&mut state, e.j, e.delay, value) {
                set_entry(&mut lean, e.j, e.delay, value);
                reference.ring[e.delay][e.j] = a;
            }
        }
        let events: Vec<(usize, F)> = x.iter().map(|&i| (i, F::one())).collect();
        cell.step_events(&mut state, events.iter().copied(), &mut NoNoise)
            .unwrap();
        cell.step_inference(&mut lean, events, &mut NoNoise)
            .unwrap();
        reference.step(&cfg, neurons, cell.w_in(), cell.w_rec(), x, unit);
        SPIKES.fetch_add(
            reference.z.iter().filter(|&&z| z > F::zero()).count(),
            Ordering::Relaxed,
        );
        same(case, t, &state, &reference, &entry, unit, |_| true)?;
        same(case, t, &lean, &reference, &entry, unit, |j| {
            neurons[j].beta != F::zero()
        })?;
    }
    // Settled, the counters are counts again.
    lean.settle();
    prop_assert_eq!(lean.refractory_left(), &reference.left[..]);
    Ok(())
}

/// Whether `state` holds the reference's values after step `t` (`b` only where `keeps_b`).
fn same<F: Real, A: Accumulator<F>, S, C, R>(
    case: &Case,
    t: usize,
    state: &CellState<F, S, C, R>,
    reference: &Reference<F, A>,
    entry: &impl Fn(&CellState<F, S, C, R>, usize, usize) -> A,
    unit: F,
    keeps_b: impl Fn(usize) -> bool,
) -> Result<(), TestCaseError>
where
    S: AsRef<[F]> + AsMut<[F]>,
    C: AsRef<[u16]> + AsMut<[u16]>,
    R: lsnn_core::RingStore<F, Acc = A>,
{
    {
        for j in 0..case.n {
            prop_assert_eq!(
                bits(state.v()[j]),
                bits(reference.v[j]),
                "v t {} j {}",
                t,
                j
            );
            prop_assert_eq!(
                bits(state.z()[j]),
                bits(reference.z[j]),
                "z t {} j {}",
                t,
                j
            );
            if keeps_b(j) {
                prop_assert_eq!(
                    bits(state.b()[j]),
                    bits(reference.b[j]),
                    "b t {} j {}",
                    t,
                    j
                );
            }
            prop_assert_eq!(
                state.refractory_left_of(j),
                reference.left[j],
                "left t {} j {}",
                t,
                j
            );
            for d in 0..case.d {
                // (`current` is the entry itself for floats, and one-to-one for the i32 ring.)
                prop_assert_eq!(
                    bits(entry(state, j, d).current(unit)),
                    bits(reference.ring[d][j].current(unit)),
                    "ring t {} j {} d {}",
                    t,
                    j,
                    d
                );
            }
        }
        let listed: Vec<(usize, u64)> = state.spikes().map(|(j, z)| (j, bits(z))).collect();
        let scanned: Vec<(usize, u64)> = (0..case.n)
            .filter(|&j| state.z()[j] != F::zero())
            .map(|j| (j, bits(state.z()[j])))
            .collect();
        prop_assert_eq!(listed, scanned, "spikes() t {}", t);
    }
    Ok(())
}

fn config<F: Real>(case: &Case) -> CellConfig<F> {
    CellConfig {
        dt: F::of(if case.unit_factors { 1.0 } else { 0.5 }),
        v0: F::of(if case.unit_factors { 1.0 } else { 1.25 }),
        tau_adaptation: F::of(50.0),
        n_delay: case.d,
        n_refractory: case.r,
        ..CellConfig::new()
    }
}

fn neurons<F: Real>(case: &Case, cfg: &CellConfig<F>) -> Vec<Neuron<F>> {
    let mut beta = case.beta.clone();
    if case.uniform {
        beta.sort_by(f64::total_cmp);
    }
    beta.iter()
        .enumerate()
        .map(|(j, &beta)| {
            let tau = F::of(if case.uniform {
                20.0
            } else {
                10.0 + (j % 7) as f64
            });
            Neuron::new(tau, F::of(0.03), F::of(beta), cfg.dt).unwrap()
        })
        .collect()
}

fn float_run<F: Real>(case: &Case) -> Result<(), TestCaseError> {
    let cfg = config::<F>(case);
    let neurons = neurons(case, &cfg);
    let scale = |dense: &[(i32, u8)]| -> (Vec<F>, Vec<usize>) {
        (
            dense
                .iter()
                .map(|&(w, _)| F::of(f64::from(w) / 64.0))
                .collect(),
            dense.iter().map(|&(_, d)| usize::from(d)).collect(),
        )
    };
    let (wi, di) = scale(&case.w_in);
    let (wr, dr) = scale(&case.w_rec);
    let w_in = Csr::from_dense(case.n_in, case.n, &wi, &di, F::one(), false).unwrap();
    let w_rec = Csr::from_dense(case.n, case.n, &wr, &dr, F::one(), true).unwrap();
    let cell = Cell::new(cfg, &neurons, w_in.view(), w_rec.view()).unwrap();
    let state = cell
        .state_in(
            vec![F::zero(); CellState::<F, Vec<F>, Vec<u16>>::float_len(case.n, case.d)],
            vec![0; case.n],
        )
        .unwrap();
    check(
        case,
        cfg,
        &neurons,
        &cell,
        state,
        |s, j, d, x| {
            s.set_i_future(j, d, x);
            Some(x)
        },
        |s, j, d| s.i_future(j, d),
        F::one(),
    )
}

fn integer_run(case: &Case) -> Result<(), TestCaseError> {
    let cfg = config::<f32>(case);
    let neurons = neurons(case, &cfg);
    let w_in = int_csr(case.n_in, case.n, &case.w_in, false);
    let w_rec = int_csr(case.n, case.n, &case.w_rec, true);
    let unit = 1.0 / 65536.0;
    let cell = Cell::new_integer(cfg, &neurons, w_in.view(), w_rec.view(), unit).unwrap();
    let state = CellState::with_i32_ring(
        vec![0.0f32; 3 * case.n],
        vec![0u16; case.n],
        vec![0i32; case.d * case.n],
        case.n,
        case.d,
    )
    .unwrap();
    check(
        case,
        cfg,
        &neurons,
        &cell,
        state,
        |_, _, _, _| None,
        |s, j, d| s.ring_entry(j, d),
        unit,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 300 }))]

    #[test]
    fn the_step_is_the_plain_algorithm_bit_for_bit(case in case_strategy()) {
        float_run::<f32>(&case)?;
        float_run::<f64>(&case)?;
        integer_run(&case)?;
    }
}

/// The equivalence above means little if the random networks never spike.
#[test]
fn random_networks_spike_enough_to_exercise_the_shortcuts() {
    the_step_is_the_plain_algorithm_bit_for_bit();
    let spikes = SPIKES.load(Ordering::Relaxed);
    // (Under Miri, a few cases only.)
    let enough = if cfg!(miri) { 1 } else { 2000 };
    assert!(spikes > enough, "only {spikes} spikes over all cases");
}
