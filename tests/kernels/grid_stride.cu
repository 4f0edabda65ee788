// Kernels of tests/test_gpu_emulation.py: the same text is compiled by the host emulation
// (g++ under gdsolve/gpu/cuda_host_shim.h) and by NVRTC. Scalars are long long / double, config
// structs by value, arrays as pointers (gdsolve.gpu.kernels' convention).
#include "gdsolve/math/optimizers.h"

#define GRID_STRIDE_LOOP(i, n)                                                            \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);         \
         i += (long long)blockDim.x * gridDim.x)

// y = a * x + y, times weight[i] when weight is not null.
template <class T>
__global__ void axpy_kernel(double a, const T* x, T* y, const T* weight, long long n) {
    const T at = (T)a;
    GRID_STRIDE_LOOP(i, n) {
        const T w = weight ? weight[i] : T(1);
        y[i] = w * (at * x[i] + y[i]);
    }
}

// Visits: out[i] counts how many threads wrote element i (must be exactly one each).
__global__ void coverage_kernel(long long* out, long long n) {
    GRID_STRIDE_LOOP(i, n) { out[i] += 1; }
}

// One thread per (x, y, z) cell of an nx x ny x nz box (row-major, x fastest), 3-D grid and block.
__global__ void index_3d_kernel(long long* cell, long long* block_of, long long nx, long long ny,
                                long long nz) {
    const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long y = (long long)blockIdx.y * blockDim.y + threadIdx.y;
    const long long z = (long long)blockIdx.z * blockDim.z + threadIdx.z;
    if (x >= nx || y >= ny || z >= nz) return;
    const long long i = (z * ny + y) * nx + x;
    cell[i] = i;
    block_of[i] = ((long long)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
}

// total += sum(x) and count += n through atomics, from a grid-stride loop.
__global__ void atomic_sum_kernel(const double* x, double* total, unsigned long long* count,
                                  int* max_index, long long n) {
    GRID_STRIDE_LOOP(i, n) {
        atomicAdd(total, x[i]);
        atomicAdd(count, 1ull);
        atomicMax(max_index, (int)i);
    }
}

// The struct arrives by value: copy the fields the backend's record fills.
__global__ void optimizer_config_fields_kernel(gds::OptimizerConfig cfg, double* out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    out[0] = cfg.code;
    out[1] = cfg.lr;
    out[2] = cfg.momentum;
    out[3] = cfg.nesterov;
    out[4] = cfg.beta1;
    out[5] = cfg.beta2;
    out[6] = cfg.eps;
    out[7] = cfg.weight_decay;
    out[8] = cfg.amsgrad;
    out[9] = cfg.decoupled_weight_decay;
}

// Every thread of every block reads the struct.
__global__ void optimizer_config_lr_kernel(gds::OptimizerConfig cfg, double* out, long long n) {
    GRID_STRIDE_LOOP(i, n) { out[i] = cfg.lr; }
}

// out[0] = 1 when p arrived as a null pointer (None, or a size-0 array as CuPy passes it).
__global__ void is_null_kernel(const double* p, long long* out) {
    if (blockIdx.x == 0 && threadIdx.x == 0) out[0] = p == nullptr ? 1 : 0;
}
