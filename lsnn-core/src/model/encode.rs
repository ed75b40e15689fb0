//! Writing the model format into caller storage (no allocator).

use super::{
    align4, checksum, section, IntegerScales, MatrixLayout, Model, WeightKind, CHECKSUM_LEN,
    HEADER_LEN, MAGIC, MATRIX_PREFIX_LEN, SECTION_ENTRY_LEN, VERSION,
};
use crate::error::check_len;
use crate::synapse::{CsrRef, Synapses};
use crate::{CellConfig, CoreError};

/// The parts of a network to encode, all borrowed.
///
/// Weights are the effective ones (already multiplied by `config.v0`, no autapses), as the
/// cell uses them; N is `tau.len()`, O is `w_out.len() / N`.
#[derive(Clone, Copy, Debug)]
pub struct ModelParts<'a> {
    /// Cell parameters.
    pub config: CellConfig<f32>,
    /// Membrane time constant of each neuron (ms).
    pub tau: &'a [f32],
    /// Baseline threshold of each neuron.
    pub thr: &'a [f32],
    /// Adaptation strength of each neuron (0 = LIF).
    pub beta: &'a [f32],
    /// Input synapses, `n_in` x N.
    pub w_in: CsrRef<'a, f32>,
    /// Recurrent synapses, N x N.
    pub w_rec: CsrRef<'a, f32>,
    /// Readout weights `[N, O]` row-major.
    pub w_out: &'a [f32],
    /// Optional readout bias `[O]`.
    pub b_out: Option<&'a [f32]>,
    /// Readout filter time constant (ms).
    pub tau_out: f32,
    /// How `w_in`, `w_rec` and `w_out` are stored: as given (f32), or quantised to i16/i8
    /// (see [`ModelParts::encode`]). The bias stays f32.
    pub weights: WeightKind,
}

/// Where everything goes.
#[derive(Clone, Copy, Debug)]
struct Layout {
    n_rec: usize,
    n_out: usize,
    section_count: usize,
    neurons: usize,
    w_in: usize,
    w_in_layout: MatrixLayout,
    w_rec: usize,
    w_rec_layout: MatrixLayout,
    w_out: usize,
    w_out_len: usize,
    b_out: usize,
    total: usize,
    scales: Scales,
}

/// The per-matrix scales written (1 for f32).
#[derive(Clone, Copy, Debug)]
struct Scales {
    w_in: f32,
    w_rec: f32,
    w_out: f32,
}

impl ModelParts<'_> {
    /// Number of bytes [`ModelParts::encode`] writes; fails on inconsistent sizes.
    pub fn encoded_len(&self) -> Result<usize, CoreError> {
        Ok(self.layout()?.total)
    }

    /// Writes the model to the start of `out` and returns its length.
    ///
    /// The written bytes are parsed back with [`Model::parse`] before returning, so `Ok`
    /// guarantees a valid model and every validation error of the parser is reported here
    /// (after which the contents of `out` are unspecified).
    ///
    /// Integer kinds quantise symmetrically per matrix: `q = round(w / scale)` (to nearest,
    /// halves away from zero) with `scale` about `max|w| / q_max` (`q_max` 32767 or 127) —
    /// exactly that for `w_out`; for `w_in` and `w_rec` rounded up to a multiple of the finest
    /// common power-of-two unit (at most 16 significant bits of the smaller scale) for which
    /// the integer cell cannot overflow (see [`IntegerScales`]), so the integer model always
    /// runs on [`Model::integer_cell`].
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, CoreError> {
        let l = self.layout()?;
        let capacity = out.len();
        let out = out.get_mut(..l.total).ok_or(CoreError::Capacity {
            what: "model output buffer",
            capacity,
            required: l.total,
        })?;
        out.fill(0);
        let mut w = Writer { out, at: 0 };
        let c = &self.config;
        w.bytes(&MAGIC)?;
        w.u16(VERSION)?;
        w.u16(l.section_count as u16)?;
        w.u32(l.total as u32)?;
        w.u32(self.w_in.n_pre() as u32)?;
        w.u32(l.n_rec as u32)?;
        w.u32(l.n_out as u32)?;
        w.u32(self.w_in.nnz() as u32)?;
        w.u32(self.w_rec.nnz() as u32)?;
        w.u16(c.n_delay as u16)?;
        w.u16(c.n_refractory as u16)?;
        for x in [
            c.dt,
            c.tau_adaptation,
            c.v0,
            c.dampening_factor,
            c.injected_noise_current,
            self.tau_out,
        ] {
            w.f32(x)?;
        }

        let neurons_len = 12 * l.n_rec;
        let entries = [
            (section::NEURONS, l.neurons, neurons_len),
            (section::W_IN, l.w_in, l.w_in_layout.end),
            (section::W_REC, l.w_rec, l.w_rec_layout.end),
            (section::W_OUT, l.w_out, l.w_out_len),
            (section::B_OUT, l.b_out, 4 * l.n_out),
        ];
        for &(id, offset, len) in entries.iter().take(l.section_count) {
            w.u16(id)?;
            w.u16(0)?;
            w.u32(offset as u32)?;
            w.u32(len as u32)?;
        }

        w.at = l.neurons;
        for part in [self.tau, self.thr, self.beta] {
            part.iter().try_for_each(|&x| w.f32(x))?;
        }
        let kind = self.weights;
        write_matrix(
            &mut w,
            l.w_in,
            &l.w_in_layout,
            &self.w_in,
            kind,
            l.scales.w_in,
        )?;
        write_matrix(
            &mut w,
            l.w_rec,
            &l.w_rec_layout,
            &self.w_rec,
            kind,
            l.scales.w_rec,
        )?;
        w.at = l.w_out;
        w.u8(kind.code())?;
        w.at = l.w_out + 4;
        w.f32(l.scales.w_out)?;
        self.w_out
            .iter()
            .try_for_each(|&x| w.weight(x, kind, l.scales.w_out))?;
        if let Some(b) = self.b_out {
            w.at = l.b_out;
            b.iter().try_for_each(|&x| w.f32(x))?;
        }

        let body_len = l.total - CHECKSUM_LEN;
        let crc = checksum(w.out.get(..body_len).unwrap_or(&[]));
        w.at = body_len;
        w.u32(crc)?;
        let model = Model::parse(w.out)?;
        if kind.is_integer() {
            model.integer_scales()?;
        }
        Ok(l.total)
    }

    /// Encodes into a new vector.
    #[cfg(feature = "alloc")]
    pub fn to_vec(&self) -> Result<alloc::vec::Vec<u8>, CoreError> {
        let mut out = alloc::vec![0u8; self.encoded_len()?];
        let n = self.encode(&mut out)?;
        out.truncate(n);
        Ok(out)
    }

    fn layout(&self) -> Result<Layout, CoreError> {
        let n_rec = self.tau.len();
        if n_rec == 0 || n_rec > usize::from(u16::MAX) + 1 {
            return Err(CoreError::Size {
                what: "n_rec (tau.len())",
                value: n_rec,
                allowed: "1..=65536",
            });
        }
        check_len("thr (n_rec)", n_rec, self.thr.len())?;
        check_len("beta (n_rec)", n_rec, self.beta.len())?;
        check_len("w_in columns (n_rec)", n_rec, self.w_in.n_post())?;
        check_len("w_rec rows (n_rec)", n_rec, self.w_rec.n_pre())?;
        check_len("w_rec columns (n_rec)", n_rec, self.w_rec.n_post())?;
        let n_out = self.w_out.len() / n_rec;
        if n_out == 0 || self.w_out.len() % n_rec != 0 {
            return Err(CoreError::Length {
                what: "w_out (n_rec x n_out, n_out >= 1)",
                expected: n_rec * n_out.max(1),
                got: self.w_out.len(),
            });
        }
        if let Some(b) = self.b_out {
            check_len("b_out (n_out)", n_out, b.len())?;
        }
        self.config.validate()?;
        let too_big = |what| CoreError::Size {
            what,
            value: usize::MAX,
            allowed: "a model of at most u32::MAX bytes",
        };
        for (what, v) in [
            ("n_in", self.w_in.n_pre()),
            ("n_out", n_out),
            ("nnz_in", self.w_in.nnz()),
            ("nnz_rec", self.w_rec.nnz()),
        ] {
            if u32::try_from(v).is_err() {
                return Err(CoreError::Size {
                    what,
                    value: v,
                    allowed: "<= u32::MAX",
                });
            }
        }
        let kind = self.weights;
        let w_in_layout =
            MatrixLayout::new(kind, self.w_in.n_pre(), self.w_in.nnz()).ok_or(too_big("w_in"))?;
        let w_rec_layout =
            MatrixLayout::new(kind, n_rec, self.w_rec.nnz()).ok_or(too_big("w_rec"))?;
        let w_out_len = self
            .w_out
            .len()
            .checked_mul(kind.width())
            .and_then(align4)
            .and_then(|b| b.checked_add(MATRIX_PREFIX_LEN))
            .ok_or(too_big("w_out"))?;
        let section_count = if self.b_out.is_some() { 5 } else { 4 };
        let mut at = HEADER_LEN + section_count * SECTION_ENTRY_LEN;
        let mut place = |len: usize, what| {
            let start = at;
            at = start
                .checked_add(len)
                .and_then(align4)
                .ok_or(too_big(what))?;
            Ok::<usize, CoreError>(start)
        };
        let neurons = place(12 * n_rec, "neurons")?;
        let w_in = place(w_in_layout.end, "w_in")?;
        let w_rec = place(w_rec_layout.end, "w_rec")?;
        let w_out = place(w_out_len, "w_out")?;
        let b_out = place(if self.b_out.is_some() { 4 * n_out } else { 0 }, "b_out")?;
        let total = at.checked_add(CHECKSUM_LEN).ok_or(too_big("model"))?;
        if u32::try_from(total).is_err() {
            return Err(too_big("model"));
        }
        Ok(Layout {
            n_rec,
            n_out,
            section_count,
            neurons,
            w_in,
            w_in_layout,
            w_rec,
            w_rec_layout,
            w_out,
            w_out_len,
            b_out,
            total,
            scales: self.scales()?,
        })
    }

    /// The scales of the three matrices (see [`ModelParts::encode`]).
    fn scales(&self) -> Result<Scales, CoreError> {
        let kind = self.weights;
        if !kind.is_integer() {
            return Ok(Scales {
                w_in: 1.0,
                w_rec: 1.0,
                w_out: 1.0,
            });
        }
        let q_max = kind.q_max();
        let max_abs = |w: &[f32], matrix| {
            w.iter()
                .try_fold(0.0f32, |m, x| x.is_finite().then(|| m.max(x.abs())))
                .ok_or(CoreError::Matrix {
                    matrix,
                    why: "weights must be finite to be quantised",
                })
        };
        let max_in = max_abs(self.w_in.weights(), "w_in")?;
        let max_rec = max_abs(self.w_rec.weights(), "w_rec")?;
        let max_out = max_abs(self.w_out, "w_out")?;
        let spike = self.config.step_consts().spike;
        let abs_sum = |w: &[f32], scale: f32| {
            w.iter()
                .map(|&x| u64::from(quantise(x, scale, kind).unsigned_abs()))
                .sum::<u64>()
        };
        // From the finest unit (16 significant bits of the smaller scale) to coarser ones,
        // until no ring entry can overflow.
        IntegerScales::check_spike(spike)?;
        let finest = IntegerScales::finest_exponent(max_in, max_rec, q_max, spike);
        let mut chosen = None;
        for e in finest..=127 {
            let Some((s_in, s_rec)) = IntegerScales::candidate(max_in, max_rec, q_max, spike, e)
            else {
                continue;
            };
            let Ok(m) = IntegerScales::from_scales(s_in, s_rec, spike) else {
                continue;
            };
            let total = u128::from(abs_sum(self.w_in.weights(), s_in)) * m.m_in as u128
                + u128::from(abs_sum(self.w_rec.weights(), s_rec)) * m.m_rec as u128;
            if total <= i32::MAX as u128 {
                chosen = Some((s_in, s_rec));
                break;
            }
        }
        let (w_in, w_rec) = chosen.ok_or(CoreError::Matrix {
            matrix: "w_in/w_rec",
            why: "too many or too large weights for an i32 ring at any precision",
        })?;
        let w_out = if max_out > 0.0 {
            (f64::from(max_out) / f64::from(q_max)) as f32
        } else {
            1.0
        };
        if !(w_out.is_finite() && w_out > 0.0) {
            return Err(CoreError::Matrix {
                matrix: "w_out",
                why: "weights must be finite to be quantised",
            });
        }
        Ok(Scales { w_in, w_rec, w_out })
    }
}

/// `round(w / scale)` to nearest (halves away from zero), clamped to `±q_max` of `kind`.
pub(crate) fn quantise(w: f32, scale: f32, kind: WeightKind) -> i32 {
    let q_max = f64::from(kind.q_max());
    let q = libm::round(f64::from(w) / f64::from(scale));
    // NaN clamps to 0 (`max` and `min` return the non-NaN operand).
    q.max(-q_max).min(q_max) as i32
}

fn write_matrix(
    w: &mut Writer<'_>,
    start: usize,
    layout: &MatrixLayout,
    csr: &CsrRef<'_, f32>,
    kind: WeightKind,
    scale: f32,
) -> Result<(), CoreError> {
    w.at = start;
    w.u8(kind.code())?;
    w.at = start + 4;
    w.f32(scale)?;
    w.at = start + layout.offsets;
    csr.offsets().iter().try_for_each(|&o| w.u32(o))?;
    w.at = start + layout.targets;
    csr.targets().iter().try_for_each(|&t| w.u16(t))?;
    w.at = start + layout.delays;
    w.bytes(csr.delays())?;
    w.at = start + layout.weights;
    csr.weights()
        .iter()
        .try_for_each(|&x| w.weight(x, kind, scale))
}

/// A cursor over the output that reports running out of room instead of panicking.
struct Writer<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> Result<(), CoreError> {
        let capacity = self.out.len();
        let end = self.at.saturating_add(b.len());
        let dst = self.out.get_mut(self.at..end).ok_or(CoreError::Capacity {
            what: "model output buffer",
            capacity,
            required: end,
        })?;
        dst.copy_from_slice(b);
        self.at = end;
        Ok(())
    }

    fn u8(&mut self, v: u8) -> Result<(), CoreError> {
        self.bytes(&[v])
    }

    fn u16(&mut self, v: u16) -> Result<(), CoreError> {
        self.bytes(&v.to_le_bytes())
    }

    fn u32(&mut self, v: u32) -> Result<(), CoreError> {
        self.bytes(&v.to_le_bytes())
    }

    fn f32(&mut self, v: f32) -> Result<(), CoreError> {
        self.bytes(&v.to_le_bytes())
    }

    /// One weight of `kind`: as f32, or quantised with `scale`.
    fn weight(&mut self, x: f32, kind: WeightKind, scale: f32) -> Result<(), CoreError> {
        match kind {
            WeightKind::F32 => self.f32(x),
            WeightKind::I16 => self.bytes(&(quantise(x, scale, kind) as i16).to_le_bytes()),
            WeightKind::I8 => self.bytes(&(quantise(x, scale, kind) as i8).to_le_bytes()),
        }
    }
}
