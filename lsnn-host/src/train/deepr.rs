//! DEEP R's step (Bellec et al., ICLR 2018): after every optimiser step, the sparse matrices
//! `w = sign * theta` ([`RewiredMatrix`]) are regularised and rewired so that the number of
//! connections stays fixed.

use crate::error::HostError;
use crate::network::RewiredMatrix;
use lsnn_core::philox;
use lsnn_core::Real;
use ndarray::Array2;

/// The value a reconnected synapse starts from.
pub const RECONNECT_THETA: f64 = 1e-12;

/// Where a rewired matrix sits in the flat parameter vector `w_in | w_rec | w_out | b_out` (the
/// arrays present, in [`crate::network::Params::named`]'s order): DEEP R's Philox counters are
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
    use crate::network::{neuron_signs, Matrix, Params, Weights};
    use crate::train::optim::Optimizer;
    use crate::train::update::Rewiring;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn every_step_keeps_exactly_the_budget_of_connections() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let signs_in = neuron_signs(&mut rng, 30, 0.75, true);
        let signs_rec = neuron_signs(&mut rng, 40, 0.75, false);
        let rewired = vec![
            RewiredMatrix::<f32>::init_signed(&mut rng, Matrix::In, &signs_in, 40, 0.12).unwrap(),
            RewiredMatrix::init_signed(&mut rng, Matrix::Rec, &signs_rec, 40, 0.12).unwrap(),
            RewiredMatrix::init_unsigned(&mut rng, Matrix::Out, 40, 10, 0.3),
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
