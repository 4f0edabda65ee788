// gdsolve/gpu/kernels/prelude.cuh - included by every kernel source: the grid-stride loop, so
// that any grid covers any n (kernels hold no shared memory and no __syncthreads: each thread
// runs on its own, which is also what lets gdsolve/gpu/host_emulation.py run them on a CPU).
#pragma once
#define GDS_GRID_STRIDE_LOOP(i, n)                                                        \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);         \
         i += (long long)blockDim.x * gridDim.x)
