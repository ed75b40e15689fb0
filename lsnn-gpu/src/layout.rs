//! Everything about the kernels that can be computed without a GPU: sizes, the flat parameter
//! layout, launch geometry, and the packing of weights, inputs, loss terms, state and traces into
//! (and out of) the device layouts described in `kernels/lsnn.cuh`.

use std::ops::Range;

use lsnn_core::{CellConfig, Neuron};

use crate::args::MAX_SEGMENTS;
use crate::error::GpuError;

/// One thread per neuron, so at most a full block.
pub const MAX_NEURONS: usize = 1024;
/// Threads of the element-wise kernels (reduction, update) and of the one-block kernels.
pub const SMALL_BLOCK: u32 = 256;
/// Dynamic shared memory a block may use without opting in.
pub const DEFAULT_SHARED_LIMIT: usize = 48 * 1024;

/// The sizes of a network as the kernels see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Input channels I.
    pub n_in: usize,
    /// Recurrent neurons N.
    pub n_rec: usize,
    /// Readout outputs O.
    pub n_out: usize,
    /// Delay slots D.
    pub n_delay: usize,
    /// Refractory steps R.
    pub n_refractory: usize,
    /// Whether the readout has a bias `b_out`.
    pub has_bias: bool,
}

impl Dims {
    /// Checks the limits of the kernels.
    pub fn validate(&self) -> Result<(), GpuError> {
        if self.n_rec == 0 || self.n_rec > MAX_NEURONS {
            return Err(GpuError::shape(
                "n_rec",
                format!(
                    "{} neurons; the kernels run one thread per neuron: 1..={MAX_NEURONS}",
                    self.n_rec
                ),
            ));
        }
        if self.n_delay == 0 || self.n_delay > 256 {
            return Err(GpuError::shape(
                "n_delay",
                format!("{} is not in 1..=256", self.n_delay),
            ));
        }
        if self.n_out == 0 {
            return Err(GpuError::shape(
                "n_out",
                "the readout needs at least one output",
            ));
        }
        if self.n_refractory > i32::MAX as usize {
            return Err(GpuError::shape("n_refractory", "too large"));
        }
        let params = self.params().len();
        if params >= u32::MAX as usize {
            return Err(GpuError::shape(
                "parameters",
                format!("{params} do not fit u32 indices"),
            ));
        }
        Ok(())
    }

    /// Spike words per step, `ceil(N / 32)`.
    pub fn words(&self) -> usize {
        self.n_rec.div_ceil(32)
    }

    /// Threads of the per-element kernels: N rounded up to whole warps.
    pub fn threads(&self) -> usize {
        32 * self.words()
    }

    /// Rows of the synapse table: inputs then presynaptic neurons.
    pub fn syn_rows(&self) -> usize {
        self.n_in + self.n_rec
    }

    /// The flat parameter layout.
    pub fn params(&self) -> ParamLayout {
        ParamLayout {
            n_in: self.n_in,
            n_rec: self.n_rec,
            n_out: self.n_out,
            has_bias: self.has_bias,
        }
    }
}

/// A trained array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Param {
    /// Input weights `[I, N]`.
    WIn,
    /// Recurrent weights `[N, N]`.
    WRec,
    /// Readout weights `[N, O]`.
    WOut,
    /// Readout bias `[O]`.
    BOut,
}

impl Param {
    /// Every array, in the flat layout's order.
    pub const ALL: [Param; 4] = [Param::WIn, Param::WRec, Param::WOut, Param::BOut];

    /// The host's name of the array (`Params::named`).
    pub fn name(self) -> &'static str {
        match self {
            Param::WIn => "w_in",
            Param::WRec => "w_rec",
            Param::WOut => "w_out",
            Param::BOut => "b_out",
        }
    }

    /// The array called `name`.
    pub fn from_name(name: &str) -> Option<Param> {
        Param::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// `params [P] = w_in [I*N] | w_rec [N*N] | w_out [N*O] | b_out [O]` (row-major arrays; b_out
/// only when the readout has one). Gradients and Adam moments use the same layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    n_in: usize,
    n_rec: usize,
    n_out: usize,
    has_bias: bool,
}

impl ParamLayout {
    /// Where `p` lives in the flat vector (`None`: b_out of a readout without bias).
    pub fn range(&self, p: Param) -> Option<Range<usize>> {
        let (i, n, o) = (self.n_in, self.n_rec, self.n_out);
        let (a, b, c) = (i * n, i * n + n * n, i * n + n * n + n * o);
        match p {
            Param::WIn => Some(0..a),
            Param::WRec => Some(a..b),
            Param::WOut => Some(b..c),
            Param::BOut => self.has_bias.then_some(c..c + o),
        }
    }

    /// Number of parameters P.
    pub fn len(&self) -> usize {
        let (i, n, o) = (self.n_in, self.n_rec, self.n_out);
        i * n + n * n + n * o + if self.has_bias { o } else { 0 }
    }

    /// Whether there are no parameters (never, for a valid network).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The arrays present, in order.
    pub fn params(&self) -> Vec<Param> {
        Param::ALL
            .into_iter()
            .filter(|&p| self.range(p).is_some())
            .collect()
    }

    /// The array and the entry within it of flat index `flat`.
    pub fn locate(&self, flat: usize) -> Option<(Param, usize)> {
        self.params().into_iter().find_map(|p| {
            let r = self.range(p)?;
            r.contains(&flat).then(|| (p, flat - r.start))
        })
    }

    /// The flat vector of the arrays `(w_in, w_rec, w_out, b_out)`, checking their lengths.
    pub fn flatten(
        &self,
        w_in: &[f32],
        w_rec: &[f32],
        w_out: &[f32],
        b_out: Option<&[f32]>,
    ) -> Result<Vec<f32>, GpuError> {
        let mut flat = Vec::with_capacity(self.len());
        for (p, values) in [
            (Param::WIn, Some(w_in)),
            (Param::WRec, Some(w_rec)),
            (Param::WOut, Some(w_out)),
            (Param::BOut, b_out),
        ] {
            match (self.range(p), values) {
                (Some(r), Some(v)) if v.len() == r.len() => flat.extend_from_slice(v),
                (Some(r), v) => {
                    return Err(GpuError::shape(
                        p.name(),
                        format!(
                            "{} entries, expected {}",
                            v.map_or(0, <[f32]>::len),
                            r.len()
                        ),
                    ))
                }
                (None, Some(_)) => {
                    return Err(GpuError::shape(
                        p.name(),
                        "given, but the readout has no bias",
                    ))
                }
                (None, None) => {}
            }
        }
        Ok(flat)
    }
}

/// The segments of a parameter vector for the update kernels: consecutive ranges, some rewired
/// by DEEP R with a target connectivity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segments {
    /// Start of each segment; `start[n]` is the total length.
    pub start: [u32; MAX_SEGMENTS + 1],
    /// Number of segments.
    pub n: u32,
    /// Bit s: segment s is rewired.
    pub rewired_mask: u32,
    /// DEEP R's categorical weight `size * p` of each rewired segment.
    pub weight: [f64; MAX_SEGMENTS],
    /// DEEP R's global budget of connections.
    pub budget: u32,
}

impl Segments {
    /// Segments of the given lengths, each with `Some(connectivity)` when rewired.
    pub fn new(parts: &[(usize, Option<f64>)]) -> Result<Segments, GpuError> {
        if parts.is_empty() || parts.len() > MAX_SEGMENTS {
            return Err(GpuError::shape(
                "parameter segments",
                format!("{} segments, 1..={MAX_SEGMENTS} allowed", parts.len()),
            ));
        }
        let mut s = Segments {
            start: [0; MAX_SEGMENTS + 1],
            n: parts.len() as u32,
            rewired_mask: 0,
            weight: [0.0; MAX_SEGMENTS],
            budget: 0,
        };
        let mut at = 0usize;
        for (k, &(len, p)) in parts.iter().enumerate() {
            s.start[k] = at as u32;
            at += len;
            if let Some(p) = p {
                if !(p > 0.0 && p <= 1.0) {
                    return Err(GpuError::shape(
                        "connectivity",
                        format!("{p} is not in (0, 1]"),
                    ));
                }
                s.rewired_mask |= 1 << k;
                s.weight[k] = len as f64 * p;
            }
        }
        if at >= u32::MAX as usize {
            return Err(GpuError::shape("parameters", "too many for u32 indices"));
        }
        for k in parts.len()..=MAX_SEGMENTS {
            s.start[k] = at as u32;
        }
        s.budget = deepr_budget(parts.iter().filter_map(|&(len, p)| p.map(|p| (len, p)))) as u32;
        Ok(s)
    }

    /// Whether any segment is rewired.
    pub fn any_rewired(&self) -> bool {
        self.rewired_mask != 0
    }

    /// The range of segment k.
    pub fn range(&self, k: usize) -> Range<usize> {
        self.start[k] as usize..self.start[k + 1] as usize
    }
}

/// DEEP R's budget `K = int(sum size * p)`, summed in float32 as TensorFlow does (the host's
/// `deepr::budget`).
pub fn deepr_budget(parts: impl IntoIterator<Item = (usize, f64)>) -> usize {
    parts
        .into_iter()
        .map(|(len, p)| len as f32 * p as f32)
        .sum::<f32>() as usize
}

/// A kernel launch: grid and block size (x only) and dynamic shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchPlan {
    /// Blocks.
    pub grid: u32,
    /// Threads per block.
    pub block: u32,
    /// Dynamic shared memory per block in bytes.
    pub shared_bytes: u32,
}

/// `lsnn_forward`'s launch and what it keeps in shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardPlan {
    /// The launch.
    pub launch: LaunchPlan,
    /// Connected recurrent synapses the block's shared copy of the w_rec columns can hold
    /// (0: they are read from global memory; the kernel also falls back to it when more are
    /// connected).
    pub cols_capacity: u32,
}

impl ForwardPlan {
    /// The launch for this placement: the delay ring, the z exchange, the readout window sums,
    /// the spike masks and the term windows, plus, with `cols_capacity` > 0, that many compacted
    /// synapses and the columns' connection bits and word starts.
    pub fn new(dims: &Dims, n_batch: usize, max_terms: usize, cols_capacity: usize) -> ForwardPlan {
        let cols = if cols_capacity > 0 {
            Self::cols_bytes(dims, cols_capacity)
        } else {
            0
        };
        ForwardPlan {
            launch: LaunchPlan {
                grid: n_batch as u32,
                block: dims.threads() as u32,
                shared_bytes: (Self::base_bytes(dims, max_terms) + cols) as u32,
            },
            cols_capacity: cols_capacity as u32,
        }
    }

    fn base_bytes(dims: &Dims, max_terms: usize) -> usize {
        let (np, w) = (dims.threads(), dims.words());
        4 * (dims.n_delay * np + 2 * np + max_terms * np + 2 * w + 2 * max_terms)
    }

    fn cols_bytes(dims: &Dims, cols_capacity: usize) -> usize {
        8 * cols_capacity + 2 * 4 * dims.words() * dims.threads()
    }
}

/// `lsnn_forward`: one block per element, one thread per neuron. The compacted w_rec columns
/// (at most `rec_bound` connected synapses: see [`rec_bound`]) go into shared memory too when
/// everything fits in half of `shared_limit`, so that two blocks still share a multiprocessor.
pub fn forward_plan(
    dims: &Dims,
    n_batch: usize,
    max_terms: usize,
    shared_limit: usize,
    rec_bound: usize,
) -> Result<ForwardPlan, GpuError> {
    let base = ForwardPlan::base_bytes(dims, max_terms);
    if base > shared_limit {
        return Err(GpuError::shape(
            "forward shared memory",
            format!(
                "{base} bytes > the device's {shared_limit} (n_delay {}, {} loss terms per element)",
                dims.n_delay, max_terms
            ),
        ));
    }
    let rec_bound = rec_bound.min(dims.n_rec * dims.n_rec);
    let cols_fit = base + ForwardPlan::cols_bytes(dims, rec_bound) <= shared_limit / 2;
    let cols_capacity = if cols_fit { rec_bound } else { 0 };
    Ok(ForwardPlan::new(dims, n_batch, max_terms, cols_capacity))
}

/// The most connected recurrent synapses there can be: DEEP R's budget when w_rec is rewired
/// (the step reconnects to exactly that many over all rewired matrices), else N * N.
pub fn rec_bound(layout: &ParamLayout, segments: &Segments, n_rec: usize) -> usize {
    let dense = n_rec * n_rec;
    let rewired = layout
        .params()
        .iter()
        .position(|&p| p == Param::WRec)
        .is_some_and(|k| segments.rewired_mask & (1 << k) != 0);
    if rewired {
        dense.min(segments.budget as usize)
    } else {
        dense
    }
}

/// `lsnn_backward`'s launch and what it keeps in shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackwardPlan {
    /// The launch.
    pub launch: LaunchPlan,
    /// The block's w_in / w_rec gradient rows are in shared memory (else in global memory).
    pub acc_in_shared: bool,
    /// Connected recurrent synapses the block's shared copy of the compacted rows can hold
    /// (0: the rows are read from global memory; the kernel also falls back to them when more
    /// are connected).
    pub rows_capacity: u32,
}

impl BackwardPlan {
    /// The launch for this placement: the dL/di ring (2 (D + 1) rows), the readout adjoints,
    /// term windows and two steps' lists of spiking neurons, plus the gradient rows and `rows_capacity` compacted synapses if asked.
    pub fn new(
        dims: &Dims,
        n_batch: usize,
        max_terms: usize,
        acc_in_shared: bool,
        rows_capacity: usize,
    ) -> BackwardPlan {
        let used = Self::base_bytes(dims, max_terms)
            + if acc_in_shared {
                Self::acc_bytes(dims)
            } else {
                0
            };
        BackwardPlan {
            launch: LaunchPlan {
                grid: n_batch as u32,
                block: dims.threads() as u32,
                shared_bytes: (used + 8 * rows_capacity) as u32,
            },
            acc_in_shared,
            rows_capacity: rows_capacity as u32,
        }
    }

    fn base_bytes(dims: &Dims, max_terms: usize) -> usize {
        let np = dims.threads();
        4 * (2 * (dims.n_delay + 1) * np + max_terms * np + 2 * max_terms + 2 * np + 2)
    }

    fn acc_bytes(dims: &Dims) -> usize {
        4 * dims.syn_rows() * dims.n_rec
    }
}

/// `lsnn_backward`: one block per element; the dL/di ring, the readout adjoints and term
/// windows always in shared memory, the gradient rows `(I + N) * N` too when the whole fits
/// under `shared_limit`. The compacted recurrent rows (at most `rec_bound` connected synapses:
/// see [`rec_bound`]) are copied there too when everything fits in half of `shared_limit`, so
/// that two blocks still share a multiprocessor.
pub fn backward_plan(
    dims: &Dims,
    n_batch: usize,
    max_terms: usize,
    shared_limit: usize,
    rec_bound: usize,
) -> Result<BackwardPlan, GpuError> {
    let base = BackwardPlan::base_bytes(dims, max_terms);
    if base > shared_limit {
        return Err(GpuError::shape(
            "backward shared memory",
            format!("{base} bytes > the device's {shared_limit}"),
        ));
    }
    let acc = BackwardPlan::acc_bytes(dims);
    let acc_in_shared = base + acc <= shared_limit;
    let used = base + if acc_in_shared { acc } else { 0 };
    let rec_bound = rec_bound.min(dims.n_rec * dims.n_rec);
    let rows_fit = used + 8 * rec_bound <= shared_limit / 2;
    let rows_capacity = if rows_fit { rec_bound } else { 0 };
    Ok(BackwardPlan::new(
        dims,
        n_batch,
        max_terms,
        acc_in_shared,
        rows_capacity,
    ))
}

/// Both step kernels' placements for a batch (`forward_plan`, `backward_plan`), from the same
/// device limit and bound on the connected recurrent synapses.
pub fn step_plans(
    dims: &Dims,
    n_batch: usize,
    max_terms: usize,
    shared_limit: usize,
    rec_bound: usize,
) -> Result<(ForwardPlan, BackwardPlan), GpuError> {
    Ok((
        forward_plan(dims, n_batch, max_terms, shared_limit, rec_bound)?,
        backward_plan(dims, n_batch, max_terms, shared_limit, rec_bound)?,
    ))
}

/// The kernels that run all T steps in one block per element, built twice each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKernel {
    /// `lsnn_forward`.
    Forward,
    /// `lsnn_backward`.
    Backward,
}

/// The build of a step kernel for blocks of `block` threads: the `_256` one
/// (`__launch_bounds__(256)`: registers enough not to spill) up to 256 threads, else the one
/// for up to 1024 (64 registers a thread).
pub fn step_entry(kernel: StepKernel, block: u32) -> &'static str {
    match (kernel, block <= 256) {
        (StepKernel::Forward, true) => "lsnn_forward_256",
        (StepKernel::Forward, false) => "lsnn_forward",
        (StepKernel::Backward, true) => "lsnn_backward_256",
        (StepKernel::Backward, false) => "lsnn_backward",
    }
}

/// One thread per item in blocks of [`SMALL_BLOCK`].
pub fn elementwise_plan(n: usize) -> LaunchPlan {
    LaunchPlan {
        grid: n.div_ceil(SMALL_BLOCK as usize).max(1) as u32,
        block: SMALL_BLOCK,
        shared_bytes: 0,
    }
}

/// The per-step constants the kernels take, derived exactly as the host derives them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelConsts {
    /// dt.
    pub dt: f32,
    /// exp(-dt / tau_a).
    pub decay_b: f32,
    /// 1 - decay_b.
    pub one_minus_decay_b: f32,
    /// V0.
    pub v0: f32,
    /// 1 / dt.
    pub spike: f32,
    /// Height of the pseudo-derivative.
    pub dampening_factor: f32,
    /// Readout filter decay exp(-dt / tau_out).
    pub decay_out: f32,
    /// 1 - decay_out.
    pub gain_out: f32,
}

impl KernelConsts {
    /// From the cell's parameters (`CellConfig::step_consts`) and the readout's time constant
    /// (`run_pass`: `exp(-dt / tau_out)` in f32).
    pub fn new(config: &CellConfig<f32>, tau_out: f32) -> KernelConsts {
        let k = config.step_consts();
        let decay_out = (-config.dt / tau_out).exp();
        KernelConsts {
            dt: k.dt,
            decay_b: k.decay_b,
            one_minus_decay_b: k.one_minus_decay_b,
            v0: k.v0,
            spike: k.spike,
            dampening_factor: k.dampening_factor,
            decay_out,
            gain_out: 1.0 - decay_out,
        }
    }
}

/// `neurons [N]` as `{decay, 1 - decay, thr, beta}`.
pub fn neuron_table(neurons: &[Neuron<f32>]) -> Vec<[f32; 4]> {
    neurons
        .iter()
        .map(|n| [n.decay, n.one_minus_decay, n.thr, n.beta])
        .collect()
}

/// `syn [(I + N) * N]` as `{w * V0, delay bits}`, the diagonal of w_rec 0 (no autapses): the
/// effective weights of `lsnn_core::Csr::from_dense`, dense.
pub fn pack_synapses(
    dims: &Dims,
    w_in: &[f32],
    w_rec: &[f32],
    delay_in: &[u8],
    delay_rec: &[u8],
    v0: f32,
) -> Result<Vec<[f32; 2]>, GpuError> {
    let (i, n) = (dims.n_in, dims.n_rec);
    for (what, len, want) in [
        ("w_in", w_in.len(), i * n),
        ("delay_in", delay_in.len(), i * n),
        ("w_rec", w_rec.len(), n * n),
        ("delay_rec", delay_rec.len(), n * n),
    ] {
        if len != want {
            return Err(GpuError::shape(
                what,
                format!("{len} entries, expected {want}"),
            ));
        }
    }
    if let Some(&d) = delay_in
        .iter()
        .chain(delay_rec)
        .find(|&&d| usize::from(d) >= dims.n_delay)
    {
        return Err(GpuError::shape(
            "delays",
            format!("delay index {d} >= n_delay {}", dims.n_delay),
        ));
    }
    let entry = |w: f32, d: u8| [w * v0, f32::from_bits(u32::from(d))];
    let mut syn = Vec::with_capacity((i + n) * n);
    syn.extend(w_in.iter().zip(delay_in).map(|(&w, &d)| entry(w, d)));
    for (k, (row, delays)) in w_rec.chunks(n).zip(delay_rec.chunks(n)).enumerate() {
        syn.extend(row.iter().zip(delays).enumerate().map(|(j, (&w, &d))| {
            let w = if j == k { 0.0 } else { w };
            entry(w, d)
        }));
    }
    Ok(syn)
}

/// Input events of a batch in CSR form by (element, step): the events of (b, t) are
/// `offsets[b * T + t]..offsets[b * T + t + 1]` of `channels` / `values`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedInput {
    /// Elements B.
    pub n_batch: usize,
    /// Steps T.
    pub n_steps: usize,
    /// `[B * T + 1]`.
    pub offsets: Vec<u32>,
    /// Channel of each event.
    pub channels: Vec<u32>,
    /// Value of each event (1 for a spike).
    pub values: Vec<f32>,
}

impl PackedInput {
    /// Packs `events(b, t)` (pairs `(channel, value)`; give channels ascending, as the host's
    /// `InputBatch` does, for bit-identical delivery).
    pub fn pack<E, F>(
        n_batch: usize,
        n_steps: usize,
        n_in: usize,
        mut events: F,
    ) -> Result<PackedInput, GpuError>
    where
        E: IntoIterator<Item = (usize, f32)>,
        F: FnMut(usize, usize) -> E,
    {
        let mut p = PackedInput {
            n_batch,
            n_steps,
            offsets: Vec::with_capacity(n_batch * n_steps + 1),
            channels: Vec::new(),
            values: Vec::new(),
        };
        p.offsets.push(0);
        for b in 0..n_batch {
            for t in 0..n_steps {
                for (c, x) in events(b, t) {
                    if c >= n_in {
                        return Err(GpuError::shape(
                            "input event",
                            format!("channel {c} >= n_in {n_in} (element {b}, step {t})"),
                        ));
                    }
                    p.channels.push(c as u32);
                    p.values.push(x);
                }
                if p.channels.len() >= u32::MAX as usize {
                    return Err(GpuError::shape("input events", "more than u32 indices"));
                }
                p.offsets.push(p.channels.len() as u32);
            }
        }
        Ok(p)
    }

    /// Number of events.
    pub fn n_events(&self) -> usize {
        self.channels.len()
    }

    /// Checks what the kernels index with (the fields are public, so a batch need not come
    /// from [`PackedInput::pack`]): `B * T + 1` ascending offsets from 0 to the number of
    /// events, a value per channel, every channel below `n_in`.
    pub fn check(&self, n_in: usize) -> Result<(), GpuError> {
        if self.channels.len() != self.values.len() {
            return Err(GpuError::shape(
                "input",
                format!(
                    "{} channels but {} values: give one value per event",
                    self.channels.len(),
                    self.values.len()
                ),
            ));
        }
        check_offsets(
            "input offsets",
            &self.offsets,
            self.n_batch * self.n_steps,
            self.n_events(),
        )?;
        if let Some(i) = self.channels.iter().position(|&c| c as usize >= n_in) {
            return Err(GpuError::shape(
                "input event",
                format!("event {i}: channel {} >= n_in {n_in}", self.channels[i]),
            ));
        }
        Ok(())
    }
}

/// Checks CSR offsets of `rows` rows over `len` items: `rows + 1` of them, from 0, ascending,
/// ending at `len`. Returns the longest row.
fn check_offsets(
    what: &'static str,
    offsets: &[u32],
    rows: usize,
    len: usize,
) -> Result<usize, GpuError> {
    if offsets.len() != rows + 1 {
        return Err(GpuError::shape(
            what,
            format!("{} offsets, {rows} rows need {}", offsets.len(), rows + 1),
        ));
    }
    if offsets[0] != 0 || offsets[rows] as usize != len {
        return Err(GpuError::shape(
            what,
            format!(
                "they run from {} to {}, must run from 0 to {len}",
                offsets[0], offsets[rows]
            ),
        ));
    }
    let mut longest = 0;
    for (row, pair) in offsets.windows(2).enumerate() {
        let width = pair[1].checked_sub(pair[0]).ok_or_else(|| {
            GpuError::shape(
                what,
                format!("row {row}: {} > {}, must ascend", pair[0], pair[1]),
            )
        })?;
        longest = longest.max(width as usize);
    }
    Ok(longest)
}

/// One cross-entropy term of the loss (the host's `LossTerm`): the mean readout over steps
/// `start..end` against `target`, weighted by `weight`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Term {
    /// First step of the window.
    pub start: usize,
    /// One past the last step.
    pub end: usize,
    /// Target class.
    pub target: usize,
    /// Weight in the total loss.
    pub weight: f32,
}

/// Loss terms of a batch: element b has `terms[offsets[b]..offsets[b + 1]]`, each
/// `{start, end, target, weight bits}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedTerms {
    /// `[B + 1]`.
    pub offsets: Vec<u32>,
    /// `[Q]`.
    pub terms: Vec<[u32; 4]>,
    /// The most terms of one element (sizes the kernels' shared memory).
    pub max_per_element: usize,
}

impl PackedTerms {
    /// Packs per-element term lists, checking every window against `n_steps` and `n_out`.
    pub fn pack(
        per_element: &[Vec<Term>],
        n_steps: usize,
        n_out: usize,
    ) -> Result<PackedTerms, GpuError> {
        let mut p = PackedTerms {
            offsets: vec![0],
            terms: Vec::new(),
            max_per_element: 0,
        };
        for (b, terms) in per_element.iter().enumerate() {
            for t in terms {
                if !term_fits(t.start, t.end, t.target, n_steps, n_out) {
                    return Err(GpuError::shape(
                        "loss term",
                        format!(
                            "element {b}: window {}..{} target {} does not fit T = {n_steps}, n_out = {n_out}",
                            t.start, t.end, t.target
                        ),
                    ));
                }
                p.terms.push([
                    t.start as u32,
                    t.end as u32,
                    t.target as u32,
                    t.weight.to_bits(),
                ]);
            }
            p.max_per_element = p.max_per_element.max(terms.len());
            p.offsets.push(p.terms.len() as u32);
        }
        Ok(p)
    }

    /// Number of terms Q.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Whether there are no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Checks what the kernels index with (the fields are public, so the terms need not come
    /// from [`PackedTerms::pack`]) against a batch of `n_batch` elements over `n_steps` steps
    /// with `n_out` outputs: ascending offsets from 0 to Q, no element with more terms than
    /// `max_per_element` (it sizes the kernels' shared memory), every window inside T and
    /// every target below O.
    pub fn check(&self, n_batch: usize, n_steps: usize, n_out: usize) -> Result<(), GpuError> {
        let longest = check_offsets("loss term offsets", &self.offsets, n_batch, self.len())?;
        if longest > self.max_per_element {
            return Err(GpuError::shape(
                "loss terms",
                format!(
                    "an element has {longest} terms, more than max_per_element {}",
                    self.max_per_element
                ),
            ));
        }
        let misfit = |&[start, end, target, _]: &[u32; 4]| {
            !term_fits(
                start as usize,
                end as usize,
                target as usize,
                n_steps,
                n_out,
            )
        };
        if let Some(i) = self.terms.iter().position(misfit) {
            let [start, end, target, _] = self.terms[i];
            return Err(GpuError::shape(
                "loss term",
                format!(
                    "term {i}: window {start}..{end} target {target} does not fit T = {n_steps}, n_out = {n_out}"
                ),
            ));
        }
        Ok(())
    }
}

/// Whether a loss term's window `start..end` is non-empty and inside T, and its target below O.
fn term_fits(start: usize, end: usize, target: usize, n_steps: usize, n_out: usize) -> bool {
    start < end && end <= n_steps && target < n_out
}

/// Checks the optional parts of a batch's loss for `n_rec` neurons over `n_steps` steps: a
/// regulariser coefficient per neuron, `c_z` and `c_v` of `T * N` entries each.
pub fn check_loss_extras(
    n_rec: usize,
    n_steps: usize,
    regulariser: Option<&[f32]>,
    linear: Option<(&[f32], &[f32])>,
) -> Result<(), GpuError> {
    if let Some(coeff) = regulariser.filter(|c| c.len() != n_rec) {
        return Err(GpuError::shape(
            "regulariser",
            format!(
                "{} coefficients, need one per neuron ({n_rec})",
                coeff.len()
            ),
        ));
    }
    let len = n_steps * n_rec;
    if let Some((c_z, c_v)) = linear.filter(|(z, v)| z.len() != len || v.len() != len) {
        return Err(GpuError::shape(
            "linear loss",
            format!(
                "c_z has {} and c_v {} entries, each needs T * N = {len}",
                c_z.len(),
                c_v.len()
            ),
        ));
    }
    Ok(())
}

/// The state of a batch between passes, in the device layout.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchState {
    /// Elements B.
    pub n_batch: usize,
    /// `v [B * N]`.
    pub v: Vec<f32>,
    /// `z [B * N]`.
    pub z: Vec<f32>,
    /// `b [B * N]`.
    pub b: Vec<f32>,
    /// `i_future [B][D][N]`: row k arrives in k steps (the host's `i_future(j, k)`).
    pub ring: Vec<f32>,
    /// Refractory steps left `[B * N]`.
    pub refractory_left: Vec<i32>,
}

impl BatchState {
    /// The all-zero initial state.
    pub fn zeros(dims: &Dims, n_batch: usize) -> BatchState {
        let n = n_batch * dims.n_rec;
        BatchState {
            n_batch,
            v: vec![0.0; n],
            z: vec![0.0; n],
            b: vec![0.0; n],
            ring: vec![0.0; n * dims.n_delay],
            refractory_left: vec![0; n],
        }
    }

    /// Checks the lengths against `dims`.
    pub fn check(&self, dims: &Dims) -> Result<(), GpuError> {
        let n = self.n_batch * dims.n_rec;
        for (what, len, want) in [
            ("state v", self.v.len(), n),
            ("state z", self.z.len(), n),
            ("state b", self.b.len(), n),
            ("state ring", self.ring.len(), n * dims.n_delay),
            ("state refractory", self.refractory_left.len(), n),
        ] {
            if len != want {
                return Err(GpuError::shape(
                    what,
                    format!("{len} entries, expected {want}"),
                ));
            }
        }
        Ok(())
    }

    /// Index of `i_future(j, k)` of element `b` in `ring`.
    pub fn ring_index(dims: &Dims, b: usize, k: usize, j: usize) -> usize {
        (b * dims.n_delay + k) * dims.n_rec + j
    }
}

/// The forward's trace, downloaded (see `kernels/lsnn.cuh` for the layout).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// Elements B.
    pub n_batch: usize,
    /// Steps T.
    pub n_steps: usize,
    /// Neurons N.
    pub n_rec: usize,
    /// Value of a spike, 1 / dt.
    pub spike: f32,
    /// `v [B][T + 1][N]`: before each step, then after the last.
    pub v: Vec<f32>,
    /// `b [B][T + 1][N]`.
    pub b: Vec<f32>,
    /// `[B][T + 1][W]` spike bits: row t holds the spikes present before step t.
    pub spikes: Vec<u32>,
    /// `[B][T][W]` refractory bits.
    pub refractory: Vec<u32>,
    /// The initial z `[B * N]` (row 0 of the spikes, with values).
    pub z0: Vec<f32>,
}

impl Trace {
    fn words(&self) -> usize {
        self.n_rec.div_ceil(32)
    }

    /// Voltages of element `b` before step `t` (t = T: after the last).
    pub fn v(&self, b: usize, t: usize) -> &[f32] {
        let r = (b * (self.n_steps + 1) + t) * self.n_rec;
        &self.v[r..r + self.n_rec]
    }

    /// Adaptation variables of element `b` before step `t`.
    pub fn b(&self, b: usize, t: usize) -> &[f32] {
        let r = (b * (self.n_steps + 1) + t) * self.n_rec;
        &self.b[r..r + self.n_rec]
    }

    /// The output z of step `t` of element `b` for neuron `j`.
    pub fn z(&self, b: usize, t: usize, j: usize) -> f32 {
        let w = self.words();
        let word = self.spikes[(b * (self.n_steps + 1) + t + 1) * w + j / 32];
        if bit(word, j % 32) {
            self.spike
        } else {
            0.0
        }
    }

    /// Whether neuron `j` of element `b` was refractory during step `t`.
    pub fn is_refractory(&self, b: usize, t: usize, j: usize) -> bool {
        let w = self.words();
        bit(self.refractory[(b * self.n_steps + t) * w + j / 32], j % 32)
    }
}

/// Bit `k` of `word`.
pub fn bit(word: u32, k: usize) -> bool {
    word >> k & 1 == 1
}

/// The ballot words of a spike vector (bit j: z_j != 0), as the kernels store spikes.
pub fn spike_words(z: &[f32]) -> Vec<u32> {
    z.chunks(32)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u32, |w, (k, &x)| w | (u32::from(x != 0.0) << k))
        })
        .collect()
}

/// Adam's step size of update number `step` (1 for the first): TensorFlow 1's
/// `lr * sqrt(1 - beta2^t) / (1 - beta1^t)`, as the host's `Optimizer::apply`.
pub fn adam_lr_t(lr: f64, beta1: f64, beta2: f64, step: u64) -> f64 {
    let t = step as i32;
    lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smnist() -> Dims {
        Dims {
            n_in: 80,
            n_rec: 220,
            n_out: 10,
            n_delay: 10,
            n_refractory: 5,
            has_bias: true,
        }
    }

    fn store_recall() -> Dims {
        Dims {
            n_in: 100,
            n_rec: 20,
            n_out: 2,
            n_delay: 10,
            n_refractory: 3,
            has_bias: false,
        }
    }

    #[test]
    fn dims_round_to_warps_and_check_limits() {
        assert_eq!((smnist().words(), smnist().threads()), (7, 224));
        assert_eq!((store_recall().words(), store_recall().threads()), (1, 32));
        let d = |n_rec, n_delay, n_out| Dims {
            n_rec,
            n_delay,
            n_out,
            ..smnist()
        };
        assert!(d(1024, 10, 10).validate().is_ok());
        assert_eq!(d(1024, 1, 1).threads(), 1024);
        assert!(d(1025, 10, 10).validate().is_err());
        assert!(d(0, 10, 10).validate().is_err());
        assert!(d(10, 0, 10).validate().is_err());
        assert!(d(10, 257, 10).validate().is_err());
        assert!(d(10, 10, 0).validate().is_err());
    }

    #[test]
    fn parameter_layout_is_w_in_w_rec_w_out_b_out() {
        let l = smnist().params();
        assert_eq!(l.len(), 80 * 220 + 220 * 220 + 220 * 10 + 10);
        assert_eq!(l.range(Param::WIn), Some(0..17_600));
        assert_eq!(l.range(Param::WRec), Some(17_600..66_000));
        assert_eq!(l.range(Param::WOut), Some(66_000..68_200));
        assert_eq!(l.range(Param::BOut), Some(68_200..68_210));
        assert_eq!(l.locate(17_601), Some((Param::WRec, 1)));
        assert_eq!(l.locate(68_209), Some((Param::BOut, 9)));
        assert_eq!(l.locate(68_210), None);
        let s = store_recall().params();
        assert_eq!(s.range(Param::BOut), None);
        assert_eq!(s.params(), vec![Param::WIn, Param::WRec, Param::WOut]);
        assert_eq!(s.len(), 2000 + 400 + 40);
        for p in Param::ALL {
            assert_eq!(Param::from_name(p.name()), Some(p));
        }
    }

    #[test]
    fn flatten_checks_every_array() {
        let l = Dims {
            n_in: 2,
            n_rec: 2,
            n_out: 1,
            n_delay: 1,
            n_refractory: 0,
            has_bias: true,
        }
        .params();
        let flat = l
            .flatten(
                &[1.0, 2.0, 3.0, 4.0],
                &[5.0, 6.0, 7.0, 8.0],
                &[9.0, 10.0],
                Some(&[11.0]),
            )
            .unwrap();
        assert_eq!(flat, (1..=11).map(|x| x as f32).collect::<Vec<_>>());
        assert!(l
            .flatten(&[1.0], &[0.0; 4], &[0.0; 2], Some(&[0.0]))
            .is_err());
        assert!(l.flatten(&[0.0; 4], &[0.0; 4], &[0.0; 2], None).is_err());
    }

    #[test]
    fn budget_and_segments_follow_deepr() {
        // The host's test: 30x40 and 40x40 at 12 %, 40x10 at 30 %.
        let parts = [
            (30 * 40, Some(0.12)),
            (40 * 40, Some(0.12)),
            (40 * 10, Some(0.3)),
            (10, None),
        ];
        let s = Segments::new(&parts).unwrap();
        assert_eq!(
            s.budget as usize,
            (30 * 40 * 12 + 40 * 40 * 12) / 100 + 40 * 10 * 3 / 10
        );
        assert_eq!(s.n, 4);
        assert_eq!(s.rewired_mask, 0b0111);
        assert_eq!(s.range(1), 1200..2800);
        assert_eq!(s.start[8], 3210);
        assert_eq!(s.weight[2], 400.0 * 0.3);
        assert!(Segments::new(&[(4, Some(0.0))]).is_err());
        assert!(Segments::new(&[]).is_err());
        assert!(!Segments::new(&[(4, None)]).unwrap().any_rewired());
        // The fixture deepr_step: 48 * 0.25 + 64 * 0.3 + 24 * 0.5 = 43.
        assert_eq!(deepr_budget([(48, 0.25), (64, 0.3), (24, 0.5)]), 43);
    }

    #[test]
    fn launch_geometry() {
        let limit = 227 * 1024;
        // sMNIST: DEEP R's budget of 8 000 synapses (64 000 bytes) and the columns' bits and
        // word starts (7 words x 224 threads each) fit in half the limit.
        let f = forward_plan(&smnist(), 256, 1, limit, 8000).unwrap();
        assert_eq!((f.launch.grid, f.launch.block), (256, 224));
        assert_eq!(f.cols_capacity, 8000);
        let forward_base = 4 * (10 * 224 + 2 * 224 + 224 + 2 * 7 + 2);
        assert_eq!(
            f.launch.shared_bytes as usize,
            forward_base + 8 * 8000 + 2 * 4 * 7 * 224
        );
        // Dense w_rec: the columns stay in global memory.
        let dense = forward_plan(&smnist(), 256, 1, limit, usize::MAX).unwrap();
        assert_eq!(dense.cols_capacity, 0);
        assert_eq!(dense.launch.shared_bytes as usize, forward_base);
        // store-recall: all 400 synapses of its dense 20 x 20 w_rec.
        let r = forward_plan(&store_recall(), 128, 12, limit, usize::MAX).unwrap();
        assert_eq!(r.cols_capacity, 400);
        assert_eq!(
            r.launch.shared_bytes as usize,
            4 * (10 * 32 + 2 * 32 + 12 * 32 + 2 + 24) + 8 * 400 + 2 * 4 * 32
        );
        // sMNIST: the gradient rows (300 x 220 floats = 264 000 bytes) do not fit: global;
        // DEEP R's budget of 8 000 compacted rows (64 000 bytes) does, in half the limit.
        let b = backward_plan(&smnist(), 256, 1, limit, 8000).unwrap();
        assert!(!b.acc_in_shared);
        assert_eq!(b.rows_capacity, 8000);
        assert_eq!(
            b.launch.shared_bytes as usize,
            4 * (2 * 11 * 224 + 224 + 2 + 2 * 224 + 2) + 8 * 8000
        );
        // Dense w_rec (220 * 220 synapses, 387 200 bytes): the rows stay in global memory.
        let b = backward_plan(&smnist(), 256, 1, limit, usize::MAX).unwrap();
        assert_eq!(b.rows_capacity, 0);
        assert_eq!(
            b.launch.shared_bytes as usize,
            4 * (2 * 11 * 224 + 224 + 2 + 2 * 224 + 2)
        );
        // store-recall: 12 terms per element, rows 120 x 20 fit, and the 400 compacted rows.
        let b = backward_plan(&store_recall(), 128, 12, limit, usize::MAX).unwrap();
        assert!(b.acc_in_shared);
        assert_eq!(b.rows_capacity, 400);
        assert_eq!(
            b.launch.shared_bytes as usize,
            4 * (2 * 11 * 32 + 12 * 32 + 24 + 2 * 32 + 2) + 4 * 120 * 20 + 8 * 400
        );
        // Without opting in (48 KB) store-recall still fits.
        assert!(
            backward_plan(&store_recall(), 128, 12, DEFAULT_SHARED_LIMIT, 400)
                .unwrap()
                .acc_in_shared
        );
        // Too many terms per element for the shared memory: an error, not a bad launch.
        assert!(forward_plan(&smnist(), 1, 100_000, limit, 0).is_err());
        assert!(backward_plan(&smnist(), 1, 100_000, limit, 0).is_err());
        use StepKernel::{Backward, Forward};
        assert_eq!(step_entry(Forward, f.launch.block), "lsnn_forward_256");
        assert_eq!(step_entry(Backward, b.launch.block), "lsnn_backward_256");
        assert_eq!(step_entry(Backward, 256), "lsnn_backward_256");
        assert_eq!(step_entry(Forward, 288), "lsnn_forward");
        assert_eq!(step_entry(Backward, 1024), "lsnn_backward");
        let e = elementwise_plan(68_210);
        assert_eq!((e.grid, e.block), (267, 256));
        assert_eq!(elementwise_plan(0).grid, 1);
    }

    #[test]
    fn synapses_are_the_effective_weights_of_the_host_cell() {
        let dims = Dims {
            n_in: 2,
            n_rec: 3,
            n_out: 1,
            n_delay: 4,
            n_refractory: 0,
            has_bias: false,
        };
        let w_in = [0.5, 0.0, -1.0, 2.0, 3.0, 0.25];
        let w_rec = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let d_in = [0, 1, 2, 3, 0, 1];
        let d_rec = [3, 2, 1, 0, 3, 2, 1, 0, 3];
        let syn = pack_synapses(&dims, &w_in, &w_rec, &d_in, &d_rec, 2.0).unwrap();
        assert_eq!(syn.len(), 5 * 3);
        // Compare with the core's sparse form (V0 applied, diagonal and zeros dropped).
        let delays = |d: &[u8]| d.iter().map(|&x| usize::from(x)).collect::<Vec<_>>();
        let csr_in = lsnn_core::Csr::from_dense(2, 3, &w_in, &delays(&d_in), 2.0, false).unwrap();
        let csr_rec = lsnn_core::Csr::from_dense(3, 3, &w_rec, &delays(&d_rec), 2.0, true).unwrap();
        let mut dense = vec![[0.0f32, 0.0]; 15];
        for (row0, csr) in [(0usize, &csr_in), (2, &csr_rec)] {
            for pre in 0..csr.offsets.len() - 1 {
                for s in csr.offsets[pre] as usize..csr.offsets[pre + 1] as usize {
                    let at = (row0 + pre) * 3 + usize::from(csr.targets[s]);
                    dense[at][0] = csr.weights[s];
                }
            }
        }
        for (k, (got, want)) in syn.iter().zip(&dense).enumerate() {
            assert_eq!(got[0], want[0], "weight {k}");
        }
        let all_delays: Vec<u32> = d_in.iter().chain(&d_rec).map(|&d| u32::from(d)).collect();
        let got_delays: Vec<u32> = syn.iter().map(|s| s[1].to_bits()).collect();
        assert_eq!(got_delays, all_delays);
        assert!(pack_synapses(&dims, &w_in, &w_rec, &[0, 1, 2, 4, 0, 1], &d_rec, 1.0).is_err());
        assert!(pack_synapses(&dims, &w_in[..5], &w_rec, &d_in, &d_rec, 1.0).is_err());
    }

    #[test]
    fn input_and_terms_pack_into_csr() {
        let events = |b: usize, t: usize| -> Vec<(usize, f32)> {
            match (b, t) {
                (0, 1) => vec![(0, 1.0), (3, 1.0)],
                (1, 0) => vec![(2, 0.5)],
                _ => vec![],
            }
        };
        let p = PackedInput::pack(2, 3, 4, events).unwrap();
        assert_eq!(p.offsets, vec![0, 0, 2, 2, 3, 3, 3]);
        assert_eq!(p.channels, vec![0, 3, 2]);
        assert_eq!(p.values, vec![1.0, 1.0, 0.5]);
        assert_eq!(p.n_events(), 3);
        assert!(PackedInput::pack(1, 1, 2, |_, _| vec![(2, 1.0)]).is_err());

        let term = |start, end, target, weight| Term {
            start,
            end,
            target,
            weight,
        };
        let t = PackedTerms::pack(
            &[
                vec![term(0, 2, 1, 0.5), term(2, 3, 0, 0.0)],
                vec![],
                vec![term(1, 3, 1, 0.5)],
            ],
            3,
            2,
        )
        .unwrap();
        assert_eq!(t.offsets, vec![0, 2, 2, 3]);
        assert_eq!(t.max_per_element, 2);
        assert_eq!(t.terms[0], [0, 2, 1, 0.5f32.to_bits()]);
        assert_eq!(t.len(), 3);
        assert!(PackedTerms::pack(&[vec![term(2, 2, 0, 1.0)]], 3, 2).is_err());
        assert!(PackedTerms::pack(&[vec![term(0, 4, 0, 1.0)]], 3, 2).is_err());
        assert!(PackedTerms::pack(&[vec![term(0, 3, 2, 1.0)]], 3, 2).is_err());
    }

    #[test]
    fn hand_built_batches_are_checked_before_upload() {
        let input = PackedInput::pack(2, 3, 4, |b, t| vec![(b + t, 1.0)]).unwrap();
        assert!(input.check(4).is_ok());
        let message = |r: Result<(), GpuError>| r.unwrap_err().to_string();
        assert!(message(input.check(3)).contains("event 5: channel 3 >= n_in 3"));
        let with = |edit: &dyn Fn(&mut PackedInput)| {
            let mut p = input.clone();
            edit(&mut p);
            p.check(4)
        };
        assert!(message(with(&|p| p.values.pop().map(drop).unwrap())).contains("values"));
        assert!(message(with(&|p| p.n_steps = 4)).contains("7 offsets, 8 rows need 9"));
        assert!(message(with(&|p| p.offsets.swap(1, 2))).contains("must ascend"));
        assert!(message(with(&|p| p.offsets[0] = 1)).contains("from 0 to 6"));
        assert!(message(with(&|p| *p.offsets.last_mut().unwrap() = 5)).contains("from 0 to 6"));

        let term = |start, end, target| Term {
            start,
            end,
            target,
            weight: 1.0,
        };
        let terms = PackedTerms::pack(&[vec![term(0, 3, 1)], vec![term(1, 2, 0)]], 3, 2).unwrap();
        assert!(terms.check(2, 3, 2).is_ok());
        assert!(message(terms.check(3, 3, 2)).contains("3 offsets, 3 rows need 4"));
        assert!(message(terms.check(2, 2, 2)).contains("term 0: window 0..3"));
        assert!(message(terms.check(2, 3, 1)).contains("term 0: window 0..3 target 1"));
        let tampered = |edit: &dyn Fn(&mut PackedTerms)| {
            let mut t = terms.clone();
            edit(&mut t);
            t.check(2, 3, 2)
        };
        assert!(message(tampered(&|t| t.terms[1][0] = 2)).contains("term 1: window 2..2"));
        assert!(message(tampered(&|t| t.offsets = vec![0, 0, 2])).contains("more than"));
        assert!(tampered(&|t| {
            t.offsets = vec![0, 0, 2];
            t.max_per_element = 2;
        })
        .is_ok());

        assert!(check_loss_extras(2, 3, Some(&[1.0, 2.0]), Some((&[0.0; 6], &[0.0; 6]))).is_ok());
        assert!(check_loss_extras(2, 3, None, None).is_ok());
        let e = check_loss_extras(2, 3, Some(&[1.0]), None).unwrap_err();
        assert!(e
            .to_string()
            .contains("1 coefficients, need one per neuron (2)"));
        let e = check_loss_extras(2, 3, None, Some((&[0.0; 6], &[0.0; 5]))).unwrap_err();
        assert!(e
            .to_string()
            .contains("c_v 5 entries, each needs T * N = 6"));
    }

    #[test]
    fn spikes_are_ballot_words_and_the_trace_reads_them() {
        let mut z = vec![0.0f32; 40];
        z[0] = 1.0;
        z[31] = 1.0;
        z[33] = 2.0;
        assert_eq!(spike_words(&z), vec![0x8000_0001, 0b10]);
        // A trace of 1 element, 2 steps, 40 neurons: spikes of step 1 are row 2.
        let mut tr = Trace {
            n_batch: 1,
            n_steps: 2,
            n_rec: 40,
            spike: 2.0,
            v: (0..120).map(|x| x as f32).collect(),
            b: vec![0.0; 120],
            spikes: vec![0; 6],
            refractory: vec![0; 4],
            z0: vec![0.0; 40],
        };
        tr.spikes[4..6].copy_from_slice(&spike_words(&z));
        tr.refractory[1] = 0b10;
        assert_eq!(tr.z(0, 1, 33), 2.0);
        assert_eq!(tr.z(0, 1, 32), 0.0);
        assert_eq!(tr.z(0, 0, 33), 0.0);
        assert!(tr.is_refractory(0, 0, 33));
        assert!(!tr.is_refractory(0, 1, 33));
        assert_eq!(tr.v(0, 2)[0], 80.0);
    }

    #[test]
    fn state_layout_and_adam_step_size() {
        let d = store_recall();
        let s = BatchState::zeros(&d, 3);
        assert!(s.check(&d).is_ok());
        assert_eq!(s.ring.len(), 3 * 10 * 20);
        assert_eq!(BatchState::ring_index(&d, 1, 2, 3), (10 + 2) * 20 + 3);
        let mut bad = s.clone();
        bad.v.pop();
        assert!(bad.check(&d).is_err());
        // The first Adam step: lr * sqrt(0.001) / 0.1.
        assert_eq!(
            adam_lr_t(0.01, 0.9, 0.999, 1),
            0.01 * (1.0 - 0.999f64).sqrt() / (1.0 - 0.9)
        );
    }

    #[test]
    fn constants_are_the_hosts() {
        let config = CellConfig {
            dt: 0.5f32,
            tau_adaptation: 700.0,
            v0: 1.0,
            n_delay: 10,
            n_refractory: 5,
            dampening_factor: 0.3,
            injected_noise_current: 0.0,
        };
        let k = KernelConsts::new(&config, 20.0);
        let s = config.step_consts();
        assert_eq!(
            (k.decay_b, k.one_minus_decay_b, k.spike),
            (s.decay_b, s.one_minus_decay_b, 2.0)
        );
        assert_eq!(k.decay_out, (-0.5f32 / 20.0).exp());
        assert_eq!(k.gain_out, 1.0 - k.decay_out);
        let n = Neuron::new(20.0f32, 0.01, 1.8, 1.0).unwrap();
        assert_eq!(
            neuron_table(&[n]),
            vec![[n.decay, n.one_minus_decay, 0.01, 1.8]]
        );
    }
}
