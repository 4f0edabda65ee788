// gdsolve/cpu/rows.h - the CPU executor's views of a data set's rows: dense row-major and CSR,
// each with dot / axpy / squared norm against weight vectors, the entries of a row, and
// prefetching. Host only. Callers: the CPU linear loops (cpu/linear_*.h, cpu/row_gatherer.h)
// and cpu/row_pass.h.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "gdsolve/config.h"
#include "gdsolve/cpu/linalg.h"

namespace gds {

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

}  // namespace gds
