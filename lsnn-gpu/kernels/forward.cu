// The forward pass of a batch with the trace the backward needs: one thread block per batch
// element, one thread per neuron (blockDim.x = 32 * ceil(N / 32)), all T steps in one launch.
//
// Event-driven as the host's cell (lsnn-core/src/cell.rs): at each step thread j adds, for every
// input event and then for every neuron that spiked in the previous step (ascending), that
// synapse's weight into its own column of the delay ring (in shared memory), in the same order as
// the host, so every ring entry and therefore every spike is bit-identical. Then one
// `lsnn_neuron_step` per neuron. Spikes are exchanged as one ballot word per warp (double
// buffered: one __syncthreads per step) and stored as bits.
//
// Dynamic shared memory (floats unless noted): the recurrent columns' connected synapses
// [cols_capacity] (float2, first for its alignment), ring [D][NP], z values [2][NP], window sums
// of the readout [max_terms][NP], spike masks [2][W] (u32), term windows [max_terms][2] (u32),
// then, with cols_capacity > 0, the columns' connection bits [W][NP] and where each word's
// synapses start [W][NP] (u32).
//
// A spike's synapse to thread j is read every step it spikes: from global memory that is an L2
// round trip on every step's path from the barrier to the neuron update. So each block copies
// the recurrent columns into shared memory once per launch, compacted (DEEP R keeps ~12 % of
// w_rec), when they fit (cols_capacity; else global memory as before).
#include "lsnn.cuh"

#ifndef LSNN_COLS_IN_SHARED
#define LSNN_COLS_IN_SHARED 1  // 0: always read the recurrent synapses from global memory
#endif

// Thread j's recurrent column (synapses k -> j) in shared memory: bit k % 32 of
// bits[(k / 32) * NP + j] says whether k -> j is connected; the connected ones of word w are at
// syn[first[w * NP + j] ..], k ascending.
struct LsnnCols {
    const unsigned* bits;
    const unsigned* first;
    const float2* syn;
};

// The synapse k -> j; (0, 0) when not connected (a zero weight, which delivery skips).
__device__ __forceinline__ float2 lsnn_col_synapse(const LsnnCols& c, unsigned NP, unsigned j,
                                                   unsigned k) {
    const unsigned at = (k >> 5) * NP + j, bit = k & 31u;
    const unsigned word = c.bits[at];
    if (!((word >> bit) & 1u)) return make_float2(0.0f, 0.0f);
    return c.syn[c.first[at] + __popc(word & ((1u << bit) - 1u))];
}

// Copies every thread's recurrent column into shared memory when all of them fit in
// `a.cols_capacity` synapses (the same answer in every thread); false: read them from global
// memory. `scratch` (NP words) holds the columns' counts meanwhile and is free again on return.
__device__ bool lsnn_stage_cols(const ForwardArgs& a, float2* syn_sh, unsigned* bits,
                                unsigned* first, unsigned* scratch) {
    const unsigned N = a.n_rec, W = a.n_words, NP = blockDim.x, j = threadIdx.x;
    if (!LSNN_COLS_IN_SHARED || a.cols_capacity == 0) return false;
    const float2* col = a.syn + (a.n_in * N + j);
    unsigned count = 0;
    for (unsigned w = 0; w < W; ++w) {
        unsigned word = 0;
        // A word's 32 loads in flight together.
#pragma unroll
        for (unsigned b = 0; b < 32; ++b) {
            const unsigned k = w * 32u + b;
            if (j < N && k < N && col[k * N].x != 0.0f) word |= 1u << b;
        }
        bits[w * NP + j] = word;
        first[w * NP + j] = count;
        count += (unsigned)__popc(word);
    }
    unsigned before, total;
    lsnn_block_prefix(count, scratch, &before, &total);
    if (total > a.cols_capacity) return false;  // uniform: every thread summed the same counts
    // Each thread writes (and later reads) only its own column's entries: no barrier needed.
    unsigned at = before;
    for (unsigned w = 0; w < W; ++w) {
        first[w * NP + j] += before;
        for (unsigned word = bits[w * NP + j]; word != 0; word &= word - 1u)
            syn_sh[at++] = col[(w * 32u + (unsigned)(__ffs(word) - 1)) * N];
    }
    return true;
}

// One delivery of synapse weight w with delay `delay` and value x into thread j's column of
// the delay ring (head = the current step's slot); skipped for an unconnected synapse (w = 0),
// as the host's sparse rows skip it.
__device__ __forceinline__ void lsnn_deliver(float* ring, unsigned head, unsigned D, unsigned NP,
                                             unsigned j, float x, float w, unsigned delay) {
    if (w == 0.0f) return;
    unsigned slot = head + delay;
    if (slot >= D) slot -= D;
    ring[slot * NP + j] += x * w;
}

template <unsigned kInputBatch>
__device__ __forceinline__ void lsnn_forward_block(const ForwardArgs& a) {
    LSNN_DYNAMIC_SHARED(float, smem);
    const unsigned N = a.n_rec, D = a.n_delay, T = a.n_steps, W = a.n_words, I = a.n_in;
    const unsigned NP = blockDim.x;
    const unsigned b = blockIdx.x, j = threadIdx.x, lane = j & 31u, warp = j >> 5;
    const bool live = j < N;
    const LsnnConsts k = {a.dt, a.decay_b, a.one_minus_decay_b, a.v0, a.spike, a.dampening_factor};

    float2* cols_syn = (float2*)smem;
    float* ring = smem + 2 * a.cols_capacity;
    float* zval = ring + D * NP;
    float* acc = zval + 2 * NP;
    unsigned* masks = (unsigned*)(acc + a.max_terms * NP);
    unsigned* window = masks + 2 * W;
    unsigned* cols_bits = window + 2 * a.max_terms;
    const LsnnCols cols = {cols_bits, cols_bits + W * NP, cols_syn};
    // The ring is the scratch: it is set below.
    const bool cols_in_shared =
        lsnn_stage_cols(a, cols_syn, cols_bits, cols_bits + W * NP, (unsigned*)ring);

    const unsigned q0 = a.term_offsets[b];
    const unsigned nq = a.term_offsets[b + 1] - q0;
    for (unsigned q = j; q < nq; q += NP) {
        const uint4 tm = a.terms[q0 + q];
        window[2 * q] = tm.x;
        window[2 * q + 1] = tm.y;
    }
    for (unsigned q = 0; q < a.max_terms; ++q) acc[q * NP + j] = 0.0f;

    const size_t sb = (size_t)b * N + j;
    const LsnnNeuron neuron = live ? a.neurons[j] : make_float4(0.0f, 0.0f, 1.0f, 0.0f);
    float v = 0.0f, z = 0.0f, bb = 0.0f;
    int left = 0;
    if (live) {
        v = a.st_v[sb];
        z = a.st_z[sb];
        bb = a.st_b[sb];
        left = a.st_refr[sb];
        a.z0[sb] = z;
    }
    for (unsigned s = 0; s < D; ++s)
        ring[s * NP + j] = live ? a.st_ring[((size_t)b * D + s) * N + j] : 0.0f;
    zval[j] = live ? z : 0.0f;
    {
        const unsigned zb = __ballot_sync(LSNN_FULL_MASK, live && z != 0.0f);
        if (lane == 0) {
            masks[warp] = zb;
            a.tr_spk[(size_t)b * (T + 1) * W + warp] = zb;
        }
    }
    __syncthreads();

    const unsigned* offs = a.in_offsets + (size_t)b * T;
    const int n_refractory = (int)a.n_refractory;
    // The trace, a row per step: pointers moved on each step (64-bit index arithmetic per store
    // cost a dozen instructions each).
    float* tr_v = a.tr_v + (size_t)b * (T + 1) * N + j;
    float* tr_b = a.tr_b + (size_t)b * (T + 1) * N + j;
    unsigned* tr_spk = a.tr_spk + ((size_t)b * (T + 1) + 1) * W + warp;
    unsigned* tr_ref = a.tr_ref + (size_t)b * T * W + warp;
    const float2* rec_col = a.syn + (I * N + j);  // the thread's column of the recurrent rows
    const auto whole = [](const float2* syn) { return *syn; };
    // The synapses (kk[q] -> j) of a batch of n spikes, from the shared or the global copy.
    const auto load_spike_synapses = [&](const unsigned* kk, unsigned n, float2* out) {
        if (cols_in_shared) {
#pragma unroll
            for (unsigned q = 0; q < LSNN_EVENT_BATCH; ++q)
                if (q < n) out[q] = lsnn_col_synapse(cols, NP, j, kk[q]);
        } else {
            lsnn_load_spike_synapses(rec_col, N, kk, n, out, whole);
        }
    };
    unsigned head = 0;
    float psp = 0.0f, zs = 0.0f, lin = 0.0f;
    // Step t's input events are [e_lo, e_hi); the next bound is loaded a step early.
    unsigned e_lo = offs[0], e_hi = offs[1];
    LsnnInputs ahead = lsnn_load_inputs(a.in_channels, a.in_values, a.syn, N, e_lo, e_hi, j, live);
    for (unsigned t = 0; t < T; ++t) {
        const unsigned cur = t & 1u, nxt = cur ^ 1u;
        const bool refractory = left > 0;
        // Spikes of the previous step: which words are non-zero (one load per lane, W <= 32),
        // then the synapses of the first ones, loaded first thing so that their latency (L2)
        // passes during the trace and the inputs; they are delivered after the inputs.
        const unsigned spiked =
            __ballot_sync(LSNN_FULL_MASK, lane < W && masks[cur * W + lane] != 0u);
        LsnnSpikes spikes = lsnn_spikes(masks + cur * W, spiked);
        unsigned kk[LSNN_EVENT_BATCH];
        float2 s[LSNN_EVENT_BATCH];
        unsigned n_spikes = 0;
        if (live) {
            n_spikes = lsnn_next_spikes(spikes, kk);
            load_spike_synapses(kk, n_spikes, s);
        }
        const unsigned e_after = t + 2 <= T ? offs[t + 2] : e_hi;
        const LsnnInputs now = ahead;
        ahead = lsnn_load_inputs(a.in_channels, a.in_values, a.syn, N, e_hi, e_after, j, live);
        if (live) {
            if (a.record_trace) {
                *tr_v = v;
                *tr_b = bb;
            }
            // Inputs of step t, channels ascending (Cell::step_events): the first ones as
            // loaded during the step before, then the rest.
#pragma unroll
            for (unsigned q = 0; q < LSNN_INPUT_AHEAD; ++q)
                if (q < now.n) lsnn_deliver(ring, head, D, NP, j, now.x[q], now.w[q], now.delay[q]);
            for (unsigned e = e_lo + now.n; e < e_hi;) {
                unsigned ch[kInputBatch];
                float x[kInputBatch];
                float2 s[kInputBatch];
                const unsigned n = lsnn_load_input_batch<kInputBatch>(
                    a.in_channels, a.in_values, a.syn, N, e, e_hi, j, ch, x, s, whole);
#pragma unroll
                for (unsigned q = 0; q < kInputBatch; ++q)
                    if (q < n)
                        lsnn_deliver(ring, head, D, NP, j, x[q], s[q].x, __float_as_uint(s[q].y));
                e += n;
            }
            // Then the spikes, neurons ascending (Cell::deliver_recurrent).
            const float* zv = zval + cur * NP;
            while (n_spikes != 0) {
#pragma unroll
                for (unsigned q = 0; q < LSNN_EVENT_BATCH; ++q)
                    if (q < n_spikes)
                        lsnn_deliver(ring, head, D, NP, j, zv[kk[q]], s[q].x,
                                     __float_as_uint(s[q].y));
                n_spikes = lsnn_next_spikes(spikes, kk);
                load_spike_synapses(kk, n_spikes, s);
            }
            // Cell::update_neurons.
            const float i_t = ring[head * NP + j];
            lsnn_neuron_step(neuron, k, &v, &z, &bb, i_t, refractory);
            ring[head * NP + j] = 0.0f;
            left = z > 0.0f ? n_refractory : (left > 0 ? left - 1 : 0);
        }
        head = (head + 1 == D) ? 0 : head + 1;
        e_lo = e_hi;
        e_hi = e_after;
        const unsigned zb = __ballot_sync(LSNN_FULL_MASK, live && z != 0.0f);
        const unsigned rb = __ballot_sync(LSNN_FULL_MASK, live && refractory);
        if (lane == 0) {
            masks[nxt * W + warp] = zb;
            *tr_spk = zb;
            *tr_ref = rb;
        }
        tr_v += N;
        tr_b += N;
        tr_spk += W;
        tr_ref += W;
        zval[nxt * NP + j] = live ? z : 0.0f;
        if (live) {
            // The readout filter and its window sums (bptt::readout_element).
            psp = psp * a.decay_out + a.gain_out * z;
            for (unsigned q = 0; q < nq; ++q)
                if (t >= window[2 * q] && t < window[2 * q + 1]) acc[q * NP + j] += psp;
            zs = zs + z;
            if (a.lin_cz) lin += a.lin_cz[(size_t)t * N + j] * z + a.lin_cv[(size_t)t * N + j] * v;
        }
        __syncthreads();
    }

    if (live) {
        if (a.record_trace) {
            *tr_v = v;  // row T
            *tr_b = bb;
        }
        a.st_v[sb] = v;
        a.st_z[sb] = z;
        a.st_b[sb] = bb;
        a.st_refr[sb] = left;
        unsigned slot = head;
        for (unsigned s = 0; s < D; ++s) {
            a.st_ring[((size_t)b * D + s) * N + j] = ring[slot * NP + j];
            slot = (slot + 1 == D) ? 0 : slot + 1;
        }
        a.zsum[sb] = zs;
        if (a.lin_part) a.lin_part[sb] = lin;
        for (unsigned q = 0; q < nq; ++q) a.psp_sum[(size_t)(q0 + q) * N + j] = acc[q * NP + j];
    }
    __syncthreads();

    // Logits of every term: mean readout over its window (bptt::readout_element, same order).
    const unsigned O = a.n_out;
    for (unsigned p = j; p < nq * O; p += NP) {
        const unsigned q = p / O, o = p - q * O;
        float dot = 0.0f;
        for (unsigned jj = 0; jj < N; ++jj) dot = dot + acc[q * NP + jj] * a.w_out[jj * O + o];
        const uint4 tm = a.terms[q0 + q];
        const float len = (float)(tm.y - tm.x);
        a.logits[(size_t)(q0 + q) * O + o] = dot / len + (a.b_out ? a.b_out[o] : 0.0f);
    }
}

// Two builds of the same code, as lsnn_backward's: up to 1024 threads per block (64 registers
// a thread) and up to 256 (two blocks per SM: at most 128 registers, no spill); the launcher
// picks by block size (layout::step_entry).
extern "C" __global__ void __launch_bounds__(1024) lsnn_forward(const ForwardArgs a) {
    lsnn_forward_block<1>(a);
}
extern "C" __global__ void __launch_bounds__(256, 2) lsnn_forward_256(const ForwardArgs a) {
    lsnn_forward_block<LSNN_INPUT_BATCH>(a);
}
