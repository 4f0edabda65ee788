// gdsolve/math/muon.h - Muon (torch.optim.Muon, PyTorch 2.13) on one weight matrix: the momentum
// in its (Nesterov) form, the learning-rate adjustment for the matrix's shape, the Newton-Schulz
// orthogonalisation, and the decoupled decay with the update. The elementwise parts are
// device-portable (GDS_HD); the Newton-Schulz iteration is a host template over a row-major GEMM
// callable (the CPU passes BLAS ?gemm, cpu/blas.h: RowMajorGemm), and a GPU executor runs the
// same three products per iteration through cuBLAS around newton_schulz_norm and
// newton_schulz_combine. Callers: cpu/mlp_executor.h, _core.pyx (gdsolve.optim.Muon.step),
// gdsolve/gpu/kernels/mlp.cu. Formulas: docs/optimizers.md.
//
// One step of an R x C matrix W (row-major), gradient G, momentum buffer M (state slot 0), with
// st = optimizer_begin_step(config, ...) (its lr, momentum and decoupled decay):
//   for each i: muon_momentum(st.momentum, config.nesterov, G[i], M[i], U[i]);   // elementwise
//   const T* O = newton_schulz(gemm, config, U, R, C, scratch);                  // host, GEMMs
//   const MuonMatrixStep ms = muon_matrix_step(config, st, A, B);
//   for each i: muon_apply(ms, W[i], O[i]);                                      // elementwise
// A and B are the matrix's output and input sizes (torch.nn.Linear's weight is A x B).
#pragma once
#include "gdsolve/codes.h"
#include "gdsolve/config.h"
#include "gdsolve/structs.h"

#ifndef GDS_DEVICE_COMPILE
#include <cstring>
#endif

namespace gds {

// Momentum in torch's lerp form, c = 1 - mu: M <- M + c (G - M); the update U is M, or with
// Nesterov M + c (G - M) (= (1 - mu) G + mu M).
template <class T>
GDS_HD inline void muon_momentum(double mu, int nesterov, T g, T& buf, T& u) {
    const T c = static_cast<T>(1.0 - mu);
    buf = buf + c * (g - buf);
    u = nesterov ? buf + c * (g - buf) : buf;
}

// The factor on lr for a matrix of A outputs and B inputs: "original" sqrt(max(1, A / B)),
// "match_rms_adamw" 0.2 sqrt(max(A, B)).
GDS_HD inline double muon_lr_scale(int adjust_lr_fn, double A, double B) {
    if (adjust_lr_fn == static_cast<int>(MuonAdjustLr::MATCH_RMS_ADAMW))
        return 0.2 * sqrt(A > B ? A : B);
    const double r = A / B;
    return sqrt(r > 1.0 ? r : 1.0);
}

// What every element of one matrix's step shares.
struct MuonMatrixStep {
    double decay;  // 1 - lr * weight_decay (decoupled, with the unadjusted lr)
    double lr;     // lr times muon_lr_scale
};

GDS_HD inline MuonMatrixStep muon_matrix_step(const OptimizerConfig& c, const OptimizerStep& st,
                                              double A, double B) {
    MuonMatrixStep m;
    m.decay = st.decay_factor;
    m.lr = st.lr * muon_lr_scale(c.adjust_lr_fn, A, B);
    return m;
}

// W <- W (1 - lr wd), then W <- W - lr_adjusted O (O: the orthogonalised update).
template <class T> GDS_HD inline void muon_apply(const MuonMatrixStep& m, T& w, T o) {
    w = w * static_cast<T>(m.decay);
    GDS_ROUNDED(w);  // two roundings, as torch's mul_ then add_
    w = w - static_cast<T>(m.lr) * o;
}

// One Newton-Schulz combination, beta * x + alpha * p: B = b A + c (A A) and X = a X + B X of the
// iteration below, for an executor whose matrix product has no accumulate form.
template <class T> GDS_HD inline T newton_schulz_combine(T beta, T x, T alpha, T p) {
    return beta * x + alpha * p;
}

// The divisor of Newton-Schulz's first iterate, max(||U||_F, eps) in T, from ||U||_F^2 summed in
// double (by the CPU's loop below, or a device reduction).
template <class T> GDS_HD inline T newton_schulz_norm(double sqnorm, double eps) {
    T norm = static_cast<T>(sqrt(sqnorm));
    if (norm < static_cast<T>(eps)) norm = static_cast<T>(eps);
    return norm;
}

// Scratch of the iteration for an R x C matrix, in elements: the Gram matrix and its polynomial
// (m x m each, m = min(R, C)) and the next iterate (R x C).
GDS_HD inline gds_int64 newton_schulz_scratch(gds_int64 R, gds_int64 C) {
    const gds_int64 m = R < C ? R : C;
    return 2 * m * m + R * C;
}

#ifndef GDS_DEVICE_COMPILE
// The orthogonalisation of U (R x C, row-major, overwritten): X = U / max(||U||_F, eps), then
// ns_steps times  A = X X^T;  B = b A + c A A;  X = a X + B X  on the wide orientation of U (torch
// transposes a tall matrix, R > C, first; here the products take the transposes instead, X^T
// being U: A = U^T U and U <- a U + U B^T). `gemm(trans_a, trans_b, m, n, k, alpha, A, lda, B,
// ldb, beta, C, ldc)` computes the row-major C = alpha op(A) op(B) + beta C. `scratch` holds
// newton_schulz_scratch(R, C) elements; returns where the result is (U or inside scratch).
template <class T, class Gemm>
inline T* newton_schulz(const Gemm& gemm, const OptimizerConfig& c, T* U, gds_int64 R,
                        gds_int64 C, T* scratch) {
    const bool tall = R > C;
    const gds_int64 m = tall ? C : R;
    T* gram = scratch;
    T* poly = scratch + m * m;
    T* next = scratch + 2 * m * m;
    const gds_int64 n = R * C;
    double sq = 0.0;
    for (gds_int64 i = 0; i < n; ++i) sq += static_cast<double>(U[i]) * static_cast<double>(U[i]);
    const T norm = newton_schulz_norm<T>(sq, c.eps);
    for (gds_int64 i = 0; i < n; ++i) U[i] = U[i] / norm;
    const T a = static_cast<T>(c.ns_a), b = static_cast<T>(c.ns_b), cc = static_cast<T>(c.ns_c);
    T* X = U;
    for (int it = 0; it < c.ns_steps; ++it) {
        if (tall)
            gemm(true, false, C, C, R, T(1), X, C, X, C, T(0), gram, C);
        else
            gemm(false, true, R, R, C, T(1), X, C, X, C, T(0), gram, R);
        std::memcpy(poly, gram, sizeof(T) * static_cast<std::size_t>(m * m));
        gemm(false, false, m, m, m, cc, gram, m, gram, m, b, poly, m);
        std::memcpy(next, X, sizeof(T) * static_cast<std::size_t>(n));
        if (tall)
            gemm(false, true, R, C, C, T(1), X, C, poly, C, a, next, C);
        else
            gemm(false, false, R, C, R, T(1), poly, R, X, C, a, next, C);
        T* done = X;  // the previous iterate's buffer takes the next one
        X = next;
        next = done;
    }
    return X;
}

// The whole step of one matrix (the protocol above): W, G, the buffer M are R x C row-major;
// A, B the matrix's output and input sizes; u holds R * C and scratch newton_schulz_scratch(R, C)
// elements.
template <class T, class Gemm>
inline void muon_matrix_update(const Gemm& gemm, const OptimizerConfig& c, const OptimizerStep& st,
                               T* w, const T* g, T* buf, gds_int64 R, gds_int64 C, double A,
                               double B, T* u, T* scratch) {
    const gds_int64 n = R * C;
    for (gds_int64 i = 0; i < n; ++i) muon_momentum<T>(st.momentum, c.nesterov, g[i], buf[i], u[i]);
    const T* O = newton_schulz<T>(gemm, c, u, R, C, scratch);
    const MuonMatrixStep ms = muon_matrix_step(c, st, A, B);
    for (gds_int64 i = 0; i < n; ++i) muon_apply<T>(ms, w[i], O[i]);
}
#endif

}  // namespace gds
