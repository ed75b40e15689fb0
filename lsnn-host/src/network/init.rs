//! The tutorials' initialisers: `randn / sqrt(fan_in)`, TensorFlow's default Glorot-uniform,
//! and DEEP R's sparse matrices, unsigned or with Dale's-law signs (the original's
//! `weight_sampler` and `random_sparse_signed_matrix`), and neuron signs.

use lsnn_core::Real;
use nalgebra::DMatrix;
use ndarray::Array2;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use super::weights::{Matrix, RewiredMatrix};
use crate::error::HostError;

/// `randn / sqrt(rows)`, row by row: the original's initialisation of `w_in` and `w_rec`.
pub fn randn_scaled<R: Rng>(rng: &mut R, rows: usize, cols: usize) -> Array2<f32> {
    let scale = (rows as f64).sqrt();
    Array2::from_shape_simple_fn((rows, cols), || {
        (Distribution::<f64>::sample(&StandardNormal, rng) / scale) as f32
    })
}

/// Uniform in `+-sqrt(6 / (rows + cols))`: TensorFlow's default (Glorot-uniform) for `w_out`.
pub fn glorot_uniform<R: Rng>(rng: &mut R, rows: usize, cols: usize) -> Array2<f32> {
    let limit = (6.0 / (rows + cols) as f64).sqrt();
    Array2::from_shape_simple_fn((rows, cols), || rng.gen_range(-limit..limit) as f32)
}

impl<F: Real> RewiredMatrix<F> {
    /// `int(n_in * n_out * p)` draws of (row, column) WITH replacement, as the original's
    /// `weight_sampler` (duplicates make the first count a little lower than the budget).
    fn initial_mask<R: Rng>(rng: &mut R, n_in: usize, n_out: usize, p: f64) -> Array2<bool> {
        let n_draws = (n_in as f64 * n_out as f64 * p) as usize;
        let rows: Vec<usize> = (0..n_draws).map(|_| rng.gen_range(0..n_in)).collect();
        let cols: Vec<usize> = (0..n_draws).map(|_| rng.gen_range(0..n_out)).collect();
        let mut mask = Array2::from_elem((n_in, n_out), false);
        for (r, c) in rows.into_iter().zip(cols) {
            mask[[r, c]] = true;
        }
        mask
    }

    /// Without neuron signs: `theta = |randn / sqrt(n_in)|` on the sampled entries, random signs.
    pub fn init_unsigned<R: Rng>(
        rng: &mut R,
        matrix: Matrix,
        n_in: usize,
        n_out: usize,
        p: f64,
    ) -> Self {
        let mask = Self::initial_mask(rng, n_in, n_out, p);
        let scale = (n_in as f64).sqrt();
        let theta = Array2::from_shape_fn((n_in, n_out), |ij| {
            let x: f64 = StandardNormal.sample(rng);
            if mask[ij] {
                F::of((x / scale).abs())
            } else {
                F::zero()
            }
        });
        let sign = Array2::from_shape_fn((n_in, n_out), |_| {
            let x: f64 = StandardNormal.sample(rng);
            F::of(x.signum())
        });
        RewiredMatrix {
            name: matrix.name().into(),
            theta,
            sign,
            connectivity: p,
        }
    }

    /// With neuron signs (Dale's law): the original's `random_sparse_signed_matrix` (balanced,
    /// spectral radius 1), columns selected for `n_out`, then masked by the sampled entries.
    pub fn init_signed<R: Rng>(
        rng: &mut R,
        matrix: Matrix,
        neuron_sign: &[f64],
        n_out: usize,
        p: f64,
    ) -> Result<Self, HostError> {
        let mask = Self::initial_mask(rng, neuron_sign.len(), n_out, p);
        let (theta_sq, sign_sq) = signed_square(rng, neuron_sign)?;
        let n = neuron_sign.len();
        let columns: Vec<usize> = if n < n_out {
            (0..n_out).map(|_| rng.gen_range(0..n)).collect()
        } else {
            (0..n_out).collect()
        };
        let theta = Array2::from_shape_fn((n, n_out), |(i, k)| {
            F::of(if mask[[i, k]] {
                theta_sq[[i, columns[k]]]
            } else {
                0.0
            })
        });
        let sign = Array2::from_shape_fn((n, n_out), |(i, k)| F::of(sign_sq[[i, columns[k]]]));
        Ok(RewiredMatrix {
            name: matrix.name().into(),
            theta,
            sign,
            connectivity: p,
        })
    }
}

/// Signs of `n` neurons with `int(proportion * n) + 1` excitatory (+1), inhibitory first, as
/// the sMNIST tutorial builds them; shuffled when `shuffle` (the tutorial shuffles inputs only).
pub fn neuron_signs<R: Rng>(rng: &mut R, n: usize, proportion: f64, shuffle: bool) -> Vec<f64> {
    let n_exc = ((proportion * n as f64) as usize + 1).min(n);
    let mut signs: Vec<f64> = (0..n)
        .map(|i| if i < n - n_exc { -1.0 } else { 1.0 })
        .collect();
    if shuffle {
        use rand::seq::SliceRandom;
        signs.shuffle(rng);
    }
    signs
}

/// The dense signed square matrix of `random_sparse_signed_matrix` with p = 1:
/// |randn| signed by row, inhibition rescaled to equal excitation, each column balanced to zero
/// sum, then scaled to spectral radius 1. Returns (theta, sign).
fn signed_square<R: Rng>(
    rng: &mut R,
    neuron_sign: &[f64],
) -> Result<(Array2<f64>, Array2<f64>), HostError> {
    let n = neuron_sign.len();
    let mut theta = Array2::from_shape_fn((n, n), |_| {
        let x: f64 = StandardNormal.sample(rng);
        x.abs()
    });
    let sign = Array2::from_shape_fn((n, n), |(i, _)| neuron_sign[i]);
    let is_exc = |i: usize| neuron_sign[i] > 0.0;
    if neuron_sign.iter().any(|&s| s < 0.0) {
        let (mut val_e, mut val_i) = (0.0, 0.0);
        for ((i, _), &t) in theta.indexed_iter() {
            if is_exc(i) {
                val_e += t;
            } else {
                val_i += t;
            }
        }
        if val_e <= 0.0 || val_i <= 0.0 {
            return Err(HostError::Network(
                "signed initialisation needs both excitatory and inhibitory neurons".into(),
            ));
        }
        for (i, mut row) in theta.rows_mut().into_iter().enumerate() {
            if !is_exc(i) {
                row.mapv_inplace(|t| t * val_e / val_i);
            }
        }
        balance_columns(&mut theta, neuron_sign);
    }
    let w = &theta * &sign;
    let radius = DMatrix::from_row_iterator(n, n, w.iter().copied())
        .complex_eigenvalues()
        .iter()
        .map(|c| c.norm())
        .fold(0.0f64, f64::max);
    if !(radius.is_finite() && radius > 0.0) {
        return Err(HostError::Network(format!(
            "signed initialisation: spectral radius {radius} cannot be normalised"
        )));
    }
    theta.mapv_inplace(|t| t / radius);
    Ok((theta, sign))
}

/// Each column's signed entries shifted to sum to zero (excitatory ones up if the column is
/// inhibition-dominated, inhibitory ones down otherwise); a column lacking either kind is
/// zeroed, as the original does.
fn balance_columns(theta: &mut Array2<f64>, neuron_sign: &[f64]) {
    for mut col in theta.columns_mut() {
        let (mut s_e, mut s_i, mut n_e, mut n_i) = (0.0, 0.0, 0usize, 0usize);
        for (i, &t) in col.iter().enumerate() {
            if t > 0.0 && neuron_sign[i] > 0.0 {
                s_e += t;
                n_e += 1;
            } else if t > 0.0 {
                s_i -= t;
                n_i += 1;
            }
        }
        if n_e == 0 || n_i == 0 {
            col.fill(0.0);
            continue;
        }
        let excess = (s_e + s_i).abs();
        let raise_exc = s_e + s_i < 0.0;
        for (i, t) in col.iter_mut().enumerate() {
            if *t > 0.0 && neuron_sign[i] > 0.0 && raise_exc {
                *t += excess / n_e as f64;
            } else if *t > 0.0 && neuron_sign[i] < 0.0 && !raise_exc {
                *t += excess / n_i as f64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn signed_init_is_balanced_with_unit_spectral_radius() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let signs = neuron_signs(&mut rng, 50, 0.75, false);
        assert_eq!(signs.iter().filter(|&&s| s > 0.0).count(), 38);
        assert!(signs[..12].iter().all(|&s| s < 0.0), "inhibitory first");
        let (theta, sign) = signed_square(&mut rng, &signs).unwrap();
        let w = &theta * &sign;
        for col in w.columns() {
            assert!(col.sum().abs() < 1e-9, "column sum {}", col.sum());
        }
        for (i, row) in sign.rows().into_iter().enumerate() {
            assert!(row.iter().all(|&s| s == signs[i]));
        }
        let radius = DMatrix::from_row_iterator(50, 50, w.iter().copied())
            .complex_eigenvalues()
            .iter()
            .map(|c| c.norm())
            .fold(0.0f64, f64::max);
        assert!((radius - 1.0).abs() < 1e-9, "radius {radius}");
    }
}
