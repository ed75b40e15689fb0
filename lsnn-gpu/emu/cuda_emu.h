// A small CPU emulation of the CUDA features lsnn-gpu's kernels use, so that their very sources
// (kernels/*.cu) run on the CPU in tests: one std::thread per CUDA thread, the blocks of a grid
// together (each with its own shared memory, poisoned with NaN), __syncthreads as a block
// barrier, warp votes and shuffles through per-warp barriers, atomics as relaxed C++ atomics.
// It checks the kernels' logic (indexing, barriers, the algorithm against the host trainer);
// it says nothing about speed.
//
// Built with -fsanitize=thread (LSNN_EMU_DEFINES, see build.rs) it is also a race checker for
// the kernels: ThreadSanitizer sees the order CUDA guarantees and no more. __syncthreads orders
// a block's memory; a warp vote or shuffle exchanges its values but orders no memory (CUDA
// promises that only of __syncwarp), and atomics are relaxed, as CUDA's are. So a shared or
// global access that another thread of the grid (its warp included) makes without a barrier
// in between is reported. With -fsanitize=address, an access past any buffer (the dynamic
// shared memory is allocated at exactly the launch's size) is; with -fsanitize=undefined,
// undefined behaviour such as a shift by 32 or a misaligned vector access.
#pragma once

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
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

// Aligned as CUDA's vector types are: a GPU faults on a misaligned vector access, and UBSan's
// alignment check then reports it here.
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
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
extern thread_local float* shared_mem;  // the block's dynamic shared memory
inline Warp& warp() { return (*block->warps)[thread_idx.x / 32]; }

#if defined(__SANITIZE_THREAD__)
extern "C" void AnnotateIgnoreSyncBegin(const char* file, int line);
extern "C" void AnnotateIgnoreSyncEnd(const char* file, int line);
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif

// The lanes of a warp meet (the emulation of a vote or shuffle needs it) without telling
// ThreadSanitizer that they did: on a GPU these order no memory. (The barrier's own state is
// then unordered too, hence its accesses are not checked either.)
inline void warp_meet(Warp& w) {
#if defined(__SANITIZE_THREAD__)
    AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
    w.bar->arrive_and_wait();
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
    AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
#else
    w.bar->arrive_and_wait();
#endif
}

// A lane's value for the other lanes of its warp (relaxed: no order implied).
template <typename T>
inline void post(T& slot, T v) { std::atomic_ref<T>(slot).store(v, std::memory_order_relaxed); }
template <typename T>
inline T read(T& slot) { return std::atomic_ref<T>(slot).load(std::memory_order_relaxed); }

template <typename T>
inline std::atomic_ref<T> atomic(T* p) { return std::atomic_ref<T>(*p); }
}  // namespace emu

extern thread_local dim3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;
#define threadIdx (emu::thread_idx)

#define LSNN_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(emu::shared_mem)

inline void __syncthreads() { emu::block->bar->arrive_and_wait(); }

inline unsigned __ballot_sync(unsigned, int pred) {
    emu::Warp& w = emu::warp();
    const unsigned lane = emu::thread_idx.x & 31u;
    emu::post(w.u[lane], pred ? 1u : 0u);
    emu::warp_meet(w);
    unsigned r = 0;
    for (unsigned l = 0; l < 32; ++l) r |= emu::read(w.u[l]) << l;
    emu::warp_meet(w);
    return r;
}

inline float __shfl_xor_sync(unsigned, float v, int o) {
    emu::Warp& w = emu::warp();
    const unsigned lane = emu::thread_idx.x & 31u;
    emu::post(w.f[lane], v);
    emu::warp_meet(w);
    const float r = emu::read(w.f[lane ^ (unsigned)o]);
    emu::warp_meet(w);
    return r;
}

inline unsigned __shfl_up_sync(unsigned, unsigned v, unsigned delta) {
    emu::Warp& w = emu::warp();
    const unsigned lane = emu::thread_idx.x & 31u;
    emu::post(w.u[lane], v);
    emu::warp_meet(w);
    const unsigned r = lane >= delta ? emu::read(w.u[lane - delta]) : v;
    emu::warp_meet(w);
    return r;
}

inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
inline unsigned __float_as_uint(float x) { unsigned u; std::memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; std::memcpy(&x, &u, 4); return x; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
using std::isfinite;

// CUDA's atomics are relaxed: they order nothing else.
inline float atomicAdd(float* p, float v) {
    return emu::atomic(p).fetch_add(v, std::memory_order_relaxed);
}
inline unsigned atomicAdd(unsigned* p, unsigned v) {
    return emu::atomic(p).fetch_add(v, std::memory_order_relaxed);
}
inline unsigned atomicOr(unsigned* p, unsigned v) {
    return emu::atomic(p).fetch_or(v, std::memory_order_relaxed);
}
inline unsigned atomicMin(unsigned* p, unsigned v) {
    auto a = emu::atomic(p);
    unsigned old = a.load(std::memory_order_relaxed);
    while (v < old && !a.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
    }
    return old;
}
