// gdsolve/cpu/linear_per_sample.h - per-sample SGD on the CPU as scikit-learn runs it: the L2
// decay as a scale factor on the weights, O(nnz) updates of CSR rows, Tsuruoka et al.'s
// cumulative L1 truncation, lazily averaged iterates (ASGD); the row-level rules (loss and its
// clamped derivative) are model/linear.h's. Host only. Callers: cpu/linear_executor.h (every
// batch_size=1 epoch with plain SGD).
#pragma once
#include <algorithm>
#include <vector>

#include "gdsolve/config.h"
#include "gdsolve/cpu/interrupt.h"
#include "gdsolve/cpu/linalg.h"
#include "gdsolve/cpu/rows.h"
#include "gdsolve/driver/shuffle.h"
#include "gdsolve/math/clip.h"
#include "gdsolve/math/penalties.h"
#include "gdsolve/math/schedules.h"
#include "gdsolve/model/linear.h"
#include "gdsolve/structs.h"

namespace gds {
namespace linear_detail {

using linalg::kPrefetchAhead;

// A training problem as the CPU loops see it: rows, targets, weights (null: ones), K outputs of
// d features, the loss.
template <class T, class Rows> struct Problem {
    Rows X;
    const T* y;
    const T* sw;
    int K;
    gds_int64 d;
    int loss;
    T loss_param;
};


// Working copy of the model during an epoch: weights may carry a global scale (w = wscale * v,
// per-sample path) and the average a lazy form (avg_w = avg_beta * A + avg_gamma * v), both
// O(nnz) per sample; `sc` holds the fit's counters. Loaded from the FitState at the start of an
// epoch, written back (materialized) when it completes.
template <class T> struct Work {
    std::vector<T> p;  // K*d (v) then K intercepts
    double wscale = 1.0;
    bool averaging = false;
    std::vector<T> avg;  // A then K averaged intercepts (explicit)
    double avg_beta = 1.0, avg_gamma = 0.0;
    std::vector<T> s0, s1, s2;
    std::vector<T> q;  // cumulative L1 penalty each weight received (per-sample path)
    FitScalars sc{};
};

template <class T> inline void materialize(Work<T>& w, gds_int64 n_w) {
    if (w.averaging && (w.avg_beta != 1.0 || w.avg_gamma != 0.0)) {
        const T beta = static_cast<T>(w.avg_beta), gamma = static_cast<T>(w.avg_gamma);
        for (gds_int64 j = 0; j < n_w; ++j) w.avg[j] = beta * w.avg[j] + gamma * w.p[j];
        w.avg_beta = 1.0;
        w.avg_gamma = 0.0;
    }
    if (w.wscale != 1.0) {
        const T s = static_cast<T>(w.wscale);
        for (gds_int64 j = 0; j < n_w; ++j) w.p[j] *= s;
        w.wscale = 1.0;
    }
}

// True when no element is NaN or inf (x - x is 0 exactly for finite x).
template <class T> inline bool all_finite(const T* x, gds_int64 n) {
    T acc = T(0);
#pragma omp simd reduction(+ : acc)
    for (gds_int64 i = 0; i < n; ++i) acc += x[i] - x[i];
    return acc == T(0);
}

// ---- Per-sample SGD (plain rule, scale factor, lazy L1 and averaging) -------------------------

struct PerSampleSettings {
    double l1, l2;
    int fit_intercept;
    int clip_norm;
    double clip_limit;
    gds_int64 average_start;
};

// The common case kept tight (few live values, no spills): one output, no averaging, no L1.
template <class T, class Rows>
bool per_sample_epoch_simple(const Problem<T, Rows>& pb, const PerSampleSettings& ps,
                             const ScheduleConfig& sched, Work<T>& w, const RowIndex* order,
                             gds_int64 n, double& loss_sum, InterruptChecker& checker) {
    const gds_int64 d = pb.d;
    T* v = w.p.data();
    T b = v[d];
    double s = w.wscale, t = w.sc.t, sum = loss_sum;  // continues the caller's running sum
    gds_int64 step = w.sc.step;
    const double lr_factor = w.sc.lr_factor, l2 = ps.l2;
    const T* y = pb.y;
    const T* sw = pb.sw;
    const int loss = pb.loss;
    const T param = pb.loss_param;
    bool completed = true;
    for (gds_int64 ii = 0; ii < n; ++ii) {
        const gds_int64 i = order[ii];
        if (ii + 2 * kPrefetchAhead < n) pb.X.prefetch_index(order[ii + 2 * kPrefetchAhead]);
        if (ii + kPrefetchAhead < n) {
            const gds_int64 next = order[ii + kPrefetchAhead];
            pb.X.prefetch(next);
            linalg::prefetch_line(y + next);
        }
        const T z = static_cast<T>(s) * pb.X.dot(i, v) + b;
        const double eta = schedule_lr(sched, static_cast<double>(step), t) * lr_factor;
        T g;
        const T lossv = loss_and_derivative(loss, z, y[i], param, g);
        const T swi = sw ? sw[i] : T(1);
        sum += static_cast<double>(swi) * static_cast<double>(lossv);
        T upd = static_cast<T>(-eta) * swi * clamp_dloss(g);
        if (ps.clip_norm && upd != T(0)) {
            const double xx = static_cast<double>(pb.X.sqnorm(i)) + (ps.fit_intercept ? 1.0 : 0.0);
            const double gnorm = abs(static_cast<double>(upd)) * sqrt(xx) / (eta > 0.0 ? eta : 1.0);
            upd *= static_cast<T>(clip_norm_factor(gnorm, ps.clip_limit));
        }
        if (l2 > 0.0) {
            const double f = 1.0 - eta * l2;  // as scikit-learn: zero the weights, never flip them
            s *= f > 0.0 ? f : 0.0;
            if (s < 1e-9) {
                const T sc = static_cast<T>(s);
                for (gds_int64 j = 0; j < d; ++j) v[j] *= sc;
                s = 1.0;
            }
        }
        const T c = upd * static_cast<T>(1.0 / s);  // 1/s waits only on the schedule
        if (upd != T(0)) {
            pb.X.axpy(i, c, v);
            if (ps.fit_intercept) b += upd;
        }
        t += 1.0;
        step += 1;
        if (checker.should_stop(1)) {
            completed = false;
            break;
        }
    }
    v[d] = b;
    w.wscale = s;
    w.sc.t = t;
    w.sc.step = step;
    loss_sum = sum;
    return completed;
}

// One pass over `order`, adding to loss_sum; returns false when interrupted (work then partially
// updated: caller restores its epoch snapshot).
template <class T, class Rows>
bool per_sample_epoch(const Problem<T, Rows>& pb, const PerSampleSettings& ps,
                      const ScheduleConfig& sched, Work<T>& w, const RowIndex* order,
                      gds_int64 n, double& loss_sum, InterruptChecker& checker) {
    const int K = pb.K;
    const gds_int64 d = pb.d, n_w = static_cast<gds_int64>(K) * d;
    T* v = w.p.data();
    T* b = v + n_w;
    T* A = w.averaging ? w.avg.data() : nullptr;
    T* Ab = w.averaging ? A + n_w : nullptr;
    T z[64];
    std::vector<T> zbig(K > 64 ? K : 0);
    T* zp = K > 64 ? zbig.data() : z;
    std::vector<T> upd_buf(K);
    T* upd = upd_buf.data();
    double sum = loss_sum;  // continues the caller's running sum
    const bool l1_on = ps.l1 > 0.0;
    for (gds_int64 ii = 0; ii < n; ++ii) {
        const gds_int64 i = order[ii];
        if (ii + 2 * kPrefetchAhead < n) pb.X.prefetch_index(order[ii + 2 * kPrefetchAhead]);
        if (ii + kPrefetchAhead < n) {
            pb.X.prefetch(order[ii + kPrefetchAhead]);
            linalg::prefetch_line(pb.y + order[ii + kPrefetchAhead]);
        }
        const T s = static_cast<T>(w.wscale);
        const T swi = pb.sw ? pb.sw[i] : T(1);
        const double eta =
            schedule_lr(sched, static_cast<double>(w.sc.step), w.sc.t) * w.sc.lr_factor;
        for (int k = 0; k < K; ++k) zp[k] = s * pb.X.dot(i, v + k * d) + b[k];
        const T lossv = linear_row_loss(pb.loss, pb.loss_param, zp, K, pb.y[i]);
        sum += static_cast<double>(swi) * static_cast<double>(lossv);
        const T coef = static_cast<T>(-eta) * swi;
        bool any = false;
        for (int k = 0; k < K; ++k) {
            upd[k] = coef * clamp_dloss(zp[k]);
            any = any || upd[k] != T(0);
        }
        if (ps.clip_norm && any) {
            double g2 = 0.0;
            for (int k = 0; k < K; ++k) g2 += static_cast<double>(upd[k]) * upd[k];
            const double xx = static_cast<double>(pb.X.sqnorm(i)) + (ps.fit_intercept ? 1.0 : 0.0);
            const double gnorm = sqrt(g2 * xx) / (eta > 0.0 ? eta : 1.0);
            const T f = static_cast<T>(clip_norm_factor(gnorm, ps.clip_limit));
            for (int k = 0; k < K; ++k) upd[k] *= f;
        }
        if (ps.l2 > 0.0) {
            // as scikit-learn: never scale to negative values; zero the weights instead
            const double f = 1.0 - eta * ps.l2;
            w.wscale *= f > 0.0 ? f : 0.0;
            if (w.wscale < 1e-9) materialize(w, n_w);
        }
        const T s_new = static_cast<T>(w.wscale);
        const bool avg_before = w.averaging && w.sc.avg_count > 0;
        const T comp = avg_before ? static_cast<T>(w.avg_gamma / w.avg_beta) : T(0);
        if (any) {
            for (int k = 0; k < K; ++k) {
                if (upd[k] == T(0)) continue;
                const T a = upd[k] / s_new;
                pb.X.axpy(i, a, v + k * d);
                if (avg_before) pb.X.axpy(i, -comp * a, A + k * d);  // keep the average fixed
            }
            if (ps.fit_intercept)
                for (int k = 0; k < K; ++k) b[k] += upd[k];
        }
        if (w.averaging && w.sc.t >= static_cast<double>(ps.average_start)) {
            const gds_int64 m = ++w.sc.avg_count;
            if (m == 1) {
                std::fill(A, A + n_w, T(0));
                w.avg_beta = 1.0;
                w.avg_gamma = w.wscale;
                for (int k = 0; k < K; ++k) Ab[k] = b[k];
            } else {
                const double mu = 1.0 / static_cast<double>(m);
                w.avg_beta *= 1.0 - mu;
                w.avg_gamma = (1.0 - mu) * w.avg_gamma + mu * w.wscale;
                for (int k = 0; k < K; ++k) Ab[k] += (b[k] - Ab[k]) * static_cast<T>(mu);
                if (w.avg_beta < 1e-6) {
                    const T beta = static_cast<T>(w.avg_beta);
                    for (gds_int64 j = 0; j < n_w; ++j) A[j] *= beta;
                    w.avg_beta = 1.0;
                }
            }
        }
        if (l1_on) {
            // Tsuruoka et al. cumulative truncation on the weights this row touches
            w.sc.l1_u += eta * ps.l1;
            const T u = static_cast<T>(w.sc.l1_u);
            const T sc = static_cast<T>(w.wscale);
            const bool avg_now = w.averaging && w.sc.avg_count > 0;
            const T comp_now = avg_now ? static_cast<T>(w.avg_gamma / w.avg_beta) : T(0);
            T* q = w.q.data();
            pb.X.for_each(i, [&](gds_int64 j, T) {
                for (int k = 0; k < K; ++k) {
                    const gds_int64 idx = k * d + j;
                    T wv = sc * v[idx];
                    const T before = wv;
                    cumulative_l1_truncate(wv, q[idx], u);
                    if (wv != before) {
                        const T nv = wv / sc;
                        if (avg_now) A[idx] -= comp_now * (nv - v[idx]);
                        v[idx] = nv;
                    }
                }
            });
        }
        w.sc.t += 1.0;
        w.sc.step += 1;
        if (checker.should_stop(1)) {
            loss_sum = sum;
            return false;
        }
    }
    loss_sum = sum;
    return true;
}

// The (value type, row layout) pairs the loop is compiled for; X(T, ROWS) per pair.
#define GDS_LINEAR_ROW_TYPES(X) X(double, DenseRows) X(float, DenseRows) X(double, CsrRows) \
    X(float, CsrRows)

// Each per-sample loop as its own cloned function, called once per epoch (or per gathered
// chunk): inlined into the (flattened, very large) fit, the loops kept several of their values on
// the stack, which cost about a third of an epoch's time.
#define GDS_PER_SAMPLE_CLONE(NAME, LOOP, T, ROWS)                                                \
    GDS_SIMD_CLONES static bool NAME(const Problem<T, ROWS<T>>& pb, const PerSampleSettings& ps, \
                                     const ScheduleConfig& sched, Work<T>& w,                    \
                                     const RowIndex* order, gds_int64 n, double& loss_sum,       \
                                     InterruptChecker& checker) {                                \
        return LOOP(pb, ps, sched, w, order, n, loss_sum, checker);                              \
    }
#define GDS_PER_SAMPLE_CLONES(T, ROWS)                                                           \
    GDS_PER_SAMPLE_CLONE(per_sample_simple_cloned, per_sample_epoch_simple, T, ROWS)           \
    GDS_PER_SAMPLE_CLONE(per_sample_cloned, per_sample_epoch, T, ROWS)
GDS_LINEAR_ROW_TYPES(GDS_PER_SAMPLE_CLONES)
#undef GDS_PER_SAMPLE_CLONES
#undef GDS_PER_SAMPLE_CLONE

}  // namespace linear_detail
}  // namespace gds
