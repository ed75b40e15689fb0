//! One forward(+backward) pass over a batch: groups of [`LANES`] elements side by side in SIMD
//! lanes ([`crate::train::lanes`]), the groups in parallel with rayon.

use lsnn_core::{CellState, CurrentNoise, Real};
use ndarray::{Array1, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::bptt::{logits, ElementGrads, HostState, LossSeeds, ReadoutView, Trace, TrainCell};
use super::lanes::{
    backward_group, csr_arrival_offsets, forward_group, AdjointWindow, BackwardContext, DelayMasks,
    ForwardContext, GroupInput, GroupReadout, GroupTrace, LaneNoise,
};
use super::simd::{Isa, SimdReal, LANES};
use crate::error::HostError;
use crate::input::InputBatch;
use crate::loss::{cross_entropy, LossTerm, Objective, RateRegulariser};
use crate::network::{Params, Spec};

/// What to compute besides the loss.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassOptions<'a, F> {
    /// The loss of the readout windows (`None`: the softmax cross-entropy of the loss terms,
    /// the tutorials'); the terms' targets and weights are then ignored.
    pub objective: Option<&'a dyn Objective<F>>,
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
    /// Total loss (readout loss + regulariser + linear terms).
    pub loss: F,
    /// The readout's loss: the cross-entropy terms, or the objective's loss.
    pub loss_ce: F,
    /// The regulariser part.
    pub loss_reg: F,
    /// Firing rate of every neuron, spikes per ms (mean of z / dt over batch and time).
    pub rates: Vec<F>,
    /// Logits (the readout's window means) per element, per loss term.
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

/// What a pass keeps from one iteration to the next: each group's events, trace and gradient
/// buffers, so that a training run allocates (and the kernel maps) them once.
#[derive(Debug, Default)]
pub struct Workspace<F> {
    groups: Vec<GroupWork<F>>,
    backward: Vec<BackwardSlot<F>>,
    isa: Isa,
}

impl<F> Workspace<F> {
    /// A workspace whose passes use only the portable lanes (the same results; for checks).
    pub fn portable() -> Self
    where
        F: Default,
    {
        Workspace {
            groups: Vec::new(),
            backward: Vec::new(),
            isa: Isa::Portable,
        }
    }
}

/// What a group's forward leaves for its backward.
#[derive(Debug, Default)]
struct GroupWork<F> {
    trace: GroupTrace<F>,
    readout: GroupReadout<F>,
}

/// What a group's backward works in.
#[derive(Debug, Default)]
struct BackwardSlot<F> {
    window: AdjointWindow<F>,
    grads: Vec<ElementGrads<F>>,
}

/// Runs `input` through the network from `states` (left at the final states), evaluates the
/// loss terms of every element and the regulariser, and optionally back-propagates.
pub fn run_pass<F: SimdReal>(
    spec: &Spec<F>,
    params: &Params<F>,
    input: &InputBatch,
    states: &mut [HostState<F>],
    terms: &[Vec<LossTerm<F>>],
    reg: Option<&RateRegulariser<F>>,
    opts: PassOptions<'_, F>,
) -> Result<PassResult<F>, HostError> {
    let mut workspace = Workspace::default();
    run_pass_in(
        &mut workspace,
        spec,
        params,
        input,
        states,
        terms,
        reg,
        opts,
    )
}

/// [`run_pass`] in the buffers of `workspace` (kept for the next pass).
#[allow(clippy::too_many_arguments)]
pub fn run_pass_in<F: SimdReal>(
    workspace: &mut Workspace<F>,
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
    // The core's cell validates the synapses and derives the step's constants.
    let cell = TrainCell::new(spec.config, &neurons, w_in.view(), w_rec.view())
        .map_err(|e| HostError::Network(e.to_string()))?;
    let readout = ReadoutView {
        w_out: params.w_out.view(),
        b_out: params.b_out.as_ref().and_then(|b| b.as_slice()),
        decay: (-spec.config.dt / spec.tau_out).exp(),
    };
    let steps = input.n_steps();
    let n_batch = input.n_batch();
    let groups = &mut workspace.groups;
    groups.resize_with(n_batch.div_ceil(LANES), GroupWork::default);
    let groups = &mut groups[..n_batch.div_ceil(LANES)];

    let arrive_in_csr = csr_arrival_offsets(w_in.view());
    let arrive_rec_csr = csr_arrival_offsets(w_rec.view());
    let forward = ForwardContext {
        neurons: &neurons,
        consts: *cell.consts(),
        n_delay: spec.config.n_delay,
        n_refractory: spec.config.n_refractory as u16,
        noise_std: spec.config.injected_noise_current,
        w_in: w_in.view(),
        w_rec: w_rec.view(),
        arrive_in: &arrive_in_csr,
        arrive_rec: &arrive_rec_csr,
        readout_decay: readout.decay,
        isa: workspace.isa,
        keep_all_b: opts.keep_traces,
    };
    groups
        .par_iter_mut()
        .zip(states.par_chunks_mut(LANES))
        .zip(terms.par_chunks(LANES))
        .enumerate()
        .for_each(|(g, ((work, states), terms))| {
            let first = g * LANES;
            let mut noise: Vec<Gaussian> = (0..states.len())
                .map(|l| {
                    let b = (first + l) as u64;
                    Gaussian(ChaCha8Rng::seed_from_u64(opts.noise_seed ^ b << 32))
                })
                .collect();
            work.readout = forward_group(
                &forward,
                GroupInput::new(input, first, states.len()),
                steps,
                states,
                terms,
                &mut LaneNoise { lanes: &mut noise },
                &mut work.trace,
            );
        });
    let elements = || {
        groups
            .iter()
            .flat_map(|work| work.readout.psp_sums.iter().zip(&work.readout.z_sums))
    };

    let denom = F::of((n_batch * steps) as f64) * spec.config.dt;
    let mut rates = vec![F::zero(); spec.n_rec()];
    for (_, z_sums) in elements() {
        for (r, &s) in rates.iter_mut().zip(z_sums) {
            *r = *r + s;
        }
    }
    for r in &mut rates {
        *r = *r / denom;
    }

    let logits: Vec<Vec<Vec<F>>> = elements()
        .zip(terms)
        .map(|((psp_sums, _), element_terms)| logits(&readout, element_terms, psp_sums))
        .collect();
    let (loss_ce, term_grads) = match opts.objective {
        None => classification(&logits, terms),
        Some(objective) => {
            let (loss, grads) = objective.evaluate(&logits)?;
            let term_grads = terms
                .iter()
                .zip(grads)
                .map(|(element_terms, g)| element_terms.iter().copied().zip(g).collect())
                .collect();
            (loss, term_grads)
        }
    };
    let (loss_reg, reg_grad) = match reg {
        Some(reg) => regulariser(reg, &rates, denom),
        None => (F::zero(), vec![F::zero(); spec.n_rec()]),
    };
    let spike = cell.consts().spike;
    let loss_linear = match opts.linear {
        Some((c_z, c_v)) => groups.iter().fold(F::zero(), |loss, work| {
            work.trace.linear_loss(loss, c_z, c_v, spike)
        }),
        None => F::zero(),
    };

    let grads = if opts.gradients {
        let backward = BackwardContext {
            neurons: &neurons,
            consts: *cell.consts(),
            w_rec: w_rec.view(),
            delays_in: DelayMasks::new(spec.delay_in.view(), spec.config.n_delay),
            delays_rec: DelayMasks::new(spec.delay_rec.view(), spec.config.n_delay),
            arrive_rec_csr: &arrive_rec_csr,
            n_delay: spec.config.n_delay,
            readout,
            isa: workspace.isa,
        };
        let (n_in, n, n_out) = (spec.n_in(), spec.n_rec(), params.n_out());
        // Each element's gradient from zero, then summed in element order (0 + g_0 + g_1 + ...):
        // the same bits whatever the number of threads, and the GPU's reduction exactly. The
        // groups go in waves, so that only a wave's gradients are held at a time.
        let wave = 2 * rayon::current_num_threads().max(1);
        let slots = &mut workspace.backward;
        slots.resize_with(wave.min(groups.len()), BackwardSlot::default);
        let mut total = ElementGrads::zeros(n_in, n, n_out);
        let waves = groups.chunks(wave).zip(term_grads.chunks(wave * LANES));
        for (groups, term_grads) in waves {
            slots
                .par_iter_mut()
                .zip(groups.par_iter().zip(term_grads.par_chunks(LANES)))
                .for_each(|(slot, (work, term_grads))| {
                    slot.grads
                        .resize_with(term_grads.len(), || ElementGrads::zeros(n_in, n, n_out));
                    for g in &mut slot.grads {
                        g.reset(n_in, n, n_out);
                    }
                    let seeds: Vec<LossSeeds<'_, F>> = term_grads
                        .iter()
                        .map(|tg| LossSeeds {
                            term_grads: tg.clone(),
                            z_every_step: reg.map(|_| reg_grad.as_slice()),
                            linear: opts.linear.as_ref().map(|(a, b)| (a.view(), b.view())),
                        })
                        .collect();
                    backward_group(
                        &backward,
                        &work.trace,
                        &work.readout.psp_sums,
                        &seeds,
                        &mut slot.window,
                        &mut slot.grads,
                    );
                });
            let parts: Vec<&ElementGrads<F>> = slots
                .iter()
                .take(groups.len())
                .flat_map(|slot| &slot.grads)
                .collect();
            total.add_in_order(&parts);
        }
        Some(to_param_grads(spec, params, total))
    } else {
        None
    };

    Ok(PassResult {
        loss: loss_ce + loss_reg + loss_linear,
        loss_ce,
        loss_reg,
        rates,
        logits,
        grads,
        traces: opts.keep_traces.then(|| {
            groups
                .iter()
                .flat_map(|work| {
                    let count = work.readout.z_sums.len();
                    (0..count).map(|l| work.trace.element(l, spike))
                })
                .collect()
        }),
    })
}

/// The softmax cross-entropy of every term (weighted) and its gradient w.r.t. the logits.
#[allow(clippy::type_complexity)]
fn classification<F: Real>(
    logits: &[Vec<Vec<F>>],
    terms: &[Vec<LossTerm<F>>],
) -> (F, Vec<Vec<(LossTerm<F>, Vec<F>)>>) {
    let mut loss_ce = F::zero();
    let mut term_grads = Vec::with_capacity(terms.len());
    for (element_logits, element_terms) in logits.iter().zip(terms) {
        let mut grads = Vec::with_capacity(element_terms.len());
        for (term, logits) in element_terms.iter().zip(element_logits) {
            let (ce, dlogits) = cross_entropy(logits, term.target);
            loss_ce = loss_ce + term.weight * ce;
            grads.push((
                *term,
                dlogits.into_iter().map(|g| g * term.weight).collect(),
            ));
        }
        term_grads.push(grads);
    }
    (loss_ce, term_grads)
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
