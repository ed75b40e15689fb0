//! Launching the kernels with `cust`: the device and its modules ([`Gpu`]), a network's training
//! iteration ([`GpuTrainer`]) and a bare parameter set with the update kernels
//! ([`DeviceParamSet`], for the DEEP R fixture).
//!
//! One iteration is 6-7 launches on one stream (clear, forward, loss, backward, gradient
//! reduction, update, DEEP R reconnection) and one synchronisation to read the loss and the
//! metrics; the input events of the next batch can be staged (pinned memory, async copy) while
//! an iteration runs.
#![allow(unsafe_code)]

use cust::context::Context;
use cust::device::Device;
use cust::event::{Event, EventFlags};
use cust::launch;
use cust::memory::{AsyncCopyDestination, CopyDestination, DeviceBuffer, DeviceCopy, LockedBuffer};
use cust::module::Module;
use cust::stream::{Stream, StreamFlags};
use cust::CudaFlags;
use lsnn_core::{CellConfig, Neuron};

use crate::error::{CudaContext, GpuError};
use crate::launch::{self, BatchPtrs, BatchShape, NetPtrs, SynTarget};
use crate::layout::{
    check_loss_extras, elementwise_plan, neuron_table, pack_synapses, rec_bound, step_entry,
    step_plans, BackwardPlan, BatchState, Dims, ForwardPlan, KernelConsts, LaunchPlan, PackedInput,
    PackedTerms, Param, ParamLayout, Segments, StepKernel, Trace, DEFAULT_SHARED_LIMIT,
};
use crate::ptx;
use crate::step::{OptimizerKind, StepConfig};

/// The batch buffers, or the error that says a batch must be set first. Shared access goes
/// through `GpuTrainer::batch`; mutable access calls this on the field, so that other fields
/// (the stream) can be borrowed alongside.
fn current<T>(batch: Option<T>) -> Result<T, GpuError> {
    batch.ok_or_else(|| GpuError::shape("batch", "set_batch first"))
}

/// The name of the first CUDA device, or `None` when there is no driver or no device (the
/// tests' "skipped: no CUDA device").
pub fn probe() -> Option<String> {
    cust::init(CudaFlags::empty()).ok()?;
    match Device::num_devices() {
        Ok(n) if n > 0 => Device::get_device(0).and_then(|d| d.name()).ok(),
        _ => None,
    }
}

/// Whether a CUDA device can be used.
pub fn device_available() -> bool {
    probe().is_some()
}

fn ptr<T: DeviceCopy>(b: &DeviceBuffer<T>) -> u64 {
    b.as_device_ptr().as_raw()
}

fn alloc<T: DeviceCopy + cust::memory::bytemuck::Zeroable>(
    n: usize,
    what: &str,
) -> Result<DeviceBuffer<T>, GpuError> {
    DeviceBuffer::zeroed(n.max(1)).ctx(what)
}

fn upload<T: DeviceCopy + cust::memory::bytemuck::Zeroable>(
    data: &[T],
    what: &str,
) -> Result<DeviceBuffer<T>, GpuError> {
    if data.is_empty() {
        return alloc(1, what);
    }
    DeviceBuffer::from_slice(data).ctx(what)
}

fn download<T: DeviceCopy + Default + Clone>(
    b: &DeviceBuffer<T>,
    n: usize,
    what: &str,
) -> Result<Vec<T>, GpuError> {
    let mut out = vec![T::default(); n];
    if n > 0 {
        b.index(0..n).copy_to(&mut out[..]).ctx(what)?;
    }
    Ok(out)
}

fn write<T: DeviceCopy>(b: &mut DeviceBuffer<T>, data: &[T], what: &str) -> Result<(), GpuError> {
    if data.is_empty() {
        return Ok(());
    }
    b.index(0..data.len()).copy_from(data).ctx(what)
}

/// A CUDA device with the kernels loaded and a stream.
pub struct Gpu {
    forward: Module,
    backward: Module,
    loss: Module,
    update: Module,
    stream: Stream,
    shared_limit: usize,
    name: String,
    sync_each_launch: bool,
    // Dropped last: everything above lives in this context.
    _ctx: Context,
}

/// A module from its embedded PTX, or from `$LSNN_GPU_PTX_DIR/<name>.ptx` when that variable is
/// set: variants of a kernel (other compile-time options, same arguments) can then be timed
/// against each other in one device session without rebuilding the binaries.
fn load_module(embedded: &str, name: &str) -> Result<Module, GpuError> {
    let what = format!("loading {name}.ptx");
    match std::env::var_os("LSNN_GPU_PTX_DIR") {
        Some(dir) => {
            let path = std::path::Path::new(&dir).join(format!("{name}.ptx"));
            let ptx = std::fs::read_to_string(&path).map_err(|e| {
                GpuError::shape("LSNN_GPU_PTX_DIR", format!("{}: {e}", path.display()))
            })?;
            Module::from_ptx(&ptx, &[]).ctx(&what)
        }
        None => Module::from_ptx(embedded, &[]).ctx(&what),
    }
}

impl Gpu {
    /// The first device, its primary context, the four modules (JIT-compiled from the embedded
    /// PTX, or from `$LSNN_GPU_PTX_DIR/<name>.ptx` when that is set) and a stream.
    /// `LSNN_GPU_SYNC=1` synchronises after every launch (to find the kernel behind an
    /// asynchronous error).
    pub fn new() -> Result<Gpu, GpuError> {
        let name = probe().ok_or_else(|| GpuError::NoDevice("no CUDA driver or device".into()))?;
        let device = Device::get_device(0).ctx("cuDeviceGet")?;
        let ctx = Context::new(device).ctx("cuDevicePrimaryCtxRetain")?;
        let mut optin = 0i32;
        // SAFETY: a valid device handle and an out-pointer to a local.
        let r = unsafe {
            cust::sys::cuDeviceGetAttribute(
                &mut optin,
                cust::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                device.as_raw(),
            )
        };
        let shared_limit = if r == cust::sys::cudaError_enum::CUDA_SUCCESS && optin > 0 {
            optin as usize
        } else {
            DEFAULT_SHARED_LIMIT
        };
        Ok(Gpu {
            forward: load_module(ptx::FORWARD, "forward")?,
            backward: load_module(ptx::BACKWARD, "backward")?,
            loss: load_module(ptx::LOSS, "loss")?,
            update: load_module(ptx::UPDATE, "update")?,
            // A blocking stream: the synchronous uploads (`write`, cuMemcpyHtoD on the legacy
            // stream) may return before their DMA lands when the source is pageable; a blocking
            // stream's next launch waits for it, a non-blocking one would not.
            stream: Stream::new(StreamFlags::DEFAULT, None).ctx("cuStreamCreate")?,
            shared_limit,
            name,
            sync_each_launch: std::env::var("LSNN_GPU_SYNC").is_ok_and(|v| v == "1"),
            _ctx: ctx,
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Dynamic shared memory a block may use on this device (opt-in limit).
    pub fn shared_limit(&self) -> usize {
        self.shared_limit
    }

    fn make_current(&self) -> Result<(), GpuError> {
        cust::context::CurrentContext::set_current(&self._ctx).ctx("cuCtxSetCurrent")
    }

    /// Waits for everything queued on the stream.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        self.stream.synchronize().ctx("cuStreamSynchronize")
    }

    fn launch<A: DeviceCopy>(
        &self,
        module: &Module,
        entry: &str,
        plan: LaunchPlan,
        args: A,
    ) -> Result<(), GpuError> {
        let func = module.get_function(entry).ctx(entry)?;
        if plan.shared_bytes as usize > DEFAULT_SHARED_LIMIT {
            // SAFETY: a valid function handle of a loaded module; the size is within the
            // device's opt-in limit (checked by the launch plans).
            let r = unsafe {
                cust::sys::cuFuncSetAttribute(
                    func.to_raw(),
                    cust::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    plan.shared_bytes as i32,
                )
            };
            if r != cust::sys::cudaError_enum::CUDA_SUCCESS {
                return Err(GpuError::Unsupported(format!(
                    "{entry}: {} bytes of shared memory refused ({r:?})",
                    plan.shared_bytes
                )));
            }
        }
        let stream = &self.stream;
        // SAFETY: `args` is a #[repr(C)] struct whose layout matches the kernel's parameter
        // struct (checked by args.rs's tests); every pointer in it is a live device allocation
        // of the size the kernel indexes (the callers size them from the same Dims); the
        // kernels only write to buffers that no other in-flight work reads.
        unsafe {
            launch!(func<<<plan.grid, plan.block, plan.shared_bytes, stream>>>(args)).ctx(entry)?;
        }
        if self.sync_each_launch {
            self.stream.synchronize().ctx(entry)?;
        }
        Ok(())
    }

    /// `n` Philox blocks for counters `(i, stream_id, 0, 0)` under `key`, computed on the device.
    pub fn philox(&self, key: u64, stream_id: u32, n: usize) -> Result<Vec<[u32; 4]>, GpuError> {
        self.make_current()?;
        let out: DeviceBuffer<[u32; 4]> = alloc(n, "philox output")?;
        let func = self
            .update
            .get_function("lsnn_philox_test")
            .ctx("lsnn_philox_test")?;
        let stream = &self.stream;
        let plan = elementwise_plan(n);
        let out_ptr = ptr(&out);
        let n32 = n as u32;
        // SAFETY: scalar arguments and a device buffer of n blocks.
        unsafe {
            launch!(func<<<plan.grid, plan.block, 0, stream>>>(key, stream_id, n32, out_ptr))
                .ctx("lsnn_philox_test")?;
        }
        self.synchronize()?;
        download(&out, n, "philox output")
    }
}

/// The buffers and settings the update kernels work on.
struct UpdateSet {
    segments: Segments,
    optimizer: OptimizerKind,
    params: DeviceBuffer<f32>,
    theta: DeviceBuffer<f32>,
    sign: DeviceBuffer<f32>,
    grad: DeviceBuffer<f32>,
    adam_m: DeviceBuffer<f64>,
    adam_v: DeviceBuffer<f64>,
    flags: DeviceBuffer<u32>,
    counters: DeviceBuffer<u32>,
    n_connected: DeviceBuffer<u32>,
    len: usize,
}

impl UpdateSet {
    /// `params` (the values, `sign * theta` where rewired), `theta` and `sign` (zeros where not
    /// rewired), all of the segments' total length.
    fn new(
        segments: Segments,
        optimizer: OptimizerKind,
        params: &[f32],
        theta: &[f32],
        sign: &[f32],
    ) -> Result<UpdateSet, GpuError> {
        let len = params.len();
        Ok(UpdateSet {
            segments,
            optimizer,
            params: upload(params, "params")?,
            theta: upload(theta, "theta")?,
            sign: upload(sign, "sign")?,
            grad: alloc(len, "grad")?,
            adam_m: alloc(len, "adam m")?,
            adam_v: alloc(len, "adam v")?,
            flags: alloc(4, "flags")?,
            counters: alloc(crate::args::MAX_SEGMENTS, "counters")?,
            n_connected: alloc(1, "n_connected")?,
            len,
        })
    }

    fn clear(&self, gpu: &Gpu) -> Result<(), GpuError> {
        let func = gpu.loss.get_function("lsnn_clear").ctx("lsnn_clear")?;
        let stream = &gpu.stream;
        let (flags, counters) = (ptr(&self.flags), ptr(&self.counters));
        // SAFETY: two device buffers of 4 and 8 words.
        unsafe {
            launch!(func<<<1u32, 32u32, 0u32, stream>>>(flags, counters)).ctx("lsnn_clear")?;
        }
        Ok(())
    }

    /// The addresses of the update buffers (the rest of the table 0).
    fn ptrs(&self) -> NetPtrs {
        NetPtrs {
            params: ptr(&self.params),
            theta: ptr(&self.theta),
            sign: ptr(&self.sign),
            grad: ptr(&self.grad),
            adam_m: ptr(&self.adam_m),
            adam_v: ptr(&self.adam_v),
            flags: ptr(&self.flags),
            counters: ptr(&self.counters),
            n_connected: ptr(&self.n_connected),
            ..NetPtrs::default()
        }
    }

    fn launch_update(&self, gpu: &Gpu, cfg: &StepConfig, syn: SynTarget) -> Result<(), GpuError> {
        let args = launch::update_args(
            &self.ptrs(),
            &self.segments,
            self.optimizer,
            self.len,
            cfg,
            syn,
        );
        gpu.launch(&gpu.update, "lsnn_update", elementwise_plan(self.len), args)
    }

    fn launch_reconnect(
        &self,
        gpu: &Gpu,
        cfg: &StepConfig,
        syn: SynTarget,
    ) -> Result<(), GpuError> {
        if !self.segments.any_rewired() {
            return Ok(());
        }
        let args = launch::reconnect_args(&self.ptrs(), &self.segments, cfg, syn);
        gpu.launch(&gpu.update, "lsnn_reconnect", launch::one_block(), args)
    }

    /// (flags, n_connected) after a synchronisation.
    fn read_flags(&self) -> Result<([u32; 4], u32), GpuError> {
        let f = download(&self.flags, 4, "flags")?;
        let n = download(&self.n_connected, 1, "n_connected")?;
        Ok(([f[0], f[1], f[2], f[3]], n[0]))
    }
}

/// The fixed part of a network, in the host trainer's terms.
#[derive(Clone, Copy, Debug)]
pub struct NetworkSpec<'a> {
    /// Input channels.
    pub n_in: usize,
    /// Readout outputs.
    pub n_out: usize,
    /// Cell parameters (`injected_noise_current` must be 0 on the GPU).
    pub config: CellConfig<f32>,
    /// The neurons' constants.
    pub neurons: &'a [Neuron<f32>],
    /// Delay index of each input synapse `[I * N]`.
    pub delay_in: &'a [u8],
    /// Delay index of each recurrent synapse `[N * N]`.
    pub delay_rec: &'a [u8],
    /// Readout filter time constant.
    pub tau_out: f32,
    /// Whether the readout has a bias.
    pub has_bias: bool,
}

/// The trained arrays (before V0; the w_rec diagonal is ignored).
#[derive(Clone, Copy, Debug)]
pub struct ParamValues<'a> {
    /// `[I * N]`.
    pub w_in: &'a [f32],
    /// `[N * N]`.
    pub w_rec: &'a [f32],
    /// `[N * O]`.
    pub w_out: &'a [f32],
    /// `[O]` when the readout has a bias.
    pub b_out: Option<&'a [f32]>,
}

/// A matrix rewired by DEEP R: `w = sign * theta` where `theta > 0`, else 0.
#[derive(Clone, Copy, Debug)]
pub struct Rewired<'a> {
    /// Which array.
    pub param: Param,
    /// Magnitudes.
    pub theta: &'a [f32],
    /// Fixed signs.
    pub sign: &'a [f32],
    /// Target connectivity p.
    pub connectivity: f64,
}

/// The parameters, DEEP R magnitudes and Adam moments, in the flat layout ([`ParamLayout`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Values (`sign * theta` where rewired).
    pub params: Vec<f32>,
    /// DEEP R magnitudes (0 outside rewired arrays).
    pub theta: Vec<f32>,
    /// Adam's first moments.
    pub adam_m: Vec<f64>,
    /// Adam's second moments.
    pub adam_v: Vec<f64>,
}

/// A batch: input events, loss terms, the rate regulariser and the fixtures' linear loss.
#[derive(Clone, Copy, Debug)]
pub struct BatchInput<'a> {
    /// Input events.
    pub input: &'a PackedInput,
    /// Loss terms.
    pub terms: &'a PackedTerms,
    /// `(coefficient per neuron, target rate per ms)`.
    pub regulariser: Option<(&'a [f32], f32)>,
    /// `(c_z, c_v)`, each `[T * N]`: the loss `sum c_z z + c_v v` of every element.
    pub linear: Option<(&'a [f32], &'a [f32])>,
}

/// Loss and metrics of a pass.
#[derive(Clone, Debug, PartialEq)]
pub struct PassOutput {
    /// Total loss.
    pub loss: f32,
    /// Cross-entropy part.
    pub loss_ce: f32,
    /// Regulariser part.
    pub loss_reg: f32,
    /// Linear part (fixtures).
    pub loss_linear: f32,
    /// Firing rate per neuron, spikes per ms.
    pub rates: Vec<f32>,
    /// Logits `[Q * O]`, terms in order.
    pub logits: Vec<f32>,
}

/// What an update did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Parameters updated.
    Applied,
    /// The loss was not finite: nothing was updated.
    NonFiniteLoss,
    /// A gradient was not finite (the first in flat order): nothing was updated.
    NonFiniteGradient {
        /// The array.
        param: Param,
        /// The entry within it.
        index: usize,
    },
}

/// The result of a training iteration.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutput {
    /// Loss and metrics (computed before the update).
    pub pass: PassOutput,
    /// Whether the update happened.
    pub outcome: Outcome,
    /// Connections of the rewired matrices after the step.
    pub n_connected: Option<usize>,
}

struct BatchBuffers {
    n_batch: usize,
    n_steps: usize,
    n_terms: usize,
    max_terms: usize,
    events_capacity: usize,
    n_events: usize,
    has_reg: bool,
    reg_target: f32,
    has_linear: bool,
    in_offsets: DeviceBuffer<u32>,
    in_channels: DeviceBuffer<u32>,
    in_values: DeviceBuffer<f32>,
    term_offsets: DeviceBuffer<u32>,
    terms: DeviceBuffer<[u32; 4]>,
    st_v: DeviceBuffer<f32>,
    st_z: DeviceBuffer<f32>,
    st_b: DeviceBuffer<f32>,
    st_ring: DeviceBuffer<f32>,
    st_refr: DeviceBuffer<i32>,
    tr_v: DeviceBuffer<f32>,
    tr_b: DeviceBuffer<f32>,
    tr_spk: DeviceBuffer<u32>,
    tr_ref: DeviceBuffer<u32>,
    z0: DeviceBuffer<f32>,
    zsum: DeviceBuffer<f32>,
    lin_part: DeviceBuffer<f32>,
    psp_sum: DeviceBuffer<f32>,
    logits: DeviceBuffer<f32>,
    dlogits: DeviceBuffer<f32>,
    ce: DeviceBuffer<f32>,
    lin_cz: DeviceBuffer<f32>,
    lin_cv: DeviceBuffer<f32>,
    partial: DeviceBuffer<f32>,
}

impl BatchBuffers {
    fn ptrs(&self) -> BatchPtrs {
        BatchPtrs {
            in_offsets: ptr(&self.in_offsets),
            in_channels: ptr(&self.in_channels),
            in_values: ptr(&self.in_values),
            term_offsets: ptr(&self.term_offsets),
            terms: ptr(&self.terms),
            st_v: ptr(&self.st_v),
            st_z: ptr(&self.st_z),
            st_b: ptr(&self.st_b),
            st_ring: ptr(&self.st_ring),
            st_refr: ptr(&self.st_refr),
            tr_v: ptr(&self.tr_v),
            tr_b: ptr(&self.tr_b),
            tr_spk: ptr(&self.tr_spk),
            tr_ref: ptr(&self.tr_ref),
            z0: ptr(&self.z0),
            zsum: ptr(&self.zsum),
            lin_part: ptr(&self.lin_part),
            psp_sum: ptr(&self.psp_sum),
            logits: ptr(&self.logits),
            dlogits: ptr(&self.dlogits),
            ce: ptr(&self.ce),
            lin_cz: ptr(&self.lin_cz),
            lin_cv: ptr(&self.lin_cv),
            partial: ptr(&self.partial),
        }
    }

    fn shape(&self) -> BatchShape {
        BatchShape {
            n_batch: self.n_batch,
            n_steps: self.n_steps,
            n_terms: self.n_terms,
            max_terms: self.max_terms,
            has_reg: self.has_reg,
            reg_target: self.reg_target,
            has_linear: self.has_linear,
        }
    }

    fn new(
        dims: &Dims,
        n_params: usize,
        n_batch: usize,
        n_steps: usize,
        n_terms: usize,
        events: usize,
    ) -> Result<BatchBuffers, GpuError> {
        let (n, d, w, o) = (dims.n_rec, dims.n_delay, dims.words(), dims.n_out);
        let bn = n_batch * n;
        let rows = n_batch * (n_steps + 1);
        Ok(BatchBuffers {
            n_batch,
            n_steps,
            n_terms,
            max_terms: 0,
            events_capacity: events.max(1),
            n_events: 0,
            has_reg: false,
            reg_target: 0.0,
            has_linear: false,
            in_offsets: alloc(n_batch * n_steps + 1, "input offsets")?,
            in_channels: alloc(events, "input channels")?,
            in_values: alloc(events, "input values")?,
            term_offsets: alloc(n_batch + 1, "term offsets")?,
            terms: alloc(n_terms, "terms")?,
            st_v: alloc(bn, "state v")?,
            st_z: alloc(bn, "state z")?,
            st_b: alloc(bn, "state b")?,
            st_ring: alloc(bn * d, "state ring")?,
            st_refr: alloc(bn, "state refractory")?,
            tr_v: alloc(rows * n, "trace v")?,
            tr_b: alloc(rows * n, "trace b")?,
            tr_spk: alloc(rows * w, "trace spikes")?,
            tr_ref: alloc(n_batch * n_steps * w, "trace refractory")?,
            z0: alloc(bn, "z0")?,
            zsum: alloc(bn, "zsum")?,
            lin_part: alloc(bn, "linear loss parts")?,
            psp_sum: alloc(n_terms * n, "window sums")?,
            logits: alloc(n_terms * o, "logits")?,
            dlogits: alloc(n_terms * o, "dlogits")?,
            ce: alloc(n_terms, "cross-entropies")?,
            lin_cz: alloc(n_steps * n, "c_z")?,
            lin_cv: alloc(n_steps * n, "c_v")?,
            partial: alloc(n_batch * n_params, "gradient partials")?,
        })
    }
}

/// Pinned host memory for the input events, double buffered so the next batch can be staged
/// while the current one's copy may still be in flight.
struct Staging {
    offsets: LockedBuffer<u32>,
    channels: LockedBuffer<u32>,
    values: LockedBuffer<f32>,
    done: Event,
}

impl Staging {
    fn new(offsets: usize, events: usize) -> Result<Staging, GpuError> {
        Ok(Staging {
            offsets: LockedBuffer::new(&0, offsets.max(1)).ctx("cuMemHostAlloc")?,
            channels: LockedBuffer::new(&0, events.max(1)).ctx("cuMemHostAlloc")?,
            values: LockedBuffer::new(&0.0, events.max(1)).ctx("cuMemHostAlloc")?,
            done: Event::new(EventFlags::DISABLE_TIMING).ctx("cuEventCreate")?,
        })
    }
}

/// A network on the GPU: weights, DEEP R state and Adam moments stay on the device between
/// iterations; a batch is uploaded, and an iteration returns its loss and metrics.
pub struct GpuTrainer {
    dims: Dims,
    layout: ParamLayout,
    consts: KernelConsts,
    neurons: DeviceBuffer<[f32; 4]>,
    syn: DeviceBuffer<[f32; 2]>,
    rec_rows: DeviceBuffer<[f32; 2]>,
    rec_count: DeviceBuffer<u32>,
    set: UpdateSet,
    metrics: DeviceBuffer<f32>,
    rates: DeviceBuffer<f32>,
    reg_grad: DeviceBuffer<f32>,
    reg_coeff: DeviceBuffer<f32>,
    batch: Option<BatchBuffers>,
    staging: Vec<Staging>,
    parity: usize,
    pending: Option<bool>,
    // Dropped last.
    gpu: Gpu,
}

impl GpuTrainer {
    /// Uploads a network: its fixed part, its parameters (rewired matrices given by their
    /// magnitudes and signs) and a fresh optimiser.
    pub fn new(
        spec: &NetworkSpec<'_>,
        values: &ParamValues<'_>,
        rewired: &[Rewired<'_>],
        optimizer: OptimizerKind,
    ) -> Result<GpuTrainer, GpuError> {
        if spec.config.injected_noise_current != 0.0 {
            return Err(GpuError::Unsupported(
                "injected current noise (injected_noise_current > 0)".into(),
            ));
        }
        spec.config
            .validate()
            .map_err(|e| GpuError::shape("cell parameters", e.to_string()))?;
        let dims = Dims {
            n_in: spec.n_in,
            n_rec: spec.neurons.len(),
            n_out: spec.n_out,
            n_delay: spec.config.n_delay,
            n_refractory: spec.config.n_refractory,
            has_bias: spec.has_bias,
        };
        dims.validate()?;
        let layout = dims.params();
        let (flat, theta, sign, segments) = flatten_params(&layout, values, rewired)?;
        let syn_host = pack_synapses(
            &dims,
            &flat[layout.range(Param::WIn).expect("always")],
            &flat[layout.range(Param::WRec).expect("always")],
            spec.delay_in,
            spec.delay_rec,
            spec.config.v0,
        )?;
        let gpu = Gpu::new()?;
        let n = dims.n_rec;
        Ok(GpuTrainer {
            consts: KernelConsts::new(&spec.config, spec.tau_out),
            neurons: upload(&neuron_table(spec.neurons), "neurons")?,
            syn: upload(&syn_host, "synapses")?,
            rec_rows: alloc(n * n, "recurrent rows")?,
            rec_count: alloc(n, "recurrent row lengths")?,
            set: UpdateSet::new(segments, optimizer, &flat, &theta, &sign)?,
            metrics: alloc(4, "metrics")?,
            rates: alloc(n, "rates")?,
            reg_grad: alloc(n, "regulariser gradient")?,
            reg_coeff: alloc(n, "regulariser coefficients")?,
            batch: None,
            staging: Vec::new(),
            parity: 0,
            pending: None,
            dims,
            layout,
            gpu,
        })
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        self.gpu.name()
    }

    /// The network's sizes.
    pub fn dims(&self) -> &Dims {
        &self.dims
    }

    /// The flat parameter layout of snapshots and gradients.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// DEEP R's budget (connections kept by every step), if anything is rewired.
    pub fn budget(&self) -> Option<usize> {
        self.set
            .segments
            .any_rewired()
            .then_some(self.set.segments.budget as usize)
    }

    fn rec_bound(&self) -> usize {
        rec_bound(&self.layout, &self.set.segments, self.dims.n_rec)
    }

    fn step_plans(&self, s: &BatchShape) -> Result<(ForwardPlan, BackwardPlan), GpuError> {
        let bound = self.rec_bound();
        step_plans(
            &self.dims,
            s.n_batch,
            s.max_terms,
            self.gpu.shared_limit,
            bound,
        )
    }

    /// Replaces the parameters (and the effective weights); the rewired arrays and their
    /// connectivities must be those given at construction.
    pub fn upload_params(
        &mut self,
        values: &ParamValues<'_>,
        rewired: &[Rewired<'_>],
    ) -> Result<(), GpuError> {
        self.gpu.make_current()?;
        self.gpu.synchronize()?;
        let (flat, theta, sign, segments) = flatten_params(&self.layout, values, rewired)?;
        if segments != self.set.segments {
            return Err(GpuError::shape(
                "rewired arrays",
                "differ from those the trainer was built with",
            ));
        }
        write(&mut self.set.params, &flat, "params")?;
        write(&mut self.set.theta, &theta, "theta")?;
        write(&mut self.set.sign, &sign, "sign")?;
        let mut syn = download(
            &self.syn,
            self.dims.syn_rows() * self.dims.n_rec,
            "synapses",
        )?;
        let v0 = self.consts.v0;
        let (i, n) = (self.dims.n_in, self.dims.n_rec);
        for (p, s) in syn.iter_mut().enumerate() {
            let w = flat[p];
            s[0] = if p >= i * n && (p - i * n) / n == (p - i * n) % n {
                0.0
            } else {
                w * v0
            };
        }
        write(&mut self.syn, &syn, "synapses")
    }

    /// Replaces Adam's moments (flat layout).
    pub fn upload_moments(&mut self, m: &[f64], v: &[f64]) -> Result<(), GpuError> {
        let len = self.layout.len();
        if m.len() != len || v.len() != len {
            return Err(GpuError::shape(
                "Adam moments",
                format!("expected {len} entries"),
            ));
        }
        self.gpu.make_current()?;
        self.gpu.synchronize()?;
        write(&mut self.set.adam_m, m, "adam m")?;
        write(&mut self.set.adam_v, v, "adam v")
    }

    /// Downloads parameters, magnitudes and moments.
    pub fn snapshot(&self) -> Result<Snapshot, GpuError> {
        self.gpu.make_current()?;
        self.gpu.synchronize()?;
        let len = self.layout.len();
        Ok(Snapshot {
            params: download(&self.set.params, len, "params")?,
            theta: download(&self.set.theta, len, "theta")?,
            adam_m: download(&self.set.adam_m, len, "adam m")?,
            adam_v: download(&self.set.adam_v, len, "adam v")?,
        })
    }

    /// Uploads a batch (reallocating when its shape changes): input events (through pinned
    /// memory, asynchronously), loss terms, regulariser, linear loss. The state is left as it
    /// was if the shape is unchanged, else zeroed. A batch that fails its checks leaves the
    /// current one untouched.
    pub fn set_batch(&mut self, batch: &BatchInput<'_>) -> Result<(), GpuError> {
        self.gpu.make_current()?;
        let (input, terms) = (batch.input, batch.terms);
        if input.n_batch == 0 || input.n_steps == 0 {
            return Err(GpuError::shape(
                "batch",
                "needs at least one element and one step",
            ));
        }
        input.check(self.dims.n_in)?;
        self.check_targets(
            input.n_batch,
            input.n_steps,
            terms,
            batch.regulariser,
            batch.linear,
        )?;
        // The buffers replaced or written below are read by queued work.
        self.gpu.synchronize()?;
        let reshape = self.batch.as_ref().is_none_or(|b| {
            b.n_batch != input.n_batch || b.n_steps != input.n_steps || b.n_terms != terms.len()
        });
        if reshape {
            self.batch = None;
            let bb = BatchBuffers::new(
                &self.dims,
                self.layout.len(),
                input.n_batch,
                input.n_steps,
                terms.len(),
                input.n_events(),
            )?;
            self.batch = Some(bb);
        }
        self.write_targets(terms, batch.regulariser, batch.linear)?;
        self.queue_input(input)
    }

    /// Uploads the loss terms, regulariser and linear loss of the batch whose input events
    /// [`GpuTrainer::stage_input`] queued (same B, T and number of terms as the current batch;
    /// else [`GpuTrainer::set_batch`]), so that a batch prepared during a step needs only
    /// these small copies before the next. Everything is checked before anything is written.
    pub fn set_targets(
        &mut self,
        terms: &PackedTerms,
        regulariser: Option<(&[f32], f32)>,
        linear: Option<(&[f32], &[f32])>,
    ) -> Result<(), GpuError> {
        self.gpu.make_current()?;
        let bb = self.batch()?;
        let (n_batch, n_steps, n_terms) = (bb.n_batch, bb.n_steps, bb.n_terms);
        if terms.len() != n_terms {
            return Err(GpuError::shape(
                "loss terms",
                format!(
                    "{} terms, the batch has {n_terms} (else set_batch)",
                    terms.len()
                ),
            ));
        }
        self.check_targets(n_batch, n_steps, terms, regulariser, linear)?;
        // The buffers written below are read by queued work.
        self.gpu.synchronize()?;
        self.write_targets(terms, regulariser, linear)
    }

    /// Writes targets that [`GpuTrainer::check_targets`] passed for the current batch, after
    /// the work that reads them (the callers synchronise).
    fn write_targets(
        &mut self,
        terms: &PackedTerms,
        regulariser: Option<(&[f32], f32)>,
        linear: Option<(&[f32], &[f32])>,
    ) -> Result<(), GpuError> {
        let bb = current(self.batch.as_mut())?;
        bb.max_terms = terms.max_per_element;
        write(&mut bb.term_offsets, &terms.offsets, "term offsets")?;
        write(&mut bb.terms, &terms.terms, "terms")?;
        bb.has_reg = regulariser.is_some();
        if let Some((coeff, target)) = regulariser {
            write(&mut self.reg_coeff, coeff, "regulariser coefficients")?;
            bb.reg_target = target;
        }
        bb.has_linear = linear.is_some();
        if let Some((c_z, c_v)) = linear {
            write(&mut bb.lin_cz, c_z, "c_z")?;
            write(&mut bb.lin_cv, c_v, "c_v")?;
        }
        Ok(())
    }

    /// Checks a batch's loss terms, regulariser and linear loss against its B and T, and the
    /// launch geometry its terms need (now, not at the first launch), before anything of it is
    /// written.
    fn check_targets(
        &self,
        n_batch: usize,
        n_steps: usize,
        terms: &PackedTerms,
        regulariser: Option<(&[f32], f32)>,
        linear: Option<(&[f32], &[f32])>,
    ) -> Result<(), GpuError> {
        terms.check(n_batch, n_steps, self.dims.n_out)?;
        check_loss_extras(
            self.dims.n_rec,
            n_steps,
            regulariser.map(|(coeff, _)| coeff),
            linear,
        )?;
        step_plans(
            &self.dims,
            n_batch,
            terms.max_per_element,
            self.gpu.shared_limit,
            self.rec_bound(),
        )?;
        Ok(())
    }

    /// Whether the current batch has this shape (B, T, number of loss terms): a batch of it
    /// can be staged with [`GpuTrainer::stage_input`] and completed by
    /// [`GpuTrainer::set_targets`].
    pub fn holds_batch_shape(&self, n_batch: usize, n_steps: usize, n_terms: usize) -> bool {
        self.batch
            .as_ref()
            .is_some_and(|b| (b.n_batch, b.n_steps, b.n_terms) == (n_batch, n_steps, n_terms))
    }

    /// Stages the input events of the next batch (same B and T as the current one) and queues
    /// their copy after the work already on the stream: call it while an iteration runs
    /// ([`GpuTrainer::launch_step`] ... [`GpuTrainer::finish_step`]) to overlap encoding and
    /// copying with the GPU.
    pub fn stage_input(&mut self, input: &PackedInput) -> Result<(), GpuError> {
        self.gpu.make_current()?;
        let bb = current(self.batch.as_mut())?;
        if input.n_batch != bb.n_batch || input.n_steps != bb.n_steps {
            return Err(GpuError::shape(
                "input",
                "B and T differ from the batch's: set_batch",
            ));
        }
        input.check(self.dims.n_in)?;
        self.queue_input(input)
    }

    /// Stages and queues the copy of input events checked against the current batch
    /// ([`GpuTrainer::stage_input`], [`GpuTrainer::set_batch`]).
    fn queue_input(&mut self, input: &PackedInput) -> Result<(), GpuError> {
        let bb = current(self.batch.as_mut())?;
        let events = input.n_events();
        if events > bb.events_capacity {
            // Growing replaces buffers that queued work may read: wait for it.
            self.gpu.synchronize()?;
            let cap = events.next_power_of_two();
            bb.in_channels = alloc(cap, "input channels")?;
            bb.in_values = alloc(cap, "input values")?;
            bb.events_capacity = cap;
        }
        let k = self.parity;
        self.parity ^= 1;
        while self.staging.len() < 2 {
            self.staging
                .push(Staging::new(input.offsets.len(), events)?);
        }
        let st = &mut self.staging[k];
        // The copy that last used this staging buffer must be done before it is overwritten.
        st.done.synchronize().ctx("cuEventSynchronize")?;
        if st.offsets.len() < input.offsets.len() || st.channels.len() < events.max(1) {
            *st = Staging::new(input.offsets.len(), events.max(st.channels.len()))?;
        }
        st.offsets.as_mut_slice()[..input.offsets.len()].copy_from_slice(&input.offsets);
        st.channels.as_mut_slice()[..events].copy_from_slice(&input.channels);
        st.values.as_mut_slice()[..events].copy_from_slice(&input.values);
        let stream = &self.gpu.stream;
        // SAFETY: pinned sources that stay untouched until `done` has completed (checked above
        // before any reuse; the buffers are only dropped with the trainer, after the
        // synchronisation in Drop); destinations sized for these lengths.
        unsafe {
            bb.in_offsets
                .index(0..input.offsets.len())
                .async_copy_from(&st.offsets.as_slice()[..input.offsets.len()], stream)
                .ctx("input offsets copy")?;
            if events > 0 {
                bb.in_channels
                    .index(0..events)
                    .async_copy_from(&st.channels.as_slice()[..events], stream)
                    .ctx("input channels copy")?;
                bb.in_values
                    .index(0..events)
                    .async_copy_from(&st.values.as_slice()[..events], stream)
                    .ctx("input values copy")?;
            }
        }
        st.done.record(stream).ctx("cuEventRecord")?;
        bb.n_events = events;
        Ok(())
    }

    /// Sets the batch's initial state.
    pub fn set_state(&mut self, state: &BatchState) -> Result<(), GpuError> {
        state.check(&self.dims)?;
        self.gpu.make_current()?;
        self.gpu.synchronize()?;
        let bb = current(self.batch.as_mut())?;
        if state.n_batch != bb.n_batch {
            return Err(GpuError::shape(
                "state",
                "batch size differs from the batch's",
            ));
        }
        write(&mut bb.st_v, &state.v, "state v")?;
        write(&mut bb.st_z, &state.z, "state z")?;
        write(&mut bb.st_b, &state.b, "state b")?;
        write(&mut bb.st_ring, &state.ring, "state ring")?;
        write(&mut bb.st_refr, &state.refractory_left, "state refractory")
    }

    /// Zeroes the batch's state (queued on the stream).
    pub fn zero_state(&mut self) -> Result<(), GpuError> {
        self.gpu.make_current()?;
        let stream = &self.gpu.stream;
        let bb = current(self.batch.as_mut())?;
        // SAFETY: memsets queued on the stream that also runs the kernels reading them.
        unsafe {
            bb.st_v.set_zero_async(stream).ctx("memset")?;
            bb.st_z.set_zero_async(stream).ctx("memset")?;
            bb.st_b.set_zero_async(stream).ctx("memset")?;
            bb.st_ring.set_zero_async(stream).ctx("memset")?;
            bb.st_refr.set_zero_async(stream).ctx("memset")?;
        }
        Ok(())
    }

    /// The state after the last pass.
    pub fn state(&self) -> Result<BatchState, GpuError> {
        self.gpu.make_current()?;
        self.gpu.synchronize()?;
        let bb = self.batch()?;
        let bn = bb.n_batch * self.dims.n_rec;
        Ok(BatchState {
            n_batch: bb.n_batch,
            v: download(&bb.st_v, bn, "state v")?,
            z: download(&bb.st_z, bn, "state z")?,
            b: download(&bb.st_b, bn, "state b")?,
            ring: download(&bb.st_ring, bn * self.dims.n_delay, "state ring")?,
            refractory_left: download(&bb.st_refr, bn, "state refractory")?,
        })
    }

    /// The trace of the last pass that recorded one.
    pub fn trace(&self) -> Result<Trace, GpuError> {
        self.gpu.make_current()?;
        self.gpu.synchronize()?;
        let bb = self.batch()?;
        let (n, w) = (self.dims.n_rec, self.dims.words());
        let rows = bb.n_batch * (bb.n_steps + 1);
        Ok(Trace {
            n_batch: bb.n_batch,
            n_steps: bb.n_steps,
            n_rec: n,
            spike: self.consts.spike,
            v: download(&bb.tr_v, rows * n, "trace v")?,
            b: download(&bb.tr_b, rows * n, "trace b")?,
            spikes: download(&bb.tr_spk, rows * w, "trace spikes")?,
            refractory: download(&bb.tr_ref, bb.n_batch * bb.n_steps * w, "trace refractory")?,
            z0: download(&bb.z0, bb.n_batch * n, "z0")?,
        })
    }

    fn batch(&self) -> Result<&BatchBuffers, GpuError> {
        current(self.batch.as_ref())
    }

    fn net_ptrs(&self) -> NetPtrs {
        NetPtrs {
            neurons: ptr(&self.neurons),
            syn: ptr(&self.syn),
            rec_rows: ptr(&self.rec_rows),
            rec_count: ptr(&self.rec_count),
            metrics: ptr(&self.metrics),
            rates: ptr(&self.rates),
            reg_grad: ptr(&self.reg_grad),
            reg_coeff: ptr(&self.reg_coeff),
            ..self.set.ptrs()
        }
    }

    fn syn_target(&self) -> SynTarget {
        (
            ptr(&self.syn),
            self.dims.n_in as u32,
            self.dims.n_rec as u32,
            self.consts.v0,
        )
    }

    fn queue_forward(&self, record_trace: bool) -> Result<(), GpuError> {
        let bb = self.batch()?;
        let (d, k, l) = (&self.dims, &self.consts, &self.layout);
        let (net, b, s) = (self.net_ptrs(), bb.ptrs(), bb.shape());
        let (plan, _) = self.step_plans(&s)?;
        let args = launch::forward_args(d, k, l, &net, &b, &s, &plan, record_trace);
        self.gpu.launch(
            &self.gpu.forward,
            step_entry(StepKernel::Forward, plan.launch.block),
            plan.launch,
            args,
        )?;
        let args = launch::loss_args(d, k, &net, &b, &s);
        self.gpu
            .launch(&self.gpu.loss, "lsnn_loss", launch::one_block(), args)
    }

    /// The connected recurrent synapses of each row, from the current weights (the backward's
    /// recurrent adjoint reads them).
    fn queue_rec_rows(&self) -> Result<(), GpuError> {
        let func = self
            .gpu
            .backward
            .get_function("lsnn_rec_rows")
            .ctx("lsnn_rec_rows")?;
        let stream = &self.gpu.stream;
        let (n_in, n_rec) = (self.dims.n_in as u32, self.dims.n_rec as u32);
        let (syn, rows, count) = (ptr(&self.syn), ptr(&self.rec_rows), ptr(&self.rec_count));
        // SAFETY: syn holds (I + N) * N entries, rows N * N and count N (allocated in `new`).
        unsafe {
            launch!(func<<<n_rec, 32u32, 0u32, stream>>>(syn, n_in, n_rec, rows, count))
                .ctx("lsnn_rec_rows")?;
        }
        if self.gpu.sync_each_launch {
            self.gpu.synchronize()?;
        }
        Ok(())
    }

    fn queue_gradients(&self, poison: Option<usize>) -> Result<(), GpuError> {
        let bb = self.batch()?;
        let (d, k, l) = (&self.dims, &self.consts, &self.layout);
        let (net, b, s) = (self.net_ptrs(), bb.ptrs(), bb.shape());
        self.queue_rec_rows()?;
        let (_, plan) = self.step_plans(&s)?;
        let args = launch::backward_args(d, k, l, &net, &b, &s, &plan);
        self.gpu.launch(
            &self.gpu.backward,
            step_entry(StepKernel::Backward, plan.launch.block),
            plan.launch,
            args,
        )?;
        let args = launch::reduce_args(d, k, l, &net, &b, &s, poison);
        let plan = elementwise_plan(l.len());
        self.gpu
            .launch(&self.gpu.update, "lsnn_reduce_grads", plan, args)
    }

    fn read_pass(&self) -> Result<PassOutput, GpuError> {
        let bb = self.batch()?;
        let m = download(&self.metrics, 4, "metrics")?;
        Ok(PassOutput {
            loss: m[0],
            loss_ce: m[1],
            loss_reg: m[2],
            loss_linear: m[3],
            rates: download(&self.rates, self.dims.n_rec, "rates")?,
            logits: download(&bb.logits, bb.n_terms * self.dims.n_out, "logits")?,
        })
    }

    /// A forward pass from the current state (left at the final state): loss and metrics,
    /// and the trace when `record_trace` ([`GpuTrainer::trace`]).
    pub fn forward(&mut self, record_trace: bool) -> Result<PassOutput, GpuError> {
        self.gpu.make_current()?;
        self.set.clear(&self.gpu)?;
        self.queue_forward(record_trace)?;
        self.gpu.synchronize()?;
        self.read_pass()
    }

    /// Forward and backward without an update: the loss and dL/d(params) in the flat layout
    /// (as the host's `run_pass` with gradients: V0 applied, w_rec diagonal 0).
    pub fn gradients(&mut self) -> Result<(PassOutput, Vec<f32>), GpuError> {
        self.gpu.make_current()?;
        self.set.clear(&self.gpu)?;
        self.queue_forward(true)?;
        self.queue_gradients(None)?;
        self.gpu.synchronize()?;
        let pass = self.read_pass()?;
        Ok((
            pass,
            download(&self.set.grad, self.layout.len(), "gradients")?,
        ))
    }

    /// Queues one training iteration (forward, loss, backward, reduction, optimiser, DEEP R);
    /// [`GpuTrainer::finish_step`] waits for it.
    pub fn launch_step(&mut self, cfg: &StepConfig) -> Result<(), GpuError> {
        self.launch_step_poisoned(cfg, None)
    }

    /// Test support, not for training: [`GpuTrainer::launch_step`] with the flat gradient
    /// entry `entry` made NaN after the reduction, to prove the guard that skips the update.
    #[doc(hidden)]
    pub fn launch_step_with_nan_gradient(
        &mut self,
        cfg: &StepConfig,
        entry: usize,
    ) -> Result<(), GpuError> {
        if entry >= self.layout.len() {
            return Err(GpuError::shape("entry", "outside the parameters"));
        }
        self.launch_step_poisoned(cfg, Some(entry))
    }

    fn launch_step_poisoned(
        &mut self,
        cfg: &StepConfig,
        poison: Option<usize>,
    ) -> Result<(), GpuError> {
        self.gpu.make_current()?;
        if cfg.step == 0 {
            return Err(GpuError::shape("step", "updates are numbered from 1"));
        }
        self.set.clear(&self.gpu)?;
        self.queue_forward(true)?;
        self.queue_gradients(poison)?;
        let syn = self.syn_target();
        self.set.launch_update(&self.gpu, cfg, syn)?;
        self.set.launch_reconnect(&self.gpu, cfg, syn)?;
        self.pending = Some(self.set.segments.any_rewired());
        Ok(())
    }

    /// Waits for the iteration queued by [`GpuTrainer::launch_step`] and reads its results.
    pub fn finish_step(&mut self) -> Result<StepOutput, GpuError> {
        self.gpu.make_current()?;
        let rewired = self
            .pending
            .take()
            .ok_or_else(|| GpuError::shape("step", "launch_step first"))?;
        self.gpu.synchronize()?;
        let pass = self.read_pass()?;
        let (flags, n_connected) = self.set.read_flags()?;
        let outcome = if flags[2] != 0 {
            Outcome::NonFiniteLoss
        } else if flags[0] != 0 {
            let (param, index) = self
                .layout
                .locate(flags[1] as usize)
                .ok_or_else(|| GpuError::shape("flags", "bad non-finite index"))?;
            Outcome::NonFiniteGradient { param, index }
        } else {
            Outcome::Applied
        };
        Ok(StepOutput {
            pass,
            n_connected: (rewired && outcome == Outcome::Applied).then_some(n_connected as usize),
            outcome,
        })
    }

    /// One training iteration: [`GpuTrainer::launch_step`] then [`GpuTrainer::finish_step`].
    pub fn train_step(&mut self, cfg: &StepConfig) -> Result<StepOutput, GpuError> {
        self.launch_step(cfg)?;
        self.finish_step()
    }
}

impl Drop for GpuTrainer {
    fn drop(&mut self) {
        // Queued copies read the pinned staging buffers: let them finish first.
        let _ = self.gpu.make_current();
        let _ = self.gpu.synchronize();
    }
}

/// Flat values, magnitudes, signs and the segments of a network's parameters.
pub(crate) type FlatParams = (Vec<f32>, Vec<f32>, Vec<f32>, Segments);

/// The flat values, magnitudes, signs and segments of a network's parameters.
pub(crate) fn flatten_params(
    layout: &ParamLayout,
    values: &ParamValues<'_>,
    rewired: &[Rewired<'_>],
) -> Result<FlatParams, GpuError> {
    let mut flat = layout.flatten(values.w_in, values.w_rec, values.w_out, values.b_out)?;
    let len = flat.len();
    let (mut theta, mut sign) = (vec![0.0f32; len], vec![0.0f32; len]);
    let mut parts = Vec::new();
    for p in layout.params() {
        let r = layout.range(p).expect("present");
        let found: Vec<&Rewired<'_>> = rewired.iter().filter(|m| m.param == p).collect();
        match found.as_slice() {
            [] => parts.push((r.len(), None)),
            [m] => {
                if m.theta.len() != r.len() || m.sign.len() != r.len() {
                    return Err(GpuError::shape(
                        "rewired matrix",
                        format!("{}: theta and sign need {} entries", p.name(), r.len()),
                    ));
                }
                theta[r.clone()].copy_from_slice(m.theta);
                sign[r.clone()].copy_from_slice(m.sign);
                for (k, w) in flat[r.clone()].iter_mut().enumerate() {
                    let t = m.theta[k];
                    *w = if t > 0.0 { m.sign[k] * t } else { 0.0 };
                }
                parts.push((r.len(), Some(m.connectivity)));
            }
            _ => {
                return Err(GpuError::shape(
                    "rewired matrix",
                    format!("{} given twice", p.name()),
                ))
            }
        }
    }
    Ok((flat, theta, sign, Segments::new(&parts)?))
}

/// A bare parameter set on the device with the update kernels (optimiser and DEEP R), without a
/// network: what the DEEP R fixture checks.
pub struct DeviceParamSet {
    set: UpdateSet,
    gpu: Gpu,
}

/// One array of a [`DeviceParamSet`].
#[derive(Clone, Copy, Debug)]
pub struct SetPart<'a> {
    /// Values (magnitudes theta when rewired).
    pub values: &'a [f32],
    /// `Some((sign, connectivity))` for a DEEP R matrix.
    pub rewired: Option<(&'a [f32], f64)>,
}

impl DeviceParamSet {
    /// Uploads the arrays with a fresh optimiser.
    pub fn new(
        parts: &[SetPart<'_>],
        optimizer: OptimizerKind,
    ) -> Result<DeviceParamSet, GpuError> {
        let gpu = Gpu::new()?;
        let mut params = Vec::new();
        let (mut theta, mut sign) = (Vec::new(), Vec::new());
        let mut seg = Vec::new();
        for part in parts {
            match part.rewired {
                Some((s, p)) => {
                    if s.len() != part.values.len() {
                        return Err(GpuError::shape("sign", "one per magnitude"));
                    }
                    params.extend(
                        part.values
                            .iter()
                            .zip(s)
                            .map(|(&t, &s)| if t > 0.0 { s * t } else { 0.0 }),
                    );
                    theta.extend_from_slice(part.values);
                    sign.extend_from_slice(s);
                    seg.push((part.values.len(), Some(p)));
                }
                None => {
                    params.extend_from_slice(part.values);
                    theta.extend(std::iter::repeat_n(0.0, part.values.len()));
                    sign.extend(std::iter::repeat_n(0.0, part.values.len()));
                    seg.push((part.values.len(), None));
                }
            }
        }
        let segments = Segments::new(&seg)?;
        Ok(DeviceParamSet {
            set: UpdateSet::new(segments, optimizer, &params, &theta, &sign)?,
            gpu,
        })
    }

    /// One step with gradients dL/dw (flat, parts in order): the optimiser and DEEP R's guard
    /// and l1 (+ noise), then the reconnection. Returns the values after the update and
    /// before the reconnection (magnitudes for rewired parts) and the connections after it.
    pub fn step(
        &mut self,
        grads: &[f32],
        cfg: &StepConfig,
    ) -> Result<(Vec<f32>, Option<usize>), GpuError> {
        self.gpu.make_current()?;
        if grads.len() != self.set.len {
            return Err(GpuError::shape(
                "gradients",
                format!("expected {}", self.set.len),
            ));
        }
        write(&mut self.set.grad, grads, "gradients")?;
        self.set.clear(&self.gpu)?;
        let no_syn = (0, 0, 0, 1.0);
        self.set.launch_update(&self.gpu, cfg, no_syn)?;
        self.gpu.synchronize()?;
        let params = download(&self.set.params, self.set.len, "params")?;
        let theta = download(&self.set.theta, self.set.len, "theta")?;
        let after: Vec<f32> = (0..self.set.len)
            .map(|p| {
                let s = (0..self.set.segments.n as usize)
                    .find(|&s| self.set.segments.range(s).contains(&p))
                    .unwrap_or(0);
                if self.set.segments.rewired_mask >> s & 1 == 1 {
                    theta[p]
                } else {
                    params[p]
                }
            })
            .collect();
        self.set.launch_reconnect(&self.gpu, cfg, no_syn)?;
        self.gpu.synchronize()?;
        let (_, n) = self.set.read_flags()?;
        Ok((after, self.set.segments.any_rewired().then_some(n as usize)))
    }

    /// The current `(values, magnitudes)` (after the last reconnection; magnitudes are 0
    /// outside rewired parts).
    pub fn current(&self) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
        self.gpu.make_current()?;
        self.gpu.synchronize()?;
        Ok((
            download(&self.set.params, self.set.len, "params")?,
            download(&self.set.theta, self.set.len, "theta")?,
        ))
    }
}
