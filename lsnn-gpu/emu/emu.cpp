// The CPU emulator's launcher and the kernels (their CUDA sources, included as they are).
#include "cuda_emu.h"

namespace emu {
thread_local dim3 thread_idx;
thread_local Block* block;
thread_local float* shared_mem;
}  // namespace emu
thread_local dim3 blockIdx;
dim3 blockDim;
dim3 gridDim;

#include "../kernels/forward.cu"
#include "../kernels/backward.cu"
#include "../kernels/loss.cu"
#include "../kernels/update.cu"

#if defined(__SANITIZE_THREAD__)
// The Rust side (the host trainer's rayon pool, the test harness) is not instrumented, so
// ThreadSanitizer cannot see its synchronisation: reports with a Rust frame in either access's
// stack are not about the kernels. A race between two emulated CUDA threads has only C++ frames.
extern "C" const char* __tsan_default_suppressions() {
    return "race:.rs$\n"  // a frame in a Rust source file
           "race:^_R\n";  // a v0-mangled Rust function without a file
}
// Exit non-zero after the run when anything was reported (the test binary then fails).
extern "C" const char* __tsan_default_options() { return "exitcode=66:halt_on_error=0"; }
#endif
#if defined(__SANITIZE_ADDRESS__)
// Out-of-bounds accesses are what the address build checks; the Rust side's leaks are not.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }
#endif
// UBSan's reports with their stack, so that they name the kernel (unused without UBSan).
extern "C" const char* __ubsan_default_options() { return "print_stacktrace=1"; }

// A kernel with a planted bug of each kind the sanitizer builds must report (src/emu.rs runs
// them in a child process): 0 is correct, 1-3 are races, 4 reads past the shared memory, 5 is
// undefined behaviour, 6 a misaligned vector load.
static void lsnn_probe(unsigned kind, float* global) {
    LSNN_DYNAMIC_SHARED(float, smem);
    const unsigned t = threadIdx.x;
    if (kind != 2 && blockIdx.x != 0) return;  // the second block only for the race between blocks
    switch (kind) {
        case 0:  // ordered by the block's barrier
            if (t == 0) smem[0] = 1.0f;
            __syncthreads();
            if (t == 33) global[0] = smem[0];
            break;
        case 1:  // another lane of the warp reads it after a vote only
            if (t == 0) smem[0] = 1.0f;
            (void)__ballot_sync(LSNN_FULL_MASK, 1);
            if (t == 1) global[0] = smem[0];
            break;
        case 2:  // every block writes the same word
            if (t == 0) global[0] = (float)blockIdx.x;
            break;
        case 3:  // a plain read of a word another warp adds to atomically
            if (t == 0) atomicAdd(&global[0], 1.0f);
            if (t == 40) global[1] = global[0];
            break;
        case 4:  // one float past the block's dynamic shared memory
            if (t == 0) global[0] = smem[blockDim.x];
            break;
        case 5:  // a shift by the word's width: undefined in C++ (nvcc may make anything of it)
            if (t == 0) global[0] = (float)(1u << (blockDim.x / 2));
            break;
        case 6:  // a float2 read from an address that is not a multiple of 8 (a GPU faults)
            if (t == 0) global[0] = reinterpret_cast<const float2*>(smem + 1)->x;
            break;
        default:
            break;
    }
}

enum class Threads {
    // one after the other on the caller's thread: kernels without barriers or warp operations
    InTurn,
    // a std::thread each, a block at a time: kernels with static __shared__ arrays (one copy)
    BlockAtATime,
    // a std::thread each, blocks together (up to kMaxThreads threads): as on a GPU, so that a
    // race between blocks shows too
    BlocksTogether,
};
constexpr unsigned kMaxThreads = 1024;

// A block's dynamic shared memory: exactly `bytes` (so AddressSanitizer sees an over-read),
// poisoned with NaN (so a read before a write shows in the results).
static std::vector<float> poisoned_shared(unsigned bytes) {
    return std::vector<float>((bytes + 3) / 4, std::numeric_limits<float>::quiet_NaN());
}

// The threads of blocks [first, first + count), each block with its own barriers and shared
// memory.
static void run_blocks(unsigned first, unsigned count, unsigned block, unsigned shared_bytes,
                       const std::function<void()>& body) {
    const unsigned n_warps = (block + 31) / 32;
    std::vector<std::vector<float>> shared(count);
    std::vector<std::unique_ptr<std::barrier<>>> bars;
    std::vector<std::unique_ptr<std::barrier<>>> warp_bars;
    std::vector<std::vector<emu::Warp>> warps(count, std::vector<emu::Warp>(n_warps));
    std::vector<emu::Block> blocks(count);
    for (unsigned i = 0; i < count; ++i) {
        shared[i] = poisoned_shared(shared_bytes);
        bars.push_back(std::make_unique<std::barrier<>>((std::ptrdiff_t)block));
        for (unsigned w = 0; w < n_warps; ++w) {
            const unsigned lanes = (w + 1) * 32 <= block ? 32 : block - w * 32;
            warp_bars.push_back(std::make_unique<std::barrier<>>((std::ptrdiff_t)lanes));
            warps[i][w].bar = warp_bars.back().get();
        }
        blocks[i] = emu::Block{bars.back().get(), &warps[i]};
    }
    std::vector<std::thread> threads;
    threads.reserve((size_t)count * block);
    for (unsigned i = 0; i < count; ++i) {
        for (unsigned t = 0; t < block; ++t) {
            threads.emplace_back([&, t, i] {
                emu::thread_idx = {t, 0, 0};
                blockIdx = {first + i, 0, 0};
                emu::block = &blocks[i];
                emu::shared_mem = shared[i].data();
                body();
            });
        }
    }
    for (auto& th : threads) th.join();
}

// Runs body() as a grid of `grid` blocks of `block` threads with `shared_bytes` of dynamic shared
// memory.
static void run_grid(unsigned grid, unsigned block, unsigned shared_bytes,
                     const std::function<void()>& body, Threads how) {
    // One grid at a time: the emulator's dimensions are process-wide.
    static std::mutex one_grid;
    std::lock_guard<std::mutex> hold(one_grid);
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    if (how == Threads::InTurn) {
        for (unsigned b = 0; b < grid; ++b) {
            std::vector<float> shared = poisoned_shared(shared_bytes);
            for (unsigned t = 0; t < block; ++t) {
                emu::thread_idx = {t, 0, 0};
                blockIdx = {b, 0, 0};
                emu::block = nullptr;  // a barrier here would be a bug: crash loudly
                emu::shared_mem = shared.data();
                body();
            }
        }
        return;
    }
    const unsigned together =
        how == Threads::BlocksTogether ? std::max(1u, kMaxThreads / block) : 1u;
    for (unsigned b = 0; b < grid; b += together)
        run_blocks(b, std::min(together, grid - b), block, shared_bytes, body);
}

extern "C" {
// The step kernels, a function per build: the tests run the one the launcher picks
// (layout::step_entry).
void emu_lsnn_forward_256(unsigned grid, unsigned block, unsigned shared, const ForwardArgs* a) {
    run_grid(grid, block, shared, [a] { lsnn_forward_256(*a); }, Threads::BlocksTogether);
}
void emu_lsnn_forward(unsigned grid, unsigned block, unsigned shared, const ForwardArgs* a) {
    run_grid(grid, block, shared, [a] { lsnn_forward(*a); }, Threads::BlocksTogether);
}
void emu_lsnn_backward_256(unsigned grid, unsigned block, unsigned shared, const BackwardArgs* a) {
    run_grid(grid, block, shared, [a] { lsnn_backward_256(*a); }, Threads::BlocksTogether);
}
void emu_lsnn_backward(unsigned grid, unsigned block, unsigned shared, const BackwardArgs* a) {
    run_grid(grid, block, shared, [a] { lsnn_backward(*a); }, Threads::BlocksTogether);
}
void emu_lsnn_rec_rows(unsigned n_rec, const float2* syn, unsigned n_in, float2* rows,
                       unsigned* count) {
    run_grid(n_rec, 32, 0, [=] { lsnn_rec_rows(syn, n_in, n_rec, rows, count); },
             Threads::BlocksTogether);
}
void emu_lsnn_loss(unsigned grid, unsigned block, unsigned shared, const LossArgs* a) {
    run_grid(grid, block, shared, [a] { lsnn_loss(*a); }, Threads::BlocksTogether);
}
void emu_lsnn_clear(unsigned* flags, unsigned* counters) {
    run_grid(1, 32, 0, [=] { lsnn_clear(flags, counters); }, Threads::InTurn);
}
void emu_lsnn_reduce_grads(unsigned grid, unsigned block, unsigned shared, const ReduceArgs* a) {
    run_grid(grid, block, shared, [a] { lsnn_reduce_grads(*a); }, Threads::InTurn);
}
void emu_lsnn_update(unsigned grid, unsigned block, unsigned shared, const UpdateArgs* a) {
    run_grid(grid, block, shared, [a] { lsnn_update(*a); }, Threads::InTurn);
}
void emu_lsnn_reconnect(unsigned grid, unsigned block, unsigned shared, const ReconnectArgs* a) {
    run_grid(grid, block, shared, [a] { lsnn_reconnect(*a); }, Threads::BlockAtATime);
}
// Grid 2 x 64 threads, 64 floats of dynamic shared memory; `global` holds 2 floats.
void emu_lsnn_probe(unsigned kind, float* global) {
    run_grid(2, 64, 64 * 4, [=] { lsnn_probe(kind, global); }, Threads::BlocksTogether);
}
void emu_lsnn_philox_test(unsigned long long key, unsigned stream, unsigned n, uint4* out) {
    run_grid((n + 255) / 256, 256, 0, [=] { lsnn_philox_test(key, stream, n, out); }, Threads::InTurn);
}
}
