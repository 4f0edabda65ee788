// A block reduction through shared memory: fine on a GPU, refused by the host emulation, which runs
// one thread at a time (tests/test_gpu_emulation.py).
__global__ void block_sum_kernel(const double* x, double* out, long long n) {
    __shared__ double partial[256];
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    partial[threadIdx.x] = i < n ? x[i] : 0.0;
    __syncthreads();
    for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}
