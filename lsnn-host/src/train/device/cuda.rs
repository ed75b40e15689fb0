//! The CUDA device: a host network uploaded to lsnn-gpu's trainer, kept there between steps.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use lsnn_core::{Neuron, NeuronState};
use lsnn_gpu::layout::BatchState;
use lsnn_gpu::{
    BatchInput, Dims, GpuError, GpuTrainer, NetworkSpec, OptimizerKind, Outcome, PackedInput,
    PackedTerms, Param, ParamValues, Rewired, Snapshot, StepConfig, Term,
};
use ndarray::Array2;
use rand_chacha::ChaCha8Rng;

use super::engine::{Engine, Overlap, Staged, Stager, States, Stepped};
use crate::error::HostError;
use crate::input::InputBatch;
use crate::loss::{LossTerm, RateRegulariser, Target};
use crate::network::{Params, RewiredMatrix, Spec, Weights};
use crate::train::optim::{Optimizer, OptimizerKind as HostOptimizerKind};
use crate::train::step::TrainStep;
use crate::train::update::Rewiring;
use crate::train::{HostState, PassResult};
use std::sync::atomic::{AtomicU64, Ordering};

/// The cross-entropy terms of a target: the only loss the kernels compute.
fn class_terms(target: &Target) -> Result<&[Vec<LossTerm<f32>>], HostError> {
    target.class_terms().ok_or_else(|| {
        HostError::Loss(
            "the CUDA device computes the softmax cross-entropy of classes (Target::Classes) \
             only; train other targets with the cpu device"
                .into(),
        )
    })
}

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
    /// The host's parameters, magnitudes and optimiser as last uploaded or downloaded.
    mirror: Option<Mirror>,
    /// Steps the device applied since then (the host's copy is that far behind).
    ahead: u64,
    /// Tells this upload from any other (a staged batch names the network it was queued to).
    id: u64,
}

/// Ids of [`GpuNetwork`]s.
static NETWORK_IDS: AtomicU64 = AtomicU64::new(0);

struct Mirror {
    params: Params<f32>,
    theta: Vec<Array2<f32>>,
    optimizer: Optimizer,
}

impl Mirror {
    /// Whether the host still holds what was synced, `ahead` steps later: the same
    /// parameters and optimiser settings and `ahead` more steps counted; the moments are
    /// compared only when the device is not ahead (the host's are stale otherwise, and
    /// only the optimiser writes them).
    fn matches(&self, weights: &Weights<f32>, optimizer: &Optimizer, ahead: u64) -> bool {
        let o = &self.optimizer;
        self.params == weights.params
            && self.theta.len() == weights.rewired.len()
            && self
                .theta
                .iter()
                .zip(&weights.rewired)
                .all(|(a, m)| *a == m.theta)
            && (o.kind, o.beta1, o.beta2, o.epsilon)
                == (
                    optimizer.kind,
                    optimizer.beta1,
                    optimizer.beta2,
                    optimizer.epsilon,
                )
            && o.step + ahead == optimizer.step
            && (ahead > 0 || (o.m == optimizer.m && o.v == optimizer.v))
    }
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
            ahead: 0,
            id: NETWORK_IDS.fetch_add(1, Ordering::Relaxed),
        };
        g.upload(weights, optimizer)?;
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

    /// Steps the device applied that the host's structures do not hold yet.
    pub fn steps_ahead(&self) -> u64 {
        self.ahead
    }

    fn host_matches(&self, weights: &Weights<f32>, optimizer: &Optimizer) -> bool {
        self.mirror
            .as_ref()
            .is_some_and(|m| m.matches(weights, optimizer, self.ahead))
    }

    fn diverged(&self) -> HostError {
        HostError::Network(format!(
            "the host's weights or optimiser were changed while the GPU holds {} newer \
             training steps; sync them to the host (Trainer::sync_to_host) before changing \
             them",
            self.ahead
        ))
    }

    /// Makes the device hold the host's parameters and moments: nothing to do if it holds
    /// them (or is ahead of an untouched host), an upload if the host changed them while
    /// the device was not ahead, an error if both changed.
    pub fn sync_in(
        &mut self,
        weights: &Weights<f32>,
        optimizer: &Optimizer,
    ) -> Result<(), HostError> {
        if self.host_matches(weights, optimizer) {
            Ok(())
        } else if self.ahead > 0 {
            Err(self.diverged())
        } else {
            self.upload(weights, optimizer)
        }
    }

    fn upload(&mut self, weights: &Weights<f32>, optimizer: &Optimizer) -> Result<(), HostError> {
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
        self.mirror = Some(Mirror {
            params: weights.params.clone(),
            theta: weights.rewired.iter().map(|m| m.theta.clone()).collect(),
            optimizer: optimizer.clone(),
        });
        self.ahead = 0;
    }

    /// Writes the device's parameters, magnitudes and moments into the host's structures
    /// if the device is ahead of them (the host counted the steps already).
    pub fn sync_to_host(
        &mut self,
        weights: &mut Weights<f32>,
        optimizer: &mut Optimizer,
    ) -> Result<(), HostError> {
        if self.ahead == 0 {
            return Ok(());
        }
        if !self.host_matches(weights, optimizer) {
            return Err(self.diverged());
        }
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
        if optimizer.kind == HostOptimizerKind::Adam {
            for p in layout.params() {
                let r = layout.range(p).expect("present");
                for (store, flat) in [(&mut optimizer.m, &adam_m), (&mut optimizer.v, &adam_v)] {
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
        let packed = PackedBatch::new(input, terms, self.spec.n_in(), self.n_out)?;
        self.set_packed(&packed, reg, linear)
    }

    fn set_packed(
        &mut self,
        packed: &PackedBatch,
        reg: Option<&RateRegulariser<f32>>,
        linear: Option<(&[f32], &[f32])>,
    ) -> Result<(), HostError> {
        self.trainer
            .set_batch(&BatchInput {
                input: &packed.input,
                terms: &packed.terms,
                regulariser: reg.map(|r| (r.coeff.as_slice(), r.target)),
                linear,
            })
            .map_err(gpu_err)
    }

    /// Uploads a step's batch: the staged one if the step has one (only its loss terms
    /// when its events were queued to this network during the previous step), else
    /// packed now.
    fn upload_batch(&mut self, step: &TrainStep<'_>) -> Result<(), HostError> {
        let staged = step
            .staged
            .and_then(|s| s.get::<StagedBatch>())
            .map(|s| (&s.packed, s.queued_on));
        let Some((packed, queued_on)) = staged else {
            return self.set_batch(step.input, class_terms(step.target)?, step.reg, None);
        };
        packed.check(step, self.n_out)?;
        if queued_on == Some(self.id) {
            let reg = step.reg.map(|r| (r.coeff.as_slice(), r.target));
            self.trainer
                .set_targets(&packed.terms, reg, None)
                .map_err(gpu_err)
        } else {
            self.set_packed(packed, step.reg, None)
        }
    }

    /// Uploads the batch and initial states, draws DEEP R's key and queues the iteration.
    fn launch<R: rand::Rng>(
        &mut self,
        step: &TrainStep<'_>,
        optimizer: &Optimizer,
        rng: &mut R,
        states: &States<'_>,
        nan_gradient_at: Option<usize>,
    ) -> Result<(), HostError> {
        self.upload_batch(step)?;
        match states {
            States::Zero => self.trainer.zero_state().map_err(gpu_err)?,
            States::Carried(s) => self.set_states(s)?,
        }
        let rewired = !self.rewired.is_empty();
        let key = if rewired { rng.gen::<u64>() } else { 0 };
        let layout = *self.trainer.layout();
        let r = step.rewiring.unwrap_or(Rewiring {
            l1: 0.0,
            temperature: 0.0,
        });
        let cfg = StepConfig {
            lr: step.lr,
            step: optimizer.step + 1,
            rewiring: rewired.then_some((r.l1, r.temperature)),
            key,
        };
        match nan_gradient_at == Some(step.iteration) {
            true => {
                let entry = layout.range(Param::WRec).expect("always").start + 1;
                self.trainer.launch_step_with_nan_gradient(&cfg, entry)
            }
            false => self.trainer.launch_step(&cfg),
        }
        .map_err(gpu_err)
    }

    /// Waits for the launched iteration: its result, the final states if carried, and the
    /// step counted on the host.
    fn finish(
        &mut self,
        step: &TrainStep<'_>,
        optimizer: &mut Optimizer,
        states: States<'_>,
    ) -> Result<PassResult<f32>, HostError> {
        let out = self.trainer.finish_step().map_err(gpu_err)?;
        if let States::Carried(s) = states {
            self.get_states(s)?;
        }
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
        optimizer.step += 1;
        self.ahead += 1;
        Ok(pass_result(
            &out.pass,
            class_terms(step.target)?,
            self.n_out,
        ))
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

/// The input events of a batch in the device layout: the host's CSR with wider channel
/// indices (a copy: the per-step repacking took ~5 ms per sMNIST batch of 256), or,
/// when the batch has more channels than the network, packed event by event to name the
/// first one out of range.
pub(crate) fn pack_input(input: &InputBatch, n_in: usize) -> Result<PackedInput, HostError> {
    if input.n_in() > n_in {
        let events = |b, t| input.events(b, t);
        return PackedInput::pack(input.n_batch(), input.n_steps(), n_in, events).map_err(gpu_err);
    }
    let (offsets, channels, values) = input.csr();
    Ok(PackedInput {
        n_batch: input.n_batch(),
        n_steps: input.n_steps(),
        offsets: offsets.to_vec(),
        channels: channels.iter().map(|&c| u32::from(c)).collect(),
        values: values.to_vec(),
    })
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

/// A batch's input events and loss terms in the device's layout.
pub(crate) struct PackedBatch {
    input: PackedInput,
    terms: PackedTerms,
}

impl PackedBatch {
    pub(crate) fn new(
        input: &InputBatch,
        terms: &[Vec<LossTerm<f32>>],
        n_in: usize,
        n_out: usize,
    ) -> Result<PackedBatch, HostError> {
        Ok(PackedBatch {
            input: pack_input(input, n_in)?,
            terms: pack_terms(terms, input.n_steps(), n_out)?,
        })
    }

    /// Queues the events' copy into `trainer`'s input buffers behind the work on its
    /// stream; false (nothing queued) when the batch's shape differs from the current one,
    /// which then needs a whole `set_batch`.
    pub(crate) fn queue_input(&self, trainer: &mut GpuTrainer) -> Result<bool, HostError> {
        if !trainer.holds_batch_shape(self.input.n_batch, self.input.n_steps, self.terms.len()) {
            return Ok(false);
        }
        trainer.stage_input(&self.input).map_err(gpu_err)?;
        Ok(true)
    }

    /// Whether this is (as far as cheap checks tell) the step's batch: its shape and event
    /// count, and exactly its loss terms (the labels).
    fn check(&self, step: &TrainStep<'_>, n_out: usize) -> Result<(), HostError> {
        let input = step.input;
        let same = self.input.n_batch == input.n_batch()
            && self.input.n_steps == input.n_steps()
            && self.input.n_events() == input.n_events()
            && self.terms == pack_terms(class_terms(step.target)?, input.n_steps(), n_out)?;
        if same {
            Ok(())
        } else {
            Err(HostError::Network(format!(
                "iteration {}: the staged batch is not the step's batch",
                step.iteration
            )))
        }
    }
}

/// The network of `slot`, (re)built when the step's network is another; an error if the
/// device holds steps the host does not have yet.
fn network<'a>(
    slot: &'a mut Option<Box<GpuNetwork>>,
    step: &TrainStep<'_>,
    weights: &Weights<f32>,
    optimizer: &Optimizer,
) -> Result<&'a mut GpuNetwork, HostError> {
    if let Some(g) = slot.as_ref() {
        if !g.fits(step.spec, weights) {
            if g.ahead > 0 {
                return Err(g.diverged());
            }
            *slot = None;
        }
    }
    let g = match slot {
        Some(g) => g,
        None => slot.insert(Box::new(GpuNetwork::new(step.spec, weights, optimizer)?)),
    };
    g.sync_in(weights, optimizer)?;
    Ok(g)
}

/// What a staged batch holds on the GPU: the batch packed, and the network whose input buffers
/// already hold (or will, in stream order) its events, queued during the previous step.
struct StagedBatch {
    packed: PackedBatch,
    queued_on: Option<u64>,
}

/// Stages batches into a network's input buffers while its step runs.
struct CudaStager<'a> {
    trainer: &'a mut GpuTrainer,
    /// The network's id, input channels and outputs.
    id: u64,
    n_in: usize,
    n_out: usize,
}

impl Stager for CudaStager<'_> {
    fn stage(&mut self, input: &InputBatch, target: &Target) -> Result<Staged, HostError> {
        let packed = PackedBatch::new(input, class_terms(target)?, self.n_in, self.n_out)?;
        let queued_on = packed.queue_input(self.trainer)?.then_some(self.id);
        Ok(Staged::of(StagedBatch { packed, queued_on }))
    }
}

/// The GPU as an [`Engine`]: the network, uploaded at the first step, stays on the device.
#[derive(Default)]
pub struct CudaEngine {
    network: Option<Box<GpuNetwork>>,
}

impl CudaEngine {
    /// An engine; the network is uploaded at the first step.
    pub fn new() -> Self {
        CudaEngine::default()
    }
}

impl Engine for CudaEngine {
    fn step(
        &mut self,
        step: &TrainStep<'_>,
        weights: &mut Weights<f32>,
        optimizer: &mut Optimizer,
        rng: &mut ChaCha8Rng,
        states: States<'_>,
        overlap: Overlap<'_>,
    ) -> Stepped {
        let network = &mut self.network;
        run_step(
            network, step, weights, optimizer, rng, states, overlap, None,
        )
    }

    fn sync_to_host(
        &mut self,
        weights: &mut Weights<f32>,
        optimizer: &mut Optimizer,
    ) -> Result<(), HostError> {
        sync_network(&mut self.network, weights, optimizer)
    }
}

/// Test support ([`super::faults`]): the GPU engine with an entry of the gradient of `w_rec`
/// made NaN at iteration `at`, to prove the guard.
pub(super) struct NanGradientCuda {
    network: Option<Box<GpuNetwork>>,
    at: usize,
}

impl NanGradientCuda {
    pub(super) fn new(at: usize) -> Self {
        NanGradientCuda { network: None, at }
    }
}

impl Engine for NanGradientCuda {
    fn step(
        &mut self,
        step: &TrainStep<'_>,
        weights: &mut Weights<f32>,
        optimizer: &mut Optimizer,
        rng: &mut ChaCha8Rng,
        states: States<'_>,
        overlap: Overlap<'_>,
    ) -> Stepped {
        let (network, at) = (&mut self.network, Some(self.at));
        run_step(network, step, weights, optimizer, rng, states, overlap, at)
    }

    fn sync_to_host(
        &mut self,
        weights: &mut Weights<f32>,
        optimizer: &mut Optimizer,
    ) -> Result<(), HostError> {
        sync_network(&mut self.network, weights, optimizer)
    }
}

fn sync_network(
    slot: &mut Option<Box<GpuNetwork>>,
    weights: &mut Weights<f32>,
    optimizer: &mut Optimizer,
) -> Result<(), HostError> {
    match slot {
        Some(g) => g.sync_to_host(weights, optimizer),
        None => Ok(()),
    }
}

/// One step on the network of `slot`: launch, the overlap work while the device computes,
/// finish.
#[allow(clippy::too_many_arguments)]
fn run_step<R: rand::Rng>(
    slot: &mut Option<Box<GpuNetwork>>,
    step: &TrainStep<'_>,
    weights: &mut Weights<f32>,
    optimizer: &mut Optimizer,
    rng: &mut R,
    states: States<'_>,
    overlap: &mut dyn FnMut(&mut R, &mut dyn Stager) -> Result<(), HostError>,
    nan_gradient_at: Option<usize>,
) -> Stepped {
    let t0 = Instant::now();
    let launched = network(slot, step, weights, optimizer).and_then(|g| {
        g.launch(step, optimizer, rng, &states, nan_gradient_at)
            .map(|()| g)
    });
    let g = match launched {
        Ok(g) => g,
        Err(result) => {
            return Stepped {
                result: Err(result),
                overlap: None,
                seconds: t0.elapsed().as_secs_f64(),
            }
        }
    };
    let t1 = Instant::now();
    let (id, n_in, n_out) = (g.id, g.spec.n_in(), g.n_out);
    let mut stager = CudaStager {
        trainer: &mut g.trainer,
        id,
        n_in,
        n_out,
    };
    let overlapped = overlap(rng, &mut stager);
    let overlap_time = t1.elapsed();
    let result = g.finish(step, optimizer, states);
    Stepped {
        result,
        overlap: Some(overlapped),
        seconds: step_seconds(t0, overlap_time),
    }
}

/// Wall-clock seconds from `t0`, less the overlap work's.
fn step_seconds(t0: Instant, overlap: Duration) -> f64 {
    t0.elapsed().saturating_sub(overlap).as_secs_f64()
}

thread_local! {
    /// The network of [`super::train_step_on`]'s calls on this thread (rebuilt when the
    /// network changes; parameters re-uploaded when the host's differ from the device's).
    static NETWORK: RefCell<Option<Box<GpuNetwork>>> = const { RefCell::new(None) };
}

/// [`super::train_step_on`] on the GPU: a step, then the host brought up to date.
pub(super) fn eager_step<R: rand::Rng>(
    train: &TrainStep<'_>,
    weights: &mut Weights<f32>,
    optimizer: &mut Optimizer,
    rng: &mut R,
    states: &mut [HostState<f32>],
) -> Result<PassResult<f32>, HostError> {
    NETWORK.with(|cell| {
        let mut slot = cell.borrow_mut();
        let stepped = run_step(
            &mut slot,
            train,
            weights,
            optimizer,
            rng,
            States::Carried(states),
            &mut |_, _| Ok(()),
            None,
        );
        let synced = sync_network(&mut slot, weights, optimizer);
        let result = stepped.result?;
        synced.map(|()| result)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The copied CSR is what packing event by event gives.
    #[test]
    fn the_input_copy_equals_the_event_by_event_packing() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let input = crate::input::random_spikes(&mut rng, 5, 40, 7, 0.1).unwrap();
        assert!(input.n_events() > 0);
        let events = |b, t| input.events(b, t);
        let slow = PackedInput::pack(5, 40, 7, events).unwrap();
        assert_eq!(pack_input(&input, 7).unwrap(), slow);
        assert_eq!(pack_input(&input, 9).unwrap(), slow);
        assert!(pack_input(&input, 3).is_err());
    }
}
