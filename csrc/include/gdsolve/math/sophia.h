// gdsolve/math/sophia.h - Sophia-G's Hessian estimate (Liu, Li, Hall, Liang, Ma, 2023), device-
// portable: when it is refreshed, its EMA, the Gauss-Newton-Bartlett estimator's draws (labels
// sampled from the model's own predictive distribution, per output kind) and the exact
// Gauss-Newton curvature of the linear models' losses. The update itself (EMA of the gradient,
// the clipped step, decoupled decay) is optimizer_update's SOPHIA case (math/optimizers.h).
// Callers: cpu/mlp_executor.h, cpu/linear_hessian.h, _core.pyx, gdsolve/gpu/kernels/mlp.cu and
// linear.cu. Formulas: docs/optimizers.md.
//
// Per step t (optimizer_step after optimizer_begin_step, 1 for the first step):
//   if sophia_refresh(config, t): hhat = the estimate on this step's batch (at the parameters
//       before the update); h <- sophia_hessian_ema(beta2, h, hhat)            (elementwise)
//   then optimizer_update(config, st, w, g, m, h, unused)                       (elementwise)
// GNB: hhat = B * ghat^2, ghat the batch-mean gradient of the loss at labels drawn from the
// model (gnb_*_delta give d loss / d output at the drawn label); EXACT (linear models):
// hhat_j = (1/B) sum_i s_i curvature_i x_ij^2 (exact_curvature).
#pragma once
#include "gdsolve/codes.h"
#include "gdsolve/config.h"
#include "gdsolve/structs.h"

namespace gds {

// The estimate is refreshed on steps t = 1, k + 1, 2k + 1, ... (t mod k = 1), before the update.
GDS_HD inline bool sophia_refresh(const OptimizerConfig& c, gds_int64 t) {
    const gds_int64 k = c.k < 1 ? 1 : static_cast<gds_int64>(c.k);
    return (t - 1) % k == 0;
}

// h <- beta2 h + (1 - beta2) hhat.
template <class T> GDS_HD inline void sophia_hessian_ema(double beta2, T& h, T hhat) {
    const T b2 = static_cast<T>(beta2);
    h = b2 * h + (T(1) - b2) * hhat;
}

// The GNB estimate of one parameter from ghat, the mean gradient over the B rows of the batch
// at the drawn labels: B ghat^2.
template <class T> GDS_HD inline T gnb_estimate(T ghat, double batch_rows) {
    return static_cast<T>(batch_rows) * ghat * ghat;
}

// ---- The draws: counter based, so any executor reproduces a row's draws without shared state --

// splitmix64's output function.
GDS_HD inline gds_uint64 sophia_mix(gds_uint64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Draw q of training row `row` at step t, uniform in [0, 1): key is the fit's generator state
// (FitScalars.rng) as the epoch starts. h = mix(key + G t); h = mix(h + G (row + 1));
// h = mix(h + G (q + 1)), G = 0x9E3779B97F4A7C15; u = (h >> 11) 2^-53.
GDS_HD inline double sophia_uniform(gds_uint64 key, gds_int64 t, gds_int64 row, int q) {
    const gds_uint64 golden = 0x9E3779B97F4A7C15ULL;
    gds_uint64 h = sophia_mix(key + golden * static_cast<gds_uint64>(t));
    h = sophia_mix(h + golden * static_cast<gds_uint64>(row + 1));
    h = sophia_mix(h + golden * static_cast<gds_uint64>(q + 1));
    return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);
}

GDS_HD inline double sophia_sigmoid(double z) {
    if (z >= 0.0) return 1.0 / (1.0 + exp(-z));
    const double e = exp(z);
    return e / (1.0 + e);
}

// A softmax output row z[0..K): the label drawn from softmax(z) with u = draw 0 (the first class
// whose cumulative probability exceeds u; the last one if rounding leaves u above them all) and
// delta[k] = (softmax(z)_k - [k = label]) * scale. Returns the label.
template <class T>
GDS_HD inline int gnb_softmax_delta(const T* z, int K, double u, T scale, T* delta) {
    double zmax = static_cast<double>(z[0]);
    for (int k = 1; k < K; ++k)
        if (static_cast<double>(z[k]) > zmax) zmax = static_cast<double>(z[k]);
    double total = 0.0;
    for (int k = 0; k < K; ++k) total += exp(static_cast<double>(z[k]) - zmax);
    int label = K - 1;
    double cum = 0.0;
    for (int k = 0; k < K; ++k) {
        cum += exp(static_cast<double>(z[k]) - zmax) / total;
        if (u < cum) {
            label = k;
            break;
        }
    }
    for (int k = 0; k < K; ++k) {
        const double p = exp(static_cast<double>(z[k]) - zmax) / total;
        delta[k] = static_cast<T>((p - (k == label ? 1.0 : 0.0)) * static_cast<double>(scale));
    }
    return label;
}

// A logistic output z (binary or one of several labels): the label 1 with probability
// sigmoid(z) (u = draw j of output j), delta = (sigmoid(z) - label) * scale.
template <class T> GDS_HD inline T gnb_logistic_delta(T z, double u, T scale) {
    const double p = sophia_sigmoid(static_cast<double>(z));
    const double label = u < p ? 1.0 : 0.0;
    return static_cast<T>((p - label) * static_cast<double>(scale));
}

// A squared-error output z: 0.5 (z - y)^2 is the negative log-likelihood of y ~ N(z, 1), so the
// drawn target is z + e, e = sqrt(-2 log(1 - u1)) cos(2 pi u2) (Box-Muller, draws 2j and 2j + 1
// of output j), and delta = (z - (z + e)) * scale = -e * scale.
template <class T> GDS_HD inline T gnb_squared_delta(double u1, double u2, T scale) {
    const double e = sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * pi * u2);
    return static_cast<T>(-e * static_cast<double>(scale));
}

// The exact Gauss-Newton curvature of a loss in one output (d^2 loss / d z^2): LOG p (1 - p)
// with p = sigmoid(z); SOFTMAX p_k (1 - p_k) (p = softmax of the row, passed in); SQUARED 1.
GDS_HD inline double exact_curvature_log(double z) {
    const double p = sophia_sigmoid(z);
    return p * (1.0 - p);
}
GDS_HD inline double exact_curvature_softmax(double p) { return p * (1.0 - p); }

// ---- The linear models' estimate: a factor per row and output, summed into products with X ------
//
// hhat_j = sophia_linear_estimate(estimator, sum_i s_i r_ik x_ij^p, B) with p = 1 (GNB) or 2
// (EXACT) over the batch's B rows, the intercepts taking x = 1; r_ik from the row's outputs z.

// Row `row`'s factors r_k in place of its outputs z[0..K) at step t: GNB, d loss / d z_k at the
// drawn label(s) (SOFTMAX: a class, draw 0; LOG: a 0/1 label, draw 0; SQUARED: a N(z, 1) target,
// draws 0 and 1); EXACT, the curvature d^2 loss / d z_k^2 (SOFTMAX: p_k (1 - p_k) of the row's
// softmax; LOG: p (1 - p); SQUARED: 1).
template <class T>
GDS_HD inline void sophia_linear_row_factors(int loss, int estimator, T* z, int K, gds_uint64 key,
                                             gds_int64 t, gds_int64 row) {
    const bool softmax = loss == static_cast<int>(Loss::SOFTMAX);
    const bool logistic = loss == static_cast<int>(Loss::LOG);
    if (estimator == static_cast<int>(HessianEstimator::EXACT)) {
        if (softmax) {
            double zmax = static_cast<double>(z[0]), total = 0.0;
            for (int k = 1; k < K; ++k)
                if (static_cast<double>(z[k]) > zmax) zmax = static_cast<double>(z[k]);
            for (int k = 0; k < K; ++k) total += exp(static_cast<double>(z[k]) - zmax);
            for (int k = 0; k < K; ++k)
                z[k] = static_cast<T>(
                    exact_curvature_softmax(exp(static_cast<double>(z[k]) - zmax) / total));
        } else {
            for (int k = 0; k < K; ++k)
                z[k] = logistic ? static_cast<T>(exact_curvature_log(static_cast<double>(z[k])))
                                : T(1);
        }
    } else if (softmax) {
        gnb_softmax_delta<T>(z, K, sophia_uniform(key, t, row, 0), T(1), z);
    } else if (logistic) {
        z[0] = gnb_logistic_delta<T>(z[0], sophia_uniform(key, t, row, 0), T(1));
    } else {
        z[0] = gnb_squared_delta<T>(sophia_uniform(key, t, row, 0), sophia_uniform(key, t, row, 1),
                                    T(1));
    }
}

// One parameter's estimate from its sum over the batch's `rows` rows: EXACT the mean, GNB
// B ghat^2 with ghat the mean.
GDS_HD inline double sophia_linear_estimate(int estimator, double sum, double rows) {
    return estimator == static_cast<int>(HessianEstimator::EXACT)
               ? sum / rows
               : gnb_estimate<double>(sum / rows, rows);
}

}  // namespace gds
