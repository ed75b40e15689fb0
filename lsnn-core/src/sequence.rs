//! Input spike sequences in a compact byte format, and what a run reports about them: the
//! windowed readout means, their predicted classes, and one result line per sequence.
//!
//! Devices embed the bytes and read them in place ([`Sequences::parse`] validates once, never
//! panicking); the host writes them (`encode_sequences`, with the `alloc` feature) and runs
//! the same bytes through the same code, so the two can be compared line by line.
//!
//! # Layout, version 1 (little-endian)
//!
//! | offset | size | field                                                           |
//! |-------:|-----:|-----------------------------------------------------------------|
//! |      0 |    8 | magic `b"LSNNSEQ\0"`                                            |
//! |      8 |    2 | `u16` format version, `1`                                       |
//! |     10 |    2 | `u16` `n_in`, number of input channels (1..=255)                |
//! |     12 |    4 | `u32` number of sequences `B`                                   |
//! |     16 |    4 | `u32` steps per sequence `T` (>= 1)                             |
//! |     20 |    4 | `u32` readout windows `W` (>= 1, divides `T`)                   |
//! |     24 |    4 | `u32` total length in bytes, checksum included                  |
//! |     28 | 4(B+1) | `u32` start of each sequence, then the end of the last one, from the start of the file |
//! |      … |    … | the sequences: per step, a `u8` count `c` then `c` strictly increasing `u8` channels `< n_in` (all spikes, value 1) |
//! |  end-4 |    4 | `u32` CRC-32 (IEEE) of every byte before it                     |

use core::fmt;

use crate::model::checksum;
use crate::readout::{argmax, WeightSource};
use crate::state::{Accumulator, RingStore};
use crate::synapse::Synapses;
use crate::{Cell, CellState, CoreError, NoNoise, Readout};

/// The 8 bytes a sequence file starts with.
pub const SEQ_MAGIC: [u8; 8] = *b"LSNNSEQ\0";
/// The version this build reads and writes.
pub const SEQ_VERSION: u16 = 1;
/// Length of the fixed header.
pub const SEQ_HEADER_LEN: usize = 28;

/// A validated set of sequences, read in place.
#[derive(Clone, Copy, Debug)]
pub struct Sequences<'a> {
    bytes: &'a [u8],
    n_in: usize,
    n_sequences: usize,
    n_steps: usize,
    n_windows: usize,
}

fn seq_err(why: &'static str) -> CoreError {
    CoreError::Format {
        what: "input sequences",
        why,
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?) as usize)
}

impl<'a> Sequences<'a> {
    /// Validates `bytes` completely: magic, version, length, checksum, header values, the
    /// sequence table, and every step of every sequence (counts, channels ascending and
    /// `< n_in`, exactly `T` steps per sequence).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CoreError> {
        if bytes.get(..8) != Some(&SEQ_MAGIC[..]) {
            return Err(seq_err("bad magic (not an LSNN sequence file)"));
        }
        let truncated = seq_err("truncated header");
        if u16_at(bytes, 8).ok_or(truncated)? != SEQ_VERSION {
            return Err(seq_err("unsupported version (this build reads version 1)"));
        }
        let total = u32_at(bytes, 24).ok_or(truncated)?;
        if total != bytes.len() || total < SEQ_HEADER_LEN + 4 {
            return Err(seq_err("the declared length differs from the buffer's"));
        }
        let (body, tail) = bytes.split_at(total - 4);
        let stored = u32_at(tail, 0).ok_or(truncated)? as u32;
        if stored != checksum(body) {
            return Err(seq_err("checksum mismatch"));
        }
        let n_in = usize::from(u16_at(bytes, 10).ok_or(truncated)?);
        let n_sequences = u32_at(bytes, 12).ok_or(truncated)?;
        let n_steps = u32_at(bytes, 16).ok_or(truncated)?;
        let n_windows = u32_at(bytes, 20).ok_or(truncated)?;
        if !(1..=255).contains(&n_in) {
            return Err(seq_err("n_in must be 1..=255"));
        }
        if n_steps == 0 || n_windows == 0 || n_steps % n_windows != 0 {
            return Err(seq_err(
                "steps must be >= 1 and a multiple of the windows (>= 1)",
            ));
        }
        let table_end = n_sequences
            .checked_add(1)
            .and_then(|k| k.checked_mul(4))
            .and_then(|k| k.checked_add(SEQ_HEADER_LEN))
            .filter(|&end| end <= body.len())
            .ok_or(seq_err("the sequence table does not fit"))?;
        let seqs = Sequences {
            bytes: body,
            n_in,
            n_sequences,
            n_steps,
            n_windows,
        };
        let mut prev_end = table_end;
        for s in 0..n_sequences {
            let (start, end) = seqs.range(s).ok_or(truncated)?;
            if start != prev_end || end < start || end > body.len() {
                return Err(seq_err(
                    "sequence offsets must be contiguous after the table",
                ));
            }
            let mut at = start;
            for _ in 0..n_steps {
                let count = usize::from(*body.get(at).ok_or(seq_err("a sequence is short"))?);
                let channels = body
                    .get(at + 1..at + 1 + count)
                    .filter(|_| at + 1 + count <= end)
                    .ok_or(seq_err("a sequence is short"))?;
                if channels.windows(2).any(|w| w[0] >= w[1])
                    || channels.iter().any(|&c| usize::from(c) >= n_in)
                {
                    return Err(seq_err(
                        "channels of a step must be strictly increasing and < n_in",
                    ));
                }
                at += 1 + count;
            }
            if at != end {
                return Err(seq_err("a sequence has bytes after its last step"));
            }
            prev_end = end;
        }
        if prev_end != body.len() {
            return Err(seq_err("bytes after the last sequence"));
        }
        Ok(seqs)
    }

    fn range(&self, s: usize) -> Option<(usize, usize)> {
        let at = SEQ_HEADER_LEN.checked_add(s.checked_mul(4)?)?;
        Some((
            u32_at(self.bytes, at)?,
            u32_at(self.bytes, at.checked_add(4)?)?,
        ))
    }

    /// Number of input channels.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.n_sequences
    }

    /// True when there are no sequences.
    pub fn is_empty(&self) -> bool {
        self.n_sequences == 0
    }

    /// Steps per sequence.
    pub fn n_steps(&self) -> usize {
        self.n_steps
    }

    /// Readout windows per sequence.
    pub fn n_windows(&self) -> usize {
        self.n_windows
    }

    /// Steps per window.
    pub fn window_len(&self) -> usize {
        self.n_steps / self.n_windows
    }

    /// The steps of sequence `s` in order (empty past the end).
    pub fn steps(&self, s: usize) -> Steps<'a> {
        let bytes = self
            .range(s)
            .and_then(|(start, end)| self.bytes.get(start..end))
            .unwrap_or(&[]);
        Steps { bytes }
    }
}

/// The steps of one sequence; each item is the step's channels (spikes, value 1).
#[derive(Clone, Debug)]
pub struct Steps<'a> {
    bytes: &'a [u8],
}

impl<'a> Iterator for Steps<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let (&count, rest) = self.bytes.split_first()?;
        let (channels, rest) = rest.split_at_checked(usize::from(count))?;
        self.bytes = rest;
        Some(channels)
    }
}

/// Writes sequences (each a list of steps, each a list of channels) in the format above.
/// Channels of a step are sorted and de-duplicated here.
#[cfg(feature = "alloc")]
pub fn encode_sequences(
    n_in: usize,
    n_steps: usize,
    n_windows: usize,
    sequences: &[alloc::vec::Vec<alloc::vec::Vec<u8>>],
) -> Result<alloc::vec::Vec<u8>, CoreError> {
    use alloc::vec::Vec;
    let n_in16 = u16::try_from(n_in)
        .ok()
        .filter(|n| (1..=255).contains(n))
        .ok_or(seq_err("n_in must be 1..=255"))?;
    let mut out = Vec::new();
    out.extend_from_slice(&SEQ_MAGIC);
    out.extend_from_slice(&SEQ_VERSION.to_le_bytes());
    out.extend_from_slice(&n_in16.to_le_bytes());
    for v in [sequences.len(), n_steps, n_windows, 0] {
        let v = u32::try_from(v).map_err(|_| seq_err("a size does not fit in u32"))?;
        out.extend_from_slice(&v.to_le_bytes());
    }
    let table = out.len();
    out.resize(table + 4 * (sequences.len() + 1), 0);
    let mut offsets = Vec::with_capacity(sequences.len() + 1);
    for seq in sequences {
        if seq.len() != n_steps {
            return Err(seq_err("every sequence must have n_steps steps"));
        }
        offsets.push(out.len());
        for step in seq {
            let mut channels = step.clone();
            channels.sort_unstable();
            channels.dedup();
            out.push(channels.len() as u8);
            out.extend_from_slice(&channels);
        }
    }
    offsets.push(out.len());
    for (k, &o) in offsets.iter().enumerate() {
        let o = u32::try_from(o).map_err(|_| seq_err("a size does not fit in u32"))?;
        out[table + 4 * k..table + 4 * k + 4].copy_from_slice(&o.to_le_bytes());
    }
    let total = u32::try_from(out.len() + 4).map_err(|_| seq_err("a size does not fit in u32"))?;
    out[24..28].copy_from_slice(&total.to_le_bytes());
    let crc = checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Sequences::parse(&out)?;
    Ok(out)
}

/// Means of the readout over consecutive windows of `len` steps: every step adds
/// `y / len` (rounded in f32, in step order) to the window's sums, as the host's reference.
#[derive(Clone, Debug)]
pub struct WindowMeans<S> {
    sums: S,
    len: usize,
    filled: usize,
}

impl<S: AsRef<[f32]> + AsMut<[f32]>> WindowMeans<S> {
    /// Sums in `sums` (one per output), windows of `len >= 1` steps.
    pub fn new(sums: S, len: usize) -> Result<Self, CoreError> {
        if len == 0 {
            return Err(CoreError::Size {
                what: "window length",
                value: 0,
                allowed: ">= 1",
            });
        }
        let mut w = WindowMeans {
            sums,
            len,
            filled: 0,
        };
        w.sums.as_mut().fill(0.0);
        Ok(w)
    }

    /// Adds one step's readout `y`; returns the window's means when this step completes it
    /// (the next push starts a new window).
    pub fn push(&mut self, y: &[f32]) -> Result<Option<&[f32]>, CoreError> {
        if y.len() != self.sums.as_ref().len() {
            crate::rare();
            return Err(CoreError::Length {
                what: "readout output (n_out)",
                expected: self.sums.as_ref().len(),
                got: y.len(),
            });
        }
        if self.filled == self.len {
            crate::rare();
            self.sums.as_mut().fill(0.0);
            self.filled = 0;
        }
        let len = self.len as f32;
        for (s, &v) in self.sums.as_mut().iter_mut().zip(y) {
            *s += v / len;
        }
        self.filled += 1;
        Ok((self.filled == self.len).then_some(self.sums.as_ref()))
    }

    /// Starts over (a new sequence).
    pub fn reset(&mut self) {
        self.sums.as_mut().fill(0.0);
        self.filled = 0;
    }

    /// Steps per window.
    pub fn window_len(&self) -> usize {
        self.len
    }

    /// Windows of `len >= 1` steps from now on, starting with a new one.
    pub fn set_len(&mut self, len: usize) -> Result<(), CoreError> {
        if len == 0 {
            return Err(CoreError::Size {
                what: "window length",
                value: 0,
                allowed: ">= 1",
            });
        }
        self.len = len;
        self.reset();
        Ok(())
    }

    /// The means of the window that the last push completed (`None` if it did not complete
    /// one).
    pub fn completed(&self) -> Option<&[f32]> {
        (self.filled == self.len).then_some(self.sums.as_ref())
    }
}

/// The predicted class of a window: the first largest mean.
pub fn window_class(means: &[f32]) -> usize {
    argmax(means).unwrap_or(0)
}

/// Writes the result line of one sequence, the format both the firmware and
/// `lsnn-host infer --inputs` print: `seq <s> spikes <count> pred <c_0> <c_1> ... <c_W-1>`.
pub fn write_result_line(
    out: &mut impl fmt::Write,
    sequence: usize,
    spikes: u64,
    classes: impl IntoIterator<Item = usize>,
) -> fmt::Result {
    write!(out, "seq {sequence} spikes ")?;
    write_decimal(out, spikes)?;
    out.write_str(" pred")?;
    for c in classes {
        write!(out, " {c}")?;
    }
    Ok(())
}

/// `x` in decimal, as `{x}` prints it, without 64-bit division (which would cost a
/// microcontroller about a kilobyte of flash): digits by repeated subtraction.
fn write_decimal(out: &mut impl fmt::Write, x: u64) -> fmt::Result {
    const POWERS: [u64; 20] = {
        let mut p = [1u64; 20];
        let mut k = 19;
        while k > 0 {
            p[k - 1] = p[k] * 10;
            k -= 1;
        }
        p
    };
    let mut digits = [b'0'; 20];
    let mut rest = x;
    for (d, &power) in digits.iter_mut().zip(&POWERS) {
        while rest >= power {
            rest -= power;
            *d += 1;
        }
    }
    let first = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len() - 1);
    digits[first..]
        .iter()
        .try_for_each(|&d| out.write_char(char::from(d)))
}

/// What [`run_sequence`] reports while it runs.
#[derive(Clone, Copy, Debug)]
pub enum Observation<'o> {
    /// Step `t` is about to start (before its input events are read).
    Start(usize),
    /// Step `t` is done: the spikes `z` and readout `y` of the step.
    Stepped {
        /// The step.
        t: usize,
        /// Spikes of the step (0 or 1/dt).
        z: &'o [f32],
        /// Readout output of the step.
        y: &'o [f32],
    },
    /// Window `index` is complete; `means` are its readout means.
    Window {
        /// The window.
        index: usize,
        /// Mean readout over its steps.
        means: &'o [f32],
    },
    /// The last step is done.
    Done,
}

/// Runs one input sequence from the state as given (callers reset it between sequences):
/// per step, the cell on the step's events, the readout, the window means. Reports progress to
/// `observe` and returns the number of spikes. Both the firmware and the host's reference run
/// sequences with this function, so they compute the same floats in the same order.
#[allow(clippy::too_many_arguments)]
pub fn run_sequence<In, Rec, A, S, C, R, W, M, E, I>(
    cell: &Cell<'_, f32, In, Rec, A>,
    readout: &Readout<'_, f32, W>,
    state: &mut CellState<f32, S, C, R>,
    filtered: &mut [f32],
    out: &mut [f32],
    windows: &mut WindowMeans<M>,
    steps: I,
    mut observe: impl FnMut(Observation<'_>),
) -> Result<u64, CoreError>
where
    In: Synapses<A>,
    Rec: Synapses<A>,
    A: Accumulator<f32>,
    S: AsRef<[f32]> + AsMut<[f32]>,
    C: AsRef<[u16]> + AsMut<[u16]>,
    R: RingStore<f32, Acc = A>,
    W: WeightSource<f32>,
    M: AsRef<[f32]> + AsMut<[f32]>,
    E: IntoIterator<Item = (usize, f32)>,
    I: IntoIterator<Item = E>,
{
    filtered.fill(0.0);
    windows.reset();
    let mut spikes = 0u64;
    let mut window = 0;
    for (t, events) in steps.into_iter().enumerate() {
        observe(Observation::Start(t));
        cell.step_inference(state, events, &mut NoNoise)?;
        spikes += readout.step_spikes(state.spikes(), filtered, out)? as u64;
        observe(Observation::Stepped {
            t,
            z: state.z(),
            y: out,
        });
        if let Some(means) = windows.push(out)? {
            crate::rare();
            observe(Observation::Window {
                index: window,
                means,
            });
            window += 1;
        }
    }
    observe(Observation::Done);
    Ok(spikes)
}

/// The events of a step of [`Sequences`]: its channels as spikes of value 1.
pub fn spike_events(channels: &[u8]) -> impl Iterator<Item = (usize, f32)> + '_ {
    channels.iter().map(|&c| (usize::from(c), 1.0))
}
