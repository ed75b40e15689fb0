//! What training minimises: the readout compared with a batch's [`Target`] in windows of
//! steps, and the firing-rate regulariser.
//!
//! The readout of element `e` over a window `start..end` is the mean of
//! `exp_convolve(z) @ w_out + b_out` over those steps; a window of one step is the readout of
//! that step. A target is one of
//!
//! - [`Target::Classes`]: the tutorials' softmax cross-entropy of window means against classes
//!   ([`LossTerm`], [`cross_entropy`]); the only target the CUDA device computes;
//! - [`Target::SquaredError`]: the readout at every step against target values;
//! - [`Target::Custom`]: any [`Loss`] (a closure will do) of the window means, which returns
//!   the loss and its gradient; the engine back-propagates it.
//!
//! The regulariser ([`RateRegulariser`]) adds `sum_j c_j (rate_j - target)^2` to any of them.

use std::borrow::Cow;
use std::sync::Arc;

use lsnn_core::Real;
use ndarray::Array2;

use crate::error::HostError;

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

/// A readout window of a batch element: the readout's mean over steps `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First step.
    pub start: usize,
    /// One past the last step.
    pub end: usize,
}

/// The window means of a batch's readout, as a [`Loss`] reads them: element by element, window
/// by window, `n_out` values each, in one slice.
#[derive(Clone, Copy, Debug)]
pub struct Outputs<'a> {
    values: &'a [f32],
    /// Per element, the index of its first window; one more entry for the end.
    first_window: &'a [usize],
    n_out: usize,
}

impl<'a> Outputs<'a> {
    /// Number of batch elements.
    pub fn n_batch(&self) -> usize {
        self.first_window.len() - 1
    }

    /// Number of readout outputs.
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// Number of windows of element `e`.
    pub fn n_windows(&self, e: usize) -> usize {
        self.first_window[e + 1] - self.first_window[e]
    }

    /// The mean readout of element `e` over its window `w` (`n_out` values).
    pub fn window(&self, e: usize, w: usize) -> &'a [f32] {
        let at = self.index(e, w, 0);
        &self.values[at..at + self.n_out]
    }

    /// Every value, element by element, window by window (the gradient's layout).
    pub fn values(&self) -> &'a [f32] {
        self.values
    }

    /// Where output `o` of window `w` of element `e` sits in [`Outputs::values`] (and in the
    /// gradient a [`Loss`] returns).
    pub fn index(&self, e: usize, w: usize, o: usize) -> usize {
        (self.first_window[e] + w) * self.n_out + o
    }
}

/// A loss of the readout's window means, written by the user: returns the loss of the batch
/// and its gradient with respect to every value of [`Outputs::values`], in that order. Any
/// `Fn(&Outputs) -> (f32, Vec<f32>)` is one.
pub trait Loss: Send + Sync {
    /// `(loss, d loss / d outputs)`.
    fn loss(&self, outputs: &Outputs<'_>) -> (f32, Vec<f32>);
}

impl<T: Fn(&Outputs<'_>) -> (f32, Vec<f32>) + Send + Sync> Loss for T {
    fn loss(&self, outputs: &Outputs<'_>) -> (f32, Vec<f32>) {
        self(outputs)
    }
}

/// What a batch's readout is compared with.
#[derive(Clone)]
pub enum Target {
    /// Softmax cross-entropy of window means against classes, per element a list of weighted
    /// terms: the tutorials' loss, and the only one the CUDA device computes.
    Classes(Vec<Vec<LossTerm<f32>>>),
    /// Squared error of the readout at every step: element `e`'s targets `[T, n_out]`; the
    /// loss is the mean of `(y - target)^2` over elements, steps and outputs.
    SquaredError(Vec<Array2<f32>>),
    /// A user [`Loss`] of the window means of these windows (per element).
    Custom {
        /// Each element's windows.
        windows: Vec<Vec<Window>>,
        /// The loss.
        loss: Arc<dyn Loss>,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Classes(terms) => f.debug_tuple("Classes").field(terms).finish(),
            Target::SquaredError(t) => f.debug_tuple("SquaredError").field(t).finish(),
            Target::Custom { windows, .. } => f
                .debug_struct("Custom")
                .field("windows", windows)
                .finish_non_exhaustive(),
        }
    }
}

impl Target {
    /// One cross-entropy term per element: the class of each element over the window
    /// `start..end`, each weighted `1 / B` (the batch mean).
    pub fn classes(classes: &[usize], window: Window) -> Target {
        let weight = 1.0 / classes.len().max(1) as f32;
        Target::Classes(
            classes
                .iter()
                .map(|&target| {
                    vec![LossTerm {
                        start: window.start,
                        end: window.end,
                        target,
                        weight,
                    }]
                })
                .collect(),
        )
    }

    /// A user loss of the readout at every step of `n_steps` (windows of one step) of each of
    /// `n_batch` elements.
    pub fn per_step(n_batch: usize, n_steps: usize, loss: impl Loss + 'static) -> Target {
        let windows = (0..n_steps)
            .map(|t| Window {
                start: t,
                end: t + 1,
            })
            .collect::<Vec<_>>();
        Target::Custom {
            windows: vec![windows; n_batch],
            loss: Arc::new(loss),
        }
    }

    /// Number of batch elements the target is for.
    pub fn n_batch(&self) -> usize {
        match self {
            Target::Classes(terms) => terms.len(),
            Target::SquaredError(targets) => targets.len(),
            Target::Custom { windows, .. } => windows.len(),
        }
    }

    /// The windows the pass computes the readout over, as loss terms (the target and weight
    /// matter only for [`Target::Classes`]).
    pub fn windows(&self) -> Cow<'_, [Vec<LossTerm<f32>>]> {
        let term = |start, end| LossTerm {
            start,
            end,
            target: 0,
            weight: 0.0,
        };
        match self {
            Target::Classes(terms) => Cow::Borrowed(terms),
            Target::SquaredError(targets) => Cow::Owned(
                targets
                    .iter()
                    .map(|t| (0..t.nrows()).map(|s| term(s, s + 1)).collect())
                    .collect(),
            ),
            Target::Custom { windows, .. } => Cow::Owned(
                windows
                    .iter()
                    .map(|w| w.iter().map(|w| term(w.start, w.end)).collect())
                    .collect(),
            ),
        }
    }

    /// The target's classes, if it is [`Target::Classes`].
    pub fn class_terms(&self) -> Option<&[Vec<LossTerm<f32>>]> {
        match self {
            Target::Classes(terms) => Some(terms),
            _ => None,
        }
    }

    /// The loss of the window means when it is not the built-in cross-entropy.
    pub fn objective(&self) -> Option<&dyn Objective<f32>> {
        match self {
            Target::Classes(_) => None,
            _ => Some(self),
        }
    }

    /// An error naming what does not fit a batch of `n_batch` elements of `n_steps` steps and a
    /// readout of `n_out` outputs.
    pub fn check(&self, n_batch: usize, n_steps: usize, n_out: usize) -> Result<(), HostError> {
        let bad = |m: String| Err(HostError::Loss(m));
        if self.n_batch() != n_batch {
            return bad(format!(
                "the target is for {} elements, the batch has {n_batch}",
                self.n_batch()
            ));
        }
        match self {
            Target::SquaredError(targets) => {
                if let Some((e, t)) = targets
                    .iter()
                    .enumerate()
                    .find(|(_, t)| t.dim() != (n_steps, n_out))
                {
                    return bad(format!(
                        "squared-error targets of element {e} have shape [{}, {}], expected \
                         [n_steps, n_out] = [{n_steps}, {n_out}]",
                        t.nrows(),
                        t.ncols()
                    ));
                }
            }
            Target::Custom { windows, .. } => {
                for (e, w) in windows.iter().enumerate() {
                    if let Some(w) = w.iter().find(|w| w.start >= w.end || w.end > n_steps) {
                        return bad(format!(
                            "window {}..{} of element {e} is empty or past the batch's {n_steps} \
                             steps",
                            w.start, w.end
                        ));
                    }
                }
            }
            Target::Classes(_) => {}
        }
        Ok(())
    }
}

/// Per element, per window, per output: a pass's window means or their gradient.
pub type WindowValues<F> = Vec<Vec<Vec<F>>>;

/// A loss of a pass's window means other than the built-in cross-entropy: what
/// [`crate::train::run_pass`] calls with `means[e][w][o]` to get the loss and its gradient.
pub trait Objective<F>: Sync + std::fmt::Debug {
    /// The loss and `d loss / d means`, shaped as `means`.
    fn evaluate(&self, means: &[Vec<Vec<F>>]) -> Result<(F, WindowValues<F>), HostError>;
}

impl Objective<f32> for Target {
    fn evaluate(&self, means: &[Vec<Vec<f32>>]) -> Result<(f32, WindowValues<f32>), HostError> {
        match self {
            Target::Classes(_) => Err(HostError::Loss(
                "the cross-entropy is computed by the pass itself".into(),
            )),
            Target::SquaredError(targets) => Ok(squared_error(means, targets)),
            Target::Custom { loss, .. } => custom(loss.as_ref(), means),
        }
    }
}

/// The mean of `(y - target)^2` over every element, step and output, and its gradient.
fn squared_error(means: &[Vec<Vec<f32>>], targets: &[Array2<f32>]) -> (f32, WindowValues<f32>) {
    let count = targets.iter().map(|t| t.len()).sum::<usize>().max(1) as f32;
    let mut loss = 0.0f32;
    let grad = means
        .iter()
        .zip(targets)
        .map(|(element, target)| {
            element
                .iter()
                .zip(target.rows())
                .map(|(y, want)| {
                    y.iter()
                        .zip(want)
                        .map(|(&y, &want)| {
                            let diff = y - want;
                            loss += diff * diff / count;
                            2.0 * diff / count
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    (loss, grad)
}

/// A user loss on the window means, its answer checked: a gradient of the right length, a
/// finite loss and gradient (each error names what was wrong and where).
fn custom(loss: &dyn Loss, means: &[Vec<Vec<f32>>]) -> Result<(f32, WindowValues<f32>), HostError> {
    let n_out = means.iter().flatten().next().map_or(0, Vec::len);
    let mut first_window = vec![0];
    for element in means {
        first_window.push(first_window.last().copied().unwrap_or(0) + element.len());
    }
    let values: Vec<f32> = means.iter().flatten().flatten().copied().collect();
    let outputs = Outputs {
        values: &values,
        first_window: &first_window,
        n_out,
    };
    let (value, grad) = loss.loss(&outputs);
    if grad.len() != values.len() {
        return Err(HostError::Loss(format!(
            "the loss returned a gradient of {} values, expected {} (one per output of every \
             window: {} elements, {} windows, {n_out} outputs)",
            grad.len(),
            values.len(),
            outputs.n_batch(),
            first_window.last().copied().unwrap_or(0)
        )));
    }
    if !value.is_finite() {
        return Err(HostError::Loss(format!("the loss returned {value}")));
    }
    if let Some(k) = grad.iter().position(|g| !g.is_finite()) {
        let e = first_window.partition_point(|&f| f * n_out.max(1) <= k) - 1;
        let w = k / n_out.max(1) - first_window[e];
        return Err(HostError::Loss(format!(
            "the loss's gradient is {} at entry {k} (element {e}, window {w}, output {})",
            grad[k],
            k % n_out.max(1)
        )));
    }
    let mut at = grad.chunks(n_out.max(1));
    let shaped = means
        .iter()
        .map(|element| {
            element
                .iter()
                .map(|_| at.next().unwrap_or(&[]).to_vec())
                .collect()
        })
        .collect();
    Ok((value, shaped))
}
