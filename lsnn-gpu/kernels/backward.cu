// BPTT over a batch: one thread block per batch element, one thread per neuron, reverse time,
// mirroring lsnn-host/src/train/bptt.rs `backward_element`:
//
// 1. adjoint seeds of the outputs of step t (readout windows through the exp filter, the rate
//    regulariser, the fixtures' linear loss, the recurrent adjoint g_z_rec of the step after);
// 2. the neuron's own equations backwards (`lsnn_neuron_step_backward`), giving dL/di_t, kept in
//    a ring of the last D + 1 steps in shared memory (one column per thread; every row twice,
//    so that an arrival row needs no wrap: see lsnn_arrival_row);
// 3. weight gradients gathered per spike event: for every input event and every spike present
//    before step t, thread j adds x * dL/di at the arrival step of synapse (pre, j). Each thread
//    owns its column of the block's gradient rows: in shared memory when they fit (plain
//    read-modify-write), else in the block's slice of `partial` in global memory (atomicAdd used
//    as a non-blocking reduction; there is a single writer per address, so the result is the
//    sequential sum); one reduction over blocks follows (lsnn_reduce_grads);
// 4. the recurrent adjoint dL/dz_{t-1} = sum_j w_rec[k][j] dL/di_j(t + d_kj), only for neurons k
//    whose pseudo-derivative at step t - 1 is non-zero (as the host), by thread k over the
//    connected synapses of its row (`lsnn_rec_rows`, j ascending: the host's order), so all
//    such neurons work at once and only one __syncthreads per step is needed (between 2-3
//    and 4).
//
// Dynamic shared memory (floats unless noted): the compacted recurrent rows [rows_capacity]
// (float2, first for its alignment), dL/di ring [2 (D + 1)][NP], readout adjoints per term
// [max_terms][NP], term windows [max_terms][2] (u32), the spiking neurons of two steps [2][NP]
// and their counts [2] (u32), then (when acc_in_shared) the gradient rows of w_in and w_rec
// [(I + N) * N].
//
// The recurrent adjoint reads every connected synapse of each active neuron at every step: from
// global memory that is a chain of L2 round trips per step, so the rows are copied into shared
// memory once per launch when they fit (rows_capacity; DEEP R bounds their number by its
// budget), else read from global memory. The shared copy holds each synapse's place in the ring
// relative to the step's row, in bytes ((delay * NP + j) * 4), instead of (j, delay): the loop is
// then a load of the synapse, an add, a load of dL/di, a multiply and an add: 5 instructions per
// synapse where decoding took 15 (sm_90 SASS).
#include "lsnn.cuh"

// The connected recurrent synapses of row k (w_rec[k][j] != 0), j ascending, compacted into
// rows[k * N ..] as (weight, j | delay << 16); count[k] of them. One warp per row; run after
// every change of the weights (each iteration, before the backward).
extern "C" __global__ void lsnn_rec_rows(const float2* syn, unsigned n_in, unsigned n_rec,
                                         float2* rows, unsigned* count) {
    const unsigned k = blockIdx.x, lane = threadIdx.x;
    const float2* row = syn + (size_t)(n_in + k) * n_rec;
    float2* out = rows + (size_t)k * n_rec;
    unsigned n = 0;
    for (unsigned base = 0; base < n_rec; base += 32u) {
        const unsigned j = base + lane;
        const float2 s = j < n_rec ? row[j] : make_float2(0.0f, 0.0f);
        const bool connected = j < n_rec && s.x != 0.0f;
        const unsigned mask = __ballot_sync(LSNN_FULL_MASK, connected);
        if (connected) {
            const unsigned before = __popc(mask & ((1u << lane) - 1u));
            out[n + before] = make_float2(s.x, __uint_as_float(j | (__float_as_uint(s.y) << 16)));
        }
        n += __popc(mask);
    }
    if (lane == 0) count[k] = n;
}

// The dL/di ring row of the step `d` after step t, whose row is `slot` = t mod (D + 1). Step s is
// written to rows s mod (D + 1) and s mod (D + 1) + D + 1, so with d < D the row of step t + d is
// slot + d without a wrap. Steps past T are never written: their rows are still the zeros the
// ring starts with (the only steps >= t with that residue are t + d and later, all >= T; and a
// row the step t - 1 writes, of residue t + D, is not read at step t since d < D).
__device__ __forceinline__ unsigned lsnn_arrival_row(unsigned slot, unsigned d) {
    return slot + d;
}

// The byte offset of a compacted recurrent synapse, (weight, j | delay << 16) as
// `lsnn_rec_rows` writes it, from the ring's row of the step it leaves.
__device__ __forceinline__ unsigned lsnn_row_offset(float2 syn, unsigned NP) {
    const unsigned packed = __float_as_uint(syn.y);
    return ((packed >> 16) * NP + (packed & 0xffffu)) * 4u;
}

// dL/dz_{t-1} of one neuron: its connected synapses (j ascending) times dL/di at their arrival;
// `g_slot` is the ring at step t's row. kStaged: the synapses hold their byte offset from it (the
// shared copy), else as lsnn_rec_rows wrote them.
template <bool kStaged>
__device__ __forceinline__ float lsnn_rec_adjoint(const float2* row, unsigned n_conn,
                                                  const float* g_slot, unsigned NP) {
    const char* base = (const char*)g_slot;
    float s = 0.0f;
    for (unsigned e = 0; e < n_conn; ++e) {
        const float2 syn = row[e];
        const unsigned at = kStaged ? __float_as_uint(syn.y) : lsnn_row_offset(syn, NP);
        s = s + syn.x * *(const float*)(base + at);
    }
    return s;
}

// Warp 0 turns a step's spike words (lane l: word l, 0 past W) into the list of the spiking
// neurons, ascending, and their count, for the block: during the step before they are needed,
// read after the next barrier. Each lane places its word's neurons after those of the lanes
// below (a prefix sum of the popcounts by shuffles), so no thread scans the words bit by bit.
__device__ __forceinline__ void lsnn_stage_spike_list(unsigned word, unsigned lane,
                                                      unsigned n_words, unsigned* list,
                                                      unsigned* count) {
    const unsigned own = (unsigned)__popc(word);
    unsigned upto = own;  // spikes in the words of lanes 0..=lane
    // Only the first n_words lanes hold words: log2 of that many shuffles (none for one word).
    for (unsigned o = 1; o < n_words; o <<= 1) {
        const unsigned below = __shfl_up_sync(LSNN_FULL_MASK, upto, o);
        if (lane >= o) upto += below;
    }
    if (lane == n_words - 1) *count = upto;
    unsigned at = upto - own;
    for (unsigned bits = word; bits != 0; bits &= bits - 1u)
        list[at++] = lane * 32u + (unsigned)(__ffs(bits) - 1);
}

// The next (up to LSNN_EVENT_BATCH) neurons of a spike list of `count` from `*next` into kk[];
// how many.
__device__ __forceinline__ unsigned lsnn_take_spikes(const unsigned* list, unsigned count,
                                                     unsigned* next, unsigned* kk) {
    const unsigned left = count - *next;
    const unsigned n = left < LSNN_EVENT_BATCH ? left : LSNN_EVENT_BATCH;
#pragma unroll
    for (unsigned q = 0; q < LSNN_EVENT_BATCH; ++q)
        if (q < n) kk[q] = list[*next + q];
    *next += n;
    return n;
}

// The delays of the synapses (kk[q] -> this thread's neuron) of a batch of n spikes (the
// backward needs no weight).
__device__ __forceinline__ void lsnn_load_spike_delays(const float2* col, unsigned n_rec,
                                                       const unsigned* kk, unsigned n,
                                                       unsigned* delay) {
    lsnn_load_spike_synapses(col, n_rec, kk, n, delay,
                             [](const float2* s) { return __float_as_uint(s->y); });
}

#ifndef LSNN_SPIKES_EARLY
#define LSNN_SPIKES_EARLY 1  // 0: the _256 build takes a step's first spikes at its top (timing)
#endif

#ifndef LSNN_ROWS_IN_SHARED
#define LSNN_ROWS_IN_SHARED 1  // 0: always read the rows from global memory (for timing)
#endif

// Copies the compacted rows into `rows_sh` when all of them fit in `a.rows_capacity` entries;
// `*start` is where this thread's row begins there. `scratch` holds blockDim.x counts meanwhile
// (the caller clears it afterwards: it is the dL/di ring).
__device__ bool lsnn_stage_rows(const BackwardArgs& a, float2* rows_sh, unsigned* scratch,
                                unsigned* start) {
    const unsigned N = a.n_rec, j = threadIdx.x;
    if (!LSNN_ROWS_IN_SHARED || a.rows_capacity == 0) return false;
    const unsigned n = j < N ? a.rec_count[j] : 0u;
    unsigned before, total;
    lsnn_block_prefix(n, scratch, &before, &total);
    if (total > a.rows_capacity) return false;  // uniform: every thread summed the same counts
    *start = before;
    // Each thread copies (and later reads) only its own row: no barrier needed.
    if (j < N) {
        const float2* row = a.rec_rows + (size_t)j * N;
        for (unsigned e = 0; e < n; ++e) {
            const float2 syn = row[e];
            const unsigned at = lsnn_row_offset(syn, blockDim.x);
            rows_sh[before + e] = make_float2(syn.x, __uint_as_float(at));
        }
    }
    return true;
}

template <unsigned kInputBatch, bool kSpikesEarly>
__device__ __forceinline__ void lsnn_backward_block(const BackwardArgs& a) {
    LSNN_DYNAMIC_SHARED(float, smem);
    const unsigned N = a.n_rec, D = a.n_delay, T = a.n_steps, W = a.n_words, I = a.n_in;
    const unsigned O = a.n_out, P = a.n_params;
    const unsigned NP = blockDim.x;
    const unsigned b = blockIdx.x, j = threadIdx.x, lane = j & 31u, warp = j >> 5;
    const bool live = j < N;
    const LsnnConsts k = {a.dt, a.decay_b, a.one_minus_decay_b, a.v0, a.spike, a.dampening_factor};

    float2* rows_sh = (float2*)smem;
    float* g_i = smem + 2 * a.rows_capacity;
    float* g_psp = g_i + 2 * (D + 1) * NP;
    unsigned* window = (unsigned*)(g_psp + a.max_terms * NP);
    unsigned* spike_list = window + 2 * a.max_terms;
    unsigned* spike_count = spike_list + 2 * NP;
    float* acc_sh = (float*)(spike_count + 2);
    float* part = a.partial + (size_t)b * P;
    const bool in_shared = a.acc_in_shared != 0;
    float* acc = in_shared ? acc_sh : part;
    const unsigned rows = (I + N) * N;

    unsigned row_start = 0;
    const bool rows_in_shared = lsnn_stage_rows(a, rows_sh, (unsigned*)g_i, &row_start);
    for (unsigned p = j; p < rows; p += NP) acc[p] = 0.0f;
    for (unsigned r = 0; r < 2 * (D + 1); ++r) g_i[r * NP + j] = 0.0f;
    for (unsigned q = 0; q < a.max_terms; ++q) g_psp[q * NP + j] = 0.0f;
    const unsigned q0 = a.term_offsets[b];
    const unsigned nq = a.term_offsets[b + 1] - q0;
    for (unsigned q = j; q < nq; q += NP) {
        const uint4 tm = a.terms[q0 + q];
        window[2 * q] = tm.x;
        window[2 * q + 1] = tm.y;
    }

    // The readout: dL/dw_out, dL/db_out of this element, and per term dL/dpsp = w_out . dl / len.
    if (live) {
        for (unsigned q = 0; q < nq; ++q) {
            const uint4 tm = a.terms[q0 + q];
            const float len = (float)(tm.y - tm.x);
            const float* dl = a.dlogits + (size_t)(q0 + q) * O;
            float g = 0.0f;
            for (unsigned o = 0; o < O; ++o) g = g + a.w_out[j * O + o] * dl[o];
            g_psp[q * NP + j] = g / len;
        }
        for (unsigned o = 0; o < O; ++o) {
            float g = 0.0f;
            for (unsigned q = 0; q < nq; ++q) {
                const uint4 tm = a.terms[q0 + q];
                const float len = (float)(tm.y - tm.x);
                g = g + a.psp_sum[(size_t)(q0 + q) * N + j] * a.dlogits[(size_t)(q0 + q) * O + o] / len;
            }
            part[rows + j * O + o] = g;
        }
    }
    if (a.has_bias) {
        for (unsigned o = j; o < O; o += NP) {
            float g = 0.0f;
            for (unsigned q = 0; q < nq; ++q) g = g + a.dlogits[(size_t)(q0 + q) * O + o];
            part[rows + N * O + o] = g;
        }
    }
    const unsigned* spk = a.tr_spk + (size_t)b * (T + 1) * W;
    if (warp == 0) {
        const unsigned last = (T - 1) & 1u;
        lsnn_stage_spike_list(lane < W ? spk[(size_t)(T - 1) * W + lane] : 0u, lane, W,
                              spike_list + last * NP, spike_count + last);
    }
    __syncthreads();

    const LsnnNeuron neuron = live ? a.neurons[j] : make_float4(0.0f, 0.0f, 1.0f, 0.0f);
    const unsigned n_conn = live ? a.rec_count[j] : 0;
    const float reg = (a.reg_grad && live) ? a.reg_grad[j] : 0.0f;
    // Row t of the trace at step t: pointers moved back a row per step (64-bit index arithmetic
    // per load cost a dozen instructions each).
    const float* tr_v = a.tr_v + ((size_t)b * (T + 1) + T - 1) * N + j;
    const float* tr_b = a.tr_b + ((size_t)b * (T + 1) + T - 1) * N + j;
    const unsigned* spk_row = spk + (size_t)(T - 1) * W;
    const unsigned* ref_row = a.tr_ref + ((size_t)b * T + T - 1) * W;
    const unsigned* offs = a.in_offsets + (size_t)b * T;
    const float* z0 = a.z0 + (size_t)b * N;

    float g_v = 0.0f, g_z = 0.0f, g_b = 0.0f, g_z_rec = 0.0f, carry = 0.0f;
    float b_after = live ? tr_b[N] : 0.0f;
    // The trace of step t is loaded one step early (it does not depend on the adjoints), so
    // its latency hides behind the work of the step before.
    float v_before = live ? *tr_v : 0.0f;
    float b_before = live ? *tr_b : 0.0f;
    unsigned spk_word = spk_row[warp];
    unsigned ref_word = ref_row[warp];
    unsigned e_lo = offs[T - 1], e_hi = offs[T];  // step t's input events
    LsnnInputs ahead = lsnn_load_inputs(a.in_channels, a.in_values, a.syn, N, e_lo, e_hi, j, live);
    unsigned slot = (T - 1) % (D + 1);  // ring row of step t
    // The spikes present before step t (t > 0; step 0 has the initial z), used in 3: the first
    // ones and their synapses' delays. kSpikesEarly: taken a step early, right after the barrier
    // by which warp 0 has listed them, so that the delays' L2 round trip passes during the
    // recurrent adjoint and the neuron's step instead of on the step's path; else at the top of
    // step t (the 1024-thread build, where carrying them spills at 64 registers).
    const unsigned* spikes = spike_list;
    unsigned n_listed = 0, n_spikes = 0, taken = 0;
    unsigned kk[LSNN_EVENT_BATCH], delay[LSNN_EVENT_BATCH];
    const auto take_first_spikes = [&](unsigned t) {
        spikes = spike_list + (t & 1u) * NP;
        n_listed = t > 0 ? spike_count[t & 1u] : 0u;
        taken = 0;
        n_spikes = 0;
        if (live) {
            n_spikes = lsnn_take_spikes(spikes, n_listed, &taken, kk);
            lsnn_load_spike_delays(a.syn + (I * N + j), N, kk, n_spikes, delay);
        }
    };
    if (kSpikesEarly) take_first_spikes(T - 1);
    for (int ti = (int)T - 1; ti >= 0; --ti) {
        const unsigned t = (unsigned)ti;
        if (!kSpikesEarly) take_first_spikes(t);
        const bool refractory = (ref_word >> lane) & 1u;
        float v_next = 0.0f, b_next = 0.0f;  // step t - 1
        unsigned spk_next = 0, ref_next = 0, e_before = e_lo, row_word_next = 0;
        const LsnnInputs now = ahead;
        if (t > 0) {
            e_before = offs[t - 1];
            ahead = lsnn_load_inputs(a.in_channels, a.in_values, a.syn, N, e_before, e_lo, j,
                                     live);
            tr_v -= N;
            tr_b -= N;
            spk_row -= W;
            ref_row -= W;
            if (live) {
                v_next = *tr_v;
                b_next = *tr_b;
            }
            spk_next = spk_row[warp];
            ref_next = ref_row[warp];
            if (warp == 0 && lane < W) row_word_next = spk_row[lane];
        }
        // 1. Adjoints of the outputs of step t.
        for (unsigned q = 0; q < nq; ++q)
            if (t >= window[2 * q] && t < window[2 * q + 1]) carry = carry + g_psp[q * NP + j];
        g_z = g_z + g_z_rec + a.gain_out * carry;
        carry = carry * a.decay_out;
        if (a.reg_grad) g_z = g_z + reg;
        if (a.lin_cz && live) {
            g_z = g_z + a.lin_cz[(size_t)t * N + j];
            g_v = g_v + a.lin_cv[(size_t)t * N + j];
        }

        // 2. The neuron's equations backwards.
        const float z_prev = t == 0 ? (live ? z0[j] : 0.0f) : (((spk_word >> lane) & 1u) ? k.spike : 0.0f);
        const float gi = lsnn_neuron_step_backward(neuron, k, v_before, z_prev, b_after, refractory,
                                                   &g_v, &g_z, &g_b);
        g_i[slot * NP + j] = live ? gi : 0.0f;
        g_i[(slot + D + 1) * NP + j] = live ? gi : 0.0f;

        // 3. Weight gradients of the synapses that delivered at step t (arrival t + d); indices
        // into syn and the gradient rows fit 32 bits (fewer than 2^32 parameters). The
        // accumulation is written out at each kind of event: through a helper function ptxas
        // spilled 18 bytes in this loop instead of 4 (sm_90, 64 registers).
        if (live) {
            // The step's first input events as loaded during the step before, then the rest.
#pragma unroll
            for (unsigned q = 0; q < LSNN_INPUT_AHEAD; ++q) {
                if (q >= now.n) continue;
                const unsigned r = lsnn_arrival_row(slot, now.delay[q]);
                const float g = now.x[q] * g_i[r * NP + j];
                const unsigned at = now.channel[q] * N + j;
                if (in_shared) acc_sh[at] += g;
                else atomicAdd(&part[at], g);
            }
            for (unsigned e = e_lo + now.n; e < e_hi;) {
                unsigned ch[kInputBatch], d[kInputBatch];
                float x[kInputBatch];
                const unsigned n = lsnn_load_input_batch<kInputBatch>(
                    a.in_channels, a.in_values, a.syn, N, e, e_hi, j, ch, x, d,
                    [](const float2* s) { return __float_as_uint(s->y); });
#pragma unroll
                for (unsigned q = 0; q < kInputBatch; ++q) {
                    if (q >= n) continue;
                    const unsigned r = lsnn_arrival_row(slot, d[q]);
                    const float g = x[q] * g_i[r * NP + j];
                    const unsigned at = ch[q] * N + j;
                    if (in_shared) acc_sh[at] += g;
                    else atomicAdd(&part[at], g);
                }
                e += n;
            }
            if (t == 0) {
                // The initial state's z (any value, not only spikes).
                for (unsigned kk = 0; kk < N; ++kk) {
                    const float zk = z0[kk];
                    if (zk == 0.0f) continue;
                    const unsigned d = __float_as_uint(a.syn[(size_t)(I + kk) * N + j].y);
                    const unsigned r = lsnn_arrival_row(slot, d);
                    const float g = zk * g_i[r * NP + j];
                    const size_t at = (size_t)(I + kk) * N + j;
                    if (in_shared) acc_sh[at] += g;
                    else atomicAdd(&part[at], g);
                }
            } else {
                while (n_spikes != 0) {
#pragma unroll
                    for (unsigned q = 0; q < LSNN_EVENT_BATCH; ++q) {
                        if (q >= n_spikes) continue;
                        const unsigned r = lsnn_arrival_row(slot, delay[q]);
                        const float g = k.spike * g_i[r * NP + j];
                        const unsigned at = (I + kk[q]) * N + j;
                        if (in_shared) acc_sh[at] += g;
                        else atomicAdd(&part[at], g);
                    }
                    n_spikes = lsnn_take_spikes(spikes, n_listed, &taken, kk);
                    lsnn_load_spike_delays(a.syn + (I * N + j), N, kk, n_spikes, delay);
                }
            }
        }
        if (warp == 0 && t > 0) {
            const unsigned row = (t - 1) & 1u;
            lsnn_stage_spike_list(row_word_next, lane, W, spike_list + row * NP,
                                  spike_count + row);
        }
        __syncthreads();
        if (kSpikesEarly && t > 0) take_first_spikes(t - 1);

        // 4. dL/dz_{t-1} through the recurrent synapses, only where z_{t-1} can matter.
        g_z_rec = 0.0f;
        if (t > 0 && live) {
            const float v_m1 = v_next;
            const bool refractory_m1 = (ref_next >> lane) & 1u;
            const float thr = lsnn_threshold(neuron, b_before, k.v0);
            const float v_scaled = (v_m1 - thr) / thr;
            if (!refractory_m1 && lsnn_pseudo_derivative(v_scaled, k.dampening_factor) != 0.0f) {
                // Two calls, so each is compiled for one memory space.
                const float* g_slot = g_i + slot * NP;
                if (rows_in_shared)
                    g_z_rec = lsnn_rec_adjoint<true>(rows_sh + row_start, n_conn, g_slot, NP);
                else
                    g_z_rec = lsnn_rec_adjoint<false>(a.rec_rows + (size_t)j * N, n_conn, g_slot,
                                                      NP);
            }
        }
        b_after = b_before;
        v_before = v_next;
        b_before = b_next;
        spk_word = spk_next;
        ref_word = ref_next;
        e_hi = e_lo;
        e_lo = e_before;
        slot = slot == 0 ? D : slot - 1;
    }

    if (in_shared) {
        __syncthreads();
        for (unsigned p = j; p < rows; p += NP) part[p] = acc_sh[p];
    }
}

// Two builds of the same code: blocks of up to 1024 threads (N <= 1024) leave a thread 64
// registers, where ptxas spills; blocks of up to 256 (sMNIST's 224, store-recall's 32; two blocks
// per SM: at most 128 registers) let it batch the input events without spilling. The launcher
// picks by block size (layout::step_entry).
extern "C" __global__ void __launch_bounds__(1024) lsnn_backward(const BackwardArgs a) {
    lsnn_backward_block<1, false>(a);
}
extern "C" __global__ void __launch_bounds__(256, 2) lsnn_backward_256(const BackwardArgs a) {
    lsnn_backward_block<LSNN_INPUT_BATCH, LSNN_SPIKES_EARLY != 0>(a);
}
