// gdsolve/model/mlp.h - the MLP's math, device-portable: the output layer's loss and its delta
// per output (squared error, the log loss of math/losses.h for logistic outputs with 0/1
// targets; softmax rows use softmax_cross_entropy), and the optimizer step over the flat
// parameter vector (schedule, scikit-learn's L2 convention, clipping). The layer structure
// itself (GEMMs, activations) is orchestrated by each executor: cpu/mlp_executor.h on the CPU,
// gdsolve/gpu/mlp.py over cuBLAS. Callers: those executors, gdsolve/gpu/kernels/mlp.cu.
//
// Parameters: every layer's coefficient matrix (fan_in x fan_out, row-major) first, then every
// layer's intercepts; the L2 penalty 0.5 alpha ||W||^2 / batch covers the first n_coef entries.
#pragma once
#include "gdsolve/codes.h"
#include "gdsolve/config.h"
#include "gdsolve/math/activations.h"
#include "gdsolve/math/clip.h"
#include "gdsolve/math/losses.h"
#include "gdsolve/math/optimizers.h"
#include "gdsolve/math/schedules.h"
#include "gdsolve/model/step.h"
#include "gdsolve/structs.h"

namespace gds {

// One output of a SQUARED loss: returns 0.5 (z - y)^2 and sets delta = (z - y) * scale.
template <class T> GDS_HD inline double mlp_squared_output(T z, T y, T scale, T& delta) {
    const T r = z - y;
    delta = r * scale;
    return 0.5 * static_cast<double>(r) * static_cast<double>(r);
}

// One logistic output (binary or multilabel) with target y in {0, 1}: the log loss of the margin
// (2y - 1) z, and delta = d loss / d z * scale = (sigmoid(z) - y) * scale.
template <class T> GDS_HD inline double mlp_logistic_output(T z, T y, T scale, T& delta) {
    const T s = T(2) * y - T(1);
    T sig;
    const T value = log_loss_margin<LossMath<T>>(s * z, sig);
    delta = -s * sig * scale;
    return static_cast<double>(value);
}

// Everything one step's elements share.
template <class T> struct MlpStepPlan {
    OptimizerStep opt;
    T penalty;           // alpha / batch: the L2 gradient factor on the coefficients
    double clip_factor;  // Clip::NORM: min(1, limit / (||g|| + 1e-6)); 1 otherwise
};

// Once per step of `count` rows: this step's rate (schedule at the step, scikit-learn's t of the
// epoch's start, times lr_factor), the rule's constants (advancing its counters), the clip
// factor from `grad_sqnorm` (the squared norm of the gradient with its L2 part; Clip::NORM only).
template <class T>
GDS_HD inline MlpStepPlan<T> mlp_step_begin(const MlpConfig& m, const OptimizerConfig& o,
                                            const ScheduleConfig& s, FitScalars& st,
                                            gds_int64 count, double grad_sqnorm) {
    MlpStepPlan<T> p;
    p.opt = scheduled_optimizer_step(o, s, st);
    p.penalty = static_cast<T>(m.alpha / static_cast<double>(count));
    p.clip_factor = m.clip == static_cast<int>(Clip::NORM)
                        ? clip_norm_factor(sqrt(grad_sqnorm), m.clip_limit)
                        : 1.0;
    return p;
}

// Element j of the step, from the batch-mean gradient g_j (no L2 part; it is added here to the
// first n_coef entries).
template <class T>
GDS_HD inline void mlp_step_element(const MlpConfig& m, const OptimizerConfig& o,
                                    const MlpStepPlan<T>& p, gds_int64 j, gds_int64 n_coef, T* w,
                                    T g, T* s0, T* s1, T* s2) {
    if (j < n_coef) g += p.penalty * w[j];
    if (m.clip == static_cast<int>(Clip::VALUE)) {
        g = clip_value(g, static_cast<T>(m.clip_limit));
    } else {
        const T f = static_cast<T>(p.clip_factor);
        if (f < T(1)) g *= f;
    }
    optimizer_update<T>(o, p.opt, w[j], g, s0[j], s1[j], s2[j]);
}

}  // namespace gds
