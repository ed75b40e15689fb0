// A small CPU emulation of the CUDA features lsnn-gpu's kernels use, so that their very sources
// (kernels/*.cu) run on the CPU in tests: one std::thread per CUDA thread, the blocks of a grid
// one after the other, __syncthreads as a block barrier, warp votes and shuffles through
// per-warp barriers, atomics under one lock, shared memory poisoned with NaN before each block.
// It checks the kernels' logic (indexing, barriers, the algorithm against the host trainer);
// it says nothing about speed, and memory-model subtleties beyond barriers need a real device
// (compute-sanitizer racecheck there).
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(x) alignas(x)
#define __shared__ static

struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct uint2 { unsigned x, y; };
struct uint4 { unsigned x, y, z, w; };
struct dim3 { unsigned x, y, z; };

inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

namespace emu {
struct Warp {
    std::barrier<>* bar;
    unsigned u[32];
    float f[32];
};
struct Block {
    std::barrier<>* bar;
    std::vector<Warp>* warps;
};
extern thread_local dim3 thread_idx;
extern thread_local Block* block;
extern dim3 block_idx_all;  // unused
extern std::mutex atomic_lock;
extern std::vector<float> shared_mem;
inline Warp& warp() { return (*block->warps)[thread_idx.x / 32]; }
}  // namespace emu

extern thread_local dim3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;
#define threadIdx (emu::thread_idx)

#define LSNN_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(emu::shared_mem.data())

inline void __syncthreads() { emu::block->bar->arrive_and_wait(); }

inline unsigned __ballot_sync(unsigned, int pred) {
    emu::Warp& w = emu::warp();
    const unsigned lane = emu::thread_idx.x & 31u;
    w.u[lane] = pred ? 1u : 0u;
    w.bar->arrive_and_wait();
    unsigned r = 0;
    for (unsigned l = 0; l < 32; ++l) r |= w.u[l] << l;
    w.bar->arrive_and_wait();
    return r;
}

inline float __shfl_xor_sync(unsigned, float v, int o) {
    emu::Warp& w = emu::warp();
    const unsigned lane = emu::thread_idx.x & 31u;
    w.f[lane] = v;
    w.bar->arrive_and_wait();
    const float r = w.f[lane ^ (unsigned)o];
    w.bar->arrive_and_wait();
    return r;
}

inline unsigned __shfl_up_sync(unsigned, unsigned v, unsigned delta) {
    emu::Warp& w = emu::warp();
    const unsigned lane = emu::thread_idx.x & 31u;
    w.u[lane] = v;
    w.bar->arrive_and_wait();
    const unsigned r = lane >= delta ? w.u[lane - delta] : v;
    w.bar->arrive_and_wait();
    return r;
}

inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
inline unsigned __float_as_uint(float x) { unsigned u; std::memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; std::memcpy(&x, &u, 4); return x; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
using std::isfinite;

inline float atomicAdd(float* p, float v) {
    std::lock_guard<std::mutex> g(emu::atomic_lock);
    const float old = *p;
    *p = old + v;
    return old;
}
inline unsigned atomicAdd(unsigned* p, unsigned v) {
    std::lock_guard<std::mutex> g(emu::atomic_lock);
    const unsigned old = *p;
    *p = old + v;
    return old;
}
inline unsigned atomicOr(unsigned* p, unsigned v) {
    std::lock_guard<std::mutex> g(emu::atomic_lock);
    const unsigned old = *p;
    *p = old | v;
    return old;
}
inline unsigned atomicMin(unsigned* p, unsigned v) {
    std::lock_guard<std::mutex> g(emu::atomic_lock);
    const unsigned old = *p;
    *p = old < v ? old : v;
    return old;
}
