//! One test per consequence listed in the semantics page, plus sparse == dense.

use lsnn_core::{
    fixed_state, neuron_step, Cell, CellConfig, CellState, CsrRef, DenseRef, Neuron, NeuronState,
    NoNoise, Synapses,
};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

static SPIKES: AtomicUsize = AtomicUsize::new(0);

const THR: f64 = 0.01;

fn config(n_delay: usize, n_refractory: usize, dt: f64) -> CellConfig<f64> {
    CellConfig {
        dt,
        tau_adaptation: 200.0,
        n_delay,
        n_refractory,
        ..CellConfig::new()
    }
}

fn lif(n: usize, dt: f64) -> Vec<Neuron<f64>> {
    (0..n)
        .map(|_| Neuron::new(20.0, THR, 0.0, dt).unwrap())
        .collect()
}

/// One input wired to neuron 0 with `weight` and `delay`, no recurrence.
fn one_synapse(weight: f64, delay: u8) -> ([u32; 2], [u16; 1], [u8; 1], [f64; 1]) {
    ([0, 1], [0], [delay], [weight])
}

fn no_recurrence(n: usize) -> Vec<u32> {
    vec![0; n + 1]
}

struct Run {
    v: Vec<f64>,
    z: Vec<f64>,
}

/// Drives neuron 0 of a one-neuron cell with `inputs[t]` on a single input synapse.
fn run_single(cfg: CellConfig<f64>, neurons: &[Neuron<f64>], w: f64, delay: u8, x: &[f64]) -> Run {
    let (off, tg, dl, wt) = one_synapse(w, delay);
    let w_in = CsrRef::new(1, &off, &tg, &dl, &wt).unwrap();
    let rec_off = no_recurrence(1);
    let w_rec = CsrRef::<f64>::new(1, &rec_off, &[], &[], &[]).unwrap();
    let cell = Cell::new(cfg, neurons, w_in, w_rec).unwrap();
    let mut state = cell
        .state_in(
            vec![0.0; CellState::<f64, Vec<f64>, Vec<u16>>::float_len(1, cfg.n_delay)],
            vec![0; 1],
        )
        .unwrap();
    let mut run = Run {
        v: vec![],
        z: vec![],
    };
    for &xt in x {
        cell.step(&mut state, &[xt], &mut NoNoise).unwrap();
        run.v.push(state.v()[0]);
        run.z.push(state.z()[0]);
    }
    run
}

#[test]
fn delay_zero_input_moves_v_now_but_spikes_one_step_later() {
    // A strong input at t = 2 through delay index 0.
    let x = [0.0, 0.0, 1.0, 0.0, 0.0];
    let run = run_single(config(1, 0, 1.0), &lif(1, 1.0), 10.0, 0, &x);
    assert_eq!(run.v[1], 0.0);
    assert!(
        run.v[2] > THR,
        "v must jump in the input's own step: {:?}",
        run.v
    );
    assert_eq!(
        run.z[2], 0.0,
        "the spike is decided from the previous voltage"
    );
    assert_eq!(run.z[3], 1.0, "so it comes one step later");
}

#[test]
fn delay_index_d_arrives_d_steps_later() {
    let x = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let run = run_single(config(4, 0, 1.0), &lif(1, 1.0), 10.0, 3, &x);
    assert_eq!(&run.v[..3], &[0.0, 0.0, 0.0]);
    assert!(run.v[3] > THR);
    assert_eq!(run.z[4], 1.0);
}

#[test]
fn without_refractoriness_a_neuron_spikes_in_consecutive_steps() {
    // One huge input: the reset of the first spike lands one step after it, so v is still far
    // above threshold when the second spike is decided.
    let x = [1.0, 0.0, 0.0, 0.0];
    let run = run_single(config(1, 0, 1.0), &lif(1, 1.0), 100.0, 0, &x);
    assert_eq!(&run.z[..3], &[0.0, 1.0, 1.0]);
}

#[test]
fn refractory_neuron_stays_silent_for_r_steps() {
    let r = 2;
    let x = [1.0; 8];
    let with_ref = run_single(config(1, r, 1.0), &lif(1, 1.0), 100.0, 0, &x);
    let free = run_single(config(1, 0, 1.0), &lif(1, 1.0), 100.0, 0, &x);
    assert_eq!(free.z[1..], [1.0; 7]);
    // Spike at 1, silent at 2 and 3 (R = 2), spike again at 4.
    assert_eq!(with_ref.z, vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
}

#[test]
fn dt_scales_spikes_and_the_reset_removes_exactly_one_threshold() {
    let dt = 0.5;
    let x = [1.0, 0.0, 0.0];
    let neurons = lif(1, dt);
    let run = run_single(config(1, 0, dt), &neurons, 10.0, 0, &x);
    assert_eq!(run.z[1], 2.0, "a spike is worth 1/dt");
    // Step 2: v = decay * v1 - z1 * A * dt with A = thr (LIF) and z1 * dt = 1.
    let expected = neurons[0].decay * run.v[1] - THR;
    assert_eq!(run.v[2], expected);
}

#[test]
fn beta_zero_neurons_are_exact_lif_neurons() {
    // An independent LIF written from the textbook form, against the ALIF step with beta = 0
    // and an adaptation variable that is far from zero.
    let n = Neuron::new(20.0, THR, 0.0, 1.0).unwrap();
    let k = config(1, 0, 1.0).step_consts();
    let mut alif = NeuronState {
        v: 0.0,
        z: 0.0,
        b: 5.0,
    };
    let (mut v, mut z) = (0.0f64, 0.0f64);
    let decay = (-1.0f64 / 20.0).exp();
    for t in 0..200 {
        let i_t = if t % 3 == 0 { 0.05 } else { 0.0 };
        let out = neuron_step(&n, &k, alif, i_t, false);
        let v_new = decay * v + (1.0 - decay) * i_t - z * THR;
        let z_new = if v > THR { 1.0 } else { 0.0 };
        assert_eq!(out.thr, THR);
        assert!((out.state.v - v_new).abs() < 1e-15, "step {t}");
        assert_eq!(out.state.z, z_new, "step {t}");
        alif = out.state;
        v = v_new;
        z = z_new;
    }
}

#[test]
fn adaptation_raises_the_threshold_after_spikes() {
    let n = Neuron::new(20.0, THR, 1.8, 1.0).unwrap();
    let k = CellConfig {
        tau_adaptation: 700.0,
        ..config(1, 0, 1.0)
    }
    .step_consts();
    let out = neuron_step(
        &n,
        &k,
        NeuronState {
            v: 0.0,
            z: 1.0,
            b: 0.0,
        },
        0.0,
        false,
    );
    assert_eq!(out.state.b, 1.0 - (-1.0f64 / 700.0).exp());
    assert_eq!(out.thr, THR + out.state.b * 1.8);
}

#[test]
fn fixed_array_state_needs_no_allocator() {
    const N: usize = 2;
    const D: usize = 3;
    let mut st = fixed_state::<f32, { (3 + D) * N }, N>(D).unwrap();
    st.set_i_future(1, 2, 0.5);
    assert_eq!(st.i_future(1, 2), 0.5);
    assert!(fixed_state::<f32, 7, N>(D).is_err());
}

#[test]
fn refractory_history_maps_to_steps_left() {
    let mut st: CellState<f64, Vec<f64>, Vec<u16>> =
        CellState::new(vec![0.0; 4 * 3], vec![0; 3], 3, 1).unwrap();
    st.set_refractory_history(0, &[0.0, 0.0, 1.0], 3);
    st.set_refractory_history(1, &[1.0, 0.0, 0.0], 3);
    st.set_refractory_history(2, &[0.0, 0.0, 0.0], 3);
    assert_eq!(st.refractory_left(), &[3, 1, 0]);
}

// ---------------------------------------------------------------------------------------------
// Event-driven sparse step == dense reference step.

/// The dense reference: the original's formulation (full matrix products into an explicit
/// `[N][D]` buffer that is shifted every step, `z_buf` of the last R spikes), calling the same
/// per-neuron equations.
struct DenseReference {
    i_future: Vec<Vec<f64>>,
    z_buf: Vec<Vec<f64>>,
    state: Vec<NeuronState<f64>>,
}

impl DenseReference {
    fn step(
        &mut self,
        cfg: &CellConfig<f64>,
        neurons: &[Neuron<f64>],
        w_in: &DenseRef<f64>,
        w_rec: &DenseRef<f64>,
        x: &[f64],
    ) {
        let k = cfg.step_consts();
        let z_prev: Vec<f64> = self.state.iter().map(|s| s.z).collect();
        for (i, &xi) in x.iter().enumerate() {
            w_in.for_each_outgoing(i, |j, d, w| self.i_future[j][d] += xi * w);
        }
        for (kk, &zk) in z_prev.iter().enumerate() {
            w_rec.for_each_outgoing(kk, |j, d, w| {
                if j != kk {
                    self.i_future[j][d] += zk * w
                }
            });
        }
        for (j, n) in neurons.iter().enumerate() {
            let refractory = self.z_buf[j].iter().any(|&z| z > 0.0);
            let out = neuron_step(n, &k, self.state[j], self.i_future[j][0], refractory);
            self.state[j] = out.state;
            if cfg.n_refractory > 0 {
                self.z_buf[j].remove(0);
                self.z_buf[j].push(out.state.z);
            }
            self.i_future[j].remove(0);
            self.i_future[j].push(0.0);
        }
    }
}

#[derive(Debug, Clone)]
struct Net {
    n_in: usize,
    n: usize,
    d: usize,
    r: usize,
    w_in: Vec<f64>,
    w_rec: Vec<f64>,
    d_in: Vec<u8>,
    d_rec: Vec<u8>,
    beta: Vec<f64>,
    x: Vec<Vec<f64>>,
}

/// Weights are multiples of 1/64: every sum is exact in any order, so the two formulations
/// must agree bit for bit.
fn net_strategy() -> impl Strategy<Value = Net> {
    (1usize..6, 1usize..8, 1usize..5, 0usize..4, 5usize..60).prop_flat_map(|(n_in, n, d, r, t)| {
        let weight = prop_oneof![3 => Just(0i32), 5 => -24i32..=40];
        (
            prop::collection::vec(weight.clone(), n_in * n),
            prop::collection::vec(weight, n * n),
            prop::collection::vec(0..d as u8, n_in * n),
            prop::collection::vec(0..d as u8, n * n),
            prop::collection::vec(prop_oneof![Just(0.0), Just(1.75)], n),
            prop::collection::vec(
                prop::collection::vec(prop_oneof![4 => Just(0.0), 1 => Just(1.0)], n_in),
                t,
            ),
        )
            .prop_map(move |(wi, wr, di, dr, beta, x)| Net {
                n_in,
                n,
                d,
                r,
                w_in: wi.into_iter().map(|k| f64::from(k) / 64.0).collect(),
                w_rec: wr.into_iter().map(|k| f64::from(k) / 64.0).collect(),
                d_in: di,
                d_rec: dr,
                beta,
                x,
            })
    })
}

fn to_csr(
    n_pre: usize,
    n_post: usize,
    w: &[f64],
    d: &[u8],
    no_autapse: bool,
) -> lsnn_core::Csr<f64> {
    let delays: Vec<usize> = d.iter().map(|&x| usize::from(x)).collect();
    lsnn_core::Csr::from_dense(n_pre, n_post, w, &delays, 1.0, no_autapse).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 256 }))]

    #[test]
    fn event_driven_sparse_step_equals_dense_reference(net in net_strategy()) {
        let cfg = CellConfig { tau_adaptation: 50.0, ..config(net.d, net.r, 1.0) };
        let neurons: Vec<Neuron<f64>> =
            net.beta.iter().map(|&b| Neuron::new(16.0, 0.03125, b, 1.0).unwrap()).collect();
        let w_in = to_csr(net.n_in, net.n, &net.w_in, &net.d_in, false);
        let w_rec = to_csr(net.n, net.n, &net.w_rec, &net.d_rec, true);
        let cell = Cell::new(cfg, &neurons, w_in.view(), w_rec.view()).unwrap();
        let mut sparse = cell
            .state_in(vec![0.0; (3 + net.d) * net.n], vec![0; net.n])
            .unwrap();

        let dense_in = DenseRef::new(net.n_in, net.n, &net.w_in, &net.d_in).unwrap();
        let dense_rec = DenseRef::new(net.n, net.n, &net.w_rec, &net.d_rec).unwrap();
        let mut dense = DenseReference {
            i_future: vec![vec![0.0; net.d]; net.n],
            z_buf: vec![vec![0.0; net.r]; net.n],
            state: vec![NeuronState::default(); net.n],
        };
        for (t, x) in net.x.iter().enumerate() {
            cell.step(&mut sparse, x, &mut NoNoise).unwrap();
            SPIKES.fetch_add(sparse.z().iter().filter(|&&z| z > 0.0).count(), Ordering::Relaxed);
            dense.step(&cfg, &neurons, &dense_in, &dense_rec, x);
            for j in 0..net.n {
                prop_assert_eq!(sparse.neuron(j), dense.state[j], "t {} neuron {}", t, j);
                for d in 0..net.d {
                    prop_assert_eq!(sparse.i_future(j, d), dense.i_future[j][d]);
                }
            }
        }
    }
}

/// The equivalence above means little if the random networks never spike.
#[test]
fn random_networks_spike_enough_to_exercise_the_equivalence() {
    event_driven_sparse_step_equals_dense_reference();
    let spikes = SPIKES.load(Ordering::Relaxed);
    // (Under Miri, a few cases only.)
    let enough = if cfg!(miri) { 0 } else { 200 };
    assert!(spikes > enough, "only {spikes} spikes over all cases");
}

/// The spike test `v > A` (used when A > 0) decides exactly as the original `(v - A) / A > 0`,
/// at the edges too: equal and adjacent floats, subnormals, infinities, NaN, A <= 0.
#[test]
fn spike_test_equals_the_division_at_the_edges() {
    let k = CellConfig::<f32>::new().step_consts();
    let thresholds = [
        0.01f32,
        1.0,
        f32::MIN_POSITIVE,
        1.0e-40,
        f32::from_bits(1),
        3.0e38,
        f32::INFINITY,
        0.0,
        -0.0,
        -0.01,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    for &a in &thresholds {
        let n = Neuron {
            decay: 0.9,
            one_minus_decay: 0.1,
            thr: a,
            beta: 0.0,
        };
        let mut voltages = vec![
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::from_bits(1),
            f32::MAX,
        ];
        if a.is_finite() {
            voltages.extend([a, a * 2.0, a * 0.5, -a]);
            voltages.extend([
                f32::from_bits(a.to_bits() + 1),
                f32::from_bits(a.to_bits().wrapping_sub(1)),
            ]);
        }
        for &v in &voltages {
            let prev = NeuronState { v, z: 0.0, b: 0.0 };
            let out = neuron_step(&n, &k, prev, 0.0, false);
            let a_used = out.thr;
            let expected = if (v - a_used) / a_used > 0.0 {
                k.spike
            } else {
                0.0
            };
            assert_eq!(
                out.state.z.to_bits(),
                expected.to_bits(),
                "v {v:e} A {a_used:e}"
            );
        }
    }
}

/// Lean steps keep refractoriness as stamps of a clock that is set back every 32 768 steps:
/// over 70 000 steps (two set-backs) they give the spikes and counters of `step_events`, and
/// a hand-set counter longer than R is counted down as it is there.
#[test]
#[cfg_attr(miri, ignore)] // 140 000 steps
fn lean_refractoriness_over_clock_resets() {
    let n = 8;
    let cfg = CellConfig {
        n_delay: 2,
        n_refractory: 3,
        ..CellConfig::new()
    };
    let neurons: Vec<Neuron<f32>> = (0..n)
        .map(|j| Neuron::new(20.0, 0.01, if j < 4 { 0.0 } else { 1.8 }, 1.0).unwrap())
        .collect();
    // Input i drives neuron i; neuron j excites neuron j + 1.
    let offsets: Vec<u32> = (0..=n as u32).collect();
    let targets: Vec<u16> = (0..n as u16).collect();
    let w_in = CsrRef::new(n, &offsets, &targets, &[0; 8], &[0.5; 8]).unwrap();
    let rec_targets: Vec<u16> = (1..n as u16).collect();
    let mut rec_offsets: Vec<u32> = (0..n as u32).collect();
    rec_offsets.push(n as u32 - 1);
    let w_rec = CsrRef::new(n, &rec_offsets, &rec_targets, &[1; 7], &[0.004; 7]).unwrap();
    let cell = Cell::new(cfg, &neurons, w_in, w_rec).unwrap();
    let mut eager = cell.state_in(vec![0.0f32; 5 * n], vec![0; n]).unwrap();
    let mut lean = eager.clone();
    for state in [&mut eager, &mut lean] {
        state.set_refractory_left(5, 9);
    }
    let mut spikes = 0;
    for t in 0..70_000usize {
        let events: Vec<(usize, f32)> = (0..n)
            .filter(|i| (t * 7 + i * 3) % (5 + i) < 3)
            .map(|i| (i, 1.0))
            .collect();
        cell.step_events(&mut eager, events.iter().copied(), &mut NoNoise)
            .unwrap();
        cell.step_inference(&mut lean, events, &mut NoNoise)
            .unwrap();
        assert_eq!(eager.z(), lean.z(), "step {t}");
        assert_eq!(eager.v(), lean.v(), "step {t}");
        for j in 0..n {
            assert_eq!(
                eager.refractory_left()[j],
                lean.refractory_left_of(j),
                "step {t} neuron {j}"
            );
        }
        spikes += eager.z().iter().filter(|&&z| z > 0.0).count();
    }
    assert!(spikes > 20_000, "{spikes}");
    lean.settle();
    assert_eq!(eager.refractory_left(), lean.refractory_left());
}
