// gdsolve/cpu/linear_batch.h - the gradient of a block of rows on the CPU (mini-batch and full
// batch): outputs, the row rule of model/linear.h (the log loss through its vector fast path),
// and the weighted gradient sums, the rows shared by a team of threads in fixed shares (a given
// thread count is bit-reproducible). Host only. Callers: cpu/linear_executor.h (every batch
// step) and _cpu_linear.pyx (block_gradient: the gradient Dask's sync_gradient sums).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "gdsolve/config.h"
#include "gdsolve/cpu/fast_losses.h"
#include "gdsolve/cpu/interrupt.h"
#include "gdsolve/cpu/linalg.h"
#include "gdsolve/cpu/linear_per_sample.h"
#include "gdsolve/cpu/rows.h"
#include "gdsolve/cpu/worker_team.h"
#include "gdsolve/driver/shuffle.h"
#include "gdsolve/math/fast_math.h"
#include "gdsolve/math/losses.h"
#include "gdsolve/model/linear.h"

namespace gds {
namespace linear_detail {

constexpr gds_int64 kBlockRows = 256;

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

// The binary log loss of a group of rows in one vectorized pass: log_loss_margin on whole vectors
// with fast_math.h's exp and log1p (cpu/fast_losses.h; a plain loop over the scalar definition
// would stay scalar). z holds the margins p on entry and sw * dloss/dp on return; returns
// sum sw * log(1 + exp(-y p)). |dloss/dp| <= 1 here, so no clamp is needed.
template <class T, class Rows>
inline double log_loss_group(const Problem<T, Rows>& pb, const RowIndex* rows, gds_int64 n,
                             T* z) {
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
        const V yv = *reinterpret_cast<const V*>(y + j);
        const V wv = *reinterpret_cast<const V*>(w + j);
        V sig;
        *reinterpret_cast<V*>(loss + j) =
            log_loss_margin<LaneLossMath<V>>(*reinterpret_cast<const V*>(t + j), sig);
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
                const T lossv = linear_row_loss(pb.loss, pb.loss_param, zr, K, pb.y[i]);
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
            const T lossv = linear_row_loss(pb.loss, pb.loss_param, zp, K, pb.y[i]);
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

// Member m sums its share of the batch (tasks[m]); cloned per (T, Rows), since a worker thread
// does not inherit the caller's AVX2 clone.
template <class Task> inline void accumulate_share(Task& tasks, int member) {
    accumulate_rows(&tasks + member);
}
#define GDS_ACCUMULATE_JOB(T, ROWS) \
    GDS_CLONED_TEAM_JOB(accumulate_member, accumulate_share, AccumulateTask<T, ROWS<T>>)
GDS_LINEAR_ROW_TYPES(GDS_ACCUMULATE_JOB)
#undef GDS_ACCUMULATE_JOB

// Scratch for batch gradients: one gradient (double) and dense block per team member.
template <class T> struct BatchScratch {
    std::vector<std::vector<double>> grad;
    std::vector<std::vector<T>> block;
    std::vector<std::vector<T>> z;  // per member: outputs of a group of dense rows
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
        team->run(team_job<AccumulateTask<T, Rows>, accumulate_member>, tasks,
                  idle_shuffle ? ShuffleAhead<RowIndex>::idle_slice : nullptr, idle_shuffle);
    } else {
        for (int t = 0; t < members; ++t) accumulate_member(tasks, t);  // cloned: see there
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

}  // namespace linear_detail
}  // namespace gds
