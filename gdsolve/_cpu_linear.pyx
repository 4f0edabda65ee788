# distutils: language = c++
"""Binding of the CPU executor of the linear model (csrc/include/gdsolve/cpu/linear_executor.h).

Design: LinearExecutor checks one fit's arrays once, copies the config records into the C++
setup and holds the C++ executor; the epoch driver (gdsolve.engine.driver) then calls
`run_epoch(state)` once per epoch, which checks the FitState's arrays, points the C++ view at
them and makes ONE call into C++ with the GIL released (taken back only to poll for Ctrl-C,
about every 0.1 s). No math here.
"""

import numpy as np

from gdsolve._codes import Loss
from gdsolve.engine.state import lbfgs_history_size
from gdsolve._codes import Optimizer as OptimizerCode

cimport numpy as cnp
from libc.stdint cimport int32_t, uint32_t
from libcpp.memory cimport unique_ptr

from gdsolve._cdefs cimport (
    EpochRunner, FitSetup, LinearConfig, RowIndex, StateView, check_vector, fill_fit_setup,
    fill_state_view, gds_int64, runner_epoch, runner_score, struct_ptr,
)

cnp.import_array()

ctypedef fused floating:
    float
    double


cdef extern from "gdsolve/cpu/row_pass.h" namespace "gds":
    double row_pass_seconds[T](const T* X, gds_int64 n_rows, gds_int64 n_cols, gds_int64 ld,
                               const uint32_t* order, gds_int64 n, const T* w, int n_threads,
                               double& checksum) nogil


cdef extern from "gdsolve/cpu/linear_executor.h" namespace "gds":
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
        const gds_int64* val_rows
        gds_int64 n_val

    cdef struct LinearSetup:
        LinearConfig model
        FitSetup fit

    cdef cppclass LinearRunner[T](EpochRunner[T]):
        bint gradient(const T* params, const RowIndex* rows, gds_int64 count, double* grad,
                      double& loss_sum) nogil
        int per_sample
        int gathered

    LinearRunner[T]* new_linear_runner[T](const LinearSetup& setup, const LinearData[T]& data,
                                          gds_int64 n_train) except +


def check_rows(rows, Py_ssize_t n_rows, str what):
    """rows as an int64 vector of indices into 0..n_rows-1 (ValueError naming `what`)."""
    rows = check_vector(rows, np.int64, -1, what)
    if rows.shape[0] and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"{what} must index rows 0..{n_rows - 1}")
    return rows


def check_X(X):
    """(X as the executor takes it, dtype, n_rows, n_cols): a C-ordered 2-d float32/float64
    array, or a CSR tuple (data, indices int32, indptr int64, n_cols), checked."""
    if isinstance(X, tuple):
        if len(X) != 4:
            raise ValueError("a CSR matrix is passed as (data, indices, indptr, n_cols)")
        data_arr, indices, indptr, n_cols = X
        dtype = data_arr.dtype if isinstance(data_arr, np.ndarray) else None
        if dtype not in (np.float32, np.float64):
            raise ValueError("CSR data must be float32 or float64")
        check_vector(data_arr, dtype, -1, "CSR data")
        check_vector(indices, np.int32, data_arr.shape[0], "CSR indices")
        check_vector(indptr, np.int64, -1, "CSR indptr")
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
    return X, dtype, n_rows, n_cols


cdef class LinearExecutor:
    """The CPU executor of one linear fit: X (see check_X), targets y (class indices for the
    softmax loss), sample weights (or None), the number of training rows (the FitState's order
    holds which), validation rows (or None), and the config records (gdsolve._structs) of the
    model, optimizer, schedule, driver and threads."""

    cdef unique_ptr[LinearRunner[double]] r64
    cdef unique_ptr[LinearRunner[float]] r32
    cdef readonly object dtype
    cdef readonly Py_ssize_t n_train, n_rows, n_cols, n_outputs
    cdef readonly bint has_validation
    cdef readonly bint averaging, l1_ledger
    cdef readonly Py_ssize_t n_history
    cdef object _keep
    cdef object _checked_order  # the order array whose row indices were checked

    def __init__(self, model, optimizer, schedule, driver, cpu, X, y, sample_weight,
                 Py_ssize_t n_train, val_rows=None, double interrupt_interval=0.1):
        cdef LinearSetup setup
        setup.model = (<LinearConfig*>struct_ptr(model, "LinearConfig", sizeof(LinearConfig)))[0]
        fill_fit_setup(setup.fit, optimizer, schedule, driver, cpu, interrupt_interval)
        X, dtype, n_rows, n_cols = check_X(X)
        K = int(model["n_outputs"][0])
        if K < 1:
            raise ValueError("n_outputs must be >= 1")
        code = int(optimizer["code"][0])
        if code == OptimizerCode.MUON:
            raise ValueError("the linear executor does not run Muon (an MLP rule)")
        if code == OptimizerCode.SOPHIA and int(model["loss"][0]) not in (
                Loss.SQUARED, Loss.LOG, Loss.SOFTMAX):
            raise ValueError("Sophia's Hessian estimate needs the squared, log or softmax loss")
        if int(driver["patience"][0]) < 1:
            raise ValueError("n_iter_no_change must be >= 1")
        y = check_vector(y, dtype, n_rows, "y")
        sample_weight = check_vector(sample_weight, dtype, n_rows, "sample_weight", optional=True)
        if val_rows is not None:
            val_rows = check_rows(val_rows, n_rows, "val_rows")
        if n_train < 1 or n_train > n_rows:
            raise ValueError(f"n_train must be in 1..{n_rows}, got {n_train}")
        if int(model["loss"][0]) == 4:  # softmax: class indices
            if np.any((y < 0) | (y >= K) | (y != np.floor(y))):
                raise ValueError(f"softmax targets must be class indices in 0..{K - 1}")
        self.dtype = dtype
        self.n_train, self.n_rows, self.n_cols, self.n_outputs = n_train, n_rows, n_cols, K
        self.has_validation = val_rows is not None and val_rows.shape[0] > 0
        self.averaging = int(model["average_start"][0]) > 0
        penalty, alpha, l1_ratio = (int(model["penalty"][0]), float(model["alpha"][0]),
                                    float(model["l1_ratio"][0]))
        self.l1_ledger = penalty in (2, 3) and alpha * (l1_ratio if penalty == 3 else 1.0) > 0
        self.n_history = lbfgs_history_size(model, n_cols)
        self._keep = (X, y, sample_weight, val_rows)
        if dtype == np.float64:
            self._build[double](setup, X, y, sample_weight, val_rows, 0.0)
        else:
            self._build[float](setup, X, y, sample_weight, val_rows, 0.0)

    cdef _build(self, LinearSetup& setup, X, y, sample_weight, val_rows, floating sample):
        cdef LinearData[floating] data
        cdef const floating[:, :] Xv
        cdef const floating[::1] dv
        cdef const int32_t[::1] iv
        cdef const gds_int64[::1] pv
        cdef const floating[::1] yv = y
        cdef const floating[::1] wv
        cdef const gds_int64[::1] vv
        data.sparse = 1 if isinstance(X, tuple) else 0
        data.X = NULL
        data.data = NULL
        data.indices = NULL
        data.indptr = NULL
        data.ld = 0
        if data.sparse:
            dv = X[0]
            iv = X[1]
            pv = X[2]
            if dv.shape[0]:
                data.data = &dv[0]
                data.indices = &iv[0]
            data.indptr = &pv[0]
        else:
            Xv = X
            data.X = &Xv[0, 0]
            data.ld = X.strides[0] // X.itemsize
        data.n_rows = self.n_rows
        data.n_cols = self.n_cols
        data.y = &yv[0]
        data.sample_weight = NULL
        if sample_weight is not None:
            wv = sample_weight
            data.sample_weight = &wv[0]
        data.val_rows = NULL
        data.n_val = 0
        if val_rows is not None and val_rows.shape[0] > 0:
            vv = val_rows
            data.val_rows = &vv[0]
            data.n_val = val_rows.shape[0]
        if floating is double:
            self.r64.reset(new_linear_runner[double](setup, data, self.n_train))
        else:
            self.r32.reset(new_linear_runner[float](setup, data, self.n_train))

    @property
    def per_sample(self):
        """Whether the scikit-learn per-sample path runs."""
        if self.dtype == np.float64:
            return bool(self.r64.get().per_sample)
        return bool(self.r32.get().per_sample)

    @property
    def gathered(self):
        """Whether a helper thread gathers the shuffled rows (per-sample, large data)."""
        if self.dtype == np.float64:
            return bool(self.r64.get().gathered)
        return bool(self.r32.get().gathered)

    cdef int _view(self, StateView[floating]& v, state, floating sample) except -1:
        n_all = self.n_outputs * self.n_cols + self.n_outputs
        order = fill_state_view(v, state, self.dtype, n_all, self.n_train,
                                n_all if self.averaging else 0,
                                self.n_outputs * self.n_cols if self.l1_ledger else 0, sample,
                                self.n_history)
        if order is not self._checked_order:  # executors shuffle it in place: check it once
            if order.shape[0] and order.max() >= self.n_rows:
                raise ValueError(f"state.order (the train_rows) must index rows "
                                 f"0..{self.n_rows - 1}")
            self._checked_order = order
        return 0

    def run_epoch(self, state):
        """Train one epoch from `state` (a gdsolve.engine.FitState, updated in place when the
        epoch completes). Returns (gds::FitStatus: MAX_ITER when it ran, DIVERGED or
        INTERRUPTED when it did not, the state then unchanged; the epoch's objective)."""
        cdef StateView[double] v64
        cdef StateView[float] v32
        if self.dtype == np.float64:
            self._view[double](v64, state, 0.0)
            return runner_epoch[double](self.r64.get(), v64)
        self._view[float](v32, state, 0.0)
        return runner_epoch[float](self.r32.get(), v32)

    def score(self, state):
        """Validation score at the state's model (the averaged one when averaging)."""
        cdef StateView[double] v64
        cdef StateView[float] v32
        if not self.has_validation:
            return np.nan
        if self.dtype == np.float64:
            self._view[double](v64, state, 0.0)
            return runner_score[double](self.r64.get(), v64)
        self._view[float](v32, state, 0.0)
        return runner_score[float](self.r32.get(), v32)

    def gradient(self, params, rows):
        """(loss sum, summed gradient (K*d + K, float64)) of the given rows (uint32 indices
        into X) at `params`, shared by the thread team: the gradient of a block of rows."""
        n_all = self.n_outputs * self.n_cols + self.n_outputs
        params = check_vector(params, self.dtype, n_all, "params")
        rows = check_vector(rows, np.uint32, -1, "rows")
        if rows.shape[0] < 1:
            raise ValueError("rows must not be empty")
        if rows.max() >= self.n_rows:
            raise ValueError(f"rows must index rows 0..{self.n_rows - 1}")
        grad = np.zeros(n_all)
        cdef double[::1] gv = grad
        cdef const uint32_t[::1] rv = rows
        cdef const double[::1] p64
        cdef const float[::1] p32
        cdef double loss_sum = 0.0
        cdef bint done
        if self.dtype == np.float64:
            p64 = params
            with nogil:
                done = self.r64.get().gradient(&p64[0], &rv[0], rv.shape[0], &gv[0], loss_sum)
        else:
            p32 = params
            with nogil:
                done = self.r32.get().gradient(&p32[0], &rv[0], rv.shape[0], &gv[0], loss_sum)
        if not done:
            raise KeyboardInterrupt
        return loss_sum, grad


def row_pass(const floating[:, ::1] X, order, int n_threads=1):
    """Benchmark floor: (seconds, checksum) of one pass over X's rows in `order`, a dot product
    per row against fixed weights, shared by n_threads (csrc/include/gdsolve/cpu/row_pass.h)."""
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
