# distutils: language = c++
"""Bindings of the C++ core for gdsolve.optim, gdsolve.schedules, gdsolve.engine and the tests.

Design: each function checks its arrays, turns a config dict into the C++ struct (through the
NumPy record gdsolve._structs builds from structs.h's own layout table) and calls one core
function from csrc/include/gdsolve with the GIL released. No math here.
"""

import numpy as np

cimport numpy as cnp
from libc.stdint cimport uint32_t, uint64_t
from scipy.linalg.cython_blas cimport dgemm, sgemm

from gdsolve._cdefs cimport (
    CodeEntry, FitScalars, DriverConfig, LinearConfig, MlpConfig, OptimizerConfig,
    OptimizerScalars,
    OptimizerStep, PlateauStop, ReduceOnPlateauConfig, ReduceOnPlateauState, ScheduleConfig,
    StructLayout, code_table, gds_int64, struct_layouts as _struct_layouts, struct_ptr,
)

cdef extern from "gdsolve/math/optimizers.h" namespace "gds":
    int optimizer_state_slots(const OptimizerConfig& c) nogil
    OptimizerStep optimizer_begin_step(const OptimizerConfig& c, OptimizerScalars& s, double lr,
                                       double momentum_override) nogil
    void optimizer_update_array[T](const OptimizerConfig& c, const OptimizerStep& st, T* w,
                                   const T* g, T* s0, T* s1, T* s2, gds_int64 n) nogil

ctypedef void (*dgemm_fn)(char*, char*, int*, int*, int*, double*, double*, int*, double*, int*,
                          double*, double*, int*) noexcept nogil
ctypedef void (*sgemm_fn)(char*, char*, int*, int*, int*, float*, float*, int*, float*, int*,
                          float*, float*, int*) noexcept nogil

cdef extern from "gdsolve/cpu/blas.h" namespace "gds":
    cdef cppclass RowMajorGemm[T]:
        pass
    RowMajorGemm[double] row_major_gemm(dgemm_fn gemm) nogil
    RowMajorGemm[float] row_major_gemm(sgemm_fn gemm) nogil

cdef extern from "gdsolve/math/muon.h" namespace "gds":
    gds_int64 newton_schulz_scratch(gds_int64 R, gds_int64 C) nogil
    void muon_matrix_update[T, G](const G& gemm, const OptimizerConfig& c,
                                  const OptimizerStep& st, T* w, const T* g, T* buf, gds_int64 R,
                                  gds_int64 C, double A, double B, T* u, T* scratch) nogil

cdef extern from "gdsolve/math/sophia.h" namespace "gds":
    void hessian_ema "gds::sophia_hessian_ema"[T](double beta2, T& h, T hhat) nogil
    double sophia_uniform(uint64_t key, gds_int64 t, gds_int64 row, int q) nogil
    bint sophia_refresh_c "gds::sophia_refresh"(const OptimizerConfig& c, gds_int64 t) nogil

cdef extern from "gdsolve/math/schedules.h" namespace "gds":
    double optimal_t0(double alpha, double dloss_at_minus_typw) nogil
    double schedule_lr(const ScheduleConfig& s, double step, double t) nogil
    double schedule_momentum(const ScheduleConfig& s, double step) nogil
    int reduce_on_plateau_step(const ReduceOnPlateauConfig& c, ReduceOnPlateauState& s,
                               double metric) nogil
    int plateau_stop_update(PlateauStop& p, double value, double tol, int n_iter_no_change,
                            int higher_is_better, int adaptive, double current_lr,
                            double& lr_factor) nogil

cdef extern from "gdsolve/math/losses.h" namespace "gds":
    T loss_value[T](int code, T p, T y, T param) nogil
    T loss_derivative[T](int code, T p, T y, T param) nogil
    T softmax_cross_entropy[T](T* z, int k, int label) nogil

cdef extern from "gdsolve/math/activations.h" namespace "gds":
    T activation_value[T](int code, T z) nogil
    T activation_derivative_from_output[T](int code, T a) nogil

cdef extern from "gdsolve/math/penalties.h" namespace "gds":
    cdef struct PenaltySplit:
        double l2
        double l1
    PenaltySplit penalty_split(int code, double alpha, double l1_ratio) nogil
    T penalty_value[T](const PenaltySplit& s, const T* w, gds_int64 n) nogil
    T soft_threshold[T](T w, T threshold) nogil
    void cumulative_l1_truncate[T](T& w, T& q, T u) nogil

cdef extern from "gdsolve/math/clip.h" namespace "gds":
    void clip_gradient[T](int code, double limit, T* g, gds_int64 n) nogil

cdef extern from "gdsolve/math/fast_math.h" namespace "gds":
    double exp_nonpositive(double x) nogil
    float exp_nonpositive(float x) nogil
    double log1p_unit(double x) nogil
    float log1p_unit(float x) nogil
    void exp_nonpositive_inplace[T](T* z, gds_int64 n) nogil
    void log1p_unit_inplace[T](T* z, gds_int64 n) nogil

cdef extern from "gdsolve/cpu/fast_losses.h" namespace "gds":
    double softmax_cross_entropy_batch[T](T* z, gds_int64 nb, gds_int64 k, const int* labels,
                                          T scale, T* shifted_label) nogil
    void log_loss_lanes[T](const T* t, T* loss, T* sig, gds_int64 n) nogil

cdef extern from "gdsolve/driver/epoch_rules.h" namespace "gds":
    cdef struct EpochDecision:
        int stop
        int improved
        double lr
    EpochDecision epoch_end_rules "gds::epoch_end"(
        const DriverConfig& d, const ScheduleConfig& s, const ReduceOnPlateauConfig& p,
        FitScalars& st, double objective, double score) nogil

cdef extern from "gdsolve/driver/shuffle.h" namespace "gds":
    void next_epoch_order[I](I* order, size_t n, uint64_t& rng) nogil

cdef extern from "gdsolve/model/linear.h" namespace "gds":
    cdef cppclass LinearStepPlan:
        pass
    LinearStepPlan linear_step_begin(const LinearConfig& m, const OptimizerConfig& o,
                                     const ScheduleConfig& s, FitScalars& st, gds_int64 count,
                                     double grad_sqnorm) nogil
    void linear_step_element[T, G](const LinearConfig& m, const OptimizerConfig& o,
                                   const LinearStepPlan& p, gds_int64 j, gds_int64 d, T* P,
                                   const G* grad, T* s0, T* s1, T* s2, T* A) nogil
    gds_int64 linear_updated_params(const LinearConfig& m, gds_int64 d) nogil
    double linear_clip_sqnorm[T, G](const G* grad, double inv_count, gds_int64 n) nogil

cdef extern from "gdsolve/model/mlp.h" namespace "gds":
    cdef cppclass MlpStepPlan[T]:
        T penalty
    MlpStepPlan[T] mlp_step_begin[T](const MlpConfig& m, const OptimizerConfig& o,
                                     const ScheduleConfig& s, FitScalars& st, gds_int64 count,
                                     double grad_sqnorm) nogil
    void mlp_step_element[T](const MlpConfig& m, const OptimizerConfig& o,
                             const MlpStepPlan[T]& p, gds_int64 j, gds_int64 n_coef, T* w, T g,
                             T* s0, T* s1, T* s2) nogil


cdef extern from "gdsolve/model/mlp.h" namespace "gds":
    cdef cppclass MlpStepPlan[T]:
        pass
    cdef cppclass MlpMuonPlan:
        pass


cnp.import_array()

ctypedef fused floating:
    float
    double


# ---- codes and struct layouts (gdsolve._codes is proven against the first, gdsolve._structs
# is built from the second) ----

def codes():
    """Every (kind, NAME, value) defined in csrc/include/gdsolve/codes.h."""
    cdef int n = 0
    cdef const CodeEntry* table = code_table(&n)
    return [(table[i].kind.decode(), table[i].name.decode(), table[i].value) for i in range(n)]


def struct_layouts():
    """[(struct name, sizeof, [(field, NumPy kind, count, offset, default), ...]), ...] for
    every struct of csrc/include/gdsolve/structs.h."""
    cdef int n = 0, i, j
    cdef const StructLayout* table = _struct_layouts(&n)
    out = []
    for i in range(n):
        fields = []
        for j in range(table[i].n_fields):
            f = table[i].fields[j]
            fields.append((f.name.decode(), chr(f.kind), f.count, f.offset, f.default_value))
        out.append((table[i].name.decode(), table[i].size, fields))
    return out


cdef object _record(object config, str name):
    """A config given as a dict (or already a record) as a record of struct `name`."""
    from gdsolve import _structs

    if isinstance(config, dict):
        return _structs.record(name, config)
    return config


def plateau_record(dict config):
    """ReduceOnPlateauConfig from PyTorch's ReduceLROnPlateau arguments (threshold_mode 'rel' or
    'abs'; missing keys take PyTorch's defaults)."""
    from gdsolve import _structs

    fields = dict(config)
    mode = fields.pop("threshold_mode", "rel")
    if mode not in ("rel", "abs"):
        raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {mode!r}")
    fields["threshold_mode_rel"] = mode == "rel"
    return _structs.record("ReduceOnPlateauConfig", fields)


cdef OptimizerConfig _optimizer(object config) except *:
    rec = _record(config, "OptimizerConfig")
    return (<OptimizerConfig*>struct_ptr(rec, "OptimizerConfig", sizeof(OptimizerConfig)))[0]


cdef ScheduleConfig _schedule(object config) except *:
    rec = _record(config, "ScheduleConfig")
    return (<ScheduleConfig*>struct_ptr(rec, "ScheduleConfig", sizeof(ScheduleConfig)))[0]


# ---- update rules ----

def state_slots(config):
    cdef OptimizerConfig c = _optimizer(config)
    return optimizer_state_slots(c)


cdef void _update(floating* w, const floating* g, floating* s0, floating* s1, floating* s2,
                  gds_int64 n, const OptimizerConfig* c, const OptimizerStep* st) noexcept nogil:
    optimizer_update_array(c[0], st[0], w, g, s0, s1, s2, n)


def optimizer_step(config, floating[::1] w, const floating[::1] g, floating[::1] s0,
                   floating[::1] s1, floating[::1] s2, long step, double mu_product, double lr,
                   double momentum_override=-1.0):
    """One step of the rule in `config` on w (in place). Slots shorter than w are unused.

    Returns the new (step, mu_product, lr used, momentum used)."""
    from gdsolve import _structs

    cdef OptimizerConfig c = _optimizer(config)
    scalars = _structs.record("OptimizerScalars", {"step": step, "mu_product": mu_product})
    cdef OptimizerScalars* sc = <OptimizerScalars*>struct_ptr(
        scalars, "OptimizerScalars", sizeof(OptimizerScalars), True)
    step_rec = _structs.record("OptimizerStep")
    cdef OptimizerStep* st = <OptimizerStep*>struct_ptr(step_rec, "OptimizerStep",
                                                        sizeof(OptimizerStep), True)
    cdef gds_int64 n = w.shape[0]
    if g.shape[0] != n:
        raise ValueError(f"gradient has {g.shape[0]} elements, parameters have {n}")
    cdef floating* p0 = &s0[0] if s0.shape[0] == n and n > 0 else NULL
    cdef floating* p1 = &s1[0] if s1.shape[0] == n and n > 0 else NULL
    cdef floating* p2 = &s2[0] if s2.shape[0] == n and n > 0 else NULL
    if n == 0:
        return step, mu_product, lr, momentum_override
    with nogil:
        st[0] = optimizer_begin_step(c, sc[0], lr, momentum_override)
        _update(&w[0], &g[0], p0, p1, p2, n, &c, st)
    out = _structs.as_dict(scalars)
    used = _structs.as_dict(step_rec)
    return out["step"], out["mu_product"], used["lr"], used["momentum"]


def muon_step(config, floating[:, ::1] w, const floating[:, ::1] g, floating[:, ::1] buf,
              long step, double lr, double momentum_override=-1.0):
    """One Muon step (math/muon.h) of the matrix w (rows x cols, in place, torch's shape: A =
    rows, B = cols) with gradient g and momentum buffer buf. Returns the new step count."""
    from gdsolve import _structs

    cdef OptimizerConfig c = _optimizer(config)
    cdef gds_int64 rows = w.shape[0], cols = w.shape[1]
    if g.shape[0] != rows or g.shape[1] != cols or buf.shape[0] != rows or buf.shape[1] != cols:
        raise ValueError(f"grads and the momentum buffer must have the shape of params "
                         f"{(rows, cols)}")
    if rows == 0 or cols == 0:
        return step + 1
    scalars = _structs.record("OptimizerScalars", {"step": step, "mu_product": 1.0})
    cdef OptimizerScalars* sc = <OptimizerScalars*>struct_ptr(
        scalars, "OptimizerScalars", sizeof(OptimizerScalars), True)
    dtype = np.float64 if floating is double else np.float32
    u = np.empty(rows * cols, dtype=dtype)
    scratch = np.empty(newton_schulz_scratch(rows, cols), dtype=dtype)
    cdef floating[::1] uv = u
    cdef floating[::1] sv = scratch
    cdef OptimizerStep st
    with nogil:
        st = optimizer_begin_step(c, sc[0], lr, momentum_override)
        if floating is double:
            muon_matrix_update[double, RowMajorGemm[double]](
                row_major_gemm(<dgemm_fn>dgemm), c, st, &w[0, 0], &g[0, 0], &buf[0, 0], rows,
                cols, <double>rows, <double>cols, &uv[0], &sv[0])
        else:
            muon_matrix_update[float, RowMajorGemm[float]](
                row_major_gemm(<sgemm_fn>sgemm), c, st, &w[0, 0], &g[0, 0], &buf[0, 0], rows,
                cols, <double>rows, <double>cols, &uv[0], &sv[0])
    return _structs.as_dict(scalars)["step"]


def sophia_hessian_ema(double beta2, floating[::1] h, const floating[::1] hhat):
    """h <- beta2 h + (1 - beta2) hhat in place (math/sophia.h)."""
    cdef gds_int64 i, n = h.shape[0]
    if hhat.shape[0] != n:
        raise ValueError(f"the Hessian estimate has {hhat.shape[0]} elements, the state {n}")
    with nogil:
        for i in range(n):
            hessian_ema(beta2, h[i], hhat[i])


def sophia_uniforms(uint64_t key, gds_int64 t, const gds_int64[::1] rows, int q):
    """Sophia's draw q of each training row at step t (math/sophia.h: sophia_uniform)."""
    out = np.empty(rows.shape[0])
    cdef double[::1] o = out
    cdef Py_ssize_t i
    for i in range(rows.shape[0]):
        o[i] = sophia_uniform(key, t, rows[i], q)
    return out


def sophia_refresh(config, gds_int64 t):
    """Whether Sophia's step t (1 for the first) refreshes its Hessian estimate (math/sophia.h;
    the GPU executors decide per batch on the host, since the step counter advances by one)."""
    cdef OptimizerConfig c = _optimizer(config)
    return bool(sophia_refresh_c(c, t))


# ---- schedules and the epoch driver's rules ----

def schedule_values(config, const double[::1] steps, const double[::1] t):
    """Learning rate and momentum (-1 when not cycled) at each step (t: sklearn's sample count)."""
    cdef ScheduleConfig s = _schedule(config)
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
    """Feed one metric to PyTorch-style ReduceLROnPlateau; updates `state` (best,
    num_bad_epochs, cooldown_counter, lr) in place. Returns whether the rate was reduced."""
    from gdsolve import _structs

    crec = plateau_record(config)
    cdef ReduceOnPlateauConfig* c = <ReduceOnPlateauConfig*>struct_ptr(
        crec, "ReduceOnPlateauConfig", sizeof(ReduceOnPlateauConfig))
    srec = _structs.record("ReduceOnPlateauState", state)
    cdef ReduceOnPlateauState* s = <ReduceOnPlateauState*>struct_ptr(
        srec, "ReduceOnPlateauState", sizeof(ReduceOnPlateauState), True)
    reduced = reduce_on_plateau_step(c[0], s[0], metric)
    state.update(_structs.as_dict(srec))
    return bool(reduced)


def plateau_stop(dict state, double value, double tol, int n_iter_no_change,
                 bint higher_is_better, bint adaptive, double current_lr):
    """One epoch of scikit-learn's stopping / 'adaptive' rule; updates `state` ({"best",
    "no_improvement"}) in place. Returns (keep_going, lr_factor: 1, or 1/5 on an adaptive cut)."""
    from gdsolve import _structs

    rec = _structs.record("PlateauStop", state)
    cdef PlateauStop* p = <PlateauStop*>struct_ptr(rec, "PlateauStop", sizeof(PlateauStop), True)
    cdef double lr_factor = 1.0
    keep_going = plateau_stop_update(p[0], value, tol, n_iter_no_change, higher_is_better,
                                     adaptive, current_lr, lr_factor)
    state.update(_structs.as_dict(rec))
    return bool(keep_going), lr_factor


def epoch_end(driver, schedule, plateau, scalars, double objective, double score):
    """The driver's end-of-epoch rules (driver/epoch_rules.h) on the FitScalars record
    `scalars` (updated in place). Returns (stop, improved, lr)."""
    cdef DriverConfig* d = <DriverConfig*>struct_ptr(driver, "DriverConfig", sizeof(DriverConfig))
    cdef ScheduleConfig* s = <ScheduleConfig*>struct_ptr(schedule, "ScheduleConfig",
                                                         sizeof(ScheduleConfig))
    cdef ReduceOnPlateauConfig* p = <ReduceOnPlateauConfig*>struct_ptr(
        plateau, "ReduceOnPlateauConfig", sizeof(ReduceOnPlateauConfig))
    cdef FitScalars* st = <FitScalars*>struct_ptr(scalars, "FitScalars", sizeof(FitScalars), True)
    cdef EpochDecision out = epoch_end_rules(d[0], s[0], p[0], st[0], objective, score)
    return bool(out.stop), bool(out.improved), out.lr


def shuffle_order(uint32_t[::1] order, scalars):
    """The next epoch's row order (driver/shuffle.h), in place; advances the generator state held
    in the FitScalars record `scalars`."""
    struct_ptr(scalars, "FitScalars", sizeof(FitScalars), True)
    cdef uint64_t rng = scalars["rng"][0]
    if order.shape[0] > 1:
        with nogil:
            next_epoch_order(&order[0], order.shape[0], rng)
    scalars["rng"][0] = rng


# ---- the linear model's step (model/linear.h), for executors written in Python ----

def linear_step_plan_size():
    """Bytes of a gds::LinearStepPlan (the GPU keeps one on the device between its two step
    kernels)."""
    return sizeof(LinearStepPlan)


def mlp_step_plan_size(dtype):
    """Bytes of a gds::MlpStepPlan<T> for T = float32 / float64 (kept on the device between the
    GPU's step kernels)."""
    if np.dtype(dtype) == np.float64:
        return sizeof(MlpStepPlan[double])
    if np.dtype(dtype) == np.float32:
        return sizeof(MlpStepPlan[float])
    raise ValueError(f"float32 or float64, got {np.dtype(dtype)}")


def mlp_muon_plan_size():
    """Bytes of a gds::MlpMuonPlan (Muon's and its companion's step constants, kept on the
    device between the GPU's Muon kernels)."""
    return sizeof(MlpMuonPlan)


def linear_step(model, optimizer, schedule, scalars, floating[::1] params,
                const double[::1] grad, long count, floating[::1] slot0, floating[::1] slot1,
                floating[::1] slot2, avg_params=None):
    """One step of model/linear.h from the summed gradient `grad` (K*d + K, float64) of `count`
    rows: every element of params / slots / avg_params in place, the FitScalars record updated."""
    cdef LinearConfig* m = <LinearConfig*>struct_ptr(model, "LinearConfig", sizeof(LinearConfig))
    cdef OptimizerConfig* o = <OptimizerConfig*>struct_ptr(optimizer, "OptimizerConfig",
                                                           sizeof(OptimizerConfig))
    cdef ScheduleConfig* s = <ScheduleConfig*>struct_ptr(schedule, "ScheduleConfig",
                                                         sizeof(ScheduleConfig))
    cdef FitScalars* st = <FitScalars*>struct_ptr(scalars, "FitScalars", sizeof(FitScalars), True)
    cdef gds_int64 n = params.shape[0]
    cdef int K = int(model["n_outputs"].reshape(-1)[0])
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if K < 1 or n % K != 0 or n <= K:
        raise ValueError(f"params has {n} elements, not K*d + K for K = {K}")
    cdef gds_int64 d = n // K - 1
    for arr, what in ((grad, "grad"), (slot0, "slot0"), (slot1, "slot1"), (slot2, "slot2")):
        if arr.shape[0] != n:
            raise ValueError(f"{what} has {arr.shape[0]} elements, params {n}")
    cdef floating[::1] A
    cdef floating* a_ptr = NULL
    if avg_params is not None:
        A = avg_params
        if A.shape[0] != n:
            raise ValueError(f"avg_params has {A.shape[0]} elements, params {n}")
        a_ptr = &A[0]
    elif int(model["average_start"].reshape(-1)[0]) > 0:
        raise ValueError("avg_params is required when the model averages")
    cdef double sq
    cdef LinearStepPlan plan
    cdef gds_int64 j
    with nogil:
        if floating is double:
            sq = linear_clip_sqnorm[double, double](&grad[0], 1.0 / count,
                                                    linear_updated_params(m[0], d))
        else:
            sq = linear_clip_sqnorm[float, double](&grad[0], 1.0 / count,
                                                   linear_updated_params(m[0], d))
        plan = linear_step_begin(m[0], o[0], s[0], st[0], count, sq)
        for j in range(n):
            linear_step_element(m[0], o[0], plan, j, d, &params[0], &grad[0], &slot0[0],
                                &slot1[0], &slot2[0], a_ptr)


# ---- the MLP's step (model/mlp.h), for executors written in Python ----

def mlp_step(model, optimizer, schedule, scalars, floating[::1] params, const double[::1] grad,
             long count, long n_coef, floating[::1] slot0, floating[::1] slot1,
             floating[::1] slot2):
    """One step of model/mlp.h from the batch-mean gradient `grad` (float64, without the L2
    part) of a batch of `count` rows: the L2 term alpha / count * w on the first n_coef entries
    (the coefficient matrices), clipping, the rule; params and slots in place, the FitScalars
    record updated. Returns ||W||^2 over those entries before the step (the batch objective's
    0.5 alpha ||W||^2 / count)."""
    cdef MlpConfig* m = <MlpConfig*>struct_ptr(model, "MlpConfig", sizeof(MlpConfig))
    cdef OptimizerConfig* o = <OptimizerConfig*>struct_ptr(optimizer, "OptimizerConfig",
                                                           sizeof(OptimizerConfig))
    cdef ScheduleConfig* s = <ScheduleConfig*>struct_ptr(schedule, "ScheduleConfig",
                                                         sizeof(ScheduleConfig))
    cdef FitScalars* st = <FitScalars*>struct_ptr(scalars, "FitScalars", sizeof(FitScalars), True)
    cdef gds_int64 n = params.shape[0]
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if n_coef < 0 or n_coef > n:
        raise ValueError(f"n_coef must be in 0..{n}, got {n_coef}")
    for arr, what in ((grad, "grad"), (slot0, "slot0"), (slot1, "slot1"), (slot2, "slot2")):
        if arr.shape[0] != n:
            raise ValueError(f"{what} has {arr.shape[0]} elements, params {n}")
    cdef bint clip_norm = int(model["clip"].reshape(-1)[0]) == 2  # Clip::NORM
    cdef floating penalty = <floating>(float(model["alpha"].reshape(-1)[0]) / <double>count)
    cdef double sq_w = 0.0, sq_g = 0.0
    cdef floating g
    cdef gds_int64 j
    cdef MlpStepPlan[double] plan64
    cdef MlpStepPlan[float] plan32
    if n == 0:
        return 0.0
    with nogil:
        for j in range(n_coef):
            sq_w += <double>params[j] * <double>params[j]
        if clip_norm:  # the norm of the gradient the rule would see, L2 part included
            for j in range(n):
                g = <floating>grad[j]
                if j < n_coef:
                    g = g + penalty * params[j]
                sq_g += <double>g * <double>g
        if floating is double:
            plan64 = mlp_step_begin[double](m[0], o[0], s[0], st[0], count, sq_g)
            for j in range(n):
                mlp_step_element[double](m[0], o[0], plan64, j, n_coef, &params[0], grad[j],
                                         &slot0[0], &slot1[0], &slot2[0])
        else:
            plan32 = mlp_step_begin[float](m[0], o[0], s[0], st[0], count, sq_g)
            for j in range(n):
                mlp_step_element[float](m[0], o[0], plan32, j, n_coef, &params[0],
                                        <float>grad[j], &slot0[0], &slot1[0], &slot2[0])
    return sq_w


# ---- per-element math (tests, and gdsolve.schedules's optimal t0) ----

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


def fast_log_loss(const floating[::1] t):
    """The CPU's vector fast path of the log loss (cpu/fast_losses.h) on margins t: (loss,
    sigmoid(-t)), whole vectors of lanes then a scalar tail with the same fast functions."""
    cdef Py_ssize_t n = t.shape[0]
    dtype = np.float32 if floating is float else np.float64
    loss = np.empty(n, dtype=dtype)
    sig = np.empty(n, dtype=dtype)
    cdef floating[::1] lv = loss
    cdef floating[::1] sv = sig
    if n:
        with nogil:
            log_loss_lanes(&t[0], &lv[0], &sv[0], n)
    return loss, sig


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


def softmax_xent_batch(floating[:, ::1] z, const int[::1] labels, double scale=1.0):
    """The MLP's vectorised fast path (cpu/fast_losses.h): summed cross-entropy of the rows of z,
    z overwritten with scale * (softmax(z) - onehot)."""
    cdef Py_ssize_t n = z.shape[0]
    cdef gds_int64 k = z.shape[1]
    if labels.shape[0] != n:
        raise ValueError("one label per row")
    if n and (np.min(labels) < 0 or np.max(labels) >= k):
        raise ValueError("label out of range")
    scratch = np.empty(n, dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] sv = scratch
    cdef double total = 0.0
    if n:
        with nogil:
            total = softmax_cross_entropy_batch(&z[0, 0], n, k, &labels[0], <floating>scale,
                                                &sv[0])
    return total


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
