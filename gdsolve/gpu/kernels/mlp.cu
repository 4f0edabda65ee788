// gdsolve/gpu/kernels/mlp.cu - the MLP on the device around cuBLAS's products, all of it
// model/mlp.h's and math/activations.h's: the fused intercept + activation of a layer, the output
// layer's loss and delta, the squared norms a step needs, and the optimizer step (one thread for
// its constants, one per parameter); Muon's elementwise parts around cuBLAS's Newton-Schulz
// products and Sophia's Hessian refresh. Used by gdsolve.gpu.mlp (the GPU executor).
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

// ---- Muon (model/mlp.h, math/muon.h): the elementwise parts around cuBLAS's Newton-Schulz
// products (gdsolve/gpu/mlp.py runs the products, with the gradient's squares kernel above for
// the objective and the clip norm)

// One thread: Muon's and the companion's step constants (advancing the FitScalars), the L2
// factor and the clip factor from ||g||^2.
__global__ void mlp_muon_step_begin_kernel(gds::MlpConfig m, gds::OptimizerConfig o,
                                           gds::OptimizerConfig companion, gds::ScheduleConfig s,
                                           gds::FitScalars* scalars, long long count,
                                           const double* grad_sqnorm, gds::MlpMuonPlan* plan) {
    if (blockIdx.x == 0 && threadIdx.x == 0)
        *plan = gds::mlp_muon_step_begin(m, o, companion, s, *scalars, count, *grad_sqnorm);
}

// One hidden matrix (n elements of its P, G and momentum buffer): the momentum into U, and U's
// squares (double) for the Frobenius norm.
template <class T>
__global__ void mlp_muon_momentum_kernel(gds::MlpConfig m, gds::OptimizerConfig o,
                                         const gds::MlpMuonPlan* plan, const T* P, const T* G,
                                         T* buf, T* U, double* u_sq, long long n) {
    const gds::MlpMuonPlan p = *plan;
    GDS_GRID_STRIDE_LOOP(i, n) {
        gds::mlp_muon_momentum<T>(m, o, p, P[i], G[i], buf[i], U[i]);
        u_sq[i] = (double)U[i] * (double)U[i];
    }
}

// Newton-Schulz's first iterate: U over the larger of ||U||_F and eps (||U||_F^2 reduced on
// the device).
template <class T>
__global__ void muon_normalize_kernel(gds::OptimizerConfig o, const double* sqnorm, T* U,
                                      long long n) {
    const T norm = gds::newton_schulz_norm<T>(*sqnorm, o.eps);
    GDS_GRID_STRIDE_LOOP(i, n) { U[i] = U[i] / norm; }
}

// One Newton-Schulz combination out = beta x + alpha p (p: cuBLAS's product; out may be p).
template <class T>
__global__ void muon_combine_kernel(double beta, const T* x, double alpha, const T* p, T* out,
                                    long long n) {
    const T b = (T)beta, a = (T)alpha;
    GDS_GRID_STRIDE_LOOP(i, n) { out[i] = gds::newton_schulz_combine<T>(b, x[i], a, p[i]); }
}

// A hidden matrix of A outputs and B inputs: W <- W (1 - lr wd) - lr_adjusted O.
template <class T>
__global__ void mlp_muon_apply_kernel(gds::OptimizerConfig o, const gds::MlpMuonPlan* plan,
                                      double A, double B, T* W, const T* O, long long n) {
    const gds::MuonMatrixStep ms = gds::muon_matrix_step(o, plan->muon, A, B);
    GDS_GRID_STRIDE_LOOP(i, n) { gds::muon_apply<T>(ms, W[i], O[i]); }
}

// The companion rule on the tail, parameters tail..n (the output layer's matrix and every
// intercept), through the step element of every other rule.
template <class T>
__global__ void mlp_companion_step_kernel(gds::MlpConfig m, gds::OptimizerConfig companion,
                                          const gds::MlpMuonPlan* plan, long long tail,
                                          long long n_coef, T* P, const T* G, T* s0, T* s1, T* s2,
                                          long long n) {
    const gds::MlpStepPlan<T> p = gds::mlp_companion_plan<T>(*plan);
    GDS_GRID_STRIDE_LOOP(i, n - tail) {
        const long long j = tail + i;
        gds::mlp_step_element<T>(m, companion, p, j, n_coef, P, G[j], s0, s1, s2);
    }
}

// ---- Sophia (model/mlp.h, math/sophia.h): the Hessian refresh of a batch

// Row i of the batch's logits Z (kept before the loss kernel overwrote them): D's row = d loss /
// d z at labels drawn from the network, times scale, with the draws of training row rows[i] at
// the step the plan just counted (scalars) and key = the generator as the epoch started.
template <class T>
__global__ void mlp_gnb_output_kernel(gds::MlpConfig m, const T* Z, const gds_uint64* key,
                                      const gds::FitScalars* scalars, const unsigned int* rows,
                                      double scale, T* D, long long count, long long k) {
    const long long t = scalars->optimizer_step;
    const T sc = (T)scale;
    GDS_GRID_STRIDE_LOOP(i, count) {
        gds::mlp_gnb_output_delta<T>(m.loss, Z + i * k, k, *key, t, (long long)rows[i], sc,
                                     D + i * k);
    }
}

// h <- beta2 h + (1 - beta2) B ghat^2, ghat: the batch-mean gradient at the drawn labels over
// `rows` rows.
template <class T>
__global__ void sophia_gnb_hessian_kernel(gds::OptimizerConfig o, const T* ghat, long long rows,
                                          T* h, long long n) {
    const double B = (double)rows;
    GDS_GRID_STRIDE_LOOP(j, n) {
        gds::sophia_hessian_ema<T>(o.beta2, h[j], gds::gnb_estimate<T>(ghat[j], B));
    }
}
