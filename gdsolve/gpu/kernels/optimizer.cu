// gdsolve/gpu/kernels/optimizer.cu - one update rule of math/optimizers.h over a flat vector on
// the device: the step's constants computed by one thread (no host synchronisation), then one
// element per thread. Used by gdsolve.gpu.backend.GpuOptimizer.
#include "prelude.cuh"
#include "gdsolve/math/optimizers.h"

// One thread: advance the step counter (and NAdam's mu product) held on the device and write the
// step's constants. momentum_override < 0 keeps the configured momentum/beta1.
__global__ void optimizer_begin_step_kernel(gds::OptimizerConfig cfg,
                                            gds::OptimizerScalars* scalars, double lr,
                                            double momentum_override, gds::OptimizerStep* out) {
    if (blockIdx.x == 0 && threadIdx.x == 0)
        *out = gds::optimizer_begin_step(cfg, *scalars, lr, momentum_override);
}

// One element per thread. Slots the rule does not use may be null.
template <class T>
__global__ void optimizer_update_kernel(gds::OptimizerConfig cfg, const gds::OptimizerStep* step,
                                        T* w, const T* g, T* s0, T* s1, T* s2, long long n) {
    const gds::OptimizerStep st = *step;
    GDS_GRID_STRIDE_LOOP(i, n) {
        T unused0 = T(0), unused1 = T(0), unused2 = T(0);
        T& a = s0 ? s0[i] : unused0;
        T& b = s1 ? s1[i] : unused1;
        T& c = s2 ? s2[i] : unused2;
        gds::optimizer_update<T>(cfg, st, w[i], g[i], a, b, c);
    }
}
