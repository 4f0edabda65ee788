// gdsolve/model/linear.h - the linear model's math, device-portable: the loss of one row and its
// derivative in each output, and the optimizer step that applies a batch gradient (schedule,
// clipping, L2 penalty, the L1 proximal step, averaging) to the parameters and the FitScalars.
// Callers: the CPU executor (cpu/linear_batch.h, cpu/linear_executor.h), the GPU kernels
// (gdsolve/gpu/kernels/linear.cu), _core.pyx (the step Dask's sync_gradient applies; tests).
//
// Parameters: K*d weights (row k = output k) followed by K intercepts; the objective is
// (1/n) sum_i s_i loss(y_i, x_i W' + b) + alpha R(W) (docs/linear.md). A step is
//   LinearStepPlan plan = linear_step_begin(model, optimizer, schedule, scalars, rows, ||g||^2);
//   linear_step_element(model, optimizer, plan, j, d, P, G, s0, s1, s2, A);   // each j < K*d + K
// with G the batch's summed (unnormalised) gradient.
#pragma once
#include "gdsolve/codes.h"
#include "gdsolve/config.h"
#include "gdsolve/math/clip.h"
#include "gdsolve/math/losses.h"
#include "gdsolve/math/optimizers.h"
#include "gdsolve/math/penalties.h"
#include "gdsolve/math/schedules.h"
#include "gdsolve/model/step.h"
#include "gdsolve/structs.h"

namespace gds {

// Loss of one row at its outputs z[0..K) (the prediction, or margin for LOG, when K = 1; the K
// logits for SOFTMAX, y then holding the class index); z is overwritten with d loss / d z_k,
// not yet clamped (clamp_dloss) or weighted.
template <class T> GDS_HD inline T linear_row_loss(int loss, T param, T* z, int K, T y) {
    if (K == 1 && loss != static_cast<int>(Loss::SOFTMAX)) {
        T g;
        const T value = loss_and_derivative(loss, z[0], y, param, g);
        z[0] = g;
        return value;
    }
    return softmax_cross_entropy(z, K, static_cast<int>(y));
}

// Everything one step's elements share (written once per step, read by every element).
struct LinearStepPlan {
    OptimizerStep opt;   // the rule's constants for this step
    double inv_count;    // 1 / rows of the batch: the step follows the batch-mean gradient
    double clip_factor;  // Clip::NORM: min(1, limit / (||g|| + 1e-6)); 1 otherwise
    double l2, l1;       // the penalty's smooth part (into the gradient) and its L1 part (prox)
    double avg_mu;       // weight 1/m of this step's iterate in the running average; 0: none
};

// The squared norm of the mean gradient that Clip::NORM measures (each element rounded to T as
// the step sees it), over the n parameters the step updates.
template <class T, class G>
GDS_HD inline double linear_clip_sqnorm(const G* grad, double inv_count, gds_int64 n) {
    double sq = 0.0;
    for (gds_int64 j = 0; j < n; ++j) {
        const T g = static_cast<T>(grad[j] * inv_count);
        sq += static_cast<double>(g) * g;
    }
    return sq;
}

// Parameters a step updates: the weights, and the intercepts when they are fitted (unfitted
// intercepts stay as they are, but are averaged with the rest).
GDS_HD inline gds_int64 linear_updated_params(const LinearConfig& m, gds_int64 d) {
    return static_cast<gds_int64>(m.n_outputs) * d + (m.fit_intercept ? m.n_outputs : 0);
}

// Once per step, before its elements: this step's rate (schedule times lr_factor), the rule's
// constants (advancing its counters), the clip factor from `grad_sqnorm` (linear_clip_sqnorm;
// ignored unless Clip::NORM), the averaging weight; then the step and sample counters advance
// by one step of `count` rows.
GDS_HD inline LinearStepPlan linear_step_begin(const LinearConfig& m, const OptimizerConfig& o,
                                               const ScheduleConfig& s, FitScalars& st,
                                               gds_int64 count, double grad_sqnorm) {
    LinearStepPlan p;
    p.opt = scheduled_optimizer_step(o, s, st);
    p.inv_count = 1.0 / static_cast<double>(count);
    p.clip_factor = m.clip == static_cast<int>(Clip::NORM)
                        ? clip_norm_factor(sqrt(grad_sqnorm), m.clip_limit)
                        : 1.0;
    const PenaltySplit pen = penalty_split(m.penalty, m.alpha, m.l1_ratio);
    p.l2 = pen.l2;
    p.l1 = pen.l1;
    p.avg_mu = 0.0;
    const double t_last = st.t + static_cast<double>(count) - 1.0;
    if (m.average_start > 0 && t_last >= static_cast<double>(m.average_start)) {
        st.avg_count += 1;
        p.avg_mu = 1.0 / static_cast<double>(st.avg_count);
    }
    st.t += static_cast<double>(count);
    return p;
}

// A step element by element, in three stages, each one function for every executor: the
// gradient the rule sees (the batch mean, clipped, plus the L2 part of the penalty), the rule's
// update (optimizer_update), then the L1 proximal step in the rule's own step size
// (l1_prox_step: exact zeros, the right fixed points under every rule) and the running average.
// linear_step_element runs all three on one element (a GPU thread); the CPU runs each stage as
// a pass over the whole vector (the rule's pass over contiguous arrays vectorizes).

// Stage 1, for j < linear_updated_params(m, d); n_w = K*d.
template <class T, class G>
GDS_HD inline T linear_step_gradient(const LinearConfig& m, const LinearStepPlan& p, gds_int64 j,
                                     gds_int64 n_w, const G* grad, const T* P) {
    T g = static_cast<T>(grad[j] * p.inv_count);
    if (m.clip == static_cast<int>(Clip::VALUE)) {
        g = clip_value(g, static_cast<T>(m.clip_limit));
    } else {
        const T f = static_cast<T>(p.clip_factor);
        if (f < T(1)) g *= f;
    }
    GDS_ROUNDED(g);  // the clipped gradient, then the L2 term: two roundings
    if (j < n_w && p.l2 > 0.0) g += static_cast<T>(p.l2) * P[j];
    return g;
}

// Stage 3, for every j < K*d + K (A may be null when the plan does not average).
template <class T>
GDS_HD inline void linear_step_finish(const OptimizerConfig& o, const LinearStepPlan& p,
                                      gds_int64 j, gds_int64 n_w, T* P, const T* s0, const T* s1,
                                      const T* s2, T* A) {
    if (j < n_w && p.l1 > 0.0)
        P[j] = soft_threshold(P[j], static_cast<T>(p.l1) *
                                        l1_prox_step(o, p.opt, s0[j], s1[j], s2[j]));
    if (p.avg_mu > 0.0) A[j] += (P[j] - A[j]) * static_cast<T>(p.avg_mu);
}

// All three stages on element j (j < K*d + K; d = features).
template <class T, class G>
GDS_HD inline void linear_step_element(const LinearConfig& m, const OptimizerConfig& o,
                                       const LinearStepPlan& p, gds_int64 j, gds_int64 d, T* P,
                                       const G* grad, T* s0, T* s1, T* s2, T* A) {
    const gds_int64 n_w = static_cast<gds_int64>(m.n_outputs) * d;
    if (j < linear_updated_params(m, d))
        optimizer_update<T>(o, p.opt, P[j], linear_step_gradient(m, p, j, n_w, grad, P), s0[j],
                            s1[j], s2[j]);
    linear_step_finish(o, p, j, n_w, P, s0, s1, s2, A);
}

}  // namespace gds
