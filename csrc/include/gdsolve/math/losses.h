// gdsolve/math/losses.h - the per-sample losses of a prediction, each defined once together with
// its derivative (scikit-learn's SGD conventions, binary labels -1/+1), the softmax
// cross-entropy, and the clamp on d loss / d p. Callers: model/linear.h and model/mlp.h (and so
// every executor: the CPU loops, the GPU kernels, Dask workers), cpu/fast_losses.h (the vector
// fast paths), _core.pyx (tests).
// Design: the binary log loss is one template over the arithmetic it runs on (LossMath: exp on
// non-positive numbers, log1p on [0, 1], a select) and over a scalar or a vector of lanes, so
// the CPU's vectorised batch loss is an instantiation of this definition, not a second copy.
#pragma once
#include "gdsolve/codes.h"
#include "gdsolve/config.h"

namespace gds {

constexpr double kMaxDloss = 1e12;  // as scikit-learn: keeps one wild sample from making inf

// d loss / d p clamped to [-1e12, 1e12] before it scales an update (every executor applies it).
template <class T> GDS_HD inline T clamp_dloss(T g) {
    const T m = static_cast<T>(kMaxDloss);
    return g > m ? m : (g < -m ? -m : g);
}

// log1p for the log loss. glibc's log1pf costs about twice logf; Goldberg's identity
// log1p(x) = log(u) x / (u - 1), u = 1 + x, keeps log1p's accuracy with the faster logf.
GDS_HD inline double log1p_via_log(double x) { return log1p(x); }
GDS_HD inline float log1p_via_log(float x) {
    const float u = 1.0f + x;
    return u == 1.0f ? x : log(u) * x / (u - 1.0f);
}

// The arithmetic of the scalar definitions: libm (CUDA's functions under NVRTC).
template <class T> struct LossMath {
    GDS_HD static T zero() { return T(0); }
    GDS_HD static T one() { return T(1); }
    GDS_HD static T exp_nonpositive(T x) { return exp(x); }
    GDS_HD static T log1p_unit(T x) { return log1p_via_log(x); }
    GDS_HD static T select(bool c, T a, T b) { return c ? a : b; }
};

// The binary log loss of the margin t = y p: returns log(1 + exp(-t)) and sets
// sig = sigmoid(-t) = -d loss / d t, both from one e = exp(-|t|), which never overflows.
// M: LossMath<T>, or a lane-wise arithmetic on vectors N (cpu/fast_losses.h).
template <class M, class N> GDS_HD inline N log_loss_margin(N t, N& sig) {
    const N e = M::exp_nonpositive(M::select(t < M::zero(), t, -t));
    sig = M::select(t > M::zero(), e, M::one()) / (M::one() + e);
    return M::select(t > M::zero(), M::zero(), -t) + M::log1p_unit(e);
}

// Loss of a prediction p against target y and its derivative d loss / d p (written to dloss).
// p is the margin for LOG (y in {-1, +1}); `param` is Huber's / epsilon-insensitive's epsilon.
// SOFTMAX has no per-output form: see softmax_cross_entropy.
template <class T> GDS_HD inline T loss_and_derivative(int code, T p, T y, T param, T& dloss) {
    switch (static_cast<Loss>(code)) {
        case Loss::SQUARED: {
            const T r = p - y;
            dloss = r;
            return T(0.5) * r * r;
        }
        case Loss::HUBER: {
            const T r = p - y;
            const T a = abs(r);
            dloss = a <= param ? r : (r > T(0) ? param : -param);
            return a <= param ? T(0.5) * a * a : param * a - T(0.5) * param * param;
        }
        case Loss::EPSILON_INSENSITIVE:
            dloss = y - p > param ? T(-1) : (p - y > param ? T(1) : T(0));
            return max(T(0), abs(y - p) - param);
        case Loss::LOG: {
            T sig;
            const T value = log_loss_margin<LossMath<T>>(y * p, sig);
            dloss = -y * sig;
            return value;
        }
        case Loss::SOFTMAX: break;
    }
    dloss = T(0);
    return T(0);
}

template <class T> GDS_HD inline T loss_value(int code, T p, T y, T param) {
    T dloss;
    return loss_and_derivative(code, p, y, param, dloss);
}

template <class T> GDS_HD inline T loss_derivative(int code, T p, T y, T param) {
    T dloss;
    loss_and_derivative(code, p, y, param, dloss);
    return dloss;
}

// Softmax in place over z[0..k-1] (numerically stable); returns log-sum-exp of the input.
template <class T> GDS_HD inline T softmax_inplace(T* z, int k) {
    T zmax = z[0];
    for (int j = 1; j < k; ++j) zmax = max(zmax, z[j]);
    T sum = T(0);
    for (int j = 0; j < k; ++j) {
        z[j] = exp(z[j] - zmax);
        sum += z[j];
    }
    const T inv = T(1) / sum;
    for (int j = 0; j < k; ++j) z[j] *= inv;
    return zmax + log(sum);
}

// Cross-entropy of logits z against class `label`; on return z holds the gradient
// softmax(z) - onehot(label). Returns the loss -log softmax(z)[label].
template <class T> GDS_HD inline T softmax_cross_entropy(T* z, int k, int label) {
    const T z_label = z[label];
    const T lse = softmax_inplace(z, k);
    z[label] -= T(1);
    return lse - z_label;
}

}  // namespace gds
