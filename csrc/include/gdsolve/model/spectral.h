// gdsolve/model/spectral.h - the linear model's accelerated full-batch method, device-portable:
// proximal gradient steps with the Barzilai-Borwein (spectral) step size, accepted by Zhang and
// Hager's non-monotone line search, and the stationarity measure the method stops on. No
// Lipschitz bound is needed. Caller: cpu/linear_executor.h (the spectral full-batch epoch;
// docs/linear.md has the formulas).
//
// Per epoch, from x with the smooth gradient g = grad f(x) (f = mean loss + L2 part):
//   x+ = prox_{a h}(x - a g)            (h = l1 ||w||_1: soft-thresholding, intercepts plain)
//   accept when F(x+) <= C - sigma / (2a) ||x+ - x||^2, else a <- a / 2 and retry
//   C <- (eta Q C + F(x+)) / (eta Q + 1), Q <- eta Q + 1      (Zhang-Hager reference value)
//   a <- BB2 = s'y / y'y if BB2 < tau BB1, else BB1 = s's / s'y   (s = x+ - x, y = grad f(x+) - g:
//        the adaptive choice of Zhou, Gao and Dai; clamped)
#pragma once
#include "gdsolve/config.h"
#include "gdsolve/math/penalties.h"

namespace gds {

struct SpectralConstants {
    static constexpr double sigma = 1e-4;      // sufficient-decrease fraction
    static constexpr double eta = 0.85;        // Zhang-Hager averaging weight (0: monotone)
    static constexpr double shrink = 0.5;      // backtracking factor
    static constexpr double tau = 0.5;         // BB2 when BB2 / BB1 < tau
    static constexpr double step_min = 1e-30;  // the BB step's safeguards
    static constexpr double step_max = 1e30;
    static constexpr int max_backtracks = 60;  // then no decrease is left to find: round-off
};

// The smooth part's gradient of element j: the batch's summed data gradient over n rows
// (inv_n = 1/n) plus the L2 term on weights (j < n_w).
template <class T>
GDS_HD inline double spectral_gradient(double summed, double inv_n, double l2, bool weight,
                                       T w) {
    return summed * inv_n + (weight ? l2 * static_cast<double>(w) : 0.0);
}

// The trial point of element j: a gradient step of size a, then the L1 prox on weights.
template <class T>
GDS_HD inline T spectral_trial(T x, double g, double a, double l1, bool weight) {
    const double v = static_cast<double>(x) - a * g;
    if (!weight || l1 <= 0.0) return static_cast<T>(v);
    return static_cast<T>(soft_threshold(v, a * l1));
}

// Element j of the minimum-norm subgradient of F = f + l1 ||w||_1 (g = grad f): the stopping
// measure, zero exactly at the optimum. Weights at zero count only what |g| exceeds l1 by.
template <class T>
GDS_HD inline double spectral_residual(T w, double g, double l1, bool weight) {
    if (!weight || l1 <= 0.0) return g;
    if (w > T(0)) return g + l1;
    if (w < T(0)) return g - l1;
    const double excess = (g > 0.0 ? g : -g) - l1;
    return excess > 0.0 ? excess : 0.0;
}

// Zhang-Hager's sufficient decrease against the reference value C.
GDS_HD inline bool spectral_accept(double F_new, double C, double step, double sq_dist) {
    return F_new <= C - SpectralConstants::sigma / (2.0 * step) * sq_dist;
}

// The next step from s's, s'y and y'y (the short BB2 step where the curvature along s is
// uneven, else the long BB1 step); no positive curvature along s keeps the last step.
GDS_HD inline double spectral_next_step(double ss, double sy, double yy, double step) {
    double a = step;
    if (sy > 0.0) {
        const double bb1 = ss / sy, bb2 = sy / yy;
        a = bb2 < SpectralConstants::tau * bb1 ? bb2 : bb1;
    }
    if (a < SpectralConstants::step_min) a = SpectralConstants::step_min;
    if (a > SpectralConstants::step_max) a = SpectralConstants::step_max;
    return a;
}

// The first step, before any curvature is known: 1 / ||g||_inf (a unit move of the largest
// element; the line search shortens it when needed).
GDS_HD inline double spectral_initial_step(double grad_max) {
    return grad_max > 0.0 ? 1.0 / grad_max : 1.0;
}

// Round-off: a trial step that moves no parameter by more than 8 units in the last place of
// the largest (eps: the parameters' machine epsilon) has nothing left to find.
GDS_HD inline bool spectral_stalled(double moved, double largest, double eps) {
    return moved <= 8.0 * eps * largest;
}

// The reference value after accepting F_new.
GDS_HD inline void spectral_reference_update(double& C, double& Q, double F_new) {
    const double Qn = SpectralConstants::eta * Q + 1.0;
    C = (SpectralConstants::eta * Q * C + F_new) / Qn;
    Q = Qn;
}

}  // namespace gds
