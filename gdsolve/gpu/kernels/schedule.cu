// gdsolve/gpu/kernels/schedule.cu - math/schedules.h's rates on the device (tests, and the
// executors' per-step rate).
#include "prelude.cuh"
#include "gdsolve/math/schedules.h"

// Learning rate at each (step, t) pair; t is scikit-learn's sample counter (optimal/invscaling).
__global__ void schedule_lr_kernel(gds::ScheduleConfig cfg, const double* steps, const double* t,
                                   double* out, long long n) {
    GDS_GRID_STRIDE_LOOP(i, n) { out[i] = gds::schedule_lr(cfg, steps[i], t[i]); }
}

// One-cycle momentum/beta1 at each step (-1 where the schedule does not cycle momentum).
__global__ void schedule_momentum_kernel(gds::ScheduleConfig cfg, const double* steps,
                                         double* out, long long n) {
    GDS_GRID_STRIDE_LOOP(i, n) { out[i] = gds::schedule_momentum(cfg, steps[i]); }
}
