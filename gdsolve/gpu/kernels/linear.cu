// gdsolve/gpu/kernels/linear.cu - the linear model on the device, all of it model/linear.h's:
// the row rule applied to the outputs Z = X W' + b that cuBLAS computed (loss and the rows'
// gradient factors R, from which cuBLAS forms R' X), the optimizer step (one thread for the
// step's constants, one thread per parameter) and Sophia's Hessian refresh (math/sophia.h).
// Used by gdsolve.gpu (the GPU executor).
#include "prelude.cuh"
#include "gdsolve/math/sophia.h"
#include "gdsolve/model/linear.h"

// Row i of Z (n x K): loss[i] = s_i * loss of the row, and the row overwritten with
// s_i * clamp(d loss / d z_k) (sample weights may be null: ones).
template <class T>
__global__ void linear_row_loss_kernel(gds::LinearConfig m, T* Z, const T* y, const T* sw,
                                       double* loss, long long n) {
    const int K = m.n_outputs;
    const T param = (T)m.loss_param;
    GDS_GRID_STRIDE_LOOP(i, n) {
        T* z = Z + i * K;
        const T value = gds::linear_row_loss<T>(m.loss, param, z, K, y[i]);
        const T w = sw ? sw[i] : T(1);
        for (int k = 0; k < K; ++k) z[k] = w * gds::clamp_dloss(z[k]);
        loss[i] = (double)w * (double)value;
    }
}

// One thread: the step's constants from the FitScalars (advanced), with ||g||^2 of the mean
// gradient for Clip::NORM (a loop over the K*d + K parameters: small, and only when clipping).
template <class T, class G>
__global__ void linear_step_begin_kernel(gds::LinearConfig m, gds::OptimizerConfig o,
                                         gds::ScheduleConfig s, gds::FitScalars* scalars,
                                         long long count, long long d, const G* grad,
                                         gds::LinearStepPlan* plan) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const double sq = m.clip == (int)gds::Clip::NORM
                          ? gds::linear_clip_sqnorm<T, G>(grad, 1.0 / (double)count,
                                                          gds::linear_updated_params(m, d))
                          : 0.0;
    *plan = gds::linear_step_begin(m, o, s, *scalars, count, sq);
}

// One thread: alpha R(W) at the parameters (the full-batch objective takes it before the step).
template <class T>
__global__ void linear_penalty_kernel(gds::LinearConfig m, const T* P, long long d, double* out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const gds::PenaltySplit pen = gds::penalty_split(m.penalty, m.alpha, m.l1_ratio);
    *out = (double)gds::penalty_value<T>(pen, P, (long long)m.n_outputs * d);
}

// One parameter per thread (n = K*d + K); A may be null unless the model averages.
template <class T, class G>
__global__ void linear_step_kernel(gds::LinearConfig m, gds::OptimizerConfig o,
                                   const gds::LinearStepPlan* plan, long long d, T* P,
                                   const G* grad, T* s0, T* s1, T* s2, T* A, long long n) {
    const gds::LinearStepPlan p = *plan;
    GDS_GRID_STRIDE_LOOP(j, n) {
        gds::linear_step_element<T, G>(m, o, p, j, d, P, grad, s0, s1, s2, A);
    }
}

// ---- Sophia's Hessian refresh (math/sophia.h): per row its factors, then cuBLAS sums
// R' X (GNB) or R' (X * X) (EXACT) and the intercepts' sum R, then the estimate's EMA.

// Row i of the batch's outputs Z (kept before the row-loss kernel overwrote them): R's row =
// s_i * its factors (the draws of training row rows[i] at the step the plan just counted, key =
// the generator as the epoch started).
template <class T>
__global__ void linear_sophia_rows_kernel(gds::LinearConfig m, gds::OptimizerConfig o,
                                          const T* Z, const T* sw, const gds_uint64* key,
                                          const gds::FitScalars* scalars,
                                          const unsigned int* rows, T* R, long long n) {
    const int K = m.n_outputs;
    const long long t = scalars->optimizer_step;
    GDS_GRID_STRIDE_LOOP(i, n) {
        T* r = R + i * K;
        for (int k = 0; k < K; ++k) r[k] = Z[i * K + k];
        gds::sophia_linear_row_factors<T>(m.loss, o.hessian_estimator, r, K, *key, t,
                                          (long long)rows[i]);
        const double w = sw ? (double)sw[i] : 1.0;
        for (int k = 0; k < K; ++k) r[k] = (T)(w * (double)r[k]);
    }
}

// h <- beta2 h + (1 - beta2) hhat on the parameters the model updates, hhat from the summed
// products H over `rows` batch rows.
template <class T>
__global__ void linear_sophia_hessian_kernel(gds::LinearConfig m, gds::OptimizerConfig o,
                                             const T* H, double rows, long long d, T* h) {
    const long long n = gds::linear_updated_params(m, d);
    GDS_GRID_STRIDE_LOOP(j, n) {
        gds::sophia_hessian_ema<T>(
            o.beta2, h[j], (T)gds::sophia_linear_estimate(o.hessian_estimator, (double)H[j], rows));
    }
}
