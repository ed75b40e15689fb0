//! Benchmarks (`lsnn-host bench`): full training iterations (forward, backward, optimiser, DEEP R where the
//! task uses it) of the two tutorial configurations on synthetic input, timed after a warm-up.

use std::time::Instant;

use lsnn_core::CellConfig;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::store_recall::{build_spec, init_weights, loss_terms, StoreRecallFlags};
use crate::error::HostError;
use crate::input::{random_spikes, InputBatch};
use crate::loss::{LossTerm, RateRegulariser};
use crate::network::{neuron_signs, Matrix, Params, RewiredMatrix, Spec, Weights};
use crate::runs::use_threads;
use crate::tasks::store_recall::generate;
use crate::train::optim::Optimizer;
use crate::train::update::Rewiring;
use crate::train::{run_pass_in, zero_states, HostState, PassOptions, PassResult, Workspace};

/// Which configuration to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum BenchTask {
    /// B 128, T 2400, 100 in, 10 + 10 rec, D 10, R 3 (no DEEP R, as the tutorial).
    StoreRecall,
    /// B 256, T 840, 80 in, 120 + 100 rec, D 10, R 5, DEEP R at 12 % with Dale's law.
    Smnist,
}

/// The benchmark's result (printed as the last line, one JSON object).
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Configuration.
    pub task: BenchTask,
    /// Device.
    pub device: String,
    /// Batch size.
    pub batch: usize,
    /// Steps per sequence.
    pub steps: usize,
    /// Timed iterations.
    pub iters: usize,
    /// Median milliseconds per training iteration.
    pub ms_median: f64,
    /// Fastest iteration.
    pub ms_min: f64,
    /// Worker threads.
    pub threads: usize,
    /// Mean firing rate (Hz) during the timed iterations.
    pub rate_hz: f64,
    /// Input events per (element, step).
    pub input_events_per_step: f64,
}

/// A benchmark configuration (also timed on the GPU by [`bench_cuda`]).
pub(crate) struct Setup {
    pub(crate) spec: Spec<f32>,
    pub(crate) weights: Weights<f32>,
    pub(crate) input: InputBatch,
    pub(crate) terms: Vec<Vec<LossTerm<f32>>>,
    pub(crate) reg: RateRegulariser<f32>,
    pub(crate) rewiring: Option<Rewiring>,
}

impl Setup {
    /// One pass with gradients over the setup's batch, from `states` (left at the final ones).
    pub(crate) fn pass(
        &self,
        workspace: &mut Workspace<f32>,
        states: &mut [HostState<f32>],
    ) -> Result<PassResult<f32>, HostError> {
        let options = PassOptions {
            gradients: true,
            ..PassOptions::default()
        };
        run_pass_in(
            workspace,
            &self.spec,
            &self.weights.params,
            &self.input,
            states,
            &self.terms,
            Some(&self.reg),
            options,
        )
    }
}

pub(crate) fn store_recall_setup(batch: usize, rng: &mut ChaCha8Rng) -> Result<Setup, HostError> {
    let flags = StoreRecallFlags {
        batch_train: batch,
        ..StoreRecallFlags::defaults()
    };
    let spec = build_spec(&flags, rng);
    let weights = init_weights(&flags, rng)?;
    let data = generate(rng, batch, &flags.task())?;
    Ok(Setup {
        terms: loss_terms(&data),
        input: data.input,
        reg: RateRegulariser {
            coeff: vec![flags.reg as f32; spec.n_rec()],
            target: 0.01,
        },
        spec,
        weights,
        rewiring: None,
    })
}

pub(crate) fn smnist_setup(batch: usize, rng: &mut ChaCha8Rng) -> Result<Setup, HostError> {
    let (n_in, n_lif, n_alif, steps, n_out) = (80, 120, 100, 840, 10);
    let n = n_lif + n_alif;
    let spec = Spec {
        config: CellConfig {
            dt: 1.0,
            tau_adaptation: 700.0,
            v0: 1.0,
            n_delay: 10,
            n_refractory: 5,
            dampening_factor: 0.3,
            injected_noise_current: 0.0,
        },
        tau: vec![20.0; n],
        thr: vec![0.01; n],
        beta: (0..n).map(|j| if j < n_lif { 0.0 } else { 1.8 }).collect(),
        delay_in: Array2::from_shape_simple_fn((n_in, n), || rng.gen_range(0..10)),
        delay_rec: Array2::from_shape_simple_fn((n, n), || rng.gen_range(0..10)),
        tau_out: 20.0,
    };
    let in_sign = neuron_signs(rng, n_in, 0.75, true);
    let rec_sign = neuron_signs(rng, n, 0.75, false);
    let rewired = vec![
        RewiredMatrix::init_signed(rng, Matrix::In, &in_sign, n, 0.12)?,
        RewiredMatrix::init_signed(rng, Matrix::Rec, &rec_sign, n, 0.12)?,
        RewiredMatrix::init_signed(rng, Matrix::Out, &rec_sign, n_out, 0.12)?,
    ];
    let mut weights = Weights {
        params: Params {
            w_in: Array2::zeros((n_in, n)),
            w_rec: Array2::zeros((n, n)),
            w_out: Array2::zeros((n, n_out)),
            b_out: Some(ndarray::Array1::zeros(n_out)),
        },
        rewired,
    };
    weights.sync_rewired()?;
    // Synthetic input at the PyTorch peer's density (2 % of the 80 channels per step).
    let input = random_spikes(rng, batch, steps, n_in, 0.02)?;
    let terms = (0..batch)
        .map(|_| {
            vec![LossTerm {
                start: steps - 28,
                end: steps,
                target: rng.gen_range(0..n_out),
                weight: 1.0 / batch as f32,
            }]
        })
        .collect();
    Ok(Setup {
        spec,
        weights,
        input,
        terms,
        reg: RateRegulariser {
            coeff: vec![0.1; n],
            target: 0.01,
        },
        rewiring: Some(Rewiring {
            l1: 1e-2,
            temperature: 0.0,
        }),
    })
}

/// Times `iters` training iterations after one warm-up.
pub fn bench(
    task: BenchTask,
    batch: Option<usize>,
    iters: usize,
    threads: usize,
) -> Result<BenchResult, HostError> {
    use_threads(threads);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let batch = batch.unwrap_or(match task {
        BenchTask::StoreRecall => 128,
        BenchTask::Smnist => 256,
    });
    let mut s = match task {
        BenchTask::StoreRecall => store_recall_setup(batch, &mut rng)?,
        BenchTask::Smnist => smnist_setup(batch, &mut rng)?,
    };
    let mut states = zero_states(&s.spec, batch);
    let mut opt = Optimizer::adam();
    let mut times = Vec::with_capacity(iters);
    let mut rates = Vec::new();
    let mut workspace = Workspace::default();
    for i in 0..=iters {
        let t0 = Instant::now();
        let pass = s.pass(&mut workspace, &mut states)?;
        let grads = pass.grads.as_ref().expect("asked for gradients");
        s.weights
            .apply(grads, &mut opt, 1e-3, s.rewiring, &mut rng)?;
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
            rates.push(
                pass.rates.iter().map(|&r| f64::from(r)).sum::<f64>() * 1e3
                    / pass.rates.len() as f64,
            );
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(BenchResult {
        task,
        device: "cpu".into(),
        batch,
        steps: s.input.n_steps(),
        iters,
        ms_median: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
        ms_min: times.first().copied().unwrap_or(f64::NAN),
        threads: rayon::current_num_threads(),
        rate_hz: rates.iter().sum::<f64>() / rates.len().max(1) as f64,
        input_events_per_step: s.input.n_events() as f64 / (batch * s.input.n_steps()) as f64,
    })
}

#[cfg(feature = "cuda")]
/// `lsnn-host bench --device cuda`: the same configurations and synthetic input as the CPU
/// benchmark; each iteration is the whole training step on the device (input copy, forward,
/// loss, backward, reduction, Adam, DEEP R) and the read of its loss, timed with a
/// synchronisation; the next batch's input is staged while an iteration runs.
pub fn bench_cuda(
    task: BenchTask,
    batch: Option<usize>,
    iters: usize,
) -> Result<BenchResult, HostError> {
    use crate::train::device::cuda::{gpu_err, pack_input, GpuNetwork};
    use lsnn_gpu::{Outcome, StepConfig};

    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let batch = batch.unwrap_or(match task {
        BenchTask::StoreRecall => 128,
        BenchTask::Smnist => 256,
    });
    let s = match task {
        BenchTask::StoreRecall => store_recall_setup(batch, &mut rng)?,
        BenchTask::Smnist => smnist_setup(batch, &mut rng)?,
    };
    let optimizer = Optimizer::adam();
    let mut g = GpuNetwork::new(&s.spec, &s.weights, &optimizer)?;
    let packed = pack_input(&s.input, s.spec.n_in())?;
    g.set_batch(&s.input, &s.terms, Some(&s.reg), None)?;
    g.trainer.zero_state().map_err(gpu_err)?;
    let (l1, temperature) = s.rewiring.map_or((0.0, 0.0), |r| (r.l1, r.temperature));
    let rewired = !s.weights.rewired.is_empty();
    let mut times = Vec::with_capacity(iters);
    let mut rates = Vec::new();
    let mut connected = None;
    for i in 0..=iters {
        let t0 = Instant::now();
        let cfg = StepConfig {
            lr: 1e-3,
            step: i as u64 + 1,
            rewiring: rewired.then_some((l1, temperature)),
            key: i as u64,
        };
        g.trainer.launch_step(&cfg).map_err(gpu_err)?;
        // The next batch's events (the same synthetic ones) go up while this step runs.
        g.trainer.stage_input(&packed).map_err(gpu_err)?;
        let out = g.trainer.finish_step().map_err(gpu_err)?;
        if out.outcome != Outcome::Applied {
            return Err(HostError::Network(format!(
                "GPU step {i}: {:?}",
                out.outcome
            )));
        }
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
            rates.push(
                out.pass.rates.iter().map(|&r| f64::from(r)).sum::<f64>() * 1e3
                    / out.pass.rates.len() as f64,
            );
        }
        // The state carries over from iteration to iteration, as in the CPU benchmark.
        connected = out.n_connected;
    }
    if let (Some(n), Some(k)) = (connected, g.trainer.budget()) {
        if n != k {
            return Err(HostError::Network(format!(
                "DEEP R on the GPU kept {n} connections, the budget is {k}"
            )));
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(BenchResult {
        task,
        device: format!("cuda ({})", g.trainer.device_name()),
        batch,
        steps: s.input.n_steps(),
        iters,
        ms_median: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
        ms_min: times.first().copied().unwrap_or(f64::NAN),
        threads: 0,
        rate_hz: rates.iter().sum::<f64>() / rates.len().max(1) as f64,
        input_events_per_step: s.input.n_events() as f64 / (batch * s.input.n_steps()) as f64,
    })
}

/// The trainer's results, bit for bit, over a few iterations of both tutorials' networks: every
/// loss, rate, logit and gradient, the Adam moments, the weights and DEEP R's thetas after each
/// update, and the carried states, hashed (FNV-1a over the IEEE bit patterns). The expected
/// hashes were computed by the trainer of commit 8044544 (scalar, one element at a time); any
/// change of the trainer must keep them, at every thread count.
#[cfg(test)]
mod bit_for_bit {
    use super::*;

    struct Fnv(u64);

    impl Fnv {
        fn new() -> Self {
            Fnv(0xcbf2_9ce4_8422_2325)
        }
        fn word(&mut self, x: u64) {
            for byte in x.to_le_bytes() {
                self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        fn f32s<'a>(&mut self, xs: impl IntoIterator<Item = &'a f32>) {
            for x in xs {
                self.word(u64::from(x.to_bits()));
            }
        }
        fn f64s<'a>(&mut self, xs: impl IntoIterator<Item = &'a f64>) {
            for x in xs {
                self.word(x.to_bits());
            }
        }
        fn params(&mut self, p: &Params<f32>) {
            for (_, values) in p.named() {
                self.f32s(values);
            }
        }
        fn states(&mut self, states: &[HostState<f32>], n_delay: usize) {
            for s in states {
                self.f32s(s.v());
                self.f32s(s.z());
                self.f32s(s.b());
                for j in 0..s.n_rec() {
                    for d in 0..n_delay {
                        self.word(u64::from(s.i_future(j, d).to_bits()));
                    }
                    self.word(u64::from(s.refractory_left()[j]));
                }
            }
        }
    }

    /// Three iterations of `setup` (Adam, the tutorial's DEEP R where it has one), hashed.
    fn hash_of_training(mut s: Setup, rng: &mut ChaCha8Rng, portable: bool) -> u64 {
        let mut h = Fnv::new();
        let mut states = zero_states(&s.spec, s.input.n_batch());
        let mut opt = Optimizer::adam();
        let mut workspace = if portable {
            Workspace::portable()
        } else {
            Workspace::default()
        };
        for _ in 0..3 {
            let pass = s.pass(&mut workspace, &mut states).expect("pass");
            h.f32s([&pass.loss, &pass.loss_ce, &pass.loss_reg]);
            h.f32s(&pass.rates);
            h.f32s(pass.logits.iter().flatten().flatten());
            let grads = pass.grads.expect("gradients");
            h.params(&grads);
            s.weights
                .apply(&grads, &mut opt, 1e-2, s.rewiring, rng)
                .expect("update");
            for (_, m) in opt.m.iter().chain(&opt.v) {
                h.f64s(m);
            }
            h.params(&s.weights.params);
            for m in &s.weights.rewired {
                h.f32s(&m.theta);
            }
            h.states(&states, s.spec.config.n_delay);
        }
        h.0
    }

    fn hashes(threads: usize, portable: bool) -> (u64, u64) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        pool.install(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let store_recall = store_recall_setup(37, &mut rng).expect("setup");
            let a = hash_of_training(store_recall, &mut rng, portable);
            let mut rng = ChaCha8Rng::seed_from_u64(8);
            let smnist = smnist_setup(20, &mut rng).expect("setup");
            (a, hash_of_training(smnist, &mut rng, portable))
        })
    }

    #[test]
    fn training_is_bit_for_bit_that_of_commit_8044544_at_any_thread_count() {
        // The best registers this CPU has (AVX-512 here) and the portable lanes, which AVX2,
        // NEON and baseline CPUs run.
        for (threads, portable) in [(1, false), (3, false), (2, true)] {
            let (store_recall, smnist) = hashes(threads, portable);
            let run = format!("{threads} threads, portable lanes: {portable}");
            println!("{run}: store-recall {store_recall:#018x}, sMNIST {smnist:#018x}");
            assert_eq!(store_recall, 0xe39d_ebba_cedc_6b5f, "store-recall, {run}");
            assert_eq!(smnist, 0xea5d_4ae1_d84e_8353, "sMNIST, {run}");
        }
    }
}

/// Loss windows that overlap within an element (the general path of the lanes' readout, which
/// the tutorials, with windows apart, do not take).
#[cfg(test)]
mod overlapping_windows {
    use super::*;
    use crate::train::{run_pass, PassResult};

    fn pass(s: &Setup, terms: &[Vec<LossTerm<f32>>]) -> PassResult<f32> {
        let mut states = zero_states(&s.spec, s.input.n_batch());
        run_pass(
            &s.spec,
            &s.weights.params,
            &s.input,
            &mut states,
            terms,
            None,
            PassOptions {
                gradients: true,
                ..PassOptions::default()
            },
        )
        .expect("pass")
    }

    #[test]
    fn each_window_reads_what_it_reads_alone_and_gradients_add_up() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let s = store_recall_setup(19, &mut rng).expect("setup");
        let term = |start, end, target| LossTerm {
            start,
            end,
            target,
            weight: 0.5,
        };
        let a: Vec<_> = (0..19).map(|b| vec![term(300, 900, b % 2)]).collect();
        let b: Vec<_> = (0..19)
            .map(|b| vec![term(600, 1400 + b, 1 - b % 2)])
            .collect();
        let both: Vec<Vec<_>> = a
            .iter()
            .zip(&b)
            .map(|(a, b)| [&a[..], &b[..]].concat())
            .collect();
        let (pa, pb, pab) = (pass(&s, &a), pass(&s, &b), pass(&s, &both));
        for e in 0..19 {
            // The forward sums of a window do not depend on the others: the same bits.
            assert_eq!(
                pab.logits[e][0], pa.logits[e][0],
                "element {e}, first window"
            );
            assert_eq!(
                pab.logits[e][1], pb.logits[e][0],
                "element {e}, second window"
            );
        }
        // The loss is the sum of the two; its gradient too, up to rounding.
        let (ga, gb, gab) = (pa.grads.unwrap(), pb.grads.unwrap(), pab.grads.unwrap());
        for ((name, x), ((_, y), (_, z))) in gab
            .named()
            .into_iter()
            .zip(ga.named().into_iter().zip(gb.named()))
        {
            let scale = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{name}: no gradient");
            for (k, (&x, (&y, &z))) in x.iter().zip(y.iter().zip(z)).enumerate() {
                assert!(
                    (x - (y + z)).abs() <= 1e-5 * scale,
                    "{name}[{k}]: {x} vs {y} + {z}"
                );
            }
        }
    }
}
