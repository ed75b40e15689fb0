//! The network behind an `lsnn_net *`: a parsed model, its cell and state, and the readout,
//! all in one block of caller memory laid out by [`Layout`].

use core::mem::{align_of, size_of};
use core::ops::Range;
use core::ptr;

use lsnn_core::{
    Accumulator, Cell, CellState, CoreError, I32Ring, IntegerSynapses, LeWeights, Model,
    ModelSynapses, Neuron, NoNoise, Readout, RingStore, Synapses,
};

use crate::status::*;

/// The state's float storage and refractory counters, in the caller's memory.
type Floats = &'static mut [f32];
type Counters = &'static mut [u16];
type FloatCell = Cell<'static, f32, ModelSynapses<'static>, ModelSynapses<'static>>;
type IntegerCell = Cell<'static, f32, IntegerSynapses<'static>, IntegerSynapses<'static>, i32>;
type FloatState = CellState<f32, Floats, Counters>;
type IntegerState = CellState<f32, Floats, Counters, I32Ring<&'static mut [i32]>>;

/// Marks memory that [`Net::create`] initialised (checked before every use).
const MAGIC: u32 = u32::from_le_bytes(*b"LSNN");

/// The cell and its state: float weights, or integer weights on an i32 delay ring (as the
/// firmware and `lsnn-host infer` run them).
enum Core {
    Float {
        cell: FloatCell,
        state: FloatState,
    },
    Integer {
        cell: IntegerCell,
        state: IntegerState,
    },
}

/// A network in caller memory. The references are `'static` to the type system only: they
/// point into the model bytes and the memory block that the caller keeps for the network's
/// lifetime (the contract of `lsnn_net_init`).
pub struct Net {
    magic: u32,
    /// Where [`Net::create`] put it: a copied or moved network is refused (its references
    /// would point into the old block).
    address: usize,
    n_in: usize,
    core: Core,
    readout: Readout<'static, f32, LeWeights<'static>>,
    filtered: &'static mut [f32],
    out: &'static mut [f32],
}

/// A validated model and the memory a network for it takes.
pub struct Plan<'a> {
    pub model: Model<'a>,
    pub layout: Layout,
}

impl<'a> Plan<'a> {
    /// Parses and checks `bytes` as fully as [`Net::create`] will (integer scales included).
    pub fn new(bytes: &'a [u8]) -> Result<Self, CoreError> {
        let model = Model::parse(bytes)?;
        if model.is_integer() {
            model.integer_scales()?;
        }
        let layout = Layout::of(&model).ok_or(CoreError::Size {
            what: "network memory (bytes) for n_rec",
            value: model.n_rec(),
            allowed: "a block that fits the address space",
        })?;
        Ok(Plan { model, layout })
    }
}

/// Byte ranges of the parts of a network's memory block, the [`Net`] first.
pub struct Layout {
    neurons: Range<usize>,
    floats: Range<usize>,
    ring: Range<usize>,
    counters: Range<usize>,
    filtered: Range<usize>,
    out: Range<usize>,
    /// Bytes of the whole block.
    pub total: usize,
}

/// `count` values of `T` at the next offset aligned for `T`.
fn take<T>(at: &mut usize, count: usize) -> Option<Range<usize>> {
    let start = at.checked_next_multiple_of(align_of::<T>())?;
    let end = start.checked_add(count.checked_mul(size_of::<T>())?)?;
    *at = end;
    Some(start..end)
}

impl Layout {
    fn of(model: &Model<'_>) -> Option<Self> {
        let (n, d, o) = (model.n_rec(), model.config().n_delay, model.n_out());
        let (float_len, ring_len) = if model.is_integer() {
            let ring = <I32Ring<&mut [i32]> as RingStore<f32>>::inline_len(n, d);
            (ring.checked_add(n.checked_mul(3)?)?, d.checked_mul(n)?)
        } else {
            let ring = <lsnn_core::Inline as RingStore<f32>>::inline_len(n, d);
            (ring.checked_add(n.checked_mul(3)?)?, 0)
        };
        let mut at = size_of::<Net>();
        let layout = Layout {
            neurons: take::<Neuron<f32>>(&mut at, n)?,
            floats: take::<f32>(&mut at, float_len)?,
            ring: take::<i32>(&mut at, ring_len)?,
            counters: take::<u16>(&mut at, n)?,
            filtered: take::<f32>(&mut at, o)?,
            out: take::<f32>(&mut at, o)?,
            total: 0,
        };
        // Rounded up so that blocks for several networks can sit back to back.
        let total = at.checked_next_multiple_of(crate::LSNN_NET_ALIGN)?;
        (total <= isize::MAX as usize).then_some(Layout { total, ..layout })
    }
}

/// The part `range` of the block at `base`, every element set to `value`.
///
/// # Safety
/// `base..base + range.end` is writable memory that nothing else references for `'static`
/// (the caller's promise to `lsnn_net_init`), `base + range.start` is aligned for `T`, and no
/// other part handed out overlaps `range`.
unsafe fn part<T: Copy>(base: *mut u8, range: Range<usize>, value: T) -> &'static mut [T] {
    let len = (range.end - range.start) / size_of::<T>();
    // SAFETY: in bounds and aligned (see above); written before the slice is formed.
    unsafe {
        let first = base.add(range.start).cast::<T>();
        for k in 0..len {
            first.add(k).write(value);
        }
        core::slice::from_raw_parts_mut(first, len)
    }
}

impl Net {
    /// Builds a network for `plan` in the block at `base` and returns a pointer to it.
    ///
    /// # Safety
    /// `base` is aligned to `LSNN_NET_ALIGN` and `plan.layout.total` bytes from it are
    /// writable and stay reserved for the network; the model bytes stay valid and unchanged
    /// as long (both checked or promised by `lsnn_net_init`).
    pub unsafe fn create(plan: Plan<'static>, base: *mut u8) -> Result<*mut Net, CoreError> {
        let Plan { model, layout } = plan;
        let (n, d) = (model.n_rec(), model.config().n_delay);
        // SAFETY: the parts are disjoint, aligned ranges of the block (Layout::of), after
        // the Net's own bytes.
        let (neurons, floats, counters, filtered, out) = unsafe {
            (
                part(base, layout.neurons, Neuron::default()),
                part(base, layout.floats, 0.0f32),
                part(base, layout.counters, 0u16),
                part(base, layout.filtered, 0.0f32),
                part(base, layout.out, 0.0f32),
            )
        };
        model.neurons_into(neurons)?;
        let neurons: &'static [Neuron<f32>] = neurons;
        let core = if model.is_integer() {
            // SAFETY: as above.
            let ring = unsafe { part(base, layout.ring, 0i32) };
            Core::Integer {
                cell: model.integer_cell(neurons)?,
                state: CellState::with_i32_ring(floats, counters, ring, n, d)?,
            }
        } else {
            let cell = model.cell(neurons)?;
            Core::Float {
                state: cell.state_in(floats, counters)?,
                cell,
            }
        };
        let net = Net {
            magic: MAGIC,
            address: base as usize,
            n_in: model.n_in(),
            core,
            readout: model.readout()?,
            filtered,
            out,
        };
        let at = base.cast::<Net>();
        // SAFETY: the block starts with room for a Net and is aligned for it.
        unsafe { at.write(net) };
        Ok(at)
    }

    /// The network at `net`, if it is one that [`Net::create`] put there.
    ///
    /// # Safety
    /// `net` is NULL, or readable for a `Net` if aligned (the caller's promise: a pointer that
    /// `lsnn_net_init` returned, or memory of that size).
    pub unsafe fn at<'n>(net: *mut Net) -> Result<&'n mut Net, lsnn_status> {
        if net.is_null() {
            return Err(LSNN_ERR_NULL_POINTER);
        }
        if (net as usize) % align_of::<Net>() != 0 {
            return Err(LSNN_ERR_ALIGNMENT);
        }
        // SAFETY: non-null, aligned, readable (above); the magic and the address are plain
        // integers, so any bytes there are a valid value.
        let (magic, address) = unsafe {
            (
                ptr::addr_of!((*net).magic).read(),
                ptr::addr_of!((*net).address).read(),
            )
        };
        if magic != MAGIC || address != net as usize {
            return Err(LSNN_ERR_NOT_A_NET);
        }
        // SAFETY: Net::create initialised this memory (magic and address match).
        Ok(unsafe { &mut *net })
    }

    /// The readout outputs of the last step.
    pub fn outputs(&self) -> &[f32] {
        self.out
    }

    /// Back to the initial state (all zero), readout filter included.
    pub fn reset(&mut self) {
        match &mut self.core {
            Core::Float { state, .. } => state.reset(),
            Core::Integer { state, .. } => state.reset(),
        }
        self.filtered.fill(0.0);
        self.out.fill(0.0);
    }

    /// One step with an input spike on each of `channels` (strictly increasing, `< n_in`;
    /// checked before anything changes); returns the number of spikes of the step.
    pub fn step(&mut self, channels: &[u32]) -> Result<usize, lsnn_status> {
        if channels.windows(2).any(|w| w[0] >= w[1]) {
            return Err(LSNN_ERR_INPUT_ORDER);
        }
        if channels.iter().any(|&c| c as usize >= self.n_in) {
            return Err(LSNN_ERR_INPUT_CHANNEL);
        }
        let events = channels.iter().map(|&c| (c as usize, 1.0f32));
        let (readout, filtered, out) = (&self.readout, &mut *self.filtered, &mut *self.out);
        match &mut self.core {
            Core::Float { cell, state } => step_with(cell, state, events, readout, filtered, out),
            Core::Integer { cell, state } => step_with(cell, state, events, readout, filtered, out),
        }
        .map_err(|e| of_core(&e))
    }

    /// Calls `f` with each spike of the last step (neuron index, ascending).
    pub fn for_each_spike(&self, mut f: impl FnMut(usize)) {
        match &self.core {
            Core::Float { state, .. } => state.spikes().for_each(|(j, _)| f(j)),
            Core::Integer { state, .. } => state.spikes().for_each(|(j, _)| f(j)),
        }
    }
}

/// The cell on this step's events, then the readout on its spikes: one step of
/// `lsnn_core::sequence::run_sequence`, the same floats in the same order.
fn step_with<In, Rec, A, R>(
    cell: &Cell<'_, f32, In, Rec, A>,
    state: &mut CellState<f32, Floats, Counters, R>,
    events: impl Iterator<Item = (usize, f32)>,
    readout: &Readout<'_, f32, LeWeights<'_>>,
    filtered: &mut [f32],
    out: &mut [f32],
) -> Result<usize, CoreError>
where
    In: Synapses<A>,
    Rec: Synapses<A>,
    A: Accumulator<f32>,
    R: RingStore<f32, Acc = A>,
{
    // Inference: the C API exposes no adaptation `b`, so LIF neurons need none (see
    // `Cell::step_inference`); spikes, voltages and outputs are those of `step_events`.
    cell.step_inference(state, events, &mut NoNoise)?;
    readout.step_spikes(state.spikes(), filtered, out)
}
