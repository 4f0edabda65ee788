// gdsolve/gpu/kernels/clip.cu - math/clip.h's gradient clipping on the device.
#include "prelude.cuh"
#include "gdsolve/math/clip.h"

// Clamp each gradient element to [-limit, limit] (PyTorch clip_grad_value_).
template <class T>
__global__ void clip_value_kernel(T* g, double limit, long long n) {
    const T v = (T)limit;
    GDS_GRID_STRIDE_LOOP(i, n) { g[i] = gds::clip_value<T>(g[i], v); }
}

// Scale by the core's clip_norm_factor given the global L2 norm already reduced on the device
// (PyTorch clip_grad_norm_); the norm stays on the device, so no synchronisation.
template <class T>
__global__ void clip_norm_scale_kernel(T* g, const double* total_norm, double max_norm,
                                       long long n) {
    const T f = (T)gds::clip_norm_factor(*total_norm, max_norm);
    if (!(f < T(1))) return;  // as the host's clip_gradient: leave g untouched when not shrinking
    GDS_GRID_STRIDE_LOOP(i, n) { g[i] *= f; }
}
