//! DEEP R (Bellec et al., ICLR 2018): sparse matrices `w = sign * theta` (connected where
//! theta > 0) rewired after every optimiser step so that the number of connections stays fixed.

use crate::error::HostError;
use lsnn_core::philox;
use lsnn_core::Real;
use nalgebra::DMatrix;
use ndarray::Array2;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// The value a reconnected synapse starts from.
pub const RECONNECT_THETA: f64 = 1e-12;

/// One rewired matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct RewiredMatrix<F> {
    /// Which weight matrix this is (`w_in`, `w_rec`, `w_out`).
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
        name: &str,
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
            name: name.into(),
            theta,
            sign,
            connectivity: p,
        }
    }

    /// With neuron signs (Dale's law): the original's `random_sparse_signed_matrix` (balanced,
    /// spectral radius 1), columns selected for `n_out`, then masked by the sampled entries.
    pub fn init_signed<R: Rng>(
        rng: &mut R,
        name: &str,
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
            name: name.into(),
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

/// Where a rewired matrix sits in the flat parameter vector `w_in | w_rec | w_out | b_out` (the
/// arrays present, in [`crate::train::Params::named`]'s order): DEEP R's Philox counters are
/// keyed by these, so the host and lsnn-gpu draw the same numbers for the same entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlatPlace {
    /// Index of the array among those present.
    pub segment: u32,
    /// Flat index of its first entry.
    pub start: u32,
}

/// Steps 3 and 4 of a DEEP R step, after the optimiser: entries disconnected before the step
/// go back to 0; connected ones get `-lr * l1 + sqrt(2 lr T) N(0, 1)`, the normal drawn from
/// Philox block `(place.start + k, STREAM_NOISE)` under `key` for entry k.
pub fn guard_and_regularise<F: Real>(
    theta: &mut Array2<F>,
    was_connected: &Array2<bool>,
    lr: f64,
    l1: f64,
    temperature: f64,
    key: u64,
    place: FlatPlace,
) {
    let noise_scale = (2.0 * lr * temperature).sqrt();
    let key = philox::key_words(key);
    theta.zip_mut_with(was_connected, |t, &was| {
        if !was {
            *t = F::zero();
        }
    });
    for (k, t) in theta.iter_mut().enumerate() {
        if *t > F::zero() {
            let noise = if temperature > 0.0 {
                let counter = [place.start + k as u32, philox::STREAM_NOISE, 0, 0];
                noise_scale * philox::normal(philox::philox4x32_10(counter, key))
            } else {
                0.0
            };
            *t = *t + F::of(-lr * l1 + noise);
        }
    }
}

/// Not `theta > 0` (NaN included), as the kernels test it.
fn is_disconnected<F: Real>(theta: F) -> bool {
    theta.partial_cmp(&F::zero()) != Some(std::cmp::Ordering::Greater)
}

/// The global budget `K = int(sum_m size_m * p_m)`, summed in float32 as TensorFlow does.
pub fn budget<F: Real>(matrices: &[RewiredMatrix<F>]) -> usize {
    budget_of(matrices.iter().map(|m| (m.theta.len(), m.connectivity)))
}

/// [`budget`] of matrices given as `(size, connectivity)`.
pub fn budget_of(matrices: impl Iterator<Item = (usize, f64)>) -> usize {
    matrices
        .map(|(size, p)| size as f32 * p as f32)
        .sum::<f32>() as usize
}

/// Step 5: reconnect `K - connected` synapses, split among the matrices by categorical draws
/// (probabilities proportional to size * p), each at uniformly chosen disconnected entries,
/// set to theta = 1e-12 with their fixed sign. Returns the number connected afterwards.
///
/// The draws are Philox blocks under `key` (lsnn-gpu's `lsnn_reconnect` makes the same ones):
/// draw i of the split is block `(i, STREAM_SPLIT)`, a uniform over the matrices in segment
/// order; matrix s then takes entries `below(word 0 of block (attempt, STREAM_PICK, s), size)`
/// for attempt = 0, 1, ..., keeping the disconnected ones (uniform without replacement), or all
/// of its disconnected entries when it needs that many.
pub fn reconnect<F: Real>(
    matrices: &mut [RewiredMatrix<F>],
    places: &[FlatPlace],
    key: u64,
) -> Result<usize, HostError> {
    if places.len() != matrices.len() {
        return Err(HostError::Network(format!(
            "{} rewired matrices but {} flat places",
            matrices.len(),
            places.len()
        )));
    }
    let connected: usize = matrices.iter().map(|m| m.n_connected()).sum();
    let missing = budget(matrices).saturating_sub(connected);
    let key = philox::key_words(key);
    let mut order: Vec<usize> = (0..matrices.len()).collect();
    order.sort_by_key(|&m| places[m].segment);
    let weights: Vec<f64> = order
        .iter()
        .map(|&m| matrices[m].theta.len() as f64 * matrices[m].connectivity)
        .collect();
    let counts = split(missing, &weights, key);
    for (&m, &count) in order.iter().zip(&counts) {
        place(&mut matrices[m], count, places[m].segment, key)?;
    }
    Ok(matrices.iter().map(|m| m.n_connected()).sum())
}

/// How many of `missing` new synapses go to each matrix (weights in segment order): draw i is
/// a uniform of block `(i, STREAM_SPLIT)` over the cumulated weights.
fn split(missing: usize, weights: &[f64], key: [u32; 2]) -> Vec<usize> {
    let total: f64 = weights.iter().sum();
    let mut counts = vec![0usize; weights.len()];
    if total <= 0.0 {
        return counts;
    }
    for i in 0..missing {
        let r = philox::philox4x32_10([i as u32, philox::STREAM_SPLIT, 0, 0], key);
        let u = philox::uniform53(r[0], r[1]) * total;
        let (mut cumulative, mut pick, mut last) = (0.0, None, None);
        for (m, &w) in weights.iter().enumerate() {
            if w <= 0.0 {
                continue;
            }
            last = Some(m);
            cumulative += w;
            if u < cumulative {
                pick = Some(m);
                break;
            }
        }
        if let Some(m) = pick.or(last) {
            counts[m] += 1;
        }
    }
    counts
}

/// Connects `count` disconnected entries of `matrix` (all of them when it has no more): entry
/// `below(word 0 of block (attempt, STREAM_PICK, segment), size)` for attempt = 0, 1, ...,
/// skipping those already connected.
fn place<F: Real>(
    matrix: &mut RewiredMatrix<F>,
    count: usize,
    segment: u32,
    key: [u32; 2],
) -> Result<(), HostError> {
    let disconnected = matrix.theta.len() - matrix.n_connected();
    let want = count.min(disconnected);
    let flat = matrix.theta.as_slice_mut().expect("standard layout");
    let reconnect = F::of(RECONNECT_THETA);
    if want == disconnected {
        flat.iter_mut()
            .filter(|t| is_disconnected(**t))
            .for_each(|t| *t = reconnect);
        return Ok(());
    }
    let size = u32::try_from(flat.len())
        .map_err(|_| HostError::Network("a rewired matrix over 2^32 entries".into()))?;
    let (mut placed, mut attempt) = (0, 0u32);
    while placed < want {
        let r = philox::philox4x32_10([attempt, philox::STREAM_PICK, segment, 0], key);
        let at = philox::below(r[0], size) as usize;
        if is_disconnected(flat[at]) {
            flat[at] = reconnect;
            placed += 1;
        }
        attempt = attempt.wrapping_add(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::network::Params;
    use crate::train::optim::Optimizer;
    use crate::train::update::{Rewiring, Weights};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn every_step_keeps_exactly_the_budget_of_connections() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let signs_in = neuron_signs(&mut rng, 30, 0.75, true);
        let signs_rec = neuron_signs(&mut rng, 40, 0.75, false);
        let rewired = vec![
            RewiredMatrix::<f32>::init_signed(&mut rng, "w_in", &signs_in, 40, 0.12).unwrap(),
            RewiredMatrix::init_signed(&mut rng, "w_rec", &signs_rec, 40, 0.12).unwrap(),
            RewiredMatrix::init_unsigned(&mut rng, "w_out", 40, 10, 0.3),
        ];
        let budget = budget(&rewired);
        assert_eq!(
            budget,
            (30 * 40 * 12 + 40 * 40 * 12) / 100 + 40 * 10 * 3 / 10
        );
        let mut weights = Weights {
            params: Params {
                w_in: Array2::zeros((30, 40)),
                w_rec: Array2::zeros((40, 40)),
                w_out: Array2::zeros((40, 10)),
                b_out: None,
            },
            rewired,
        };
        weights.sync_rewired().unwrap();
        let mut opt = Optimizer::adam();
        let rewiring = Some(Rewiring {
            l1: 1e-2,
            temperature: 1e-4,
        });
        let mut total_rewired = 0;
        for _ in 0..300 {
            let before: Vec<Array2<bool>> = weights
                .rewired
                .iter()
                .map(|m| m.theta.mapv(|t| t > 0.0))
                .collect();
            let mut grads = weights.params.zeros_like();
            for g in [&mut grads.w_in, &mut grads.w_rec, &mut grads.w_out] {
                g.mapv_inplace(|_| rng.gen_range(-1.0..1.0));
            }
            weights
                .apply(&grads, &mut opt, 0.05, rewiring, &mut rng)
                .unwrap();
            let connected: usize = weights.rewired.iter().map(|m| m.n_connected()).sum();
            assert_eq!(connected, budget);
            for (m, b) in weights.rewired.iter().zip(&before) {
                total_rewired += m
                    .theta
                    .iter()
                    .zip(b)
                    .filter(|(&t, &b)| (t > 0.0) != b)
                    .count();
                // Dale's law / fixed signs: every weight has its matrix sign or is 0.
                let w = match m.name.as_str() {
                    "w_in" => &weights.params.w_in,
                    "w_rec" => &weights.params.w_rec,
                    _ => &weights.params.w_out,
                };
                for ((&w, &s), &t) in w.iter().zip(&m.sign).zip(&m.theta) {
                    assert!(w == 0.0 || w.signum() == s, "w {w} sign {s}");
                    assert_eq!(w != 0.0, t > 0.0);
                }
            }
        }
        assert!(
            total_rewired > 100,
            "rewiring should move connections: {total_rewired}"
        );
    }

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

    #[test]
    fn previously_disconnected_entries_reset_and_new_negatives_stay() {
        let mut theta = Array2::from_shape_vec((1, 3), vec![-0.5f64, -0.2, 0.3]).unwrap();
        let was = Array2::from_shape_vec((1, 3), vec![false, true, true]).unwrap();
        let place = FlatPlace {
            segment: 0,
            start: 0,
        };
        guard_and_regularise(&mut theta, &was, 0.1, 0.5, 0.0, 7, place);
        assert_eq!(theta.as_slice().unwrap(), &[0.0, -0.2, 0.3 - 0.05]);
    }
}
