// gdsolve/cpu/fast_losses.h - the CPU's vectorised fast paths of the loss definitions in
// math/losses.h: the log loss instantiated on whole 32-byte vectors with fast_math.h's exp and
// log1p (a libm call keeps a loop scalar), and the softmax cross-entropy of a batch arranged as
// flat passes so its exponentials vectorize. tests/test_core_math.py checks them against the
// scalar definitions. Host only. Callers: cpu/linear_batch.h, cpu/mlp_executor.h.
#pragma once
#include "gdsolve/config.h"
#include "gdsolve/math/fast_math.h"
#include "gdsolve/math/losses.h"

namespace gds {

// LossMath's arithmetic on the lanes of a vector V of T (F64x4 / F32x8): fast_math.h's exp and
// log1p, selects as lane-wise blends.
template <class V> struct LaneLossMath {
    static V zero() { return V{}; }
    static V one() { return V{} + 1; }
    static V exp_nonpositive(V x) { return gds::exp_nonpositive(x); }
    static V log1p_unit(V x) { return gds::log1p_unit(x); }
    template <class Mask> static V select(Mask c, V a, V b) { return c ? a : b; }
};

// The fast path over an array of margins t[0..n): loss[i] = log(1 + exp(-t_i)) and sig[i] =
// sigmoid(-t_i), whole vectors at a time (the tail padded to one), for tests/test_core_math.py.
template <class T> inline void log_loss_lanes(const T* t, T* loss, T* sig, gds_int64 n) {
    typedef LanesOf<T> V;
    constexpr gds_int64 L = static_cast<gds_int64>(sizeof(V) / sizeof(T));
    for (gds_int64 i = 0; i < n; i += L) {
        const gds_int64 m = n - i < L ? n - i : L;
        alignas(32) T in[L] = {}, lv[L], sv[L];
        for (gds_int64 j = 0; j < m; ++j) in[j] = t[i + j];
        V s;
        *reinterpret_cast<V*>(lv) = log_loss_margin<LaneLossMath<V>>(*reinterpret_cast<V*>(in), s);
        *reinterpret_cast<V*>(sv) = s;
        for (gds_int64 j = 0; j < m; ++j) {
            loss[i + j] = lv[j];
            sig[i + j] = sv[j];
        }
    }
}

// Softmax cross-entropy of a whole batch of logits z (nb x k) against `labels`: returns the summed
// loss and leaves scale * (softmax(z) - onehot) in z: softmax_cross_entropy (math/losses.h) row
// by row, with the shift by the row maximum written out and fast_math.h's exp, arranged as flat
// passes so that the exponentials vectorize (equal to the definition within a few ulp).
template <class T>
inline double softmax_cross_entropy_batch(T* z, gds_int64 nb, gds_int64 k, const int* labels,
                                          T scale, T* shifted_label) {
    for (gds_int64 b = 0; b < nb; ++b) {
        T* zb = z + b * k;
        T zmax = zb[0];
        for (gds_int64 j = 1; j < k; ++j) zmax = zb[j] > zmax ? zb[j] : zmax;
        for (gds_int64 j = 0; j < k; ++j) zb[j] -= zmax;
        shifted_label[b] = zb[labels[b]];
    }
    const gds_int64 n = nb * k;
    exp_nonpositive_inplace(z, n);
    double total = 0.0;
    for (gds_int64 b = 0; b < nb; ++b) {
        T* zb = z + b * k;
        T sum = T(0);
        for (gds_int64 j = 0; j < k; ++j) sum += zb[j];
        // loss = log-sum-exp(z) - z_label = log(sum) - (z_label - zmax)
        total += static_cast<double>(log(sum) - shifted_label[b]);
        const T f = scale / sum;
        for (gds_int64 j = 0; j < k; ++j) zb[j] *= f;
        zb[labels[b]] -= scale;
    }
    return total;
}

}  // namespace gds
