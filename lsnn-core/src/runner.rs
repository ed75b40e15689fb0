//! Running a parsed [`Model`] step by step, with every buffer sized from the model.
//!
//! `Runner` (feature `alloc`) allocates its buffers; [`FixedRunner`] keeps them in arrays
//! whose capacities are const generics (`N` neurons, `D` delay slots, `O` outputs), for targets
//! without an allocator, and fails with [`CoreError::Capacity`] when a model needs more. Both
//! run any model (f32, i16 or i8 weights; integer models on the `i32` ring of
//! [`Model::integer_cell`]) and compute exactly what [`crate::sequence::run_sequence`] computes:
//! per step, the cell ([`crate::Cell::step_inference`]), the readout, and the means of the
//! readout over windows of any length (1 included).
//!
//! ```
//! # use lsnn_core::{CellConfig, CsrRef, Model, ModelParts, WeightKind};
//! # let w_in = CsrRef::new(2, &[0, 2], &[0, 1], &[0, 0], &[1.5, 0.9]).unwrap();
//! # let w_rec = CsrRef::new(2, &[0, 0, 0], &[], &[], &[]).unwrap();
//! # let parts = ModelParts { config: CellConfig::new(), tau: &[20.0; 2], thr: &[0.03; 2],
//! #     beta: &[0.0; 2], w_in, w_rec, w_out: &[1.0, 0.0, 0.0, 1.0], b_out: None,
//! #     tau_out: 20.0, weights: WeightKind::I8 };
//! # let bytes = parts.to_vec().unwrap();
//! use lsnn_core::runner::FixedRunner;
//! let model = Model::parse(&bytes)?;
//! // Room for 64 neurons, 4 delay slots and 8 outputs; windows of 1 step.
//! let mut run = FixedRunner::<64, 4, 8>::new(&model, 1)?;
//! let out = run.step_channels(&[0])?;
//! assert_eq!(out.y.len(), model.n_out());
//! assert_eq!(out.window, Some(out.y)); // a window of one step: its mean is the step's output
//! // A model larger than the capacities is an error, not a panic.
//! assert!(FixedRunner::<1, 4, 8>::new(&model, 1).is_err());
//! # Ok::<(), lsnn_core::CoreError>(())
//! ```

use crate::model::{IntegerSynapses, LeWeights, ModelSynapses};
use crate::readout::Readout;
use crate::sequence::WindowMeans;
use crate::state::{CellState, FloatRing, I32Ring};
use crate::{Cell, CoreError, Model, Neuron, NoNoise};

/// Storage for one of a runner's buffers, made as long as the model needs.
pub trait Buffer<T>: AsRef<[T]> + AsMut<[T]> + Sized {
    /// `len` elements, all `T::default()`; fails with [`CoreError::Capacity`] (naming the
    /// buffer by `what`) when the storage cannot hold them.
    fn with_len(len: usize, what: &'static str) -> Result<Self, CoreError>;
}

#[cfg(feature = "alloc")]
impl<T: Copy + Default> Buffer<T> for alloc::vec::Vec<T> {
    fn with_len(len: usize, _what: &'static str) -> Result<Self, CoreError> {
        Ok(alloc::vec![T::default(); len])
    }
}

/// `R` rows of `C` elements in one array, of which the first `len` (in row order) are used:
/// a fixed-capacity buffer whose capacity is written with the constants a user knows (`N`
/// neurons, `D` delay slots) rather than their products.
#[derive(Clone, Debug)]
pub struct FixedBuf<T, const R: usize, const C: usize> {
    rows: [[T; C]; R],
    len: usize,
}

impl<T, const R: usize, const C: usize> AsRef<[T]> for FixedBuf<T, R, C> {
    #[inline]
    fn as_ref(&self) -> &[T] {
        self.rows.as_flattened().get(..self.len).unwrap_or_default()
    }
}

impl<T, const R: usize, const C: usize> AsMut<[T]> for FixedBuf<T, R, C> {
    #[inline]
    fn as_mut(&mut self) -> &mut [T] {
        self.rows
            .as_flattened_mut()
            .get_mut(..self.len)
            .unwrap_or_default()
    }
}

impl<T: Copy + Default, const R: usize, const C: usize> Buffer<T> for FixedBuf<T, R, C> {
    fn with_len(len: usize, what: &'static str) -> Result<Self, CoreError> {
        let capacity = R.saturating_mul(C);
        if len > capacity {
            return Err(CoreError::Capacity {
                what,
                capacity,
                required: len,
            });
        }
        Ok(FixedBuf {
            rows: [[T::default(); C]; R],
            len,
        })
    }
}

/// The cell of a model and its state: float weights on a float ring, integer weights on the
/// `i32` ring.
#[allow(clippy::large_enum_variant, clippy::type_complexity)]
#[derive(Clone, Debug)]
enum Engine<'m, Ns, S, C, RF, RI> {
    Float {
        cell: Cell<'m, f32, ModelSynapses<'m>, ModelSynapses<'m>, f32, Ns>,
        state: CellState<f32, S, C, FloatRing<RF>>,
    },
    Integer {
        cell: Cell<'m, f32, IntegerSynapses<'m>, IntegerSynapses<'m>, i32, Ns>,
        state: CellState<f32, S, C, I32Ring<RI>>,
    },
}

/// `$body` with `$cell` and `$state` bound to the engine's cell and state, whichever it is.
macro_rules! with_engine {
    ($engine:expr, |$cell:ident, $state:ident| $body:expr) => {
        match $engine {
            Engine::Float {
                cell: $cell,
                state: $state,
            } => $body,
            Engine::Integer {
                cell: $cell,
                state: $state,
            } => $body,
        }
    };
}

/// What one step produced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutput<'r> {
    /// The readout of the step (one value per output).
    pub y: &'r [f32],
    /// The means of the readout over the window this step completed, if it completed one.
    pub window: Option<&'r [f32]>,
}

/// A model running step by step, in buffers of types `Ns` (neuron constants), `S` (`v`, `z`,
/// `b`), `C` (refractory counters), `RF` / `RI` (the delay ring of float / integer models)
/// and `O` (readout). Use it as `Runner` (allocated, feature `alloc`) or [`FixedRunner`]
/// (fixed capacity); see the [module](self).
#[derive(Clone, Debug)]
pub struct RunnerWith<'m, Ns, S, C, RF, RI, O> {
    engine: Engine<'m, Ns, S, C, RF, RI>,
    readout: Readout<'m, f32, LeWeights<'m>>,
    filtered: O,
    out: O,
    windows: WindowMeans<O>,
    n_in: usize,
    integer: bool,
    spike_count: u64,
    steps: u64,
}

/// A runner whose buffers are allocated to the model's sizes (feature `alloc`).
#[cfg(feature = "alloc")]
pub type Runner<'m> = RunnerWith<
    'm,
    alloc::vec::Vec<Neuron<f32>>,
    alloc::vec::Vec<f32>,
    alloc::vec::Vec<u16>,
    alloc::vec::Vec<f32>,
    alloc::vec::Vec<i32>,
    alloc::vec::Vec<f32>,
>;

/// A runner in fixed arrays for at most `N` neurons, `D` delay slots and `O` readout outputs
/// (no allocator; its size is known at compile time: about `4 (D + 8) N + 12 O` bytes).
pub type FixedRunner<'m, const N: usize, const D: usize, const O: usize> = RunnerWith<
    'm,
    FixedBuf<Neuron<f32>, 1, N>,
    FixedBuf<f32, 3, N>,
    FixedBuf<u16, 1, N>,
    FixedBuf<f32, D, N>,
    FixedBuf<i32, D, N>,
    FixedBuf<f32, 1, O>,
>;

impl<'m, Ns, S, C, RF, RI, O> RunnerWith<'m, Ns, S, C, RF, RI, O>
where
    Ns: Buffer<Neuron<f32>>,
    S: Buffer<f32>,
    C: Buffer<u16>,
    RF: Buffer<f32>,
    RI: Buffer<i32>,
    O: Buffer<f32>,
{
    /// A runner for `model` from the all-zero state, whose windows are `window_len >= 1`
    /// steps long. Fails when the model does not fit the buffers (fixed capacities) or
    /// `window_len` is 0.
    pub fn new(model: &Model<'m>, window_len: usize) -> Result<Self, CoreError> {
        let (n, n_delay, n_out) = (model.n_rec(), model.config().n_delay, model.n_out());
        let ring_len = n_delay.checked_mul(n).ok_or(CoreError::Size {
            what: "n_delay x n_rec",
            value: usize::MAX,
            allowed: "a ring that fits in memory",
        })?;
        let mut neurons = Ns::with_len(n, "runner neurons (N)")?;
        model.neurons_into(neurons.as_mut())?;
        let floats = S::with_len(3 * n, "runner state v, z, b (3 N)")?;
        let counters = C::with_len(n, "runner refractory counters (N)")?;
        let integer = model.is_integer();
        let engine = if integer {
            let ring = RI::with_len(ring_len, "runner delay ring (D N)")?;
            Engine::Integer {
                cell: model.integer_cell_with(neurons)?,
                state: CellState::with_ring(floats, counters, I32Ring(ring), n, n_delay)?,
            }
        } else {
            let ring = RF::with_len(ring_len, "runner delay ring (D N)")?;
            Engine::Float {
                cell: model.cell_with(neurons)?,
                state: CellState::with_ring(floats, counters, FloatRing(ring), n, n_delay)?,
            }
        };
        Ok(RunnerWith {
            engine,
            readout: model.readout()?,
            filtered: O::with_len(n_out, "runner readout outputs (O)")?,
            out: O::with_len(n_out, "runner readout outputs (O)")?,
            windows: WindowMeans::new(
                O::with_len(n_out, "runner readout outputs (O)")?,
                window_len,
            )?,
            n_in: model.n_in(),
            integer,
            spike_count: 0,
            steps: 0,
        })
    }
}

impl<Ns, S, C, RF, RI, O> RunnerWith<'_, Ns, S, C, RF, RI, O>
where
    Ns: AsRef<[Neuron<f32>]>,
    S: AsRef<[f32]> + AsMut<[f32]>,
    C: AsRef<[u16]> + AsMut<[u16]>,
    RF: AsRef<[f32]> + AsMut<[f32]>,
    RI: AsRef<[i32]> + AsMut<[i32]>,
    O: AsRef<[f32]> + AsMut<[f32]>,
{
    /// One step whose input is the spikes of `channels` (each `< n_in`, value 1). Nothing
    /// changes when a channel is out of range.
    pub fn step_channels(&mut self, channels: &[u8]) -> Result<StepOutput<'_>, CoreError> {
        if let Some(&c) = channels.iter().find(|&&c| usize::from(c) >= self.n_in) {
            return Err(bad_input(usize::from(c)));
        }
        self.step_unchecked(channels.iter().map(|&c| (usize::from(c), 1.0)))
    }

    /// One step whose input is the events `(input index, value)` (inputs not listed are 0;
    /// models with integer weights take spikes only, value 1). Nothing changes when an event
    /// is out of range or, for an integer model, not a spike.
    pub fn step(&mut self, events: &[(usize, f32)]) -> Result<StepOutput<'_>, CoreError> {
        for &(i, x) in events {
            if i >= self.n_in {
                return Err(bad_input(i));
            }
            if self.integer && x != 1.0 {
                return Err(CoreError::Parameter {
                    what: "input event value",
                    why: "models with integer weights take spike events (value 1) only",
                });
            }
        }
        self.step_unchecked(events.iter().copied())
    }

    /// The step itself, for events checked already: what `run_sequence` does per step.
    fn step_unchecked(
        &mut self,
        events: impl Iterator<Item = (usize, f32)>,
    ) -> Result<StepOutput<'_>, CoreError> {
        let (readout, filtered, out) = (&self.readout, &mut self.filtered, &mut self.out);
        let spikes = with_engine!(&mut self.engine, |cell, state| {
            cell.step_inference(state, events, &mut NoNoise)?;
            readout.step_spikes(state.spikes(), filtered.as_mut(), out.as_mut())?
        });
        self.spike_count += spikes as u64;
        self.steps += 1;
        let window = self.windows.push(self.out.as_ref())?;
        Ok(StepOutput {
            y: self.out.as_ref(),
            window,
        })
    }

    /// Back to the all-zero state: the cell, the readout's filter and the window (a new
    /// sequence); the spike and step counts start from 0.
    pub fn reset(&mut self) {
        with_engine!(&mut self.engine, |_cell, state| state.reset());
        self.filtered.as_mut().fill(0.0);
        self.out.as_mut().fill(0.0);
        self.windows.reset();
        self.spike_count = 0;
        self.steps = 0;
    }

    /// Sets the window length (`>= 1` steps) and starts a new window.
    pub fn set_window_len(&mut self, len: usize) -> Result<(), CoreError> {
        self.windows.set_len(len)
    }

    /// The readout of the last step (zeros before the first).
    pub fn outputs(&self) -> &[f32] {
        self.out.as_ref()
    }

    /// The means over the window that the last step completed, if it completed one.
    pub fn window_means(&self) -> Option<&[f32]> {
        self.windows.completed()
    }

    /// The spikes of the last step, one per neuron (0 or `1/dt`).
    pub fn z(&self) -> &[f32] {
        with_engine!(&self.engine, |_cell, state| state.z())
    }

    /// The neurons that spiked in the last step, ascending.
    pub fn spikes(&self) -> impl Iterator<Item = usize> + '_ {
        let z = self.z();
        z.iter()
            .enumerate()
            .filter(|(_, &x)| x != 0.0)
            .map(|(j, _)| j)
    }

    /// The membrane voltages.
    pub fn voltages(&self) -> &[f32] {
        with_engine!(&self.engine, |_cell, state| state.v())
    }

    /// Spikes since the last reset.
    pub fn spike_count(&self) -> u64 {
        self.spike_count
    }

    /// Steps since the last reset.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Number of neurons N.
    pub fn n_rec(&self) -> usize {
        self.z().len()
    }

    /// Number of readout outputs O.
    pub fn n_out(&self) -> usize {
        self.out.as_ref().len()
    }

    /// Steps per window.
    pub fn window_len(&self) -> usize {
        self.windows.window_len()
    }
}

fn bad_input(i: usize) -> CoreError {
    CoreError::Size {
        what: "input event index",
        value: i,
        allowed: "< n_in",
    }
}
