//! Writing the model format into caller storage (no allocator).

use super::{
    align4, checksum, section, MatrixLayout, Model, CHECKSUM_LEN, HEADER_LEN, MAGIC,
    MATRIX_PREFIX_LEN, SECTION_ENTRY_LEN, VERSION, WEIGHT_KIND_F32,
};
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
        write_matrix(&mut w, l.w_in, &l.w_in_layout, &self.w_in)?;
        write_matrix(&mut w, l.w_rec, &l.w_rec_layout, &self.w_rec)?;
        w.at = l.w_out;
        w.u8(WEIGHT_KIND_F32)?;
        w.at = l.w_out + 4;
        w.f32(1.0)?;
        self.w_out.iter().try_for_each(|&x| w.f32(x))?;
        if let Some(b) = self.b_out {
            w.at = l.b_out;
            b.iter().try_for_each(|&x| w.f32(x))?;
        }

        let body_len = l.total - CHECKSUM_LEN;
        let crc = checksum(w.out.get(..body_len).unwrap_or(&[]));
        w.at = body_len;
        w.u32(crc)?;
        Model::parse(w.out)?;
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
        let w_in_layout =
            MatrixLayout::f32(self.w_in.n_pre(), self.w_in.nnz()).ok_or(too_big("w_in"))?;
        let w_rec_layout = MatrixLayout::f32(n_rec, self.w_rec.nnz()).ok_or(too_big("w_rec"))?;
        let w_out_len = self
            .w_out
            .len()
            .checked_mul(4)
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
        })
    }
}

fn write_matrix(
    w: &mut Writer<'_>,
    start: usize,
    layout: &MatrixLayout,
    csr: &CsrRef<'_, f32>,
) -> Result<(), CoreError> {
    w.at = start;
    w.u8(WEIGHT_KIND_F32)?;
    w.at = start + 4;
    w.f32(1.0)?;
    w.at = start + layout.offsets;
    csr.offsets().iter().try_for_each(|&o| w.u32(o))?;
    w.at = start + layout.targets;
    csr.targets().iter().try_for_each(|&t| w.u16(t))?;
    w.at = start + layout.delays;
    w.bytes(csr.delays())?;
    w.at = start + layout.weights;
    csr.weights().iter().try_for_each(|&x| w.f32(x))
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
