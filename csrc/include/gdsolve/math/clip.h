// gdsolve/math/clip.h - gradient clipping as PyTorch defines it: clamp each element to [-v, v], or
// scale the whole gradient by min(1, max_norm / (||g||_2 + 1e-6)). Callers: training loops,
// gdsolve.optim.clip_grad_* (via _core.pyx), GPU kernels.
#pragma once
#include "gdsolve/codes.h"
#include "gdsolve/config.h"

namespace gds {

template <class T> GDS_HD inline T clip_value(T g, T limit) {
    return g > limit ? limit : (g < -limit ? -limit : g);
}

// Factor to multiply every gradient element by, given the gradient's global L2 norm.
GDS_HD inline double clip_norm_factor(double total_norm, double max_norm) {
    const double coef = max_norm / (total_norm + 1e-6);
    return coef < 1.0 ? coef : 1.0;
}

template <class T> GDS_HD inline void clip_gradient(int code, double limit, T* g, gds_int64 n) {
    if (code == static_cast<int>(Clip::VALUE)) {
        const T v = static_cast<T>(limit);
        for (gds_int64 i = 0; i < n; ++i) g[i] = clip_value(g[i], v);
    } else if (code == static_cast<int>(Clip::NORM)) {
        double sq = 0.0;
        for (gds_int64 i = 0; i < n; ++i) sq += static_cast<double>(g[i]) * g[i];
        const T f = static_cast<T>(clip_norm_factor(sqrt(sq), limit));
        if (f < T(1))
            for (gds_int64 i = 0; i < n; ++i) g[i] *= f;
    }
}

}  // namespace gds
