// The CPU emulator's launcher and the kernels (their CUDA sources, included as they are).
#include "cuda_emu.h"

namespace emu {
thread_local dim3 thread_idx;
thread_local Block* block;
std::mutex atomic_lock;
std::vector<float> shared_mem;
}  // namespace emu
thread_local dim3 blockIdx;
dim3 blockDim;
dim3 gridDim;

#include "../kernels/forward.cu"
#include "../kernels/backward.cu"
#include "../kernels/loss.cu"
#include "../kernels/update.cu"

// Runs body() as a grid of `grid` blocks of `block` threads with `shared_bytes` of dynamic shared
// memory (poisoned with NaN before each block). `sequential`: for kernels without barriers or
// warp operations, the threads of a block run one after the other on this thread.
static void run_grid(unsigned grid, unsigned block, unsigned shared_bytes,
                     const std::function<void()>& body, bool sequential = false) {
    // One grid at a time: the emulator's globals (shared memory, dimensions) are process-wide.
    static std::mutex one_grid;
    std::lock_guard<std::mutex> hold(one_grid);
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    const unsigned n_warps = (block + 31) / 32;
    for (unsigned b = 0; b < grid; ++b) {
        emu::shared_mem.assign(shared_bytes / 4 + 16, std::numeric_limits<float>::quiet_NaN());
        if (sequential) {
            for (unsigned t = 0; t < block; ++t) {
                emu::thread_idx = {t, 0, 0};
                blockIdx = {b, 0, 0};
                emu::block = nullptr;  // a barrier here would be a bug: crash loudly
                body();
            }
            continue;
        }
        std::barrier<> bar((std::ptrdiff_t)block);
        std::vector<std::barrier<>*> warp_bars;
        std::vector<emu::Warp> warps(n_warps);
        for (unsigned w = 0; w < n_warps; ++w) {
            const unsigned lanes = (w + 1) * 32 <= block ? 32 : block - w * 32;
            warp_bars.push_back(new std::barrier<>((std::ptrdiff_t)lanes));
            warps[w].bar = warp_bars.back();
        }
        emu::Block blk{&bar, &warps};
        std::vector<std::thread> threads;
        threads.reserve(block);
        for (unsigned t = 0; t < block; ++t) {
            threads.emplace_back([&, t, b] {
                emu::thread_idx = {t, 0, 0};
                blockIdx = {b, 0, 0};
                emu::block = &blk;
                body();
            });
        }
        for (auto& th : threads) th.join();
        for (auto* p : warp_bars) delete p;
    }
}

extern "C" {
// The step kernels' build as the launcher picks it (layout::step_entry): up to 256 threads the
// `_256` one.
void emu_lsnn_forward(unsigned grid, unsigned block, unsigned shared, const ForwardArgs* a) {
    if (block <= 256) run_grid(grid, block, shared, [a] { lsnn_forward_256(*a); });
    else run_grid(grid, block, shared, [a] { lsnn_forward(*a); });
}
void emu_lsnn_backward(unsigned grid, unsigned block, unsigned shared, const BackwardArgs* a) {
    if (block <= 256) run_grid(grid, block, shared, [a] { lsnn_backward_256(*a); });
    else run_grid(grid, block, shared, [a] { lsnn_backward(*a); });
}
void emu_lsnn_rec_rows(unsigned n_rec, const float2* syn, unsigned n_in, float2* rows,
                       unsigned* count) {
    run_grid(n_rec, 32, 0, [=] { lsnn_rec_rows(syn, n_in, n_rec, rows, count); });
}
void emu_lsnn_loss(unsigned grid, unsigned block, unsigned shared, const LossArgs* a) {
    run_grid(grid, block, shared, [a] { lsnn_loss(*a); });
}
void emu_lsnn_clear(unsigned* flags, unsigned* counters) {
    run_grid(1, 32, 0, [=] { lsnn_clear(flags, counters); }, true);
}
void emu_lsnn_reduce_grads(unsigned grid, unsigned block, unsigned shared, const ReduceArgs* a) {
    run_grid(grid, block, shared, [a] { lsnn_reduce_grads(*a); }, true);
}
void emu_lsnn_update(unsigned grid, unsigned block, unsigned shared, const UpdateArgs* a) {
    run_grid(grid, block, shared, [a] { lsnn_update(*a); }, true);
}
void emu_lsnn_reconnect(unsigned grid, unsigned block, unsigned shared, const ReconnectArgs* a) {
    run_grid(grid, block, shared, [a] { lsnn_reconnect(*a); });
}
void emu_lsnn_philox_test(unsigned long long key, unsigned stream, unsigned n, uint4* out) {
    run_grid((n + 255) / 256, 256, 0, [=] { lsnn_philox_test(key, stream, n, out); }, true);
}
}
