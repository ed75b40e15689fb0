//! The compact model format: round trips, robustness against arbitrary bytes, one test per
//! validation error.

use lsnn_core::model::{self, section, HEADER_LEN, SECTION_ENTRY_LEN};
use lsnn_core::{
    CellConfig, CellState, CoreError, Model, ModelParts, Neuron, NoNoise, Readout, Synapses,
    WeightKind,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

// ---------------------------------------------------------------------------------------------
// Test networks

type OwnedCsr = lsnn_core::Csr<f32>;

/// From dense `(connected, delay, weight)` entries, row-major `n_pre x n_post`.
fn csr_from_dense_entries(
    n_pre: usize,
    n_post: usize,
    dense: &[(bool, u8, f32)],
    no_autapse: bool,
) -> OwnedCsr {
    OwnedCsr::from_entries(n_pre, n_post, no_autapse, |pre, post| {
        let (on, d, w) = dense[pre * n_post + post];
        Ok(on.then_some((w, d)))
    })
    .unwrap()
}

#[derive(Clone, Debug)]
struct Net {
    config: CellConfig<f32>,
    tau: Vec<f32>,
    thr: Vec<f32>,
    beta: Vec<f32>,
    w_in: OwnedCsr,
    w_rec: OwnedCsr,
    w_out: Vec<f32>,
    b_out: Option<Vec<f32>>,
    tau_out: f32,
}

impl Net {
    fn parts(&self) -> ModelParts<'_> {
        ModelParts {
            config: self.config,
            tau: &self.tau,
            thr: &self.thr,
            beta: &self.beta,
            w_in: self.w_in.view(),
            w_rec: self.w_rec.view(),
            w_out: &self.w_out,
            b_out: self.b_out.as_deref(),
            tau_out: self.tau_out,
            weights: WeightKind::F32,
        }
    }

    fn encode(&self) -> Vec<u8> {
        self.encode_as(WeightKind::F32)
    }

    fn encode_as(&self, weights: WeightKind) -> Vec<u8> {
        let parts = ModelParts {
            weights,
            ..self.parts()
        };
        let mut out = vec![0u8; parts.encoded_len().unwrap()];
        let n = parts.encode(&mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }

    fn n_in(&self) -> usize {
        self.w_in.offsets.len() - 1
    }

    fn neurons(&self) -> Vec<Neuron<f32>> {
        (0..self.tau.len())
            .map(|j| Neuron::new(self.tau[j], self.thr[j], self.beta[j], self.config.dt).unwrap())
            .collect()
    }
}

/// A fixed small network: 2 inputs, 3 neurons, 2 outputs, D = 3, with bias.
fn small_net() -> Net {
    let config = CellConfig {
        dt: 1.0,
        tau_adaptation: 200.0,
        v0: 1.0,
        n_delay: 3,
        n_refractory: 2,
        dampening_factor: 0.3,
        injected_noise_current: 0.0,
    };
    let w_in = OwnedCsr {
        n_post: 3,
        offsets: vec![0, 2, 3],
        targets: vec![0, 2, 1],
        delays: vec![0, 2, 1],
        weights: vec![0.5, -0.25, 1.5],
    };
    let w_rec = OwnedCsr {
        n_post: 3,
        offsets: vec![0, 1, 3, 4],
        targets: vec![1, 0, 2, 0],
        delays: vec![1, 0, 2, 1],
        weights: vec![0.3, -0.7, 0.2, 0.9],
    };
    Net {
        config,
        tau: vec![20.0, 25.0, 30.0],
        thr: vec![0.01, 0.02, 0.03],
        beta: vec![0.0, 1.8, 1.7],
        w_in,
        w_rec,
        w_out: vec![0.1, -0.2, 0.3, 0.4, -0.5, 0.6],
        b_out: Some(vec![0.05, -0.05]),
        tau_out: 20.0,
    }
}

fn net_strategy() -> impl Strategy<Value = Net> {
    (0usize..5, 1usize..7, 1usize..4, 1usize..5, 0usize..4).prop_flat_map(
        |(n_in, n_rec, n_out, n_delay, n_refractory)| {
            let entry = (prop::bool::weighted(0.5), 0..n_delay as u8, -2.0f32..2.0);
            (
                (
                    prop_oneof![Just(1.0f32), Just(0.5f32), 0.1f32..2.0],
                    1.0f32..1500.0,
                    0.5f32..2.0,
                    0.0f32..1.0,
                    prop_oneof![Just(0.0f32), 0.0f32..0.5],
                ),
                prop::collection::vec(
                    (
                        1.0f32..60.0,
                        0.005f32..0.6,
                        prop_oneof![Just(0.0f32), 0.0f32..2.0],
                    ),
                    n_rec,
                ),
                prop::collection::vec(entry.clone(), n_in * n_rec),
                prop::collection::vec(entry, n_rec * n_rec),
                prop::collection::vec(-1.0f32..1.0, n_rec * n_out),
                prop::option::of(prop::collection::vec(-1.0f32..1.0, n_out)),
                1.0f32..100.0,
            )
                .prop_map(
                    move |(
                        (dt, tau_adaptation, v0, dampening_factor, injected_noise_current),
                        neurons,
                        dense_in,
                        dense_rec,
                        w_out,
                        b_out,
                        tau_out,
                    )| Net {
                        config: CellConfig {
                            dt,
                            tau_adaptation,
                            v0,
                            n_delay,
                            n_refractory,
                            dampening_factor,
                            injected_noise_current,
                        },
                        tau: neurons.iter().map(|n| n.0).collect(),
                        thr: neurons.iter().map(|n| n.1).collect(),
                        beta: neurons.iter().map(|n| n.2).collect(),
                        w_in: csr_from_dense_entries(n_in, n_rec, &dense_in, false),
                        w_rec: csr_from_dense_entries(n_rec, n_rec, &dense_rec, true),
                        w_out,
                        b_out,
                        tau_out,
                    },
                )
        },
    )
}

fn kind_strategy() -> impl Strategy<Value = WeightKind> {
    prop_oneof![
        Just(WeightKind::F32),
        Just(WeightKind::I16),
        Just(WeightKind::I8)
    ]
}

/// Networks whose spike value 1/dt is a power of two (integer weights need it).
fn integer_net_strategy() -> impl Strategy<Value = Net> {
    (
        net_strategy(),
        prop_oneof![Just(1.0f32), Just(0.5), Just(2.0)],
    )
        .prop_map(|(mut net, dt)| {
            net.config.dt = dt;
            net
        })
}

/// Encodings of all three weight kinds.
fn encoded_net() -> impl Strategy<Value = Vec<u8>> {
    (integer_net_strategy(), kind_strategy()).prop_map(|(net, kind)| net.encode_as(kind))
}

// ---------------------------------------------------------------------------------------------
// Helpers over raw bytes

fn reseal(bytes: &mut [u8]) {
    let n = bytes.len();
    let crc = model::checksum(&bytes[..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
}

/// (table entry position, section offset) of section `id`.
fn find_section(bytes: &[u8], id: u16) -> (usize, usize) {
    let count = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
    (0..count)
        .map(|i| HEADER_LEN + i * SECTION_ENTRY_LEN)
        .find(|&e| u16::from_le_bytes([bytes[e], bytes[e + 1]]) == id)
        .map(|e| (e, u32_at(bytes, e + 4)))
        .expect("section present")
}

/// Positions of target/delay/weight `k` in a matrix section with `n_pre` rows and `nnz` synapses.
fn synapse_fields(sec: usize, n_pre: usize, nnz: usize, k: usize) -> (usize, usize, usize) {
    let targets = sec + 8 + 4 * (n_pre + 1);
    let delays = targets + (2 * nnz).div_ceil(4) * 4;
    let weights = delays + nnz.div_ceil(4) * 4;
    (targets + 2 * k, delays + k, weights + 4 * k)
}

/// Builds everything a device would from the model and runs it; must never panic.
fn exercise(model: &Model<'_>) {
    let mut neurons = vec![Neuron::default(); model.n_rec()];
    model.neurons_into(&mut neurons).unwrap();
    let cell = model.cell(&neurons).unwrap();
    let n = model.n_rec();
    let d = model.config().n_delay;
    let mut state = CellState::new(
        vec![0.0f32; CellState::<f32, Vec<f32>, Vec<u16>>::float_len(n, d)],
        vec![0u16; n],
        n,
        d,
    )
    .unwrap();
    let readout = model.readout().unwrap();
    let mut filtered = vec![0.0f32; model.n_out()];
    let mut out = vec![0.0f32; model.n_out()];
    let x = vec![1.0f32; model.n_in()];
    for _ in 0..4 {
        cell.step(&mut state, &x, &mut NoNoise).unwrap();
        readout.step(state.z(), &mut filtered, &mut out).unwrap();
    }
    if model.is_integer() {
        if let Ok(cell) = model.integer_cell(&neurons) {
            let mut state = CellState::with_i32_ring(
                vec![0.0f32; 3 * n],
                vec![0u16; n],
                vec![0i32; n * d],
                n,
                d,
            )
            .unwrap();
            for _ in 0..4 {
                cell.step(&mut state, &x, &mut NoNoise).unwrap();
                readout.step(state.z(), &mut filtered, &mut out).unwrap();
            }
        }
    }
}

fn parse_and_exercise(bytes: &[u8]) {
    if let Ok(model) = Model::parse(bytes) {
        exercise(&model);
    }
}

fn outgoing<S: Synapses<f32>>(syn: &S) -> Vec<Vec<(usize, usize, u32)>> {
    (0..syn.n_pre())
        .map(|pre| {
            let mut row = vec![];
            syn.for_each_outgoing(pre, |t, d, w| row.push((t, d, w.to_bits())));
            row
        })
        .collect()
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

// ---------------------------------------------------------------------------------------------
// Round trips

fn check_round_trip(net: &Net, inputs: &[Vec<bool>]) {
    let bytes = net.encode();
    let model = Model::parse(&bytes).unwrap();
    assert_eq!(model.as_bytes(), &bytes[..]);
    assert_eq!(model.config(), net.config);
    assert_eq!(model.n_in(), net.n_in());
    assert_eq!(model.n_rec(), net.tau.len());
    assert_eq!(model.n_out(), net.w_out.len() / net.tau.len());
    assert_eq!(model.tau_out().to_bits(), net.tau_out.to_bits());
    assert_eq!(
        bits(&model.tau().iter().collect::<Vec<_>>()),
        bits(&net.tau)
    );
    assert_eq!(
        bits(&model.thr().iter().collect::<Vec<_>>()),
        bits(&net.thr)
    );
    assert_eq!(
        bits(&model.beta().iter().collect::<Vec<_>>()),
        bits(&net.beta)
    );
    assert_eq!(
        bits(&model.w_out().iter().collect::<Vec<_>>()),
        bits(&net.w_out)
    );
    assert_eq!(
        model.b_out().map(|b| bits(&b.iter().collect::<Vec<_>>())),
        net.b_out.as_deref().map(bits)
    );
    let (w_in, w_rec) = (model.w_in(), model.w_rec());
    assert_eq!(
        (w_in.n_pre(), w_in.n_post(), w_in.nnz()),
        (net.n_in(), net.tau.len(), net.w_in.targets.len())
    );
    assert_eq!(
        (w_rec.n_pre(), w_rec.n_post(), w_rec.nnz()),
        (net.tau.len(), net.tau.len(), net.w_rec.targets.len())
    );
    assert_eq!(outgoing(&w_in), outgoing(&net.w_in.view()));
    assert_eq!(outgoing(&w_rec), outgoing(&net.w_rec.view()));
    for k in 0..net.w_in.targets.len() {
        let (t, d, w) = w_in.synapse(k).unwrap();
        assert_eq!(
            (t, d, w.to_bits()),
            (
                net.w_in.targets[k] as usize,
                net.w_in.delays[k] as usize,
                net.w_in.weights[k].to_bits()
            )
        );
    }
    assert!(w_in.synapse(net.w_in.targets.len()).is_none());
    let mut neurons = vec![Neuron::default(); model.n_rec()];
    model.neurons_into(&mut neurons).unwrap();
    assert_eq!(neurons, net.neurons());
    assert!(matches!(
        model.neurons_into(&mut vec![Neuron::default(); model.n_rec() + 1]),
        Err(CoreError::Length { .. })
    ));
    #[cfg(feature = "alloc")]
    assert_eq!(net.parts().to_vec().unwrap(), bytes);

    // The parsed model runs bit-identically to the original slices.
    let orig_neurons = net.neurons();
    let a = model.cell(&neurons).unwrap();
    let b =
        lsnn_core::Cell::new(net.config, &orig_neurons, net.w_in.view(), net.w_rec.view()).unwrap();
    let ra = model.readout().unwrap();
    let rb = Readout::new(
        &net.w_out,
        net.b_out.as_deref(),
        net.tau.len(),
        net.tau_out,
        net.config.dt,
    )
    .unwrap();
    let n = model.n_rec();
    let d = net.config.n_delay;
    let fl = CellState::<f32, Vec<f32>, Vec<u16>>::float_len(n, d);
    let mut sa = CellState::new(vec![0.0f32; fl], vec![0u16; n], n, d).unwrap();
    let mut sb = CellState::new(vec![0.0f32; fl], vec![0u16; n], n, d).unwrap();
    let o = model.n_out();
    let (mut fa, mut fb, mut oa, mut ob) = (vec![0.0; o], vec![0.0; o], vec![0.0; o], vec![0.0; o]);
    for x in inputs {
        let x: Vec<f32> = x
            .iter()
            .take(net.n_in())
            .map(|&s| if s { 1.0 } else { 0.0 })
            .collect();
        a.step(&mut sa, &x, &mut NoNoise).unwrap();
        b.step(&mut sb, &x, &mut NoNoise).unwrap();
        assert_eq!(bits(sa.v()), bits(sb.v()));
        assert_eq!(bits(sa.z()), bits(sb.z()));
        assert_eq!(bits(sa.b()), bits(sb.b()));
        assert_eq!(sa.refractory_left(), sb.refractory_left());
        ra.step(sa.z(), &mut fa, &mut oa).unwrap();
        rb.step(sb.z(), &mut fb, &mut ob).unwrap();
        assert_eq!(bits(&oa), bits(&ob));
    }
}

#[test]
fn small_net_round_trips_and_spikes() {
    let net = small_net();
    check_round_trip(&net, &vec![vec![true, true]; 20]);
    let bytes = net.encode();
    // Section layout as documented: 4-byte aligned, in table order, checksum last.
    for id in [
        section::NEURONS,
        section::W_IN,
        section::W_REC,
        section::W_OUT,
        section::B_OUT,
    ] {
        let (_, off) = find_section(&bytes, id);
        assert_eq!(off % 4, 0);
    }
    assert_eq!(u32_at(&bytes, 12), bytes.len());
    assert_eq!(&bytes[..8], b"LSNNMDL\0");
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1);
    let model = Model::parse(&bytes).unwrap();
    assert_eq!(model.section(section::NEURONS).map(<[u8]>::len), Some(36));
    assert_eq!(model.section(77), None);
}

#[test]
fn model_without_bias_or_inputs() {
    let mut net = small_net();
    net.b_out = None;
    net.w_in = csr_from_dense_entries(0, 3, &[], false);
    check_round_trip(&net, &vec![vec![]; 5]);
    let bytes = net.encode();
    assert!(Model::parse(&bytes).unwrap().b_out().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 256 }))]

    #[test]
    fn round_trip(
        net in net_strategy(),
        inputs in prop::collection::vec(prop::collection::vec(prop::bool::weighted(0.4), 5), 1..40),
    ) {
        check_round_trip(&net, &inputs);
    }
}

// ---------------------------------------------------------------------------------------------
// Integer weights

/// The integer cell, recomputed naively: one i64 ring per neuron indexed by arrival delay,
/// `q * m` per synapse, `i_t = (acc as f32) * unit`, then the core's `neuron_step`.
fn integer_reference(
    model: &Model<'_>,
    inputs: &[Vec<f32>],
) -> Vec<(Vec<u32>, Vec<u32>, Vec<u32>)> {
    let scales = model.integer_scales().unwrap();
    let n = model.n_rec();
    let d = model.config().n_delay;
    let k = model.config().step_consts();
    let mut neurons = vec![Neuron::default(); n];
    model.neurons_into(&mut neurons).unwrap();
    let mut ring = vec![vec![0i64; d]; n];
    let mut st = vec![lsnn_core::NeuronState::<f32>::default(); n];
    let mut left = vec![0usize; n];
    let deliver =
        |ring: &mut Vec<Vec<i64>>, syn: &lsnn_core::ModelSynapses<'_>, pre: usize, m: i32| {
            for idx in syn.row(pre).unwrap() {
                let (t, delay, _) = syn.synapse(idx).unwrap();
                ring[t][delay] += i64::from(syn.raw_weight(idx).unwrap()) * i64::from(m);
            }
        };
    let mut out = vec![];
    for x in inputs {
        for (i, &xi) in x.iter().enumerate() {
            if xi != 0.0 {
                deliver(&mut ring, &model.w_in(), i, scales.m_in);
            }
        }
        for (pre, s) in st.clone().iter().enumerate() {
            if s.z != 0.0 {
                deliver(&mut ring, &model.w_rec(), pre, scales.m_rec);
            }
        }
        for j in 0..n {
            let i_t = (ring[j][0] as f32) * scales.unit;
            let o = lsnn_core::neuron_step(&neurons[j], &k, st[j], i_t, left[j] > 0);
            st[j] = o.state;
            left[j] = if o.state.z > 0.0 {
                model.config().n_refractory
            } else {
                left[j].saturating_sub(1)
            };
            ring[j].rotate_left(1);
            ring[j][d - 1] = 0;
        }
        out.push((
            st.iter().map(|s| s.v.to_bits()).collect(),
            st.iter().map(|s| s.z.to_bits()).collect(),
            st.iter().map(|s| s.b.to_bits()).collect(),
        ));
    }
    out
}

fn check_integer_round_trip(net: &Net, kind: WeightKind, inputs: &[Vec<bool>]) {
    let bytes = net.encode_as(kind);
    let model = Model::parse(&bytes).unwrap();
    assert!(model.is_integer());
    let sc = model.integer_scales().unwrap();
    let spike = f64::from(model.config().step_consts().spike);
    for (syn, orig, per_spike) in [
        (model.w_in(), &net.w_in, 1.0),
        (model.w_rec(), &net.w_rec, spike),
    ] {
        assert_eq!(syn.kind(), kind);
        assert_eq!(outgoing_structure(&syn), outgoing_structure(&orig.view()));
        let max = orig.weights.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        let s = f64::from(syn.scale());
        for (idx, &w) in orig.weights.iter().enumerate() {
            let q = syn.raw_weight(idx).unwrap();
            assert!(q.abs() <= kind.q_max());
            // round to nearest: the error is at most half a step
            let err = (f64::from(w) - s * f64::from(q)).abs();
            assert!(err <= s * 0.5 * (1.0 + 1e-9), "w {w} q {q} scale {s}");
        }
        if max > 0.0 {
            // the natural scale, rounded up to a multiple of the ring unit
            let natural = f64::from(max) / f64::from(kind.q_max()) * per_spike;
            let stored = s * per_spike;
            let unit = f64::from(sc.unit);
            assert!(
                stored >= natural && stored < natural + unit,
                "{stored} vs {natural}"
            );
        }
    }
    let w_out = model.w_out();
    let s_out = w_out.scale();
    for (k, &w) in net.w_out.iter().enumerate() {
        let q = w_out.raw(k).unwrap();
        assert!(
            (f64::from(w) - f64::from(s_out) * f64::from(q)).abs() <= f64::from(s_out) * 0.5001
        );
    }
    // The unit and multipliers are exact.
    assert_eq!(
        f64::from(model.w_in().scale()),
        f64::from(sc.m_in) * f64::from(sc.unit)
    );
    assert_eq!(
        f64::from(model.w_rec().scale()) * spike,
        f64::from(sc.m_rec) * f64::from(sc.unit)
    );
    // The integer cell runs exactly like the naive integer reference.
    let n = model.n_rec();
    let d = model.config().n_delay;
    let mut neurons = vec![Neuron::default(); n];
    model.neurons_into(&mut neurons).unwrap();
    let cell = model.integer_cell(&neurons).unwrap();
    let mut state =
        CellState::with_i32_ring(vec![0.0f32; 3 * n], vec![0u16; n], vec![0i32; d * n], n, d)
            .unwrap();
    let xs: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| {
            x.iter()
                .take(net.n_in())
                .map(|&s| if s { 1.0 } else { 0.0 })
                .collect()
        })
        .collect();
    let expected = integer_reference(&model, &xs);
    for (x, (v, z, b)) in xs.iter().zip(&expected) {
        cell.step(&mut state, x, &mut NoNoise).unwrap();
        assert_eq!(&bits(state.v()), v);
        assert_eq!(&bits(state.z()), z);
        assert_eq!(&bits(state.b()), b);
    }
    // Integer cells take spikes only.
    if net.n_in() > 0 {
        let mut x = vec![0.0f32; net.n_in()];
        x[0] = 0.5;
        assert!(matches!(
            cell.step(&mut state, &x, &mut NoNoise),
            Err(CoreError::Parameter {
                what: "input event value",
                ..
            })
        ));
    }
}

fn outgoing_structure<S: Synapses<f32>>(syn: &S) -> Vec<Vec<(usize, usize)>> {
    (0..syn.n_pre())
        .map(|pre| {
            let mut row = vec![];
            syn.for_each_outgoing(pre, |t, d, _| row.push((t, d)));
            row
        })
        .collect()
}

#[test]
fn small_net_integer_round_trips() {
    for kind in [WeightKind::I16, WeightKind::I8] {
        check_integer_round_trip(&small_net(), kind, &vec![vec![true, true]; 30]);
        let mut sparse = small_net();
        sparse.w_in = csr_from_dense_entries(0, 3, &[], false);
        check_integer_round_trip(&sparse, kind, &vec![vec![]; 5]);
    }
}

#[test]
fn integer_weights_need_a_power_of_two_spike_value() {
    let mut net = small_net();
    net.config.dt = 0.3;
    let parts = ModelParts {
        weights: WeightKind::I8,
        ..net.parts()
    };
    assert!(matches!(
        parts
            .encoded_len()
            .and_then(|len| parts.encode(&mut vec![0u8; len])),
        Err(CoreError::Parameter { what: "dt", .. })
    ));
}

#[test]
fn integer_scales_are_exact_or_rejected() {
    let s = lsnn_core::IntegerScales::from_scales(0.75, 0.125, 1.0).unwrap();
    assert_eq!((s.unit, s.m_in, s.m_rec), (0.125, 6, 1));
    let s = lsnn_core::IntegerScales::from_scales(3.0, 0.25, 2.0).unwrap();
    assert_eq!((s.unit, s.m_in, s.m_rec), (0.5, 6, 1));
    // 2^30 apart with a 24-bit mantissa: the multiplier does not fit in i32.
    assert!(lsnn_core::IntegerScales::from_scales(1.0 + f32::EPSILON, 1.0e-9, 1.0).is_err());
    assert!(lsnn_core::IntegerScales::from_scales(0.0, 1.0, 1.0).is_err());
    assert!(lsnn_core::IntegerScales::from_scales(f32::NAN, 1.0, 1.0).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 256 }))]

    #[test]
    fn integer_round_trip(
        net in integer_net_strategy(),
        kind in prop_oneof![Just(WeightKind::I16), Just(WeightKind::I8)],
        inputs in prop::collection::vec(prop::collection::vec(prop::bool::weighted(0.4), 5), 1..40),
    ) {
        check_integer_round_trip(&net, kind, &inputs);
    }
}

// ---------------------------------------------------------------------------------------------
// Never panics

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 2000 }))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        parse_and_exercise(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_magic_never_panic(
        version in prop_oneof![Just(1u16), any::<u16>()],
        rest in prop::collection::vec(any::<u8>(), 0..600),
        seal in any::<bool>(),
    ) {
        let mut bytes = b"LSNNMDL\0".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&rest);
        if seal && bytes.len() >= 68 {
            let n = bytes.len() as u32;
            bytes[12..16].copy_from_slice(&n.to_le_bytes());
            reseal(&mut bytes);
        }
        parse_and_exercise(&bytes);
    }

    #[test]
    fn mutated_encodings_never_panic(
        bytes in encoded_net(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        extend in prop::collection::vec(any::<u8>(), 0..8),
        mode in 0u8..3,
    ) {
        let mut bytes = bytes;
        for (i, b) in &flips {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        match mode {
            0 => bytes.truncate(cut.index(bytes.len() + 1)),
            1 => bytes.extend_from_slice(&extend),
            _ => {}
        }
        parse_and_exercise(&bytes);
    }

    /// Mutations behind a recomputed checksum, so validation past the checksum is exercised.
    #[test]
    fn resealed_mutations_never_panic_and_stay_usable(
        bytes in encoded_net(),
        flips in prop::collection::vec(
            (any::<prop::sample::Index>(), prop_oneof![Just(0u8), Just(1), Just(0x7f), Just(0x80), Just(0xff), any::<u8>()]),
            1..5,
        ),
        resize in prop_oneof![Just(0i8), -8i8..8],
    ) {
        let mut bytes = bytes;
        let body = bytes.len() - 4;
        for (i, b) in &flips {
            let at = i.index(body);
            bytes[at] = *b;
        }
        if resize != 0 {
            let n = (bytes.len() as isize + resize as isize).max(68) as usize;
            bytes.resize(n, 0);
            if flips[0].1 & 1 == 0 {
                bytes[12..16].copy_from_slice(&(n as u32).to_le_bytes());
            }
        }
        reseal(&mut bytes);
        parse_and_exercise(&bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// One test per validation error

fn parse_err(bytes: &[u8]) -> CoreError {
    Model::parse(bytes).expect_err("must be rejected")
}

#[test]
fn rejects_bad_magic() {
    let mut bytes = small_net().encode();
    bytes[0] = b'X';
    assert_eq!(parse_err(&bytes), CoreError::BadMagic);
    assert_eq!(parse_err(b"GIF89a\0\0\x01\0"), CoreError::BadMagic);
}

#[test]
fn rejects_bad_version() {
    let mut bytes = small_net().encode();
    bytes[8] = 2;
    assert_eq!(
        parse_err(&bytes),
        CoreError::UnsupportedVersion { version: 2 }
    );
}

#[test]
fn rejects_truncated() {
    let bytes = small_net().encode();
    for cut in [0, 5, 9, 40, 67, bytes.len() - 1] {
        assert!(
            matches!(parse_err(&bytes[..cut]), CoreError::Truncated { got, .. } if got == cut),
            "cut at {cut}"
        );
    }
    assert_eq!(
        parse_err(&bytes[..bytes.len() - 1]),
        CoreError::Truncated {
            what: "model (declared total length)",
            needed: bytes.len(),
            got: bytes.len() - 1
        }
    );
}

#[test]
fn rejects_trailing_bytes() {
    let mut bytes = small_net().encode();
    bytes.push(0);
    assert!(matches!(
        parse_err(&bytes),
        CoreError::Format {
            what: "total length",
            ..
        }
    ));
}

#[test]
fn rejects_bad_checksum() {
    let mut bytes = small_net().encode();
    let (_, w) = find_section(&bytes, section::W_OUT);
    bytes[w + 8] ^= 1;
    assert!(
        matches!(parse_err(&bytes), CoreError::BadChecksum { stored, computed } if stored != computed)
    );
    reseal(&mut bytes);
    assert!(Model::parse(&bytes).is_ok());
}

fn patched(f: impl FnOnce(&mut Vec<u8>)) -> CoreError {
    let mut bytes = small_net().encode();
    f(&mut bytes);
    reseal(&mut bytes);
    parse_err(&bytes)
}

#[test]
fn rejects_target_out_of_range() {
    let err = patched(|b| {
        let (_, sec) = find_section(b, section::W_IN);
        let (t, _, _) = synapse_fields(sec, 2, 3, 1);
        b[t..t + 2].copy_from_slice(&3u16.to_le_bytes());
    });
    assert_eq!(
        err,
        CoreError::Synapse {
            matrix: "w_in",
            pre: 0,
            index: 1,
            why: "target neuron out of range"
        }
    );
}

#[test]
fn rejects_delay_out_of_range() {
    let err = patched(|b| {
        let (_, sec) = find_section(b, section::W_REC);
        let (_, d, _) = synapse_fields(sec, 3, 4, 3);
        b[d] = 3;
    });
    assert_eq!(
        err,
        CoreError::Synapse {
            matrix: "w_rec",
            pre: 2,
            index: 0,
            why: "delay index >= n_delay"
        }
    );
}

#[test]
fn rejects_autapse() {
    let err = patched(|b| {
        let (_, sec) = find_section(b, section::W_REC);
        // synapse 1 belongs to presynaptic neuron 1
        let (t, _, _) = synapse_fields(sec, 3, 4, 1);
        b[t..t + 2].copy_from_slice(&1u16.to_le_bytes());
    });
    assert_eq!(
        err,
        CoreError::Synapse {
            matrix: "w_rec",
            pre: 1,
            index: 0,
            why: "autapse (self-connection) in a recurrent matrix"
        }
    );
}

#[test]
fn rejects_nan_weight() {
    let err = patched(|b| {
        let (_, sec) = find_section(b, section::W_IN);
        let (_, _, w) = synapse_fields(sec, 2, 3, 2);
        b[w..w + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    assert_eq!(
        err,
        CoreError::Synapse {
            matrix: "w_in",
            pre: 1,
            index: 0,
            why: "weight is not finite"
        }
    );
    let err = patched(|b| {
        let (_, sec) = find_section(b, section::W_OUT);
        b[sec + 8..sec + 12].copy_from_slice(&f32::INFINITY.to_le_bytes());
    });
    assert_eq!(
        err,
        CoreError::Parameter {
            what: "w_out",
            why: "must be finite"
        }
    );
    let err = patched(|b| {
        let (_, sec) = find_section(b, section::B_OUT);
        b[sec + 4..sec + 8].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    assert_eq!(
        err,
        CoreError::Parameter {
            what: "b_out",
            why: "must be finite"
        }
    );
}

#[test]
fn rejects_non_positive_tau_and_thr() {
    for (k, value, what) in [
        (0usize, 0.0f32, "tau"),
        (1, -20.0, "tau"),
        (2, f32::NAN, "tau"),
        (3 + 2, 0.0, "thr"),
    ] {
        let err = patched(|b| {
            let (_, sec) = find_section(b, section::NEURONS);
            b[sec + 4 * k..sec + 4 * k + 4].copy_from_slice(&value.to_le_bytes());
        });
        let why = if value.is_nan() {
            "must be finite"
        } else {
            "must be > 0"
        };
        assert_eq!(
            err,
            CoreError::NeuronParameter {
                index: k % 3,
                what,
                why
            }
        );
    }
}

#[test]
fn rejects_bad_cell_parameters() {
    for (at, value, what) in [
        (40, 0.0f32, "dt"),
        (44, -1.0, "tau_adaptation"),
        (48, 0.0, "V0"),
    ] {
        let err = patched(|b| b[at..at + 4].copy_from_slice(&value.to_le_bytes()));
        assert_eq!(
            err,
            CoreError::Parameter {
                what,
                why: "must be > 0"
            }
        );
    }
    let err = patched(|b| b[60..64].copy_from_slice(&0.0f32.to_le_bytes()));
    assert!(matches!(
        err,
        CoreError::Parameter {
            what: "tau_out",
            ..
        }
    ));
    let err = patched(|b| b[36..38].copy_from_slice(&0u16.to_le_bytes()));
    assert!(matches!(
        err,
        CoreError::Size {
            what: "n_delay",
            ..
        }
    ));
    let err = patched(|b| b[20..24].copy_from_slice(&0u32.to_le_bytes()));
    assert!(matches!(err, CoreError::Size { what: "n_rec", .. }));
}

#[test]
fn rejects_header_sizes_inconsistent_with_sections() {
    // one more neuron than the sections hold
    let err = patched(|b| b[20..24].copy_from_slice(&4u32.to_le_bytes()));
    assert_eq!(
        err,
        CoreError::SectionLength {
            id: section::NEURONS,
            expected: 48,
            got: 36
        }
    );
    // one more input synapse
    let err = patched(|b| b[28..32].copy_from_slice(&4u32.to_le_bytes()));
    assert!(matches!(
        err,
        CoreError::SectionLength {
            id: section::W_IN,
            ..
        }
    ));
}

#[test]
fn rejects_unsupported_weight_kinds() {
    for kind in [3u8, 9, 255] {
        let err = patched(|b| {
            let (_, sec) = find_section(b, section::W_REC);
            b[sec] = kind;
        });
        assert_eq!(
            err,
            CoreError::UnsupportedWeightKind {
                matrix: "w_rec",
                kind
            }
        );
    }
    let err = patched(|b| {
        let (_, sec) = find_section(b, section::W_OUT);
        b[sec] = 7;
    });
    assert_eq!(
        err,
        CoreError::UnsupportedWeightKind {
            matrix: "w_out",
            kind: 7
        }
    );
    let err = patched(|b| {
        let (_, sec) = find_section(b, section::W_IN);
        b[sec + 4..sec + 8].copy_from_slice(&2.0f32.to_le_bytes());
    });
    assert!(matches!(err, CoreError::Matrix { matrix: "w_in", .. }));
    // An f32 section relabelled as integer no longer has the length its kind implies.
    let err = patched(|b| {
        let (_, sec) = find_section(b, section::W_REC);
        b[sec] = model::WEIGHT_KIND_I16;
    });
    assert!(matches!(err, CoreError::SectionLength { id: 3, .. }));
}

#[test]
fn rejects_bad_integer_scales_and_padding() {
    let net = small_net();
    for kind in [WeightKind::I16, WeightKind::I8] {
        let bytes = net.encode_as(kind);
        assert!(Model::parse(&bytes).is_ok());
        for (id, matrix) in [
            (section::W_IN, "w_in"),
            (section::W_REC, "w_rec"),
            (section::W_OUT, "w_out"),
        ] {
            for bad in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
                let mut b = bytes.clone();
                let (_, sec) = find_section(&b, id);
                b[sec + 4..sec + 8].copy_from_slice(&bad.to_le_bytes());
                reseal(&mut b);
                assert_eq!(
                    parse_err(&b),
                    CoreError::Matrix {
                        matrix,
                        why: "the scale of integer weights must be finite and > 0"
                    }
                );
            }
            // A scale so large that scale * q overflows f32.
            let mut b = bytes.clone();
            let (_, sec) = find_section(&b, id);
            b[sec + 4..sec + 8].copy_from_slice(&f32::MAX.to_le_bytes());
            reseal(&mut b);
            assert!(Model::parse(&b).is_err());
        }
        // Nonzero weight padding (w_in: 3 synapses, padded to 4 weights for i8, 4 bytes for i16).
        let mut b = bytes.clone();
        let (_, sec) = find_section(&b, section::W_IN);
        let weights = sec + 8 + 4 * 3 + 8 + 4;
        b[weights + 3 * kind.width()] = 1;
        reseal(&mut b);
        assert_eq!(
            parse_err(&b),
            CoreError::Matrix {
                matrix: "w_in",
                why: "padding bytes must be 0"
            }
        );
    }
}

#[test]
fn rejects_bad_csr_offsets() {
    let err = patched(|b| {
        let (_, sec) = find_section(b, section::W_REC);
        // offsets [0, 1, 3, 4] -> [0, 5, 3, 4]
        b[sec + 12..sec + 16].copy_from_slice(&5u32.to_le_bytes());
    });
    assert_eq!(
        err,
        CoreError::CsrOffsets {
            matrix: "w_rec",
            pre: 2,
            why: "offsets must be non-decreasing"
        }
    );
    let err = patched(|b| {
        let (_, sec) = find_section(b, section::W_IN);
        b[sec + 8..sec + 12].copy_from_slice(&1u32.to_le_bytes());
    });
    assert!(matches!(
        err,
        CoreError::CsrOffsets {
            matrix: "w_in",
            pre: 0,
            ..
        }
    ));
}

#[test]
fn rejects_bad_section_table() {
    // misaligned
    let err = patched(|b| {
        let (e, off) = find_section(b, section::W_OUT);
        b[e + 4..e + 8].copy_from_slice(&(off as u32 + 2).to_le_bytes());
    });
    assert!(matches!(
        err,
        CoreError::Section {
            id: section::W_OUT,
            why: "offset is not a multiple of 4"
        }
    ));
    // overlapping
    let err = patched(|b| {
        let (_, neurons) = find_section(b, section::NEURONS);
        let (e, _) = find_section(b, section::W_OUT);
        b[e + 4..e + 8].copy_from_slice(&(neurons as u32).to_le_bytes());
    });
    assert!(matches!(
        err,
        CoreError::Section {
            why: "overlaps another section",
            ..
        }
    ));
    // past the end
    let err = patched(|b| {
        let (e, _) = find_section(b, section::B_OUT);
        b[e + 8..e + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    });
    assert!(matches!(
        err,
        CoreError::Section {
            id: section::B_OUT,
            why: "extends past the checksum"
        }
    ));
    // duplicate
    let err = patched(|b| {
        let (e, _) = find_section(b, section::B_OUT);
        b[e..e + 2].copy_from_slice(&section::W_OUT.to_le_bytes());
    });
    assert!(matches!(
        err,
        CoreError::Section {
            id: section::W_OUT,
            why: "duplicate section id"
        }
    ));
    // missing required
    let err = patched(|b| {
        let (e, _) = find_section(b, section::W_IN);
        b[e..e + 2].copy_from_slice(&100u16.to_le_bytes());
    });
    assert_eq!(
        err,
        CoreError::Section {
            id: section::W_IN,
            why: "required section is missing"
        }
    );
    // too many entries
    let err = patched(|b| b[10..12].copy_from_slice(&33u16.to_le_bytes()));
    assert!(matches!(
        err,
        CoreError::Size {
            what: "section count",
            value: 33,
            ..
        }
    ));
}

#[test]
fn unknown_sections_are_skipped_unless_required() {
    let mut bytes = small_net().encode();
    let (e, off) = find_section(&bytes, section::B_OUT);
    bytes[e..e + 2].copy_from_slice(&99u16.to_le_bytes());
    reseal(&mut bytes);
    let model = Model::parse(&bytes).unwrap();
    assert!(model.b_out().is_none());
    assert_eq!(model.section(99), Some(&bytes[off..off + 8]));
    exercise(&model);
    bytes[e + 2] = model::FLAG_REQUIRED as u8;
    reseal(&mut bytes);
    assert_eq!(parse_err(&bytes), CoreError::UnsupportedSection { id: 99 });
}

#[test]
fn encode_reports_errors() {
    let net = small_net();
    let parts = net.parts();
    let len = parts.encoded_len().unwrap();
    let mut small = vec![0u8; len - 1];
    assert_eq!(
        parts.encode(&mut small),
        Err(CoreError::Capacity {
            what: "model output buffer",
            capacity: len - 1,
            required: len
        })
    );
    let mut big = vec![0xAAu8; len + 10];
    assert_eq!(parts.encode(&mut big), Ok(len));
    assert!(Model::parse(&big[..len]).is_ok());

    let mut bad = small_net();
    bad.w_in.weights[0] = f32::NAN;
    assert!(matches!(
        bad.parts().encode(&mut vec![0u8; len]),
        Err(CoreError::Synapse {
            matrix: "w_in",
            why: "weight is not finite",
            ..
        })
    ));
    let mut bad = small_net();
    bad.tau[1] = 0.0;
    assert_eq!(
        bad.parts().encode(&mut vec![0u8; len]),
        Err(CoreError::NeuronParameter {
            index: 1,
            what: "tau",
            why: "must be > 0"
        })
    );
    let mut bad = small_net();
    bad.thr.pop();
    assert!(matches!(
        bad.parts().encoded_len(),
        Err(CoreError::Length { .. })
    ));
    let mut bad = small_net();
    bad.w_out.pop();
    assert!(matches!(
        bad.parts().encoded_len(),
        Err(CoreError::Length { .. })
    ));
}

#[cfg(feature = "alloc")]
#[test]
fn to_vec_equals_encode() {
    let net = small_net();
    assert_eq!(net.parts().to_vec().unwrap(), net.encode());
    let mut bad = small_net();
    bad.beta[0] = f32::INFINITY;
    assert_eq!(
        bad.parts().to_vec(),
        Err(CoreError::NeuronParameter {
            index: 0,
            what: "beta",
            why: "must be finite"
        })
    );
}

/// Writes a few valid encodings as fuzzing seeds to `fuzz/seeds/` (run with `--ignored`).
#[test]
#[ignore = "writes the fuzz seed corpus"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("small.bin"), small_net().encode()).unwrap();
    let mut no_bias = small_net();
    no_bias.b_out = None;
    no_bias.w_in = csr_from_dense_entries(0, 3, &[], false);
    std::fs::write(dir.join("no_bias_no_inputs.bin"), no_bias.encode()).unwrap();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for k in 0..4 {
        let net = net_strategy().new_tree(&mut runner).unwrap().current();
        std::fs::write(dir.join(format!("random{k}.bin")), net.encode()).unwrap();
    }
    for kind in [WeightKind::I16, WeightKind::I8] {
        let name = kind.name();
        std::fs::write(
            dir.join(format!("small_{name}.bin")),
            small_net().encode_as(kind),
        )
        .unwrap();
        for k in 0..2 {
            let net = integer_net_strategy()
                .new_tree(&mut runner)
                .unwrap()
                .current();
            std::fs::write(
                dir.join(format!("random{k}_{name}.bin")),
                net.encode_as(kind),
            )
            .unwrap();
        }
    }
}

/// The format's checksum is the standard CRC-32 (zlib's): the check value of "123456789".
#[test]
fn checksum_is_standard_crc32() {
    assert_eq!(model::checksum(b"123456789"), 0xCBF4_3926);
    assert_eq!(model::checksum(b""), 0);
}
