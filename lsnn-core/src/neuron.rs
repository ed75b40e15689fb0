//! The LSNN neuron: the one place where the ALIF equations live.
//!
//! Every backend (this crate's event-driven cell, the batched host trainer, the GPU kernels)
//! calls or mirrors [`neuron_step`] and [`neuron_step_backward`]; the fixtures pin the mirrors.
//! LIF neurons are ALIF neurons with `beta = 0`: there is no separate LIF code path.
//!
//! The equations are written once over a [`Value`]: one float, as the cell steps each neuron,
//! or [`Lanes`](crate::Lanes) of them, as the trainer steps one neuron of several batch
//! elements at once. The scalar functions are that form with `X = F`.

use crate::lanes::{Mask, Value};
use crate::{CoreError, Real};

/// Global parameters of an LSNN cell, as given to the original `ALIF` constructor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CellConfig<F> {
    /// Simulation time step `dt` in ms.
    pub dt: F,
    /// Adaptation time constant `tau_a` in ms (shared by all neurons).
    pub tau_adaptation: F,
    /// Voltage unit `V0`: multiplies the weights and the adaptive part of the threshold.
    pub v0: F,
    /// Number of delay slots `D`: synaptic delay indices are `0..D`.
    pub n_delay: usize,
    /// Refractory period `R` in steps (0 = none).
    pub n_refractory: usize,
    /// Height of the pseudo-derivative of the spike (trainers only).
    pub dampening_factor: F,
    /// Standard deviation of the Gaussian current noise (0 = off).
    pub injected_noise_current: F,
}

impl<F: Real> CellConfig<F> {
    /// The original's defaults: dt 1 ms, tau_a 200 ms, V0 1, D 1, R 0, dampening 0.3, no noise.
    pub fn new() -> Self {
        CellConfig {
            dt: F::one(),
            tau_adaptation: F::of(200.0),
            v0: F::one(),
            n_delay: 1,
            n_refractory: 0,
            dampening_factor: F::of(0.3),
            injected_noise_current: F::zero(),
        }
    }

    /// Checks that every parameter is usable.
    pub fn validate(&self) -> Result<(), CoreError> {
        positive("dt", self.dt)?;
        positive("tau_adaptation", self.tau_adaptation)?;
        positive("V0", self.v0)?;
        finite("dampening_factor", self.dampening_factor)?;
        finite("injected_noise_current", self.injected_noise_current)?;
        if self.injected_noise_current < F::zero() {
            return Err(CoreError::Parameter {
                what: "injected_noise_current",
                why: "must be >= 0",
            });
        }
        if self.n_delay == 0 || self.n_delay > usize::from(u8::MAX) + 1 {
            return Err(CoreError::Size {
                what: "n_delay",
                value: self.n_delay,
                allowed: "1..=256",
            });
        }
        if self.n_refractory > usize::from(u16::MAX) {
            return Err(CoreError::Size {
                what: "n_refractory",
                value: self.n_refractory,
                allowed: "0..=65535",
            });
        }
        Ok(())
    }

    /// The constants one step needs, derived once.
    pub fn step_consts(&self) -> StepConsts<F> {
        let decay_b = (-self.dt / self.tau_adaptation).exp();
        StepConsts {
            dt: self.dt,
            decay_b,
            one_minus_decay_b: F::one() - decay_b,
            v0: self.v0,
            spike: F::one() / self.dt,
            dampening_factor: self.dampening_factor,
        }
    }
}

impl<F: Real> Default for CellConfig<F> {
    fn default() -> Self {
        Self::new()
    }
}

/// Cell-wide constants of one step, derived from [`CellConfig`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepConsts<F> {
    /// Time step in ms.
    pub dt: F,
    /// Adaptation decay `exp(-dt / tau_a)`.
    pub decay_b: F,
    /// `1 - decay_b`.
    pub one_minus_decay_b: F,
    /// Voltage unit.
    pub v0: F,
    /// Value of a spike, `1 / dt`.
    pub spike: F,
    /// Height of the pseudo-derivative.
    pub dampening_factor: F,
}

impl<F: Real> StepConsts<F> {
    /// The constants in every lane of values like `like`.
    #[inline(always)]
    pub fn splat<X: Value<Scalar = F>>(&self, like: X) -> StepConsts<X> {
        StepConsts {
            dt: like.splat(self.dt),
            decay_b: like.splat(self.decay_b),
            one_minus_decay_b: like.splat(self.one_minus_decay_b),
            v0: like.splat(self.v0),
            spike: like.splat(self.spike),
            dampening_factor: like.splat(self.dampening_factor),
        }
    }
}

/// Per-neuron constants.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Neuron<F> {
    /// Membrane decay `exp(-dt / tau)`.
    pub decay: F,
    /// `1 - decay`.
    pub one_minus_decay: F,
    /// Baseline threshold (in V0 units already, so not scaled by V0).
    pub thr: F,
    /// Adaptation strength; 0 makes the neuron an exact LIF neuron.
    pub beta: F,
}

impl<F: Real> Neuron<F> {
    /// Derives the constants of a neuron with membrane time constant `tau` (ms).
    pub fn new(tau: F, thr: F, beta: F, dt: F) -> Result<Self, CoreError> {
        positive("tau", tau)?;
        positive("thr", thr)?;
        finite("beta", beta)?;
        let decay = (-dt / tau).exp();
        Ok(Neuron {
            decay,
            one_minus_decay: F::one() - decay,
            thr,
            beta,
        })
    }

    /// The constants in every lane of values like `like`.
    #[inline(always)]
    pub fn splat<X: Value<Scalar = F>>(&self, like: X) -> Neuron<X> {
        Neuron {
            decay: like.splat(self.decay),
            one_minus_decay: like.splat(self.one_minus_decay),
            thr: like.splat(self.thr),
            beta: like.splat(self.beta),
        }
    }
}

impl<X: Value> Neuron<X> {
    /// The threshold `A = thr + b * beta * V0` for adaptation variable `b` (`v0` is V0, or
    /// [`One`] where it is exactly 1).
    #[inline(always)]
    pub fn threshold<V0: Factor<X>>(&self, b: X, v0: V0) -> X {
        self.thr + v0.times(b * self.beta)
    }
}

/// The state of one neuron between steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NeuronState<F> {
    /// Membrane voltage.
    pub v: F,
    /// Spike output of the last step (0 or 1/dt).
    pub z: F,
    /// Threshold adaptation variable.
    pub b: F,
}

/// What one step of one neuron produces (`M`: per lane, a flag).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NeuronStep<F, M = bool> {
    /// The new state (`v_new`, `z_new`, `b_new`).
    pub state: NeuronState<F>,
    /// The threshold `A` used in this step.
    pub thr: F,
    /// `(v_prev - A) / A`, the argument of the spike function.
    pub v_scaled: F,
    /// Whether the neuron spiked (`z_new != 0`).
    pub spiked: M,
}

/// One step of one ALIF neuron (semantics page, steps 2-8).
///
/// `i_t` is the current that arrives now (delay slot 0, plus noise); `refractory` is true when
/// the neuron spiked within the last `R` steps. The spike is decided from the PREVIOUS voltage,
/// and the soft reset of the previous spike uses THIS step's threshold: both as in the original.
#[inline(always)]
pub fn neuron_step<F: Real>(
    n: &Neuron<F>,
    k: &StepConsts<F>,
    prev: NeuronState<F>,
    i_t: F,
    refractory: bool,
) -> NeuronStep<F> {
    neuron_step_with::<F, F, F, F, false>(
        n,
        k,
        k.dt,
        k.v0,
        prev.v,
        prev.z,
        prev.b,
        n.one_minus_decay * i_t,
        refractory,
    )
}

/// A factor of the equations that may be known to be exactly 1 ([`One`]): `dt` in the reset
/// term and `V0` in the threshold. Multiplying by 1 is exact for every float (zeros keep their
/// sign, infinities and NaN stay what they are), so leaving it out changes no bit.
pub trait Factor<X>: Copy {
    /// `x * self`.
    fn times(self, x: X) -> X;
}

impl<X: Value> Factor<X> for X {
    #[inline(always)]
    fn times(self, x: X) -> X {
        x * self
    }
}

/// The factor 1, left out (see [`Factor`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct One;

impl<X: Value> Factor<X> for One {
    #[inline(always)]
    fn times(self, x: X) -> X {
        x
    }
}

/// The previous spike `z` as [`neuron_step_with`] takes it: a value ([`NeuronState::z`]), or
/// [`NoSpike`] / [`NoSpikeFinite`], known to be `+0`.
pub trait PrevSpike<X>: Copy {
    /// `z` itself (a value like `like`).
    fn z(self, like: X) -> X;
    /// `b_new = decay_b * b + (1 - decay_b) * z` (semantics page, step 2).
    fn adapt(self, k: &StepConsts<X>, b: X) -> X;
    /// The soft reset `v - dt z A` of the voltage `v = decay v_prev + input` (semantics page,
    /// step 5), for the threshold `thr` = `A` of this step.
    #[inline(always)]
    fn reset<Dt: Factor<X>>(self, dt: Dt, thr: X, v: X) -> X
    where
        X: Value,
    {
        v - dt.times(self.z(thr) * thr)
    }
}

impl<X: Value> PrevSpike<X> for X {
    #[inline(always)]
    fn z(self, _like: X) -> X {
        self
    }
    #[inline(always)]
    fn adapt(self, k: &StepConsts<X>, b: X) -> X {
        add_spike_to_adaptation(k, k.decay_b * b, self)
    }
}

/// `decayed + (1 - decay_b) z`: the previous spike's part of the adaptation, added to
/// `decayed = decay_b b` (see [`PrevSpike::adapt`]).
#[inline(always)]
fn add_spike_to_adaptation<X: Value>(k: &StepConsts<X>, decayed: X, z: X) -> X {
    decayed + k.one_minus_decay_b * z
}

/// A previous spike `z` known to be `+0`, for a `b` that is not `-0` or `< 0` (NaN is fine)
/// and `decay_b`, `1 - decay_b` finite with their sign bits clear: then `(1 - decay_b) * z`
/// is `+0`, and `decay_b * b` is not `-0`, so adding `+0` to it changes nothing:
/// `b_new = decay_b * b`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoSpike;

impl<X: Value> PrevSpike<X> for NoSpike {
    #[inline(always)]
    fn z(self, like: X) -> X {
        zero(like)
    }
    #[inline(always)]
    fn adapt(self, k: &StepConsts<X>, b: X) -> X {
        k.decay_b * b
    }
}

/// [`NoSpike`] in a step whose threshold `A` and `dt` are finite with their sign bits clear
/// (the caller knows it, e.g. from bounds on `b` and `beta`): the reset term `dt * 0 * A` is
/// then `+0`, and `v - (+0)` is `v` for every `v` (`-0` and NaN included), so the reset is left
/// out: the new voltage is `decay * v_prev + input` itself. (With it,
/// [`add_previous_spike`] turns such a step into the step with a spike `z`.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoSpikeFinite;

impl<X: Value> PrevSpike<X> for NoSpikeFinite {
    #[inline(always)]
    fn z(self, like: X) -> X {
        zero(like)
    }
    #[inline(always)]
    fn adapt(self, k: &StepConsts<X>, b: X) -> X {
        NoSpike.adapt(k, b)
    }
    #[inline(always)]
    fn reset<Dt: Factor<X>>(self, _dt: Dt, _thr: X, v: X) -> X {
        v
    }
}

/// The new `v` and `b` of a step whose previous spike is `z`, from those the same step gave
/// with [`NoSpikeFinite`] (`quiet_v = decay v_prev + input`, `quiet_b = decay_b b_prev`): `b`
/// gains `(1 - decay_b) z`, the threshold `A` follows from it, and `v` is reset by `dt z A`.
/// These are the operations of [`neuron_step_with`] with `prev_z = z`, in the same order (the
/// reset is its last), so the result is bit for bit its `v` and `b`. (The spike test is not
/// redone: it used the threshold of the step with [`NoSpikeFinite`]; callers use this for
/// neurons that are refractory in the step, whose test does not matter.)
#[inline(always)]
pub fn add_previous_spike<X: Value, Dt: Factor<X>, V0: Factor<X>>(
    n: &Neuron<X>,
    k: &StepConsts<X>,
    dt: Dt,
    v0: V0,
    quiet_v: X,
    quiet_b: X,
    z: X,
) -> (X, X) {
    let b = add_spike_to_adaptation(k, quiet_b, z);
    let thr = n.threshold(b, v0);
    (z.reset(dt, thr, quiet_v), b)
}

/// [`add_previous_spike`] for [`lif_step_with`]: `b` is not kept, the threshold is `thr`.
#[inline(always)]
pub fn add_previous_spike_lif<X: Value, Dt: Factor<X>>(
    n: &Neuron<X>,
    dt: Dt,
    quiet_v: X,
    z: X,
) -> X {
    z.reset(dt, n.thr, quiet_v)
}

/// [`neuron_step`] with what a caller may know in advance, the same equations in the same
/// order (every result bit-identical, provided the conditions below hold):
///
/// - `input` is the input term `(1 - decay) * i_t`. A caller that knows `i_t = +0` and that
///   `1 - decay` is finite with its sign bit clear may pass `+0`, which is that product.
/// - `dt` and `v0` are `k.dt` and `k.v0`, or [`One`] where that constant is exactly 1.
/// - `prev_z` is the previous spike, or [`NoSpike`] under the conditions it states.
/// - `THR_POSITIVE`: the caller guarantees that the threshold `A` of this step is not `<= 0`
///   (it is `> 0`, or NaN). Then the spike test is the one comparison `v > A`, which decides as
///   the general test does: for `A > 0` it is the general test, and for `A` NaN both are false.
///   This holds when `thr > 0` (or NaN), `beta` is not `< 0` and `b_new` is not `< 0`, e.g.
///   when neither the previous `b` nor `z` is `< 0` (`b_new = decay_b b + (1 - decay_b) z` with
///   both factors in [0, 1] cannot then be `< 0`, and `A = thr + b_new beta V0 >= thr` or NaN).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn neuron_step_with<
    X: Value,
    Z: PrevSpike<X>,
    Dt: Factor<X>,
    V0: Factor<X>,
    const THR_POSITIVE: bool,
>(
    n: &Neuron<X>,
    k: &StepConsts<X>,
    dt: Dt,
    v0: V0,
    prev_v: X,
    prev_z: Z,
    prev_b: X,
    input: X,
    refractory: X::Mask,
) -> NeuronStep<X, X::Mask> {
    let b = prev_z.adapt(k, prev_b);
    let thr = n.threshold(b, v0);
    let v = prev_z.reset(dt, thr, n.integrate(prev_v, input));
    let out = fire::<X, THR_POSITIVE>(k, thr, prev_v, v, refractory);
    NeuronStep {
        state: NeuronState { v, z: out.z, b },
        thr,
        v_scaled: out.v_scaled,
        spiked: out.spiked,
    }
}

/// What [`lif_step_with`] produces: [`NeuronStep`] without `b` (and with the threshold `A`
/// the neuron's `thr`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MembraneStep<X, M = bool> {
    /// `v_new`.
    pub v: X,
    /// `z_new` (0 or `1/dt`).
    pub z: X,
    /// `(v_prev - A) / A`, the argument of the spike function.
    pub v_scaled: X,
    /// Whether the neuron spiked (`z_new != 0`).
    pub spiked: M,
}

/// [`neuron_step_with`] for a LIF neuron whose `b` the caller neither keeps nor reads: with
/// `beta = 0` (of either sign) and a finite `b`, `b * beta * V0` is `±0` and the threshold
/// `A = thr + (±0)` is `thr` (which is not 0), whatever `b` is. So `b` is neither read nor
/// computed, and `v`, `z` and the spike are those of [`neuron_step_with`] (same conditions on
/// `input`, `dt`, `prev_z` and `THR_POSITIVE`), provided `beta` is 0 and the `b` that
/// [`neuron_step_with`] would start from is finite. (`thr` is finite, so [`NoSpikeFinite`]
/// applies under the conditions of [`NoSpike`].)
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn lif_step_with<X: Value, Z: PrevSpike<X>, Dt: Factor<X>, const THR_POSITIVE: bool>(
    n: &Neuron<X>,
    k: &StepConsts<X>,
    dt: Dt,
    prev_v: X,
    prev_z: Z,
    input: X,
    refractory: X::Mask,
) -> MembraneStep<X, X::Mask> {
    let v = prev_z.reset(dt, n.thr, n.integrate(prev_v, input));
    fire::<X, THR_POSITIVE>(k, n.thr, prev_v, v, refractory)
}

impl<X: Value> Neuron<X> {
    /// The leak and the input, `decay * v_prev + input` (semantics page, step 4; the input
    /// term is `(1 - decay) * i_t`).
    #[inline(always)]
    fn integrate(&self, prev_v: X, input: X) -> X {
        self.decay * prev_v + input
    }
}

/// The spike of a step (semantics page, steps 6-8) from the previous voltage and this step's
/// threshold `thr`, with `v` the new voltage (see [`neuron_step_with`] for `THR_POSITIVE`).
#[inline(always)]
fn fire<X: Value, const THR_POSITIVE: bool>(
    k: &StepConsts<X>,
    thr: X,
    prev_v: X,
    v: X,
    refractory: X::Mask,
) -> MembraneStep<X, X::Mask> {
    let v_scaled = (prev_v - thr) / thr;
    // H(v_scaled) = H((v - A) / A) is `v > A` when A > 0 (always, unless beta < 0): v > A > 0
    // makes v - A at least one ulp of A, so the quotient is at least 2^-24 and cannot round
    // to 0; v <= A makes it <= 0; NaN fails both tests. Callers that do not read `v_scaled`
    // (the cell) thus never divide on the common path.
    let positive = thr.gt(zero(thr));
    let above = if THR_POSITIVE || positive.all() {
        prev_v.gt(thr)
    } else {
        positive.pick(prev_v.gt(thr), spike_test_by_division(prev_v, thr))
    };
    let spiked = above.and_not(refractory);
    MembraneStep {
        v,
        z: X::select(spiked, k.spike, zero(thr)),
        v_scaled,
        spiked,
    }
}

/// Whether the constants of `n` allow the exact shortcuts of [`neuron_step_with`] that the
/// cell takes: `decay` and `1 - decay` finite with the sign bit clear (so `(1 - decay) * +0`
/// is `+0`, and a neuron at rest, `v = b = z = +0` with no input, stays exactly at rest),
/// `thr` finite and `> 0`, `beta` finite and not `< 0` (so `A` is never `<= 0` while no `b` or
/// `z` is `< 0`). Every neuron built by [`Neuron::new`] with `beta >= 0` qualifies.
pub fn allows_shortcuts<F: Real>(n: &Neuron<F>) -> bool {
    let plain = |x: F| x.is_finite() && x.is_sign_positive();
    plain(n.decay)
        && plain(n.one_minus_decay)
        && n.thr.is_finite()
        && n.thr > F::zero()
        && n.beta.is_finite()
        && n.beta >= F::zero()
}

/// The original's spike test `(v - A) / A > 0`, for thresholds that are not positive (a
/// negative `beta`); out of line so that the common path stays a comparison.
#[cold]
#[inline(never)]
fn spike_test_by_division<X: Value>(v: X, thr: X) -> X::Mask {
    ((v - thr) / thr).gt(zero(thr))
}

/// The pseudo-derivative `dz/dv_scaled = dampening * max(0, 1 - |v_scaled|)`.
#[inline(always)]
pub fn pseudo_derivative<X: Value>(v_scaled: X, dampening_factor: X) -> X {
    (one(v_scaled) - v_scaled.abs()).max(zero(v_scaled)) * dampening_factor
}

/// 0 in every lane of values like `like`.
#[inline(always)]
fn zero<X: Value>(like: X) -> X {
    like.splat(<X::Scalar as num_traits::Zero>::zero())
}

/// 1 in every lane of values like `like`.
#[inline(always)]
fn one<X: Value>(like: X) -> X {
    like.splat(<X::Scalar as num_traits::One>::one())
}

/// Adjoints (dL/d...) of one neuron's quantities.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NeuronGrad<F> {
    /// dL/dv.
    pub v: F,
    /// dL/dz.
    pub z: F,
    /// dL/db.
    pub b: F,
}

/// Adjoints flowing out of one backward step of one neuron.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NeuronBackward<F> {
    /// dL/d(previous state) through this step's equations. `z` excludes the recurrent synapses,
    /// which the caller adds from the input-current adjoints of later steps.
    pub prev: NeuronGrad<F>,
    /// dL/d(input current i_t).
    pub i_t: F,
}

/// What the backward of a step reads of the step besides the state: its threshold `A`,
/// `v_scaled = (v_prev - A) / A` and the pseudo-derivative of the spike there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Surrogate<X> {
    /// The threshold `A` of the step.
    pub thr: X,
    /// `(v_prev - A) / A`.
    pub v_scaled: X,
    /// `dampening * max(0, 1 - |v_scaled|)`.
    pub pseudo: X,
}

impl<X: Value> Surrogate<X> {
    /// The surrogate of the step of neuron `n` that started from voltage `prev_v` and produced
    /// the adaptation `b_new`.
    #[inline(always)]
    pub fn of(n: &Neuron<X>, k: &StepConsts<X>, prev_v: X, b_new: X) -> Self {
        let thr = n.threshold(b_new, k.v0);
        let v_scaled = (prev_v - thr) / thr;
        Surrogate {
            thr,
            v_scaled,
            pseudo: pseudo_derivative(v_scaled, k.dampening_factor),
        }
    }
}

/// Reverse-mode derivative of [`neuron_step`] with the pseudo-derivative in place of H'.
///
/// `prev` is the state the forward step started from, `b_new` the adaptation it produced and
/// `out` the adjoints of its outputs (`v_new`, `z_new`, `b_new`); `out_thr` is any direct
/// adjoint of the threshold output `A`. Nothing is stopped: gradients flow through the reset,
/// through `A` (hence `b`), and through the division by `A` inside `v_scaled`.
#[inline(always)]
pub fn neuron_step_backward<X: Value>(
    n: &Neuron<X>,
    k: &StepConsts<X>,
    prev: NeuronState<X>,
    b_new: X,
    refractory: X::Mask,
    out: NeuronGrad<X>,
    out_thr: X,
) -> NeuronBackward<X> {
    let surrogate = Surrogate::of(n, k, prev.v, b_new);
    neuron_step_backward_at(n, k, prev, surrogate, refractory, out, out_thr)
}

/// [`neuron_step_backward`] with the step's [`Surrogate`] computed already.
#[inline(always)]
pub fn neuron_step_backward_at<X: Value>(
    n: &Neuron<X>,
    k: &StepConsts<X>,
    prev: NeuronState<X>,
    surrogate: Surrogate<X>,
    refractory: X::Mask,
    out: NeuronGrad<X>,
    out_thr: X,
) -> NeuronBackward<X> {
    let Surrogate { thr, pseudo, .. } = surrogate;
    let g_v_scaled = X::select(refractory, zero(thr), out.z * k.spike * pseudo);
    let g_thr = out_thr - g_v_scaled * prev.v / (thr * thr) - out.v * prev.z * k.dt;
    let g_b_new = out.b + g_thr * n.beta * k.v0;
    NeuronBackward {
        prev: NeuronGrad {
            v: n.decay * out.v + g_v_scaled / thr,
            z: k.one_minus_decay_b * g_b_new - out.v * thr * k.dt,
            b: k.decay_b * g_b_new,
        },
        i_t: n.one_minus_decay * out.v,
    }
}

fn finite<F: Real>(what: &'static str, x: F) -> Result<(), CoreError> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(CoreError::Parameter {
            what,
            why: "must be finite",
        })
    }
}

fn positive<F: Real>(what: &'static str, x: F) -> Result<(), CoreError> {
    finite(what, x)?;
    if x > F::zero() {
        Ok(())
    } else {
        Err(CoreError::Parameter {
            what,
            why: "must be > 0",
        })
    }
}
