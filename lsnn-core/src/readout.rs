//! The tutorials' readout: exponentially filtered spikes, a linear layer, windowed means.

use crate::error::check_len;
use crate::{CoreError, Real};
use core::marker::PhantomData;

/// `exp_convolve`: `a_t = a_{t-1} * decay + (1 - decay) * x_t`, `a_{-1} = 0`, over `x` laid out
/// `[T, C]` row-major; writes `out` `[T, C]`.
pub fn exp_convolve<F: Real>(
    x: &[F],
    n_channels: usize,
    decay: F,
    out: &mut [F],
) -> Result<(), CoreError> {
    if n_channels == 0 || x.len() % n_channels != 0 {
        return Err(CoreError::Length {
            what: "exp_convolve input (T x C)",
            expected: n_channels.max(1) * (x.len() / n_channels.max(1)),
            got: x.len(),
        });
    }
    check_len("exp_convolve output (T x C)", x.len(), out.len())?;
    let one_minus = F::one() - decay;
    let mut prev_row: Option<usize> = None;
    for (t, row) in x.chunks_exact(n_channels).enumerate() {
        for (c, &xc) in row.iter().enumerate() {
            let a_prev = prev_row.map_or(F::zero(), |p| out[p + c]);
            out[t * n_channels + c] = a_prev * decay + one_minus * xc;
        }
        prev_row = Some(t * n_channels);
    }
    Ok(())
}

/// `downsample`: splits the T rows of `x` (`[T, C]`) into `new_size` equal consecutive chunks
/// and writes the mean of each into `out` (`[new_size, C]`). T must be a multiple of new_size.
pub fn downsample<F: Real>(
    x: &[F],
    n_channels: usize,
    new_size: usize,
    out: &mut [F],
) -> Result<(), CoreError> {
    if n_channels == 0 || x.len() % n_channels != 0 {
        return Err(CoreError::Length {
            what: "downsample input (T x C)",
            expected: n_channels.max(1) * (x.len() / n_channels.max(1)),
            got: x.len(),
        });
    }
    let n_t = x.len() / n_channels;
    if new_size == 0 || n_t % new_size != 0 {
        return Err(CoreError::Size {
            what: "downsample new_size",
            value: new_size,
            allowed: "a divisor of the number of time steps",
        });
    }
    check_len(
        "downsample output (new_size x C)",
        new_size * n_channels,
        out.len(),
    )?;
    let chunk = n_t / new_size;
    let scale = F::one() / F::of(chunk as f64);
    for (k, rows) in x.chunks_exact(chunk * n_channels).enumerate() {
        let o = &mut out[k * n_channels..(k + 1) * n_channels];
        o.fill(F::zero());
        for row in rows.chunks_exact(n_channels) {
            for (acc, &v) in o.iter_mut().zip(row) {
                *acc = *acc + v;
            }
        }
        for acc in o.iter_mut() {
            *acc = *acc * scale;
        }
    }
    Ok(())
}

/// Read access to a flat sequence of weights, so that a [`Readout`] can run from a plain slice
/// or straight from the little-endian bytes of a model (no copy, no allocation).
pub trait WeightSource<F> {
    /// Number of weights.
    fn len(&self) -> usize;

    /// True when there are no weights.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f(k, w[start + k])` for `k` in `0..n`, stopping early at the end of the source.
    fn for_each_in(&self, start: usize, n: usize, f: impl FnMut(usize, F));

    /// `y[k] = y[k] + a * w[start + k]` for every `k` of `y` (stopping early at the end of
    /// the source), in order. Sources can do this without a closure per weight.
    #[inline(always)]
    fn mul_add_into(&self, start: usize, a: F, y: &mut [F])
    where
        F: Real,
    {
        self.for_each_in(start, y.len(), |k, w| {
            if let Some(y) = y.get_mut(k) {
                *y = *y + a * w;
            }
        });
    }

    /// `out[k] = x[k] + w[k]` for every `k` of `out` and `x` (stopping early at the end of the
    /// source).
    #[inline(always)]
    fn add_to(&self, x: &[F], out: &mut [F])
    where
        F: Real,
    {
        self.for_each_in(0, out.len().min(x.len()), |k, w| {
            if let (Some(o), Some(&x)) = (out.get_mut(k), x.get(k)) {
                *o = x + w;
            }
        });
    }
}

impl<F: Copy> WeightSource<F> for &[F] {
    fn len(&self) -> usize {
        <[F]>::len(self)
    }

    #[inline(always)]
    fn mul_add_into(&self, start: usize, a: F, y: &mut [F])
    where
        F: Real,
    {
        if let Some(w) = self.get(start..) {
            for (y, &w) in y.iter_mut().zip(w) {
                *y = *y + a * w;
            }
        }
    }

    #[inline(always)]
    fn add_to(&self, x: &[F], out: &mut [F])
    where
        F: Real,
    {
        for ((o, &x), &w) in out.iter_mut().zip(x).zip(self.iter()) {
            *o = x + w;
        }
    }

    #[inline(always)]
    fn for_each_in(&self, start: usize, n: usize, mut f: impl FnMut(usize, F)) {
        let end = start.saturating_add(n).min(<[F]>::len(self));
        if let Some(part) = self.get(start..end) {
            for (k, &w) in part.iter().enumerate() {
                f(k, w);
            }
        }
    }
}

/// The linear readout `out = exp_convolve(z) @ w_out + b_out`, run event by event.
///
/// Because the filter is linear, filtering `z @ w_out` equals `exp_convolve(z) @ w_out`; doing
/// it on the O outputs instead of the N neurons makes a step cost O(O + spikes x O).
///
/// The weights are borrowed slices by default; any [`WeightSource`] works (see
/// [`Readout::from_weights`]), e.g. the weights inside a parsed [`crate::model::Model`].
#[derive(Clone, Copy, Debug)]
pub struct Readout<'a, F, W = &'a [F]> {
    w_out: W,
    b_out: Option<W>,
    n_rec: usize,
    n_out: usize,
    decay: F,
    _borrow: PhantomData<&'a [F]>,
}

impl<'a, F: Real> Readout<'a, F> {
    /// `w_out` is `[N, O]` row-major; `tau_out` in ms (20 in the tutorials).
    pub fn new(
        w_out: &'a [F],
        b_out: Option<&'a [F]>,
        n_rec: usize,
        tau_out: F,
        dt: F,
    ) -> Result<Self, CoreError> {
        Self::from_weights(w_out, b_out, n_rec, tau_out, dt)
    }
}

impl<F: Real, W: WeightSource<F>> Readout<'_, F, W> {
    /// As [`Readout::new`], with the weights behind any [`WeightSource`].
    pub fn from_weights(
        w_out: W,
        b_out: Option<W>,
        n_rec: usize,
        tau_out: F,
        dt: F,
    ) -> Result<Self, CoreError> {
        if n_rec == 0 || w_out.is_empty() || w_out.len() % n_rec != 0 {
            return Err(CoreError::Length {
                what: "w_out (n_rec x n_out)",
                expected: n_rec * (w_out.len() / n_rec.max(1)).max(1),
                got: w_out.len(),
            });
        }
        let n_out = w_out.len() / n_rec;
        if let Some(b) = &b_out {
            check_len("b_out (n_out)", n_out, b.len())?;
        }
        if !(tau_out.is_finite() && tau_out > F::zero()) {
            return Err(CoreError::Parameter {
                what: "tau_out",
                why: "must be finite and > 0",
            });
        }
        let mut all_finite = true;
        w_out.for_each_in(0, w_out.len(), |_, w| all_finite &= w.is_finite());
        if let Some(b) = &b_out {
            b.for_each_in(0, b.len(), |_, w| all_finite &= w.is_finite());
        }
        if !all_finite {
            return Err(CoreError::Parameter {
                what: "readout weights",
                why: "must be finite",
            });
        }
        Ok(Readout {
            w_out,
            b_out,
            n_rec,
            n_out,
            decay: (-dt / tau_out).exp(),
            _borrow: PhantomData,
        })
    }

    /// Number of outputs O.
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// The filter decay `exp(-dt / tau_out)`.
    pub fn decay(&self) -> F {
        self.decay
    }

    /// Advances the filtered output `filtered` (length O) by the spikes `z` of one step and
    /// writes this step's output (with bias) to `out` (length O). Returns the number of
    /// spikes (non-zero entries of `z`).
    pub fn step(&self, z: &[F], filtered: &mut [F], out: &mut [F]) -> Result<usize, CoreError> {
        check_len("readout spikes (n_rec)", self.n_rec, z.len())?;
        let spikes = z
            .iter()
            .enumerate()
            .filter(|(_, &zj)| zj != F::zero())
            .map(|(j, &zj)| (j, zj));
        self.step_spikes(spikes, filtered, out)
    }

    /// [`Readout::step`] with the spikes given as `(neuron, z)` in ascending neuron order (e.g.
    /// [`crate::CellState::spikes`]); the same arithmetic in the same order, without a scan
    /// of all N neurons.
    pub fn step_spikes(
        &self,
        spikes: impl IntoIterator<Item = (usize, F)>,
        filtered: &mut [F],
        out: &mut [F],
    ) -> Result<usize, CoreError> {
        check_len("readout filter state (n_out)", self.n_out, filtered.len())?;
        check_len("readout output (n_out)", self.n_out, out.len())?;
        // Opaque to the optimiser: a firmware's static buffer would otherwise have its
        // constant address rebuilt for every output (five instructions instead of a pointer
        // step; 30 a step on a Cortex-M4F).
        let filtered = core::hint::black_box(filtered);
        for y in filtered.iter_mut() {
            *y = *y * self.decay;
        }
        let gain = F::one() - self.decay;
        let mut count = 0;
        for (j, zj) in spikes {
            if j >= self.n_rec {
                crate::rare();
                return Err(CoreError::Size {
                    what: "readout spike index",
                    value: j,
                    allowed: "< n_rec",
                });
            }
            count += 1;
            // `y + gain * zj * w` is `y + (gain * zj) * w`.
            self.w_out.mul_add_into(j * self.n_out, gain * zj, filtered);
        }
        match &self.b_out {
            // Exactly `n_out` biases (checked when the readout was built).
            Some(b) => b.add_to(filtered, out),
            None => {
                for (o, &y) in out.iter_mut().zip(filtered.iter()) {
                    *o = y + F::zero();
                }
            }
        }
        Ok(count)
    }
}

/// Index of the largest value (first one on ties), the predicted class.
pub fn argmax<F: Real>(x: &[F]) -> Option<usize> {
    let mut best: Option<(usize, F)> = None;
    for (i, &v) in x.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}
