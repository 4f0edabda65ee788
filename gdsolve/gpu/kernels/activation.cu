// gdsolve/gpu/kernels/activation.cu - math/activations.h elementwise on the device.
#include "prelude.cuh"
#include "gdsolve/math/activations.h"

// a = f(z) elementwise (a may alias z).
template <class T>
__global__ void activation_forward_kernel(long long code, const T* z, T* a, long long n) {
    const int c = (int)code;
    GDS_GRID_STRIDE_LOOP(i, n) { a[i] = gds::activation_value<T>(c, z[i]); }
}

// Backpropagation through f: delta *= f'(z), with f' expressed through the output a = f(z).
template <class T>
__global__ void activation_backward_kernel(long long code, const T* a, T* delta, long long n) {
    const int c = (int)code;
    GDS_GRID_STRIDE_LOOP(i, n) { delta[i] *= gds::activation_derivative_from_output<T>(c, a[i]); }
}
