//! Forward with a compact trace, the readout loss, and exact BPTT, for one batch element;
//! [`crate::train::batch`] runs them over a batch in parallel.
//!
//! The forward IS the core's event-driven [`Cell`]; the backward calls the core's
//! [`neuron_step_backward`] per neuron and adds what crosses neurons: the recurrent synapses,
//! the delays, the readout and the weight gradients, all driven by spike events.

use lsnn_core::{
    neuron_step_backward, pseudo_derivative, Cell, CellState, CsrRef, CurrentNoise, Neuron,
    NeuronGrad, NeuronState, Real, StepConsts, Synapses,
};
use ndarray::{Array2, ArrayView2};

use crate::error::HostError;
use crate::input::InputBatch;

/// The cell the trainers run: the core's cell over borrowed sparse synapses.
pub type TrainCell<'a, F> = Cell<'a, F, CsrRef<'a, F>, CsrRef<'a, F>>;

/// A cell state in `Vec`s (host side).
pub type HostState<F> = CellState<F, Vec<F>, Vec<u16>>;

/// What the backward pass needs from the forward, compactly: `v` and `b` before every step
/// and after the last one, the spikes as index lists, refractoriness as bits.
#[derive(Clone, Debug)]
pub struct Trace<F> {
    n: usize,
    steps: usize,
    /// `v[i * n + j]`: voltage of neuron j before step i (i = 0..=T).
    v: Vec<F>,
    /// Same for the adaptation variable b.
    b: Vec<F>,
    /// Spikes present before step i are `spike_ids[spike_offsets[i]..spike_offsets[i + 1]]`.
    spike_offsets: Vec<u32>,
    spike_ids: Vec<u16>,
    spike_vals: Vec<F>,
    /// Bit `i * n + j`: neuron j was refractory during step i.
    refractory: Vec<u64>,
}

impl<F: Real> Trace<F> {
    fn new(n: usize, steps: usize) -> Self {
        Trace {
            n,
            steps,
            v: Vec::with_capacity((steps + 1) * n),
            b: Vec::with_capacity((steps + 1) * n),
            spike_offsets: vec![0],
            spike_ids: Vec::new(),
            spike_vals: Vec::new(),
            refractory: vec![0; (steps * n).div_ceil(64)],
        }
    }

    fn record_state(&mut self, state: &HostState<F>) {
        self.v.extend_from_slice(state.v());
        self.b.extend_from_slice(state.b());
        for (j, &z) in state.z().iter().enumerate() {
            if z != F::zero() {
                self.spike_ids.push(j as u16);
                self.spike_vals.push(z);
            }
        }
        self.spike_offsets.push(self.spike_ids.len() as u32);
    }

    fn record_refractory(&mut self, step: usize, state: &HostState<F>) {
        for (j, &left) in state.refractory_left().iter().enumerate() {
            if left > 0 {
                let bit = step * self.n + j;
                self.refractory[bit / 64] |= 1 << (bit % 64);
            }
        }
    }

    /// Number of steps T.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Voltages before step i (i = T: after the last step).
    pub fn v(&self, i: usize) -> &[F] {
        &self.v[i * self.n..(i + 1) * self.n]
    }

    /// Adaptation variables before step i.
    pub fn b(&self, i: usize) -> &[F] {
        &self.b[i * self.n..(i + 1) * self.n]
    }

    /// Spikes `(neuron, value)` present before step i, i.e. the output of step i - 1.
    pub fn spikes(&self, i: usize) -> impl Iterator<Item = (usize, F)> + '_ {
        let r = self.spike_offsets[i] as usize..self.spike_offsets[i + 1] as usize;
        self.spike_ids[r.clone()]
            .iter()
            .zip(&self.spike_vals[r])
            .map(|(&j, &z)| (usize::from(j), z))
    }

    /// Whether neuron j was refractory during step i.
    pub fn is_refractory(&self, i: usize, j: usize) -> bool {
        let bit = i * self.n + j;
        self.refractory[bit / 64] >> (bit % 64) & 1 == 1
    }

    /// Sum over the T steps of each neuron's output z (excluding the initial state).
    pub fn z_sums(&self) -> Vec<F> {
        let mut sums = vec![F::zero(); self.n];
        for i in 1..=self.steps {
            for (j, z) in self.spikes(i) {
                sums[j] = sums[j] + z;
            }
        }
        sums
    }

    /// Spike outputs `[T, N]` as dense values (for plots and checks).
    pub fn z_dense(&self) -> Array2<F> {
        let mut z = Array2::zeros((self.steps, self.n));
        for t in 0..self.steps {
            for (j, v) in self.spikes(t + 1) {
                z[[t, j]] = v;
            }
        }
        z
    }
}

/// Runs element `b` of `input` through `cell` from `state` (left at the final state) and
/// records the trace.
pub fn forward_element<F: Real, N: CurrentNoise<F>>(
    cell: &TrainCell<'_, F>,
    input: &InputBatch,
    b: usize,
    state: &mut HostState<F>,
    noise: &mut N,
) -> Result<Trace<F>, HostError> {
    let steps = input.n_steps();
    let mut trace = Trace::new(cell.n_rec(), steps);
    trace.record_state(state);
    for t in 0..steps {
        trace.record_refractory(t, state);
        let events = input.events(b, t).map(|(c, x)| (c, F::of(f64::from(x))));
        cell.step_events(state, events, noise)
            .map_err(|e| HostError::Network(format!("step {t} of batch element {b}: {e}")))?;
        trace.record_state(state);
    }
    Ok(trace)
}

/// One cross-entropy term of the loss: the logits are the mean readout over steps
/// `start..end`, the target a class, the term weighted by `weight`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossTerm<F> {
    /// First step of the window.
    pub start: usize,
    /// One past the last step.
    pub end: usize,
    /// Target class.
    pub target: usize,
    /// Weight of this term in the total loss (1/B for a batch mean).
    pub weight: F,
}

/// The readout `out = exp_convolve(z) @ w_out + b_out` over the windows of the loss terms.
#[derive(Clone, Copy, Debug)]
pub struct ReadoutView<'a, F> {
    /// `[N, O]`.
    pub w_out: ArrayView2<'a, F>,
    /// `[O]`.
    pub b_out: Option<&'a [F]>,
    /// `exp(-dt / tau_out)`.
    pub decay: F,
}

/// The readout's result on one element: per loss term, its logits and the sum of the filtered
/// spikes over its window (enough for the gradient of w_out without storing the filter).
#[derive(Clone, Debug)]
pub struct ReadoutPass<F> {
    /// Logits per term.
    pub logits: Vec<Vec<F>>,
    /// `sum_{t in window} psp_t` per term, `[N]` each.
    pub psp_sums: Vec<Vec<F>>,
}

/// Filters the spikes forward and evaluates the logits of every term.
pub fn readout_element<F: Real>(
    trace: &Trace<F>,
    readout: &ReadoutView<'_, F>,
    terms: &[LossTerm<F>],
) -> ReadoutPass<F> {
    let n = trace.n;
    let n_out = readout.w_out.ncols();
    let mut psp = vec![F::zero(); n];
    let mut psp_sums = vec![vec![F::zero(); n]; terms.len()];
    let gain = F::one() - readout.decay;
    let last = terms.iter().map(|term| term.end).max().unwrap_or(0);
    let mut z = vec![F::zero(); n];
    for t in 0..last {
        for (j, v) in trace.spikes(t + 1) {
            z[j] = v;
        }
        for (p, &zj) in psp.iter_mut().zip(&z) {
            *p = *p * readout.decay + gain * zj;
        }
        for (j, _) in trace.spikes(t + 1) {
            z[j] = F::zero();
        }
        for (term, sum) in terms.iter().zip(&mut psp_sums) {
            if (term.start..term.end).contains(&t) {
                for (s, &p) in sum.iter_mut().zip(&psp) {
                    *s = *s + p;
                }
            }
        }
    }
    let logits = terms
        .iter()
        .zip(&psp_sums)
        .map(|(term, sum)| {
            let len = F::of((term.end - term.start) as f64);
            (0..n_out)
                .map(|o| {
                    let dot = sum
                        .iter()
                        .enumerate()
                        .fold(F::zero(), |acc, (j, &s)| acc + s * readout.w_out[[j, o]]);
                    dot / len + readout.b_out.map_or(F::zero(), |b| b[o])
                })
                .collect()
        })
        .collect();
    ReadoutPass { logits, psp_sums }
}

/// Softmax cross-entropy of `logits` against `target` and its gradient w.r.t. the logits.
pub fn cross_entropy<F: Real>(logits: &[F], target: usize) -> (F, Vec<F>) {
    let max = logits.iter().fold(F::neg_infinity(), |m, &x| m.max(x));
    let exps: Vec<F> = logits.iter().map(|&x| softmax_exp(x - max)).collect();
    let total = exps.iter().fold(F::zero(), |a, &x| a + x);
    let loss = softmax_ln(total) - (logits[target] - max);
    let grad = exps
        .iter()
        .enumerate()
        .map(|(o, &e)| e / total - if o == target { F::one() } else { F::zero() })
        .collect();
    (loss, grad)
}

/// `exp` evaluated in f64 and rounded to `F`: the GPU's loss kernel does the same, so dL/dlogits
/// are bit-identical on both (two f32 `exp` implementations differ in the last bit).
pub fn softmax_exp<F: Real>(x: F) -> F {
    F::of(x.to_f64().exp())
}

/// `ln` evaluated in f64 and rounded to `F`, as [`softmax_exp`]: the GPU's loss kernel does the
/// same, so the losses are bit-identical on both (`logf` differs between implementations too).
pub fn softmax_ln<F: Real>(x: F) -> F {
    F::of(x.to_f64().ln())
}

/// Adjoint seeds of the loss for one element of the batch.
#[derive(Clone, Debug, Default)]
pub struct LossSeeds<'a, F> {
    /// Per term: dL/dlogits (weight included).
    pub term_grads: Vec<(LossTerm<F>, Vec<F>)>,
    /// dL/dz added at every step, per neuron (the rate regulariser).
    pub z_every_step: Option<&'a [F]>,
    /// `[T, N]` direct adjoints of the outputs z and v (the fixtures' linear loss).
    pub linear: Option<(ArrayView2<'a, F>, ArrayView2<'a, F>)>,
}

/// Everything the backward pass reads besides the trace.
pub struct BackwardContext<'a, F> {
    /// The per-neuron constants.
    pub neurons: &'a [Neuron<F>],
    /// The per-step constants.
    pub consts: StepConsts<F>,
    /// Effective recurrent synapses (the forward's).
    pub w_rec: CsrRef<'a, F>,
    /// Delay of every input synapse `[I, N]`.
    pub delay_in: ArrayView2<'a, u8>,
    /// Delay of every recurrent synapse `[N, N]`.
    pub delay_rec: ArrayView2<'a, u8>,
    /// Number of delay slots.
    pub n_delay: usize,
    /// The readout.
    pub readout: ReadoutView<'a, F>,
}

/// Gradients of one element w.r.t. the EFFECTIVE weights (V0 applied) of the input and
/// recurrent synapses, every entry (connected or not), and w.r.t. the readout.
#[derive(Clone, Debug)]
pub struct ElementGrads<F> {
    /// `[I, N]`.
    pub w_in: Array2<F>,
    /// `[N, N]`.
    pub w_rec: Array2<F>,
    /// `[N, O]`.
    pub w_out: Array2<F>,
    /// `[O]`.
    pub b_out: Vec<F>,
}

impl<F: Real> ElementGrads<F> {
    /// Zeros for a network of these sizes.
    pub fn zeros(n_in: usize, n: usize, n_out: usize) -> Self {
        ElementGrads {
            w_in: Array2::zeros((n_in, n)),
            w_rec: Array2::zeros((n, n)),
            w_out: Array2::zeros((n, n_out)),
            b_out: vec![F::zero(); n_out],
        }
    }

    /// Sets every entry to zero.
    pub fn fill_zero(&mut self) {
        self.w_in.fill(F::zero());
        self.w_rec.fill(F::zero());
        self.w_out.fill(F::zero());
        self.b_out.fill(F::zero());
    }

    /// `self += other`.
    pub fn accumulate(&mut self, other: &ElementGrads<F>) {
        self.w_in.zip_mut_with(&other.w_in, |a, &b| *a = *a + b);
        self.w_rec.zip_mut_with(&other.w_rec, |a, &b| *a = *a + b);
        self.w_out.zip_mut_with(&other.w_out, |a, &b| *a = *a + b);
        for (a, &b) in self.b_out.iter_mut().zip(&other.b_out) {
            *a = *a + b;
        }
    }
}

/// Reverse-mode pass over one element, accumulating into `grads`.
pub fn backward_element<F: Real>(
    ctx: &BackwardContext<'_, F>,
    trace: &Trace<F>,
    input: &InputBatch,
    b: usize,
    readout_pass: &ReadoutPass<F>,
    seeds: &LossSeeds<'_, F>,
    grads: &mut ElementGrads<F>,
) {
    let n = trace.n;
    let steps = trace.steps;
    let d_slots = ctx.n_delay;
    let n_out = ctx.readout.w_out.ncols();

    // Readout: dL/dw_out, dL/db_out, and per term dL/dpsp_t = w_out . dlogits / len.
    let mut term_psp_grads = Vec::with_capacity(seeds.term_grads.len());
    for ((term, dlogits), sum) in seeds.term_grads.iter().zip(&readout_pass.psp_sums) {
        let len = F::of((term.end - term.start) as f64);
        for (g, &dl) in grads.b_out.iter_mut().zip(dlogits) {
            *g = *g + dl;
        }
        for (mut row, &s) in grads.w_out.rows_mut().into_iter().zip(sum) {
            for (g, &dl) in row.iter_mut().zip(dlogits) {
                *g = *g + s * dl / len;
            }
        }
        let g_psp: Vec<F> = (0..n)
            .map(|j| {
                (0..n_out).fold(F::zero(), |acc, o| {
                    acc + ctx.readout.w_out[[j, o]] * dlogits[o]
                }) / len
            })
            .collect();
        term_psp_grads.push((*term, g_psp));
    }

    let decay_out = ctx.readout.decay;
    let gain_out = F::one() - decay_out;
    let mut g_psp_carry = vec![F::zero(); n];
    // Adjoints of the state produced by the step being processed.
    let mut g_v = vec![F::zero(); n];
    let mut g_z = vec![F::zero(); n];
    let mut g_b = vec![F::zero(); n];
    // dL/dz from the recurrent synapses, for the z that the next-processed step produced.
    let mut g_z_rec = vec![F::zero(); n];
    // Ring of dL/di_t for the last D steps processed: slot t % D holds step t; one more row of
    // zeros stands for steps past the end.
    let mut g_i = vec![F::zero(); (d_slots + 1) * n];
    let mut arrival = vec![0usize; d_slots];
    let mut z_prev = vec![F::zero(); n];

    for t in (0..steps).rev() {
        // 1. Adjoints of the outputs of step t.
        for (term, g_psp) in &term_psp_grads {
            if (term.start..term.end).contains(&t) {
                for (c, &g) in g_psp_carry.iter_mut().zip(g_psp) {
                    *c = *c + g;
                }
            }
        }
        for j in 0..n {
            g_z[j] = g_z[j] + g_z_rec[j] + gain_out * g_psp_carry[j];
            g_psp_carry[j] = g_psp_carry[j] * decay_out;
        }
        if let Some(every) = seeds.z_every_step {
            for (g, &s) in g_z.iter_mut().zip(every) {
                *g = *g + s;
            }
        }
        if let Some((c_z, c_v)) = &seeds.linear {
            for j in 0..n {
                g_z[j] = g_z[j] + c_z[[t, j]];
                g_v[j] = g_v[j] + c_v[[t, j]];
            }
        }

        // 2. The neurons' own equations, backwards.
        for (j, zp) in trace.spikes(t) {
            z_prev[j] = zp;
        }
        let (v_before, b_before, b_after) = (trace.v(t), trace.b(t), trace.b(t + 1));
        let slot = t % d_slots;
        for j in 0..n {
            let prev = NeuronState {
                v: v_before[j],
                z: z_prev[j],
                b: b_before[j],
            };
            let out = NeuronGrad {
                v: g_v[j],
                z: g_z[j],
                b: g_b[j],
            };
            let back = neuron_step_backward(
                &ctx.neurons[j],
                &ctx.consts,
                prev,
                b_after[j],
                trace.is_refractory(t, j),
                out,
                F::zero(),
            );
            g_v[j] = back.prev.v;
            g_z[j] = back.prev.z;
            g_b[j] = back.prev.b;
            g_i[slot * n + j] = back.i_t;
        }

        // 3. Synapses: what was delivered at step t arrives at step t + d, whose dL/di sits
        // at `arrival[d] + j` (a row of zeros past the end of the sequence).
        for (d, at) in arrival.iter_mut().enumerate() {
            *at = if t + d < steps {
                ((t + d) % d_slots) * n
            } else {
                d_slots * n
            };
        }
        for (i, x) in input.events(b, t) {
            let x = F::of(f64::from(x));
            let delays = ctx.delay_in.row(i);
            let row = grads.w_in.row_mut(i).into_slice().expect("standard layout");
            for ((g, &d), j) in row.iter_mut().zip(delays).zip(0..) {
                *g = *g + x * g_i[arrival[usize::from(d)] + j];
            }
        }
        for (k, zk) in trace.spikes(t) {
            let delays = ctx.delay_rec.row(k);
            let row = grads
                .w_rec
                .row_mut(k)
                .into_slice()
                .expect("standard layout");
            for ((g, &d), j) in row.iter_mut().zip(delays).zip(0..) {
                *g = *g + zk * g_i[arrival[usize::from(d)] + j];
            }
        }
        // dL/dz_{t-1} through the recurrent synapses, only where it can matter: z_{t-1} only
        // acts through the pseudo-derivative of step t - 1.
        g_z_rec.fill(F::zero());
        if t > 0 {
            let (v_prev2, b_prev) = (trace.v(t - 1), trace.b(t));
            for k in 0..n {
                if trace.is_refractory(t - 1, k) {
                    continue;
                }
                let thr = ctx.neurons[k].threshold(b_prev[k], ctx.consts.v0);
                let v_scaled = (v_prev2[k] - thr) / thr;
                if pseudo_derivative(v_scaled, ctx.consts.dampening_factor) == F::zero() {
                    continue;
                }
                // Connected synapses, j ascending: lsnn-gpu's backward sums in this order too.
                let mut acc = F::zero();
                ctx.w_rec.for_each_outgoing(k, |j, d, w| {
                    acc = acc + w * g_i[arrival[d] + j];
                });
                g_z_rec[k] = acc;
            }
        }
        for (j, _) in trace.spikes(t) {
            z_prev[j] = F::zero();
        }
    }
}
