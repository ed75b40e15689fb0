//! A network: its fixed part ([`Spec`]: cell constants, neurons, delays, readout filter) and
//! its trained arrays ([`Params`] in dense form, as the original's TensorFlow variables hold
//! them, and [`Weights`] with the DEEP R parameterisation of sparse matrices), the tutorials'
//! initialisers ([`randn_scaled`], [`glorot_uniform`], [`neuron_signs`], DEEP R's
//! [`RewiredMatrix::init_unsigned`] and [`RewiredMatrix::init_signed`]) and a builder for
//! networks of one's own ([`NetworkBuilder`]).

mod builder;
mod init;
mod weights;

pub use builder::{Delays, Network, NetworkBuilder, Population, Sparse};
pub use init::{glorot_uniform, neuron_signs, randn_scaled};
pub use weights::{Matrix, RewiredMatrix, Weights};

use lsnn_core::{CellConfig, Csr, Neuron, Real};
use ndarray::{Array1, Array2};

use crate::error::HostError;

/// The fixed (non-trained) part of a network: cell parameters, neurons, delays, readout filter.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec<F> {
    /// Cell-wide parameters.
    pub config: CellConfig<F>,
    /// Membrane time constant per neuron (ms).
    pub tau: Vec<F>,
    /// Baseline threshold per neuron.
    pub thr: Vec<F>,
    /// Adaptation strength per neuron (0 = LIF).
    pub beta: Vec<F>,
    /// Delay index of each input synapse `[I, N]`.
    pub delay_in: Array2<u8>,
    /// Delay index of each recurrent synapse `[N, N]`.
    pub delay_rec: Array2<u8>,
    /// Readout filter time constant (ms).
    pub tau_out: F,
}

/// The trained arrays, before V0 scaling and autapse removal (the original's `w_in_val`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Params<F> {
    /// Input weights `[I, N]`.
    pub w_in: Array2<F>,
    /// Recurrent weights `[N, N]` (the diagonal is ignored).
    pub w_rec: Array2<F>,
    /// Readout weights `[N, O]`.
    pub w_out: Array2<F>,
    /// Readout bias `[O]` (sMNIST has one, store-recall not).
    pub b_out: Option<Array1<F>>,
}

impl<F: Real> Spec<F> {
    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.delay_in.nrows()
    }

    /// Number of recurrent neurons.
    pub fn n_rec(&self) -> usize {
        self.tau.len()
    }

    /// The per-neuron constants of the core's equations.
    pub fn neurons(&self) -> Result<Vec<Neuron<F>>, HostError> {
        (0..self.n_rec())
            .map(|j| Neuron::new(self.tau[j], self.thr[j], self.beta[j], self.config.dt))
            .collect::<Result<_, _>>()
            .map_err(|e| HostError::Network(format!("neuron parameters: {e}")))
    }

    /// Checks sizes and delays against each other and against `params`.
    pub fn check(&self, params: &Params<F>) -> Result<(), HostError> {
        let (n_in, n) = (self.n_in(), self.n_rec());
        let bad = |what: String| Err(HostError::Network(what));
        if self.thr.len() != n || self.beta.len() != n {
            return bad(format!(
                "tau, thr, beta must have one entry per neuron (got {}, {}, {})",
                n,
                self.thr.len(),
                self.beta.len()
            ));
        }
        if self.delay_in.dim() != (n_in, n) || self.delay_rec.dim() != (n, n) {
            return bad("delay_in must be [n_in, n_rec] and delay_rec [n_rec, n_rec]".into());
        }
        if params.w_in.dim() != (n_in, n) || params.w_rec.dim() != (n, n) {
            return bad(format!(
                "w_in must be [{n_in}, {n}] and w_rec [{n}, {n}], got {:?} and {:?}",
                params.w_in.dim(),
                params.w_rec.dim()
            ));
        }
        if params.w_out.nrows() != n || params.w_out.ncols() == 0 {
            return bad(format!(
                "w_out must be [{n}, n_out >= 1], got {:?}",
                params.w_out.dim()
            ));
        }
        if let Some(b) = &params.b_out {
            if b.len() != params.w_out.ncols() {
                return bad(format!("b_out must have {} entries", params.w_out.ncols()));
            }
        }
        let d = self.config.n_delay;
        if self
            .delay_in
            .iter()
            .chain(self.delay_rec.iter())
            .any(|&x| usize::from(x) >= d)
        {
            return bad(format!("every delay index must be < n_delay = {d}"));
        }
        self.config
            .validate()
            .map_err(|e| HostError::Network(format!("cell parameters: {e}")))?;
        Ok(())
    }
}

impl<F: Real> Params<F> {
    /// The effective sparse input and recurrent synapses the cell runs on (V0 applied, no
    /// autapses, zeros dropped).
    pub fn synapses(&self, spec: &Spec<F>) -> Result<(Csr<F>, Csr<F>), HostError> {
        let v0 = spec.config.v0;
        let to_csr = |w: &Array2<F>, d: &Array2<u8>, no_autapse: bool| {
            let w = w.as_standard_layout();
            let delays: Vec<usize> = d.iter().map(|&x| usize::from(x)).collect();
            Csr::from_dense(
                w.nrows(),
                w.ncols(),
                w.as_slice().expect("standard layout"),
                &delays,
                v0,
                no_autapse,
            )
            .map_err(|e| HostError::Network(format!("building synapses: {e}")))
        };
        Ok((
            to_csr(&self.w_in, &spec.delay_in, false)?,
            to_csr(&self.w_rec, &spec.delay_rec, true)?,
        ))
    }

    /// The dense array of `matrix`.
    pub fn matrix(&self, matrix: Matrix) -> &Array2<F> {
        match matrix {
            Matrix::In => &self.w_in,
            Matrix::Rec => &self.w_rec,
            Matrix::Out => &self.w_out,
        }
    }

    /// The dense array of `matrix`, mutable.
    pub fn matrix_mut(&mut self, matrix: Matrix) -> &mut Array2<F> {
        match matrix {
            Matrix::In => &mut self.w_in,
            Matrix::Rec => &mut self.w_rec,
            Matrix::Out => &mut self.w_out,
        }
    }

    /// Number of readout outputs.
    pub fn n_out(&self) -> usize {
        self.w_out.ncols()
    }

    /// Zero arrays of the same shapes (gradient accumulators).
    pub fn zeros_like(&self) -> Params<F> {
        Params {
            w_in: Array2::zeros(self.w_in.dim()),
            w_rec: Array2::zeros(self.w_rec.dim()),
            w_out: Array2::zeros(self.w_out.dim()),
            b_out: self.b_out.as_ref().map(|b| Array1::zeros(b.len())),
        }
    }

    /// `self += other`, array by array.
    pub fn add_assign(&mut self, other: &Params<F>) {
        self.w_in.zip_mut_with(&other.w_in, |a, &b| *a = *a + b);
        self.w_rec.zip_mut_with(&other.w_rec, |a, &b| *a = *a + b);
        self.w_out.zip_mut_with(&other.w_out, |a, &b| *a = *a + b);
        if let (Some(a), Some(b)) = (&mut self.b_out, &other.b_out) {
            a.zip_mut_with(b, |a, &b| *a = *a + b);
        }
    }

    /// The arrays with their names, for optimisers and NaN reports.
    pub fn named(&self) -> Vec<(&'static str, &[F])> {
        let mut v = vec![
            ("w_in", self.w_in.as_slice().expect("standard layout")),
            ("w_rec", self.w_rec.as_slice().expect("standard layout")),
            ("w_out", self.w_out.as_slice().expect("standard layout")),
        ];
        if let Some(b) = &self.b_out {
            v.push(("b_out", b.as_slice().expect("standard layout")));
        }
        v
    }

    /// Mutable arrays with their names, in the order of [`Params::named`].
    pub fn named_mut(&mut self) -> Vec<(&'static str, &mut [F])> {
        let mut v = vec![
            ("w_in", self.w_in.as_slice_mut().expect("standard layout")),
            ("w_rec", self.w_rec.as_slice_mut().expect("standard layout")),
            ("w_out", self.w_out.as_slice_mut().expect("standard layout")),
        ];
        if let Some(b) = &mut self.b_out {
            v.push(("b_out", b.as_slice_mut().expect("standard layout")));
        }
        v
    }
}
