// The parameter update on the device: the reduction of the per-block gradients, the optimiser
// (Adam with TensorFlow 1's rule in float64 moments, or SGD) and DEEP R, in the order of
// lsnn-host/src/train/update.rs (`Weights::apply`) and deepr.rs (`guard_and_regularise`,
// `reconnect`). No host round trip: a non-finite loss or gradient sets a flag that makes the
// update kernels return without touching anything, and the host reads the flag with the metrics.
#include "lsnn.cuh"

// grad[p] = sum over blocks of partial[b][p] (b ascending), times V0 for w_in and w_rec, 0 on the
// w_rec diagonal (batch.rs `to_param_grads`); records the first non-finite entry.
extern "C" __global__ void lsnn_reduce_grads(const ReduceArgs a) {
    const unsigned p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= a.n_params) return;
    float g = 0.0f;
    for (unsigned b = 0; b < a.n_partials; ++b) g = g + a.partial[(size_t)b * a.n_params + p];
    const unsigned n_in_w = a.n_in * a.n_rec;
    if (p < n_in_w + a.n_rec * a.n_rec) {
        g = g * a.v0;
        if (p >= n_in_w) {
            const unsigned q = p - n_in_w;
            if (q / a.n_rec == q % a.n_rec) g = 0.0f;
        }
    }
    if (p == a.poison) g = __int_as_float(0x7fc00000);
    a.grad[p] = g;
    if (!isfinite(g)) {
        atomicOr(&a.flags[0], 1u);
        atomicMin(&a.flags[1], p);
    }
}

// One thread per parameter: the optimiser on the variable (theta for rewired matrices: the
// gradient times the fixed sign), then for rewired entries the guard (disconnected before the
// step -> 0) and l1 + noise on connected ones, the dense weight sign * theta, and the effective
// weight of the forward.
extern "C" __global__ void lsnn_update(const UpdateArgs a) {
    const unsigned p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= a.n_params) return;
    if (a.flags && (a.flags[0] != 0u || a.flags[2] != 0u)) return;
    // The segment of p, with constant indices only (no local copy of the argument array).
    unsigned s = 0;
#pragma unroll
    for (unsigned i = 1; i < LSNN_MAX_SEGMENTS; ++i)
        if (i < a.n_segments && p >= a.seg_start[i]) s = i;
    const bool rewired = (a.rewired_mask >> s) & 1u;
    float g = a.grad[p];
    float x, sign = 0.0f;
    bool was = false;
    if (rewired) {
        sign = a.sign[p];
        g = g * sign;
        x = a.theta[p];
        was = x > 0.0f;
    } else {
        x = a.params[p];
    }
    if (a.kind == LSNN_OPT_ADAM) {
        const double gd = (double)g;
        const double m = a.beta1 * a.adam_m[p] + (1.0 - a.beta1) * gd;
        const double v = a.beta2 * a.adam_v[p] + (1.0 - a.beta2) * gd * gd;
        a.adam_m[p] = m;
        a.adam_v[p] = v;
        x = (float)((double)x - a.lr_t * m / (sqrt(v) + a.epsilon));
    } else {
        x = x - (float)a.lr * g;
    }
    float w = x;
    if (rewired) {
        if (!was) x = 0.0f;
        if (x > 0.0f) {
            double noise = 0.0;
            if (a.noise_scale > 0.0) {
                const uint4 r = lsnn_philox(make_uint4(p, LSNN_STREAM_NOISE, 0u, 0u), lsnn_key(a.key));
                noise = a.noise_scale * lsnn_normal(r);
            }
            x = x + (float)(-a.lr * a.l1 + noise);
        }
        a.theta[p] = x;
        w = x > 0.0f ? sign * x : 0.0f;
        if (x > 0.0f) atomicAdd(&a.counters[s], 1u);
    }
    a.params[p] = w;
    lsnn_write_syn(a.syn, a.n_in, a.n_rec, a.v0, p, w);
}

__device__ __forceinline__ void lsnn_connect(const ReconnectArgs& a, unsigned p) {
    const float theta = 1e-12f;  // deepr::RECONNECT_THETA
    a.theta[p] = theta;
    const float w = a.sign[p] * theta;
    a.params[p] = w;
    lsnn_write_syn(a.syn, a.n_in, a.n_rec, a.v0, p, w);
}

// DEEP R's reconnection (one block): K - connected new synapses, split among the rewired
// matrices by categorical draws (probabilities proportional to size * p), each placed at
// uniformly chosen disconnected entries (rejection sampling over the matrix: uniform without
// replacement), or at all of them when a matrix has no more than it needs. The random numbers
// are Philox blocks keyed as lsnn-host's `deepr::reconnect` keys them: the same places. Launched
// with LSNN_RECONNECT_THREADS threads.
extern "C" __global__ void __launch_bounds__(LSNN_RECONNECT_THREADS) lsnn_reconnect(const ReconnectArgs a) {
    __shared__ unsigned counts[LSNN_MAX_SEGMENTS];
    __shared__ unsigned skip;
    __shared__ unsigned picks[LSNN_RECONNECT_THREADS];
    __shared__ unsigned per_warp[LSNN_RECONNECT_THREADS / 32];
    const unsigned tid = threadIdx.x;
    if (tid == 0) {
        skip = (a.flags && (a.flags[0] != 0u || a.flags[2] != 0u)) ? 1u : 0u;
        unsigned connected = 0;
        for (unsigned s = 0; s < a.n_segments; ++s) {
            counts[s] = 0;
            if ((a.rewired_mask >> s) & 1u) connected += a.counters[s];
        }
        const unsigned missing = a.budget > connected ? a.budget - connected : 0u;
        double total = 0.0;
        for (unsigned s = 0; s < a.n_segments; ++s)
            if ((a.rewired_mask >> s) & 1u) total += a.seg_weight[s];
        for (unsigned i = 0; i < missing && total > 0.0; ++i) {
            const uint4 r = lsnn_philox(make_uint4(i, LSNN_STREAM_SPLIT, 0u, 0u), lsnn_key(a.key));
            const double u = lsnn_uniform53(r.x, r.y) * total;
            double c = 0.0;
            unsigned pick = 0xffffffffu, last = 0;
            for (unsigned s = 0; s < a.n_segments; ++s) {
                if (!((a.rewired_mask >> s) & 1u) || a.seg_weight[s] <= 0.0) continue;
                last = s;
                c += a.seg_weight[s];
                if (u < c) {
                    pick = s;
                    break;
                }
            }
            counts[pick == 0xffffffffu ? last : pick] += 1;
        }
        unsigned after = connected;
        for (unsigned s = 0; s < a.n_segments; ++s) {
            const unsigned size = a.seg_start[s + 1] - a.seg_start[s];
            const unsigned disconnected = size - a.counters[s];
            if (counts[s] > disconnected) counts[s] = disconnected;
            after += counts[s];
        }
        if (!skip && a.n_connected) *a.n_connected = after;
    }
    __syncthreads();
    if (skip) return;
    for (unsigned s = 0; s < a.n_segments; ++s) {
        const unsigned want = counts[s];
        if (want == 0) continue;
        const unsigned start = a.seg_start[s], size = a.seg_start[s + 1] - start;
        const unsigned disconnected = size - a.counters[s];
        if (want == disconnected) {
            for (unsigned p = start + tid; p < start + size; p += blockDim.x)
                if (!(a.theta[p] > 0.0f)) lsnn_connect(a, p);
        } else {
            // Rejection sampling: attempt i picks entry below(word 0 of block (i, PICK, s)) and
            // connects it if it is still disconnected, until `want` are placed. Done a round of
            // blockDim.x attempts at a time with the sequential result: an attempt succeeds
            // when its entry was disconnected at the round's start and no earlier attempt of
            // the round picked it, and the first `want - placed` successes (attempt order)
            // connect.
            unsigned placed = 0;
            for (unsigned base = 0; placed < want; base += blockDim.x) {
                const uint4 r = lsnn_philox(make_uint4(base + tid, LSNN_STREAM_PICK, s, 0u),
                                            lsnn_key(a.key));
                const unsigned p = start + __umulhi(r.x, size);
                bool ok = !(a.theta[p] > 0.0f);
                picks[tid] = p;
                __syncthreads();
                for (unsigned i = 0; ok && i < tid; ++i)
                    if (picks[i] == p) ok = false;
                const unsigned lane = tid & 31u, warp = tid >> 5;
                const unsigned votes = __ballot_sync(LSNN_FULL_MASK, ok);
                if (lane == 0) per_warp[warp] = __popc(votes);
                __syncthreads();
                unsigned rank = __popc(votes & ((1u << lane) - 1u)), round = 0;
                for (unsigned w = 0; w < (blockDim.x >> 5); ++w) {
                    if (w < warp) rank += per_warp[w];
                    round += per_warp[w];
                }
                const unsigned left = want - placed;
                if (ok && rank < left) lsnn_connect(a, p);
                placed += round < left ? round : left;
                __syncthreads();
            }
        }
        __syncthreads();
    }
}

// Philox blocks for counters (i, stream, 0, 0), i < n, under `key` (checks the Rust mirror).
extern "C" __global__ void lsnn_philox_test(unsigned long long key, unsigned stream, unsigned n,
                                            uint4* out) {
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = lsnn_philox(make_uint4(i, stream, 0u, 0u), lsnn_key(key));
}
