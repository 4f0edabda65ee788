// gdsolve/linear_loop.h - the whole training loop of a linear model (regression, binary logistic,
// multinomial softmax): epochs, shuffling, per-sample SGD / mini-batch / full-batch gradients,
// penalty, schedule, optimizer update, averaging, early-stopping bookkeeping. Host only.
// Called once per fit / partial_fit from gdsolve/_linear_loop.pyx through the non-template
// fit_linear_* entry points at the bottom (compiled AVX2+FMA and baseline, see config.h).
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "clip.h"
#include "codes.h"
#include "config.h"
#include "fast_math.h"
#include "loop_common.h"
#include "losses.h"
#include "optimizers.h"
#include "penalties.h"
#include "schedules.h"
#include "worker_team.h"

// Software prefetch of upcoming (shuffled) rows: distance in rows and locality hint (1 =
// prefetcht2; distances 2-8 and hints 1 and 3 measured within noise of each other).
#ifndef GDS_LINEAR_PREFETCH_AHEAD
#define GDS_LINEAR_PREFETCH_AHEAD 4
#endif
#ifndef GDS_LINEAR_PREFETCH_HINT
#define GDS_LINEAR_PREFETCH_HINT 1
#endif

namespace gds {

// ---- Small vector kernels ---------------------------------------------------------------------
namespace linalg {

// 32-byte vector of T for explicit accumulators (GCC/Clang vector extension; the baseline clone
// lowers it to SSE2 pairs). Unaligned and may alias T, so it loads straight from rows.
template <class T> struct Vec32 {
    typedef T type __attribute__((vector_size(32), aligned(sizeof(T)), may_alias));
    static constexpr int kLanes = 32 / static_cast<int>(sizeof(T));
};

// Dot product with four vector accumulators held in registers, so the FMA latency chain does not
// bound short rows (d ~ 100). (An accumulator array under `omp simd` was kept on the stack, a
// store-to-load round trip per step.) No -ffast-math needed: the split is explicit.
template <class T> inline T dot(const T* a, const T* b, gds_int64 n) {
    typedef typename Vec32<T>::type V;
    constexpr int L = Vec32<T>::kLanes;
    V s0 = {}, s1 = {}, s2 = {}, s3 = {};
    gds_int64 i = 0;
    for (; i + 4 * L <= n; i += 4 * L) {
        s0 += *reinterpret_cast<const V*>(a + i) * *reinterpret_cast<const V*>(b + i);
        s1 += *reinterpret_cast<const V*>(a + i + L) * *reinterpret_cast<const V*>(b + i + L);
        s2 += *reinterpret_cast<const V*>(a + i + 2 * L) *
              *reinterpret_cast<const V*>(b + i + 2 * L);
        s3 += *reinterpret_cast<const V*>(a + i + 3 * L) *
              *reinterpret_cast<const V*>(b + i + 3 * L);
    }
    for (; i + L <= n; i += L)
        s0 += *reinterpret_cast<const V*>(a + i) * *reinterpret_cast<const V*>(b + i);
    const V v = (s0 + s1) + (s2 + s3);
    T s = T(0);
    for (int j = 0; j < L; ++j) s += v[j];
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

// y += a * x
template <class T> inline void axpy(T a, const T* x, T* y, gds_int64 n) {
#pragma omp simd
    for (gds_int64 i = 0; i < n; ++i) y[i] += a * x[i];
}

template <class T> inline T sqnorm(const T* x, gds_int64 n) { return dot(x, x, n); }

// Kernels over a group of M rows at once, column block by column block: one load of w (or of
// the gradient block) serves all M rows, where a row at a time pays it M times. One register
// accumulator per row: M independent FMA chains hide the FMA latency.
// out[k * stride] = x[k] . w
template <int M, class T>
inline void dot_rows(const T* const* x, const T* w, gds_int64 n, T* out, int stride) {
    typedef typename Vec32<T>::type V;
    constexpr int L = Vec32<T>::kLanes;
    V acc[M];
#pragma GCC unroll 16
    for (int k = 0; k < M; ++k) acc[k] = V{};
    gds_int64 j = 0;
    for (; j + L <= n; j += L) {
        const V wv = *reinterpret_cast<const V*>(w + j);
#pragma GCC unroll 16
        for (int k = 0; k < M; ++k) acc[k] += *reinterpret_cast<const V*>(x[k] + j) * wv;
    }
#pragma GCC unroll 16
    for (int k = 0; k < M; ++k) {
        T tail = T(0);
        for (gds_int64 t = j; t < n; ++t) tail += x[k][t] * w[t];
        T lanes = T(0);
        for (int l = 0; l < L; ++l) lanes += acc[k][l];
        out[k * stride] = lanes + tail;
    }
}

// y += sum_k a[k] x[k], adding the rows in order k = 0, 1, ... (the same sums, in the same order,
// as M calls of axpy).
template <int M, class T>
inline void axpy_rows(const T* a, const T* const* x, T* y, gds_int64 n) {
    typedef typename Vec32<T>::type V;
    constexpr int L = Vec32<T>::kLanes;
    V av[M];
#pragma GCC unroll 16
    for (int k = 0; k < M; ++k) av[k] = V{} + a[k];
    gds_int64 j = 0;
    for (; j + L <= n; j += L) {
        V acc = *reinterpret_cast<const V*>(y + j);
#pragma GCC unroll 16
        for (int k = 0; k < M; ++k) acc += av[k] * *reinterpret_cast<const V*>(x[k] + j);
        *reinterpret_cast<V*>(y + j) = acc;
    }
    for (; j < n; ++j) {
        T acc = y[j];
#pragma GCC unroll 16
        for (int k = 0; k < M; ++k) acc += a[k] * x[k][j];
        y[j] = acc;
    }
}

// One cache line. GCC deletes a loop whose body is only __builtin_prefetch when its trip count
// is not a compile-time constant (it counts as side-effect free): volatile asm keeps it.
inline void prefetch_line(const void* p) {
#if defined(__x86_64__) && defined(__GNUC__)
#if GDS_LINEAR_PREFETCH_HINT >= 3
    __asm__ volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#elif GDS_LINEAR_PREFETCH_HINT == 2
    __asm__ volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
#elif GDS_LINEAR_PREFETCH_HINT == 1
    __asm__ volatile("prefetcht2 %0" : : "m"(*static_cast<const char*>(p)));
#else
    __asm__ volatile("prefetchnta %0" : : "m"(*static_cast<const char*>(p)));
#endif
#else
    __builtin_prefetch(p, 0, GDS_LINEAR_PREFETCH_HINT);
#endif
}

inline void prefetch_bytes(const void* p, gds_int64 bytes) {
    const char* c = static_cast<const char*>(p);
    for (gds_int64 off = 0; off < bytes; off += 64) prefetch_line(c + off);
}

}  // namespace linalg

// ---- Row access: dense row-major and CSR ------------------------------------------------------

template <class T> struct DenseRows {
    static constexpr bool kDense = true;
    const T* X;
    gds_int64 n_rows, n_cols, ld;  // ld: elements between consecutive rows

    const T* row(gds_int64 i) const { return X + i * ld; }
    T dot(gds_int64 i, const T* w) const { return linalg::dot(row(i), w, n_cols); }
    void axpy(gds_int64 i, T a, T* w) const { linalg::axpy(a, row(i), w, n_cols); }
    T sqnorm(gds_int64 i) const { return linalg::sqnorm(row(i), n_cols); }
    gds_int64 row_nnz(gds_int64) const { return n_cols; }
    void prefetch(gds_int64 i) const {
        linalg::prefetch_bytes(row(i), n_cols * static_cast<gds_int64>(sizeof(T)));
    }
    void prefetch_index(gds_int64) const {}
    // Every stored entry (for dense rows: every column, as scikit-learn's lazy L1 does).
    template <class F> void for_each(gds_int64 i, F&& f) const {
        const T* x = row(i);
        for (gds_int64 j = 0; j < n_cols; ++j) f(j, x[j]);
    }
};

template <class T> struct CsrRows {
    static constexpr bool kDense = false;
    const T* data;
    const std::int32_t* indices;
    const gds_int64* indptr;
    gds_int64 n_rows, n_cols;

    // Four accumulators, so a row's products are not one chain of FMA latencies. (The former
    // `omp simd reduction` stayed scalar inside the cloned entry points, one chain with the sum
    // stored to the stack every step: the per-sample CSR epoch took 29 ms instead of about 21.)
    T dot(gds_int64 i, const T* w) const {
        const gds_int64 end = indptr[i + 1];
        T s0 = T(0), s1 = T(0), s2 = T(0), s3 = T(0);
        gds_int64 p = indptr[i];
        for (; p + 4 <= end; p += 4) {
            s0 += data[p] * w[indices[p]];
            s1 += data[p + 1] * w[indices[p + 1]];
            s2 += data[p + 2] * w[indices[p + 2]];
            s3 += data[p + 3] * w[indices[p + 3]];
        }
        for (; p < end; ++p) s0 += data[p] * w[indices[p]];
        return (s0 + s1) + (s2 + s3);
    }
    void axpy(gds_int64 i, T a, T* w) const {
        const gds_int64 end = indptr[i + 1];
        for (gds_int64 p = indptr[i]; p < end; ++p) w[indices[p]] += a * data[p];
    }
    T sqnorm(gds_int64 i) const {
        T s = T(0);
        for (gds_int64 p = indptr[i]; p < indptr[i + 1]; ++p) s += data[p] * data[p];
        return s;
    }
    gds_int64 row_nnz(gds_int64 i) const { return indptr[i + 1] - indptr[i]; }
    int prefetch_lines = 0;        // cache lines of data / of indices per row prefetch, set from
    int prefetch_index_lines = 0;  // the mean row length

    // A fixed number of lines per row (from the mean length), so the prefetch does not wait on
    // indptr[i + 1]; prefetching a little past a short row is harmless.
    void prefetch(gds_int64 i) const {
        const char* d = reinterpret_cast<const char*>(data + indptr[i]);
        const char* x = reinterpret_cast<const char*>(indices + indptr[i]);
        for (int k = 0; k < prefetch_lines; ++k) linalg::prefetch_line(d + 64 * k);
        for (int k = 0; k < prefetch_index_lines; ++k) linalg::prefetch_line(x + 64 * k);
    }
    void set_prefetch_lines() {
        const double mean_nnz = n_rows > 0 ? static_cast<double>(indptr[n_rows] - indptr[0]) /
                                                 static_cast<double>(n_rows)
                                           : 0.0;
        const double bytes = mean_nnz * static_cast<double>(sizeof(T));
        prefetch_lines = static_cast<int>(std::min(32.0, std::ceil(bytes / 64.0)));
        prefetch_index_lines = static_cast<int>(std::min(16.0, std::ceil(mean_nnz * 4.0 / 64.0)));
    }
    // indptr[i] is itself a random access: fetched a stage earlier than the row.
    void prefetch_index(gds_int64 i) const {
        linalg::prefetch_line(indptr + i);
        linalg::prefetch_line(indptr + i + 1);  // may sit in the next line
    }
    template <class F> void for_each(gds_int64 i, F&& f) const {
        for (gds_int64 p = indptr[i]; p < indptr[i + 1]; ++p) f(indices[p], data[p]);
    }
};

// ---- Interface structs (filled by _linear_loop.pyx) -------------------------------------------

enum class PlateauMode : int { NONE = 0, ADAPTIVE = 1, REDUCE_ON_PLATEAU = 2 };

struct LinearConfig {
    int loss;             // gds::Loss; LOG: y in {-1, +1}; SOFTMAX: y holds the class index
    double loss_param;    // epsilon of huber / epsilon_insensitive
    int n_outputs;        // K: rows of the weight matrix (1, or n_classes for SOFTMAX)
    int fit_intercept;
    int penalty;          // gds::Penalty
    double alpha;
    double l1_ratio;
    OptimizerConfig optimizer;
    ScheduleConfig schedule;
    int plateau_mode;     // PlateauMode
    ReduceOnPlateauConfig plateau;
    gds_int64 batch_size;  // rows per update; 0 = the whole training set (full-batch descent)
    int max_iter;          // epochs
    int use_tol;           // stopping rule on (tol, n_iter_no_change)
    double tol;
    int n_iter_no_change;
    int shuffle;
    std::uint64_t seed;
    gds_int64 average_start;  // averaged SGD from this sample count on (t >= start); 0 = off
    int clip;                 // gds::Clip applied to the data gradient
    double clip_limit;
    int n_threads;            // threads that share each batch's rows (mini and full batch); 1 = none
    int gather_rows;          // per-sample, shuffled: rows gathered into chunks by a helper thread
                              // (-1 auto, 0 off, 1 on; 2 on without the helper thread, for tests)
};

// One data set view: rows `train_rows` train, `val_rows` (optional) give the early-stopping score.
template <class T> struct LinearData {
    int sparse;  // 0: dense row-major X (ld = row stride); 1: CSR (data, indices, indptr)
    const T* X;
    gds_int64 ld;
    const T* data;
    const std::int32_t* indices;
    const gds_int64* indptr;
    gds_int64 n_rows, n_cols;
    const T* y;
    const T* sample_weight;  // null: all ones
    const gds_int64* train_rows;
    gds_int64 n_train;
    const gds_int64* val_rows;  // null / 0: no validation
    gds_int64 n_val;
};

// Model and optimizer state, in and out (arrays owned by the caller). Parameters are laid out as
// K*d weights (row-major, row k = output k) followed by K intercepts.
template <class T> struct LinearState {
    T* params;
    T* avg_params;          // null unless averaging
    gds_int64 avg_count;    // iterates averaged so far
    T* slot0;               // optimizer state slots, K*d + K each
    T* slot1;
    T* slot2;
    gds_int64 opt_step;
    double opt_mu_product;
    T* l1_q;                // cumulative L1 penalty received per weight (per-sample SGD), K*d
    double l1_u;            // cumulative L1 penalty available per weight
    double t;               // scikit-learn's t: samples seen + 1
    gds_int64 step;         // optimizer updates so far (schedules' step)
};

typedef void (*EpochCallback)(void* context, int epoch, double objective, double score, double lr,
                              double seconds);

struct LinearCallbacks {
    InterruptCallback interrupt;  // may be null
    void* interrupt_context;
    double interrupt_interval;
    EpochCallback epoch;  // verbose printing; may be null
    void* epoch_context;
};

struct LinearReport {
    int status;            // FitStatus
    int n_epochs;          // epochs completed and kept in the state
    int stop_epoch;        // 1-based epoch at which the loop stopped (diverged / interrupted)
    double* loss_curve;    // max_iter slots: objective per completed epoch
    double* val_scores;    // max_iter slots: validation score per epoch (when n_val > 0)
    double seconds;        // time spent in the epoch loop
    int used_per_sample;   // 1 if the per-sample scale-factor path ran
    int used_gather;       // 1 if a helper thread gathered the shuffled rows
};

// ---- Internals ---------------------------------------------------------------------------------
namespace linear_detail {

constexpr double kMaxDloss = 1e12;  // as scikit-learn: keeps one wild sample from making inf
constexpr gds_int64 kBlockRows = 256;
constexpr int kPrefetchAhead = GDS_LINEAR_PREFETCH_AHEAD;

// Training-row order: 32 bits halve the shuffle's and the order's memory traffic (the binding
// rejects data with 2^32 rows or more).
typedef std::uint32_t RowIndex;

template <class T, class Rows> struct Problem {
    Rows X;
    const T* y;
    const T* sw;
    int K;
    gds_int64 d;
    int loss;
    T loss_param;
};

// Working copy of the model: weights may carry a global scale (w = wscale * v, per-sample path)
// and the average a lazy form (avg_w = avg_beta * A + avg_gamma * v), both O(nnz) per sample.
template <class T> struct Work {
    std::vector<T> p;  // K*d (v) then K intercepts
    double wscale = 1.0;
    bool averaging = false;
    std::vector<T> avg;  // A then K averaged intercepts (explicit)
    double avg_beta = 1.0, avg_gamma = 0.0;
    gds_int64 avg_count = 0;
    std::vector<T> s0, s1, s2;
    OptimizerScalars opt{0, 1.0};
    std::vector<T> q;
    double u = 0.0;
    double t = 1.0;
    gds_int64 step = 0;
    double lr_factor = 1.0;
};

// Fold the scale and the lazy average into plain arrays (O(K d)).
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

// log1p for the log loss. glibc's log1pf is about twice logf's cost; Goldberg's identity
// log1p(x) = log(u) x / (u - 1), u = 1 + x, keeps log1p's accuracy with the fast logf.
inline double log1p_loss(double x) { return log1p(x); }
inline float log1p_loss(float x) {
    const float u = 1.0f + x;
    return u == 1.0f ? x : log(u) * x / (u - 1.0f);
}

// Loss and d loss / d p of one output. Same functions as losses.h; the log loss shares one exp
// between value and derivative (this sits on the per-sample critical path).
template <class T> inline T loss_and_derivative(int loss, T p, T y, T param, T& dloss) {
    if (loss == static_cast<int>(Loss::LOG)) {
        const T z = y * p;
        const T e = exp(-abs(z));                                    // exp(-|z|) never overflows
        const T sig = z > T(0) ? e / (T(1) + e) : T(1) / (T(1) + e);  // sigmoid(-z)
        dloss = -y * sig;
        return (z > T(0) ? T(0) : -z) + log1p_loss(e);               // log(1 + exp(-z))
    }
    dloss = loss_derivative(loss, p, y, param);
    return loss_value(loss, p, y, param);
}

// Loss of one row and its derivative in each of the K outputs (written into z).
template <class T> inline T row_loss_and_grad(int loss, T param, T* z, int K, T y) {
    if (K == 1 && loss != static_cast<int>(Loss::SOFTMAX)) {
        T g;
        const T value = loss_and_derivative(loss, z[0], y, param, g);
        z[0] = g;
        return value;
    }
    return softmax_cross_entropy(z, K, static_cast<int>(y));
}

// True when no element is NaN or inf (x - x is 0 exactly for finite x).
template <class T> inline bool all_finite(const T* x, gds_int64 n) {
    T acc = T(0);
#pragma omp simd reduction(+ : acc)
    for (gds_int64 i = 0; i < n; ++i) acc += x[i] - x[i];
    return acc == T(0);
}

template <class T> inline T clamp_dloss(T g) {
    const T m = static_cast<T>(kMaxDloss);
    return g > m ? m : (g < -m ? -m : g);
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
    double s = w.wscale, t = w.t, sum = loss_sum;  // continues the caller's running sum
    gds_int64 step = w.step;
    const double lr_factor = w.lr_factor, l2 = ps.l2;
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
    w.t = t;
    w.step = step;
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
        const double eta = schedule_lr(sched, static_cast<double>(w.step), w.t) * w.lr_factor;
        for (int k = 0; k < K; ++k) zp[k] = s * pb.X.dot(i, v + k * d) + b[k];
        const T lossv = row_loss_and_grad(pb.loss, pb.loss_param, zp, K, pb.y[i]);
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
        const bool avg_before = w.averaging && w.avg_count > 0;
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
        if (w.averaging && w.t >= static_cast<double>(ps.average_start)) {
            const gds_int64 m = ++w.avg_count;
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
            w.u += eta * ps.l1;
            const T u = static_cast<T>(w.u);
            const T sc = static_cast<T>(w.wscale);
            const bool avg_now = w.averaging && w.avg_count > 0;
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
        w.t += 1.0;
        w.step += 1;
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

// ---- Shuffled rows gathered ahead by a helper thread (per-sample SGD) --------------------------

// Per-sample SGD is sequential: on a shuffled epoch its loads wait on memory a row at a time, and
// software prefetching overlaps them with the update chain only in part. A helper thread copies
// the epoch's rows (and their targets and weights), in the epoch's order, into a ring of chunks
// ahead of the training thread, which reads each chunk as contiguous memory through the same
// per-sample code. Same rows, same order, same arithmetic: the model equals the direct loop's bit
// for bit. Chunks are claimed in order from one counter: when the training thread finds its next
// chunk not ready (the copying is the slower side, e.g. float32 rows), it claims and fills the
// next unclaimed chunk itself instead of waiting, so the two threads share the copying.
template <class T> struct GatherChunk {
    gds_int64 count = 0;
    std::vector<T> X;                    // dense rows, count x d
    std::vector<T> data;                 // CSR rows
    std::vector<std::int32_t> indices;
    std::vector<gds_int64> indptr;
    std::vector<T> y, sw;
};

template <class T, class Rows> class RowGatherer {
  public:
    static constexpr gds_int64 kChunkRows = 512;
    static constexpr int kSlots = 8;

    // The ring and the in-chunk order are allocated once per fit; each epoch is one
    // start() ... finish() with its own helper thread.
    // with_helper false: no helper thread, the training thread fills every chunk (as when the
    // system refuses a thread; the tests use it to check that path).
    RowGatherer(const Problem<T, Rows>& pb, bool with_helper)
        : pb_(pb), slots_(kSlots), in_chunk_(kChunkRows), with_helper_(with_helper) {
        for (auto& ch : slots_) {
            if (Rows::kDense) ch.X.resize(static_cast<std::size_t>(kChunkRows * pb.d));
            else ch.indptr.resize(kChunkRows + 1);
            ch.y.resize(kChunkRows);
            if (pb.sw) ch.sw.resize(kChunkRows);
        }
        for (gds_int64 j = 0; j < kChunkRows; ++j) in_chunk_[j] = static_cast<RowIndex>(j);
    }
    RowGatherer(const RowGatherer&) = delete;
    RowGatherer& operator=(const RowGatherer&) = delete;
    ~RowGatherer() { finish(); }

    // Begins gathering the rows order[0..n) (order must stay unchanged until finish()).
    void start(const RowIndex* order, gds_int64 n) {
        order_ = order;
        n_ = n;
        n_chunks_ = (n + kChunkRows - 1) / kChunkRows;
        next_fill_.store(0, std::memory_order_relaxed);
        consumed_.store(0, std::memory_order_relaxed);
        for (auto& r : ready_) r.store(-1, std::memory_order_relaxed);
        stop_.store(false, std::memory_order_relaxed);
        if (!with_helper_) return;  // acquire() claims and fills every chunk itself
        try {
            thread_ = std::thread(&RowGatherer::produce, this);
        } catch (const std::system_error&) {
            // no helper: as above
        }
    }
    // Stops the helper (also after an early exit) and waits for it.
    void finish() {
        stop_.store(true, std::memory_order_release);
        if (thread_.joinable()) thread_.join();
    }

    gds_int64 n_chunks() const { return n_chunks_; }
    // Row order within every chunk: 0, 1, 2, ...
    const RowIndex* in_chunk_order() const { return in_chunk_.data(); }

    // The problem restricted to chunk c, its rows in order. While chunk c is not ready, fills
    // the next unclaimed chunk whose slot is free (every chunk before c has been released).
    Problem<T, Rows> acquire(gds_int64 c) {
        for (std::uint32_t spins = 0;
             ready_[c % kSlots].load(std::memory_order_acquire) != c; ++spins) {
            gds_int64 k = next_fill_.load(std::memory_order_relaxed);
            if (k < n_chunks_ && k < c + kSlots &&
                next_fill_.compare_exchange_strong(k, k + 1, std::memory_order_relaxed)) {
                fill_chunk(k);
                continue;
            }
            if (spins < (1u << 14)) GDS_SPIN_PAUSE();
            else std::this_thread::yield();
        }
        const GatherChunk<T>& ch = slots_[c % kSlots];
        Problem<T, Rows> part = pb_;
        part.X = view(ch);
        part.y = ch.y.data();
        part.sw = pb_.sw ? ch.sw.data() : nullptr;
        return part;
    }
    gds_int64 count(gds_int64 c) const { return std::min(n_, (c + 1) * kChunkRows) - c * kChunkRows; }
    void release(gds_int64 c) { consumed_.store(c + 1, std::memory_order_release); }

  private:
    DenseRows<T> view_dense(const GatherChunk<T>& ch) const {
        return DenseRows<T>{ch.X.data(), ch.count, pb_.d, pb_.d};
    }
    CsrRows<T> view_csr(const GatherChunk<T>& ch) const {
        CsrRows<T> rows{ch.data.data(), ch.indices.data(), ch.indptr.data(), ch.count, pb_.d};
        rows.prefetch_lines = pb_.X.prefetch_lines;
        rows.prefetch_index_lines = pb_.X.prefetch_index_lines;
        return rows;
    }
    Rows view(const GatherChunk<T>& ch) const {
        if constexpr (Rows::kDense) return view_dense(ch);
        else return view_csr(ch);
    }

    void fill(GatherChunk<T>& ch, gds_int64 a, gds_int64 e) {
        const gds_int64 m = e - a;
        ch.count = m;
        const RowIndex* rows = order_ + a;
        for (gds_int64 j = 0; j < m; ++j) {
            ch.y[j] = pb_.y[rows[j]];
            if (pb_.sw) ch.sw[j] = pb_.sw[rows[j]];
        }
        if constexpr (Rows::kDense) {
            const gds_int64 d = pb_.d;
            for (gds_int64 j = 0; j < m; ++j) {
                if (j + 8 < m) pb_.X.prefetch(rows[j + 8]);
                std::memcpy(ch.X.data() + j * d, pb_.X.row(rows[j]),
                            sizeof(T) * static_cast<std::size_t>(d));
            }
        } else {
            const CsrRows<T>& X = pb_.X;
            ch.indptr[0] = 0;
            for (gds_int64 j = 0; j < m; ++j) ch.indptr[j + 1] = ch.indptr[j] + X.row_nnz(rows[j]);
            const std::size_t nnz = static_cast<std::size_t>(ch.indptr[m]);
            if (ch.data.size() < nnz) {
                ch.data.resize(nnz);
                ch.indices.resize(nnz);
            }
            for (gds_int64 j = 0; j < m; ++j) {
                if (j + 8 < m) X.prefetch(rows[j + 8]);
                const gds_int64 from = X.indptr[rows[j]], len = ch.indptr[j + 1] - ch.indptr[j];
                std::memcpy(ch.data.data() + ch.indptr[j], X.data + from,
                            sizeof(T) * static_cast<std::size_t>(len));
                std::memcpy(ch.indices.data() + ch.indptr[j], X.indices + from,
                            sizeof(std::int32_t) * static_cast<std::size_t>(len));
            }
        }
    }

    void fill_chunk(gds_int64 c) {
        fill(slots_[c % kSlots], c * kChunkRows, std::min(n_, (c + 1) * kChunkRows));
        ready_[c % kSlots].store(c, std::memory_order_release);
    }

    // The helper: claims the next chunk, waits for its slot to be released, fills it.
    void produce() {
        for (;;) {
            const gds_int64 c = next_fill_.fetch_add(1, std::memory_order_relaxed);
            if (c >= n_chunks_) return;
            for (std::uint32_t spins = 0;
                 c - consumed_.load(std::memory_order_acquire) >= kSlots; ++spins) {
                if (stop_.load(std::memory_order_acquire)) return;
                if (spins < (1u << 10)) GDS_SPIN_PAUSE();
                else std::this_thread::yield();
            }
            if (stop_.load(std::memory_order_acquire)) return;
            fill_chunk(c);
        }
    }

    const Problem<T, Rows>& pb_;
    const RowIndex* order_ = nullptr;
    gds_int64 n_ = 0, n_chunks_ = 0;
    std::vector<GatherChunk<T>> slots_;
    std::vector<RowIndex> in_chunk_;
    alignas(64) std::atomic<gds_int64> next_fill_{0};  // next chunk to claim for filling
    alignas(64) std::atomic<gds_int64> ready_[kSlots];  // chunk now in each slot (-1: none)
    alignas(64) std::atomic<gds_int64> consumed_{0};
    alignas(64) std::atomic<bool> stop_{false};
    bool with_helper_;
    std::thread thread_;
};

// Bytes of row data above which a shuffled per-sample epoch gathers its rows on a helper thread
// (smaller data sits in cache, where the copy would only cost).
constexpr double kGatherMinBytes = 8.0 * (1 << 20);

// ---- Batch gradients (mini-batch and full batch), optionally threaded ------------------------

template <class T, class Rows> struct AccumulateTask {
    const Problem<T, Rows>* pb;
    const T* params;
    const RowIndex* rows;
    gds_int64 count;
    double* grad;  // K*d + K, written (zeroed first)
    T* block;      // K*d scratch for dense rows
    T* zbuf;       // kGroupRows*K scratch for dense rows
    const RowIndex* next_rows;  // this member's share of the next batch (prefetched), may be null
    gds_int64 next_count;
    double loss_sum;
    std::atomic<int>* stop;
    InterruptChecker* checker;  // only the calling thread polls Python
    int interrupted;
};

// Dense rows [start, stop) of a batch, in groups of kGroupRows: first every row's outputs (dot
// products only, so many rows' loads are in flight at once: in a shuffled batch the rows come
// from all over memory), then the losses, then the gradient sums from rows now in L1. Returns
// the group's (weighted) loss sum; dloss / dz per output is scratch in z (kGroupRows * K).
constexpr gds_int64 kGroupRows = 16;
constexpr int kRowsAtOnce = 8;  // rows per dot_rows / axpy_rows call (registers: 8 + 2)

// The binary log loss of a group of rows in one vectorized pass (fast_math.h instead of libm):
// z holds the margins p on entry and sw * dloss/dp on return; returns sum sw * log(1 + exp(-y p)).
// |dloss/dp| <= 1 here, so no clamp is needed.
template <class T, class Rows>
inline double log_loss_group(const Problem<T, Rows>& pb, const RowIndex* rows, gds_int64 n,
                             T* z) {
    // whole 32-byte vectors of rows (fast_math.h: a plain loop here would stay scalar)
    typedef LanesOf<T> V;
    constexpr int L = static_cast<int>(sizeof(V) / sizeof(T));
    static_assert(kGroupRows % L == 0, "a group is whole vectors");
    alignas(32) T y[kGroupRows], w[kGroupRows], t[kGroupRows], loss[kGroupRows];
    for (gds_int64 j = 0; j < kGroupRows; ++j) {
        const bool row = j < n;  // past n: padding, weight 0 and a zero step
        y[j] = row ? pb.y[rows[j]] : T(0);
        w[j] = row ? (pb.sw ? pb.sw[rows[j]] : T(1)) : T(0);
        t[j] = row ? y[j] * z[j] : T(0);
    }
    for (gds_int64 j = 0; j < kGroupRows; j += L) {
        const V tv = *reinterpret_cast<const V*>(t + j);
        const V yv = *reinterpret_cast<const V*>(y + j);
        const V wv = *reinterpret_cast<const V*>(w + j);
        const V zero = V{};
        const V e = exp_nonpositive(tv < T(0) ? tv : -tv);  // exp(-|t|)
        const V positive = tv > T(0) ? zero + T(1) : zero;
        const V sig = (positive * e + (T(1) - positive)) / (T(1) + e);  // sigmoid(-t)
        *reinterpret_cast<V*>(loss + j) = (tv > T(0) ? zero : -tv) + log1p_unit(e);
        const V dz = -yv * sig * wv;
        std::memcpy(z + j, &dz, sizeof dz);  // z: no alignment promised
    }
    double sum = 0.0;
    for (gds_int64 j = 0; j < n; ++j) sum += static_cast<double>(w[j]) * static_cast<double>(loss[j]);
    return sum;
}

template <class T, class Rows>
double accumulate_dense_rows(const Problem<T, Rows>& pb, const T* W, const RowIndex* rows,
                             gds_int64 start, gds_int64 stop, gds_int64 prefetch_until,
                             bool scattered, T* z,
                             double* Gb, T* block, const RowIndex* next, gds_int64 next_count) {
    const int K = pb.K;
    const gds_int64 d = pb.d;
    const T* b = W + static_cast<gds_int64>(K) * d;
    double sum = 0.0;
    for (gds_int64 g0 = start; g0 < stop; g0 += kGroupRows) {
        const gds_int64 g1 = std::min(stop, g0 + kGroupRows);
        const gds_int64 ahead_end = std::min(prefetch_until, g1 + kGroupRows);
        for (gds_int64 ii = g1; ii < ahead_end; ++ii) {
            pb.X.prefetch(rows[ii]);
            linalg::prefetch_line(pb.y + rows[ii]);
        }
        if (g1 >= stop) {  // last group: the first rows of this thread's share of the next batch
            for (gds_int64 ii = 0; ii < std::min(next_count, kGroupRows); ++ii) {
                pb.X.prefetch(next[ii]);
                linalg::prefetch_line(pb.y + next[ii]);
            }
        }
        // a short group repeats its first row (outputs unused, steps zero)
        const T* x[kGroupRows];
        for (gds_int64 ii = g0; ii < g0 + kGroupRows; ++ii)
            x[ii - g0] = pb.X.row(rows[ii < g1 ? ii : g0]);
        for (int k = 0; k < K; ++k) {
            if (scattered) {
                for (int h = 0; h < kGroupRows; h += kRowsAtOnce)
                    linalg::dot_rows<kRowsAtOnce>(x + h, W + k * d, d, z + h * K + k, K);
            } else {
                for (gds_int64 ii = g0; ii < g1; ++ii)
                    z[(ii - g0) * K + k] = linalg::dot(x[ii - g0], W + k * d, d);
            }
            for (gds_int64 ii = g0; ii < g1; ++ii) z[(ii - g0) * K + k] += b[k];
        }
        if (K == 1 && pb.loss == static_cast<int>(Loss::LOG)) {
            sum += log_loss_group(pb, rows + g0, g1 - g0, z);
        } else {
            for (gds_int64 ii = g0; ii < g1; ++ii) {
                const gds_int64 i = rows[ii];
                T* zr = z + (ii - g0) * K;
                const T swi = pb.sw ? pb.sw[i] : T(1);
                const T lossv = row_loss_and_grad(pb.loss, pb.loss_param, zr, K, pb.y[i]);
                sum += static_cast<double>(swi) * static_cast<double>(lossv);
                for (int k = 0; k < K; ++k) zr[k] = swi * clamp_dloss(zr[k]);
            }
        }
        for (int k = 0; k < K; ++k) {
            T r[kGroupRows];
            for (gds_int64 ii = g0; ii < g0 + kGroupRows; ++ii) {
                r[ii - g0] = ii < g1 ? z[(ii - g0) * K + k] : T(0);
                Gb[k] += static_cast<double>(r[ii - g0]);
            }
            if (scattered) {
                for (int h = 0; h < kGroupRows; h += kRowsAtOnce)
                    linalg::axpy_rows<kRowsAtOnce>(r + h, x + h, block + k * d, d);
            } else {
                for (gds_int64 ii = g0; ii < g1; ++ii)
                    linalg::axpy(r[ii - g0], x[ii - g0], block + k * d, d);
            }
        }
    }
    return sum;
}

template <class T, class Rows> void accumulate_rows(AccumulateTask<T, Rows>* task) {
    const Problem<T, Rows>& pb = *task->pb;
    const int K = pb.K;
    const gds_int64 d = pb.d, n_w = static_cast<gds_int64>(K) * d;
    const T* W = task->params;
    const T* b = W + n_w;
    double* G = task->grad;
    double* Gb = G + n_w;
    std::fill(G, G + n_w + K, 0.0);
    T z[64];
    std::vector<T> zbig(K > 64 ? K : 0);
    T* zp = K > 64 ? zbig.data() : z;
    double sum = 0.0;
    task->interrupted = 0;
    const RowIndex* rows = task->rows;
    const gds_int64 count = task->count;
    // Consecutive rows (full batch, unshuffled): the hardware prefetcher streams them, and
    // software prefetches would only take fill buffers from it.
    const bool contiguous =
        count > 0 && static_cast<gds_int64>(rows[count - 1]) - rows[0] == count - 1;
    const gds_int64 prefetch_until = contiguous ? 0 : count;
    for (gds_int64 start = 0; start < count; start += kBlockRows) {
        const gds_int64 stop_at = std::min(count, start + kBlockRows);
        if (Rows::kDense) std::fill(task->block, task->block + n_w, T(0));
        if constexpr (Rows::kDense) {
            const bool last = stop_at >= count;
            sum += accumulate_dense_rows(pb, W, rows, start, stop_at, prefetch_until,
                                         !contiguous, task->zbuf,
                                         Gb, task->block, task->next_rows,
                                         last ? task->next_count : 0);
        } else
        for (gds_int64 ii = start; ii < stop_at; ++ii) {
            const gds_int64 i = rows[ii];
            if (ii + 2 * kPrefetchAhead < prefetch_until)
                pb.X.prefetch_index(rows[ii + 2 * kPrefetchAhead]);
            if (ii + kPrefetchAhead < prefetch_until) {
                pb.X.prefetch(rows[ii + kPrefetchAhead]);
                linalg::prefetch_line(pb.y + rows[ii + kPrefetchAhead]);
            }
            for (int k = 0; k < K; ++k) zp[k] = pb.X.dot(i, W + k * d) + b[k];
            const T swi = pb.sw ? pb.sw[i] : T(1);
            const T lossv = row_loss_and_grad(pb.loss, pb.loss_param, zp, K, pb.y[i]);
            sum += static_cast<double>(swi) * static_cast<double>(lossv);
            for (int k = 0; k < K; ++k) {
                const T r = swi * clamp_dloss(zp[k]);
                if (r == T(0)) continue;
                Gb[k] += static_cast<double>(r);
                if (Rows::kDense) {
                    pb.X.axpy(i, r, task->block + k * d);
                } else {
                    double* Gk = G + k * d;
                    const double rd = static_cast<double>(r);
                    pb.X.for_each(i, [&](gds_int64 j, T x) { Gk[j] += rd * static_cast<double>(x); });
                }
            }
        }
        if (Rows::kDense) {
            const T* blk = task->block;
#pragma omp simd
            for (gds_int64 j = 0; j < n_w; ++j) G[j] += static_cast<double>(blk[j]);
        }
        if (task->checker) {
            if (task->checker->should_stop(stop_at - start)) task->stop->store(1);
        }
        if (task->stop->load(std::memory_order_relaxed)) {
            task->interrupted = 1;
            break;
        }
    }
    task->loss_sum = sum;
}

// Non-template, cloned entry for worker threads (a thread body does not inherit the caller's
// AVX2 clone; this one is dispatched on its own).
#define GDS_ACCUMULATE_CLONE(T, ROWS)                                                            \
    GDS_SIMD_CLONES static void accumulate_worker(AccumulateTask<T, ROWS<T>>* t) {             \
        accumulate_rows(t);                                                                      \
    }
GDS_LINEAR_ROW_TYPES(GDS_ACCUMULATE_CLONE)
#undef GDS_ACCUMULATE_CLONE

// Team entry: member m sums its share of the batch (tasks[m]).
template <class T, class Rows> void accumulate_job(void* tasks, int member) {
    accumulate_worker(static_cast<AccumulateTask<T, Rows>*>(tasks) + member);
}

// Scratch for batch gradients: one gradient (double) and dense block per team member.
template <class T> struct BatchScratch {
    std::vector<std::vector<double>> grad;
    std::vector<std::vector<T>> block;
    std::vector<std::vector<T>> z;  // per member: outputs of a group of dense rows
    std::vector<T> g;  // the batch gradient in T, fed to the optimizer
};

// Rows per member below which a batch is not split: a team hand-off costs about a microsecond,
// a row of 100 features about 0.1.
constexpr gds_int64 kMinRowsPerMember = 64;
constexpr gds_int64 kMinWorkPerMember = gds_int64(1) << 12;  // row entries times outputs

// Members worth using for batches of `count` rows of `row_cost` entries and K outputs.
inline int batch_members(int team_size, gds_int64 count, gds_int64 row_cost, int K) {
    gds_int64 m = team_size;
    m = std::min(m, count / kMinRowsPerMember);
    m = std::min(m, count * row_cost * K / kMinWorkPerMember);
    return static_cast<int>(std::max<gds_int64>(1, m));
}

// Sum of the batch's loss and gradient (unnormalised) into scratch.grad[0], the rows split
// between the team's members in fixed shares (bit-reproducible for a given team size). Returns
// false when interrupted. The calling thread advances idle_shuffle if it finishes first.
template <class T, class Rows>
bool batch_gradient(const Problem<T, Rows>& pb, const T* params, const RowIndex* rows,
                    gds_int64 count, gds_int64 next_count, WorkerTeam* team,
                    BatchScratch<T>& scr, double& loss_sum, InterruptChecker& checker,
                    ShuffleAhead<RowIndex>* idle_shuffle = nullptr) {
    const gds_int64 n_w = static_cast<gds_int64>(pb.K) * pb.d;
    const gds_int64 row_cost =
        Rows::kDense ? pb.d : std::max<gds_int64>(1, pb.X.row_nnz(rows[0]));
    const int members =
        team ? batch_members(team->size(), count, row_cost, pb.K) : 1;
    std::atomic<int> stop{0};
    AccumulateTask<T, Rows> tasks[kMaxTeamSize];
    const gds_int64 per = (count + members - 1) / members;
    const gds_int64 next_per = (next_count + members - 1) / members;
    for (int t = 0; t < members; ++t) {
        const gds_int64 a = std::min(count, t * per), e = std::min(count, a + per);
        const gds_int64 na = std::min(next_count, t * next_per),
                        ne = std::min(next_count, na + next_per);
        tasks[t] = AccumulateTask<T, Rows>{&pb, params, rows + a, e - a, scr.grad[t].data(),
                                           scr.block[t].data(), scr.z[t].data(),
                                           rows + count + na, ne - na, 0.0, &stop,
                                           t == 0 ? &checker : nullptr, 0};
    }
    if (members > 1 && members == team->size()) {
        team->run(accumulate_job<T, Rows>, tasks,
                  idle_shuffle ? ShuffleAhead<RowIndex>::idle_slice : nullptr, idle_shuffle);
    } else {
        for (int t = 0; t < members; ++t) accumulate_worker(&tasks[t]);  // not inlined: see there
    }
    double sum = tasks[0].loss_sum;
    bool interrupted = tasks[0].interrupted != 0;
    double* G = scr.grad[0].data();
    for (int t = 1; t < members; ++t) {  // fixed order: bit-reproducible for a team size
        const double* Gt = scr.grad[t].data();
#pragma omp simd
        for (gds_int64 j = 0; j < n_w + pb.K; ++j) G[j] += Gt[j];
        sum += tasks[t].loss_sum;
        interrupted = interrupted || tasks[t].interrupted != 0;
    }
    loss_sum = sum;
    return !interrupted;
}

struct BatchSettings {
    double l1, l2;
    int fit_intercept;
    int clip;
    double clip_limit;
    gds_int64 average_start;
};

// The step a rule takes per unit of a constant gradient once its state has settled (its
// preconditioner at a fixed point). Soft-thresholding with l1 times this step makes the fixed
// points of "update, then prox" exactly the minimisers of loss + l1 ||w||_1; a plain lr * l1
// would, e.g., weaken the l1 penalty by (1 - momentum) under heavy-ball momentum. Lion's sign
// update has no such step: it keeps lr.
template <class T>
inline T l1_prox_step(const OptimizerConfig& c, const OptimizerStep& st, T s0, T s1, T s2) {
    const double lr = st.lr;
    switch (static_cast<Optimizer>(c.code)) {
        case Optimizer::SGD: {
            if (c.momentum == 0.0) return static_cast<T>(lr);
            const double settled = (1.0 - c.dampening) / (1.0 - st.momentum);  // buffer / g
            return static_cast<T>(lr * (c.nesterov ? 1.0 + st.momentum * settled : settled));
        }
        case Optimizer::ADAGRAD:
            return static_cast<T>(st.step_size / (sqrt(static_cast<double>(s0)) + c.eps));
        case Optimizer::RMSPROP: {
            double v = static_cast<double>(s0);
            if (c.centered) v -= static_cast<double>(s1) * static_cast<double>(s1);
            const double avg = sqrt(v > 0.0 ? v : 0.0) + c.eps;
            return static_cast<T>(lr / (avg * (c.momentum > 0.0 ? 1.0 - st.momentum : 1.0)));
        }
        case Optimizer::ADAM:
        case Optimizer::ADAMW: {
            const double v = static_cast<double>(c.amsgrad ? s2 : s1);
            return static_cast<T>(lr / (sqrt(v) * st.inv_sqrt_bc2 + c.eps));
        }
        case Optimizer::NADAM:
            return static_cast<T>(lr / (sqrt(static_cast<double>(s1) / st.bc2) + c.eps));
        case Optimizer::RADAM:
            if (!st.use_rect) return static_cast<T>(lr);
            return static_cast<T>(lr * st.rect /
                                  ((sqrt(static_cast<double>(s1)) + c.eps) * st.inv_sqrt_bc2));
        case Optimizer::LION:
            break;
    }
    return static_cast<T>(lr);
}

// One optimizer step from the accumulated gradient in scr.grad[0] over `count` rows.
template <class T>
void batch_update(const OptimizerConfig& opt, const ScheduleConfig& sched, const BatchSettings& bs,
                  int K, gds_int64 d, Work<T>& w, BatchScratch<T>& scr, gds_int64 count) {
    const gds_int64 n_w = static_cast<gds_int64>(K) * d;
    const gds_int64 n_params = n_w + (bs.fit_intercept ? K : 0);
    const double* G = scr.grad[0].data();
    T* g = scr.g.data();
    T* P = w.p.data();
    const double inv = 1.0 / static_cast<double>(count);
    for (gds_int64 j = 0; j < n_params; ++j) g[j] = static_cast<T>(G[j] * inv);
    if (bs.clip != static_cast<int>(Clip::NONE)) clip_gradient(bs.clip, bs.clip_limit, g, n_params);
    if (bs.l2 > 0.0) {
        const T l2 = static_cast<T>(bs.l2);
#pragma omp simd
        for (gds_int64 j = 0; j < n_w; ++j) g[j] += l2 * P[j];
    }
    const double step = static_cast<double>(w.step);
    const double lr = schedule_lr(sched, step, w.t) * w.lr_factor;
    const OptimizerStep st = optimizer_begin_step(opt, w.opt, lr, schedule_momentum(sched, step));
    optimizer_update_array(opt, st, P, g, w.s0.data(), w.s1.data(), w.s2.data(), n_params);
    if (bs.l1 > 0.0) {  // proximal step: exact zeros, threshold in the rule's own step metric
        const T* s0 = w.s0.data();
        const T* s1 = w.s1.data();
        const T* s2 = w.s2.data();
        const T l1 = static_cast<T>(bs.l1);
        for (gds_int64 j = 0; j < n_w; ++j)
            P[j] = soft_threshold(P[j], l1 * l1_prox_step(opt, st, s0[j], s1[j], s2[j]));
    }
    const double t_last = w.t + static_cast<double>(count) - 1.0;
    if (w.averaging && t_last >= static_cast<double>(bs.average_start)) {
        const gds_int64 m = ++w.avg_count;
        const T mu = static_cast<T>(1.0 / static_cast<double>(m));
        T* A = w.avg.data();
        for (gds_int64 j = 0; j < n_w + K; ++j) A[j] += (P[j] - A[j]) * mu;
    }
    w.t += static_cast<double>(count);
    w.step += 1;
}

// Validation score at the current (materialized) weights: accuracy for LOG / SOFTMAX, R^2
// otherwise; sample-weighted as scikit-learn's score.
template <class T, class Rows>
double validation_score(const Problem<T, Rows>& pb, const T* params, const gds_int64* rows,
                        gds_int64 n) {
    const int K = pb.K;
    const gds_int64 d = pb.d, n_w = static_cast<gds_int64>(K) * d;
    const T* b = params + n_w;
    std::vector<T> z(K);
    const bool classify = pb.loss == static_cast<int>(Loss::LOG) ||
                          pb.loss == static_cast<int>(Loss::SOFTMAX);
    double hit = 0.0, wsum = 0.0, sse = 0.0, wy = 0.0, wyy = 0.0;
    for (gds_int64 ii = 0; ii < n; ++ii) {
        const gds_int64 i = rows[ii];
        const double swi = pb.sw ? static_cast<double>(pb.sw[i]) : 1.0;
        for (int k = 0; k < K; ++k) z[k] = pb.X.dot(i, params + k * d) + b[k];
        const double yi = static_cast<double>(pb.y[i]);
        wsum += swi;
        if (classify) {
            bool ok;
            if (K == 1) {
                ok = (z[0] > T(0)) == (yi > 0.0);
            } else {
                int best = 0;
                for (int k = 1; k < K; ++k)
                    if (z[k] > z[best]) best = k;
                ok = best == static_cast<int>(yi);
            }
            if (ok) hit += swi;
        } else {
            const double r = yi - static_cast<double>(z[0]);
            sse += swi * r * r;
            wy += swi * yi;
            wyy += swi * yi * yi;
        }
    }
    if (wsum <= 0.0) return 0.0;
    if (classify) return hit / wsum;
    const double sst = wyy - wy * wy / wsum;
    if (sst <= 0.0) return sse == 0.0 ? 1.0 : 0.0;  // scikit-learn's r2_score convention
    return 1.0 - sse / sst;
}

}  // namespace linear_detail

// ---- The fit ----------------------------------------------------------------------------------

// Trains from `state` for up to cfg.max_iter epochs and writes the result back into `state`
// (unless the fit diverged: then `state` is left as it came in). Returns the FitStatus.
template <class T, class Rows>
int fit_linear(const LinearConfig& cfg, const Rows& rows_view, const LinearData<T>& data,
               LinearState<T>& state, LinearReport& report, const LinearCallbacks& cb) {
    using namespace linear_detail;
    const auto t_begin = std::chrono::steady_clock::now();
    const int K = cfg.n_outputs;
    const gds_int64 d = data.n_cols, n_w = static_cast<gds_int64>(K) * d;
    const gds_int64 n_all = n_w + K;
    Problem<T, Rows> pb{rows_view, data.y, data.sample_weight, K, d, cfg.loss,
                        static_cast<T>(cfg.loss_param)};
    const PenaltySplit pen = penalty_split(cfg.penalty, cfg.alpha, cfg.l1_ratio);

    Work<T> w;
    w.p.assign(state.params, state.params + n_all);
    w.averaging = state.avg_params != nullptr && cfg.average_start > 0;
    if (w.averaging) w.avg.assign(state.avg_params, state.avg_params + n_all);
    w.avg_count = state.avg_count;
    w.s0.assign(state.slot0, state.slot0 + n_all);
    w.s1.assign(state.slot1, state.slot1 + n_all);
    w.s2.assign(state.slot2, state.slot2 + n_all);
    w.opt.step = state.opt_step;
    w.opt.mu_product = state.opt_mu_product;
    if (pen.l1 > 0.0) w.q.assign(state.l1_q, state.l1_q + n_w);
    w.u = state.l1_u;
    w.t = state.t;
    w.step = state.step;

    const gds_int64 n_train = data.n_train;
    std::vector<RowIndex> order(data.train_rows, data.train_rows + n_train);
    ShuffleAhead<RowIndex> shuffle_ahead;
    Rng rng(cfg.seed);
    const bool full = cfg.batch_size <= 0 || cfg.batch_size >= n_train;
    const bool per_sample =
        cfg.batch_size == 1 && cfg.optimizer.code == static_cast<int>(Optimizer::SGD) &&
        cfg.optimizer.momentum == 0.0 && cfg.optimizer.weight_decay == 0.0 &&
        cfg.clip != static_cast<int>(Clip::VALUE);
    const gds_int64 batch = full ? std::max<gds_int64>(n_train, 1) : cfg.batch_size;
    const int n_threads = std::min(kMaxTeamSize, std::max(1, cfg.n_threads));

    // Batches big enough to split get a team of threads for the whole fit (per-sample SGD is
    // sequential: no team).
    BatchScratch<T> scr;
    std::unique_ptr<WorkerTeam> team;
    if (!per_sample) {
        const gds_int64 mean_row_cost =
            Rows::kDense ? d
                         : std::max<gds_int64>(1, (data.indptr[data.n_rows] - data.indptr[0]) /
                                                      std::max<gds_int64>(1, data.n_rows));
        const int members = batch_members(n_threads, batch, mean_row_cost, K);
        if (members > 1) team.reset(new WorkerTeam(members));
        scr.grad.assign(members, std::vector<double>(n_all));
        scr.block.assign(members, std::vector<T>(Rows::kDense ? n_w : 0));
        scr.z.assign(members, std::vector<T>(Rows::kDense ? kGroupRows * K : 0));
        scr.g.assign(n_all, T(0));
    }
    // Shuffled per-sample epochs on data larger than the caches: rows gathered by a helper thread.
    const double row_bytes =
        Rows::kDense ? static_cast<double>(data.n_rows) * static_cast<double>(d) * sizeof(T)
                     : static_cast<double>(data.indptr[data.n_rows] - data.indptr[0]) *
                           (sizeof(T) + sizeof(std::int32_t));
    const bool gather = per_sample && cfg.shuffle &&
                        (cfg.gather_rows > 0 ||
                         (cfg.gather_rows < 0 && n_threads > 1 && row_bytes >= kGatherMinBytes));
    std::unique_ptr<RowGatherer<T, Rows>> gatherer;
    if (gather) gatherer.reset(new RowGatherer<T, Rows>(pb, cfg.gather_rows != 2));
    report.used_gather = gather ? 1 : 0;
    const PerSampleSettings ps{pen.l1, pen.l2, cfg.fit_intercept,
                               cfg.clip == static_cast<int>(Clip::NORM), cfg.clip_limit,
                               cfg.average_start};
    const BatchSettings bs{pen.l1, pen.l2, cfg.fit_intercept, cfg.clip, cfg.clip_limit,
                           cfg.average_start};

    InterruptChecker checker;
    checker.callback = cb.interrupt;
    checker.context = cb.interrupt_context;
    checker.interval_s = cb.interrupt_interval > 0.0 ? cb.interrupt_interval : 0.1;

    PlateauStop stopper{std::numeric_limits<double>::infinity(), 0};
    ReduceOnPlateauState plateau{std::numeric_limits<double>::infinity(), 0, 0,
                                 cfg.schedule.base_lr};
    const bool early = data.val_rows != nullptr && data.n_val > 0;

    report.status = static_cast<int>(FitStatus::MAX_ITER);
    report.n_epochs = 0;
    report.stop_epoch = 0;
    report.used_per_sample = per_sample ? 1 : 0;
    Work<T> snapshot;
    const bool keep_snapshot = cb.interrupt != nullptr;

    for (int epoch = 0; epoch < cfg.max_iter; ++epoch) {
        if (keep_snapshot) snapshot = w;
        if (cfg.shuffle && !full) {
            if (shuffle_ahead.active()) {
                shuffle_ahead.finish_into(order);
            } else {
                shuffle_in_place(order, rng);
            }
            // a team's batches leave the training thread idle moments for the next shuffle
            if (team && epoch + 1 < cfg.max_iter) shuffle_ahead.begin(order, rng);
        }
        double loss_sum = 0.0, penalty_before = 0.0;
        bool completed = true;
        const bool simple = K == 1 && !w.averaging && pen.l1 == 0.0;
        if (gatherer) {
            gatherer->start(order.data(), n_train);
            const RowIndex* in_chunk = gatherer->in_chunk_order();
            for (gds_int64 c = 0; c < gatherer->n_chunks() && completed; ++c) {
                const Problem<T, Rows> part = gatherer->acquire(c);
                const gds_int64 m = gatherer->count(c);
                completed = simple ? per_sample_simple_cloned(part, ps, cfg.schedule, w, in_chunk,
                                                             m, loss_sum, checker)
                                   : per_sample_cloned(part, ps, cfg.schedule, w, in_chunk, m,
                                                      loss_sum, checker);
                gatherer->release(c);
            }
            gatherer->finish();
        } else if (per_sample && simple) {
            completed = per_sample_simple_cloned(pb, ps, cfg.schedule, w, order.data(), n_train,
                                                loss_sum, checker);
        } else if (per_sample) {
            completed = per_sample_cloned(pb, ps, cfg.schedule, w, order.data(), n_train, loss_sum,
                                         checker);
        } else {
            for (gds_int64 start = 0; start < n_train && completed; start += batch) {
                const gds_int64 count = std::min(batch, n_train - start);
                double batch_loss = 0.0;
                // rows of the next batch follow in `order` (prefetched at the end of this one)
                const gds_int64 next_count =
                    cfg.shuffle ? std::min(batch, n_train - start - count) : 0;
                completed = batch_gradient(pb, w.p.data(), order.data() + start, count,
                                           next_count, team.get(), scr, batch_loss, checker,
                                           shuffle_ahead.active() ? &shuffle_ahead : nullptr);
                loss_sum += batch_loss;
                if (!completed) break;
                if (full) penalty_before = penalty_value(pen, w.p.data(), n_w);
                batch_update(cfg.optimizer, cfg.schedule, bs, K, d, w, scr, count);
            }
        }
        if (!completed) {
            if (keep_snapshot) w = snapshot;
            report.status = static_cast<int>(FitStatus::INTERRUPTED);
            report.stop_epoch = epoch + 1;
            break;
        }
        materialize(w, n_w);
        const double pen_now = full ? penalty_before : penalty_value(pen, w.p.data(), n_w);
        const double objective = loss_sum / static_cast<double>(std::max<gds_int64>(n_train, 1)) +
                                 pen_now;
        if (!isfinite(objective) || !all_finite(w.p.data(), n_all)) {
            report.status = static_cast<int>(FitStatus::DIVERGED);
            report.stop_epoch = epoch + 1;
            break;
        }
        report.loss_curve[epoch] = objective;
        double score = std::numeric_limits<double>::quiet_NaN();
        if (early) {
            const T* model = w.averaging && w.avg_count > 0 ? w.avg.data() : w.p.data();
            score = validation_score(pb, model, data.val_rows, data.n_val);
            report.val_scores[epoch] = score;
        }
        report.n_epochs = epoch + 1;
        const double lr_now =
            schedule_lr(cfg.schedule, static_cast<double>(w.step), w.t) * w.lr_factor;
        if (cb.epoch) {
            const double secs =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t_begin).count();
            cb.epoch(cb.epoch_context, epoch + 1, objective, score, lr_now, secs);
        }
        if (cfg.plateau_mode == static_cast<int>(PlateauMode::REDUCE_ON_PLATEAU)) {
            reduce_on_plateau_step(cfg.plateau, plateau, early ? -score : objective);
            w.lr_factor = cfg.schedule.base_lr > 0.0 ? plateau.lr / cfg.schedule.base_lr : 1.0;
        }
        if (cfg.use_tol) {
            const int keep_going = plateau_stop_update(
                stopper, early ? score : objective, cfg.tol, cfg.n_iter_no_change, early ? 1 : 0,
                cfg.plateau_mode == static_cast<int>(PlateauMode::ADAPTIVE), lr_now, w.lr_factor);
            if (!keep_going) {
                report.status = static_cast<int>(FitStatus::CONVERGED);
                break;
            }
        }
    }
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_begin).count();
    if (report.status == static_cast<int>(FitStatus::DIVERGED)) return report.status;

    materialize(w, n_w);
    std::copy(w.p.begin(), w.p.end(), state.params);
    if (w.averaging) std::copy(w.avg.begin(), w.avg.end(), state.avg_params);
    state.avg_count = w.avg_count;
    std::copy(w.s0.begin(), w.s0.end(), state.slot0);
    std::copy(w.s1.begin(), w.s1.end(), state.slot1);
    std::copy(w.s2.begin(), w.s2.end(), state.slot2);
    state.opt_step = w.opt.step;
    state.opt_mu_product = w.opt.mu_product;
    if (pen.l1 > 0.0) std::copy(w.q.begin(), w.q.end(), state.l1_q);
    state.l1_u = w.u;
    state.t = w.t;
    state.step = w.step;
    return report.status;
}

// ---- Entry points (non-template: each compiled for AVX2+FMA and baseline) ---------------------

template <class T>
inline int fit_linear_any(const LinearConfig& cfg, const LinearData<T>& data, LinearState<T>& st,
                          LinearReport& rep, const LinearCallbacks& cb) {
    if (data.sparse) {
        CsrRows<T> rows{data.data, data.indices, data.indptr, data.n_rows, data.n_cols};
        rows.set_prefetch_lines();
        return fit_linear<T, CsrRows<T>>(cfg, rows, data, st, rep, cb);
    }
    const DenseRows<T> rows{data.X, data.n_rows, data.n_cols, data.ld};
    return fit_linear<T, DenseRows<T>>(cfg, rows, data, st, rep, cb);
}

GDS_SIMD_CLONES static int fit_linear_f64(const LinearConfig& cfg, const LinearData<double>& data,
                                          LinearState<double>& st, LinearReport& rep,
                                          const LinearCallbacks& cb) {
    return fit_linear_any<double>(cfg, data, st, rep, cb);
}

GDS_SIMD_CLONES static int fit_linear_f32(const LinearConfig& cfg, const LinearData<float>& data,
                                          LinearState<float>& st, LinearReport& rep,
                                          const LinearCallbacks& cb) {
    return fit_linear_any<float>(cfg, data, st, rep, cb);
}

}  // namespace gds
