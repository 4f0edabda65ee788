// gdsolve/cpu/linear_hessian.h - Sophia's diagonal Hessian estimate for the linear model on the
// CPU: one pass over a batch's rows at the parameters before the step, giving either the
// Gauss-Newton-Bartlett estimate (B ghat^2, ghat the batch-mean gradient at labels drawn from the
// model) or the exact Gauss-Newton diagonal (math/sophia.h). Host only, on the calling thread
// (it runs every k-th step). Caller: cpu/linear_executor.h.
#pragma once
#include <algorithm>
#include <vector>

#include "gdsolve/codes.h"
#include "gdsolve/config.h"
#include "gdsolve/cpu/linear_per_sample.h"
#include "gdsolve/driver/shuffle.h"
#include "gdsolve/math/sophia.h"
#include "gdsolve/structs.h"

namespace gds {
namespace linear_detail {

// The estimate for every parameter (K*d weights, then K intercepts) into out, from the batch
// rows[0..count) at params. Per row i (its index in X), with weight s_i and outputs z:
//   GNB:   r = s_i * d loss / d z at the drawn label (sophia_uniform(key, t, i, q)), summed as a
//          gradient, ghat = sum / B, out = B ghat^2
//   EXACT: out = (1/B) sum_i s_i curvature_k(z) x_ij^2 (curvature: LOG p (1 - p), SOFTMAX
//          p_k (1 - p_k), SQUARED 1)
// z: K values of scratch (or more).
template <class T, class Rows>
inline void linear_hessian_estimate(const Problem<T, Rows>& pb, int estimator, const T* params,
                                    const RowIndex* rows, gds_int64 count, gds_uint64 key,
                                    gds_int64 t, double* out, T* z) {
    const int K = pb.K;
    const gds_int64 d = pb.d, n_w = static_cast<gds_int64>(K) * d;
    const T* b = params + n_w;
    std::fill(out, out + n_w + K, 0.0);
    const bool exact = estimator == static_cast<int>(HessianEstimator::EXACT);
    for (gds_int64 ii = 0; ii < count; ++ii) {
        const gds_int64 i = rows[ii];
        const double sw = pb.sw ? static_cast<double>(pb.sw[i]) : 1.0;
        for (int k = 0; k < K; ++k) z[k] = pb.X.dot(i, params + k * d) + b[k];
        sophia_linear_row_factors<T>(pb.loss, estimator, z, K, key, t, i);
        for (int k = 0; k < K; ++k) {
            const double r = sw * static_cast<double>(z[k]);
            double* o = out + k * d;
            if (exact)
                pb.X.for_each(i, [&](gds_int64 j, T v) {
                    o[j] += r * static_cast<double>(v) * static_cast<double>(v);
                });
            else
                pb.X.for_each(i, [&](gds_int64 j, T v) { o[j] += r * static_cast<double>(v); });
            out[n_w + k] += r;
        }
    }
    const double rows_in = static_cast<double>(count);
    for (gds_int64 j = 0; j < n_w + K; ++j)
        out[j] = sophia_linear_estimate(estimator, out[j], rows_in);
}

}  // namespace linear_detail
}  // namespace gds
