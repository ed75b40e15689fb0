//! The trained arrays of a network and, for matrices kept sparse by DEEP R, their
//! parameterisation `w = sign * theta` (connected where `theta > 0`).

use lsnn_core::Real;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::Params;
use crate::error::HostError;

/// One of a network's three weight matrices: the handle that chooses a matrix (for DEEP R,
/// checkpoints, error messages) instead of its name as a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Matrix {
    /// The input weights `w_in` `[n_in, n_rec]`.
    In,
    /// The recurrent weights `w_rec` `[n_rec, n_rec]` (the diagonal is never used).
    Rec,
    /// The readout weights `w_out` `[n_rec, n_out]`.
    Out,
}

impl Matrix {
    /// The three matrices in the order of the flat parameter vector.
    pub const ALL: [Matrix; 3] = [Matrix::In, Matrix::Rec, Matrix::Out];

    /// The array's name (`w_in`, `w_rec`, `w_out`), as checkpoints and the optimiser key it.
    pub fn name(self) -> &'static str {
        match self {
            Matrix::In => "w_in",
            Matrix::Rec => "w_rec",
            Matrix::Out => "w_out",
        }
    }

    /// The matrix of a name; an error naming the unknown name and the known ones.
    pub fn from_name(name: &str) -> Result<Matrix, HostError> {
        Matrix::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                HostError::Network(format!(
                    "unknown matrix `{name}` (a network has w_in, w_rec and w_out)"
                ))
            })
    }
}

/// One rewired matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct RewiredMatrix<F> {
    /// Which weight matrix this is (`w_in`, `w_rec`, `w_out`: [`Matrix::name`]; DEEP R's own
    /// checks and fixtures may name any matrix).
    pub name: String,
    /// Magnitudes; connected where > 0.
    pub theta: Array2<F>,
    /// Fixed signs (+1 / -1).
    pub sign: Array2<F>,
    /// Target connectivity p of this matrix.
    pub connectivity: f64,
}

impl<F: Real> RewiredMatrix<F> {
    /// The weights `sign * theta` where connected, 0 elsewhere.
    pub fn weights(&self) -> Array2<F> {
        let mut w = self.theta.clone();
        w.zip_mut_with(&self.sign, |t, &s| {
            *t = if *t > F::zero() { s * *t } else { F::zero() }
        });
        w
    }

    /// Number of connected synapses.
    pub fn n_connected(&self) -> usize {
        self.theta.iter().filter(|&&t| t > F::zero()).count()
    }
}

/// The trained arrays plus, for rewired matrices, their DEEP R parameterisation.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights<F> {
    /// The dense arrays the network runs with (kept equal to `sign * theta` where rewired).
    pub params: Params<F>,
    /// Rewired matrices (empty: no DEEP R).
    pub rewired: Vec<RewiredMatrix<F>>,
}

impl<F: Real> Weights<F> {
    /// Dense weights, nothing rewired.
    pub fn dense(params: Params<F>) -> Self {
        Weights {
            params,
            rewired: Vec::new(),
        }
    }

    /// Writes `sign * theta` of every rewired matrix into the dense arrays; an error names a
    /// rewired matrix that is not one of the network's or whose shape differs from it.
    pub fn sync_rewired(&mut self) -> Result<(), HostError> {
        for m in &self.rewired {
            let dense = self.params.matrix_mut(Matrix::from_name(&m.name)?);
            if dense.dim() != m.theta.dim() || m.sign.dim() != m.theta.dim() {
                return Err(HostError::Network(format!(
                    "rewired {}: theta {:?} and sign {:?} must have the matrix's shape {:?}",
                    m.name,
                    m.theta.dim(),
                    m.sign.dim(),
                    dense.dim()
                )));
            }
            *dense = m.weights();
        }
        Ok(())
    }

    /// The rewired matrix of `matrix`, if DEEP R keeps it sparse.
    pub fn rewired(&self, matrix: Matrix) -> Option<&RewiredMatrix<F>> {
        self.rewired.iter().find(|m| m.name == matrix.name())
    }
}
