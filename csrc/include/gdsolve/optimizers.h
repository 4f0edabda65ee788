// gdsolve/optimizers.h - the update rules, one function each, elementwise over parameters with
// explicit state slots. Callers: gdsolve.optim (via _core.pyx), the linear and MLP training loops,
// and the CuPy kernels (one thread per element). Formulas: docs/optimizers.md (PyTorch semantics).
//
// Protocol, per optimizer step:
//   OptimizerStep st = optimizer_begin_step(config, scalars, lr, momentum_override);  // once
//   optimizer_update(config, st, w[i], g[i], s0[i], s1[i], s2[i]);                   // each i
// s0..s2 are the per-parameter state slots; which slot holds what is listed in state_slot_names.
#pragma once
#include "config.h"
#include "codes.h"

namespace gds {

// Hyper-parameters; PyTorch's names. Unused fields are ignored by the rules that do not need them.
struct OptimizerConfig {
    int code;                       // gds::Optimizer
    double lr;                      // base learning rate (a schedule may override it per step)
    double momentum;                // SGD, RMSprop
    double dampening;               // SGD
    int nesterov;                   // SGD
    double beta1, beta2;            // Adam family, Lion
    double eps;                     // Adagrad, RMSprop, Adam family
    double weight_decay;            // coupled (L2 into the gradient) unless decoupled
    int amsgrad;                    // Adam, AdamW
    double lr_decay;                // Adagrad
    double initial_accumulator_value;  // Adagrad (used by init, not by the update)
    double alpha;                   // RMSprop smoothing constant
    int centered;                   // RMSprop
    double momentum_decay;          // NAdam psi
    int decoupled_weight_decay;     // NAdam, RAdam (AdamW and Lion are always decoupled)
};

// Scalar state carried between steps.
struct OptimizerScalars {
    gds_int64 step;     // number of steps taken so far
    double mu_product;  // NAdam: product of mu_1..mu_t (starts at 1)
};

// Per-step constants shared by every element of one step.
struct OptimizerStep {
    double lr;
    double momentum;        // SGD/RMSprop momentum or Adam/Lion beta1 in use this step
    double decay_factor;    // multiplicative decoupled decay, 1 - lr*wd (1 when coupled)
    double l2;              // coupled weight decay added to the gradient (0 when decoupled)
    double step_size;       // Adam: lr / (1 - beta1^t); Adagrad: lr / (1 + (t-1) lr_decay)
    double inv_sqrt_bc2;    // 1 / sqrt(1 - beta2^t)
    double inv_bc1;         // 1 / (1 - beta1^t)
    double bc2;             // 1 - beta2^t
    double coef_grad;       // NAdam: lr (1 - mu_t) / (1 - prod mu)
    double coef_momentum;   // NAdam: lr mu_{t+1} / (1 - prod mu * mu_{t+1})
    double rect;            // RAdam rectification term (valid when use_rect)
    int use_rect;           // RAdam: rho_t > 5
    int first;              // 1 on the first step (SGD momentum buffer starts as the gradient)
};

// Number of per-parameter state slots each rule uses (the rest may be null/unused).
GDS_HD inline int optimizer_state_slots(const OptimizerConfig& c) {
    switch (static_cast<Optimizer>(c.code)) {
        case Optimizer::SGD: return c.momentum != 0.0 ? 1 : 0;
        case Optimizer::ADAGRAD: return 1;
        case Optimizer::RMSPROP: return 3;
        case Optimizer::ADAM:
        case Optimizer::ADAMW: return c.amsgrad ? 3 : 2;
        case Optimizer::NADAM:
        case Optimizer::RADAM: return 2;
        case Optimizer::LION: return 1;
    }
    return 0;
}

// Advance the scalar state by one step and compute the step's constants. `lr` is the learning rate
// for this step; `momentum_override` >= 0 replaces momentum/beta1 (one-cycle momentum cycling).
GDS_HD inline OptimizerStep optimizer_begin_step(const OptimizerConfig& c, OptimizerScalars& s,
                                                 double lr, double momentum_override) {
    OptimizerStep st;
    s.step += 1;
    const double t = static_cast<double>(s.step);
    const Optimizer code = static_cast<Optimizer>(c.code);
    const bool adam_like = code == Optimizer::ADAM || code == Optimizer::ADAMW ||
                           code == Optimizer::NADAM || code == Optimizer::RADAM ||
                           code == Optimizer::LION;
    const double base_mom = adam_like ? c.beta1 : c.momentum;
    const double beta1 = momentum_override >= 0.0 ? momentum_override : base_mom;
    const bool decoupled = code == Optimizer::ADAMW || code == Optimizer::LION ||
                           ((code == Optimizer::NADAM || code == Optimizer::RADAM) &&
                            c.decoupled_weight_decay);
    st.lr = lr;
    st.momentum = beta1;
    st.decay_factor = decoupled ? 1.0 - lr * c.weight_decay : 1.0;
    st.l2 = decoupled ? 0.0 : c.weight_decay;
    st.first = s.step == 1;
    st.step_size = lr;
    st.inv_sqrt_bc2 = 1.0;
    st.inv_bc1 = 1.0;
    st.bc2 = 1.0;
    st.coef_grad = 0.0;
    st.coef_momentum = 0.0;
    st.rect = 1.0;
    st.use_rect = 0;
    if (adam_like && code != Optimizer::LION) {
        const double bc1 = 1.0 - pow(beta1, t);
        st.bc2 = 1.0 - pow(c.beta2, t);
        st.inv_bc1 = 1.0 / bc1;
        st.inv_sqrt_bc2 = 1.0 / sqrt(st.bc2);
        st.step_size = lr / bc1;
    }
    if (code == Optimizer::ADAGRAD) st.step_size = lr / (1.0 + (t - 1.0) * c.lr_decay);
    if (code == Optimizer::NADAM) {
        const double mu = beta1 * (1.0 - 0.5 * pow(0.96, t * c.momentum_decay));
        const double mu_next = beta1 * (1.0 - 0.5 * pow(0.96, (t + 1.0) * c.momentum_decay));
        s.mu_product *= mu;
        st.coef_grad = lr * (1.0 - mu) / (1.0 - s.mu_product);
        st.coef_momentum = lr * mu_next / (1.0 - s.mu_product * mu_next);
    }
    if (code == Optimizer::RADAM) {
        const double rho_inf = 2.0 / (1.0 - c.beta2) - 1.0;
        const double beta2_t = pow(c.beta2, t);
        const double rho_t = rho_inf - 2.0 * t * beta2_t / (1.0 - beta2_t);
        st.use_rect = rho_t > 5.0;
        if (st.use_rect)
            st.rect = sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                           ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t));
    }
    return st;
}

// One element of one step. w is updated in place; s0..s2 are this element's state slots.
template <class T>
GDS_HD inline void optimizer_update(const OptimizerConfig& c, const OptimizerStep& st, T& w, T g,
                                    T& s0, T& s1, T& s2) {
    const T lr = static_cast<T>(st.lr);
    const T mom = static_cast<T>(st.momentum);
    if (st.l2 != 0.0) g += static_cast<T>(st.l2) * w;
    if (st.decay_factor != 1.0) w *= static_cast<T>(st.decay_factor);
    switch (static_cast<Optimizer>(c.code)) {
        case Optimizer::SGD: {
            if (c.momentum != 0.0) {
                s0 = st.first ? g : mom * s0 + static_cast<T>(1.0 - c.dampening) * g;
                g = c.nesterov ? g + mom * s0 : s0;
            }
            w -= lr * g;
            break;
        }
        case Optimizer::ADAGRAD: {
            s0 += g * g;
            w -= static_cast<T>(st.step_size) * g / (sqrt(s0) + static_cast<T>(c.eps));
            break;
        }
        case Optimizer::RMSPROP: {
            const T a = static_cast<T>(c.alpha);
            s0 = a * s0 + (T(1) - a) * g * g;
            T avg;
            if (c.centered) {
                s1 = a * s1 + (T(1) - a) * g;
                avg = sqrt(s0 - s1 * s1) + static_cast<T>(c.eps);
            } else {
                avg = sqrt(s0) + static_cast<T>(c.eps);
            }
            if (c.momentum > 0.0) {
                s2 = mom * s2 + g / avg;
                w -= lr * s2;
            } else {
                w -= lr * g / avg;
            }
            break;
        }
        case Optimizer::ADAM:
        case Optimizer::ADAMW: {
            const T b2 = static_cast<T>(c.beta2);
            s0 = mom * s0 + (T(1) - mom) * g;
            s1 = b2 * s1 + (T(1) - b2) * g * g;
            T v = s1;
            if (c.amsgrad) {
                s2 = max(s2, s1);
                v = s2;
            }
            const T denom = sqrt(v) * static_cast<T>(st.inv_sqrt_bc2) + static_cast<T>(c.eps);
            w -= static_cast<T>(st.step_size) * s0 / denom;
            break;
        }
        case Optimizer::NADAM: {
            const T b2 = static_cast<T>(c.beta2);
            s0 = mom * s0 + (T(1) - mom) * g;
            s1 = b2 * s1 + (T(1) - b2) * g * g;
            const T denom = sqrt(s1 / static_cast<T>(st.bc2)) + static_cast<T>(c.eps);
            w -= static_cast<T>(st.coef_grad) * g / denom;
            w -= static_cast<T>(st.coef_momentum) * s0 / denom;
            break;
        }
        case Optimizer::RADAM: {
            const T b2 = static_cast<T>(c.beta2);
            s0 = mom * s0 + (T(1) - mom) * g;
            s1 = b2 * s1 + (T(1) - b2) * g * g;
            const T m_hat = s0 * static_cast<T>(st.inv_bc1);
            if (st.use_rect) {
                const T adaptive =
                    static_cast<T>(1.0 / st.inv_sqrt_bc2) / (sqrt(s1) + static_cast<T>(c.eps));
                w -= lr * m_hat * static_cast<T>(st.rect) * adaptive;
            } else {
                w -= lr * m_hat;
            }
            break;
        }
        case Optimizer::LION: {
            const T b2 = static_cast<T>(c.beta2);
            const T direction = mom * s0 + (T(1) - mom) * g;
            w -= lr * sign(direction);
            s0 = b2 * s0 + (T(1) - b2) * g;
            break;
        }
    }
}

// A whole parameter vector (host loops; a GPU kernel calls optimizer_update per thread instead).
// Null slot pointers are allowed for slots the rule does not use.
template <class T>
GDS_HD inline void optimizer_update_array(const OptimizerConfig& c, const OptimizerStep& st, T* w,
                                          const T* g, T* s0, T* s1, T* s2, gds_int64 n) {
    T dummy0 = T(0), dummy1 = T(0), dummy2 = T(0);
    for (gds_int64 i = 0; i < n; ++i) {
        T& a = s0 ? s0[i] : dummy0;
        T& b = s1 ? s1[i] : dummy1;
        T& d = s2 ? s2[i] : dummy2;
        optimizer_update<T>(c, st, w[i], g[i], a, b, d);
    }
}

}  // namespace gds
