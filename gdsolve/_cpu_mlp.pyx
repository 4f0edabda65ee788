# distutils: language = c++
"""Binding of the CPU executor of the dense MLPs (csrc/include/gdsolve/cpu/mlp_executor.h) for
gdsolve.neural_network.

Design: MlpExecutor checks one fit's arrays once, copies the config records into the C++ setup,
hands over scipy's BLAS gemm as a function pointer and holds the C++ executor; the epoch driver
(gdsolve.engine.driver) calls `run_epoch(state)` once per epoch: ONE nogil call. loss_grad and
predict are one nogil call each. No math here.
"""

import numpy as np

from gdsolve._codes import Optimizer as OptimizerCode

cimport numpy as cnp
from libc.stdint cimport int32_t, uint32_t
from libcpp.memory cimport unique_ptr
from scipy.linalg.cython_blas cimport dgemm, sgemm

from gdsolve._cdefs cimport (
    EpochRunner, FitSetup, MlpConfig, RowIndex, StateView, fill_fit_setup, fill_state_view,
    gds_int64, runner_epoch, runner_score, struct_ptr,
)

cnp.import_array()

ctypedef fused floating:
    float
    double

ctypedef void (*dgemm_fn)(char*, char*, int*, int*, int*, double*, double*, int*, double*, int*,
                          double*, double*, int*) noexcept nogil
ctypedef void (*sgemm_fn)(char*, char*, int*, int*, int*, float*, float*, int*, float*, int*,
                          float*, float*, int*) noexcept nogil

cdef extern from "gdsolve/cpu/mlp_executor.h" namespace "gds":
    cdef struct MlpShape:
        int n_layers
        const gds_int64* units
        int activation
        int loss
    cdef cppclass MlpData[T]:
        gds_int64 n_rows
        const T* X
        const gds_int64* indptr
        const int32_t* indices
        const T* values
        const T* Y
        const int* labels
    cdef struct MlpSetup:
        MlpShape shape
        MlpConfig model
        FitSetup fit
    cdef cppclass MlpRunner[T](EpochRunner[T]):
        double gradient(const T* params, const RowIndex* rows, gds_int64 count, double scale,
                        T* grad) nogil
        int members
    cdef cppclass MlpCpuRunner[T](MlpRunner[T]):
        MlpCpuRunner(const MlpSetup& setup, dgemm_fn gemm, const MlpData[T]& train,
                     const MlpData[T]& val) except +
        MlpCpuRunner(const MlpSetup& setup, sgemm_fn gemm, const MlpData[T]& train,
                     const MlpData[T]& val) except +
    int mlp_team_size(int n_threads, gds_int64 batch_size)
    double mlp_loss_grad_entry(const MlpShape& shape, dgemm_fn gemm, const double* params,
                               const MlpData[double]& d, double alpha, double* grad) nogil
    double mlp_loss_grad_entry(const MlpShape& shape, sgemm_fn gemm, const float* params,
                               const MlpData[float]& d, double alpha, float* grad) nogil
    void mlp_predict_entry(const MlpShape& shape, dgemm_fn gemm, const double* params,
                           const MlpData[double]& d, double* out) nogil
    void mlp_predict_entry(const MlpShape& shape, sgemm_fn gemm, const float* params,
                           const MlpData[float]& d, float* out) nogil


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
            self.indices = np.ascontiguousarray(X.indices, dtype=np.int32)
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
    cdef const gds_int64[::1] indptr
    cdef const int32_t[::1] indices
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


def _check_rule(optimizer, companion):
    code = int(optimizer["code"][0])
    if code == OptimizerCode.MUON:  # an elementwise companion for what is not a hidden matrix
        if companion is None:
            raise ValueError("Muon needs a companion OptimizerConfig record")
        if int(companion["code"][0]) in (OptimizerCode.MUON, OptimizerCode.SOPHIA):
            raise ValueError("Muon's companion must be an elementwise rule (not Muon or Sophia)")
    if code == OptimizerCode.SOPHIA and int(optimizer["hessian_estimator"][0]) != 0:
        raise ValueError("the MLP runs Sophia with the GNB estimator only (hessian_estimator 0)")


cdef class MlpExecutor:
    """The CPU executor of one MLP fit: layer sizes `units` (n_features, hidden..., n_outputs),
    the training and validation data (MlpArrays; validation with 0 rows: none) and the config
    records (gdsolve._structs) of the network, optimizer, schedule, driver and threads;
    `companion`: Muon's companion rule (an OptimizerConfig record; required with Muon)."""

    cdef unique_ptr[MlpCpuRunner[double]] r64
    cdef unique_ptr[MlpCpuRunner[float]] r32
    cdef readonly object dtype
    cdef readonly Py_ssize_t n_params, n_train
    cdef readonly bint has_validation
    cdef object _keep

    def __init__(self, units, model, optimizer, schedule, driver, cpu, train, val,
                 companion=None):
        cdef gds_int64[::1] units_v = np.ascontiguousarray(units, dtype=np.int64)
        cdef MlpSetup setup
        setup.shape = _shape(units_v, int(model["activation"][0]), int(model["loss"][0]))
        setup.model = (<MlpConfig*>struct_ptr(model, "MlpConfig", sizeof(MlpConfig)))[0]
        _check_rule(optimizer, companion)
        fill_fit_setup(setup.fit, optimizer, schedule, driver, cpu, 0.1, companion)
        if train.n_rows < 1:
            raise ValueError("the training set is empty")
        if val.n_rows > 0 and val.dtype != train.dtype:
            raise ValueError("training and validation data must have the same dtype")
        if (train.dense is None) != (val.dense is None) and val.n_rows > 0:
            raise ValueError("training and validation data must both be dense or both CSR")
        self.dtype = train.dtype
        self.n_params = n_params(units_v)
        self.n_train = train.n_rows
        self.has_validation = val.n_rows > 0
        self._keep = (units_v, train, val)
        if self.dtype == np.float64:
            self._build[double](setup, units_v, train, val, 0.0)
        else:
            self._build[float](setup, units_v, train, val, 0.0)

    cdef _build(self, MlpSetup& setup, gds_int64[::1] units_v, train, val, floating sample):
        cdef MlpData[floating] train_d, val_d
        loss = setup.shape.loss
        _fill_data(&train_d, train, units_v[0], units_v[units_v.shape[0] - 1], loss)
        _fill_data(&val_d, val, units_v[0], units_v[units_v.shape[0] - 1], loss)
        if floating is double:
            self.r64.reset(new MlpCpuRunner[double](setup, <dgemm_fn>dgemm, train_d, val_d))
        else:
            self.r32.reset(new MlpCpuRunner[float](setup, <sgemm_fn>sgemm, train_d, val_d))

    @property
    def members(self):
        """Threads that share each batch (1: the batch runs on the calling thread)."""
        return self.r64.get().members if self.dtype == np.float64 else self.r32.get().members

    cdef int _view(self, StateView[floating]& v, state, floating sample) except -1:
        fill_state_view(v, state, self.dtype, self.n_params, self.n_train, 0, 0, sample)
        return 0

    def run_epoch(self, state):
        """Train one epoch from `state` (a gdsolve.engine.FitState, updated in place; restored
        when the epoch does not complete). Returns (gds::FitStatus, the epoch's objective)."""
        cdef StateView[double] v64
        cdef StateView[float] v32
        if self.dtype == np.float64:
            self._view[double](v64, state, 0.0)
            return runner_epoch[double](self.r64.get(), v64)
        self._view[float](v32, state, 0.0)
        return runner_epoch[float](self.r32.get(), v32)

    def score(self, state):
        """Validation score (accuracy, or mean R^2) at the state's parameters."""
        cdef StateView[double] v64
        cdef StateView[float] v32
        if not self.has_validation:
            return np.nan
        if self.dtype == np.float64:
            self._view[double](v64, state, 0.0)
            return runner_score[double](self.r64.get(), v64)
        self._view[float](v32, state, 0.0)
        return runner_score[float](self.r32.get(), v32)

    def gradient(self, params, rows, double scale):
        """(loss sum, gradient of scale * that sum, no L2 part) of the given training rows
        (uint32) at `params`: the gradient of a block of rows."""
        rows = np.ascontiguousarray(rows, dtype=np.uint32)
        if rows.shape[0] < 1 or rows.max() >= self.n_train:
            raise ValueError(f"rows must be a non-empty set of indices in 0..{self.n_train - 1}")
        cdef const uint32_t[::1] rv = rows
        grad = np.empty(self.n_params, dtype=self.dtype)
        cdef double[::1] g64
        cdef float[::1] g32
        cdef const double[::1] p64
        cdef const float[::1] p32
        cdef double loss
        if self.dtype == np.float64:
            p64 = params
            g64 = grad
            _check_params(p64, self.n_params, "params")
            with nogil:
                loss = self.r64.get().gradient(&p64[0], &rv[0], rv.shape[0], scale, &g64[0])
        else:
            p32 = params
            g32 = grad
            _check_params(p32, self.n_params, "params")
            with nogil:
                loss = self.r32.get().gradient(&p32[0], &rv[0], rv.shape[0], scale, &g32[0])
        return loss, grad


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
            value = mlp_loss_grad_entry(shape, <dgemm_fn>dgemm, &params[0], d, alpha, &g[0])
    else:
        with nogil:
            value = mlp_loss_grad_entry(shape, <sgemm_fn>sgemm, &params[0], d, alpha, &g[0])
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
            mlp_predict_entry(shape, <dgemm_fn>dgemm, &params[0], d, &o[0, 0])
    else:
        with nogil:
            mlp_predict_entry(shape, <sgemm_fn>sgemm, &params[0], d, &o[0, 0])
    return out
