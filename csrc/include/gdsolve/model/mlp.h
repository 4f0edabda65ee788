// gdsolve/model/mlp.h - the MLP's math, device-portable: the output layer's loss and its delta
// per output (squared error, the log loss of math/losses.h for logistic outputs with 0/1
// targets; softmax rows use softmax_cross_entropy), and the optimizer step over the flat
// parameter vector (schedule, scikit-learn's L2 convention, clipping); which parameters Muon's
// step orthogonalises, and Sophia's sampled output deltas. The layer structure
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
#include "gdsolve/math/muon.h"
#include "gdsolve/math/optimizers.h"
#include "gdsolve/math/schedules.h"
#include "gdsolve/math/sophia.h"
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

// The gradient element a rule sees, from the batch-mean g of parameter w: the L2 part
// penalty * w on a coefficient, then clipped (Clip::VALUE by value, Clip::NORM by clip_factor).
template <class T>
GDS_HD inline T mlp_step_gradient(const MlpConfig& m, T penalty, double clip_factor,
                                  bool coefficient, T w, T g) {
    if (coefficient) g += penalty * w;
    if (m.clip == static_cast<int>(Clip::VALUE)) {
        g = clip_value(g, static_cast<T>(m.clip_limit));
    } else {
        const T f = static_cast<T>(clip_factor);
        if (f < T(1)) g *= f;
    }
    return g;
}

// Element j of the step, from the batch-mean gradient g_j (no L2 part; it is added here to the
// first n_coef entries).
template <class T>
GDS_HD inline void mlp_step_element(const MlpConfig& m, const OptimizerConfig& o,
                                    const MlpStepPlan<T>& p, gds_int64 j, gds_int64 n_coef, T* w,
                                    T g, T* s0, T* s1, T* s2) {
    g = mlp_step_gradient<T>(m, p.penalty, p.clip_factor, j < n_coef, w[j], g);
    optimizer_update<T>(o, p.opt, w[j], g, s0[j], s1[j], s2[j]);
}

// ---- Muon: which parameters are its matrices, and the step's constants ---------------------------
//
// Muon updates the weight matrices of the hidden layers: layer l < n_layers - 1, the block of
// units[l] * units[l + 1] coefficients at its offset, stored fan_in x fan_out row-major (the
// transpose of torch.nn.Linear's weight, so Muon's A x B shape is fan_out x fan_in). The
// companion rule updates everything else: the output layer's matrix and every intercept, which
// is the contiguous tail of the flat vector from the output layer's coefficient offset. A step,
// after the whole gradient (with its L2 part, clipped) is known:
//   plan = mlp_muon_step_begin(...);
//   each hidden layer l: muon_momentum per element (slot 0 is the buffer) into U;
//       O = newton_schulz(U, units[l], units[l + 1]);  muon_apply per element with
//       muon_matrix_step(o, plan.muon, units[l + 1], units[l])      (math/muon.h)
//   the tail: optimizer_update(companion, plan.companion, ...) per element.
GDS_HD inline bool mlp_muon_layer(int layer, int n_layers) { return layer < n_layers - 1; }

struct MlpMuonPlan {
    OptimizerStep muon, companion;
    double penalty;      // alpha / batch: the L2 gradient factor on the coefficients
    double clip_factor;  // Clip::NORM: min(1, limit / (||g|| + 1e-6)); 1 otherwise
};

GDS_HD inline MlpMuonPlan mlp_muon_step_begin(const MlpConfig& m, const OptimizerConfig& o,
                                              const OptimizerConfig& companion,
                                              const ScheduleConfig& s, FitScalars& st,
                                              gds_int64 count, double grad_sqnorm) {
    MlpMuonPlan p;
    scheduled_muon_steps(o, companion, s, st, p.muon, p.companion);
    p.penalty = m.alpha / static_cast<double>(count);
    p.clip_factor = m.clip == static_cast<int>(Clip::NORM)
                        ? clip_norm_factor(sqrt(grad_sqnorm), m.clip_limit)
                        : 1.0;
    return p;
}

// The companion rule's step plan, for mlp_step_element over the tail (its L2 part and clipping
// as every other rule's).
template <class T> GDS_HD inline MlpStepPlan<T> mlp_companion_plan(const MlpMuonPlan& p) {
    MlpStepPlan<T> out;
    out.opt = p.companion;
    out.penalty = static_cast<T>(p.penalty);
    out.clip_factor = p.clip_factor;
    return out;
}

// Element i of a hidden matrix's Muon momentum (math/muon.h) from its batch-mean gradient g and
// weight w (a coefficient: the L2 part, then clipping): buf updated, u the update to
// orthogonalise.
template <class T>
GDS_HD inline void mlp_muon_momentum(const MlpConfig& m, const OptimizerConfig& o,
                                     const MlpMuonPlan& p, T w, T g, T& buf, T& u) {
    g = mlp_step_gradient<T>(m, static_cast<T>(p.penalty), p.clip_factor, true, w, g);
    muon_momentum<T>(p.muon.momentum, o.nesterov, g, buf, u);
}

// ---- Sophia's Gauss-Newton-Bartlett draws on the output layer -------------------------------------

// One row's outputs z[0..k) (logits) to d loss / d z at labels drawn from the network's own
// predictive distribution, times scale (1 / batch rows): a class from the softmax (SOFTMAX), a
// 0/1 label per logistic output (LOG), a N(z, 1) target per output (SQUARED); the draws are
// sophia_uniform(key, t, row, q) (math/sophia.h: q = 0 for the class, j for logistic output j,
// 2j and 2j + 1 for squared output j).
template <class T>
GDS_HD inline void mlp_gnb_output_delta(int loss, const T* z, gds_int64 k, gds_uint64 key,
                                        gds_int64 t, gds_int64 row, T scale, T* delta) {
    if (loss == static_cast<int>(Loss::SOFTMAX)) {
        gnb_softmax_delta<T>(z, static_cast<int>(k), sophia_uniform(key, t, row, 0), scale,
                             delta);
    } else if (loss == static_cast<int>(Loss::LOG)) {
        for (gds_int64 j = 0; j < k; ++j)
            delta[j] = gnb_logistic_delta<T>(z[j], sophia_uniform(key, t, row, static_cast<int>(j)),
                                             scale);
    } else {
        for (gds_int64 j = 0; j < k; ++j)
            delta[j] = gnb_squared_delta<T>(sophia_uniform(key, t, row, static_cast<int>(2 * j)),
                                            sophia_uniform(key, t, row, static_cast<int>(2 * j + 1)),
                                            scale);
    }
}

}  // namespace gds
