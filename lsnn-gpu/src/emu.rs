//! The kernels' own CUDA sources run on the CPU emulator (`emu/`, built by build.rs with the
//! `emu` feature) with the same launch arguments as on a device ([`crate::launch`]), and
//! compared with lsnn-core's cell (forward, bit for bit) and lsnn-host's trainer (gradients,
//! Adam, DEEP R). This checks the kernels' logic where no GPU is available (CI); built with
//! `LSNN_EMU_DEFINES="-fsanitize=thread"` (or `address,undefined`) the same tests also check them
//! for races between CUDA threads (or out-of-bounds accesses and undefined behaviour), see
//! `emu/cuda_emu.h` and the tests of `sanitizer` below.
//! Timing and the cust launcher need the device tests.

use lsnn_core::{CellConfig, NeuronState};
use lsnn_host::input::InputBatch;
use lsnn_host::loss::{LossTerm, RateRegulariser, Target};
use lsnn_host::network::{Matrix, Params, RewiredMatrix, Spec, Weights};
use lsnn_host::tasks::store_recall::generate;
use lsnn_host::train::optim::Optimizer;
use lsnn_host::train::step::{train_step, TrainStep};
use lsnn_host::train::update::Rewiring;
use lsnn_host::train::{run_pass, zero_states, PassOptions};
use lsnn_host::tutorials::store_recall::{self, StoreRecallFlags};
use ndarray::{Array1, Array2};

use crate::args::{BackwardArgs, ForwardArgs, LossArgs, ReconnectArgs, ReduceArgs, UpdateArgs};
use crate::launch::{self, BatchPtrs, BatchShape, NetPtrs, SynTarget};
use crate::layout::{
    backward_plan, elementwise_plan, forward_plan, neuron_table, pack_synapses, rec_bound,
    step_entry, BackwardPlan, BatchState, Dims, ForwardPlan, KernelConsts, LaunchPlan, PackedInput,
    PackedTerms, Param, ParamLayout, Segments, StepKernel, Term, Trace,
};
use crate::step::{OptimizerKind, StepConfig};
use crate::trainer::{flatten_params, ParamValues, Rewired};
use lsnn_core::philox::{key_words, philox4x32_10};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

extern "C" {
    fn emu_lsnn_forward_256(grid: u32, block: u32, shared: u32, a: *const ForwardArgs);
    fn emu_lsnn_forward(grid: u32, block: u32, shared: u32, a: *const ForwardArgs);
    fn emu_lsnn_rec_rows(
        n_rec: u32,
        syn: *const [f32; 2],
        n_in: u32,
        rows: *mut [f32; 2],
        count: *mut u32,
    );
    fn emu_lsnn_backward_256(grid: u32, block: u32, shared: u32, a: *const BackwardArgs);
    fn emu_lsnn_backward(grid: u32, block: u32, shared: u32, a: *const BackwardArgs);
    fn emu_lsnn_loss(grid: u32, block: u32, shared: u32, a: *const LossArgs);
    fn emu_lsnn_clear(flags: *mut u32, counters: *mut u32);
    fn emu_lsnn_reduce_grads(grid: u32, block: u32, shared: u32, a: *const ReduceArgs);
    fn emu_lsnn_update(grid: u32, block: u32, shared: u32, a: *const UpdateArgs);
    fn emu_lsnn_reconnect(grid: u32, block: u32, shared: u32, a: *const ReconnectArgs);
    fn emu_lsnn_philox_test(key: u64, stream: u32, n: u32, out: *mut [u32; 4]);
}

mod training;

type StepBuild<A> = unsafe extern "C" fn(u32, u32, u32, *const A);

/// The emulated build of the forward the launcher picks for blocks of `block` threads.
fn forward_build(block: u32) -> StepBuild<ForwardArgs> {
    match step_entry(StepKernel::Forward, block) {
        "lsnn_forward_256" => emu_lsnn_forward_256,
        "lsnn_forward" => emu_lsnn_forward,
        other => panic!("the emulator has no build {other}"),
    }
}

/// The emulated build of the backward the launcher picks for blocks of `block` threads.
fn backward_build(block: u32) -> StepBuild<BackwardArgs> {
    match step_entry(StepKernel::Backward, block) {
        "lsnn_backward_256" => emu_lsnn_backward_256,
        "lsnn_backward" => emu_lsnn_backward,
        other => panic!("the emulator has no build {other}"),
    }
}

fn at<T>(v: &mut [T]) -> u64 {
    v.as_mut_ptr() as u64
}

/// A network and a batch in host memory, run by the emulated kernels.
struct Emu {
    dims: Dims,
    layout: ParamLayout,
    k: KernelConsts,
    segments: Segments,
    opt: OptimizerKind,
    neurons: Vec<[f32; 4]>,
    syn: Vec<[f32; 2]>,
    rec_rows: Vec<[f32; 2]>,
    rec_count: Vec<u32>,
    params: Vec<f32>,
    theta: Vec<f32>,
    sign: Vec<f32>,
    grad: Vec<f32>,
    adam_m: Vec<f64>,
    adam_v: Vec<f64>,
    flags: Vec<u32>,
    counters: Vec<u32>,
    n_connected: Vec<u32>,
    metrics: Vec<f32>,
    rates: Vec<f32>,
    reg_grad: Vec<f32>,
    reg_coeff: Vec<f32>,
    shape: BatchShape,
    input: PackedInput,
    terms: PackedTerms,
    state: BatchState,
    lin_cz: Vec<f32>,
    lin_cv: Vec<f32>,
    tr_v: Vec<f32>,
    tr_b: Vec<f32>,
    tr_spk: Vec<u32>,
    tr_ref: Vec<u32>,
    z0: Vec<f32>,
    zsum: Vec<f32>,
    lin_part: Vec<f32>,
    psp_sum: Vec<f32>,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    ce: Vec<f32>,
    partial: Vec<f32>,
}

struct BatchSpec<'a> {
    input: &'a InputBatch,
    terms: &'a [Vec<LossTerm<f32>>],
    reg: Option<&'a RateRegulariser<f32>>,
    linear: Option<(&'a [f32], &'a [f32])>,
    state: BatchState,
}

impl Emu {
    fn new(spec: &Spec<f32>, w: &Weights<f32>, opt: OptimizerKind) -> Emu {
        let p = &w.params;
        let dims = Dims {
            n_in: spec.n_in(),
            n_rec: spec.n_rec(),
            n_out: p.n_out(),
            n_delay: spec.config.n_delay,
            n_refractory: spec.config.n_refractory,
            has_bias: p.b_out.is_some(),
        };
        dims.validate().unwrap();
        let layout = dims.params();
        let values = ParamValues {
            w_in: p.w_in.as_slice().unwrap(),
            w_rec: p.w_rec.as_slice().unwrap(),
            w_out: p.w_out.as_slice().unwrap(),
            b_out: p.b_out.as_ref().map(|b| b.as_slice().unwrap()),
        };
        let rewired: Vec<Rewired<'_>> = w
            .rewired
            .iter()
            .map(|m| Rewired {
                param: Param::from_name(&m.name).unwrap(),
                theta: m.theta.as_slice().unwrap(),
                sign: m.sign.as_slice().unwrap(),
                connectivity: m.connectivity,
            })
            .collect();
        let (params, theta, sign, segments) = flatten_params(&layout, &values, &rewired).unwrap();
        let syn = pack_synapses(
            &dims,
            &params[layout.range(Param::WIn).unwrap()],
            &params[layout.range(Param::WRec).unwrap()],
            spec.delay_in.as_slice().unwrap(),
            spec.delay_rec.as_slice().unwrap(),
            spec.config.v0,
        )
        .unwrap();
        let n = dims.n_rec;
        let len = layout.len();
        Emu {
            k: KernelConsts::new(&spec.config, spec.tau_out),
            neurons: neuron_table(&spec.neurons().unwrap()),
            syn,
            rec_rows: vec![[f32::NAN; 2]; n * n],
            rec_count: vec![u32::MAX; n],
            params,
            theta,
            sign,
            grad: vec![0.0; len],
            adam_m: vec![0.0; len],
            adam_v: vec![0.0; len],
            flags: vec![0; 4],
            counters: vec![0; 8],
            n_connected: vec![0; 1],
            metrics: vec![0.0; 4],
            rates: vec![0.0; n],
            reg_grad: vec![0.0; n],
            reg_coeff: vec![0.0; n],
            segments,
            opt,
            shape: BatchShape::default(),
            input: PackedInput::default(),
            terms: PackedTerms::default(),
            state: BatchState::zeros(&dims, 0),
            lin_cz: vec![],
            lin_cv: vec![],
            tr_v: vec![],
            tr_b: vec![],
            tr_spk: vec![],
            tr_ref: vec![],
            z0: vec![],
            zsum: vec![],
            lin_part: vec![],
            psp_sum: vec![],
            logits: vec![],
            dlogits: vec![],
            ce: vec![],
            partial: vec![],
            dims,
            layout,
        }
    }

    fn set_batch(&mut self, b: BatchSpec<'_>) {
        let d = self.dims;
        let (bn, t) = (b.input.n_batch(), b.input.n_steps());
        self.input = PackedInput::pack(bn, t, d.n_in, |e, s| b.input.events(e, s)).unwrap();
        let terms: Vec<Vec<Term>> = b
            .terms
            .iter()
            .map(|e| {
                e.iter()
                    .map(|x| Term {
                        start: x.start,
                        end: x.end,
                        target: x.target,
                        weight: x.weight,
                    })
                    .collect()
            })
            .collect();
        self.terms = PackedTerms::pack(&terms, t, d.n_out).unwrap();
        let q = self.terms.len();
        let (n, w, o) = (d.n_rec, d.words(), d.n_out);
        let nan = f32::NAN;
        // Outputs poisoned: every element read later must have been written.
        self.tr_v = vec![nan; bn * (t + 1) * n];
        self.tr_b = vec![nan; bn * (t + 1) * n];
        self.tr_spk = vec![0xdead_beef; bn * (t + 1) * w];
        self.tr_ref = vec![0xdead_beef; bn * t * w];
        self.z0 = vec![nan; bn * n];
        self.zsum = vec![nan; bn * n];
        self.lin_part = vec![nan; bn * n];
        self.psp_sum = vec![nan; q.max(1) * n];
        self.logits = vec![nan; q.max(1) * o];
        self.dlogits = vec![nan; q.max(1) * o];
        self.ce = vec![nan; q.max(1)];
        self.partial = vec![nan; bn * self.layout.len()];
        match b.reg {
            Some(r) => self.reg_coeff.copy_from_slice(&r.coeff),
            None => self.reg_coeff.fill(0.0),
        }
        match b.linear {
            Some((cz, cv)) => {
                self.lin_cz = cz.to_vec();
                self.lin_cv = cv.to_vec();
            }
            None => {
                self.lin_cz = vec![0.0; 1];
                self.lin_cv = vec![0.0; 1];
            }
        }
        b.state.check(&d).unwrap();
        self.state = b.state;
        self.shape = BatchShape {
            n_batch: bn,
            n_steps: t,
            n_terms: q,
            max_terms: self.terms.max_per_element,
            has_reg: b.reg.is_some(),
            reg_target: b.reg.map_or(0.0, |r| r.target),
            has_linear: b.linear.is_some(),
        };
    }

    fn ptrs(&mut self) -> (NetPtrs, BatchPtrs) {
        let net = NetPtrs {
            neurons: at(&mut self.neurons),
            syn: at(&mut self.syn),
            rec_rows: at(&mut self.rec_rows),
            rec_count: at(&mut self.rec_count),
            params: at(&mut self.params),
            theta: at(&mut self.theta),
            sign: at(&mut self.sign),
            grad: at(&mut self.grad),
            adam_m: at(&mut self.adam_m),
            adam_v: at(&mut self.adam_v),
            flags: at(&mut self.flags),
            counters: at(&mut self.counters),
            n_connected: at(&mut self.n_connected),
            metrics: at(&mut self.metrics),
            rates: at(&mut self.rates),
            reg_grad: at(&mut self.reg_grad),
            reg_coeff: at(&mut self.reg_coeff),
        };
        let b = BatchPtrs {
            in_offsets: at(&mut self.input.offsets),
            in_channels: at(&mut self.input.channels),
            in_values: at(&mut self.input.values),
            term_offsets: at(&mut self.terms.offsets),
            terms: at(&mut self.terms.terms),
            st_v: at(&mut self.state.v),
            st_z: at(&mut self.state.z),
            st_b: at(&mut self.state.b),
            st_ring: at(&mut self.state.ring),
            st_refr: at(&mut self.state.refractory_left),
            tr_v: at(&mut self.tr_v),
            tr_b: at(&mut self.tr_b),
            tr_spk: at(&mut self.tr_spk),
            tr_ref: at(&mut self.tr_ref),
            z0: at(&mut self.z0),
            zsum: at(&mut self.zsum),
            lin_part: at(&mut self.lin_part),
            psp_sum: at(&mut self.psp_sum),
            logits: at(&mut self.logits),
            dlogits: at(&mut self.dlogits),
            ce: at(&mut self.ce),
            lin_cz: at(&mut self.lin_cz),
            lin_cv: at(&mut self.lin_cv),
            partial: at(&mut self.partial),
        };
        (net, b)
    }

    fn syn_target(&mut self) -> SynTarget {
        (
            at(&mut self.syn),
            self.dims.n_in as u32,
            self.dims.n_rec as u32,
            self.k.v0,
        )
    }

    /// clear, forward, loss (as `GpuTrainer::forward`), placed as the trainer places them.
    fn forward(&mut self) {
        let (d, s) = (self.dims, self.shape);
        let bound = rec_bound(&self.layout, &self.segments, d.n_rec);
        let plan = forward_plan(&d, s.n_batch, s.max_terms, 227 * 1024, bound).unwrap();
        self.forward_with(&plan);
    }

    fn forward_with(&mut self, plan: &ForwardPlan) {
        let (net, b) = self.ptrs();
        let (d, k, l, s) = (self.dims, self.k, self.layout, self.shape);
        let fa = launch::forward_args(&d, &k, &l, &net, &b, &s, plan, true);
        let la = launch::loss_args(&d, &k, &net, &b, &s);
        let (f, one) = (plan.launch, launch::one_block());
        // SAFETY: every pointer is a live Vec of the size the kernels index (set_batch).
        unsafe {
            emu_lsnn_clear(self.flags.as_mut_ptr(), self.counters.as_mut_ptr());
            forward_build(f.block)(f.grid, f.block, f.shared_bytes, &fa);
            emu_lsnn_loss(one.grid, one.block, one.shared_bytes, &la);
        }
    }

    /// backward and reduction (as `GpuTrainer::gradients` after `forward`), placed as the
    /// trainer places them under `shared_limit`.
    fn backward(&mut self, shared_limit: usize, poison: Option<usize>) {
        let (d, s) = (self.dims, self.shape);
        let bound = rec_bound(&self.layout, &self.segments, d.n_rec);
        let plan = backward_plan(&d, s.n_batch, s.max_terms, shared_limit, bound).unwrap();
        self.backward_with(&plan, poison);
    }

    /// backward and reduction with a given placement of the gradient rows and compacted rows.
    fn backward_with(&mut self, plan: &BackwardPlan, poison: Option<usize>) {
        let (net, b) = self.ptrs();
        let (d, k, l, s) = (self.dims, self.k, self.layout, self.shape);
        let ba = launch::backward_args(&d, &k, &l, &net, &b, &s, plan);
        let ra = launch::reduce_args(&d, &k, &l, &net, &b, &s, poison);
        let e: LaunchPlan = elementwise_plan(l.len());
        // SAFETY: as in `forward`.
        unsafe {
            emu_lsnn_rec_rows(
                d.n_rec as u32,
                net.syn as *const [f32; 2],
                d.n_in as u32,
                net.rec_rows as *mut [f32; 2],
                net.rec_count as *mut u32,
            );
            backward_build(plan.launch.block)(
                plan.launch.grid,
                plan.launch.block,
                plan.launch.shared_bytes,
                &ba,
            );
            emu_lsnn_reduce_grads(e.grid, e.block, e.shared_bytes, &ra);
        }
    }

    fn update(&mut self, cfg: &StepConfig) {
        let syn = self.syn_target();
        let (net, _) = self.ptrs();
        let ua = launch::update_args(&net, &self.segments, self.opt, self.layout.len(), cfg, syn);
        let ca = launch::reconnect_args(&net, &self.segments, cfg, syn);
        let e = elementwise_plan(self.layout.len());
        let one = launch::one_block();
        // SAFETY: as in `forward`.
        unsafe {
            emu_lsnn_update(e.grid, e.block, e.shared_bytes, &ua);
            if self.segments.any_rewired() {
                emu_lsnn_reconnect(one.grid, one.block, one.shared_bytes, &ca);
            }
        }
    }

    fn trace(&self) -> Trace {
        Trace {
            n_batch: self.shape.n_batch,
            n_steps: self.shape.n_steps,
            n_rec: self.dims.n_rec,
            spike: self.k.spike,
            v: self.tr_v.clone(),
            b: self.tr_b.clone(),
            spikes: self.tr_spk.clone(),
            refractory: self.tr_ref.clone(),
            z0: self.z0.clone(),
        }
    }

    fn grads(&self, p: Param) -> &[f32] {
        &self.grad[self.layout.range(p).unwrap()]
    }
}

#[derive(Clone, Copy)]
struct Net {
    seed: u64,
    n_in: usize,
    n: usize,
    n_out: usize,
    d: usize,
    r: usize,
    dt: f32,
    v0: f32,
    bias: bool,
}

/// A random network with activity, as lsnn-host's types.
fn network(c: &Net) -> (Spec<f32>, Params<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    let spec = Spec {
        config: CellConfig {
            dt: c.dt,
            tau_adaptation: 300.0,
            v0: c.v0,
            n_delay: c.d,
            n_refractory: c.r,
            dampening_factor: 0.3,
            injected_noise_current: 0.0,
        },
        tau: (0..c.n)
            .map(|_| 15.0 + 15.0 * rng.gen::<f64>() as f32)
            .collect(),
        thr: (0..c.n)
            .map(|_| (0.01 + 0.02 * rng.gen::<f64>() as f32) * c.v0)
            .collect(),
        beta: (0..c.n)
            .map(|j| {
                if j % 2 == 0 {
                    0.0
                } else {
                    1.0 + rng.gen::<f64>() as f32
                }
            })
            .collect(),
        delay_in: Array2::from_shape_simple_fn((c.n_in, c.n), || rng.gen_range(0..c.d) as u8),
        delay_rec: Array2::from_shape_simple_fn((c.n, c.n), || rng.gen_range(0..c.d) as u8),
        tau_out: 20.0,
    };
    let s_in = 0.3 / (c.n_in as f64).sqrt() * f64::from(c.v0).recip() * 1.0;
    let s_rec = 0.3 / (c.n as f64).sqrt();
    let params = Params {
        // Mostly excitatory input, so that every configuration spikes.
        w_in: Array2::from_shape_simple_fn((c.n_in, c.n), || {
            ((rng.sample::<f64, _>(StandardNormal) + 0.8) * s_in * f64::from(c.v0)) as f32
        }),
        w_rec: Array2::from_shape_simple_fn((c.n, c.n), || {
            if rng.gen::<f64>() < 0.3 {
                0.0
            } else {
                (rng.sample::<f64, _>(StandardNormal) * s_rec) as f32
            }
        }),
        w_out: Array2::from_shape_simple_fn((c.n, c.n_out), || {
            (rng.sample::<f64, _>(StandardNormal) * 0.5) as f32
        }),
        b_out: c.bias.then(|| {
            Array1::from_shape_simple_fn(c.n_out, || {
                (rng.sample::<f64, _>(StandardNormal) * 0.1) as f32
            })
        }),
    };
    (spec, params)
}

fn input(seed: u64, batch: usize, steps: usize, n_in: usize) -> InputBatch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = ndarray::Array3::<f32>::zeros((batch, steps, n_in));
    for v in x.iter_mut() {
        let u = rng.gen::<f64>();
        if u < 0.05 {
            *v = 1.0;
        } else if u < 0.055 {
            *v = (rng.sample::<f64, _>(StandardNormal) * 0.5) as f32;
        }
    }
    // Bursts, as a stroke's edge gives in sMNIST: two thirds of the channels at once every
    // eighth step, so the kernels take a step's events in several batches, the last partial.
    for ((_, t, c), v) in x.indexed_iter_mut() {
        if t % 8 == 3 && (c + t) % 3 != 0 {
            *v = 1.0;
        }
    }
    InputBatch::from_dense(x.view())
}

/// A random non-zero initial state (in both layouts).
fn initial_state(seed: u64, d: &Dims, spec: &Spec<f32>, batch: usize) -> BatchState {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = BatchState::zeros(d, batch);
    let v0 = spec.config.v0;
    for k in 0..batch * d.n_rec {
        s.v[k] = (rng.gen::<f64>() * 0.03) as f32 * v0;
        s.z[k] = if rng.gen::<f64>() < 0.2 {
            1.0 / spec.config.dt
        } else {
            0.0
        };
        s.b[k] = (rng.gen::<f64>() * 0.05) as f32;
        s.refractory_left[k] = if s.z[k] > 0.0 {
            d.n_refractory as i32
        } else {
            0
        };
    }
    for x in s.ring.iter_mut() {
        *x = (rng.sample::<f64, _>(StandardNormal) * 0.01) as f32 * v0;
    }
    s
}

fn host_states(
    spec: &Spec<f32>,
    d: &Dims,
    s: &BatchState,
) -> Vec<lsnn_host::train::HostState<f32>> {
    let mut states = zero_states(spec, s.n_batch);
    for (b, st) in states.iter_mut().enumerate() {
        for j in 0..d.n_rec {
            let k = b * d.n_rec + j;
            st.set_neuron(
                j,
                NeuronState {
                    v: s.v[k],
                    z: s.z[k],
                    b: s.b[k],
                },
            );
            st.set_refractory_left(j, s.refractory_left[k] as u16);
            for slot in 0..d.n_delay {
                st.set_i_future(j, slot, s.ring[BatchState::ring_index(d, b, slot, j)]);
            }
        }
    }
    states
}

/// The kernels sum in the host's order (elements, events, the warp-order recurrent adjoint) and
/// share its softmax `exp`: gradients agree bit for bit.
fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (*g == 0.0 && *w == 0.0),
            "{what}[{k}]: {g:e} vs host {w:e}"
        );
    }
}

fn rel_norm(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let den: f64 = b.iter().map(|&y| f64::from(y).powi(2)).sum();
    (num / den.max(1e-300)).sqrt()
}

#[test]
fn emulated_philox_equals_the_mirror() {
    let mut out = vec![[0u32; 4]; 300];
    // SAFETY: an output of 300 blocks.
    unsafe { emu_lsnn_philox_test(42, 1, 300, out.as_mut_ptr()) };
    for (i, o) in out.iter().enumerate() {
        assert_eq!(*o, philox4x32_10([i as u32, 1, 0, 0], key_words(42)));
    }
}

/// The emulated forward against the host trainer's (the core's cell): spikes, voltages and
/// adaptation bit for bit; then the loss and every gradient against `run_pass`.
fn compare_with_host(c: Net, batch: usize, steps: usize, with_state: bool, linear: bool) {
    let (spec, params) = network(&c);
    let weights = Weights {
        params: params.clone(),
        rewired: vec![],
    };
    let x = input(c.seed + 100, batch, steps, c.n_in);
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed + 200);
    let window = 10.min(steps);
    let terms: Vec<Vec<LossTerm<f32>>> = (0..batch)
        .map(|_| {
            vec![
                LossTerm {
                    start: steps - window,
                    end: steps,
                    target: rng.gen_range(0..c.n_out),
                    weight: 1.0 / batch as f32,
                },
                LossTerm {
                    start: 0,
                    end: steps / 2,
                    target: rng.gen_range(0..c.n_out),
                    weight: 0.5 / batch as f32,
                },
            ]
        })
        .collect();
    let reg = RateRegulariser::uniform(c.n, 0.1, 10.0);
    let lin: Option<(Array2<f32>, Array2<f32>)> = linear.then(|| {
        (
            Array2::from_shape_simple_fn((steps, c.n), || {
                rng.sample::<f64, _>(StandardNormal) as f32
            }),
            Array2::from_shape_simple_fn((steps, c.n), || {
                (rng.sample::<f64, _>(StandardNormal) * 10.0) as f32
            }),
        )
    });
    let mut emu = Emu::new(&spec, &weights, OptimizerKind::adam());
    let d = emu.dims;
    let state = if with_state {
        initial_state(c.seed + 300, &d, &spec, batch)
    } else {
        BatchState::zeros(&d, batch)
    };
    let mut hs = host_states(&spec, &d, &state);
    let host = run_pass(
        &spec,
        &params,
        &x,
        &mut hs,
        &terms,
        Some(&reg),
        PassOptions {
            gradients: true,
            keep_traces: true,
            noise_seed: 0,
            linear: lin.as_ref().map(|(a, b)| (a.view(), b.view())),
            objective: None,
        },
    )
    .unwrap();
    // The forward with the recurrent columns in shared memory, in global memory, and in too
    // small a shared copy (the kernel falls back to global memory): the same bits each time.
    for cols_capacity in [c.n * c.n, 0, 1] {
        emu.set_batch(BatchSpec {
            input: &x,
            terms: &terms,
            reg: Some(&reg),
            linear: lin
                .as_ref()
                .map(|(a, b)| (a.as_slice().unwrap(), b.as_slice().unwrap())),
            state: state.clone(),
        });
        emu.forward_with(&ForwardPlan::new(
            &d,
            batch,
            emu.shape.max_terms,
            cols_capacity,
        ));
        let tr = emu.trace();
        let traces = host.traces.as_ref().unwrap();
        let mut spikes = 0;
        for (b, ht) in traces.iter().enumerate() {
            for t in 0..steps {
                for j in 0..c.n {
                    let hz = ht
                        .spikes(t + 1)
                        .find(|&(k, _)| k == j)
                        .map_or(0.0, |(_, z)| z);
                    assert_eq!(
                        tr.z(b, t, j),
                        hz,
                        "z[{b},{t},{j}] ({cols_capacity} columns in shared)"
                    );
                    spikes += usize::from(hz != 0.0);
                    assert!(
                        tr.is_refractory(b, t, j) == ht.is_refractory(t, j),
                        "refractory[{b},{t},{j}]"
                    );
                }
                for (j, (&gv, &hv)) in tr.v(b, t).iter().zip(ht.v(t)).enumerate() {
                    assert_eq!(gv.to_bits(), hv.to_bits(), "v[{b},{t},{j}]: {gv} vs {hv}");
                }
                for (j, (&gb, &hb)) in tr.b(b, t).iter().zip(ht.b(t)).enumerate() {
                    assert_eq!(gb.to_bits(), hb.to_bits(), "b[{b},{t},{j}]");
                }
            }
            // Final state.
            for j in 0..c.n {
                let k = b * c.n + j;
                assert_eq!(emu.state.v[k].to_bits(), hs[b].v()[j].to_bits());
                assert_eq!(
                    emu.state.refractory_left[k],
                    i32::from(hs[b].refractory_left()[j])
                );
                for slot in 0..c.d {
                    assert_eq!(
                        emu.state.ring[BatchState::ring_index(&d, b, slot, j)].to_bits(),
                        hs[b].i_future(j, slot).to_bits()
                    );
                }
            }
        }
        let rate = spikes as f64 / (batch * steps * c.n) as f64;
        assert!(
            rate > 0.01 && rate < 0.5,
            "the comparison needs activity: rate {rate}"
        );
        // Logits, rates and the loss bit for bit (same order, exp and log in f64); the fixtures'
        // linear loss to rounding (summed per neuron here, in one sum on the host).
        for (b, per) in host.logits.iter().enumerate() {
            for (q, l) in per.iter().enumerate() {
                for (o, &x) in l.iter().enumerate() {
                    assert_eq!(emu.logits[(b * 2 + q) * c.n_out + o].to_bits(), x.to_bits());
                }
            }
        }
        assert_eq!(emu.rates, host.rates);
        let loss = emu.metrics[0];
        if linear {
            assert!(
                (f64::from(loss) - f64::from(host.loss)).abs()
                    <= 1e-5 * f64::from(host.loss).abs().max(1.0),
                "loss {loss} vs host {}",
                host.loss
            );
        } else {
            assert_eq!(loss.to_bits(), host.loss.to_bits(), "loss {loss} vs host");
        }
    }
    // Gradients, with the block's gradient rows in shared and in global memory, and the
    // compacted recurrent rows in shared memory, in global memory, and in too small a shared
    // copy (the kernel falls back to global memory).
    let hg = host.grads.unwrap();
    let (n_batch, max_terms) = (emu.shape.n_batch, emu.shape.max_terms);
    for acc_in_shared in [true, false] {
        for rows_capacity in [c.n * c.n, 0, 1] {
            let plan = BackwardPlan::new(&d, n_batch, max_terms, acc_in_shared, rows_capacity);
            emu.backward_with(&plan, None);
            for (p, h) in [
                (Param::WIn, hg.w_in.as_slice().unwrap()),
                (Param::WRec, hg.w_rec.as_slice().unwrap()),
                (Param::WOut, hg.w_out.as_slice().unwrap()),
            ] {
                let e = rel_norm(emu.grads(p), h);
                eprintln!(
                    "seed {} {} (rows in shared {acc_in_shared}, {rows_capacity} compacted): \
                     rel norm err {e:.2e}",
                    c.seed,
                    p.name()
                );
                assert_bits_eq(emu.grads(p), h, p.name());
            }
            if let Some(hb) = &hg.b_out {
                assert_bits_eq(emu.grads(Param::BOut), hb.as_slice().unwrap(), "b_out");
            }
            assert_eq!(emu.flags[0], 0, "no non-finite gradient");
        }
    }
}

const BASE: Net = Net {
    seed: 1,
    n_in: 7,
    n: 40,
    n_out: 3,
    d: 3,
    r: 2,
    dt: 1.0,
    v0: 1.0,
    bias: true,
};

#[test]
fn emulated_kernels_equal_the_host_trainer() {
    compare_with_host(BASE, 3, 80, false, false);
}

#[test]
fn emulated_kernels_from_a_non_zero_state_with_a_linear_loss() {
    compare_with_host(
        Net {
            seed: 2,
            bias: false,
            ..BASE
        },
        2,
        60,
        true,
        true,
    );
}

#[test]
fn emulated_kernels_with_dt_half_and_v0() {
    compare_with_host(
        Net {
            seed: 3,
            dt: 0.5,
            v0: 1000.0,
            d: 1,
            r: 0,
            n: 33,
            ..BASE
        },
        2,
        60,
        false,
        false,
    );
}

#[test]
fn emulated_kernels_at_the_smnist_width() {
    compare_with_host(
        Net {
            seed: 4,
            n_in: 80,
            n: 220,
            n_out: 10,
            d: 10,
            r: 5,
            ..BASE
        },
        2,
        40,
        true,
        false,
    );
}

/// Blocks of more than 256 threads take the other build of the step kernels (64 registers a
/// thread, input events one at a time).
#[test]
fn emulated_kernels_wider_than_256_neurons() {
    compare_with_host(
        Net {
            seed: 5,
            n_in: 30,
            n: 300,
            n_out: 4,
            d: 4,
            r: 2,
            ..BASE
        },
        2,
        24,
        false,
        false,
    );
}

/// A whole training step (Adam on a plain network; Adam + DEEP R on rewired matrices) against
/// `Weights::apply` fed with the emulator's own gradients: the same update, bit for bit where
/// no randomness is involved, and the budget kept.
#[test]
fn emulated_update_equals_the_host_update() {
    update_case(1e-2);
}

/// An l1 so large that most synapses drop out every step: DEEP R then places hundreds of new
/// ones by rejection sampling, over several rounds of attempts with repeated picks.
#[test]
fn emulated_mass_reconnection_equals_the_host() {
    update_case(30.0);
}

fn update_case(l1: f64) {
    let c = Net { seed: 5, ..BASE };
    let (spec, params) = network(&c);
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    // w_in and w_rec rewired at 30 %, unsigned; w_out plain.
    let mut hrng = ChaCha8Rng::seed_from_u64(1);
    let rewired = vec![
        RewiredMatrix::<f32>::init_unsigned(&mut hrng, Matrix::In, c.n_in, c.n, 0.3),
        RewiredMatrix::init_unsigned(&mut hrng, Matrix::Rec, c.n, c.n, 0.3),
    ];
    let mut weights = Weights { params, rewired };
    weights.sync_rewired().unwrap();
    let mut emu = Emu::new(&spec, &weights, OptimizerKind::adam());
    let x = input(9, 2, 50, c.n_in);
    let terms: Vec<Vec<LossTerm<f32>>> = (0..2)
        .map(|_| {
            vec![LossTerm {
                start: 40,
                end: 50,
                target: rng.gen_range(0..c.n_out),
                weight: 0.5,
            }]
        })
        .collect();
    let reg = RateRegulariser::uniform(c.n, 0.1, 10.0);
    let mut opt = Optimizer::adam();
    let budget = lsnn_host::train::deepr::budget(&weights.rewired);
    for step in 1..=3u64 {
        let d = emu.dims;
        emu.set_batch(BatchSpec {
            input: &x,
            terms: &terms,
            reg: Some(&reg),
            linear: None,
            state: BatchState::zeros(&d, 2),
        });
        emu.forward();
        emu.backward(227 * 1024, None);
        let g = emu.grad.clone();
        let l = emu.layout;
        let grads = Params {
            w_in: Array2::from_shape_vec((c.n_in, c.n), g[l.range(Param::WIn).unwrap()].to_vec())
                .unwrap(),
            w_rec: Array2::from_shape_vec((c.n, c.n), g[l.range(Param::WRec).unwrap()].to_vec())
                .unwrap(),
            w_out: Array2::from_shape_vec(
                (c.n, c.n_out),
                g[l.range(Param::WOut).unwrap()].to_vec(),
            )
            .unwrap(),
            b_out: Some(Array1::from(g[l.range(Param::BOut).unwrap()].to_vec())),
        };
        // The host's step draws its Philox key from its generator: give the kernels that key.
        let key = hrng.clone().gen::<u64>();
        let cfg = StepConfig {
            lr: 0.01,
            step,
            rewiring: Some((l1, 1e-4)),
            key,
        };
        emu.update(&cfg);
        weights
            .apply(
                &grads,
                &mut opt,
                0.01,
                Some(Rewiring {
                    l1,
                    temperature: 1e-4,
                }),
                &mut hrng,
            )
            .unwrap();
        // Every array follows the host bit for bit: Adam, DEEP R's guard, l1, noise and the
        // reconnected places (the same Philox draws).
        for p in [Param::WOut, Param::BOut] {
            let host = weights
                .params
                .named()
                .into_iter()
                .find(|(n, _)| *n == p.name())
                .unwrap()
                .1
                .to_vec();
            assert_eq!(
                &emu.params[l.range(p).unwrap()],
                host.as_slice(),
                "{}",
                p.name()
            );
        }
        for (p, m) in [Param::WIn, Param::WRec].into_iter().zip(&weights.rewired) {
            let theta = &emu.theta[l.range(p).unwrap()];
            for (k, (&a, &b)) in theta.iter().zip(m.theta.iter()).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "step {step} {} theta {k}: {a} vs {b}",
                    m.name
                );
            }
        }
        let reconnected = emu.theta.iter().filter(|&&t| t == 1e-12).count();
        eprintln!("l1 {l1} step {step}: {reconnected} synapses (re)connected at 1e-12");
        let connected = emu.theta.iter().filter(|&&t| t > 0.0).count();
        assert_eq!(connected, budget, "step {step}");
        assert_eq!(emu.n_connected[0] as usize, budget);
        // Effective weights: sign * theta * V0, the diagonal 0.
        for k in 0..c.n * c.n {
            let p = l.range(Param::WRec).unwrap().start + k;
            let want = if k / c.n == k % c.n {
                0.0
            } else {
                emu.params[p] * spec.config.v0
            };
            assert_eq!(emu.syn[p][0], want);
        }
    }
}

/// `n_iter` store-recall training iterations from one seed, the state carried from batch to
/// batch: on the host trainer (`apps::run::train_step`) and on the emulated kernels launched as
/// `GpuTrainer::launch_step` launches them, DEEP R's key drawn from the run's generator as
/// `apps::gpu` draws it. After every iteration: the same loss, parameters, magnitudes, Adam
/// moments, generator and final state, bit for bit (the claim the device test
/// `twenty_store_recall_iterations_match_the_host` asserts on a GPU).
fn store_recall_iterations_equal_the_host(flags: &StoreRecallFlags, n_iter: usize) {
    let b = flags.batch_train;
    let mut rng = ChaCha8Rng::seed_from_u64(flags.seed as u64);
    let spec = store_recall::build_spec(flags, &mut rng);
    let mut weights = store_recall::init_weights(flags, &mut rng).unwrap();
    let reg = RateRegulariser::uniform(spec.n_rec(), flags.reg, flags.reg_rate);
    let mut optimizer = Optimizer::adam();
    let mut states = zero_states(&spec, b);
    let mut emu = Emu::new(&spec, &weights, OptimizerKind::adam());
    let mut emu_rng = rng.clone();
    let mut emu_state = BatchState::zeros(&emu.dims, b);
    let mut data = ChaCha8Rng::seed_from_u64(flags.seed as u64 + 1);
    let (mut spikes, mut reconnected) = (0.0, 0);
    for k in 0..n_iter {
        let batch = generate(&mut data, b, &flags.task()).unwrap();
        let terms = store_recall::loss_terms(&batch);
        let step = TrainStep {
            spec: &spec,
            input: &batch.input,
            target: &Target::Classes(terms.clone()),
            reg: Some(&reg),
            lr: flags.learning_rate,
            rewiring: flags.rewiring(),
            iteration: k,
            staged: None,
        };
        let host = train_step(&step, &mut weights, &mut optimizer, &mut rng, &mut states).unwrap();
        emu.set_batch(BatchSpec {
            input: &batch.input,
            terms: &terms,
            reg: Some(&reg),
            linear: None,
            state: emu_state,
        });
        emu.train_step(&step, k as u64 + 1, &mut emu_rng);
        emu_state = emu.state.clone();
        let loss = emu.metrics[0];
        eprintln!("iteration {k}: host {} emulated {loss}", host.loss);
        assert_eq!(loss.to_bits(), host.loss.to_bits(), "iteration {k}: loss");
        assert_eq!(emu.flags[0], 0, "iteration {k}: a non-finite gradient");
        assert!(emu_rng == rng, "iteration {k}: the run's generator");
        emu.assert_weights_eq(&weights, &optimizer, k);
        assert_state_eq(&emu.dims, &emu.state, &states, k);
        spikes += emu.rates.iter().map(|&r| f64::from(r)).sum::<f64>();
        reconnected += emu.theta.iter().filter(|&&t| t == 1e-12).count();
    }
    assert!(spikes > 0.0, "the comparison needs spikes");
    eprintln!("{reconnected} synapses (re)connected over {n_iter} iterations");
    if flags.rewiring().is_some() {
        assert!(
            reconnected > 0,
            "the comparison needs DEEP R to reconnect synapses"
        );
    }
}

impl Emu {
    /// One training iteration of the batch set last, as `GpuTrainer::launch_step` queues it.
    fn train_step<R: Rng>(&mut self, step: &TrainStep<'_>, count: u64, rng: &mut R) {
        let rewired = self.segments.any_rewired();
        let key = if rewired { rng.gen::<u64>() } else { 0 };
        let r = step.rewiring.unwrap_or(Rewiring {
            l1: 0.0,
            temperature: 0.0,
        });
        self.forward();
        self.backward(227 * 1024, None);
        self.update(&StepConfig {
            lr: step.lr,
            step: count,
            rewiring: rewired.then_some((r.l1, r.temperature)),
            key,
        });
    }

    /// Parameters, DEEP R magnitudes and Adam's moments equal the host's, bit for bit.
    fn assert_weights_eq(&self, weights: &Weights<f32>, optimizer: &Optimizer, k: usize) {
        let l = self.layout;
        for (name, host) in weights.params.named() {
            let p = Param::from_name(name).unwrap();
            let host = host.to_vec();
            assert_bits_eq(
                &self.params[l.range(p).unwrap()],
                &host,
                &format!("{k}: {name}"),
            );
        }
        for m in &weights.rewired {
            let p = Param::from_name(&m.name).unwrap();
            let theta = &self.theta[l.range(p).unwrap()];
            assert_bits_eq(
                theta,
                m.theta.as_slice().unwrap(),
                &format!("{k}: theta {}", m.name),
            );
        }
        for (emu, host) in [(&self.adam_m, &optimizer.m), (&self.adam_v, &optimizer.v)] {
            assert_eq!(host.len(), l.params().len(), "iteration {k}: moments");
            for (name, moments) in host {
                let r = l.range(Param::from_name(name).unwrap()).unwrap();
                assert_eq!(moments.len(), r.len(), "iteration {k}: moments of {name}");
                let same = emu[r]
                    .iter()
                    .zip(moments)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "iteration {k}: Adam moments of {name}");
            }
        }
    }
}

/// A batch's final state equals the host's, bit for bit.
fn assert_state_eq(d: &Dims, s: &BatchState, host: &[lsnn_host::train::HostState<f32>], k: usize) {
    let n = d.n_rec;
    for (b, h) in host.iter().enumerate() {
        let e = b * n..(b + 1) * n;
        assert_bits_eq(&s.v[e.clone()], h.v(), &format!("{k}: v of element {b}"));
        assert_bits_eq(&s.z[e.clone()], h.z(), &format!("{k}: z of element {b}"));
        assert_bits_eq(&s.b[e.clone()], h.b(), &format!("{k}: b of element {b}"));
        let left: Vec<i32> = h.refractory_left().iter().map(|&x| i32::from(x)).collect();
        assert_eq!(
            &s.refractory_left[e],
            left.as_slice(),
            "{k}: refractory {b}"
        );
        for slot in 0..d.n_delay {
            for j in 0..n {
                let got = s.ring[BatchState::ring_index(d, b, slot, j)];
                let want = h.i_future(j, slot);
                assert_eq!(got.to_bits(), want.to_bits(), "{k}: ring {b} {slot} {j}");
            }
        }
    }
}

/// The store-recall tutorial's network (100 inputs, 10 LIF + 10 ALIF, D 10) with shorter
/// sequences and batch than the device test's (B 32, T 2400) to keep CI short: B 2, T 160.
fn short_store_recall(seed: i64, rewiring_connectivity: f64) -> StoreRecallFlags {
    StoreRecallFlags {
        batch_train: 2,
        seq_len: 8,
        seq_delay: 2,
        tau_char: 20,
        rewiring_connectivity,
        seed,
        ..StoreRecallFlags::defaults()
    }
}

#[test]
fn twenty_store_recall_iterations_equal_the_host() {
    store_recall_iterations_equal_the_host(&short_store_recall(5, -1.0), 20);
}

/// The same with DEEP R on w_in and w_rec: the Philox key of every step from the run's
/// generator, the reconnected synapses in the same places.
#[test]
fn store_recall_iterations_with_deep_r_equal_the_host() {
    store_recall_iterations_equal_the_host(&short_store_recall(7, 0.1), 10);
}

/// A poisoned gradient stops the update before anything changes and names the entry.
#[test]
fn emulated_non_finite_gradient_skips_the_update() {
    let (spec, params) = network(&BASE);
    let weights = Weights {
        params,
        rewired: vec![],
    };
    let mut emu = Emu::new(&spec, &weights, OptimizerKind::adam());
    let x = input(3, 1, 30, BASE.n_in);
    let d = emu.dims;
    emu.set_batch(BatchSpec {
        input: &x,
        terms: &[vec![LossTerm {
            start: 20,
            end: 30,
            target: 1,
            weight: 1.0,
        }]],
        reg: None,
        linear: None,
        state: BatchState::zeros(&d, 1),
    });
    emu.forward();
    let poison = emu.layout.range(Param::WRec).unwrap().start + 1;
    emu.backward(227 * 1024, Some(poison));
    let before = emu.params.clone();
    emu.update(&StepConfig {
        lr: 0.01,
        step: 1,
        rewiring: None,
        key: 0,
    });
    assert_eq!(emu.flags[0], 1);
    assert_eq!(
        emu.layout.locate(emu.flags[1] as usize),
        Some((Param::WRec, 1))
    );
    assert_eq!(emu.params, before, "nothing updated");
}

/// The sanitizer builds of the emulator (`LSNN_EMU_DEFINES="-fsanitize=thread"` and
/// `"-fsanitize=address,undefined"`, CI) check the kernels for races, out-of-bounds accesses and
/// undefined behaviour (a shift by 32, a misaligned vector load) while the tests above run them;
/// these tests show that the checker would report each kind of bug (planted in `lsnn_probe`, run
/// in a child process of this test binary) and nothing in a correct kernel.
mod sanitizer {
    use std::process::{Command, Output};

    extern "C" {
        fn emu_lsnn_probe(kind: u32, global: *mut f32);
    }

    const PROBE: &str = "LSNN_EMU_PROBE";

    /// In the child process a test below starts (`LSNN_EMU_PROBE` set): runs that probe kernel
    /// and says so, for the test to return.
    fn ran_as_probe() -> bool {
        let Ok(kind) = std::env::var(PROBE) else {
            return false;
        };
        let kind: u32 = kind.parse().expect("LSNN_EMU_PROBE is a probe number");
        let mut global = [0.0f32; 2];
        // SAFETY: the probe indexes 2 floats of `global` (kinds 4-6 are undefined behaviour
        // on purpose, run only under the sanitizer that reports them).
        unsafe { emu_lsnn_probe(kind, global.as_mut_ptr()) };
        true
    }

    /// Runs probe `kind` in a child process: this test binary, running only `test`.
    fn run_probe(test: &str, kind: u32) -> (Output, String) {
        let exe = std::env::current_exe().expect("the test binary's path");
        let out = Command::new(exe)
            .args([
                "--exact",
                &format!("emu::sanitizer::{test}"),
                "--test-threads=1",
            ])
            .env(PROBE, kind.to_string())
            .output()
            .expect("the test binary runs again");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out, stderr)
    }

    /// The probes `planted` (kind, what the report says) run by `test` in a child process: the
    /// sanitizer `name`, when this build has it, stays silent on the correct kernel and reports
    /// each planted bug, in the probe kernel (named in the report's stack).
    fn assert_reported(test: &str, name: &str, built: bool, planted: &[(u32, &str)]) {
        if !built {
            println!("skipped: the emulator is not built with -fsanitize={name}");
            return;
        }
        let (out, stderr) = run_probe(test, 0);
        assert!(out.status.success(), "a correct kernel: {stderr}");
        assert!(
            !stderr.contains("Sanitizer") && !stderr.contains("runtime error"),
            "{stderr}"
        );
        for &(kind, report) in planted {
            let (out, stderr) = run_probe(test, kind);
            assert!(!out.status.success(), "probe {kind} not reported: {stderr}");
            assert!(
                stderr.contains(report) && stderr.contains("lsnn_probe"),
                "probe {kind}: {stderr}"
            );
        }
    }

    /// A lane reading another lane's write after a vote only; two blocks writing one word; a
    /// plain read of a word another warp adds to atomically (ThreadSanitizer exits with 66).
    #[test]
    fn planted_races_are_reported() {
        if !ran_as_probe() {
            let race = "WARNING: ThreadSanitizer: data race";
            let planted = [(1, race), (2, race), (3, race)];
            let built = cfg!(emu_sanitizer = "thread");
            assert_reported("planted_races_are_reported", "thread", built, &planted);
        }
    }

    #[test]
    fn a_read_past_shared_memory_is_reported() {
        if !ran_as_probe() {
            let planted = [(4, "AddressSanitizer: heap-buffer-overflow")];
            let built = cfg!(emu_sanitizer = "address");
            assert_reported(
                "a_read_past_shared_memory_is_reported",
                "address",
                built,
                &planted,
            );
        }
    }

    /// Fatal only with -fno-sanitize-recover=all (as CI builds it).
    #[test]
    fn a_shift_by_the_width_and_a_misaligned_load_are_reported() {
        if !ran_as_probe() {
            let planted = [
                (5, "shift exponent 32 is too large"),
                (6, "misaligned address"),
            ];
            let built = cfg!(emu_sanitizer = "undefined");
            let test = "a_shift_by_the_width_and_a_misaligned_load_are_reported";
            assert_reported(test, "undefined", built, &planted);
        }
    }
}
