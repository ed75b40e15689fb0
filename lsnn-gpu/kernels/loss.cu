// The loss of a batch from the forward's logits and spike counts: one block.
// Mirrors lsnn-host/src/train/batch.rs (`run_pass`: rates, `regulariser`, the cross-entropy terms
// of `bptt::cross_entropy`) and writes the adjoint seeds the backward reads: dL/dlogits per term
// (weight included) and dL/dz of the rate regulariser per neuron.
//
// metrics: [0] loss, [1] loss_ce, [2] loss_reg, [3] linear loss.
#include "lsnn.cuh"

// Resets the per-iteration flags and DEEP R counters (flags[1] = no bad index yet).
extern "C" __global__ void lsnn_clear(unsigned* flags, unsigned* counters) {
    const unsigned j = threadIdx.x;
    if (j < 4) flags[j] = j == 1 ? 0xffffffffu : 0u;
    if (j < LSNN_MAX_SEGMENTS) counters[j] = 0u;
}

extern "C" __global__ void __launch_bounds__(1024) lsnn_loss(const LossArgs a) {
    const unsigned N = a.n_rec, O = a.n_out, B = a.n_batch, Q = a.n_terms;
    const unsigned tid = threadIdx.x;

    // Firing rates (mean of z / dt over batch and time), elements in order as the host.
    for (unsigned j = tid; j < N; j += blockDim.x) {
        float s = 0.0f;
        for (unsigned b = 0; b < B; ++b) s = s + a.zsum[(size_t)b * N + j];
        const float r = s / a.denom;
        a.rates[j] = r;
        if (a.has_reg) {
            const float c = a.reg_coeff[j];
            const float diff = r - a.reg_target;
            a.reg_grad[j] = 2.0f * c * diff / a.denom;
        }
    }
    // Softmax cross-entropy per term and its gradient (bptt::cross_entropy), times the weight.
    for (unsigned q = tid; q < Q; q += blockDim.x) {
        const float* l = a.logits + (size_t)q * O;
        const uint4 tm = a.terms[q];
        const float weight = __uint_as_float(tm.w);
        float mx = -INFINITY;
        for (unsigned o = 0; o < O; ++o) mx = fmaxf(mx, l[o]);
        // exp in double, rounded to float: the host's `softmax_exp`, so that dL/dlogits (and
        // every gradient after it) is bit-identical to the host's; expf's last bit differs.
        // log likewise (`softmax_ln`), so that the loss is too.
        float total = 0.0f;
        for (unsigned o = 0; o < O; ++o) total = total + (float)exp((double)(l[o] - mx));
        const float ce = (float)log((double)total) - (l[tm.z] - mx);
        a.ce[q] = weight * ce;
        for (unsigned o = 0; o < O; ++o) {
            const float g = (float)exp((double)(l[o] - mx)) / total - (o == tm.z ? 1.0f : 0.0f);
            a.dlogits[(size_t)q * O + o] = g * weight;
        }
    }
    __syncthreads();
    if (tid == 0) {
        float loss_ce = 0.0f;
        for (unsigned q = 0; q < Q; ++q) loss_ce = loss_ce + a.ce[q];
        float loss_reg = 0.0f;
        if (a.has_reg) {
            for (unsigned j = 0; j < N; ++j) {
                const float diff = a.rates[j] - a.reg_target;
                loss_reg = loss_reg + a.reg_coeff[j] * diff * diff;
            }
        }
        float loss_lin = 0.0f;
        if (a.lin_part) {
            for (unsigned p = 0; p < B * N; ++p) loss_lin = loss_lin + a.lin_part[p];
        }
        const float loss = loss_ce + loss_reg + loss_lin;
        a.metrics[0] = loss;
        a.metrics[1] = loss_ce;
        a.metrics[2] = loss_reg;
        a.metrics[3] = loss_lin;
        a.flags[2] = isfinite(loss) ? 0u : 1u;
    }
}
