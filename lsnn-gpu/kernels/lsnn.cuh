// lsnn-gpu kernels: shared definitions.
//
// Everything here is plain CUDA C compiled to PTX by build.rs (nvcc -ptx -arch=compute_80
// -fmad=false). `-fmad=false` matters: the neuron equations below MIRROR lsnn-core and must round
// exactly as the Rust code does (no fused multiply-adds), so that the forward pass produces the
// same spikes bit for bit as the host trainer. The fixtures pin the mirror.
//
// The kernel argument structs are passed by value; their Rust twins live in lsnn-gpu/src/args.rs
// (a CPU test checks that both declare the same fields, in the same order, with the same types).
#pragma once

#define LSNN_FULL_MASK 0xffffffffu

// The dynamic shared memory of a kernel (the CPU emulator in lsnn-gpu/emu/ redefines it).
#ifndef LSNN_DYNAMIC_SHARED
#define LSNN_DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) T name[]
#endif

// ------------------------------------------------------------------------------------------------
// The neuron. MIRRORS lsnn-core/src/neuron.rs: `Neuron::threshold`, `neuron_step`,
// `pseudo_derivative`, `neuron_step_backward`. Same operations in the same order; change both or
// neither.

// lsnn_core::Neuron<f32> packed as {decay, one_minus_decay, thr, beta}.
typedef float4 LsnnNeuron;

struct LsnnConsts {
    float dt;
    float decay_b;
    float one_minus_decay_b;
    float v0;
    float spike;
    float dampening_factor;
};

// Neuron::threshold: thr + b * beta * V0.
__device__ __forceinline__ float lsnn_threshold(LsnnNeuron n, float b, float v0) {
    return n.z + b * n.w * v0;
}

// neuron_step: the new (v, z, b) from the previous state, the current i_t and the refractory flag.
__device__ __forceinline__ void lsnn_neuron_step(LsnnNeuron n, const LsnnConsts& k, float* v,
                                                 float* z, float* b, float i_t, bool refractory) {
    const float pv = *v, pz = *z, pb = *b;
    const float b_new = k.decay_b * pb + k.one_minus_decay_b * pz;
    const float thr = lsnn_threshold(n, b_new, k.v0);
    const float v_new = n.x * pv + n.y * i_t - pz * thr * k.dt;
    const bool above = thr > 0.0f ? pv > thr : (pv - thr) / thr > 0.0f;
    *v = v_new;
    *z = (above && !refractory) ? k.spike : 0.0f;
    *b = b_new;
}

// pseudo_derivative: dampening * max(0, 1 - |v_scaled|).
__device__ __forceinline__ float lsnn_pseudo_derivative(float v_scaled, float dampening) {
    return fmaxf(1.0f - fabsf(v_scaled), 0.0f) * dampening;
}

// neuron_step_backward with out_thr = 0. In: the step's previous state (pv, pz, pb is not needed),
// its b_new, the refractory flag and the adjoints (*gv, *gz, *gb) of its outputs. Out: the
// adjoints of the previous state in (*gv, *gz, *gb) and dL/di_t.
__device__ __forceinline__ float lsnn_neuron_step_backward(LsnnNeuron n, const LsnnConsts& k,
                                                           float pv, float pz, float b_new,
                                                           bool refractory, float* gv, float* gz,
                                                           float* gb) {
    const float out_thr = 0.0f;
    const float thr = lsnn_threshold(n, b_new, k.v0);
    const float v_scaled = (pv - thr) / thr;
    const float g_v_scaled =
        refractory ? 0.0f : *gz * k.spike * lsnn_pseudo_derivative(v_scaled, k.dampening_factor);
    const float g_thr = out_thr - g_v_scaled * pv / (thr * thr) - *gv * pz * k.dt;
    const float g_b_new = *gb + g_thr * n.w * k.v0;
    const float ov = *gv;
    *gv = n.x * ov + g_v_scaled / thr;
    *gz = k.one_minus_decay_b * g_b_new - ov * thr * k.dt;
    *gb = k.decay_b * g_b_new;
    return n.y * ov;
}

// ------------------------------------------------------------------------------------------------
// Spike events. A step's spikes are set bits in W words (neurons ascending). Each spike costs a
// thread one load of its synapse from global memory (L2); taking LSNN_EVENT_BATCH spikes at a
// time lets those loads be in flight together instead of one round trip after another. The
// spikes are still used in ascending order, so sums round as before.
#ifndef LSNN_EVENT_BATCH
#define LSNN_EVENT_BATCH 4
#endif

struct LsnnSpikes {
    const unsigned* words;
    unsigned pending;  // words not read yet (bit w: word w), only non-zero ones where known
    unsigned w, bits;
};

// The spikes in `words`; `pending` has a bit for every word that may hold some (the caller's
// ballot of the non-zero words, so that a step reads only those: reading the words one after
// another, each load waiting for the one before, cost a round trip per word).
__device__ __forceinline__ LsnnSpikes lsnn_spikes(const unsigned* words, unsigned pending) {
    return LsnnSpikes{words, pending, 0u, 0u};
}

// The next (up to LSNN_EVENT_BATCH) spiking neurons into kk[]; how many.
__device__ __forceinline__ unsigned lsnn_next_spikes(LsnnSpikes& c, unsigned* kk) {
    unsigned n = 0;
#pragma unroll
    for (unsigned q = 0; q < LSNN_EVENT_BATCH; ++q) {
        while (c.bits == 0 && c.pending != 0) {
            c.w = (unsigned)(__ffs(c.pending) - 1);
            c.pending &= c.pending - 1u;
            c.bits = c.words[c.w];
        }
        if (c.bits) {
            kk[q] = c.w * 32u + (unsigned)(__ffs(c.bits) - 1);
            c.bits &= c.bits - 1u;
            n = q + 1;
        }
    }
    return n;
}

// What `pick` takes of the synapses (kk[q] -> this thread's neuron) of a batch of n spikes
// (the forward: the synapse; the backward: its delay), loads issued together; `col` is the
// thread's column of the recurrent rows (syn + I * N + j). Indices into `syn` fit 32 bits
// (layout::Dims::validate: fewer than 2^32 parameters), which saves the 64-bit arithmetic of a
// size_t index on every load.
template <typename Out, typename Pick>
__device__ __forceinline__ void lsnn_load_spike_synapses(const float2* col, unsigned n_rec,
                                                         const unsigned* kk, unsigned n,
                                                         Out* out, Pick pick) {
#pragma unroll
    for (unsigned q = 0; q < LSNN_EVENT_BATCH; ++q)
        if (q < n) out[q] = pick(col + kk[q] * n_rec);
}

// Input events. A step's events are known before the step (they are the batch's input), so the
// first LSNN_INPUT_AHEAD of them are loaded a step early: channel, value and the thread's
// synapse, a chain of dependent loads, then off the step's critical path. The events are still
// used in order. LSNN_PREFETCH_INPUTS=0 loads them in their step (for timing).
#ifndef LSNN_PREFETCH_INPUTS
#define LSNN_PREFETCH_INPUTS 1
#endif
#define LSNN_INPUT_AHEAD 2

struct LsnnInputs {
    unsigned n;                        // events loaded (the first n of the step's)
    unsigned channel[LSNN_INPUT_AHEAD];
    float x[LSNN_INPUT_AHEAD];
    float w[LSNN_INPUT_AHEAD];         // synapse (channel -> this thread's neuron): weight
    unsigned delay[LSNN_INPUT_AHEAD];  // and delay (scalar loads: the backward needs no weight)
};

// The first events of [lo, hi) for neuron j (none when prefetching is off or j is not live).
__device__ __forceinline__ LsnnInputs lsnn_load_inputs(const unsigned* channels,
                                                       const float* values, const float2* syn,
                                                       unsigned n_rec, unsigned lo, unsigned hi,
                                                       unsigned j, bool live) {
    LsnnInputs p;
    const unsigned n = hi - lo;
    p.n = (LSNN_PREFETCH_INPUTS && live) ? (n < LSNN_INPUT_AHEAD ? n : LSNN_INPUT_AHEAD) : 0u;
#pragma unroll
    for (unsigned q = 0; q < LSNN_INPUT_AHEAD; ++q) {
        p.channel[q] = 0;
        p.x[q] = 0.0f;
        p.w[q] = 0.0f;
        p.delay[q] = 0;
        if (q < p.n) {
            p.channel[q] = channels[lo + q];
            p.x[q] = values[lo + q];
            const float2* s = syn + (p.channel[q] * n_rec + j);
            p.w[q] = s->x;
            p.delay[q] = __float_as_uint(s->y);
        }
    }
    return p;
}

// The step's events after the prefetched ones, LSNN_INPUT_BATCH at a time: the channels and
// values of a batch loaded together, then what `pick` takes of the thread's synapses from them
// (the forward: the synapse; the backward: its delay), also together, before any is used; the
// caller uses them in order. Input events come in bursts (in sMNIST a stroke's edge crosses up
// to 39 thresholds in one step; 2.4 events per step on average, ~117 steps of a sequence have
// more than 2): one or two at a time, every one cost two dependent L2 round trips (its channel,
// then its synapse), ~870 such rounds per sequence on average and up to ~1 340; eight at a
// time, ~270 and ~400 (real MNIST digits, first 2 048).
// The batch is a template parameter: the builds for blocks of up to 256 threads take
// LSNN_INPUT_BATCH (8: 128 registers, no spill), those for up to 1024 one at a time (at 64
// registers a thread, 8 spilled over 200 bytes).
#ifndef LSNN_INPUT_BATCH
#define LSNN_INPUT_BATCH 8
#endif

template <unsigned kBatch, typename Out, typename Pick>
__device__ __forceinline__ unsigned lsnn_load_input_batch(const unsigned* channels,
                                                          const float* values, const float2* syn,
                                                          unsigned n_rec, unsigned e, unsigned hi,
                                                          unsigned j, unsigned* channel, float* x,
                                                          Out* out, Pick pick) {
    const unsigned left = hi - e;
    const unsigned n = left < kBatch ? left : kBatch;
#pragma unroll
    for (unsigned q = 0; q < kBatch; ++q) {
        if (q < n) {
            channel[q] = channels[e + q];
            x[q] = values[e + q];
        }
    }
#pragma unroll
    for (unsigned q = 0; q < kBatch; ++q)
        if (q < n) out[q] = pick(syn + (channel[q] * n_rec + j));
    return n;
}

// The sum of `count` over the block's threads before this one (`*before`) and over all of them
// (`*total`, the same in every thread). `scratch`: blockDim.x words of shared memory, free again
// on return. For the shared copies of the recurrent rows and columns: where each thread's own
// entries start, and whether they all fit.
__device__ __forceinline__ void lsnn_block_prefix(unsigned count, unsigned* scratch,
                                                  unsigned* before, unsigned* total) {
    const unsigned j = threadIdx.x;
    scratch[j] = count;
    __syncthreads();
    unsigned below = 0, all = 0;
    for (unsigned k = 0; k < blockDim.x; ++k) {
        const unsigned c = scratch[k];
        if (k < j) below += c;
        all += c;
    }
    __syncthreads();
    *before = below;
    *total = all;
}

// ------------------------------------------------------------------------------------------------
// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11), as in Random123. The Rust
// mirror in lsnn-gpu/src/philox.rs is tested against Random123's known-answer vectors; the
// device test `philox_matches_the_rust_mirror` compares the two.

__device__ __forceinline__ uint4 lsnn_philox(uint4 c, uint2 k) {
#pragma unroll
    for (int r = 0; r < 10; ++r) {
        if (r > 0) {
            k.x += 0x9E3779B9u;
            k.y += 0xBB67AE85u;
        }
        const unsigned hi0 = __umulhi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
        const unsigned hi1 = __umulhi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
        c = make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}

__device__ __forceinline__ uint2 lsnn_key(unsigned long long key) {
    return make_uint2((unsigned)key, (unsigned)(key >> 32));
}

// Uniform in [0, 1) with 53 random bits from two words.
__device__ __forceinline__ double lsnn_uniform53(unsigned a, unsigned b) {
    return ((double)(a >> 5) * 67108864.0 + (double)(b >> 6)) * (1.0 / 9007199254740992.0);
}

// Standard normal by Box-Muller from the four words of one Philox block.
__device__ __forceinline__ double lsnn_normal(uint4 r) {
    const double u1 = (lsnn_uniform53(r.x, r.y) * 9007199254740992.0 + 1.0) / 9007199254740992.0;
    const double u2 = lsnn_uniform53(r.z, r.w);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// Streams (the second counter word) of the DEEP R step.
#define LSNN_STREAM_NOISE 0u
#define LSNN_STREAM_SPLIT 1u
#define LSNN_STREAM_PICK 2u

// ------------------------------------------------------------------------------------------------
// Kernel arguments (by value). Pointers are device addresses; "or null" ones may be 0.
//
// Layouts (B batch, T steps, I inputs, N neurons, D delay slots, O outputs, W = ceil(N/32),
// Q = number of loss terms of the batch, P = number of parameters):
//   syn      [(I + N) * N] float2 {w * V0 (0 on the w_rec diagonal), delay index as bits}:
//            rows 0..I are input channels, rows I..I+N presynaptic neurons.
//   params   [P] = w_in [I*N] | w_rec [N*N] | w_out [N*O] | b_out [O] (when the readout has one).
//   state    v, z, b [B*N]; ring [B][D][N] (slot k arrives in k steps); refractory_left [B*N].
//   trace    v, b [B][T+1][N] (before each step, then after the last); spikes [B][T+1][W] bits
//            (row t: spikes present before step t; row 0 from the initial z, whose values are z0);
//            refractory [B][T][W] bits (neuron refractory during step t).
//   terms    [Q] uint4 {start, end, target, weight bits}; element b has terms
//            term_offsets[b]..term_offsets[b+1].
//   inputs   in_offsets [B*T+1]: events of (b, t) are in_offsets[b*T+t]..in_offsets[b*T+t+1] of
//            in_channels / in_values (channels ascending).

struct ForwardArgs {
    const float4* neurons;
    const float2* syn;
    const float* w_out;
    const float* b_out;
    const unsigned* in_offsets;
    const unsigned* in_channels;
    const float* in_values;
    const unsigned* term_offsets;
    const uint4* terms;
    const float* lin_cz;
    const float* lin_cv;
    float* st_v;
    float* st_z;
    float* st_b;
    float* st_ring;
    int* st_refr;
    float* tr_v;
    float* tr_b;
    unsigned* tr_spk;
    unsigned* tr_ref;
    float* z0;
    float* zsum;
    float* psp_sum;
    float* logits;
    float* lin_part;
    unsigned n_in;
    unsigned n_rec;
    unsigned n_out;
    unsigned n_delay;
    unsigned n_refractory;
    unsigned n_steps;
    unsigned n_words;
    unsigned max_terms;
    unsigned record_trace;
    unsigned cols_capacity;
    float dt;
    float decay_b;
    float one_minus_decay_b;
    float v0;
    float spike;
    float dampening_factor;
    float decay_out;
    float gain_out;
};

struct BackwardArgs {
    const float4* neurons;
    const float2* syn;
    const float2* rec_rows;
    const unsigned* rec_count;
    const float* w_out;
    const unsigned* in_offsets;
    const unsigned* in_channels;
    const float* in_values;
    const unsigned* term_offsets;
    const uint4* terms;
    const float* lin_cz;
    const float* lin_cv;
    const float* tr_v;
    const float* tr_b;
    const unsigned* tr_spk;
    const unsigned* tr_ref;
    const float* z0;
    const float* psp_sum;
    const float* dlogits;
    const float* reg_grad;
    float* partial;
    unsigned n_in;
    unsigned n_rec;
    unsigned n_out;
    unsigned n_delay;
    unsigned n_steps;
    unsigned n_words;
    unsigned max_terms;
    unsigned n_params;
    unsigned acc_in_shared;
    unsigned rows_capacity;
    unsigned has_bias;
    float dt;
    float decay_b;
    float one_minus_decay_b;
    float v0;
    float spike;
    float dampening_factor;
    float decay_out;
    float gain_out;
};

// flags: [0] a gradient is not finite, [1] its smallest flat index, [2] the loss is not finite.
struct LossArgs {
    const float* logits;
    const uint4* terms;
    const float* zsum;
    const float* lin_part;
    const float* reg_coeff;
    float* dlogits;
    float* ce;
    float* rates;
    float* reg_grad;
    float* metrics;
    unsigned* flags;
    unsigned n_batch;
    unsigned n_rec;
    unsigned n_out;
    unsigned n_terms;
    unsigned has_reg;
    float reg_target;
    float denom;
};

struct ReduceArgs {
    const float* partial;
    float* grad;
    unsigned* flags;
    unsigned n_partials;
    unsigned n_params;
    unsigned n_in;
    unsigned n_rec;
    unsigned poison;
    float v0;
};

#define LSNN_MAX_SEGMENTS 8
// Threads of the one-block kernels (lsnn_loss, lsnn_reconnect): layout.rs SMALL_BLOCK.
#define LSNN_RECONNECT_THREADS 256

struct UpdateArgs {
    float* params;
    float* theta;
    const float* sign;
    const float* grad;
    double* adam_m;
    double* adam_v;
    float2* syn;
    unsigned* counters;
    const unsigned* flags;
    unsigned seg_start[9];
    unsigned n_segments;
    unsigned rewired_mask;
    unsigned kind;
    unsigned n_params;
    unsigned n_in;
    unsigned n_rec;
    double lr;
    double lr_t;
    double beta1;
    double beta2;
    double epsilon;
    double l1;
    double noise_scale;
    unsigned long long key;
    float v0;
};

struct ReconnectArgs {
    float* params;
    float* theta;
    const float* sign;
    float2* syn;
    const unsigned* counters;
    const unsigned* flags;
    unsigned* n_connected;
    unsigned seg_start[9];
    unsigned n_segments;
    unsigned rewired_mask;
    unsigned budget;
    unsigned n_in;
    unsigned n_rec;
    double seg_weight[8];
    unsigned long long key;
    float v0;
};

#define LSNN_OPT_ADAM 0u
#define LSNN_OPT_SGD 1u

// The effective weight the forward uses for parameter p (w_in and w_rec only): w * V0, and 0 on
// the w_rec diagonal (no autapses). MIRRORS lsnn_core::Csr::from_dense.
__device__ __forceinline__ void lsnn_write_syn(float2* syn, unsigned n_in, unsigned n_rec,
                                               float v0, unsigned p, float w) {
    if (syn == 0) return;
    const unsigned n_in_w = n_in * n_rec;
    if (p < n_in_w) {
        syn[p].x = w * v0;
    } else if (p < n_in_w + n_rec * n_rec) {
        const unsigned q = p - n_in_w;
        const unsigned k = q / n_rec, j = q - k * n_rec;
        syn[p].x = (k == j) ? 0.0f : w * v0;
    }
}
