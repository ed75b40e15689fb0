//! lsnn-core on a microcontroller under QEMU: a Cortex-M4F (`mps2-an386`), a Cortex-M33
//! (`mps2-an505`) or a RISC-V core without FPU (`virt`, rv32imac; see `platform`). Runs the
//! embedded model (f32, i16 or i8 weights) on the embedded input sequences and prints, per
//! sequence, the predicted class of every readout window and the number of spikes, in the
//! format of `lsnn-host infer --inputs`. QEMU exits 0, or non-zero on any error. No heap: the state lives in static arrays
//! sized at build time (see `build.rs`), the model and inputs are read in place from flash.
//!
//! `bench_mark(t)` runs at the start of every step and once after the last step of a sequence,
//! `sequence_mark(s)` before each sequence: the instruction-counting QEMU plugin of
//! `tools/qemu-insncount` logs the running instruction count at each call.
#![no_std]
#![no_main]

use core::fmt::Write;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU32, Ordering};

use lsnn_core::sequence::{
    run_sequence, spike_events, window_class, write_result_line, Observation, Sequences,
    WindowMeans,
};
use lsnn_core::{CellState, CoreError, Model, Neuron};

mod platform;

mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}
use config::{N_DELAY, N_OUT, N_REC, N_WINDOWS, WEIGHTS};

/// The model, read in place from flash.
static MODEL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.lsnn"));
/// The input sequences, read in place from flash. They stand in for a sensor, so they get a
/// flash section of their own (`.lsnn_inputs`, see memory-an386.x), counted apart from the
/// firmware's code and model.
#[link_section = ".lsnn_inputs"]
static INPUTS: [u8; include_bytes!(concat!(env!("OUT_DIR"), "/inputs.seq")).len()] =
    *include_bytes!(concat!(env!("OUT_DIR"), "/inputs.seq"));

/// Floats of the cell state: `v`, `z`, `b`, plus the delay ring when it is f32.
#[cfg(not(lsnn_integer))]
const N_FLOATS: usize = (3 + N_DELAY) * N_REC;
#[cfg(lsnn_integer)]
const N_FLOATS: usize = 3 * N_REC;
/// Entries of the separate i32 delay ring (integer weights).
#[cfg(lsnn_integer)]
const N_RING: usize = N_DELAY * N_REC;

/// Everything mutable, in .bss.
struct Buffers {
    neurons: [Neuron<f32>; N_REC],
    floats: [f32; N_FLOATS],
    #[cfg(lsnn_integer)]
    ring: [i32; N_RING],
    refractory: [u16; N_REC],
    filtered: [f32; N_OUT],
    out: [f32; N_OUT],
    sums: [f32; N_OUT],
    classes: [usize; N_WINDOWS],
}

const NO_NEURON: Neuron<f32> = Neuron {
    decay: 0.0,
    one_minus_decay: 0.0,
    thr: 0.0,
    beta: 0.0,
};

static mut BUFFERS: Buffers = Buffers {
    neurons: [NO_NEURON; N_REC],
    floats: [0.0; N_FLOATS],
    #[cfg(lsnn_integer)]
    ring: [0; N_RING],
    refractory: [0; N_REC],
    filtered: [0.0; N_OUT],
    out: [0.0; N_OUT],
    sums: [0.0; N_OUT],
    classes: [0; N_WINDOWS],
};

/// The last step and sequence marked (distinct stores keep the two marks distinct functions).
static STEP: AtomicU32 = AtomicU32::new(0);
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Marks the start of step `t` (and the end of a sequence with `t` = its length).
#[inline(never)]
#[no_mangle]
pub extern "C" fn bench_mark(t: u32) {
    STEP.store(t, Ordering::Relaxed);
    core::hint::black_box(&STEP);
}

/// Marks the start of sequence `s`.
#[inline(never)]
#[no_mangle]
pub extern "C" fn sequence_mark(s: u32) {
    SEQUENCE.store(s, Ordering::Relaxed);
    core::hint::black_box(&SEQUENCE);
}

#[platform::entry]
fn main() -> ! {
    // SAFETY: the only reference to BUFFERS, taken once before anything else runs (no
    // interrupts are enabled in this firmware).
    let buffers = unsafe { &mut *addr_of_mut!(BUFFERS) };
    let success = match platform::console() {
        Some(mut stdout) => match run(buffers, &mut stdout) {
            Ok(()) => true,
            Err(e) => {
                let _ = writeln!(stdout, "error: {e}");
                false
            }
        },
        None => false,
    };
    platform::exit(success)
}

/// Any failure of the run: a core error, or semihosting output that could not be written.
enum Failure {
    Core(CoreError),
    Output,
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        Failure::Core(e)
    }
}

impl From<core::fmt::Error> for Failure {
    fn from(_: core::fmt::Error) -> Self {
        Failure::Output
    }
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::Core(e) => write!(f, "{e}"),
            Failure::Output => write!(f, "console output failed"),
        }
    }
}

fn run(b: &mut Buffers, stdout: &mut impl Write) -> Result<(), Failure> {
    let model = Model::parse(MODEL)?;
    let seqs = Sequences::parse(&INPUTS)?;
    if model.n_rec() != N_REC
        || model.config().n_delay != N_DELAY
        || model.n_out() != N_OUT
        || seqs.n_windows() != N_WINDOWS
    {
        return Err(CoreError::Format {
            what: "firmware",
            why: "the embedded model or inputs differ from the sizes it was built for",
        }
        .into());
    }
    model.neurons_into(&mut b.neurons)?;
    let readout = model.readout()?;
    writeln!(
        stdout,
        "lsnn-fw weights {WEIGHTS} n_in {} n_rec {N_REC} n_out {N_OUT} sequences {} steps {}",
        model.n_in(),
        seqs.len(),
        seqs.n_steps()
    )?;
    let mut windows = WindowMeans::new(&mut b.sums[..], seqs.window_len())?;
    #[cfg(lsnn_integer)]
    let (cell, mut state) = (
        model.integer_cell(&b.neurons)?,
        CellState::with_i32_ring(
            &mut b.floats[..],
            &mut b.refractory[..],
            &mut b.ring[..],
            N_REC,
            N_DELAY,
        )?,
    );
    #[cfg(not(lsnn_integer))]
    let (cell, mut state) = (
        model.cell(&b.neurons)?,
        CellState::new(&mut b.floats[..], &mut b.refractory[..], N_REC, N_DELAY)?,
    );
    let steps = seqs.n_steps() as u32;
    for s in 0..seqs.len() {
        sequence_mark(s as u32);
        state.reset();
        let classes = &mut b.classes;
        let spikes = run_sequence(
            &cell,
            &readout,
            &mut state,
            &mut b.filtered,
            &mut b.out,
            &mut windows,
            seqs.steps(s).map(spike_events),
            |obs| match obs {
                Observation::Start(t) => bench_mark(t as u32),
                Observation::Done => bench_mark(steps),
                Observation::Window { index, means } => {
                    if let Some(c) = classes.get_mut(index) {
                        *c = window_class(means);
                    }
                }
                Observation::Stepped { .. } => {}
            },
        )?;
        write_result_line(stdout, s, spikes, classes.iter().copied())?;
        writeln!(stdout)?;
    }
    writeln!(stdout, "lsnn-fw done")?;
    Ok(())
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    platform::exit(false)
}
