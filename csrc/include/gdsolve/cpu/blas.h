// gdsolve/cpu/blas.h - the BLAS matrix product as the CPU executors call it: Fortran ?gemm as
// scipy.linalg.cython_blas exports it (a function pointer the bindings pass in), on row-major
// matrices. Host only. Callers: cpu/mlp_executor.h (every layer's products), math/muon.h's
// Newton-Schulz iteration through RowMajorGemm (the MLP executor, _core.pyx).
#pragma once
#include "gdsolve/config.h"

namespace gds {

// Fortran BLAS ?gemm as scipy.linalg.cython_blas exports it (column-major, arguments by pointer).
template <class T>
using GemmFn = void (*)(char*, char*, int*, int*, int*, T*, T*, int*, T*, int*, T*, T*, int*);

// Row-major C (m x n) = alpha op(A) op(B) + beta C. Column-major BLAS sees each row-major matrix
// transposed, so it computes C^T = op(B)^T op(A)^T: swap the operands, keep the flags.
template <class T>
inline void gemm_row_major(GemmFn<T> gemm, bool trans_a, bool trans_b, gds_int64 m, gds_int64 n,
                           gds_int64 k, T alpha, const T* a, gds_int64 lda, const T* b,
                           gds_int64 ldb, T beta, T* c, gds_int64 ldc) {
    char ta = trans_a ? 'T' : 'N';
    char tb = trans_b ? 'T' : 'N';
    int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
    int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
    gemm(&tb, &ta, &ni, &mi, &ki, &alpha, const_cast<T*>(b), &lb, const_cast<T*>(a), &la, &beta, c,
         &lc);
}

// The row-major product as a callable (the form math/muon.h's Newton-Schulz iteration takes).
template <class T> struct RowMajorGemm {
    GemmFn<T> gemm;
    void operator()(bool trans_a, bool trans_b, gds_int64 m, gds_int64 n, gds_int64 k, T alpha,
                    const T* a, gds_int64 lda, const T* b, gds_int64 ldb, T beta, T* c,
                    gds_int64 ldc) const {
        gemm_row_major<T>(gemm, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
};

template <class T> inline RowMajorGemm<T> row_major_gemm(GemmFn<T> gemm) {
    return RowMajorGemm<T>{gemm};
}

}  // namespace gds
