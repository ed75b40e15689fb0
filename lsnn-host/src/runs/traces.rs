//! What the monitor figures show of one batch element: its spikes, thresholds and the
//! readout's softmax, recomputed from a pass's trace.

use ndarray::Array2;

use crate::error::HostError;
use crate::network::{Params, Spec};
use crate::train::Trace;

/// What the figures show of one element: spikes, thresholds and the readout's softmax.
pub struct ElementTraces {
    /// Spikes `[T, N]`.
    pub z: Array2<f32>,
    /// Thresholds `[T, N]`.
    pub thr: Array2<f32>,
    /// Softmax of the readout at every step `[T, O]`.
    pub out_softmax: Array2<f32>,
}

impl ElementTraces {
    /// Recomputes the readout of a trace with the core's `exp_convolve`.
    pub fn new(
        spec: &Spec<f32>,
        params: &Params<f32>,
        trace: &Trace<f32>,
    ) -> Result<Self, HostError> {
        let z = trace.z_dense();
        let (steps, n) = z.dim();
        let neurons = spec.neurons()?;
        let thr = Array2::from_shape_fn((steps, n), |(t, j)| {
            neurons[j].threshold(trace.b(t + 1)[j], spec.config.v0)
        });
        let decay = (-spec.config.dt / spec.tau_out).exp();
        let mut psp = vec![0.0f32; steps * n];
        lsnn_core::exp_convolve(z.as_slice().expect("standard"), n, decay, &mut psp)
            .map_err(|e| HostError::Network(e.to_string()))?;
        let psp = Array2::from_shape_vec((steps, n), psp).expect("sized");
        let mut out = psp.dot(&params.w_out);
        if let Some(b) = &params.b_out {
            out += b;
        }
        for mut row in out.rows_mut() {
            let max = row.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            row.mapv_inplace(|x| (x - max).exp());
            let sum = row.sum();
            row.mapv_inplace(|x| x / sum);
        }
        Ok(ElementTraces {
            z,
            thr,
            out_softmax: out,
        })
    }
}
