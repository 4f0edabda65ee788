// gdsolve/cpu/linalg.h - the CPU executor's small vector kernels: dot products with register
// accumulators, axpy, the same over 8 rows at once (one load of w serves all 8), and software
// prefetch of upcoming rows. Host only (GCC vector extensions, inline asm). Callers: cpu/rows.h
// and the CPU loops (cpu/linear_*.h, cpu/row_pass.h).
#pragma once
#include <cstdint>

#include "gdsolve/config.h"

// Software prefetch of upcoming (shuffled) rows: distance in rows and locality hint (1 =
// prefetcht2; distances 2-8 and hints 1 and 3 measured within noise of each other).
#ifndef GDS_LINEAR_PREFETCH_AHEAD
#define GDS_LINEAR_PREFETCH_AHEAD 4
#endif
#ifndef GDS_LINEAR_PREFETCH_HINT
#define GDS_LINEAR_PREFETCH_HINT 1
#endif

namespace gds {

namespace linalg {

constexpr int kPrefetchAhead = GDS_LINEAR_PREFETCH_AHEAD;  // rows

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

}  // namespace gds
