// Runs the kernels' CUDA C++ as host C++, to check their index math and arithmetic on a
// machine without a GPU (CI). A block runs as blockDim.x real threads with a barrier for
// __syncthreads, so a missing barrier can show up as wrong results; blocks run one by one.
// This says nothing about the device compiler, timing or the real hardware: parity with
// the CPU backend is for a GPU run to show.
#pragma once

#include <barrier>
#include <cmath>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__

struct Dim3 {
    unsigned x = 1, y = 1, z = 1;
};
thread_local Dim3 threadIdx, blockIdx;
Dim3 blockDim, gridDim;
std::barrier<>* block_barrier = nullptr;

inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) {
        r |= ((x >> i) & 1u) << (31 - i);
    }
    return r;
}
// Round-to-nearest double operations; the host build (plain x86-64, no FMA) never fuses them.
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
using std::round;
inline int __ffs(int x) { return __builtin_ffs(x); }
inline void __syncthreads() { block_barrier->arrive_and_wait(); }

// The kernels' `extern __shared__ u64 s[]`: one block at a time, so one array serves all.
alignas(16) unsigned long long s[1 << 16];

// kernel<<<grid, block>>>(...) as launch(grid, block, [&] { kernel(...); }): `block` threads
// run every block in turn, meeting at a barrier before the next one reuses `s`. A 2-D grid
// (grid × grid_y blocks) as launch(grid, block, kernel, grid_y); blocks run y-major.
template <class F>
void launch(unsigned grid, unsigned block, F kernel, unsigned grid_y = 1) {
    gridDim.x = grid;
    gridDim.y = grid_y;
    blockDim.x = block;
    std::barrier<> barrier(block);
    block_barrier = &barrier;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block; ++t) {
        threads.emplace_back([&, t] {
            threadIdx.x = t;
            for (unsigned y = 0; y < grid_y; ++y) {
                blockIdx.y = y;
                for (unsigned b = 0; b < grid; ++b) {
                    blockIdx.x = b;
                    kernel();
                    barrier.arrive_and_wait();
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
}
