// gdsolve/math/activations.h - hidden-layer activations and their derivatives, written in terms of the
// activation's output a = f(z) (as scikit-learn's MLP does). Callers: the MLP loop, GPU kernels,
// _core.pyx (tests).
#pragma once
#include "gdsolve/codes.h"
#include "gdsolve/config.h"

namespace gds {

template <class T> GDS_HD inline T logistic(T z) {
    return z >= T(0) ? T(1) / (T(1) + exp(-z)) : exp(z) / (T(1) + exp(z));
}

template <class T> GDS_HD inline T activation_value(int code, T z) {
    switch (static_cast<Activation>(code)) {
        case Activation::IDENTITY: return z;
        case Activation::RELU: return z > T(0) ? z : T(0);
        case Activation::TANH: return tanh(z);
        case Activation::LOGISTIC: return logistic(z);
    }
    return z;
}

// f'(z) expressed through a = f(z).
template <class T> GDS_HD inline T activation_derivative_from_output(int code, T a) {
    switch (static_cast<Activation>(code)) {
        case Activation::IDENTITY: return T(1);
        case Activation::RELU: return a > T(0) ? T(1) : T(0);
        case Activation::TANH: return T(1) - a * a;
        case Activation::LOGISTIC: return a * (T(1) - a);
    }
    return T(1);
}

}  // namespace gds
