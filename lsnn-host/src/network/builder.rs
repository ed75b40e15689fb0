//! [`NetworkBuilder`]: a user's own network from its sizes and constants, initialised as the
//! tutorials initialise theirs.

use lsnn_core::CellConfig;
use ndarray::{Array1, Array2};
use rand::Rng;

use super::init::{glorot_uniform, neuron_signs, randn_scaled};
use super::weights::{Matrix, RewiredMatrix, Weights};
use super::{Params, Spec};
use crate::error::HostError;

/// A group of recurrent neurons sharing their constants: LIF when `beta` is 0, ALIF otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Population {
    /// Number of neurons.
    pub n: usize,
    /// Membrane time constant (ms).
    pub tau: f32,
    /// Baseline threshold.
    pub thr: f32,
    /// Adaptation strength (0: LIF).
    pub beta: f32,
}

impl Population {
    /// `n` LIF neurons.
    pub fn lif(n: usize, tau: f32, thr: f32) -> Population {
        Population {
            n,
            tau,
            thr,
            beta: 0.0,
        }
    }

    /// `n` ALIF neurons with adaptation strength `beta` (the time constant of adaptation is
    /// the network's, [`NetworkBuilder::tau_adaptation`]).
    pub fn alif(n: usize, tau: f32, thr: f32, beta: f32) -> Population {
        Population { n, tau, thr, beta }
    }
}

/// Synaptic delays in steps (a delay index `d` delivers a spike `d + 1` steps later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delays {
    /// Every synapse has this delay index.
    Fixed(u8),
    /// Each synapse draws its delay index uniformly from `lo..=hi`.
    Range(u8, u8),
}

/// How DEEP R keeps a matrix sparse: the fraction of connected synapses and whether the
/// signs follow the presynaptic neuron (Dale's law).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sparse {
    /// Random fixed signs per synapse (the store-recall tutorial's).
    Unsigned {
        /// Target fraction of connected synapses.
        connectivity: f64,
    },
    /// One sign per presynaptic neuron or input (Dale's law; the sMNIST tutorial's
    /// `random_sparse_signed_matrix`): w_rec and w_out share the neurons' signs, w_in has the
    /// inputs' ([`NetworkBuilder::excitatory`] of each positive).
    Signed {
        /// Target fraction of connected synapses.
        connectivity: f64,
    },
}

/// A network: its fixed part and its initial weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// Constants, neurons, delays.
    pub spec: Spec<f32>,
    /// Initial weights, with DEEP R's parameterisation where a matrix is sparse.
    pub weights: Weights<f32>,
}

/// A network from its inputs, populations and readout, drawn as the tutorials draw theirs:
/// the delays (inputs', then recurrent), then the dense matrices (`w_in` and `w_rec` as
/// `randn / sqrt(fan_in)`, `w_out` Glorot-uniform; `b_out` zero), then the signs of inputs
/// and neurons if a matrix is signed, then the sparse matrices from DEEP R's initialisers in
/// the order [`NetworkBuilder::sparse`] was called.
///
/// ```
/// use lsnn_host::network::{Delays, Matrix, NetworkBuilder, Population, Sparse};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
/// let network = NetworkBuilder::new(4, 2)
///     .population(Population::lif(30, 20.0, 0.03))
///     .population(Population::alif(30, 20.0, 0.03, 1.8))
///     .delays(Delays::Range(0, 4))
///     .sparse(Matrix::Rec, Sparse::Unsigned { connectivity: 0.3 })
///     .build(&mut rng)
///     .unwrap();
/// assert_eq!(network.spec.n_rec(), 60);
/// assert_eq!(network.spec.config.n_delay, 5);
/// ```
#[derive(Clone, Debug)]
pub struct NetworkBuilder {
    n_in: usize,
    n_out: usize,
    populations: Vec<Population>,
    config: CellConfig<f32>,
    delays: Delays,
    tau_out: Option<f32>,
    bias: bool,
    sparse: Vec<(Matrix, Sparse)>,
    excitatory: f64,
    dense_first: bool,
}

impl NetworkBuilder {
    /// `n_in` inputs, a readout of `n_out` outputs, no neurons yet; the original's cell
    /// defaults (dt 1 ms, tau_a 200 ms, V0 1, no delays, no refractoriness, dampening 0.3).
    pub fn new(n_in: usize, n_out: usize) -> NetworkBuilder {
        NetworkBuilder {
            n_in,
            n_out,
            populations: Vec::new(),
            config: CellConfig::new(),
            delays: Delays::Fixed(0),
            tau_out: None,
            bias: false,
            sparse: Vec::new(),
            excitatory: 0.8,
            dense_first: false,
        }
    }

    /// Adds a population (neurons are numbered in the order populations are added).
    pub fn population(mut self, population: Population) -> Self {
        self.populations.push(population);
        self
    }

    /// Synaptic delays of the input and recurrent synapses.
    pub fn delays(mut self, delays: Delays) -> Self {
        self.delays = delays;
        self
    }

    /// The time step (ms).
    pub fn dt(mut self, dt: f32) -> Self {
        self.config.dt = dt;
        self
    }

    /// The voltage unit V0 (the engine multiplies the weights by it).
    pub fn v0(mut self, v0: f32) -> Self {
        self.config.v0 = v0;
        self
    }

    /// Refractory period in steps.
    pub fn refractory(mut self, steps: usize) -> Self {
        self.config.n_refractory = steps;
        self
    }

    /// The adaptation time constant of the ALIF neurons (ms).
    pub fn tau_adaptation(mut self, tau_a: f32) -> Self {
        self.config.tau_adaptation = tau_a;
        self
    }

    /// The height of the spike's pseudo-derivative.
    pub fn dampening(mut self, factor: f32) -> Self {
        self.config.dampening_factor = factor;
        self
    }

    /// The readout filter's time constant (ms; default: the first population's tau).
    pub fn tau_out(mut self, tau_out: f32) -> Self {
        self.tau_out = Some(tau_out);
        self
    }

    /// Whether the readout has a bias `b_out` (default: none).
    pub fn readout_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Keeps `matrix` sparse under DEEP R.
    pub fn sparse(mut self, matrix: Matrix, sparse: Sparse) -> Self {
        self.sparse.push((matrix, sparse));
        self
    }

    /// The fraction of excitatory inputs and neurons of signed matrices (default 0.8).
    pub fn excitatory(mut self, fraction: f64) -> Self {
        self.excitatory = fraction;
        self
    }

    /// Whether sparse matrices get a dense draw too before DEEP R's initialiser replaces it
    /// (the store-recall tutorial's order of random numbers; default: no).
    pub fn dense_first(mut self, dense_first: bool) -> Self {
        self.dense_first = dense_first;
        self
    }

    /// The network, its delays and weights drawn from `rng`; an error names the argument that
    /// is wrong.
    pub fn build<R: Rng>(&self, rng: &mut R) -> Result<Network, HostError> {
        self.check()?;
        let spec = self.draw_spec(rng);
        let weights = self.draw_weights(rng)?;
        spec.check(&weights.params)?;
        Ok(Network { spec, weights })
    }

    /// The weights of [`NetworkBuilder::build`] (what it draws after the spec), unchecked.
    pub fn draw_weights<R: Rng>(&self, rng: &mut R) -> Result<Weights<f32>, HostError> {
        let n: usize = self.populations.iter().map(|p| p.n).sum();
        let (n_in, n_out) = (self.n_in, self.n_out);
        let sparse = |m: Matrix| self.sparse.iter().find(|(x, _)| *x == m).map(|(_, s)| *s);
        let signed = |m: Matrix| matches!(sparse(m), Some(Sparse::Signed { .. }));
        let mut params = Params {
            w_in: Array2::zeros((n_in, n)),
            w_rec: Array2::zeros((n, n)),
            w_out: Array2::zeros((n, n_out)),
            b_out: self.bias.then(|| Array1::zeros(n_out)),
        };
        for matrix in Matrix::ALL {
            if self.dense_first || sparse(matrix).is_none() {
                *params.matrix_mut(matrix) = match matrix {
                    Matrix::In => randn_scaled(rng, n_in, n),
                    Matrix::Rec => randn_scaled(rng, n, n),
                    Matrix::Out => glorot_uniform(rng, n, n_out),
                };
            }
        }
        // Inputs' signs are shuffled, neurons' not, as the sMNIST tutorial draws them.
        let input_signs =
            signed(Matrix::In).then(|| neuron_signs(rng, n_in, self.excitatory, true));
        let neuron_signs = (signed(Matrix::Rec) || signed(Matrix::Out))
            .then(|| neuron_signs(rng, n, self.excitatory, false));
        let mut weights = Weights::dense(params);
        for &(matrix, sparse) in &self.sparse {
            let (rows, cols) = weights.params.matrix(matrix).dim();
            let rewired = match sparse {
                Sparse::Unsigned { connectivity } => {
                    RewiredMatrix::init_unsigned(rng, matrix, rows, cols, connectivity)
                }
                Sparse::Signed { connectivity } => {
                    let signs = match matrix {
                        Matrix::In => &input_signs,
                        Matrix::Rec | Matrix::Out => &neuron_signs,
                    };
                    let signs = signs.as_deref().unwrap_or_default();
                    RewiredMatrix::init_signed(rng, matrix, signs, cols, connectivity)?
                }
            };
            weights.rewired.push(rewired);
        }
        weights.sync_rewired()?;
        Ok(weights)
    }

    /// The fixed part of [`NetworkBuilder::build`]'s network (the delays drawn from `rng`),
    /// unchecked.
    pub fn draw_spec<R: Rng>(&self, rng: &mut R) -> Spec<f32> {
        let per_neuron = |f: fn(&Population) -> f32| {
            self.populations
                .iter()
                .flat_map(|p| std::iter::repeat_n(f(p), p.n))
                .collect::<Vec<_>>()
        };
        let n: usize = self.populations.iter().map(|p| p.n).sum();
        let (lo, hi) = match self.delays {
            Delays::Fixed(d) => (d, d),
            Delays::Range(lo, hi) => (lo, hi),
        };
        let draw = matches!(self.delays, Delays::Range(..));
        let mut delays =
            |rows: usize| {
                Array2::from_shape_simple_fn((rows, n), || {
                    if draw {
                        rng.gen_range(lo..=hi)
                    } else {
                        lo
                    }
                })
            };
        let delay_in = delays(self.n_in);
        let delay_rec = delays(n);
        Spec {
            config: CellConfig {
                n_delay: usize::from(hi) + 1,
                ..self.config
            },
            tau: per_neuron(|p| p.tau),
            thr: per_neuron(|p| p.thr),
            beta: per_neuron(|p| p.beta),
            delay_in,
            delay_rec,
            tau_out: self
                .tau_out
                .unwrap_or_else(|| self.populations.first().map_or(1.0, |p| p.tau)),
        }
    }

    fn check(&self) -> Result<(), HostError> {
        let bad = |argument: &str, message: String| {
            Err(HostError::Network(format!("{argument}: {message}")))
        };
        if self.n_in == 0 {
            return bad("n_in", "a network needs at least one input".into());
        }
        if self.n_out == 0 {
            return bad("n_out", "the readout needs at least one output".into());
        }
        if self.populations.iter().all(|p| p.n == 0) {
            return bad(
                "population",
                "add at least one population of one or more neurons".into(),
            );
        }
        if let Some((k, p)) = self
            .populations
            .iter()
            .enumerate()
            .find(|(_, p)| !(p.tau > 0.0 && p.thr > 0.0 && p.beta >= 0.0))
        {
            return bad(
                "population",
                format!("population {k} needs tau > 0, thr > 0 and beta >= 0, got {p:?}"),
            );
        }
        if let Delays::Range(lo, hi) = self.delays {
            if lo > hi {
                return bad("delays", format!("the range {lo}..={hi} is empty"));
            }
        }
        if !(0.0..=1.0).contains(&self.excitatory) {
            return bad(
                "excitatory",
                format!("must be in [0, 1], got {}", self.excitatory),
            );
        }
        if let Some(tau_out) = self.tau_out.filter(|t| t.is_nan() || *t <= 0.0) {
            return bad("tau_out", format!("must be > 0, got {tau_out}"));
        }
        for (k, &(matrix, sparse)) in self.sparse.iter().enumerate() {
            if self.sparse[..k].iter().any(|(m, _)| *m == matrix) {
                return bad("sparse", format!("{} is made sparse twice", matrix.name()));
            }
            let (Sparse::Unsigned { connectivity } | Sparse::Signed { connectivity, .. }) = sparse;
            if !(connectivity > 0.0 && connectivity <= 1.0) {
                return bad(
                    "sparse",
                    format!(
                        "the connectivity of {} must be in (0, 1], got {connectivity}",
                        matrix.name()
                    ),
                );
            }
        }
        Ok(())
    }
}
