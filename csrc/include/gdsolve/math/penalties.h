// gdsolve/math/penalties.h - regularisation R(w) in the objective mean(loss) + alpha * R(w):
// l2 = 0.5 ||w||^2, l1 = ||w||_1, elasticnet = l1_ratio ||w||_1 + (1 - l1_ratio) 0.5 ||w||^2.
// The smooth (l2) part enters the gradient; the l1 part is applied as a proximal step so that exact
// zeros appear: soft-thresholding after each update (mini/full batch), or Tsuruoka et al.'s
// cumulative truncation for per-sample SGD (as scikit-learn does). Callers: linear loop, GPU kernels.
#pragma once
#include "gdsolve/codes.h"
#include "gdsolve/config.h"

namespace gds {

struct PenaltySplit {
    double l2;  // coefficient of 0.5 ||w||^2
    double l1;  // coefficient of ||w||_1
};

GDS_HD inline PenaltySplit penalty_split(int code, double alpha, double l1_ratio) {
    PenaltySplit s{0.0, 0.0};
    switch (static_cast<Penalty>(code)) {
        case Penalty::NONE: break;
        case Penalty::L2: s.l2 = alpha; break;
        case Penalty::L1: s.l1 = alpha; break;
        case Penalty::ELASTICNET:
            s.l1 = alpha * l1_ratio;
            s.l2 = alpha * (1.0 - l1_ratio);
            break;
    }
    return s;
}

template <class T> GDS_HD inline T penalty_value(const PenaltySplit& s, const T* w, gds_int64 n) {
    T sq = T(0), ab = T(0);
    for (gds_int64 i = 0; i < n; ++i) {
        sq += w[i] * w[i];
        ab += abs(w[i]);
    }
    return static_cast<T>(0.5 * s.l2) * sq + static_cast<T>(s.l1) * ab;
}

// Proximal operator of threshold * |w|.
template <class T> GDS_HD inline T soft_threshold(T w, T threshold) {
    if (w > threshold) return w - threshold;
    if (w < -threshold) return w + threshold;
    return T(0);
}

// Cumulative L1 truncation for one weight: `u` is the total L1 penalty every weight could have
// received so far, `q` what this weight actually received (updated).
template <class T> GDS_HD inline void cumulative_l1_truncate(T& w, T& q, T u) {
    const T z = w;
    if (w > T(0)) w = max(T(0), w - (u + q));
    else if (w < T(0)) w = min(T(0), w + (u - q));
    q += w - z;
}

}  // namespace gds
