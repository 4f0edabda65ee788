# distutils: language = c++
"""Binding of the compiled MLP loop (csrc/include/gdsolve/mlp_loop.h) for gdsolve.neural_network.

Design: check the arrays, fill the C++ config structs from the dicts that gdsolve.optim /
gdsolve.schedules build, hand over scipy's BLAS gemm as a function pointer, and make ONE nogil
call per fit / loss-gradient / prediction. No math here.
"""

import numpy as np

cimport numpy as cnp
from libc.stdint cimport uint64_t
from scipy.linalg.cython_blas cimport dgemm, sgemm

from gdsolve._cdefs cimport (
    OptimizerConfig, ScheduleConfig, ReduceOnPlateauConfig, check_signals_for_loop, gds_int64,
    plateau_config_from_dict, optimizer_config_from_dict, schedule_config_from_dict,
)

cnp.import_array()

ctypedef fused floating:
    float
    double

ctypedef void (*dgemm_fn)(char*, char*, int*, int*, int*, double*, double*, int*, double*, int*,
                          double*, double*, int*) noexcept nogil
ctypedef void (*sgemm_fn)(char*, char*, int*, int*, int*, float*, float*, int*, float*, int*,
                          float*, float*, int*) noexcept nogil
ctypedef int (*interrupt_fn)(void*) noexcept nogil
ctypedef void (*epoch_fn)(void*, int, double, double) noexcept nogil

cdef extern from "gdsolve/mlp_loop.h" namespace "gds":
    cdef struct MlpShape:
        int n_layers
        const gds_int64* units
        int activation
        int loss
    cdef cppclass MlpData[T]:
        gds_int64 n_rows
        const T* X
        const gds_int64* indptr
        const gds_int64* indices
        const T* values
        const T* Y
        const int* labels
    cdef struct MlpFitConfig:
        gds_int64 batch_size
        int max_epochs
        double alpha
        double tol
        int n_iter_no_change
        int check_stopping
        int shuffle
        uint64_t seed
        int clip_code
        double clip_limit
        int verbose
        int n_threads
    cdef struct MlpFitState:
        gds_int64 optimizer_step
        double mu_product
        gds_int64 samples_seen
        double lr_scale
        double best_objective
        int no_improvement
        double plateau_best
        int plateau_bad_epochs
        int plateau_cooldown
        double plateau_lr
    cdef struct MlpCallbacks:
        interrupt_fn interrupt
        void* interrupt_context
        epoch_fn epoch
        void* epoch_context
    cdef struct MlpFitResult:
        int status
        int epochs_run
        int stop_epoch
    int mlp_team_size(int n_threads, gds_int64 batch_size)
    MlpFitResult mlp_fit_f64(const MlpShape& shape, dgemm_fn gemm, double* params, double* slot0,
                             double* slot1, double* slot2, double* best_params,
                             const MlpData[double]& train, const MlpData[double]& val,
                             const OptimizerConfig& opt, const ScheduleConfig& sched,
                             const ReduceOnPlateauConfig& plateau, const MlpFitConfig& cfg,
                             MlpFitState& state, double* loss_curve, double* val_scores,
                             const MlpCallbacks& callbacks) nogil
    MlpFitResult mlp_fit_f32(const MlpShape& shape, sgemm_fn gemm, float* params, float* slot0,
                             float* slot1, float* slot2, float* best_params,
                             const MlpData[float]& train, const MlpData[float]& val,
                             const OptimizerConfig& opt, const ScheduleConfig& sched,
                             const ReduceOnPlateauConfig& plateau, const MlpFitConfig& cfg,
                             MlpFitState& state, double* loss_curve, double* val_scores,
                             const MlpCallbacks& callbacks) nogil
    double mlp_loss_grad_f64(const MlpShape& shape, dgemm_fn gemm, const double* params,
                             const MlpData[double]& d, double alpha, double* grad) nogil
    double mlp_loss_grad_f32(const MlpShape& shape, sgemm_fn gemm, const float* params,
                             const MlpData[float]& d, double alpha, float* grad) nogil
    void mlp_predict_f64(const MlpShape& shape, dgemm_fn gemm, const double* params,
                         const MlpData[double]& d, double* out) nogil
    void mlp_predict_f32(const MlpShape& shape, sgemm_fn gemm, const float* params,
                         const MlpData[float]& d, float* out) nogil


cdef void _print_epoch(void* context, int epoch, double loss, double score) noexcept nogil:
    # verbose=True: scikit-learn's MLP messages, printed by Python (notebooks see them too)
    with gil:
        print(f"Iteration {epoch}, loss = {loss:.8f}")
        if score == score:
            print(f"Validation score: {score:f}")


class MlpArrays:
    """Arrays of one data set, in the form the loop reads (kept alive during the call).

    X: dense C-contiguous (n, d) array, or a CSR matrix. Y: (n, k) targets (regression, binary,
    multilabel) or None; labels: int32 class indices (softmax) or None.
    """

    def __init__(self, X, Y=None, labels=None):
        self.n_rows = X.shape[0]
        self.n_features = X.shape[1]
        if hasattr(X, "indptr"):
            self.dense = None
            self.indptr = np.ascontiguousarray(X.indptr, dtype=np.int64)
            self.indices = np.ascontiguousarray(X.indices, dtype=np.int64)
            self.values = np.ascontiguousarray(X.data)
            self.dtype = self.values.dtype
        else:
            self.dense = np.ascontiguousarray(X)
            self.indptr = self.indices = self.values = None
            self.dtype = self.dense.dtype
        self.Y = None if Y is None else np.ascontiguousarray(Y, dtype=self.dtype)
        self.labels = None if labels is None else np.ascontiguousarray(labels, dtype=np.int32)


cdef int _fill_data(MlpData[floating]* d, object arrays, gds_int64 n_features, gds_int64 n_outputs,
                    int loss) except -1:
    cdef const floating[:, ::1] X
    cdef const floating[::1] values
    cdef const gds_int64[::1] indptr, indices
    cdef const floating[:, ::1] Y
    cdef const int[::1] labels
    d.n_rows = arrays.n_rows
    d.X = NULL
    d.indptr = NULL
    d.indices = NULL
    d.values = NULL
    d.Y = NULL
    d.labels = NULL
    if arrays.n_features != n_features:
        raise ValueError(f"data has {arrays.n_features} features, the network expects {n_features}")
    if arrays.dense is not None:
        X = arrays.dense
        if d.n_rows > 0:
            d.X = &X[0, 0]
    else:
        indptr = arrays.indptr
        indices = arrays.indices
        values = arrays.values
        if indptr.shape[0] != d.n_rows + 1:
            raise ValueError("CSR indptr must have n_rows + 1 entries")
        if indices.shape[0] < indptr[d.n_rows] or values.shape[0] < indptr[d.n_rows]:
            raise ValueError("CSR indices/data are shorter than indptr says")
        if indices.shape[0] > 0 and (np.min(arrays.indices) < 0
                                     or np.max(arrays.indices) >= n_features):
            raise ValueError("CSR column index out of range")
        d.indptr = &indptr[0]
        if indices.shape[0] > 0:
            d.indices = &indices[0]
            d.values = &values[0]
    if loss == 4:  # Loss.SOFTMAX
        if arrays.labels is None or arrays.labels.shape[0] != d.n_rows:
            raise ValueError("softmax loss needs one class index per row")
        labels = arrays.labels
        if d.n_rows > 0:
            if np.min(arrays.labels) < 0 or np.max(arrays.labels) >= n_outputs:
                raise ValueError("class index out of range")
            d.labels = &labels[0]
    elif loss >= 0:
        if arrays.Y is None or arrays.Y.shape != (d.n_rows, n_outputs):
            raise ValueError(f"targets must have shape ({d.n_rows}, {n_outputs})")
        Y = arrays.Y
        if d.n_rows > 0:
            d.Y = &Y[0, 0]
    return 0


cdef MlpShape _shape(gds_int64[::1] units, int activation, int loss) except *:
    cdef MlpShape s
    if units.shape[0] < 2 or np.min(np.asarray(units)) < 1:
        raise ValueError("units must list at least the input and output sizes, all >= 1")
    if loss not in (0, 3, 4):
        raise ValueError("loss must be SQUARED (0), LOG (3) or SOFTMAX (4)")
    if activation not in (0, 1, 2, 3):
        raise ValueError("activation code must be 0..3")
    s.n_layers = units.shape[0] - 1
    s.units = &units[0]
    s.activation = activation
    s.loss = loss
    return s


def n_params(units):
    """Length of the flat parameter vector for layer sizes `units`."""
    sizes = [int(u) for u in units]
    total = 0
    for i in range(len(sizes) - 1):
        total += sizes[i] * sizes[i + 1] + sizes[i + 1]
    return total


def _check_params(const floating[::1] p, Py_ssize_t n, what):
    if p.shape[0] != n:
        raise ValueError(f"{what} has {p.shape[0]} elements, the network has {n} parameters")


def team_size(int n_threads, gds_int64 batch_size):
    """Threads that will share each batch of `batch_size` rows when `n_threads` are offered
    (1: the batch runs on the calling thread, with BLAS's own threads)."""
    return mlp_team_size(n_threads, batch_size)


def fit(units, int activation, int loss, floating[::1] params, floating[::1] slot0,
        floating[::1] slot1, floating[::1] slot2, floating[::1] best_params, train, val,
        dict optimizer, dict schedule, dict plateau, dict config, dict state,
        double[::1] loss_curve, double[::1] val_scores):
    """Train in place for config["max_epochs"] epochs; returns (status, epochs_run, stop_epoch).

    params/slots/best_params: flat float arrays (see mlp_loop.h MlpLayout). `train`/`val` are
    MlpArrays (val with 0 rows: no early stopping). `state` (dict of MlpFitState fields) is read
    and updated. loss_curve / val_scores receive one value per completed epoch.
    """
    cdef gds_int64[::1] units_v = np.ascontiguousarray(units, dtype=np.int64)
    cdef MlpShape shape = _shape(units_v, activation, loss)
    cdef Py_ssize_t n = n_params(units_v)
    cdef MlpData[floating] train_d, val_d
    cdef OptimizerConfig opt = optimizer_config_from_dict(optimizer)
    cdef ScheduleConfig sched = schedule_config_from_dict(schedule)
    cdef ReduceOnPlateauConfig pc
    cdef MlpFitConfig cfg
    cdef MlpFitState st
    cdef MlpFitResult res
    cdef MlpCallbacks callbacks
    callbacks.interrupt = check_signals_for_loop
    callbacks.interrupt_context = NULL
    callbacks.epoch = _print_epoch
    callbacks.epoch_context = NULL
    for arr, what in ((params, "params"), (slot0, "slot0"), (slot1, "slot1"), (slot2, "slot2"),
                      (best_params, "best_params")):
        _check_params(arr, n, what)
    if train.dtype != np.asarray(params).dtype or (val.n_rows > 0
                                                   and val.dtype != np.asarray(params).dtype):
        raise ValueError("data and parameters must have the same dtype")
    if train.n_rows < 1:
        raise ValueError("the training set is empty")
    if (train.dense is None) != (val.dense is None) and val.n_rows > 0:
        raise ValueError("training and validation data must both be dense or both CSR")
    _fill_data(&train_d, train, units_v[0], units_v[units_v.shape[0] - 1], loss)
    _fill_data(&val_d, val, units_v[0], units_v[units_v.shape[0] - 1], loss)
    max_epochs = int(config["max_epochs"])
    if loss_curve.shape[0] < max_epochs or val_scores.shape[0] < max_epochs:
        raise ValueError("loss_curve and val_scores need max_epochs entries")

    pc = plateau_config_from_dict(plateau)

    cfg.batch_size = int(config["batch_size"])
    cfg.max_epochs = max_epochs
    cfg.alpha = float(config["alpha"])
    cfg.tol = float(config["tol"])
    cfg.n_iter_no_change = int(config["n_iter_no_change"])
    cfg.check_stopping = int(bool(config["check_stopping"]))
    cfg.shuffle = int(bool(config["shuffle"]))
    cfg.seed = int(config["seed"]) & 0xFFFFFFFFFFFFFFFF
    cfg.clip_code = int(config.get("clip_code", 0))
    cfg.clip_limit = float(config.get("clip_limit", 0.0))
    cfg.verbose = int(bool(config.get("verbose", False)))
    cfg.n_threads = int(config.get("n_threads", 1))

    st.optimizer_step = int(state["optimizer_step"])
    st.mu_product = float(state["mu_product"])
    st.samples_seen = int(state["samples_seen"])
    st.lr_scale = float(state["lr_scale"])
    st.best_objective = float(state["best_objective"])
    st.no_improvement = int(state["no_improvement"])
    st.plateau_best = float(state["plateau_best"])
    st.plateau_bad_epochs = int(state["plateau_bad_epochs"])
    st.plateau_cooldown = int(state["plateau_cooldown"])
    st.plateau_lr = float(state["plateau_lr"])

    if floating is double:
        with nogil:
            res = mlp_fit_f64(shape, <dgemm_fn>dgemm, &params[0], &slot0[0], &slot1[0],
                              &slot2[0], &best_params[0], train_d, val_d, opt, sched, pc, cfg,
                              st, &loss_curve[0], &val_scores[0], callbacks)
    else:
        with nogil:
            res = mlp_fit_f32(shape, <sgemm_fn>sgemm, &params[0], &slot0[0], &slot1[0],
                              &slot2[0], &best_params[0], train_d, val_d, opt, sched, pc, cfg,
                              st, &loss_curve[0], &val_scores[0], callbacks)

    state.update(
        optimizer_step=st.optimizer_step, mu_product=st.mu_product,
        samples_seen=st.samples_seen, lr_scale=st.lr_scale, best_objective=st.best_objective,
        no_improvement=st.no_improvement, plateau_best=st.plateau_best,
        plateau_bad_epochs=st.plateau_bad_epochs, plateau_cooldown=st.plateau_cooldown,
        plateau_lr=st.plateau_lr,
    )
    return res.status, res.epochs_run, res.stop_epoch


def loss_grad(units, int activation, int loss, const floating[::1] params, data, double alpha):
    """(objective, flat gradient) over all rows of `data` (MlpArrays) as one batch."""
    cdef gds_int64[::1] units_v = np.ascontiguousarray(units, dtype=np.int64)
    cdef MlpShape shape = _shape(units_v, activation, loss)
    cdef MlpData[floating] d
    cdef double value
    _check_params(params, n_params(units_v), "params")
    if data.dtype != np.asarray(params).dtype:
        raise ValueError("data and parameters must have the same dtype")
    if data.n_rows < 1:
        raise ValueError("data is empty")
    _fill_data(&d, data, units_v[0], units_v[units_v.shape[0] - 1], loss)
    grad = np.empty_like(np.asarray(params))
    cdef floating[::1] g = grad
    if floating is double:
        with nogil:
            value = mlp_loss_grad_f64(shape, <dgemm_fn>dgemm, &params[0], d, alpha, &g[0])
    else:
        with nogil:
            value = mlp_loss_grad_f32(shape, <sgemm_fn>sgemm, &params[0], d, alpha, &g[0])
    return value, grad


def predict(units, int activation, int loss, const floating[::1] params, data):
    """Network output for every row of `data` (MlpArrays): (n_rows, n_outputs); probabilities
    for the LOG / SOFTMAX losses."""
    cdef gds_int64[::1] units_v = np.ascontiguousarray(units, dtype=np.int64)
    cdef MlpShape shape = _shape(units_v, activation, loss)
    cdef MlpData[floating] d
    cdef gds_int64 k = units_v[units_v.shape[0] - 1]
    _check_params(params, n_params(units_v), "params")
    if data.dtype != np.asarray(params).dtype:
        raise ValueError("data and parameters must have the same dtype")
    out = np.empty((data.n_rows, k), dtype=np.asarray(params).dtype)
    if data.n_rows == 0:
        return out
    # predictions need no targets: fill X only (a dummy loss code that reads none)
    _fill_data(&d, data, units_v[0], k, -1)
    cdef floating[:, ::1] o = out
    if floating is double:
        with nogil:
            mlp_predict_f64(shape, <dgemm_fn>dgemm, &params[0], d, &o[0, 0])
    else:
        with nogil:
            mlp_predict_f32(shape, <sgemm_fn>sgemm, &params[0], d, &o[0, 0])
    return out
