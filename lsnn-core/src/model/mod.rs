//! The compact binary model format: a whole network (cell parameters, neurons, sparse delayed
//! input and recurrent synapses, readout) in one flat, checksummed, little-endian byte string
//! that [`Model::parse`] validates once and then reads in place (zero-copy, no allocator), e.g.
//! straight from flash on a microcontroller. [`ModelParts`] writes it into caller storage.
//!
//! # Layout, version 1
//!
//! All integers and floats are little-endian; floats are IEEE-754 `f32`. Offsets are from the
//! start of the model. Nothing needs to be aligned in memory for reading (values are decoded
//! byte-wise), but the writer aligns every section to 4 bytes and the reader requires it.
//!
//! ## Header (64 bytes)
//!
//! | offset | size | field                                                           |
//! |-------:|-----:|-----------------------------------------------------------------|
//! |      0 |    8 | magic `b"LSNNMDL\0"`                                            |
//! |      8 |    2 | `u16` format version, `1`                                       |
//! |     10 |    2 | `u16` number of section-table entries `S` (at most 32)          |
//! |     12 |    4 | `u32` total length of the model in bytes, checksum included     |
//! |     16 |    4 | `u32` `n_in`, number of inputs                                  |
//! |     20 |    4 | `u32` `n_rec` = N, number of recurrent neurons (1..=65536)      |
//! |     24 |    4 | `u32` `n_out` = O, number of readout outputs (>= 1)             |
//! |     28 |    4 | `u32` `nnz_in`, number of input synapses                        |
//! |     32 |    4 | `u32` `nnz_rec`, number of recurrent synapses                   |
//! |     36 |    2 | `u16` `n_delay` = D (1..=256)                                   |
//! |     38 |    2 | `u16` `n_refractory` = R                                        |
//! |     40 |    4 | `f32` `dt` (ms, > 0)                                            |
//! |     44 |    4 | `f32` `tau_adaptation` (ms, > 0)                                |
//! |     48 |    4 | `f32` `v0` (> 0)                                                |
//! |     52 |    4 | `f32` `dampening_factor` (finite)                               |
//! |     56 |    4 | `f32` `injected_noise_current` (finite, >= 0)                   |
//! |     60 |    4 | `f32` `tau_out` (ms, > 0)                                       |
//!
//! ## Section table (`S` entries of 12 bytes, at offset 64)
//!
//! | offset | size | field                                                            |
//! |-------:|-----:|------------------------------------------------------------------|
//! |      0 |    2 | `u16` section id (see [`section`])                               |
//! |      2 |    2 | `u16` flags; bit 0 = required: a reader that does not know the id must reject the model. Other bits reserved |
//! |      4 |    4 | `u32` offset of the section                                      |
//! |      8 |    4 | `u32` length of the section in bytes                             |
//!
//! Every section lies after the table and before the checksum, starts at a multiple of 4, and
//! overlaps no other section; ids are unique. Sections of unknown id without the required flag
//! are skipped (later versions can add optional sections; see [`Model::section`]). Bytes
//! between sections are covered by the checksum but otherwise ignored (the writer puts zeros).
//!
//! ## Sections of version 1
//!
//! - [`section::NEURONS`] (required), `12 N` bytes: `tau: f32[N]`, then `thr: f32[N]`, then
//!   `beta: f32[N]` (membrane time constant in ms > 0, baseline threshold > 0, finite
//!   adaptation strength; LIF neurons have `beta = 0`).
//! - [`section::W_IN`] (required): the input synapses as a *matrix section* with
//!   `n_pre = n_in`, `nnz = nnz_in`.
//! - [`section::W_REC`] (required): the recurrent synapses, a matrix section with
//!   `n_pre = N`, `nnz = nnz_rec`; no autapse (target = presynaptic neuron).
//! - [`section::W_OUT`] (required): `u8` weight kind, 3 zero bytes, `f32` scale, then the readout
//!   weights `[N, O]` row-major (`N O` weights of the kind's width, zero-padded to a multiple
//!   of 4 bytes).
//! - [`section::B_OUT`] (optional): the readout bias, `f32[O]`.
//!
//! A *matrix section* (compressed sparse rows, synapses of presynaptic neuron `i` at
//! `offsets[i]..offsets[i + 1]`; the postsynaptic side always has N neurons):
//!
//! | size                 | field                                                        |
//! |---------------------:|--------------------------------------------------------------|
//! |                    1 | `u8` weight kind: 0 = f32, 1 = i16, 2 = i8 ([`WeightKind`])   |
//! |                    3 | zero                                                         |
//! |                    4 | `f32` scale: a weight is `scale * stored`; 1 for f32, finite and > 0 for integers |
//! |     `4 (n_pre + 1)`  | `offsets: u32[n_pre + 1]`, from 0, non-decreasing, last = nnz |
//! |            `2 nnz`   | `targets: u16[nnz]`, each `< N`                              |
//! |            0 or 2    | zero padding to a multiple of 4                              |
//! |              `nnz`   | `delays: u8[nnz]`, each `< D`                                |
//! |                0..=3 | zero padding to a multiple of 4                              |
//! |  `4 nnz` / `2 nnz` / `nnz` | `weights`: `f32[nnz]` finite, or `i16[nnz]`, or `i8[nnz]`  |
//! |                0..=3 | zero padding to a multiple of 4                              |
//!
//! Weights are the *effective* ones the cell uses (already multiplied by `v0`, as
//! [`crate::Synapses`] documents): `w`, or `scale * q` for the integer kinds, where `scale * q`
//! must be finite for every stored `q`. Other weight-kind bytes fail with
//! [`CoreError::UnsupportedWeightKind`]; the readout's kind byte and scale follow the same
//! rules.
//!
//! ## Integer weights
//!
//! A model whose `w_in` and `w_rec` both have integer kinds runs on the integer cell
//! ([`Model::integer_cell`]): the delay ring holds `i32`, an input spike through a synapse adds
//! `q * m_in`, a recurrent spike `q * m_rec`, and a ring entry `acc` arrives as the current
//! `acc as f32 * unit`. [`IntegerScales`] derives `unit` (a power of two) and the integer
//! multipliers exactly from the two scales and the spike value `1/dt`; the writer
//! ([`ModelParts::encode`] with [`WeightKind::I16`] or [`WeightKind::I8`]) picks scales for which
//! this works. The readout's integer weights are read as `scale * q` (the readout does
//! O multiply-adds per spike, the cell's ring is where the integer arithmetic pays).
//!
//! ## Checksum (last 4 bytes)
//!
//! `u32` CRC-32 (IEEE 802.3, as zlib's `crc32`; see [`checksum`]) of every byte before it.
//!
//! # Validation
//!
//! [`Model::parse`] accepts exactly the byte strings laid out above and returns a typed
//! [`CoreError`] for anything else, never panicking: magic, version, declared length (the
//! buffer must be exactly that long), checksum, header values ([`CellConfig::validate`], the
//! size ranges, `tau_out`), section placement, section lengths implied by the header sizes,
//! CSR structure, synapse targets, delays, autapses, finiteness of every float, and every
//! neuron's `tau > 0`, `thr > 0` (via [`Neuron::new`]). After that, the accessors and
//! [`Model::cell`] cannot fail on the model's contents.

mod encode;
mod scales;
mod views;

pub use encode::ModelParts;
pub use scales::IntegerScales;
pub use views::{IntegerSynapses, LeF32Slice, LeWeights, ModelSynapses};

use crate::unchecked::CheckedRows;
use crate::{Cell, CellConfig, CoreError, Neuron, Readout};

/// The 8 bytes every model starts with.
pub const MAGIC: [u8; 8] = *b"LSNNMDL\0";
/// The format version this build reads and writes.
pub const VERSION: u16 = 1;
/// Length of the fixed header; the section table follows it.
pub const HEADER_LEN: usize = 64;
/// Length of one section-table entry.
pub const SECTION_ENTRY_LEN: usize = 12;
/// Largest number of section-table entries a reader accepts.
pub const MAX_SECTIONS: usize = 32;
/// Length of the trailing checksum.
pub const CHECKSUM_LEN: usize = 4;
/// Section-table flag: readers that do not know the section must reject the model.
pub const FLAG_REQUIRED: u16 = 1;

/// Weight kind of a matrix: little-endian `f32`.
pub const WEIGHT_KIND_F32: u8 = 0;
/// Weight kind of a matrix: little-endian `i16` times the matrix scale.
pub const WEIGHT_KIND_I16: u8 = 1;
/// Weight kind of a matrix: `i8` times the matrix scale.
pub const WEIGHT_KIND_I8: u8 = 2;

/// How the weights of a matrix are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightKind {
    /// `f32` as they are (scale 1).
    F32,
    /// `i16` times a per-matrix `f32` scale (symmetric, `|q| <= 32767` as written).
    I16,
    /// `i8` times a per-matrix `f32` scale (symmetric, `|q| <= 127` as written).
    I8,
}

impl WeightKind {
    /// The kind byte of the format.
    pub const fn code(self) -> u8 {
        match self {
            WeightKind::F32 => WEIGHT_KIND_F32,
            WeightKind::I16 => WEIGHT_KIND_I16,
            WeightKind::I8 => WEIGHT_KIND_I8,
        }
    }

    /// The kind of a format byte, if known.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            WEIGHT_KIND_F32 => Some(WeightKind::F32),
            WEIGHT_KIND_I16 => Some(WeightKind::I16),
            WEIGHT_KIND_I8 => Some(WeightKind::I8),
            _ => None,
        }
    }

    /// Bytes per stored weight.
    pub const fn width(self) -> usize {
        match self {
            WeightKind::F32 => 4,
            WeightKind::I16 => 2,
            WeightKind::I8 => 1,
        }
    }

    /// The largest `|q|` the writer stores (0 for f32).
    pub const fn q_max(self) -> i32 {
        match self {
            WeightKind::F32 => 0,
            WeightKind::I16 => i16::MAX as i32,
            WeightKind::I8 => i8::MAX as i32,
        }
    }

    /// True for the integer kinds.
    pub const fn is_integer(self) -> bool {
        !matches!(self, WeightKind::F32)
    }

    /// The name used on command lines and in reports: `f32`, `i16`, `i8`.
    pub const fn name(self) -> &'static str {
        match self {
            WeightKind::F32 => "f32",
            WeightKind::I16 => "i16",
            WeightKind::I8 => "i8",
        }
    }
}

/// Section ids of version 1.
pub mod section {
    /// Per-neuron `tau`, `thr`, `beta`.
    pub const NEURONS: u16 = 1;
    /// Input synapses (matrix section).
    pub const W_IN: u16 = 2;
    /// Recurrent synapses (matrix section).
    pub const W_REC: u16 = 3;
    /// Readout weights `[N, O]`.
    pub const W_OUT: u16 = 4;
    /// Readout bias `[O]` (optional).
    pub const B_OUT: u16 = 5;
}

/// Length of the kind/reserved/scale prefix of a weight section.
pub(crate) const MATRIX_PREFIX_LEN: usize = 8;

/// The CRC-32 (IEEE 802.3, as zlib's `crc32`) the format stores in its last 4 bytes, of
/// `bytes`. Four bits at a time with a 64-byte table built at compile time: small for a
/// microcontroller's flash (a byte-wise table takes 1 KiB, slicing-by-16 16 KiB), and
/// checksums are computed once per model.
pub fn checksum(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        crc = CRC_NIBBLES[(crc & 15) as usize] ^ (crc >> 4);
        crc = CRC_NIBBLES[(crc & 15) as usize] ^ (crc >> 4);
    }
    !crc
}

/// The reflected CRC-32 of the polynomial 0xEDB88320 for the 16 values of four bits.
const CRC_NIBBLES: [u32; 16] = {
    let mut table = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 4 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// A validated model, read in place from borrowed bytes.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    bytes: &'a [u8],
    config: CellConfig<f32>,
    n_in: usize,
    n_rec: usize,
    n_out: usize,
    tau_out: f32,
    tau: LeF32Slice<'a>,
    thr: LeF32Slice<'a>,
    beta: LeF32Slice<'a>,
    w_in: ModelSynapses<'a>,
    w_rec: ModelSynapses<'a>,
    w_out: LeWeights<'a>,
    b_out: Option<LeF32Slice<'a>>,
}

/// Values of the fixed header.
#[derive(Clone, Copy, Debug)]
struct Header {
    section_count: usize,
    n_in: usize,
    n_rec: usize,
    n_out: usize,
    nnz_in: usize,
    nnz_rec: usize,
    config: CellConfig<f32>,
    tau_out: f32,
}

/// One validated section-table entry.
#[derive(Clone, Copy, Debug)]
struct Entry {
    id: u16,
    flags: u16,
    start: usize,
    end: usize,
}

impl<'a> Model<'a> {
    /// Validates `bytes` completely (see the module documentation) and wraps them.
    ///
    /// `bytes` must be exactly one model: its length must equal the declared total length.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CoreError> {
        let body = check_framing(bytes)?;
        let header = read_header(body)?;
        let table_end = header
            .section_count
            .checked_mul(SECTION_ENTRY_LEN)
            .and_then(|t| t.checked_add(HEADER_LEN))
            .filter(|&end| end <= body.len())
            .ok_or(CoreError::Truncated {
                what: "section table",
                needed: HEADER_LEN + header.section_count * SECTION_ENTRY_LEN + CHECKSUM_LEN,
                got: bytes.len(),
            })?;

        let mut known: [Option<&'a [u8]>; 5] = [None; 5];
        for i in 0..header.section_count {
            let entry = read_entry(body, table_end, i)?;
            for j in 0..i {
                let other = read_entry(body, table_end, j)?;
                if other.id == entry.id {
                    return Err(CoreError::Section {
                        id: entry.id,
                        why: "duplicate section id",
                    });
                }
                if entry.start < other.end && other.start < entry.end {
                    return Err(CoreError::Section {
                        id: entry.id,
                        why: "overlaps another section",
                    });
                }
            }
            let data = body.get(entry.start..entry.end).ok_or(CoreError::Section {
                id: entry.id,
                why: "outside the model",
            })?;
            match known.get_mut(usize::from(entry.id).wrapping_sub(1)) {
                Some(slot) => *slot = Some(data),
                None if entry.flags & FLAG_REQUIRED != 0 => {
                    return Err(CoreError::UnsupportedSection { id: entry.id })
                }
                None => {}
            }
        }
        let [neurons, w_in, w_rec, w_out, b_out] = known;
        let required = |id: u16, s: Option<&'a [u8]>| {
            s.ok_or(CoreError::Section {
                id,
                why: "required section is missing",
            })
        };
        let neurons = required(section::NEURONS, neurons)?;
        let w_in = required(section::W_IN, w_in)?;
        let w_rec = required(section::W_REC, w_rec)?;
        let w_out = required(section::W_OUT, w_out)?;

        let n = header.n_rec;
        let (tau, thr, beta) = parse_neurons(neurons, &header)?;
        let n_delay = header.config.n_delay;
        let w_in = parse_matrix(
            w_in,
            MatrixSpec {
                id: section::W_IN,
                matrix: "w_in",
                n_pre: header.n_in,
                n_post: n,
                nnz: header.nnz_in,
                n_delay,
                no_autapse: false,
            },
        )?;
        let w_rec = parse_matrix(
            w_rec,
            MatrixSpec {
                id: section::W_REC,
                matrix: "w_rec",
                n_pre: n,
                n_post: n,
                nnz: header.nnz_rec,
                n_delay,
                no_autapse: true,
            },
        )?;
        let n_weights_out = n.checked_mul(header.n_out).ok_or(CoreError::Format {
            what: "n_rec x n_out",
            why: "too large for this platform",
        })?;
        let w_out = parse_dense(w_out, section::W_OUT, "w_out", n_weights_out)?;
        let b_out = match b_out {
            Some(b) => Some(parse_floats(b, section::B_OUT, "b_out", header.n_out)?),
            None => None,
        };
        Ok(Model {
            bytes,
            config: header.config,
            n_in: header.n_in,
            n_rec: n,
            n_out: header.n_out,
            tau_out: header.tau_out,
            tau,
            thr,
            beta,
            w_in,
            w_rec,
            w_out,
            b_out,
        })
    }

    /// The model's bytes (exactly one model, checksum included).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The cell parameters.
    pub fn config(&self) -> CellConfig<f32> {
        self.config
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Number of recurrent neurons N.
    pub fn n_rec(&self) -> usize {
        self.n_rec
    }

    /// Number of readout outputs O.
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// Readout filter time constant in ms.
    pub fn tau_out(&self) -> f32 {
        self.tau_out
    }

    /// Membrane time constants, one per neuron.
    pub fn tau(&self) -> LeF32Slice<'a> {
        self.tau
    }

    /// Baseline thresholds, one per neuron.
    pub fn thr(&self) -> LeF32Slice<'a> {
        self.thr
    }

    /// Adaptation strengths, one per neuron.
    pub fn beta(&self) -> LeF32Slice<'a> {
        self.beta
    }

    /// Writes the derived constants of every neuron into caller storage of length N.
    pub fn neurons_into(&self, out: &mut [Neuron<f32>]) -> Result<(), CoreError> {
        if out.len() != self.n_rec {
            return Err(CoreError::Length {
                what: "neuron storage (n_rec)",
                expected: self.n_rec,
                got: out.len(),
            });
        }
        for (index, (slot, ((tau, thr), beta))) in out
            .iter_mut()
            .zip(self.tau.iter().zip(self.thr.iter()).zip(self.beta.iter()))
            .enumerate()
        {
            *slot = neuron(index, tau, thr, beta, self.config.dt)?;
        }
        Ok(())
    }

    /// The input synapses (`n_in` x N).
    pub fn w_in(&self) -> ModelSynapses<'a> {
        self.w_in
    }

    /// The recurrent synapses (N x N).
    pub fn w_rec(&self) -> ModelSynapses<'a> {
        self.w_rec
    }

    /// The readout weights `[N, O]` row-major (integer kinds read as `scale * q`).
    pub fn w_out(&self) -> LeWeights<'a> {
        self.w_out
    }

    /// The readout bias `[O]`, if the model has one.
    pub fn b_out(&self) -> Option<LeF32Slice<'a>> {
        self.b_out
    }

    /// The readout, running from the model's bytes.
    pub fn readout(&self) -> Result<Readout<'a, f32, LeWeights<'a>>, CoreError> {
        let b_out = self
            .b_out
            .and_then(|b| LeWeights::new(b.as_bytes(), WeightKind::F32, 1.0));
        Readout::from_weights(self.w_out, b_out, self.n_rec, self.tau_out, self.config.dt)
    }

    /// True when both `w_in` and `w_rec` have integer kinds: the model runs on
    /// [`Model::integer_cell`] (deployed builds do; [`Model::cell`] would run it with float
    /// accumulation of `scale * q`).
    pub fn is_integer(&self) -> bool {
        self.w_in.kind().is_integer() && self.w_rec.kind().is_integer()
    }

    /// The float cell, with synapses read from the model's bytes and `neurons` from
    /// [`Model::neurons_into`]. Runs any model; integer weights are read as `scale * q` and
    /// accumulated in f32 (use [`Model::integer_cell`] for the i32 path).
    pub fn cell<'n>(
        &self,
        neurons: &'n [Neuron<f32>],
    ) -> Result<Cell<'n, f32, ModelSynapses<'a>, ModelSynapses<'a>>, CoreError> {
        self.cell_with(neurons)
    }

    /// [`Model::cell`] with the neurons in any storage (owned by the cell, e.g.).
    pub(crate) fn cell_with<'n, Ns: AsRef<[Neuron<f32>]>>(
        &self,
        neurons: Ns,
    ) -> Result<Cell<'n, f32, ModelSynapses<'a>, ModelSynapses<'a>, f32, Ns>, CoreError> {
        // `parse` validated every synapse.
        Cell::from_validated(self.config, neurons, self.w_in, self.w_rec, 1.0)
    }

    /// How the integer cell scales this model's ring (see [`IntegerScales`]); fails unless
    /// [`Model::is_integer`] and the scales are commensurate within `i32`.
    pub fn integer_scales(&self) -> Result<IntegerScales, CoreError> {
        IntegerScales::derive(&self.w_in, &self.w_rec, self.config.step_consts().spike)
    }

    /// The integer cell: i32 delay ring, weights `q * multiplier`, one conversion to f32 per
    /// neuron and step (see the module documentation). State storage: [`crate::CellState`]
    /// with an [`crate::I32Ring`] ([`crate::CellState::with_i32_ring`]).
    #[allow(clippy::type_complexity)]
    pub fn integer_cell<'n>(
        &self,
        neurons: &'n [Neuron<f32>],
    ) -> Result<Cell<'n, f32, IntegerSynapses<'a>, IntegerSynapses<'a>, i32>, CoreError> {
        self.integer_cell_with(neurons)
    }

    /// [`Model::integer_cell`] with the neurons in any storage.
    #[allow(clippy::type_complexity)]
    pub(crate) fn integer_cell_with<'n, Ns: AsRef<[Neuron<f32>]>>(
        &self,
        neurons: Ns,
    ) -> Result<Cell<'n, f32, IntegerSynapses<'a>, IntegerSynapses<'a>, i32, Ns>, CoreError> {
        // `parse` validated every synapse, `integer_scales` the i32 bound.
        let s = self.integer_scales()?;
        Cell::from_validated(
            self.config,
            neurons,
            IntegerSynapses::new(self.w_in, s.m_in),
            IntegerSynapses::new(self.w_rec, s.m_rec),
            s.unit,
        )
    }

    /// The bytes of section `id`, if present (also for ids this version does not interpret).
    pub fn section(&self, id: u16) -> Option<&'a [u8]> {
        let body = self
            .bytes
            .get(..self.bytes.len().checked_sub(CHECKSUM_LEN)?)?;
        let count = usize::from(read_u16(body, 10)?);
        let table_end = HEADER_LEN.checked_add(count.checked_mul(SECTION_ENTRY_LEN)?)?;
        (0..count)
            .filter_map(|i| read_entry(body, table_end, i).ok())
            .find(|e| e.id == id)
            .and_then(|e| body.get(e.start..e.end))
    }
}

/// Checks magic, version, declared length and checksum; returns the bytes before the checksum.
fn check_framing(bytes: &[u8]) -> Result<&[u8], CoreError> {
    let truncated = |what, needed| CoreError::Truncated {
        what,
        needed,
        got: bytes.len(),
    };
    let magic = bytes
        .get(..MAGIC.len())
        .ok_or(truncated("magic", MAGIC.len()))?;
    if magic != MAGIC {
        return Err(CoreError::BadMagic);
    }
    let version = read_u16(bytes, 8).ok_or(truncated("version", 10))?;
    if version != VERSION {
        return Err(CoreError::UnsupportedVersion { version });
    }
    let min_len = HEADER_LEN + CHECKSUM_LEN;
    if bytes.len() < min_len {
        return Err(truncated("header", min_len));
    }
    let declared = read_u32(bytes, 12).ok_or(truncated("header", min_len))? as usize;
    if declared > bytes.len() {
        return Err(truncated("model (declared total length)", declared));
    }
    if declared < bytes.len() {
        return Err(CoreError::Format {
            what: "total length",
            why: "the buffer is longer than the declared model length",
        });
    }
    let (body, tail) = bytes
        .split_at_checked(bytes.len() - CHECKSUM_LEN)
        .ok_or(truncated("checksum", min_len))?;
    let stored = read_u32(tail, 0).ok_or(truncated("checksum", min_len))?;
    let computed = checksum(body);
    if stored != computed {
        return Err(CoreError::BadChecksum { stored, computed });
    }
    Ok(body)
}

fn read_header(body: &[u8]) -> Result<Header, CoreError> {
    let short = CoreError::Truncated {
        what: "header",
        needed: HEADER_LEN + CHECKSUM_LEN,
        got: body.len() + CHECKSUM_LEN,
    };
    let u16_at = |at| read_u16(body, at).map(usize::from).ok_or(short);
    let u32_at = |at| read_u32(body, at).map(|v| v as usize).ok_or(short);
    let f32_at = |at| read_f32(body, at).ok_or(short);
    let section_count = u16_at(10)?;
    if section_count > MAX_SECTIONS {
        return Err(CoreError::Size {
            what: "section count",
            value: section_count,
            allowed: "0..=32",
        });
    }
    let n_rec = u32_at(20)?;
    if n_rec == 0 || n_rec > usize::from(u16::MAX) + 1 {
        return Err(CoreError::Size {
            what: "n_rec",
            value: n_rec,
            allowed: "1..=65536",
        });
    }
    let n_out = u32_at(24)?;
    if n_out == 0 {
        return Err(CoreError::Size {
            what: "n_out",
            value: n_out,
            allowed: ">= 1",
        });
    }
    let config = CellConfig {
        dt: f32_at(40)?,
        tau_adaptation: f32_at(44)?,
        v0: f32_at(48)?,
        n_delay: u16_at(36)?,
        n_refractory: u16_at(38)?,
        dampening_factor: f32_at(52)?,
        injected_noise_current: f32_at(56)?,
    };
    config.validate()?;
    let tau_out = f32_at(60)?;
    if !(tau_out.is_finite() && tau_out > 0.0) {
        return Err(CoreError::Parameter {
            what: "tau_out",
            why: "must be finite and > 0",
        });
    }
    Ok(Header {
        section_count,
        n_in: u32_at(16)?,
        n_rec,
        n_out,
        nnz_in: u32_at(28)?,
        nnz_rec: u32_at(32)?,
        config,
        tau_out,
    })
}

/// Reads and checks entry `i` of the section table (placement only).
fn read_entry(body: &[u8], table_end: usize, i: usize) -> Result<Entry, CoreError> {
    let at = i
        .checked_mul(SECTION_ENTRY_LEN)
        .and_then(|o| o.checked_add(HEADER_LEN))
        .ok_or(CoreError::Format {
            what: "section table",
            why: "entry offset overflows",
        })?;
    let short = CoreError::Truncated {
        what: "section table",
        needed: table_end + CHECKSUM_LEN,
        got: body.len() + CHECKSUM_LEN,
    };
    let id = read_u16(body, at).ok_or(short)?;
    let flags = read_u16(body, at + 2).ok_or(short)?;
    let start = read_u32(body, at + 4).ok_or(short)? as usize;
    let len = read_u32(body, at + 8).ok_or(short)? as usize;
    let err = |why| CoreError::Section { id, why };
    if start % 4 != 0 {
        return Err(err("offset is not a multiple of 4"));
    }
    if start < table_end {
        return Err(err("starts before the end of the section table"));
    }
    let end = start
        .checked_add(len)
        .filter(|&end| end <= body.len())
        .ok_or(err("extends past the checksum"))?;
    Ok(Entry {
        id,
        flags,
        start,
        end,
    })
}

fn parse_neurons<'a>(
    data: &'a [u8],
    header: &Header,
) -> Result<(LeF32Slice<'a>, LeF32Slice<'a>, LeF32Slice<'a>), CoreError> {
    let n = header.n_rec;
    let row = n * 4; // n <= 65536: no overflow
    check_section_len(section::NEURONS, row * 3, data.len())?;
    let part = |k: usize| {
        data.get(k * row..(k + 1) * row)
            .and_then(LeF32Slice::new)
            .ok_or(CoreError::SectionLength {
                id: section::NEURONS,
                expected: row * 3,
                got: data.len(),
            })
    };
    let (tau, thr, beta) = (part(0)?, part(1)?, part(2)?);
    for (index, ((t, th), b)) in tau.iter().zip(thr.iter()).zip(beta.iter()).enumerate() {
        neuron(index, t, th, b, header.config.dt)?;
    }
    Ok((tau, thr, beta))
}

fn neuron(index: usize, tau: f32, thr: f32, beta: f32, dt: f32) -> Result<Neuron<f32>, CoreError> {
    Neuron::new(tau, thr, beta, dt).map_err(|e| match e {
        CoreError::Parameter { what, why } => CoreError::NeuronParameter { index, what, why },
        other => other,
    })
}

#[derive(Clone, Copy)]
struct MatrixSpec {
    id: u16,
    matrix: &'static str,
    n_pre: usize,
    n_post: usize,
    nnz: usize,
    n_delay: usize,
    no_autapse: bool,
}

/// Byte ranges of the parts of a matrix section, relative to its start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatrixLayout {
    pub offsets: usize,
    pub targets: usize,
    pub delays: usize,
    pub weights: usize,
    pub end: usize,
}

impl MatrixLayout {
    /// The layout of a matrix section of `kind` with `n_pre` rows and `nnz` synapses, or
    /// `None` if it does not fit in `usize`.
    pub(crate) fn new(kind: WeightKind, n_pre: usize, nnz: usize) -> Option<Self> {
        let offsets = MATRIX_PREFIX_LEN;
        let targets = offsets.checked_add(n_pre.checked_add(1)?.checked_mul(4)?)?;
        let delays = targets.checked_add(align4(nnz.checked_mul(2)?)?)?;
        let weights = delays.checked_add(align4(nnz)?)?;
        let end = weights.checked_add(align4(nnz.checked_mul(kind.width())?)?)?;
        Some(MatrixLayout {
            offsets,
            targets,
            delays,
            weights,
            end,
        })
    }
}

pub(crate) fn align4(x: usize) -> Option<usize> {
    Some(x.checked_add(3)? & !3)
}

/// Checks the kind/scale prefix of a weight section; returns the kind and the scale.
fn check_weight_prefix(
    data: &[u8],
    id: u16,
    matrix: &'static str,
) -> Result<(WeightKind, f32), CoreError> {
    let prefix = data
        .get(..MATRIX_PREFIX_LEN)
        .ok_or(CoreError::SectionLength {
            id,
            expected: MATRIX_PREFIX_LEN,
            got: data.len(),
        })?;
    let code = prefix.first().copied().unwrap_or(u8::MAX);
    let kind = WeightKind::from_code(code)
        .ok_or(CoreError::UnsupportedWeightKind { matrix, kind: code })?;
    if prefix.get(1..4).is_none_or(|r| r.iter().any(|&b| b != 0)) {
        return Err(CoreError::Matrix {
            matrix,
            why: "reserved bytes after the weight kind must be 0",
        });
    }
    let scale = read_f32(prefix, 4).unwrap_or(f32::NAN);
    match kind {
        WeightKind::F32 if scale != 1.0 => Err(CoreError::Matrix {
            matrix,
            why: "the scale of f32 weights must be 1",
        }),
        WeightKind::I16 | WeightKind::I8 if !(scale.is_finite() && scale > 0.0) => {
            Err(CoreError::Matrix {
                matrix,
                why: "the scale of integer weights must be finite and > 0",
            })
        }
        _ => Ok((kind, scale)),
    }
}

fn parse_matrix(data: &[u8], spec: MatrixSpec) -> Result<ModelSynapses<'_>, CoreError> {
    let MatrixSpec {
        id,
        matrix,
        n_pre,
        n_post,
        nnz,
        n_delay,
        no_autapse,
    } = spec;
    let (kind, scale) = check_weight_prefix(data, id, matrix)?;
    let layout = MatrixLayout::new(kind, n_pre, nnz).ok_or(CoreError::Section {
        id,
        why: "declared sizes overflow",
    })?;
    check_section_len(id, layout.end, data.len())?;
    let part = |from: usize, to: usize| {
        data.get(from..to).ok_or(CoreError::SectionLength {
            id,
            expected: layout.end,
            got: data.len(),
        })
    };
    let offsets = part(layout.offsets, layout.targets)?;
    let targets_padded = part(layout.targets, layout.delays)?;
    let delays_padded = part(layout.delays, layout.weights)?;
    let weights_padded = part(layout.weights, layout.end)?;
    let (targets, pad_t) =
        targets_padded
            .split_at_checked(2 * nnz)
            .ok_or(CoreError::SectionLength {
                id,
                expected: layout.end,
                got: data.len(),
            })?;
    let (delays, pad_d) = delays_padded
        .split_at_checked(nnz)
        .ok_or(CoreError::SectionLength {
            id,
            expected: layout.end,
            got: data.len(),
        })?;
    let (weights, pad_w) = weights_padded
        .split_at_checked(nnz.saturating_mul(kind.width()))
        .ok_or(CoreError::SectionLength {
            id,
            expected: layout.end,
            got: data.len(),
        })?;
    if pad_t.iter().chain(pad_d).chain(pad_w).any(|&b| b != 0) {
        return Err(CoreError::Matrix {
            matrix,
            why: "padding bytes must be 0",
        });
    }
    check_offsets(offsets, matrix, nnz)?;
    let parts = MatrixParts {
        offsets,
        targets,
        delays,
        weights,
        kind,
        scale,
    };
    check_synapses(&parts, matrix, n_post, n_delay, no_autapse)?;
    let rows =
        CheckedRows::new(offsets, targets, delays, n_post, n_delay).ok_or(CoreError::Matrix {
            matrix,
            why: "targets, delays or offsets out of range",
        })?;
    Ok(ModelSynapses::from_parts(rows, kind, scale, weights))
}

/// The parts of a matrix section, once their lengths are checked.
struct MatrixParts<'a> {
    offsets: &'a [u8],
    targets: &'a [u8],
    delays: &'a [u8],
    weights: &'a [u8],
    kind: WeightKind,
    scale: f32,
}

/// Every synapse of a matrix section whose offsets were checked: target in range, delay below
/// `n_delay`, finite weight (`scale * q` for integers), and no autapse in a recurrent matrix.
/// The first problem, row by row, is the error.
fn check_synapses(
    m: &MatrixParts<'_>,
    matrix: &'static str,
    n_post: usize,
    n_delay: usize,
    no_autapse: bool,
) -> Result<(), CoreError> {
    let width = m.kind.width();
    let mut synapses = m
        .targets
        .chunks_exact(2)
        .zip(m.delays)
        .zip(m.weights.chunks_exact(width));
    let mut start = 0usize;
    for (pre, o) in m.offsets.chunks_exact(4).skip(1).enumerate() {
        let end = u32::from_le_bytes([o[0], o[1], o[2], o[3]]) as usize;
        for index in 0..end.saturating_sub(start) {
            let Some(((t, &d), w)) = synapses.next() else {
                break;
            };
            let t = usize::from(u16::from_le_bytes([t[0], t[1]]));
            let why = if t >= n_post {
                "target neuron out of range"
            } else if usize::from(d) >= n_delay {
                "delay index >= n_delay"
            } else if !finite_weight(m.kind, m.scale, w) {
                "weight is not finite"
            } else if no_autapse && t == pre {
                "autapse (self-connection) in a recurrent matrix"
            } else {
                continue;
            };
            return Err(CoreError::Synapse {
                matrix,
                pre,
                index,
                why,
            });
        }
        start = end;
    }
    Ok(())
}

/// Whether the weight stored in `w` (of `kind`, with the matrix scale `scale`) is finite. Out
/// of line: the loop that calls it stays one loop for all kinds (it runs once per model).
#[inline(never)]
fn finite_weight(kind: WeightKind, scale: f32, w: &[u8]) -> bool {
    match kind {
        WeightKind::F32 => read_f32(w, 0).is_some_and(f32::is_finite),
        WeightKind::I16 => {
            read_u16(w, 0).is_some_and(|q| (scale * f32::from(q as i16)).is_finite())
        }
        WeightKind::I8 => w
            .first()
            .is_some_and(|&q| (scale * f32::from(q as i8)).is_finite()),
    }
}

/// CSR offsets: start at 0, non-decreasing, end at `nnz`.
fn check_offsets(offsets: &[u8], matrix: &'static str, nnz: usize) -> Result<(), CoreError> {
    let mut prev: Option<u32> = None;
    let mut rows = 0usize;
    for (i, chunk) in offsets.chunks_exact(4).enumerate() {
        let o = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let err = |why| CoreError::CsrOffsets {
            matrix,
            pre: i,
            why,
        };
        match prev {
            None if o != 0 => return Err(err("the first offset must be 0")),
            Some(p) if o < p => return Err(err("offsets must be non-decreasing")),
            _ => {}
        }
        prev = Some(o);
        rows = i;
    }
    match prev {
        Some(last) if last as usize == nnz => Ok(()),
        _ => Err(CoreError::CsrOffsets {
            matrix,
            pre: rows,
            why: "the last offset must equal the number of synapses",
        }),
    }
}

/// A weight section: prefix, then `n` weights of its kind (zero-padded to 4 bytes), each
/// finite as f32.
fn parse_dense<'a>(
    data: &'a [u8],
    id: u16,
    what: &'static str,
    n: usize,
) -> Result<LeWeights<'a>, CoreError> {
    let (kind, scale) = check_weight_prefix(data, id, what)?;
    let overflow = CoreError::Section {
        id,
        why: "declared sizes overflow",
    };
    let payload = n.checked_mul(kind.width()).ok_or(overflow)?;
    let expected = align4(payload)
        .and_then(|b| b.checked_add(MATRIX_PREFIX_LEN))
        .ok_or(overflow)?;
    check_section_len(id, expected, data.len())?;
    let rest = data.get(MATRIX_PREFIX_LEN..).unwrap_or(&[]);
    let (body, pad) = rest
        .split_at_checked(payload)
        .ok_or(CoreError::SectionLength {
            id,
            expected,
            got: data.len(),
        })?;
    if pad.iter().any(|&b| b != 0) {
        return Err(CoreError::Matrix {
            matrix: what,
            why: "padding bytes must be 0",
        });
    }
    let weights = LeWeights::new(body, kind, scale).ok_or(CoreError::SectionLength {
        id,
        expected,
        got: data.len(),
    })?;
    if weights.iter().any(|w| !w.is_finite()) {
        return Err(CoreError::Parameter {
            what,
            why: "must be finite",
        });
    }
    Ok(weights)
}

/// Exactly `n` finite f32.
fn parse_floats<'a>(
    data: &'a [u8],
    id: u16,
    what: &'static str,
    n: usize,
) -> Result<LeF32Slice<'a>, CoreError> {
    let expected = n.checked_mul(4).ok_or(CoreError::Section {
        id,
        why: "declared sizes overflow",
    })?;
    check_section_len(id, expected, data.len())?;
    let floats = LeF32Slice::new(data).ok_or(CoreError::SectionLength {
        id,
        expected,
        got: data.len(),
    })?;
    if floats.iter().any(|w| !w.is_finite()) {
        return Err(CoreError::Parameter {
            what,
            why: "must be finite",
        });
    }
    Ok(floats)
}

fn check_section_len(id: u16, expected: usize, got: usize) -> Result<(), CoreError> {
    if expected == got {
        Ok(())
    } else {
        Err(CoreError::SectionLength { id, expected, got })
    }
}

pub(crate) fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(s.try_into().ok()?))
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

pub(crate) fn read_f32(b: &[u8], at: usize) -> Option<f32> {
    read_u32(b, at).map(f32::from_bits)
}
