# distutils: language = c++
"""Bindings of the C++ core for gdsolve.optim, gdsolve.schedules and the tests.

Design: each function checks its arrays, converts a config dict to the C++ struct and calls one
core function from csrc/include/gdsolve with the GIL released. No math here.
"""

import numpy as np

cimport numpy as cnp
from libc.math cimport INFINITY

from gdsolve._cdefs cimport (
    OptimizerConfig, OptimizerScalars, OptimizerStep, ScheduleConfig, ReduceOnPlateauConfig,
    ReduceOnPlateauState, CodeEntry, code_table, optimizer_begin_step, optimizer_update_array,
    optimizer_state_slots, schedule_lr, schedule_momentum, reduce_on_plateau_step,
    optimal_t0, loss_value, loss_derivative, softmax_cross_entropy, activation_value,
    activation_derivative_from_output, clip_gradient, optimizer_config_from_dict,
    schedule_config_from_dict, plateau_config_from_dict, gds_int64, PenaltySplit, penalty_split, penalty_value,
    soft_threshold, cumulative_l1_truncate, PlateauStop, plateau_stop_update,
)

cdef extern from "gdsolve/fast_math.h" namespace "gds":
    double exp_nonpositive(double x) nogil
    float exp_nonpositive(float x) nogil
    double log1p_unit(double x) nogil
    float log1p_unit(float x) nogil
    void exp_nonpositive_inplace[T](T* z, gds_int64 n) nogil
    void log1p_unit_inplace[T](T* z, gds_int64 n) nogil


cnp.import_array()

ctypedef fused floating:
    float
    double


def codes():
    """Every (kind, NAME, value) defined in csrc/include/gdsolve/codes.h."""
    cdef int n = 0
    cdef const CodeEntry* table = code_table(&n)
    return [(table[i].kind.decode(), table[i].name.decode(), table[i].value) for i in range(n)]


def state_slots(dict config):
    cdef OptimizerConfig c = optimizer_config_from_dict(config)
    return optimizer_state_slots(c)


cdef void _update(floating* w, const floating* g, floating* s0, floating* s1, floating* s2,
                  gds_int64 n, const OptimizerConfig* c, const OptimizerStep* st) noexcept nogil:
    optimizer_update_array(c[0], st[0], w, g, s0, s1, s2, n)


def optimizer_step(dict config, floating[::1] w, const floating[::1] g, floating[::1] s0,
                   floating[::1] s1, floating[::1] s2, long step, double mu_product, double lr,
                   double momentum_override=-1.0):
    """One step of the rule in `config` on w (in place). Slots shorter than w are unused.

    Returns the new (step, mu_product, lr used, momentum used)."""
    cdef OptimizerConfig c = optimizer_config_from_dict(config)
    cdef OptimizerScalars sc
    cdef OptimizerStep st
    cdef gds_int64 n = w.shape[0]
    if g.shape[0] != n:
        raise ValueError(f"gradient has {g.shape[0]} elements, parameters have {n}")
    sc.step = step
    sc.mu_product = mu_product
    cdef floating* p0 = &s0[0] if s0.shape[0] == n and n > 0 else NULL
    cdef floating* p1 = &s1[0] if s1.shape[0] == n and n > 0 else NULL
    cdef floating* p2 = &s2[0] if s2.shape[0] == n and n > 0 else NULL
    if n == 0:
        return step, mu_product, lr, momentum_override
    with nogil:
        st = optimizer_begin_step(c, sc, lr, momentum_override)
        _update(&w[0], &g[0], p0, p1, p2, n, &c, &st)
    return sc.step, sc.mu_product, st.lr, st.momentum


def schedule_values(dict config, const double[::1] steps, const double[::1] t):
    """Learning rate and momentum (-1 when not cycled) at each step (t: sklearn's sample count)."""
    cdef ScheduleConfig s = schedule_config_from_dict(config)
    cdef Py_ssize_t i, n = steps.shape[0]
    lr = np.empty(n)
    mom = np.empty(n)
    cdef double[::1] lr_v = lr
    cdef double[::1] mom_v = mom
    with nogil:
        for i in range(n):
            lr_v[i] = schedule_lr(s, steps[i], t[i])
            mom_v[i] = schedule_momentum(s, steps[i])
    return lr, mom


def sklearn_optimal_t0(double alpha, double dloss_at_minus_typw):
    return optimal_t0(alpha, dloss_at_minus_typw)


def reduce_on_plateau(dict config, dict state, double metric):
    """Feed one metric to PyTorch-style ReduceLROnPlateau; updates `state` in place."""
    cdef ReduceOnPlateauConfig c
    cdef ReduceOnPlateauState s
    c = plateau_config_from_dict(config)
    s.best = state.get("best", INFINITY)
    s.num_bad_epochs = state.get("num_bad_epochs", 0)
    s.cooldown_counter = state.get("cooldown_counter", 0)
    s.lr = state["lr"]
    reduced = reduce_on_plateau_step(c, s, metric)
    state.update(best=s.best, num_bad_epochs=s.num_bad_epochs,
                 cooldown_counter=s.cooldown_counter, lr=s.lr)
    return bool(reduced)


def losses(int code, const floating[::1] p, const floating[::1] y, double param):
    """(loss, dloss/dp) elementwise."""
    cdef Py_ssize_t i, n = p.shape[0]
    dtype = np.float32 if floating is float else np.float64
    value = np.empty(n, dtype=dtype)
    deriv = np.empty(n, dtype=dtype)
    cdef floating[::1] v = value
    cdef floating[::1] d = deriv
    with nogil:
        for i in range(n):
            v[i] = loss_value(code, p[i], y[i], <floating>param)
            d[i] = loss_derivative(code, p[i], y[i], <floating>param)
    return value, deriv


def softmax_xent(floating[:, ::1] z, const long[::1] labels):
    """Cross-entropy per row; z is overwritten with the gradient softmax(z) - onehot."""
    cdef Py_ssize_t i, n = z.shape[0]
    cdef int k = z.shape[1]
    dtype = np.float32 if floating is float else np.float64
    out = np.empty(n, dtype=dtype)
    cdef floating[::1] o = out
    with nogil:
        for i in range(n):
            o[i] = softmax_cross_entropy(&z[i, 0], k, labels[i])
    return out


def activations(int code, const floating[::1] z):
    """(f(z), f'(z) computed from f(z)) elementwise."""
    cdef Py_ssize_t i, n = z.shape[0]
    dtype = np.float32 if floating is float else np.float64
    value = np.empty(n, dtype=dtype)
    deriv = np.empty(n, dtype=dtype)
    cdef floating[::1] v = value
    cdef floating[::1] d = deriv
    with nogil:
        for i in range(n):
            v[i] = activation_value(code, z[i])
            d[i] = activation_derivative_from_output(code, v[i])
    return value, deriv


def clip(int code, double limit, floating[::1] g):
    """Clip g in place by value or global norm (gds::Clip codes)."""
    if g.shape[0] == 0:
        return
    with nogil:
        clip_gradient(code, limit, &g[0], g.shape[0])


# ---- penalties and the per-epoch stopping rule (used by tests/test_core_math.py and
# tests/test_schedules.py to check penalties.h and plateau_stop_update directly) ----

def penalty(int code, double alpha, double l1_ratio, const floating[::1] w):
    """(l2 coefficient, l1 coefficient, alpha * R(w)) for gds::Penalty `code`."""
    cdef PenaltySplit split = penalty_split(code, alpha, l1_ratio)
    cdef floating value = 0
    if w.shape[0] > 0:
        with nogil:
            value = penalty_value(split, &w[0], w.shape[0])
    return split.l2, split.l1, float(value)


def l1_soft_threshold(floating[::1] w, double threshold):
    """Proximal step of threshold * |w|, in place."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(w.shape[0]):
            w[i] = soft_threshold(w[i], <floating>threshold)


def l1_cumulative_truncate(floating[::1] w, floating[::1] q, double u):
    """Cumulative L1 truncation (Tsuruoka et al.) of every weight, w and q in place."""
    cdef Py_ssize_t i
    if q.shape[0] != w.shape[0]:
        raise ValueError(f"q has {q.shape[0]} elements, w has {w.shape[0]}")
    with nogil:
        for i in range(w.shape[0]):
            cumulative_l1_truncate(w[i], q[i], <floating>u)


def plateau_stop(dict state, double value, double tol, int n_iter_no_change,
                 bint higher_is_better, bint adaptive, double current_lr):
    """One epoch of scikit-learn's stopping / 'adaptive' rule; updates `state` ({"best",
    "no_improvement"}) in place. Returns (keep_going, lr_factor: 1, or 1/5 on an adaptive cut)."""
    cdef PlateauStop p
    cdef double lr_factor = 1.0
    p.best = state.get("best", INFINITY)
    p.no_improvement = state.get("no_improvement", 0)
    keep_going = plateau_stop_update(p, value, tol, n_iter_no_change, higher_is_better, adaptive,
                                     current_lr, lr_factor)
    state.update(best=p.best, no_improvement=p.no_improvement)
    return bool(keep_going), lr_factor


def fast_math(str function, const floating[::1] x, bint lanes=False):
    """fast_math.h's `exp_nonpositive` (x <= 0) or `log1p_unit` (0 <= x <= 1) in x's dtype, one
    element at a time, or with lanes=True through the 32-byte vector overloads (for the tests)."""
    if function not in ("exp_nonpositive", "log1p_unit"):
        raise ValueError(f"unknown fast_math function {function!r}")
    cdef bint exp_fn = function == "exp_nonpositive"
    out = np.array(x, dtype=np.float64 if floating is double else np.float32)
    cdef floating[::1] o = out
    cdef Py_ssize_t i
    if o.shape[0] == 0:
        return out
    with nogil:
        if lanes and exp_fn:
            exp_nonpositive_inplace(&o[0], o.shape[0])
        elif lanes:
            log1p_unit_inplace(&o[0], o.shape[0])
        else:
            for i in range(x.shape[0]):
                o[i] = exp_nonpositive(x[i]) if exp_fn else log1p_unit(x[i])
    return out
