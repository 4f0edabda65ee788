# distutils: language = c++
"""Binding of the compiled linear training loop (csrc/include/gdsolve/linear_loop.h).

Called by gdsolve.linear_model once per fit / partial_fit (once per class for one-vs-rest): checks
the arrays, fills the C++ config and state structs, and makes ONE call into C++ with the GIL
released. The loop takes the GIL only to poll for Ctrl-C (~every 0.1 s) and for verbose printing
once per epoch.
"""

import sys
import traceback

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, uint32_t, uint64_t

from gdsolve._cdefs cimport (
    OptimizerConfig, ScheduleConfig, ReduceOnPlateauConfig, check_signals_for_loop,
    optimizer_config_from_dict,
    plateau_config_from_dict,
    schedule_config_from_dict, gds_int64,
)

cnp.import_array()

ctypedef fused floating:
    float
    double


cdef extern from "gdsolve/row_pass.h" namespace "gds":
    double row_pass_seconds[T](const T* X, gds_int64 n_rows, gds_int64 n_cols, gds_int64 ld,
                               const uint32_t* order, gds_int64 n, const T* w, int n_threads,
                               double& checksum) nogil


cdef extern from "gdsolve/linear_loop.h" namespace "gds":
    ctypedef int (*InterruptCallback)(void* context) noexcept nogil
    ctypedef void (*EpochCallback)(void* context, int epoch, double objective, double score,
                                   double lr, double seconds) noexcept nogil

    cdef struct LinearConfig:
        int loss
        double loss_param
        int n_outputs
        int fit_intercept
        int penalty
        double alpha
        double l1_ratio
        OptimizerConfig optimizer
        ScheduleConfig schedule
        int plateau_mode
        ReduceOnPlateauConfig plateau
        gds_int64 batch_size
        int max_iter
        int use_tol
        double tol
        int n_iter_no_change
        int shuffle
        uint64_t seed
        gds_int64 average_start
        int clip
        double clip_limit
        int n_threads
        int gather_rows

    cdef cppclass LinearData[T]:
        int sparse
        const T* X
        gds_int64 ld
        const T* data
        const int32_t* indices
        const gds_int64* indptr
        gds_int64 n_rows
        gds_int64 n_cols
        const T* y
        const T* sample_weight
        const gds_int64* train_rows
        gds_int64 n_train
        const gds_int64* val_rows
        gds_int64 n_val

    cdef cppclass LinearState[T]:
        T* params
        T* avg_params
        gds_int64 avg_count
        T* slot0
        T* slot1
        T* slot2
        gds_int64 opt_step
        double opt_mu_product
        T* l1_q
        double l1_u
        double t
        gds_int64 step

    cdef struct LinearCallbacks:
        InterruptCallback interrupt
        void* interrupt_context
        double interrupt_interval
        EpochCallback epoch
        void* epoch_context

    cdef struct LinearReport:
        int status
        int n_epochs
        int stop_epoch
        double* loss_curve
        double* val_scores
        double seconds
        int used_per_sample
        int used_gather

    int fit_linear_f64(const LinearConfig& cfg, const LinearData[double]& data,
                       LinearState[double]& st, LinearReport& rep,
                       const LinearCallbacks& cb) nogil
    int fit_linear_f32(const LinearConfig& cfg, const LinearData[float]& data,
                       LinearState[float]& st, LinearReport& rep,
                       const LinearCallbacks& cb) nogil


cdef void _epoch_callback(void* context, int epoch, double objective, double score, double lr,
                          double seconds) noexcept nogil:
    with gil:
        try:
            (<object>context)(epoch, objective, score, lr, seconds)
        except Exception:  # printing must never break a fit
            traceback.print_exc(file=sys.stderr)


STATE_ARRAYS = ("params", "avg_params", "slot0", "slot1", "slot2", "l1_q")
STATE_SCALARS = ("avg_count", "opt_step", "opt_mu_product", "l1_u", "t", "step")


def new_state(n_outputs, n_features, dtype, average=False, l1=False):
    """Fresh state dict for a K x d model: zero weights, t = 1, no optimizer history."""
    n_all = n_outputs * n_features + n_outputs
    z = lambda n: np.zeros(n, dtype=dtype)  # noqa: E731
    return {
        "params": z(n_all),
        "avg_params": z(n_all) if average else None,
        "slot0": z(n_all),
        "slot1": z(n_all),
        "slot2": z(n_all),
        "l1_q": z(n_outputs * n_features) if l1 else None,
        "avg_count": 0,
        "opt_step": 0,
        "opt_mu_product": 1.0,
        "l1_u": 0.0,
        "t": 1.0,
        "step": 0,
    }


def copy_state(dict state):
    """Deep copy: the loop writes into the arrays, the estimator keeps its own until success."""
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}


cdef object _vector(object a, object dtype, Py_ssize_t n, str what, bint optional=False):
    if a is None:
        if optional:
            return None
        raise ValueError(f"{what} is required")
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.ndim != 1:
        raise ValueError(f"{what} must be a 1-d {np.dtype(dtype).name} array")
    if not a.flags.c_contiguous:
        raise ValueError(f"{what} must be contiguous")
    if n >= 0 and a.shape[0] != n:
        raise ValueError(f"{what} has {a.shape[0]} elements, expected {n}")
    return a


cdef object _rows(object rows, Py_ssize_t n_rows, str what):
    rows = _vector(rows, np.int64, -1, what)
    if rows.shape[0] and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"{what} must index rows 0..{n_rows - 1}")
    return rows


cdef LinearConfig _config(dict c) except *:
    cdef LinearConfig cfg
    cfg.loss = int(c["loss"])
    cfg.loss_param = float(c.get("loss_param", 0.1))
    cfg.n_outputs = int(c["n_outputs"])
    cfg.fit_intercept = int(bool(c.get("fit_intercept", True)))
    cfg.penalty = int(c.get("penalty", 0))
    cfg.alpha = float(c.get("alpha", 0.0))
    cfg.l1_ratio = float(c.get("l1_ratio", 0.0))
    cfg.optimizer = optimizer_config_from_dict(c["optimizer"])
    cfg.schedule = schedule_config_from_dict(c["schedule"])
    cfg.plateau_mode = int(c.get("plateau_mode", 0))
    cfg.plateau = plateau_config_from_dict(c.get("plateau") or {})
    cfg.batch_size = int(c.get("batch_size", 1))
    cfg.max_iter = int(c["max_iter"])
    tol = c.get("tol")
    cfg.use_tol = int(tol is not None)
    cfg.tol = float(tol) if tol is not None else 0.0
    cfg.n_iter_no_change = int(c.get("n_iter_no_change", 5))
    cfg.shuffle = int(bool(c.get("shuffle", True)))
    cfg.seed = <uint64_t>(int(c.get("seed", 0)) & 0xFFFFFFFFFFFFFFFF)
    cfg.average_start = int(c.get("average_start", 0))
    cfg.clip = int(c.get("clip", 0))
    cfg.clip_limit = float(c.get("clip_limit", 0.0))
    cfg.n_threads = int(c.get("n_threads", 1))
    cfg.gather_rows = int(c.get("gather_rows", -1))
    if cfg.n_outputs < 1 or cfg.max_iter < 1 or cfg.n_iter_no_change < 1:
        raise ValueError("n_outputs, max_iter and n_iter_no_change must be >= 1")
    return cfg


cdef floating* _ptr(object a, floating sample) except? NULL:
    cdef floating[::1] view
    if a is None or a.shape[0] == 0:
        return NULL
    view = a
    return &view[0]


cdef dict _run(LinearConfig cfg, object X, bint sparse, object dtype, object y,
               object sample_weight, object train_rows, object val_rows, dict state,
               object loss_curve, object val_scores, object verbose, double interrupt_interval,
               floating sample):
    cdef LinearData[floating] data
    cdef LinearState[floating] st
    cdef LinearReport rep
    cdef LinearCallbacks cb
    cdef int status
    cdef const floating[:, :] Xv
    cdef const floating[::1] dv
    cdef const int32_t[::1] iv
    cdef const gds_int64[::1] pv
    cdef const floating[::1] yv = y
    cdef const floating[::1] wv
    cdef const gds_int64[::1] trv = train_rows
    cdef const gds_int64[::1] vav
    cdef double[::1] lc = loss_curve
    cdef double[::1] vs = val_scores
    cdef Py_ssize_t n_rows, n_cols
    cdef Py_ssize_t K = cfg.n_outputs

    data.sparse = 1 if sparse else 0
    data.X = NULL
    data.data = NULL
    data.indices = NULL
    data.indptr = NULL
    data.ld = 0
    if sparse:
        dv = X[0]
        iv = X[1]
        pv = X[2]
        n_rows = X[2].shape[0] - 1
        n_cols = X[3]
        if dv.shape[0]:
            data.data = &dv[0]
            data.indices = &iv[0]
        data.indptr = &pv[0]
    else:
        Xv = X
        n_rows = X.shape[0]
        n_cols = X.shape[1]
        data.X = &Xv[0, 0]
        data.ld = X.strides[0] // X.itemsize
    data.n_rows = n_rows
    data.n_cols = n_cols
    data.y = &yv[0]
    data.sample_weight = NULL
    if sample_weight is not None:
        wv = sample_weight
        data.sample_weight = &wv[0]
    data.train_rows = &trv[0]
    data.n_train = train_rows.shape[0]
    data.val_rows = NULL
    data.n_val = 0
    if val_rows is not None and val_rows.shape[0] > 0:
        vav = val_rows
        data.val_rows = &vav[0]
        data.n_val = val_rows.shape[0]

    st.params = _ptr(state["params"], sample)
    st.avg_params = _ptr(state["avg_params"], sample)
    st.slot0 = _ptr(state["slot0"], sample)
    st.slot1 = _ptr(state["slot1"], sample)
    st.slot2 = _ptr(state["slot2"], sample)
    st.l1_q = _ptr(state["l1_q"], sample)
    st.avg_count = int(state["avg_count"])
    st.opt_step = int(state["opt_step"])
    st.opt_mu_product = float(state["opt_mu_product"])
    st.l1_u = float(state["l1_u"])
    st.t = float(state["t"])
    st.step = int(state["step"])

    rep.loss_curve = &lc[0]
    rep.val_scores = &vs[0]
    cb.interrupt = check_signals_for_loop
    cb.interrupt_context = NULL
    cb.interrupt_interval = interrupt_interval
    cb.epoch = NULL
    cb.epoch_context = NULL
    if verbose is not None:
        cb.epoch = _epoch_callback
        cb.epoch_context = <void*>verbose

    with nogil:
        if floating is double:
            status = fit_linear_f64(cfg, data, st, rep, cb)
        else:
            status = fit_linear_f32(cfg, data, st, rep, cb)

    if status != 2:  # not diverged: the loop wrote the new state
        state["avg_count"] = st.avg_count
        state["opt_step"] = st.opt_step
        state["opt_mu_product"] = st.opt_mu_product
        state["l1_u"] = st.l1_u
        state["t"] = st.t
        state["step"] = st.step
    return {
        "status": status,
        "n_epochs": rep.n_epochs,
        "stop_epoch": rep.stop_epoch,
        "seconds": rep.seconds,
        "per_sample": bool(rep.used_per_sample),
        "gathered": bool(rep.used_gather),
    }


def fit(dict config, X, y, sample_weight, train_rows, val_rows, dict state, verbose=None,
        double interrupt_interval=0.1):
    """Run the compiled loop once. Updates `state` (see new_state) in place unless the fit
    diverged; returns a dict with status (gds::FitStatus), n_epochs, stop_epoch, seconds,
    per_sample, loss_curve and val_scores (one value per completed epoch).

    X: a C-ordered (row-major) 2-d float32/float64 array, or a tuple (data, indices (int32),
    indptr (int64), n_cols) of a CSR matrix. y, sample_weight (or None): X's dtype; for the
    softmax loss y holds class indices 0..K-1. train_rows / val_rows (or None): int64 row indices.
    `verbose`: None or a callable(epoch, objective, score, lr, seconds) called once per epoch.
    """
    cdef LinearConfig cfg = _config(config)
    sparse = isinstance(X, tuple)
    if sparse:
        if len(X) != 4:
            raise ValueError("a CSR matrix is passed as (data, indices, indptr, n_cols)")
        data_arr, indices, indptr, n_cols = X
        dtype = data_arr.dtype if isinstance(data_arr, np.ndarray) else None
        if dtype not in (np.float32, np.float64):
            raise ValueError("CSR data must be float32 or float64")
        _vector(data_arr, dtype, -1, "CSR data")
        _vector(indices, np.int32, data_arr.shape[0], "CSR indices")
        _vector(indptr, np.int64, -1, "CSR indptr")
        n_rows = indptr.shape[0] - 1
        n_cols = int(n_cols)
        if n_rows < 1 or indptr[0] != 0 or indptr[n_rows] != data_arr.shape[0]:
            raise ValueError("CSR indptr must start at 0 and end at nnz")
        if np.any(np.diff(indptr) < 0):
            raise ValueError("CSR indptr must be non-decreasing")
        if indices.shape[0] and (indices.min() < 0 or indices.max() >= n_cols):
            raise ValueError(f"CSR column indices must lie in 0..{n_cols - 1}")
        X = (data_arr, indices, indptr, n_cols)
    else:
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype not in (np.float32,
                                                                           np.float64):
            raise ValueError("X must be a 2-d float32 or float64 array (or a CSR tuple)")
        if X.shape[0] < 1 or X.shape[1] < 1:
            raise ValueError(f"X must have at least one row and column, got shape {X.shape}")
        if X.strides[1] != X.itemsize or X.strides[0] < X.shape[1] * X.itemsize:
            raise ValueError("X must be row-major (C-ordered rows)")
        dtype = X.dtype
        n_rows, n_cols = X.shape
    if n_rows >= 2 ** 32:
        raise ValueError("the compiled loop indexes rows with 32 bits: at most 2**32 - 1 rows")
    K = cfg.n_outputs
    y = _vector(y, dtype, n_rows, "y")
    sample_weight = _vector(sample_weight, dtype, n_rows, "sample_weight", optional=True)
    train_rows = _rows(train_rows, n_rows, "train_rows")
    if train_rows.shape[0] < 1:
        raise ValueError("train_rows must not be empty")
    if val_rows is not None:
        val_rows = _rows(val_rows, n_rows, "val_rows")
    if cfg.loss == 4:  # softmax: class indices
        if np.any((y < 0) | (y >= K) | (y != np.floor(y))):
            raise ValueError(f"softmax targets must be class indices in 0..{K - 1}")
    n_all = K * n_cols + K
    for name in ("params", "slot0", "slot1", "slot2"):
        _vector(state[name], dtype, n_all, f"state[{name!r}]")
    if cfg.average_start > 0:
        _vector(state["avg_params"], dtype, n_all, "state['avg_params']")
    else:
        state["avg_params"] = None
    if cfg.penalty in (2, 3) and cfg.alpha * (cfg.l1_ratio if cfg.penalty == 3 else 1.0) > 0:
        if state.get("l1_q") is None:
            state["l1_q"] = np.zeros(K * n_cols, dtype=dtype)
        _vector(state["l1_q"], dtype, K * n_cols, "state['l1_q']")
    loss_curve = np.full(cfg.max_iter, np.nan)
    val_scores = np.full(cfg.max_iter, np.nan)
    if dtype == np.float64:
        out = _run[double](cfg, X, sparse, dtype, y, sample_weight, train_rows, val_rows,
                           state, loss_curve, val_scores, verbose, interrupt_interval, 0.0)
    else:
        out = _run[float](cfg, X, sparse, dtype, y, sample_weight, train_rows, val_rows,
                          state, loss_curve, val_scores, verbose, interrupt_interval, 0.0)
    n = out["n_epochs"]
    out["loss_curve"] = loss_curve[:n].copy()
    out["val_scores"] = val_scores[:n].copy() if val_rows is not None else np.empty(0)
    return out


def row_pass(const floating[:, ::1] X, order, int n_threads=1):
    """Benchmark floor: (seconds, checksum) of one pass over X's rows in `order`, a dot product
    per row against fixed weights, shared by n_threads (csrc/include/gdsolve/row_pass.h)."""
    cdef const uint32_t[::1] order_v = np.ascontiguousarray(order, dtype=np.uint32)
    if order_v.shape[0] and (np.asarray(order_v).max() >= X.shape[0]):
        raise ValueError("order holds a row index beyond X")
    w_arr = np.ones(X.shape[1], dtype=np.float64 if floating is double else np.float32)
    cdef const floating[::1] w = w_arr
    cdef double checksum = 0.0, seconds
    with nogil:
        seconds = row_pass_seconds(&X[0, 0], X.shape[0], X.shape[1], X.shape[1], &order_v[0],
                                   order_v.shape[0], &w[0], n_threads, checksum)
    return seconds, checksum
