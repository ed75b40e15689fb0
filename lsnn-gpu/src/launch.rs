//! The arguments of every launch, from a table of buffer addresses: shared by the CUDA launcher
//! ([`crate::trainer`]) and the CPU emulator of the tests, so both run the kernels with the
//! same arguments. Pure functions: no CUDA here.

use crate::args::{
    BackwardArgs, ForwardArgs, LossArgs, ReconnectArgs, ReduceArgs, UpdateArgs, OPT_ADAM, OPT_SGD,
};
use crate::layout::{
    adam_lr_t, BackwardPlan, Dims, ForwardPlan, KernelConsts, LaunchPlan, Param, ParamLayout,
    Segments, SMALL_BLOCK,
};
use crate::step::{OptimizerKind, StepConfig};

/// Addresses of a network's buffers (0 = absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetPtrs {
    /// `[N]` float4 neuron constants.
    pub neurons: u64,
    /// `[(I + N) * N]` float2 synapses.
    pub syn: u64,
    /// `[N * N]` float2: the connected recurrent synapses of each row (`lsnn_rec_rows`).
    pub rec_rows: u64,
    /// `[N]` u32: how many of them.
    pub rec_count: u64,
    /// `[P]` parameters.
    pub params: u64,
    /// `[P]` DEEP R magnitudes.
    pub theta: u64,
    /// `[P]` DEEP R signs.
    pub sign: u64,
    /// `[P]` gradients.
    pub grad: u64,
    /// `[P]` f64 first moments.
    pub adam_m: u64,
    /// `[P]` f64 second moments.
    pub adam_v: u64,
    /// `[4]` u32 flags.
    pub flags: u64,
    /// `[8]` u32 connected counts per segment.
    pub counters: u64,
    /// `[1]` u32 connections after the step.
    pub n_connected: u64,
    /// `[4]` f32 losses.
    pub metrics: u64,
    /// `[N]` rates.
    pub rates: u64,
    /// `[N]` regulariser dL/dz.
    pub reg_grad: u64,
    /// `[N]` regulariser coefficients.
    pub reg_coeff: u64,
}

/// Addresses of a batch's buffers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchPtrs {
    /// `[B * T + 1]`.
    pub in_offsets: u64,
    /// `[E]`.
    pub in_channels: u64,
    /// `[E]`.
    pub in_values: u64,
    /// `[B + 1]`.
    pub term_offsets: u64,
    /// `[Q]` uint4.
    pub terms: u64,
    /// State v `[B * N]`.
    pub st_v: u64,
    /// State z.
    pub st_z: u64,
    /// State b.
    pub st_b: u64,
    /// State ring `[B * D * N]`.
    pub st_ring: u64,
    /// State refractory counters (i32).
    pub st_refr: u64,
    /// Trace v `[B * (T + 1) * N]`.
    pub tr_v: u64,
    /// Trace b.
    pub tr_b: u64,
    /// Trace spike bits `[B * (T + 1) * W]`.
    pub tr_spk: u64,
    /// Trace refractory bits `[B * T * W]`.
    pub tr_ref: u64,
    /// Initial z `[B * N]`.
    pub z0: u64,
    /// Spike sums `[B * N]`.
    pub zsum: u64,
    /// Linear-loss parts `[B * N]`.
    pub lin_part: u64,
    /// Window sums `[Q * N]`.
    pub psp_sum: u64,
    /// Logits `[Q * O]`.
    pub logits: u64,
    /// dL/dlogits `[Q * O]`.
    pub dlogits: u64,
    /// Weighted cross-entropies `[Q]`.
    pub ce: u64,
    /// c_z `[T * N]`.
    pub lin_cz: u64,
    /// c_v `[T * N]`.
    pub lin_cv: u64,
    /// Per-block gradients `[B * P]`.
    pub partial: u64,
}

/// What varies from batch to batch besides the buffers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchShape {
    /// Elements B.
    pub n_batch: usize,
    /// Steps T.
    pub n_steps: usize,
    /// Loss terms Q.
    pub n_terms: usize,
    /// Most terms of one element.
    pub max_terms: usize,
    /// Whether the rate regulariser is on.
    pub has_reg: bool,
    /// Its target rate (spikes per ms).
    pub reg_target: f32,
    /// Whether the linear loss is on.
    pub has_linear: bool,
}

fn offset(base: u64, floats: usize) -> u64 {
    base + (floats * std::mem::size_of::<f32>()) as u64
}

/// `lsnn_forward`.
#[allow(clippy::too_many_arguments)]
pub fn forward_args(
    d: &Dims,
    k: &KernelConsts,
    layout: &ParamLayout,
    net: &NetPtrs,
    b: &BatchPtrs,
    s: &BatchShape,
    plan: &ForwardPlan,
    record_trace: bool,
) -> ForwardArgs {
    let wo = layout.range(Param::WOut).expect("always").start;
    ForwardArgs {
        neurons: net.neurons,
        syn: net.syn,
        w_out: offset(net.params, wo),
        b_out: layout
            .range(Param::BOut)
            .map_or(0, |r| offset(net.params, r.start)),
        in_offsets: b.in_offsets,
        in_channels: b.in_channels,
        in_values: b.in_values,
        term_offsets: b.term_offsets,
        terms: b.terms,
        lin_cz: if s.has_linear { b.lin_cz } else { 0 },
        lin_cv: if s.has_linear { b.lin_cv } else { 0 },
        st_v: b.st_v,
        st_z: b.st_z,
        st_b: b.st_b,
        st_ring: b.st_ring,
        st_refr: b.st_refr,
        tr_v: b.tr_v,
        tr_b: b.tr_b,
        tr_spk: b.tr_spk,
        tr_ref: b.tr_ref,
        z0: b.z0,
        zsum: b.zsum,
        psp_sum: b.psp_sum,
        logits: b.logits,
        lin_part: if s.has_linear { b.lin_part } else { 0 },
        n_in: d.n_in as u32,
        n_rec: d.n_rec as u32,
        n_out: d.n_out as u32,
        n_delay: d.n_delay as u32,
        n_refractory: d.n_refractory as u32,
        n_steps: s.n_steps as u32,
        n_words: d.words() as u32,
        max_terms: s.max_terms as u32,
        record_trace: u32::from(record_trace),
        cols_capacity: plan.cols_capacity,
        dt: k.dt,
        decay_b: k.decay_b,
        one_minus_decay_b: k.one_minus_decay_b,
        v0: k.v0,
        spike: k.spike,
        dampening_factor: k.dampening_factor,
        decay_out: k.decay_out,
        gain_out: k.gain_out,
    }
}

/// `lsnn_loss` (one block).
pub fn loss_args(
    d: &Dims,
    k: &KernelConsts,
    net: &NetPtrs,
    b: &BatchPtrs,
    s: &BatchShape,
) -> LossArgs {
    LossArgs {
        logits: b.logits,
        terms: b.terms,
        zsum: b.zsum,
        lin_part: if s.has_linear { b.lin_part } else { 0 },
        reg_coeff: net.reg_coeff,
        dlogits: b.dlogits,
        ce: b.ce,
        rates: net.rates,
        reg_grad: net.reg_grad,
        metrics: net.metrics,
        flags: net.flags,
        n_batch: s.n_batch as u32,
        n_rec: d.n_rec as u32,
        n_out: d.n_out as u32,
        n_terms: s.n_terms as u32,
        has_reg: u32::from(s.has_reg),
        reg_target: s.reg_target,
        // run_pass: F::of((B * T) as f64) * dt.
        denom: (s.n_batch * s.n_steps) as f64 as f32 * k.dt,
    }
}

/// The one-block kernels' launch (`lsnn_loss`, `lsnn_reconnect`).
pub fn one_block() -> LaunchPlan {
    LaunchPlan {
        grid: 1,
        block: SMALL_BLOCK,
        shared_bytes: 0,
    }
}

/// `lsnn_backward`.
#[allow(clippy::too_many_arguments)]
pub fn backward_args(
    d: &Dims,
    k: &KernelConsts,
    layout: &ParamLayout,
    net: &NetPtrs,
    b: &BatchPtrs,
    s: &BatchShape,
    plan: &BackwardPlan,
) -> BackwardArgs {
    let wo = layout.range(Param::WOut).expect("always").start;
    BackwardArgs {
        neurons: net.neurons,
        syn: net.syn,
        rec_rows: net.rec_rows,
        rec_count: net.rec_count,
        w_out: offset(net.params, wo),
        in_offsets: b.in_offsets,
        in_channels: b.in_channels,
        in_values: b.in_values,
        term_offsets: b.term_offsets,
        terms: b.terms,
        lin_cz: if s.has_linear { b.lin_cz } else { 0 },
        lin_cv: if s.has_linear { b.lin_cv } else { 0 },
        tr_v: b.tr_v,
        tr_b: b.tr_b,
        tr_spk: b.tr_spk,
        tr_ref: b.tr_ref,
        z0: b.z0,
        psp_sum: b.psp_sum,
        dlogits: b.dlogits,
        reg_grad: if s.has_reg { net.reg_grad } else { 0 },
        partial: b.partial,
        n_in: d.n_in as u32,
        n_rec: d.n_rec as u32,
        n_out: d.n_out as u32,
        n_delay: d.n_delay as u32,
        n_steps: s.n_steps as u32,
        n_words: d.words() as u32,
        max_terms: s.max_terms as u32,
        n_params: layout.len() as u32,
        acc_in_shared: u32::from(plan.acc_in_shared),
        rows_capacity: plan.rows_capacity,
        has_bias: u32::from(d.has_bias),
        dt: k.dt,
        decay_b: k.decay_b,
        one_minus_decay_b: k.one_minus_decay_b,
        v0: k.v0,
        spike: k.spike,
        dampening_factor: k.dampening_factor,
        decay_out: k.decay_out,
        gain_out: k.gain_out,
    }
}

/// `lsnn_reduce_grads`.
pub fn reduce_args(
    d: &Dims,
    k: &KernelConsts,
    layout: &ParamLayout,
    net: &NetPtrs,
    b: &BatchPtrs,
    s: &BatchShape,
    poison: Option<usize>,
) -> ReduceArgs {
    ReduceArgs {
        partial: b.partial,
        grad: net.grad,
        flags: net.flags,
        n_partials: s.n_batch as u32,
        n_params: layout.len() as u32,
        n_in: d.n_in as u32,
        n_rec: d.n_rec as u32,
        poison: poison.map_or(u32::MAX, |i| i as u32),
        v0: k.v0,
    }
}

/// Where the update kernels write effective weights: `(syn, n_in, n_rec, v0)`; `syn` 0 for a
/// bare parameter set.
pub type SynTarget = (u64, u32, u32, f32);

/// `lsnn_update`.
pub fn update_args(
    net: &NetPtrs,
    segments: &Segments,
    optimizer: OptimizerKind,
    n_params: usize,
    cfg: &StepConfig,
    syn: SynTarget,
) -> UpdateArgs {
    let (kind, beta1, beta2, epsilon, lr_t) = match optimizer {
        OptimizerKind::Adam {
            beta1,
            beta2,
            epsilon,
        } => (
            OPT_ADAM,
            beta1,
            beta2,
            epsilon,
            adam_lr_t(cfg.lr, beta1, beta2, cfg.step),
        ),
        OptimizerKind::Sgd => (OPT_SGD, 0.0, 0.0, 0.0, 0.0),
    };
    let (l1, temperature) = cfg.rewiring.unwrap_or((0.0, 0.0));
    UpdateArgs {
        params: net.params,
        theta: net.theta,
        sign: net.sign,
        grad: net.grad,
        adam_m: net.adam_m,
        adam_v: net.adam_v,
        syn: syn.0,
        counters: net.counters,
        flags: net.flags,
        seg_start: segments.start,
        n_segments: segments.n,
        rewired_mask: segments.rewired_mask,
        kind,
        n_params: n_params as u32,
        n_in: syn.1,
        n_rec: syn.2,
        lr: cfg.lr,
        lr_t,
        beta1,
        beta2,
        epsilon,
        l1,
        noise_scale: (2.0 * cfg.lr * temperature).sqrt(),
        key: cfg.key,
        v0: syn.3,
    }
}

/// `lsnn_reconnect` (one block).
pub fn reconnect_args(
    net: &NetPtrs,
    segments: &Segments,
    cfg: &StepConfig,
    syn: SynTarget,
) -> ReconnectArgs {
    ReconnectArgs {
        params: net.params,
        theta: net.theta,
        sign: net.sign,
        syn: syn.0,
        counters: net.counters,
        flags: net.flags,
        n_connected: net.n_connected,
        seg_start: segments.start,
        n_segments: segments.n,
        rewired_mask: segments.rewired_mask,
        budget: segments.budget,
        n_in: syn.1,
        n_rec: syn.2,
        seg_weight: segments.weight,
        key: cfg.key,
        v0: syn.3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readout_pointers_point_into_the_parameters() {
        let d = Dims {
            n_in: 3,
            n_rec: 4,
            n_out: 2,
            n_delay: 2,
            n_refractory: 1,
            has_bias: true,
        };
        let k = KernelConsts::new(&lsnn_core::CellConfig::new(), 20.0);
        let net = NetPtrs {
            params: 0x1000,
            ..NetPtrs::default()
        };
        let s = BatchShape {
            n_batch: 5,
            n_steps: 7,
            ..BatchShape::default()
        };
        let plan = ForwardPlan::new(&d, 5, 1, 9);
        let f = forward_args(
            &d,
            &k,
            &d.params(),
            &net,
            &BatchPtrs::default(),
            &s,
            &plan,
            true,
        );
        assert_eq!(f.cols_capacity, 9);
        assert_eq!(f.w_out, 0x1000 + 4 * (12 + 16));
        assert_eq!(f.b_out, 0x1000 + 4 * (12 + 16 + 8));
        assert_eq!(f.lin_cz, 0, "no linear loss: null");
        assert_eq!(
            loss_args(&d, &k, &net, &BatchPtrs::default(), &s).denom,
            35.0
        );
        let nb = Dims {
            has_bias: false,
            ..d
        };
        assert_eq!(
            forward_args(
                &nb,
                &k,
                &nb.params(),
                &net,
                &BatchPtrs::default(),
                &s,
                &plan,
                true
            )
            .b_out,
            0
        );
    }
}
