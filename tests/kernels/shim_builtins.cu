// Uses every function and type cuda_host_shim.h defines, so that compiling this file with NVRTC
// proves the shim offers nothing CUDA lacks (tests/test_gpu_emulation.py runs it on both).
__constant__ double kConstantTable[2] = {1.0, 2.0};

__device__ __forceinline__ double forced(double x) { return x * kConstantTable[1]; }
__device__ __noinline__ double not_inlined(double x) { return x + kConstantTable[0]; }
__host__ __device__ inline double both_sides(double x) { return x; }

template <class T>
__device__ void every_atomic_of(T* p, T v) {
    atomicAdd(p, v);
    atomicExch(p, v);
}

template <class T>
__device__ void every_integer_atomic_of(T* p, T v) {
    atomicMax(p, v);
    atomicMin(p, v);
    atomicAnd(p, v);
    atomicOr(p, v);
    atomicXor(p, v);
    atomicCAS(p, v, v);
}

__global__ void __launch_bounds__(256) shim_builtins_kernel(int* __restrict__ i,
                                                            unsigned int* u,
                                                            unsigned long long* ull,
                                                            long long* ll, float* f, double* d) {
    const dim3 g = gridDim;
    const dim3 b = blockDim;
    const uint3 t = threadIdx;
    const uint3 k = blockIdx;
    const dim3 from_uint3(make_uint3(t.x, k.y, g.z + b.x));
    if (from_uint3.x + from_uint3.y + from_uint3.z == 0) return;
    every_atomic_of(i, 1);
    every_atomic_of(u, 1u);
    every_atomic_of(ull, 1ull);
    every_integer_atomic_of(i, 1);
    every_integer_atomic_of(u, 1u);
    every_integer_atomic_of(ull, 1ull);
    atomicMax(ll, 1ll);
    atomicMin(ll, 1ll);
    atomicAdd(f, 1.0f);
    atomicExch(f, 1.0f);
    atomicAdd(d, both_sides(not_inlined(forced(1.0))));
    atomicSub(i, 1);
    atomicSub(u, 1u);
    __threadfence();
    __threadfence_block();
}
