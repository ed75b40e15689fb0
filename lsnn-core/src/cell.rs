//! The LSNN cell: event-driven delivery into the delay ring, then one [`neuron_step`] per neuron.

use crate::synapse::{self, Synapses};
use crate::{neuron_step, CellConfig, CellState, CoreError, Neuron, Real, StepConsts};

/// A source of standard-normal samples for the injected current noise; the caller supplies it
/// (an RNG on the host, a hardware RNG or a small PRNG on a device).
pub trait CurrentNoise<F> {
    /// One draw from N(0, 1).
    fn standard_normal(&mut self) -> F;
}

/// No noise (the default of both tutorials).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNoise;

impl<F: Real> CurrentNoise<F> for NoNoise {
    fn standard_normal(&mut self) -> F {
        F::zero()
    }
}

/// An LSNN cell (recurrent ALIF population with delayed input and recurrent synapses).
#[derive(Clone, Debug)]
pub struct Cell<'a, F, In, Rec> {
    config: CellConfig<F>,
    consts: StepConsts<F>,
    neurons: &'a [Neuron<F>],
    w_in: In,
    w_rec: Rec,
}

impl<'a, F: Real, In: Synapses<F>, Rec: Synapses<F>> Cell<'a, F, In, Rec> {
    /// Assembles a cell after validating every size, delay and weight (once, so that
    /// [`Cell::step`] only has to check the input length).
    pub fn new(
        config: CellConfig<F>,
        neurons: &'a [Neuron<F>],
        w_in: In,
        w_rec: Rec,
    ) -> Result<Self, CoreError> {
        config.validate()?;
        let n = neurons.len();
        if n == 0 || n > usize::from(u16::MAX) + 1 {
            return Err(CoreError::Size {
                what: "n_rec",
                value: n,
                allowed: "1..=65536",
            });
        }
        check_len("w_in columns (n_rec)", n, w_in.n_post())?;
        check_len("w_rec rows (n_rec)", n, w_rec.n_pre())?;
        check_len("w_rec columns (n_rec)", n, w_rec.n_post())?;
        synapse::validate(&w_in, "w_in", config.n_delay, false)?;
        synapse::validate(&w_rec, "w_rec", config.n_delay, true)?;
        Ok(Cell {
            consts: config.step_consts(),
            config,
            neurons,
            w_in,
            w_rec,
        })
    }

    /// The cell's parameters.
    pub fn config(&self) -> &CellConfig<F> {
        &self.config
    }

    /// The derived per-step constants.
    pub fn consts(&self) -> &StepConsts<F> {
        &self.consts
    }

    /// The neurons.
    pub fn neurons(&self) -> &[Neuron<F>] {
        self.neurons
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.w_in.n_pre()
    }

    /// Number of recurrent neurons.
    pub fn n_rec(&self) -> usize {
        self.neurons.len()
    }

    /// The input synapses.
    pub fn w_in(&self) -> &In {
        &self.w_in
    }

    /// The recurrent synapses.
    pub fn w_rec(&self) -> &Rec {
        &self.w_rec
    }

    /// The threshold neuron `j` used in the last step, from its adaptation `b` (state after step).
    pub fn threshold(&self, j: usize, b: F) -> F {
        self.neurons[j].threshold(b, self.consts.v0)
    }

    /// A zeroed state sized for this cell in caller-provided storage.
    pub fn state_in<S, C>(&self, floats: S, counters: C) -> Result<CellState<F, S, C>, CoreError>
    where
        S: AsRef<[F]> + AsMut<[F]>,
        C: AsRef<[u16]> + AsMut<[u16]>,
    {
        CellState::new(floats, counters, self.n_rec(), self.config.n_delay)
    }

    /// Advances `state` by one step with the dense input `x` (length n_in; zeros cost nothing).
    ///
    /// Afterwards `state.z()`, `state.v()` are the step's outputs `z_new`, `v_new`, and
    /// [`Cell::threshold`] of `state.b()` gives its threshold `A`.
    pub fn step<S, C, Noise>(
        &self,
        state: &mut CellState<F, S, C>,
        x: &[F],
        noise: &mut Noise,
    ) -> Result<(), CoreError>
    where
        S: AsRef<[F]> + AsMut<[F]>,
        C: AsRef<[u16]> + AsMut<[u16]>,
        Noise: CurrentNoise<F>,
    {
        check_len("input x_t (n_in)", self.n_in(), x.len())?;
        let events = x
            .iter()
            .enumerate()
            .filter(|(_, &xi)| xi != F::zero())
            .map(|(i, &xi)| (i, xi));
        self.step_events(state, events, noise)
    }

    /// Advances `state` by one step whose input is given as events `(input index, value)`
    /// (a spike is value 1); inputs not listed are 0.
    pub fn step_events<S, C, Noise, E>(
        &self,
        state: &mut CellState<F, S, C>,
        events: E,
        noise: &mut Noise,
    ) -> Result<(), CoreError>
    where
        S: AsRef<[F]> + AsMut<[F]>,
        C: AsRef<[u16]> + AsMut<[u16]>,
        Noise: CurrentNoise<F>,
        E: IntoIterator<Item = (usize, F)>,
    {
        check_len("state n_rec", self.n_rec(), state.n_rec())?;
        check_len("state n_delay", self.config.n_delay, state.n_delay())?;
        for (i, xi) in events {
            if i >= self.n_in() {
                return Err(CoreError::Size {
                    what: "input event index",
                    value: i,
                    allowed: "< n_in",
                });
            }
            self.w_in.for_each_outgoing(i, |target, delay, w| {
                state.add_future_current(target, delay, xi * w)
            });
        }
        self.deliver_recurrent(state);
        self.update_neurons(state, noise);
        state.advance();
        Ok(())
    }

    /// Uses the PREVIOUS spikes, still in `state.z()`.
    fn deliver_recurrent<S, C>(&self, state: &mut CellState<F, S, C>)
    where
        S: AsRef<[F]> + AsMut<[F]>,
        C: AsRef<[u16]> + AsMut<[u16]>,
    {
        for k in 0..self.n_rec() {
            let zk = state.z()[k];
            if zk != F::zero() {
                self.w_rec.for_each_outgoing(k, |target, delay, w| {
                    state.add_future_current(target, delay, zk * w)
                });
            }
        }
    }

    fn update_neurons<S, C, Noise>(&self, state: &mut CellState<F, S, C>, noise: &mut Noise)
    where
        S: AsRef<[F]> + AsMut<[F]>,
        C: AsRef<[u16]> + AsMut<[u16]>,
        Noise: CurrentNoise<F>,
    {
        let noise_std = self.config.injected_noise_current;
        let n_refractory = self.config.n_refractory as u16;
        let view = state.step_view();
        for (j, neuron) in self.neurons.iter().enumerate() {
            let mut i_t = view.i_now[j];
            if noise_std > F::zero() {
                i_t = i_t + noise_std * noise.standard_normal();
            }
            let prev = crate::NeuronState {
                v: view.v[j],
                z: view.z[j],
                b: view.b[j],
            };
            let left = view.refractory_left[j];
            let out = neuron_step(neuron, &self.consts, prev, i_t, left > 0);
            view.v[j] = out.state.v;
            view.z[j] = out.state.z;
            view.b[j] = out.state.b;
            view.refractory_left[j] = if out.state.z > F::zero() {
                n_refractory
            } else {
                left.saturating_sub(1)
            };
            view.i_now[j] = F::zero();
        }
    }
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), CoreError> {
    if expected == got {
        Ok(())
    } else {
        Err(CoreError::Length {
            what,
            expected,
            got,
        })
    }
}
