//! `--device cpu|cuda`: where training iterations run.
//!
//! With the `cuda` feature (which pulls `lsnn-gpu`), a training iteration of either tutorial
//! can run on the GPU: [`train_step`] has the signature of [`super::run::train_step`] plus the
//! device, and leaves the host's `Weights`, `Optimizer` and states exactly as a CPU step would
//! (weights, DEEP R magnitudes and Adam moments are downloaded after every step), so
//! checkpoints, validation, plots and exports work unchanged. Without the feature, choosing
//! `cuda` is a flag error (exit 2).
//!
//! The GPU step computes what the CPU step computes, bit for bit where the device's arithmetic
//! allows it: the same event order and gradient sums (elements in order, the recurrent adjoint
//! in warp order on both), the same softmax `exp` (f64), and DEEP R's random numbers from
//! Philox keyed by the same one draw of the run's generator (`lsnn_core::philox`).

use serde::{Deserialize, Serialize};

use super::run::TrainStep;
use crate::error::HostError;
use crate::train::optim::Optimizer;
use crate::train::update::Weights;
use crate::train::{HostState, PassResult};

/// Where training iterations run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// The host trainer (rayon over the batch).
    #[default]
    Cpu,
    /// The CUDA kernels of lsnn-gpu (builds with the `cuda` feature).
    Cuda,
}

/// Whether this build can run on `device` (a flag error naming how to get `cuda` if not).
pub fn check_device(device: Device) -> Result<(), HostError> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda if cfg!(feature = "cuda") => Ok(()),
        Device::Cuda => Err(no_cuda_build()),
    }
}

/// The error for `--device cuda` in a build without the `cuda` feature.
pub fn no_cuda_build() -> HostError {
    HostError::Flag {
        flag: "--device".into(),
        message: "`cuda` is not available in this build: build lsnn-host with `--features cuda` \
                  (needs the CUDA toolkit, see lsnn-gpu/NOTES.md)"
            .into(),
    }
}

/// One training iteration on `device`: forward, backward, non-finite guard, optimiser and
/// DEEP R, as [`super::run::train_step`].
pub fn train_step<R: rand::Rng>(
    device: Device,
    step: &TrainStep<'_>,
    weights: &mut Weights<f32>,
    optimizer: &mut Optimizer,
    rng: &mut R,
    states: &mut [HostState<f32>],
) -> Result<PassResult<f32>, HostError> {
    match device {
        Device::Cpu => super::run::train_step(step, weights, optimizer, rng, states),
        #[cfg(feature = "cuda")]
        Device::Cuda => cuda::train_step(step, weights, optimizer, rng, states),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => Err(no_cuda_build()),
    }
}

#[cfg(feature = "cuda")]
pub use cuda::{bench, GpuNetwork};

#[cfg(feature = "cuda")]
mod cuda {
    use std::cell::RefCell;
    use std::time::Instant;

    use lsnn_core::{Neuron, NeuronState};
    use lsnn_gpu::layout::BatchState;
    use lsnn_gpu::{
        BatchInput, Dims, GpuError, GpuTrainer, NetworkSpec, OptimizerKind, Outcome, PackedInput,
        PackedTerms, Param, ParamValues, Rewired, Snapshot, StepConfig, Term,
    };
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::super::bench::{smnist_setup, store_recall_setup, BenchResult, BenchTask};
    use super::super::run::TrainStep;
    use crate::error::HostError;
    use crate::input::InputBatch;
    use crate::train::deepr::RewiredMatrix;
    use crate::train::optim::{Optimizer, OptimizerKind as HostOptimizerKind};
    use crate::train::update::{Rewiring, Weights};
    use crate::train::{HostState, LossTerm, Params, PassResult, RateRegulariser, Spec};

    pub(crate) fn gpu_err(e: GpuError) -> HostError {
        HostError::Network(format!("GPU: {e}"))
    }

    /// A host network uploaded to the GPU, with what is needed to convert back and forth.
    pub struct GpuNetwork {
        /// The device side.
        pub trainer: GpuTrainer,
        spec: Spec<f32>,
        rewired: Vec<(String, f64)>,
        n_out: usize,
        has_bias: bool,
        /// The host state the device holds (as last uploaded or downloaded).
        mirror: Option<(Params<f32>, Vec<Array2<f32>>, Optimizer)>,
    }

    fn slice<T>(a: &Array2<T>) -> &[T] {
        a.as_slice()
            .expect("the trainer's arrays are in standard layout")
    }

    fn optimizer_kind(o: &Optimizer) -> OptimizerKind {
        match o.kind {
            HostOptimizerKind::Adam => OptimizerKind::Adam {
                beta1: o.beta1,
                beta2: o.beta2,
                epsilon: o.epsilon,
            },
            HostOptimizerKind::Sgd => OptimizerKind::Sgd,
        }
    }

    fn rewired_views(rewired: &[RewiredMatrix<f32>]) -> Result<Vec<Rewired<'_>>, HostError> {
        rewired
            .iter()
            .map(|m| {
                let param = Param::from_name(&m.name).ok_or_else(|| {
                    HostError::Network(format!("cannot rewire unknown matrix {}", m.name))
                })?;
                Ok(Rewired {
                    param,
                    theta: slice(&m.theta),
                    sign: slice(&m.sign),
                    connectivity: m.connectivity,
                })
            })
            .collect()
    }

    fn values(params: &Params<f32>) -> ParamValues<'_> {
        ParamValues {
            w_in: slice(&params.w_in),
            w_rec: slice(&params.w_rec),
            w_out: slice(&params.w_out),
            b_out: params.b_out.as_ref().and_then(|b| b.as_slice()),
        }
    }

    impl GpuNetwork {
        /// Uploads `spec` and `weights` with `optimizer`'s state.
        pub fn new(
            spec: &Spec<f32>,
            weights: &Weights<f32>,
            optimizer: &Optimizer,
        ) -> Result<GpuNetwork, HostError> {
            spec.check(&weights.params)?;
            let neurons: Vec<Neuron<f32>> = spec.neurons()?;
            let delay_in = spec.delay_in.as_standard_layout();
            let delay_rec = spec.delay_rec.as_standard_layout();
            let p = &weights.params;
            let net = NetworkSpec {
                n_in: spec.n_in(),
                n_out: p.n_out(),
                config: spec.config,
                neurons: &neurons,
                delay_in: delay_in.as_slice().expect("standard"),
                delay_rec: delay_rec.as_slice().expect("standard"),
                tau_out: spec.tau_out,
                has_bias: p.b_out.is_some(),
            };
            let rewired = rewired_views(&weights.rewired)?;
            let trainer = GpuTrainer::new(&net, &values(p), &rewired, optimizer_kind(optimizer))
                .map_err(gpu_err)?;
            let mut g = GpuNetwork {
                trainer,
                spec: spec.clone(),
                rewired: weights
                    .rewired
                    .iter()
                    .map(|m| (m.name.clone(), m.connectivity))
                    .collect(),
                n_out: p.n_out(),
                has_bias: p.b_out.is_some(),
                mirror: None,
            };
            g.sync_in(weights, optimizer)?;
            Ok(g)
        }

        /// Whether this upload is of the same network (fixed part and shapes).
        pub fn fits(&self, spec: &Spec<f32>, weights: &Weights<f32>) -> bool {
            &self.spec == spec
                && weights.params.n_out() == self.n_out
                && weights.params.b_out.is_some() == self.has_bias
                && weights.rewired.len() == self.rewired.len()
                && weights
                    .rewired
                    .iter()
                    .zip(&self.rewired)
                    .all(|(m, (n, p))| &m.name == n && m.connectivity == *p)
        }

        /// Uploads parameters and moments unless the device already holds exactly these.
        pub fn sync_in(
            &mut self,
            weights: &Weights<f32>,
            optimizer: &Optimizer,
        ) -> Result<(), HostError> {
            let same = self.mirror.as_ref().is_some_and(|(p, th, o)| {
                p == &weights.params
                    && th.len() == weights.rewired.len()
                    && th.iter().zip(&weights.rewired).all(|(a, m)| *a == m.theta)
                    && o == optimizer
            });
            if same {
                return Ok(());
            }
            let rewired = rewired_views(&weights.rewired)?;
            self.trainer
                .upload_params(&values(&weights.params), &rewired)
                .map_err(gpu_err)?;
            let layout = *self.trainer.layout();
            let (mut m, mut v) = (vec![0.0; layout.len()], vec![0.0; layout.len()]);
            for p in layout.params() {
                let r = layout.range(p).expect("present");
                for (store, flat) in [(&optimizer.m, &mut m), (&optimizer.v, &mut v)] {
                    if let Some((_, x)) = store.iter().find(|(n, _)| n == p.name()) {
                        if x.len() != r.len() {
                            return Err(HostError::Network(format!(
                                "optimizer moments of {} have {} entries, expected {}",
                                p.name(),
                                x.len(),
                                r.len()
                            )));
                        }
                        flat[r.clone()].copy_from_slice(x);
                    }
                }
            }
            self.trainer.upload_moments(&m, &v).map_err(gpu_err)?;
            self.remember(weights, optimizer);
            Ok(())
        }

        fn remember(&mut self, weights: &Weights<f32>, optimizer: &Optimizer) {
            self.mirror = Some((
                weights.params.clone(),
                weights.rewired.iter().map(|m| m.theta.clone()).collect(),
                optimizer.clone(),
            ));
        }

        /// Writes the device's parameters, magnitudes and moments into the host's structures
        /// and counts one optimiser step.
        fn sync_out(
            &mut self,
            weights: &mut Weights<f32>,
            optimizer: &mut Optimizer,
        ) -> Result<(), HostError> {
            let Snapshot {
                params,
                theta,
                adam_m,
                adam_v,
            } = self.trainer.snapshot().map_err(gpu_err)?;
            let layout = *self.trainer.layout();
            for (name, dst) in weights.params.named_mut() {
                let p = Param::from_name(name).expect("the host's arrays");
                dst.copy_from_slice(&params[layout.range(p).expect("present")]);
            }
            for m in &mut weights.rewired {
                let p = Param::from_name(&m.name).expect("checked at upload");
                m.theta
                    .as_slice_mut()
                    .expect("standard layout")
                    .copy_from_slice(&theta[layout.range(p).expect("present")]);
            }
            optimizer.step += 1;
            if optimizer.kind == HostOptimizerKind::Adam {
                for p in layout.params() {
                    let r = layout.range(p).expect("present");
                    for (store, flat) in [(&mut optimizer.m, &adam_m), (&mut optimizer.v, &adam_v)]
                    {
                        match store.iter_mut().find(|(n, _)| n == p.name()) {
                            Some((_, x)) => x.copy_from_slice(&flat[r.clone()]),
                            None => store.push((p.name().to_string(), flat[r.clone()].to_vec())),
                        }
                    }
                }
            }
            self.remember(weights, optimizer);
            Ok(())
        }

        fn dims(&self) -> Dims {
            *self.trainer.dims()
        }

        /// Uploads a batch (input, loss terms, regulariser).
        pub fn set_batch(
            &mut self,
            input: &InputBatch,
            terms: &[Vec<LossTerm<f32>>],
            reg: Option<&RateRegulariser<f32>>,
            linear: Option<(&[f32], &[f32])>,
        ) -> Result<(), HostError> {
            let packed = pack_input(input, self.spec.n_in())?;
            let terms = pack_terms(terms, input.n_steps(), self.n_out)?;
            self.trainer
                .set_batch(&BatchInput {
                    input: &packed,
                    terms: &terms,
                    regulariser: reg.map(|r| (r.coeff.as_slice(), r.target)),
                    linear,
                })
                .map_err(gpu_err)
        }

        /// Uploads the states (a memset when they are all zero).
        pub fn set_states(&mut self, states: &[HostState<f32>]) -> Result<(), HostError> {
            let dims = self.dims();
            if states.iter().all(|s| is_zero(s, &dims)) {
                return self.trainer.zero_state().map_err(gpu_err);
            }
            self.trainer
                .set_state(&to_batch_state(states, &dims))
                .map_err(gpu_err)
        }

        /// Writes the device's final states into `states`.
        pub fn get_states(&self, states: &mut [HostState<f32>]) -> Result<(), HostError> {
            let s = self.trainer.state().map_err(gpu_err)?;
            from_batch_state(&s, &self.dims(), states);
            Ok(())
        }
    }

    /// The input events of a batch in the device layout.
    pub(crate) fn pack_input(input: &InputBatch, n_in: usize) -> Result<PackedInput, HostError> {
        PackedInput::pack(input.n_batch(), input.n_steps(), n_in, |b, t| {
            input.events(b, t)
        })
        .map_err(gpu_err)
    }

    pub(crate) fn pack_terms(
        terms: &[Vec<LossTerm<f32>>],
        n_steps: usize,
        n_out: usize,
    ) -> Result<PackedTerms, HostError> {
        let terms: Vec<Vec<Term>> = terms
            .iter()
            .map(|e| {
                e.iter()
                    .map(|t| Term {
                        start: t.start,
                        end: t.end,
                        target: t.target,
                        weight: t.weight,
                    })
                    .collect()
            })
            .collect();
        PackedTerms::pack(&terms, n_steps, n_out).map_err(gpu_err)
    }

    fn is_zero(s: &HostState<f32>, d: &Dims) -> bool {
        s.v().iter().chain(s.z()).chain(s.b()).all(|&x| x == 0.0)
            && s.refractory_left().iter().all(|&x| x == 0)
            && (0..d.n_delay).all(|k| (0..d.n_rec).all(|j| s.i_future(j, k) == 0.0))
    }

    pub(crate) fn to_batch_state(states: &[HostState<f32>], d: &Dims) -> BatchState {
        let mut out = BatchState::zeros(d, states.len());
        let n = d.n_rec;
        for (b, s) in states.iter().enumerate() {
            out.v[b * n..(b + 1) * n].copy_from_slice(s.v());
            out.z[b * n..(b + 1) * n].copy_from_slice(s.z());
            out.b[b * n..(b + 1) * n].copy_from_slice(s.b());
            for (j, &left) in s.refractory_left().iter().enumerate() {
                out.refractory_left[b * n + j] = i32::from(left);
            }
            for k in 0..d.n_delay {
                for j in 0..n {
                    out.ring[BatchState::ring_index(d, b, k, j)] = s.i_future(j, k);
                }
            }
        }
        out
    }

    pub(crate) fn from_batch_state(src: &BatchState, d: &Dims, states: &mut [HostState<f32>]) {
        let n = d.n_rec;
        for (b, s) in states.iter_mut().enumerate() {
            for j in 0..n {
                let k = b * n + j;
                s.set_neuron(
                    j,
                    NeuronState {
                        v: src.v[k],
                        z: src.z[k],
                        b: src.b[k],
                    },
                );
                s.set_refractory_left(
                    j,
                    src.refractory_left[k].clamp(0, i32::from(u16::MAX)) as u16,
                );
                for slot in 0..d.n_delay {
                    s.set_i_future(j, slot, src.ring[BatchState::ring_index(d, b, slot, j)]);
                }
            }
        }
    }

    fn pass_result(
        out: &lsnn_gpu::PassOutput,
        terms: &[Vec<LossTerm<f32>>],
        n_out: usize,
    ) -> PassResult<f32> {
        let mut logits = Vec::with_capacity(terms.len());
        let mut at = 0;
        for element in terms {
            logits.push(
                (0..element.len())
                    .map(|q| out.logits[(at + q) * n_out..(at + q + 1) * n_out].to_vec())
                    .collect(),
            );
            at += element.len();
        }
        PassResult {
            loss: out.loss,
            loss_ce: out.loss_ce,
            loss_reg: out.loss_reg,
            rates: out.rates.clone(),
            logits,
            grads: None,
            traces: None,
        }
    }

    thread_local! {
        /// The network of this thread's training run on the GPU (rebuilt when the network
        /// changes; parameters re-uploaded when the host's differ from the device's).
        static NETWORK: RefCell<Option<GpuNetwork>> = const { RefCell::new(None) };
    }

    /// [`super::train_step`] on the GPU.
    pub fn train_step<R: rand::Rng>(
        step: &TrainStep<'_>,
        weights: &mut Weights<f32>,
        optimizer: &mut Optimizer,
        rng: &mut R,
        states: &mut [HostState<f32>],
    ) -> Result<PassResult<f32>, HostError> {
        let (spec, terms) = (step.spec, step.terms);
        NETWORK.with(|cell| {
            let mut slot = cell.borrow_mut();
            if !slot.as_ref().is_some_and(|g| g.fits(spec, weights)) {
                *slot = None;
                *slot = Some(GpuNetwork::new(spec, weights, optimizer)?);
            }
            let g = slot.as_mut().expect("set above");
            g.sync_in(weights, optimizer)?;
            g.set_batch(step.input, terms, Some(step.reg), None)?;
            g.set_states(states)?;
            let rewired = !weights.rewired.is_empty();
            let key = if rewired { rng.gen::<u64>() } else { 0 };
            let layout = *g.trainer.layout();
            let poison = (step.hooks.nan_gradient_at == Some(step.iteration))
                .then(|| layout.range(Param::WRec).expect("always").start + 1);
            let r = step.rewiring.unwrap_or(Rewiring {
                l1: 0.0,
                temperature: 0.0,
            });
            let cfg = StepConfig {
                lr: step.lr,
                step: optimizer.step + 1,
                rewiring: rewired.then_some((r.l1, r.temperature)),
                key,
                poison,
            };
            let out = g.trainer.train_step(&cfg).map_err(gpu_err)?;
            g.get_states(states)?;
            match out.outcome {
                Outcome::NonFiniteLoss => {
                    return Err(step.non_finite("the training loss".into()));
                }
                Outcome::NonFiniteGradient { param, index } => {
                    let what = format!("gradient of {} (entry {index})", param.name());
                    return Err(step.non_finite(what));
                }
                Outcome::Applied => {}
            }
            g.sync_out(weights, optimizer)?;
            Ok(pass_result(&out.pass, terms, weights.params.n_out()))
        })
    }

    /// `lsnn-host bench --device cuda`: the same configurations and synthetic input as the CPU
    /// benchmark; each iteration is the whole training step on the device (input copy, forward,
    /// loss, backward, reduction, Adam, DEEP R) and the read of its loss, timed with a
    /// synchronisation; the next batch's input is staged while an iteration runs.
    pub fn bench(
        task: BenchTask,
        batch: Option<usize>,
        iters: usize,
    ) -> Result<BenchResult, HostError> {
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
                poison: None,
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
}
