// gdsolve/cpu/row_pass.h - the memory floor of an epoch, for benchmarks: one pass over a dense
// matrix's rows in a given order, a dot product per row against fixed weights, the rows shared by
// a team of threads. No row waits on another's update, so no epoch that visits every row in that
// order can take less. Host only; called by gdsolve/_cpu_linear.pyx (row_pass_seconds) for
// benchmarks/bench_linear.py.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>

#include "gdsolve/cpu/rows.h"
#include "gdsolve/cpu/worker_team.h"

namespace gds {

template <class T> struct RowPassJob {
    DenseRows<T> rows;
    const std::uint32_t* order;
    gds_int64 n;
    const T* w;
    int members;
    double sums[kMaxTeamSize];
};

// Member m reads its contiguous share of `order`, prefetching ahead as the training loops do.
template <class T> inline void row_pass_member(RowPassJob<T>& job, int m) {
    const gds_int64 per = (job.n + job.members - 1) / job.members;
    const gds_int64 a = std::min(job.n, m * per), e = std::min(job.n, a + per);
    constexpr int ahead = linalg::kPrefetchAhead;
    double s = 0.0;
    for (gds_int64 ii = a; ii < e; ++ii) {
        if (ii + ahead < e) job.rows.prefetch(job.order[ii + ahead]);
        s += static_cast<double>(job.rows.dot(job.order[ii], job.w));
    }
    job.sums[m] = s;
}

GDS_CLONED_TEAM_JOB(row_pass_job, row_pass_member, RowPassJob<double>)
GDS_CLONED_TEAM_JOB(row_pass_job, row_pass_member, RowPassJob<float>)

// Seconds one pass takes (the team is started before the clock); `checksum` receives the sum of
// the dot products, so the work cannot be optimised away.
template <class T>
inline double row_pass_seconds(const T* X, gds_int64 n_rows, gds_int64 n_cols, gds_int64 ld,
                               const std::uint32_t* order, gds_int64 n, const T* w, int n_threads,
                               double& checksum) {
    WorkerTeam team(std::max(1, std::min(n_threads, kMaxTeamSize)));
    const int members = team.size();
    RowPassJob<T> job{DenseRows<T>{X, n_rows, n_cols, ld}, order, n, w, members, {}};
    const auto start = std::chrono::steady_clock::now();
    team.run(team_job<RowPassJob<T>, row_pass_job>, &job);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    checksum = 0.0;
    for (int m = 0; m < members; ++m) checksum += job.sums[m];
    return seconds;
}

}  // namespace gds
