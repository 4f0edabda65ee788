// gdsolve/losses.h - per-sample losses with their derivative in the prediction, and the softmax
// cross-entropy helpers for multinomial models. Callers: the linear and MLP loops, GPU kernels,
// _core.pyx (tests). Conventions follow scikit-learn's SGD losses; binary labels are -1/+1.
#pragma once
#include "config.h"
#include "codes.h"

namespace gds {

// log(1 + exp(-z)) without overflow for large |z|.
template <class T> GDS_HD inline T log1pexp_neg(T z) {
    return z > T(0) ? log1p(exp(-z)) : -z + log1p(exp(z));
}

// Loss value; `p` the prediction (margin for LOG), `y` the target (-1/+1 for LOG),
// `param` is Huber's / epsilon-insensitive's epsilon.
template <class T> GDS_HD inline T loss_value(int code, T p, T y, T param) {
    switch (static_cast<Loss>(code)) {
        case Loss::SQUARED: { const T r = p - y; return T(0.5) * r * r; }
        case Loss::HUBER: {
            const T r = abs(p - y);
            return r <= param ? T(0.5) * r * r : param * r - T(0.5) * param * param;
        }
        case Loss::EPSILON_INSENSITIVE: return max(T(0), abs(y - p) - param);
        case Loss::LOG: return log1pexp_neg(y * p);
        case Loss::SOFTMAX: break;  // see softmax_cross_entropy
    }
    return T(0);
}

// d loss / d p.
template <class T> GDS_HD inline T loss_derivative(int code, T p, T y, T param) {
    switch (static_cast<Loss>(code)) {
        case Loss::SQUARED: return p - y;
        case Loss::HUBER: {
            const T r = p - y;
            if (abs(r) <= param) return r;
            return r > T(0) ? param : -param;
        }
        case Loss::EPSILON_INSENSITIVE: {
            if (y - p > param) return T(-1);
            if (p - y > param) return T(1);
            return T(0);
        }
        case Loss::LOG: {
            // -y * sigmoid(-y p), written so that exp never overflows
            const T z = y * p;
            if (z > T(18)) return -y * exp(-z);
            if (z < T(-18)) return -y;
            return -y / (exp(z) + T(1));
        }
        case Loss::SOFTMAX: break;
    }
    return T(0);
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
