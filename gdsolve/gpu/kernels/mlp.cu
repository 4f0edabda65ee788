// gdsolve/gpu/kernels/mlp.cu - the MLP on the device around cuBLAS's products, all of it
// model/mlp.h's and math/activations.h's: the fused intercept + activation of a layer, the output
// layer's loss and delta, the squared norms a step needs, and the optimizer step (one thread for
// its constants, one per parameter). Used by gdsolve.gpu.mlp (the GPU executor).
#include "prelude.cuh"
#include "gdsolve/model/mlp.h"

// Z (rows x cols) = f(Z + b) row by row (code IDENTITY for the output layer's logits).
template <class T>
__global__ void mlp_bias_activation_kernel(long long code, T* Z, const T* b, long long rows,
                                           long long cols) {
    const int c = (int)code;
    GDS_GRID_STRIDE_LOOP(i, rows * cols) { Z[i] = gds::activation_value<T>(c, Z[i] + b[i % cols]); }
}

// Row i of the logits Z (rows x k): loss[i] = the row's loss, Z's row overwritten with
// d loss / d z * scale (scale = 1 / batch rows: the batch mean). Targets: Y (rows x k, SQUARED
// and LOG with 0/1) or labels (SOFTMAX).
template <class T>
__global__ void mlp_output_kernel(gds::MlpConfig m, T* Z, const T* Y, const int* labels,
                                  double scale, double* loss, long long rows, long long k) {
    const T sc = (T)scale;
    GDS_GRID_STRIDE_LOOP(i, rows) {
        T* z = Z + i * k;
        double total = 0.0;
        if (m.loss == (int)gds::Loss::SOFTMAX) {
            total = (double)gds::softmax_cross_entropy<T>(z, (int)k, labels[i]);
            for (long long j = 0; j < k; ++j) z[j] *= sc;
        } else {
            for (long long j = 0; j < k; ++j) {
                T delta;
                total += m.loss == (int)gds::Loss::LOG
                             ? gds::mlp_logistic_output<T>(z[j], Y[i * k + j], sc, delta)
                             : gds::mlp_squared_output<T>(z[j], Y[i * k + j], sc, delta);
                z[j] = delta;
            }
        }
        loss[i] = total;
    }
}

// Per parameter, for the step of a batch of `count` rows: w_j^2 over the coefficients (the
// objective's L2 term, before the step) and the squared element of the gradient the rule sees
// (with the L2 part; for Clip::NORM). The device sums them (cupy.sum) into the step's norms.
template <class T>
__global__ void mlp_step_squares_kernel(gds::MlpConfig m, const T* P, const T* G, long long n_coef,
                                        long long count, double* w_sq, double* g_sq,
                                        long long n) {
    const T penalty = (T)(m.alpha / (double)count);
    GDS_GRID_STRIDE_LOOP(j, n) {
        const T g = j < n_coef ? G[j] + penalty * P[j] : G[j];
        w_sq[j] = j < n_coef ? (double)P[j] * (double)P[j] : 0.0;
        g_sq[j] = (double)g * (double)g;
    }
}

// One thread: the step's constants from the FitScalars (advanced) and ||g||^2 (for Clip::NORM).
template <class T>
__global__ void mlp_step_begin_kernel(gds::MlpConfig m, gds::OptimizerConfig o,
                                      gds::ScheduleConfig s, gds::FitScalars* scalars,
                                      long long count, const double* grad_sqnorm,
                                      gds::MlpStepPlan<T>* plan) {
    if (blockIdx.x == 0 && threadIdx.x == 0)
        *plan = gds::mlp_step_begin<T>(m, o, s, *scalars, count, *grad_sqnorm);
}

// One parameter per thread (n = every parameter; the first n_coef carry the L2 term).
template <class T>
__global__ void mlp_step_kernel(gds::MlpConfig m, gds::OptimizerConfig o,
                                const gds::MlpStepPlan<T>* plan, long long n_coef, T* P,
                                const T* G, T* s0, T* s1, T* s2, long long n) {
    const gds::MlpStepPlan<T> p = *plan;
    GDS_GRID_STRIDE_LOOP(j, n) {
        gds::mlp_step_element<T>(m, o, p, j, n_coef, P, G[j], s0, s1, s2);
    }
}
