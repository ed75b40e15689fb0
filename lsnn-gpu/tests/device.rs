//! Tests that need a CUDA device. Without one (CI, developers' machines) each prints
//! "skipped: no CUDA device" and passes.
//!
//! - the kernels' Philox equals the Rust mirror;
//! - the forward pass equals lsnn-core's event-driven cell bit for bit (spikes, voltages, final
//!   state), from non-zero initial states, with dt != 1, V0 != 1, delays and refractoriness;
//! - the update kernels: Adam and SGD equal the host's rules bit for bit, DEEP R keeps the
//!   budget, the signs, and resets what was disconnected;
//! - a batch that fails its checks leaves the current one as it was.

use lsnn_core::philox::{key_words, philox4x32_10};
use lsnn_core::{Cell, CellConfig, CellState, Csr, Neuron, NeuronState, NoNoise};
use lsnn_gpu::layout::BatchState;
use lsnn_gpu::{
    BatchInput, DeviceParamSet, Gpu, GpuTrainer, NetworkSpec, OptimizerKind, PackedInput,
    PackedTerms, ParamValues, SetPart, StepConfig, Term,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

fn device() -> bool {
    match lsnn_gpu::probe() {
        Some(name) => {
            eprintln!("device: {name}");
            true
        }
        None => {
            println!("skipped: no CUDA device");
            false
        }
    }
}

#[test]
fn philox_matches_the_rust_mirror() {
    if !device() {
        return;
    }
    let gpu = Gpu::new().unwrap();
    let key = 0xdead_beef_0123_4567;
    let got = gpu.philox(key, 2, 1000).unwrap();
    for (i, g) in got.iter().enumerate() {
        assert_eq!(
            *g,
            philox4x32_10([i as u32, 2, 0, 0], key_words(key)),
            "block {i}"
        );
    }
}

struct Case {
    seed: u64,
    n_in: usize,
    n: usize,
    d: usize,
    r: usize,
    dt: f32,
    v0: f32,
    batch: usize,
    steps: usize,
    initial_state: bool,
}

/// A trainer with Adam, no readout bias and nothing rewired.
fn unbiased_trainer(spec: &NetworkSpec, w_in: &[f32], w_rec: &[f32], w_out: &[f32]) -> GpuTrainer {
    let values = ParamValues {
        w_in,
        w_rec,
        w_out,
        b_out: None,
    };
    GpuTrainer::new(spec, &values, &[], OptimizerKind::adam()).unwrap()
}

#[allow(clippy::needless_range_loop)]
fn forward_case(c: &Case) {
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    let config = CellConfig {
        dt: c.dt,
        tau_adaptation: 300.0,
        v0: c.v0,
        n_delay: c.d,
        n_refractory: c.r,
        dampening_factor: 0.3,
        injected_noise_current: 0.0,
    };
    let neurons: Vec<Neuron<f32>> = (0..c.n)
        .map(|j| {
            let tau = 15.0 + 15.0 * rng.gen::<f64>() as f32;
            let thr = (0.01 + 0.02 * rng.gen::<f64>() as f32) * c.v0;
            let beta = if j % 2 == 0 {
                0.0
            } else {
                1.0 + rng.gen::<f64>() as f32
            };
            Neuron::new(tau, thr, beta, c.dt).unwrap()
        })
        .collect();
    let scale = |fan_in: usize| 0.6 / (fan_in as f64).sqrt();
    let w_in: Vec<f32> = (0..c.n_in * c.n)
        .map(|_| (rng.sample::<f64, _>(StandardNormal) * scale(c.n_in) * 2.0) as f32)
        .collect();
    let w_rec: Vec<f32> = (0..c.n * c.n)
        .map(|_| {
            if rng.gen::<f64>() < 0.3 {
                0.0
            } else {
                (rng.sample::<f64, _>(StandardNormal) * scale(c.n) * 0.05) as f32
            }
        })
        .collect();
    let delay_in: Vec<u8> = (0..c.n_in * c.n)
        .map(|_| rng.gen_range(0..c.d) as u8)
        .collect();
    let delay_rec: Vec<u8> = (0..c.n * c.n)
        .map(|_| rng.gen_range(0..c.d) as u8)
        .collect();
    // Input: 5 % spikes, a few analog values.
    let mut events = vec![vec![Vec::new(); c.steps]; c.batch];
    for per_element in events.iter_mut() {
        for step in per_element.iter_mut() {
            for ch in 0..c.n_in {
                let u = rng.gen::<f64>();
                if u < 0.05 {
                    step.push((ch, 1.0f32));
                } else if u < 0.06 {
                    step.push((ch, (rng.sample::<f64, _>(StandardNormal) * 0.5) as f32));
                }
            }
        }
    }
    let mut state = BatchState::zeros(
        &lsnn_gpu::Dims {
            n_in: c.n_in,
            n_rec: c.n,
            n_out: 1,
            n_delay: c.d,
            n_refractory: c.r,
            has_bias: false,
        },
        c.batch,
    );
    if c.initial_state {
        for x in state.v.iter_mut() {
            *x = (rng.gen::<f64>() * 0.03) as f32 * c.v0;
        }
        for (k, x) in state.z.iter_mut().enumerate() {
            *x = if rng.gen::<f64>() < 0.2 {
                1.0 / c.dt
            } else {
                0.0
            };
            state.refractory_left[k] = if *x > 0.0 { c.r as i32 } else { 0 };
        }
        for x in state.b.iter_mut() {
            *x = (rng.gen::<f64>() * 0.05) as f32;
        }
        for x in state.ring.iter_mut() {
            *x = (rng.sample::<f64, _>(StandardNormal) * 0.01) as f32 * c.v0;
        }
    }

    // lsnn-core, element by element.
    let delays = |d: &[u8]| d.iter().map(|&x| usize::from(x)).collect::<Vec<_>>();
    let csr_in = Csr::from_dense(c.n_in, c.n, &w_in, &delays(&delay_in), c.v0, false).unwrap();
    let csr_rec = Csr::from_dense(c.n, c.n, &w_rec, &delays(&delay_rec), c.v0, true).unwrap();
    let cell = Cell::new(config, &neurons, csr_in.view(), csr_rec.view()).unwrap();
    let mut want_z = vec![0.0f32; c.batch * c.steps * c.n];
    let mut want_v = vec![0.0f32; c.batch * c.steps * c.n];
    let mut want_final: Vec<CellState<f32, Vec<f32>, Vec<u16>>> = Vec::new();
    for b in 0..c.batch {
        let mut s = cell
            .state_in(
                vec![0.0; CellState::<f32, Vec<f32>, Vec<u16>>::float_len(c.n, c.d)],
                vec![0; c.n],
            )
            .unwrap();
        for j in 0..c.n {
            let k = b * c.n + j;
            s.set_neuron(
                j,
                NeuronState {
                    v: state.v[k],
                    z: state.z[k],
                    b: state.b[k],
                },
            );
            s.set_refractory_left(j, state.refractory_left[k] as u16);
            for slot in 0..c.d {
                s.set_i_future(j, slot, state.ring[(b * c.d + slot) * c.n + j]);
            }
        }
        for t in 0..c.steps {
            cell.step_events(&mut s, events[b][t].iter().copied(), &mut NoNoise)
                .unwrap();
            let at = (b * c.steps + t) * c.n;
            want_z[at..at + c.n].copy_from_slice(s.z());
            want_v[at..at + c.n].copy_from_slice(s.v());
        }
        want_final.push(s);
    }
    // Checked without a device too: a quiet network would make the comparison vacuous.
    let n_spikes = want_z.iter().filter(|&&z| z != 0.0).count();
    let rate = n_spikes as f64 / want_z.len() as f64;
    eprintln!(
        "seed {}: {n_spikes} spikes (rate {rate:.3} per neuron and step)",
        c.seed
    );
    assert!(
        rate > 0.01 && rate < 0.5,
        "seed {}: the test needs activity, rate {rate}",
        c.seed
    );
    if !device() {
        return;
    }

    // The GPU.
    let spec = NetworkSpec {
        n_in: c.n_in,
        n_out: 1,
        config,
        neurons: &neurons,
        delay_in: &delay_in,
        delay_rec: &delay_rec,
        tau_out: 20.0,
        has_bias: false,
    };
    let mut trainer = unbiased_trainer(&spec, &w_in, &w_rec, &vec![0.0f32; c.n]);
    let input = PackedInput::pack(c.batch, c.steps, c.n_in, |b, t| events[b][t].clone()).unwrap();
    let terms = PackedTerms::pack(&vec![Vec::new(); c.batch], c.steps, 1).unwrap();
    trainer
        .set_batch(&BatchInput {
            input: &input,
            terms: &terms,
            regulariser: None,
            linear: None,
        })
        .unwrap();
    trainer.set_state(&state).unwrap();
    trainer.forward(true).unwrap();
    let trace = trainer.trace().unwrap();
    let fin = trainer.state().unwrap();

    for b in 0..c.batch {
        for t in 0..c.steps {
            let v = trace.v(b, t + 1);
            for j in 0..c.n {
                let at = (b * c.steps + t) * c.n + j;
                assert_eq!(
                    trace.z(b, t, j),
                    want_z[at],
                    "seed {} z[{b},{t},{j}]",
                    c.seed
                );
                assert_eq!(
                    v[j].to_bits(),
                    want_v[at].to_bits(),
                    "seed {} v[{b},{t},{j}]: {} vs {}",
                    c.seed,
                    v[j],
                    want_v[at]
                );
            }
        }
        let s = &want_final[b];
        for j in 0..c.n {
            let k = b * c.n + j;
            assert_eq!(fin.v[k].to_bits(), s.v()[j].to_bits(), "final v");
            assert_eq!(fin.z[k], s.z()[j], "final z");
            assert_eq!(fin.b[k].to_bits(), s.b()[j].to_bits(), "final b");
            assert_eq!(
                fin.refractory_left[k],
                i32::from(s.refractory_left()[j]),
                "final refractory"
            );
            for slot in 0..c.d {
                assert_eq!(
                    fin.ring[(b * c.d + slot) * c.n + j].to_bits(),
                    s.i_future(j, slot).to_bits(),
                    "final i_future"
                );
            }
        }
    }
}

#[test]
fn forward_equals_lsnn_core_bit_for_bit() {
    let base = Case {
        seed: 1,
        n_in: 7,
        n: 40,
        d: 3,
        r: 2,
        dt: 1.0,
        v0: 1.0,
        batch: 5,
        steps: 300,
        initial_state: false,
    };
    forward_case(&base);
    forward_case(&Case {
        seed: 2,
        initial_state: true,
        ..base
    });
    forward_case(&Case {
        seed: 3,
        dt: 0.5,
        v0: 1000.0,
        d: 1,
        r: 0,
        ..base
    });
    forward_case(&Case {
        seed: 4,
        n: 220,
        n_in: 80,
        d: 10,
        r: 5,
        batch: 3,
        initial_state: true,
        ..base
    });
    forward_case(&Case {
        seed: 5,
        n: 1,
        n_in: 8,
        d: 2,
        r: 1,
        ..base
    });
}

/// The host's Adam (lsnn-host/src/train/optim.rs), on one array.
fn adam_reference(x: &mut [f32], m: &mut [f64], v: &mut [f64], g: &[f32], lr: f64, t: i32) {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let lr_t = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
    for k in 0..x.len() {
        let gk = f64::from(g[k]);
        m[k] = b1 * m[k] + (1.0 - b1) * gk;
        v[k] = b2 * v[k] + (1.0 - b2) * gk * gk;
        x[k] = (f64::from(x[k]) - lr_t * m[k] / (v[k].sqrt() + eps)) as f32;
    }
}

#[test]
fn adam_and_sgd_follow_the_host_rules_bit_for_bit() {
    if !device() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let len = 1000;
    let mut x: Vec<f32> = (0..len)
        .map(|_| rng.sample::<f64, _>(StandardNormal) as f32)
        .collect();
    let mut set = DeviceParamSet::new(
        &[SetPart {
            values: &x,
            rewired: None,
        }],
        OptimizerKind::adam(),
    )
    .unwrap();
    let (mut m, mut v) = (vec![0.0; len], vec![0.0; len]);
    for step in 1..=5u64 {
        let g: Vec<f32> = (0..len)
            .map(|_| (rng.sample::<f64, _>(StandardNormal) * 1e-3) as f32)
            .collect();
        let cfg = StepConfig {
            lr: 0.01,
            step,
            rewiring: None,
            key: step,
        };
        let (got, n) = set.step(&g, &cfg).unwrap();
        adam_reference(&mut x, &mut m, &mut v, &g, 0.01, step as i32);
        assert_eq!(n, None);
        for k in 0..len {
            assert_eq!(got[k].to_bits(), x[k].to_bits(), "step {step} entry {k}");
        }
    }
    let mut y: Vec<f32> = (0..len)
        .map(|_| rng.sample::<f64, _>(StandardNormal) as f32)
        .collect();
    let mut sgd = DeviceParamSet::new(
        &[SetPart {
            values: &y,
            rewired: None,
        }],
        OptimizerKind::Sgd,
    )
    .unwrap();
    let g: Vec<f32> = (0..len)
        .map(|_| rng.sample::<f64, _>(StandardNormal) as f32)
        .collect();
    let cfg = StepConfig {
        lr: 0.1,
        step: 1,
        rewiring: None,
        key: 0,
    };
    let (got, _) = sgd.step(&g, &cfg).unwrap();
    for k in 0..len {
        y[k] -= 0.1f32 * g[k];
        assert_eq!(got[k].to_bits(), y[k].to_bits());
    }
}

#[test]
fn deep_r_keeps_the_budget_and_the_signs() {
    if !device() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let sizes = [(30 * 40, 0.12), (40 * 40, 0.12), (40 * 10, 0.3)];
    let mut thetas = Vec::new();
    let mut signs = Vec::new();
    for &(len, p) in &sizes {
        thetas.push(
            (0..len)
                .map(|_| {
                    // Below the budget at first (the host's initialisation draws with
                    // replacement); reconnection then fills up to it.
                    if rng.gen::<f64>() < 0.8 * p {
                        (rng.sample::<f64, _>(StandardNormal).abs() * 0.1) as f32
                    } else {
                        0.0
                    }
                })
                .collect::<Vec<f32>>(),
        );
        signs.push(
            (0..len)
                .map(|_| if rng.gen::<f64>() < 0.5 { -1.0f32 } else { 1.0 })
                .collect::<Vec<f32>>(),
        );
    }
    let parts: Vec<SetPart<'_>> = (0..3)
        .map(|k| SetPart {
            values: &thetas[k],
            rewired: Some((&signs[k], sizes[k].1)),
        })
        .collect();
    let mut set = DeviceParamSet::new(&parts, OptimizerKind::adam()).unwrap();
    let budget = lsnn_gpu::layout::deepr_budget(sizes);
    let total: usize = sizes.iter().map(|s| s.0).sum();
    let sign_flat: Vec<f32> = signs.concat();
    let mut moved = 0;
    for step in 1..=50u64 {
        let (_, theta) = set.current().unwrap();
        let g: Vec<f32> = (0..total)
            .map(|_| (rng.gen::<f64>() * 2.0 - 1.0) as f32)
            .collect();
        let cfg = StepConfig {
            lr: 0.05,
            step,
            rewiring: Some((1e-2, 1e-4)),
            key: 1000 + step,
        };
        let (after, n) = set.step(&g, &cfg).unwrap();
        assert_eq!(n, Some(budget), "step {step}: connections after rewiring");
        for k in 0..total {
            // Disconnected before the step: back to exactly 0 (negative ones too).
            if theta[k] <= 0.0 {
                assert_eq!(after[k], 0.0, "step {step} entry {k} was disconnected");
            }
        }
        let (w, theta_now) = set.current().unwrap();
        let connected = theta_now.iter().filter(|&&t| t > 0.0).count();
        assert_eq!(connected, budget, "step {step}: counted on the host");
        for k in 0..total {
            // Fixed signs: every weight has its sign or is 0, and is sign * theta.
            if theta_now[k] > 0.0 {
                assert_eq!(w[k], sign_flat[k] * theta_now[k], "entry {k}");
            } else {
                assert_eq!(w[k], 0.0, "entry {k}");
            }
        }
        moved += theta_now
            .iter()
            .zip(&theta)
            .filter(|(&a, &b)| (a > 0.0) != (b > 0.0))
            .count();
    }
    assert!(moved > 50, "rewiring should move connections: {moved}");
}

#[test]
fn a_rejected_batch_leaves_the_current_one_as_it_was() {
    if !device() {
        return;
    }
    let (n_in, n, n_out, batch, steps) = (4, 8, 2, 3, 50);
    let config = CellConfig {
        dt: 1.0,
        tau_adaptation: 200.0,
        v0: 1.0,
        n_delay: 2,
        n_refractory: 2,
        dampening_factor: 0.3,
        injected_noise_current: 0.0,
    };
    let neurons: Vec<Neuron<f32>> = (0..n)
        .map(|j| Neuron::new(20.0f32, 0.02, if j % 2 == 0 { 0.0 } else { 1.5 }, 1.0).unwrap())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut normal = |count: usize, scale: f64| -> Vec<f32> {
        (0..count)
            .map(|_| (rng.sample::<f64, _>(StandardNormal) * scale) as f32)
            .collect()
    };
    let (w_in, w_rec, w_out) = (
        normal(n_in * n, 0.3),
        normal(n * n, 0.05),
        normal(n * n_out, 0.5),
    );
    let spec = NetworkSpec {
        n_in,
        n_out,
        config,
        neurons: &neurons,
        delay_in: &vec![0; n_in * n],
        delay_rec: &vec![1; n * n],
        tau_out: 20.0,
        has_bias: false,
    };
    let mut trainer = unbiased_trainer(&spec, &w_in, &w_rec, &w_out);
    let input = PackedInput::pack(batch, steps, n_in, |b, t| {
        [((b + t) % n_in, 1.0f32)]
            .into_iter()
            .filter(move |_| t % 3 == 0)
    })
    .unwrap();
    let term = |target| Term {
        start: 10,
        end: steps,
        target,
        weight: 1.0,
    };
    let terms =
        PackedTerms::pack(&[vec![term(0)], vec![term(1)], vec![term(0)]], steps, n_out).unwrap();
    let coeff = vec![0.5f32; n];
    trainer
        .set_batch(&BatchInput {
            input: &input,
            terms: &terms,
            regulariser: Some((&coeff, 0.01)),
            linear: None,
        })
        .unwrap();
    let zeros = BatchState::zeros(trainer.dims(), batch);
    let loss = |trainer: &mut GpuTrainer| {
        trainer.set_state(&zeros).unwrap();
        trainer.forward(false).unwrap().loss
    };
    let before = loss(&mut trainer);
    assert!(before.is_finite() && before > 0.0, "loss {before}");

    let other_terms =
        PackedTerms::pack(&[vec![term(1)], vec![term(0)], vec![term(1)]], steps, n_out).unwrap();
    let short = vec![0.0f32; steps * n - 1];
    let full = vec![0.0f32; steps * n];
    let err = trainer
        .set_targets(&other_terms, Some((&coeff, 0.02)), Some((&full, &short)))
        .unwrap_err();
    assert!(err.to_string().contains("linear loss"), "{err}");
    let longer = PackedInput::pack(batch, steps + 5, n_in, |_, _| Vec::new()).unwrap();
    let longer_terms = PackedTerms::pack(&vec![vec![term(1)]; batch], steps + 5, n_out).unwrap();
    let err = trainer
        .set_batch(&BatchInput {
            input: &longer,
            terms: &longer_terms,
            regulariser: Some((&coeff[1..], 0.01)),
            linear: None,
        })
        .unwrap_err();
    assert!(err.to_string().contains("regulariser"), "{err}");
    assert!(trainer.holds_batch_shape(batch, steps, 3));
    let after = loss(&mut trainer);
    assert_eq!(after.to_bits(), before.to_bits(), "{after} vs {before}");
}
