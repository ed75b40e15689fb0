//! The runner computes exactly what the per-sequence driver (`run_sequence`, used by the
//! firmware and `lsnn-host infer`) computes, in allocated and in fixed buffers; models larger
//! than the fixed capacities and bad input are errors that change nothing.

use lsnn_core::runner::{FixedRunner, Runner};
use lsnn_core::sequence::{run_sequence, spike_events, Observation, Sequences, WindowMeans};
use lsnn_core::{CellConfig, CellState, CoreError, CsrRef, Model, ModelParts, Neuron, WeightKind};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Owned CSR matrix: rows of (target, delay, weight).
struct Sparse {
    offsets: Vec<u32>,
    targets: Vec<u16>,
    delays: Vec<u8>,
    weights: Vec<f32>,
}

fn sparse(rng: &mut Rng, n_pre: usize, n_post: usize, p: f32, d: usize, scale: f32) -> Sparse {
    let mut m = Sparse {
        offsets: vec![0],
        targets: vec![],
        delays: vec![],
        weights: vec![],
    };
    for pre in 0..n_pre {
        // Dale's law: every synapse of a neuron has one sign.
        let sign = if pre % 5 == 0 { -1.0 } else { 1.0 };
        for post in 0..n_post {
            if rng.unit() < p && !(n_pre == n_post && pre == post) {
                m.targets.push(post as u16);
                m.delays.push(rng.below(d) as u8);
                m.weights.push(sign * scale * (0.2 + rng.unit()));
            }
        }
        m.offsets.push(m.targets.len() as u32);
    }
    m
}

/// The sMNIST tutorial's network shape (80 in, 120 LIF + 100 ALIF, 10 out, 12 %, D 10, R 5)
/// with random weights, as the firmware check runs it; smaller under Miri.
fn smnist_sized(kind: WeightKind, seed: u64) -> (Vec<u8>, Vec<u8>) {
    network(kind, seed, cfg!(miri))
}

/// The network of [`smnist_sized`], or a `small` one (12 in, 8 LIF + 8 ALIF, 3 out, D 10)
/// driven harder.
fn network(kind: WeightKind, seed: u64, small: bool) -> (Vec<u8>, Vec<u8>) {
    let (n_in, n_lif, n_alif, n_out, steps, p_in, rate) = if small {
        (12, 8, 8, 3, 24, 0.5, 0.3)
    } else {
        (80, 120, 100, 10, 120, 0.12, 0.06)
    };
    let n = n_lif + n_alif;
    let mut rng = Rng(seed);
    let config = CellConfig {
        n_delay: 10,
        n_refractory: 5,
        tau_adaptation: 700.0,
        ..CellConfig::new()
    };
    let w_in = sparse(&mut rng, n_in, n, p_in, 10, 0.08);
    let w_rec = sparse(&mut rng, n, n, 0.12, 10, 0.02);
    let beta: Vec<f32> = (0..n).map(|j| if j < n_lif { 0.0 } else { 1.8 }).collect();
    let w_out: Vec<f32> = (0..n * n_out).map(|_| rng.unit() - 0.5).collect();
    let b_out: Vec<f32> = (0..n_out).map(|_| rng.unit() - 0.5).collect();
    let parts = ModelParts {
        config,
        tau: &vec![20.0; n],
        thr: &vec![0.01; n],
        beta: &beta,
        w_in: csr(&w_in, n),
        w_rec: csr(&w_rec, n),
        w_out: &w_out,
        b_out: Some(&b_out),
        tau_out: 20.0,
        weights: kind,
    };
    let model = parts.to_vec().unwrap();
    let seqs: Vec<Vec<Vec<u8>>> = (0..3)
        .map(|_| {
            (0..steps)
                .map(|_| {
                    (0..n_in as u8)
                        .filter(|_| rng.unit() < rate)
                        .collect::<Vec<u8>>()
                })
                .collect()
        })
        .collect();
    let seqs = lsnn_core::sequence::encode_sequences(n_in, steps, 4, &seqs).unwrap();
    (model, seqs)
}

fn csr(m: &Sparse, n_post: usize) -> CsrRef<'_, f32> {
    CsrRef::new(n_post, &m.offsets, &m.targets, &m.delays, &m.weights).unwrap()
}

/// What a run reports per step: the bits of `z` and `y`, and of the window means when a
/// window is complete; then the spike count.
#[derive(Debug, PartialEq, Default)]
struct Trace {
    z: Vec<Vec<u32>>,
    y: Vec<Vec<u32>>,
    windows: Vec<Vec<u32>>,
    spikes: u64,
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// Sequence `s` through `run_sequence`, as the firmware and the host run it.
fn by_driver(model: &Model<'_>, seqs: &Sequences<'_>, s: usize, window: usize) -> Trace {
    let (n, d, o) = (model.n_rec(), model.config().n_delay, model.n_out());
    let mut neurons = vec![Neuron::default(); n];
    model.neurons_into(&mut neurons).unwrap();
    let readout = model.readout().unwrap();
    let (mut filtered, mut out) = (vec![0.0; o], vec![0.0; o]);
    let mut windows = WindowMeans::new(vec![0.0; o], window).unwrap();
    let mut t = Trace::default();
    let mut observe = |obs: Observation<'_>| match obs {
        Observation::Stepped { z, y, .. } => {
            t.z.push(bits(z));
            t.y.push(bits(y));
        }
        Observation::Window { means, .. } => t.windows.push(bits(means)),
        _ => {}
    };
    let steps = seqs.steps(s).map(spike_events);
    // (The float and the integer cell are different types.)
    macro_rules! drive {
        ($cell:expr, $state:expr) => {
            run_sequence(
                &$cell,
                &readout,
                &mut $state,
                &mut filtered,
                &mut out,
                &mut windows,
                steps,
                &mut observe,
            )
        };
    }
    let spikes = if model.is_integer() {
        let cell = model.integer_cell(&neurons).unwrap();
        let mut state =
            CellState::with_i32_ring(vec![0.0; 3 * n], vec![0; n], vec![0; d * n], n, d).unwrap();
        drive!(cell, state)
    } else {
        let cell = model.cell(&neurons).unwrap();
        let mut state = cell.state_in(vec![0.0; (3 + d) * n], vec![0; n]).unwrap();
        drive!(cell, state)
    }
    .unwrap();
    t.spikes = spikes;
    t
}

/// Sequence `s` through a runner (reset first, as the driver starts from the zero state).
macro_rules! by_runner {
    ($run:expr, $seqs:expr, $s:expr) => {{
        let run = &mut $run;
        run.reset();
        let mut t = Trace::default();
        for channels in $seqs.steps($s) {
            let out = run.step_channels(channels).unwrap();
            t.y.push(bits(out.y));
            let window = out.window.map(bits);
            t.windows.extend(window.clone());
            assert_eq!(run.window_means().map(bits), window);
            assert_eq!(
                run.outputs(),
                &t.y.last()
                    .unwrap()
                    .iter()
                    .map(|&b| f32::from_bits(b))
                    .collect::<Vec<_>>()[..]
            );
            t.z.push(bits(run.z()));
        }
        t.spikes = run.spike_count();
        t
    }};
}

/// Room for the network of [`smnist_sized`].
#[cfg(not(miri))]
type Fixed<'m> = FixedRunner<'m, 256, 10, 16>;
#[cfg(miri)]
type Fixed<'m> = FixedRunner<'m, 16, 10, 4>;

#[test]
fn runners_compute_what_the_driver_computes() {
    // (Under Miri: fewer kinds, windows and sequences.)
    let kinds: &[WeightKind] = if cfg!(miri) {
        &[WeightKind::F32, WeightKind::I8]
    } else {
        &[WeightKind::F32, WeightKind::I16, WeightKind::I8]
    };
    for &kind in kinds {
        let (model_bytes, seq_bytes) = smnist_sized(kind, 7);
        let model = Model::parse(&model_bytes).unwrap();
        let seqs = Sequences::parse(&seq_bytes).unwrap();
        // The sequences' windows, single steps, and a length that does not divide T.
        let windows = [seqs.window_len(), 1, 7];
        let (windows, n_seqs) = if cfg!(miri) {
            (&windows[..2], 1)
        } else {
            (&windows[..], seqs.len())
        };
        for &window in windows {
            let mut alloc = Runner::new(&model, window).unwrap();
            let mut fixed = Box::new(Fixed::new(&model, window).unwrap());
            for s in 0..n_seqs {
                let want = by_driver(&model, &seqs, s, window);
                let busy = if cfg!(miri) { 5 } else { 500 };
                assert!(
                    want.spikes > busy,
                    "{kind:?}: too quiet to compare ({})",
                    want.spikes
                );
                assert_eq!(want.windows.len(), seqs.n_steps() / window);
                assert_eq!(by_runner!(alloc, seqs, s), want, "{kind:?} window {window}");
                assert_eq!(
                    by_runner!(*fixed, seqs, s),
                    want,
                    "{kind:?} window {window}"
                );
            }
        }
    }
}

#[test]
fn fixed_capacities_are_checked() {
    // 16 neurons, 10 delay slots, 3 outputs.
    let (model_bytes, _) = network(WeightKind::I8, 3, true);
    let model = Model::parse(&model_bytes).unwrap();
    assert!(FixedRunner::<16, 10, 3>::new(&model, 1).is_ok());
    let too_few_neurons = FixedRunner::<8, 10, 16>::new(&model, 1).unwrap_err();
    assert_eq!(
        too_few_neurons,
        CoreError::Capacity {
            what: "runner neurons (N)",
            capacity: 8,
            required: 16,
        }
    );
    let too_few_slots = FixedRunner::<16, 2, 16>::new(&model, 1).unwrap_err();
    assert_eq!(
        too_few_slots,
        CoreError::Capacity {
            what: "runner delay ring (D N)",
            capacity: 32,
            required: 160,
        }
    );
    let too_few_outputs = FixedRunner::<16, 10, 2>::new(&model, 1).unwrap_err();
    assert!(matches!(too_few_outputs, CoreError::Capacity { what, .. } if what.contains("(O)")));
    assert!(Runner::new(&model, 0).is_err());
}

#[test]
fn bad_input_changes_nothing() {
    for kind in [WeightKind::F32, WeightKind::I8] {
        let (model_bytes, seq_bytes) = smnist_sized(kind, 5);
        let model = Model::parse(&model_bytes).unwrap();
        let seqs = Sequences::parse(&seq_bytes).unwrap();
        let mut run = Runner::new(&model, 2).unwrap();
        let mut twin = Runner::new(&model, 2).unwrap();
        let n_in = model.n_in();
        for (t, channels) in seqs.steps(0).enumerate() {
            if t % 3 == 0 {
                let bad_channel = [0, n_in as u8];
                assert!(run.step_channels(&bad_channel).is_err());
                assert!(run.step(&[(n_in, 1.0)]).is_err());
                if kind != WeightKind::F32 {
                    // Integer models take spikes only.
                    assert!(run.step(&[(0, 0.5)]).is_err());
                }
            }
            let events: Vec<(usize, f32)> = spike_events(channels).collect();
            let a = run.step(&events).unwrap().y.to_vec();
            let b = twin.step_channels(channels).unwrap().y.to_vec();
            assert_eq!(bits(&a), bits(&b));
            assert_eq!(run.voltages(), twin.voltages());
        }
        assert_eq!(run.steps(), seqs.n_steps() as u64);
        assert_eq!(run.spike_count(), twin.spike_count());
        assert_eq!(
            run.spikes().count(),
            run.z().iter().filter(|&&z| z != 0.0).count()
        );
    }
}
