//! One forward(+backward) pass over a batch, parallel over its elements with rayon.

use lsnn_core::{CellState, CurrentNoise, Real};
use ndarray::{Array1, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::bptt::{
    backward_element, cross_entropy, forward_element, readout_element, BackwardContext,
    ElementGrads, HostState, LossSeeds, LossTerm, ReadoutPass, ReadoutView, Trace, TrainCell,
};
use super::network::{Params, Spec};
use crate::error::HostError;
use crate::input::InputBatch;

/// Batch elements whose gradients are computed in parallel (one buffer each) before they are
/// added to the total in order.
const REDUCE_WAVE: usize = 32;

/// The firing-rate regulariser `sum_j coeff_j (rate_j - target)^2`, rates in spikes per ms.
#[derive(Clone, Debug, PartialEq)]
pub struct RateRegulariser<F> {
    /// Coefficient per neuron (the tutorials use `reg` everywhere).
    pub coeff: Vec<F>,
    /// Target rate in spikes per ms (`reg_rate / 1000`).
    pub target: F,
}

impl<F: Real> RateRegulariser<F> {
    /// The tutorials' regulariser: coefficient `reg` for each of `n` neurons, target `rate_hz`.
    pub fn uniform(n: usize, reg: f64, rate_hz: f64) -> Self {
        RateRegulariser {
            coeff: vec![F::of(reg); n],
            target: F::of(rate_hz / 1000.0),
        }
    }
}

/// What to compute besides the loss.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassOptions<'a, F> {
    /// Compute gradients.
    pub gradients: bool,
    /// Keep the traces (spikes, v, b) in the result, for plots and checks.
    pub keep_traces: bool,
    /// Seed of the current noise (used only when the cell injects noise).
    pub noise_seed: u64,
    /// Optional linear loss `[T, N]` seeds on z and v (fixtures).
    pub linear: Option<(ArrayView2<'a, F>, ArrayView2<'a, F>)>,
}

/// The outcome of a pass.
#[derive(Clone, Debug)]
pub struct PassResult<F> {
    /// Total loss (cross-entropy terms + regulariser + linear terms).
    pub loss: F,
    /// The cross-entropy part.
    pub loss_ce: F,
    /// The regulariser part.
    pub loss_reg: F,
    /// Firing rate of every neuron, spikes per ms (mean of z / dt over batch and time).
    pub rates: Vec<F>,
    /// Logits per element, per loss term.
    pub logits: Vec<Vec<Vec<F>>>,
    /// dL/d(params), when asked for.
    pub grads: Option<Params<F>>,
    /// The traces, when asked for.
    pub traces: Option<Vec<Trace<F>>>,
}

/// Zero initial states for a batch.
pub fn zero_states<F: Real>(spec: &Spec<F>, n_batch: usize) -> Vec<HostState<F>> {
    let (n, d) = (spec.n_rec(), spec.config.n_delay);
    (0..n_batch)
        .map(|_| {
            CellState::new(
                vec![F::zero(); HostState::<F>::float_len(n, d)],
                vec![0; n],
                n,
                d,
            )
            .expect("sized from the spec")
        })
        .collect()
}

struct Gaussian(ChaCha8Rng);

impl<F: Real> CurrentNoise<F> for Gaussian {
    fn standard_normal(&mut self) -> F {
        F::of(StandardNormal.sample(&mut self.0))
    }
}

/// Runs `input` through the network from `states` (left at the final states), evaluates the
/// loss terms of every element and the regulariser, and optionally back-propagates.
pub fn run_pass<F: Real>(
    spec: &Spec<F>,
    params: &Params<F>,
    input: &InputBatch,
    states: &mut [HostState<F>],
    terms: &[Vec<LossTerm<F>>],
    reg: Option<&RateRegulariser<F>>,
    opts: PassOptions<'_, F>,
) -> Result<PassResult<F>, HostError> {
    spec.check(params)?;
    check_batch(spec, params, input, states, terms, reg)?;
    let neurons = spec.neurons()?;
    let (w_in, w_rec) = params.synapses(spec)?;
    let cell = TrainCell::new(spec.config, &neurons, w_in.view(), w_rec.view())
        .map_err(|e| HostError::Network(e.to_string()))?;
    let readout = ReadoutView {
        w_out: params.w_out.view(),
        b_out: params.b_out.as_ref().and_then(|b| b.as_slice()),
        decay: (-spec.config.dt / spec.tau_out).exp(),
    };

    let passes: Vec<(Trace<F>, ReadoutPass<F>)> = states
        .par_iter_mut()
        .enumerate()
        .map(|(b, state)| {
            let mut noise = Gaussian(ChaCha8Rng::seed_from_u64(
                opts.noise_seed ^ (b as u64) << 32,
            ));
            let trace = forward_element(&cell, input, b, state, &mut noise)?;
            let pass = readout_element(&trace, &readout, &terms[b]);
            Ok((trace, pass))
        })
        .collect::<Result<_, HostError>>()?;

    let n_batch = input.n_batch();
    let denom = F::of((n_batch * input.n_steps()) as f64) * spec.config.dt;
    let mut rates = vec![F::zero(); spec.n_rec()];
    for (trace, _) in &passes {
        for (r, s) in rates.iter_mut().zip(trace.z_sums()) {
            *r = *r + s;
        }
    }
    for r in &mut rates {
        *r = *r / denom;
    }

    let mut loss_ce = F::zero();
    let mut term_grads = Vec::with_capacity(n_batch);
    for ((_, pass), element_terms) in passes.iter().zip(terms) {
        let mut grads = Vec::with_capacity(element_terms.len());
        for (term, logits) in element_terms.iter().zip(&pass.logits) {
            let (ce, dlogits) = cross_entropy(logits, term.target);
            loss_ce = loss_ce + term.weight * ce;
            grads.push((
                *term,
                dlogits.into_iter().map(|g| g * term.weight).collect(),
            ));
        }
        term_grads.push(grads);
    }
    let (loss_reg, reg_grad) = match reg {
        Some(reg) => regulariser(reg, &rates, denom),
        None => (F::zero(), vec![F::zero(); spec.n_rec()]),
    };
    let loss_linear = linear_loss(&passes, opts.linear);

    let grads = if opts.gradients {
        let ctx = BackwardContext {
            neurons: &neurons,
            consts: *cell.consts(),
            w_rec: w_rec.view(),
            delay_in: spec.delay_in.view(),
            delay_rec: spec.delay_rec.view(),
            n_delay: spec.config.n_delay,
            readout,
        };
        let (n_in, n, n_out) = (spec.n_in(), spec.n_rec(), params.n_out());
        // Each element's gradient from zero, then summed in element order (0 + g_0 + g_1 + ...):
        // the same bits whatever the number of threads, and the GPU's reduction exactly.
        let mut total = ElementGrads::zeros(n_in, n, n_out);
        let mut wave: Vec<ElementGrads<F>> = Vec::new();
        for (w, (passes, term_grads)) in passes
            .chunks(REDUCE_WAVE)
            .zip(term_grads.chunks(REDUCE_WAVE))
            .enumerate()
        {
            wave.resize_with(passes.len(), || ElementGrads::zeros(n_in, n, n_out));
            wave.par_iter_mut()
                .zip(passes.par_iter().zip(term_grads))
                .enumerate()
                .for_each(|(k, (acc, ((trace, pass), tg)))| {
                    acc.fill_zero();
                    let seeds = LossSeeds {
                        term_grads: tg.clone(),
                        z_every_step: reg.map(|_| reg_grad.as_slice()),
                        linear: opts.linear.as_ref().map(|(a, b)| (a.view(), b.view())),
                    };
                    let b = w * REDUCE_WAVE + k;
                    backward_element(&ctx, trace, input, b, pass, &seeds, acc);
                });
            for g in &wave {
                total.accumulate(g);
            }
        }
        Some(to_param_grads(spec, params, total))
    } else {
        None
    };

    let logits = passes.iter().map(|(_, p)| p.logits.clone()).collect();
    Ok(PassResult {
        loss: loss_ce + loss_reg + loss_linear,
        loss_ce,
        loss_reg,
        rates,
        logits,
        grads,
        traces: opts
            .keep_traces
            .then(|| passes.into_iter().map(|(t, _)| t).collect()),
    })
}

fn regulariser<F: Real>(reg: &RateRegulariser<F>, rates: &[F], denom: F) -> (F, Vec<F>) {
    let two = F::of(2.0);
    let mut loss = F::zero();
    let grad = rates
        .iter()
        .zip(&reg.coeff)
        .map(|(&r, &c)| {
            let diff = r - reg.target;
            loss = loss + c * diff * diff;
            two * c * diff / denom
        })
        .collect();
    (loss, grad)
}

fn linear_loss<F: Real>(
    passes: &[(Trace<F>, ReadoutPass<F>)],
    linear: Option<(ArrayView2<'_, F>, ArrayView2<'_, F>)>,
) -> F {
    let Some((c_z, c_v)) = linear else {
        return F::zero();
    };
    let mut loss = F::zero();
    for (trace, _) in passes {
        for t in 0..trace.steps() {
            for (j, z) in trace.spikes(t + 1) {
                loss = loss + c_z[[t, j]] * z;
            }
            for (j, &v) in trace.v(t + 1).iter().enumerate() {
                loss = loss + c_v[[t, j]] * v;
            }
        }
    }
    loss
}

fn to_param_grads<F: Real>(spec: &Spec<F>, params: &Params<F>, g: ElementGrads<F>) -> Params<F> {
    let v0 = spec.config.v0;
    let mut w_rec = g.w_rec.mapv(|x| x * v0);
    w_rec.diag_mut().fill(F::zero());
    Params {
        w_in: g.w_in.mapv(|x| x * v0),
        w_rec,
        w_out: g.w_out,
        b_out: params.b_out.as_ref().map(|_| Array1::from(g.b_out)),
    }
}

fn check_batch<F: Real>(
    spec: &Spec<F>,
    params: &Params<F>,
    input: &InputBatch,
    states: &[HostState<F>],
    terms: &[Vec<LossTerm<F>>],
    reg: Option<&RateRegulariser<F>>,
) -> Result<(), HostError> {
    let bad = |m: String| Err(HostError::Network(m));
    if input.n_in() != spec.n_in() {
        return bad(format!(
            "input has {} channels, the network {}",
            input.n_in(),
            spec.n_in()
        ));
    }
    if states.len() != input.n_batch() || terms.len() != input.n_batch() {
        return bad(format!(
            "batch of {} elements needs as many states (got {}) and loss-term lists (got {})",
            input.n_batch(),
            states.len(),
            terms.len()
        ));
    }
    if states
        .iter()
        .any(|s| s.n_rec() != spec.n_rec() || s.n_delay() != spec.config.n_delay)
    {
        return bad("a state does not match the network's n_rec / n_delay".into());
    }
    for term in terms.iter().flatten() {
        if term.start >= term.end || term.end > input.n_steps() || term.target >= params.n_out() {
            return bad(format!(
                "loss window {}..{} with target {} does not fit T = {} and n_out = {}",
                term.start,
                term.end,
                term.target,
                input.n_steps(),
                params.n_out()
            ));
        }
    }
    if let Some(reg) = reg {
        if reg.coeff.len() != spec.n_rec() {
            return bad("the regulariser needs one coefficient per neuron".into());
        }
    }
    Ok(())
}
