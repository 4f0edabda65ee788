// gdsolve/math/optimizers.h - the update rules, one function each, elementwise over parameters with
// explicit state slots, and the step size the L1 proximal step uses under each rule. Callers:
// gdsolve.optim (via _core.pyx) and the models' steps (model/linear.h, model/mlp.h), which every
// executor runs (CPU loops, GPU kernels). Formulas: docs/optimizers.md (PyTorch semantics).
// Muon's matrices are orthogonalised whole (math/muon.h) and Sophia's Hessian estimate is
// refreshed every k steps (math/sophia.h); both take their per-step constants from here.
//
// Protocol, per optimizer step:
//   OptimizerStep st = optimizer_begin_step(config, scalars, lr, momentum_override);  // once
//   optimizer_update(config, st, w[i], g[i], s0[i], s1[i], s2[i]);                   // each i
// s0..s2 are the per-parameter state slots; which slot holds what is listed in state_slot_names.
#pragma once
#include "gdsolve/codes.h"
#include "gdsolve/config.h"
#include "gdsolve/structs.h"

namespace gds {

// OptimizerConfig (hyper-parameters, PyTorch's names), OptimizerScalars (step counter, NAdam's mu
// product) and OptimizerStep (one step's constants) are defined in structs.h.

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
        case Optimizer::MUON: return 1;    // momentum buffer (its matrices; math/muon.h)
        case Optimizer::SOPHIA: return 2;  // m, h
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
                           code == Optimizer::LION || code == Optimizer::SOPHIA;
    const double base_mom = adam_like ? c.beta1 : c.momentum;
    const double beta1 = momentum_override >= 0.0 ? momentum_override : base_mom;
    const bool decoupled = code == Optimizer::ADAMW || code == Optimizer::LION ||
                           code == Optimizer::MUON || code == Optimizer::SOPHIA ||
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
    if (adam_like && code != Optimizer::LION && code != Optimizer::SOPHIA) {
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
        case Optimizer::MUON:
            // not elementwise: Newton-Schulz over whole matrices (math/muon.h); w is left alone
            break;
        case Optimizer::SOPHIA: {
            // m <- b1 m + (1 - b1) g;  w <- w - lr clip(m / max(gamma h, eps), 1), with s1 = h
            // (refreshed every k steps by sophia_hessian_ema, math/sophia.h)
            s0 = mom * s0 + (T(1) - mom) * g;
            const T denom = max(static_cast<T>(c.gamma) * s1, static_cast<T>(c.eps));
            w -= lr * min(max(s0 / denom, T(-1)), T(1));
            break;
        }
    }
}

// The step a rule takes per unit of a constant gradient once its state has settled (its
// preconditioner at a fixed point), for one element with state slots s0..s2. Soft-thresholding
// with l1 times this step makes the fixed points of "update, then prox" exactly the minimisers of
// loss + l1 ||w||_1; a plain lr * l1 would, e.g., weaken the l1 penalty by (1 - momentum) under
// heavy-ball momentum. Lion's sign update has no such step: it keeps lr (as Muon, whose matrices'
// step is not elementwise).
template <class T>
GDS_HD inline T l1_prox_step(const OptimizerConfig& c, const OptimizerStep& st, T s0, T s1, T s2) {
    const double lr = st.lr;
    switch (static_cast<Optimizer>(c.code)) {
        case Optimizer::SGD: {
            if (c.momentum == 0.0) return static_cast<T>(lr);
            const double settled = (1.0 - c.dampening) / (1.0 - st.momentum);  // buffer / g
            return static_cast<T>(lr * (c.nesterov ? 1.0 + st.momentum * settled : settled));
        }
        case Optimizer::ADAGRAD:
            return static_cast<T>(st.step_size / (sqrt(static_cast<double>(s0)) + c.eps));
        case Optimizer::RMSPROP: {
            double v = static_cast<double>(s0);
            if (c.centered) v -= static_cast<double>(s1) * static_cast<double>(s1);
            const double avg = sqrt(v > 0.0 ? v : 0.0) + c.eps;
            return static_cast<T>(lr / (avg * (c.momentum > 0.0 ? 1.0 - st.momentum : 1.0)));
        }
        case Optimizer::ADAM:
        case Optimizer::ADAMW: {
            const double v = static_cast<double>(c.amsgrad ? s2 : s1);
            return static_cast<T>(lr / (sqrt(v) * st.inv_sqrt_bc2 + c.eps));
        }
        case Optimizer::NADAM:
            return static_cast<T>(lr / (sqrt(static_cast<double>(s1) / st.bc2) + c.eps));
        case Optimizer::RADAM:
            if (!st.use_rect) return static_cast<T>(lr);
            return static_cast<T>(lr * st.rect /
                                  ((sqrt(static_cast<double>(s1)) + c.eps) * st.inv_sqrt_bc2));
        case Optimizer::SOPHIA: {
            // the step per unit of m this step: lr / max(gamma h, eps) unless the clip binds
            // (|m| larger), when it is lr / |m|
            const double denom = max(max(c.gamma * static_cast<double>(s1), c.eps),
                                     abs(static_cast<double>(s0)));
            return static_cast<T>(lr / denom);
        }
        case Optimizer::LION:
        case Optimizer::MUON:
            break;
    }
    return static_cast<T>(lr);
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
