//! What a pass over one batch element is made of: its trace, the readout's loss terms and
//! their gradients, the gradients of the weights. [`crate::train::lanes`] computes them for
//! groups of elements side by side; [`crate::train::batch`] runs the groups over a batch.

use lsnn_core::{Cell, CellState, CsrRef, Real};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

pub use crate::loss::LossTerm;

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
    /// A trace from `v`, `b` (`[(T + 1) N]`), the spikes present before each step `i`
    /// (`T + 1` lists of `(neuron, value)`, neurons ascending) and, step by step and neuron by
    /// neuron, whether the neuron was refractory (`T N` flags).
    pub fn from_parts(
        n: usize,
        steps: usize,
        v: Vec<F>,
        b: Vec<F>,
        spikes: Vec<Vec<(u16, F)>>,
        refractory: impl Iterator<Item = bool>,
    ) -> Self {
        let mut bits = vec![0u64; (steps * n).div_ceil(64)];
        for (at, _) in refractory.enumerate().filter(|(_, r)| *r) {
            bits[at / 64] |= 1 << (at % 64);
        }
        let mut trace = Trace {
            n,
            steps,
            v,
            b,
            spike_offsets: vec![0],
            spike_ids: Vec::new(),
            spike_vals: Vec::new(),
            refractory: bits,
        };
        for list in spikes {
            for (j, z) in list {
                trace.spike_ids.push(j);
                trace.spike_vals.push(z);
            }
            trace.spike_offsets.push(trace.spike_ids.len() as u32);
        }
        trace
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

/// The logits of every loss term of one element: the mean readout over the term's window,
/// from `psp_sums` (per term, the filtered spikes summed over its window).
pub fn logits<F: Real>(
    readout: &ReadoutView<'_, F>,
    terms: &[LossTerm<F>],
    psp_sums: &[Vec<F>],
) -> Vec<Vec<F>> {
    let n_out = readout.w_out.ncols();
    terms
        .iter()
        .zip(psp_sums)
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
        .collect()
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

    /// Zeros for a network of these sizes, reusing the buffers where the sizes match.
    pub fn reset(&mut self, n_in: usize, n: usize, n_out: usize) {
        if self.w_in.dim() == (n_in, n) && self.w_out.dim() == (n, n_out) {
            self.fill_zero();
        } else {
            *self = ElementGrads::zeros(n_in, n, n_out);
        }
    }

    /// `self + parts[0] + parts[1] + ...`, entry by entry in that order (rows in parallel).
    pub fn add_in_order(&mut self, parts: &[&ElementGrads<F>]) {
        fn rows<'p, F: Real>(
            total: &mut Array2<F>,
            part: &(dyn Fn(usize) -> &'p Array2<F> + Sync),
            count: usize,
        ) {
            total
                .axis_iter_mut(Axis(0))
                .into_par_iter()
                .enumerate()
                .for_each(|(r, mut row)| {
                    for e in 0..count {
                        row.zip_mut_with(&part(e).row(r), |a, &b| *a = *a + b);
                    }
                });
        }
        rows(&mut self.w_in, &|e| &parts[e].w_in, parts.len());
        rows(&mut self.w_rec, &|e| &parts[e].w_rec, parts.len());
        rows(&mut self.w_out, &|e| &parts[e].w_out, parts.len());
        for part in parts {
            for (a, &b) in self.b_out.iter_mut().zip(&part.b_out) {
                *a = *a + b;
            }
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
