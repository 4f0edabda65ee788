// gdsolve/model/lbfgs.h - the linear model's quasi-Newton full batch for smooth objectives
// (no L1 part), device-portable: limited-memory BFGS directions from the last m curvature pairs,
// accepted by a backtracking Armijo line search. Caller: cpu/linear_executor.h (the L-BFGS
// full-batch epoch; docs/linear.md has the formulas). L1 objectives take model/spectral.h.
//
// Per epoch, from x with the gradient g = grad F(x) (F = mean loss + L2 part):
//   d = -H g       H: the two-loop recursion over the pairs (s_i, y_i), H0 = (s'y / y'y) I of
//                  the newest pair (Nocedal and Wright, Algorithm 7.4); no pair yet: d = -g
//   x+ = x + t d   t = t0, t0 / 2, ... until F(x+) <= F(x) + c1 t g'd (Armijo), t0 = 1, or
//                  1 / ||g||_inf before any pair; none (round-off) once -t g'd, the most any
//                  such step can lower a convex F, is within 8 units in the last place of F
//   keep (s, y) = (x+ - x, grad F(x+) - g) when s'y > curvature_min ||y||^2 (convex F: always,
//   but for round-off), overwriting the oldest of m.
// History layout: pair i of m at S + i n and Y + i n; `newest` its slot, `pairs` how many.
#pragma once
#include "gdsolve/config.h"

namespace gds {

struct QuasiNewtonConstants {
    static constexpr double c1 = 1e-4;             // Armijo's sufficient-decrease fraction
    static constexpr double shrink = 0.5;          // backtracking factor
    static constexpr double curvature_min = 1e-12;  // s'y below this times y'y: pair dropped
    static constexpr int max_backtracks = 60;      // then no decrease is left: round-off
    static constexpr double roundoff_ulps = 8.0;   // F's last units a decrease must exceed
    static constexpr int max_memory = 64;          // the two-loop's coefficient buffer
};

template <class A, class B>
GDS_HD inline double lbfgs_dot(const A* a, const B* b, gds_int64 n) {
    double s = 0.0;
    for (gds_int64 j = 0; j < n; ++j) s += static_cast<double>(a[j]) * static_cast<double>(b[j]);
    return s;
}

// d = -H g over n elements (d and g may not alias). Returns g'd (negative for a descent
// direction; H is positive definite as every kept pair has s'y > 0).
template <class T>
GDS_HD inline double lbfgs_direction(const T* S, const T* Y, int m, int pairs, int newest,
                                     gds_int64 n, const double* g, double* d) {
    double coef[QuasiNewtonConstants::max_memory];
    for (gds_int64 j = 0; j < n; ++j) d[j] = g[j];
    double gamma = 1.0;
    for (int k = 0; k < pairs; ++k) {  // newest to oldest
        const int i = (newest - k + m) % m;
        const T* s = S + static_cast<gds_int64>(i) * n;
        const T* y = Y + static_cast<gds_int64>(i) * n;
        const double sy = lbfgs_dot(s, y, n);
        if (k == 0) gamma = sy / lbfgs_dot(y, y, n);
        const double a = lbfgs_dot(s, d, n) / sy;
        coef[k] = a;
        for (gds_int64 j = 0; j < n; ++j) d[j] -= a * static_cast<double>(y[j]);
    }
    for (gds_int64 j = 0; j < n; ++j) d[j] *= gamma;
    for (int k = pairs - 1; k >= 0; --k) {  // oldest to newest
        const int i = (newest - k + m) % m;
        const T* s = S + static_cast<gds_int64>(i) * n;
        const T* y = Y + static_cast<gds_int64>(i) * n;
        const double b = lbfgs_dot(y, d, n) / lbfgs_dot(s, y, n);
        const double c = coef[k] - b;
        for (gds_int64 j = 0; j < n; ++j) d[j] += c * static_cast<double>(s[j]);
    }
    double gd = 0.0;
    for (gds_int64 j = 0; j < n; ++j) {
        d[j] = -d[j];
        gd += g[j] * d[j];
    }
    return gd;
}

// Armijo's test for the trial x + t d, g'd = gd < 0.
GDS_HD inline bool lbfgs_accept(double F_new, double F, double t, double gd) {
    return F_new <= F + QuasiNewtonConstants::c1 * t * gd;
}

// Whether no step of length t or shorter can lower F by more than its round-off, eps the unit
// round-off of the parameters' type: along a descent direction d of a convex F the decrease at
// step t is at most -t g'd (the search then stops at once instead of halving to the limit).
GDS_HD inline bool lbfgs_decrease_lost(double t, double gd, double F, double eps) {
    const double size = F < 0.0 ? -F : F;
    return -t * gd <= QuasiNewtonConstants::roundoff_ulps * eps * size;
}

// Whether the pair with s'y = sy and y'y = yy is kept.
GDS_HD inline bool lbfgs_keep_pair(double sy, double yy) {
    return sy > QuasiNewtonConstants::curvature_min * yy && yy > 0.0;
}

}  // namespace gds
