"""Linear estimators trained by the compiled loop: SGDLinearRegression and SGDLogistic.

Each estimator validates its input, resolves the optimizer / learning-rate schedule into the
config records of the engine, and runs the epoch driver (gdsolve.engine) over the CPU executor
(gdsolve._cpu_linear over csrc/include/gdsolve/cpu/linear_executor.h) once per fit or
partial_fit (once per class for one-vs-rest): every epoch is one compiled call with the GIL
released.

Objective (as scikit-learn's SGD estimators)::

    (1/n) sum_i s_i loss(y_i, x_i . w + b) + alpha * R(w)
    R(w) = 1/2 ||w||_2^2 (l2),  ||w||_1 (l1),  l1_ratio ||w||_1 + (1 - l1_ratio) 1/2 ||w||_2^2

so alpha = 1 / (C n) matches LogisticRegression(C) and alpha = a / n matches Ridge(alpha=a).
"""

import warnings
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, log_expit, log_softmax, softmax
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from threadpoolctl import threadpool_limits

from gdsolve import _core, _cpu_linear, _structs, engine
from gdsolve._base import (
    FIT_DIVERGED,
    FIT_INTERRUPTED,
    GdsolveEstimatorMixin,
    available_threads,
    handle_fit_status,
    resolve_optimizer,
    resolve_schedule,
    settle_loop_statuses,
    store_init_params,
)
from gdsolve._codes import Clip, Loss, Penalty, PlateauMode
from gdsolve._codes import Optimizer as OptimizerCode
from gdsolve._intercept import best_constant, check_intercept_start, starts_at_best_constant
from gdsolve._params import ParamNamesOnceMixin
from gdsolve.distributed import DistributedParamsMixin, any_dask, check_distributed_params
from gdsolve.distributed import dask_fit as _dask_fit
from gdsolve.distributed import dask_predict as _dask_predict
from gdsolve.gpu import inputs as gpu_inputs
from gdsolve.gpu.linear import GpuLinearExecutor
from gdsolve.optim import Muon, Optimizer, Sophia
from gdsolve.schedules import Adaptive, Constant, InvScaling, Optimal, ReduceLROnPlateau, Schedule

__all__ = ["SGDLinearRegression", "SGDLogistic"]


def _encode_labels(y):
    """(classes, codes): np.unique's sorted classes of 1-D labels and each label's index in them.
    Integer labels in a short range take one counting pass: np.unique's hashing and sorting
    costs several milliseconds for 10^5 labels, a real share of a fast fit."""
    if y.dtype.kind in "biu" and y.size:
        low, high = int(y.min()), int(y.max())
        if high - low <= max(1 << 16, y.size) and -(1 << 62) < low and high < (1 << 62):
            offset = y.astype(np.intp) - low
            present = np.bincount(offset, minlength=high - low + 1) > 0
            classes = (np.flatnonzero(present) + low).astype(y.dtype)
            return classes, (np.cumsum(present) - 1)[offset]
    return np.unique(y, return_inverse=True)

_PENALTIES = {None: Penalty.NONE, "none": Penalty.NONE, "l2": Penalty.L2, "l1": Penalty.L1,
              "elasticnet": Penalty.ELASTICNET}
_REGRESSION_LOSSES = {"squared": Loss.SQUARED, "squared_error": Loss.SQUARED,
                      "huber": Loss.HUBER, "epsilon_insensitive": Loss.EPSILON_INSENSITIVE}
_CLASSIFICATION_LOSSES = {"log_loss": Loss.LOG, "log": Loss.LOG}
_LOSS_CODES = {**_REGRESSION_LOSSES, **_CLASSIFICATION_LOSSES}
# Curvature bound of each loss in the prediction (for the full-batch step 1/L); the
# epsilon-insensitive loss is not smooth, 1 gives the step a squared loss would have.
_LOSS_CURVATURE = {Loss.SQUARED: 1.0, Loss.HUBER: 1.0, Loss.EPSILON_INSENSITIVE: 1.0,
                   Loss.LOG: 0.25, Loss.SOFTMAX: 0.5}
_GRAM_MAX_FEATURES = 2000
# scikit-learn's learning rates: per-sample SGD with one of them is scikit-learn's algorithm,
# whose zero start intercept_start='auto' keeps (docs/linear.md)
_SKLEARN_RATES = ("optimal", "invscaling", "constant", "adaptive")
_SKLEARN_RATE_TYPES = (Optimal, InvScaling, Constant, Adaptive)
_GRAM_BLOCK_WORK = 50_000_000  # n d^2 per thread below which the Gram matrix stays one product
# Shuffled per-sample epochs: -1 lets the loop decide whether a helper thread gathers the rows
# (data beyond the caches and a spare CPU), 0 / 1 force it off / on (the tests use both); 2
# gathers on the training thread alone (the path taken when no thread can be started).
_GATHER_ROWS = -1


def lipschitz_constant(X, sample_weight, fit_intercept, rows=None):
    """Largest eigenvalue of X~' S X~ / n, X~ = [X, 1] when fitting an intercept, S the sample
    weights: the Lipschitz constant of the mean squared-loss gradient (times the loss curvature
    for other losses). Exact from the Gram matrix up to 2000 features, else Lanczos.

    BLAS runs single-threaded here: a threaded X'X was measured 10-50x slower than one thread
    on a busy 2-core machine (its threads spin against the other load). A large dense X is
    instead cut into row blocks, one per thread (_dense_gram_and_colsum).

    X may also be an object with its own `lipschitz_constant(sample_weight, fit_intercept,
    rows)`: a distributed data set computes it where its blocks live (gdsolve.distributed)."""
    if hasattr(X, "lipschitz_constant"):
        return X.lipschitz_constant(sample_weight, fit_intercept, rows)
    if gpu_inputs.is_cupy_array(X):  # the Gram matrix on the device, its eigenvalue here
        return _device_lipschitz_constant(X, sample_weight, fit_intercept, rows)
    with threadpool_limits(1, user_api="blas"):
        return _lipschitz_constant(X, sample_weight, fit_intercept, rows)


def _device_lipschitz_constant(X, sample_weight, fit_intercept, rows):
    xp = gpu_inputs.runtime_for().xp
    if rows is not None and rows.shape[0] != X.shape[0]:
        X = X[xp.asarray(rows)]
        sample_weight = None if sample_weight is None else sample_weight[rows]
    n = X.shape[0]
    Xd = X.astype(np.float64)
    Xs = Xd if sample_weight is None else Xd * xp.asarray(sample_weight, np.float64)[:, None]
    gram = gpu_inputs.to_host(Xd.T @ Xs)
    colsum = gpu_inputs.to_host(Xs.sum(axis=0))
    total = float(n if sample_weight is None else np.sum(sample_weight, dtype=np.float64))
    if fit_intercept:
        gram = np.block([[gram, colsum[:, None]], [colsum[None, :], np.array([[total]])]])
    return max(float(np.linalg.eigvalsh(gram / n)[-1]), 0.0)


def start_call_state(state, seed, rules, order):
    """A copy of one loop's state for this fit / partial_fit call: the driver's counters start
    afresh; the parameters, optimizer state and sample count carry over. Callers: the linear
    estimators' loops, gdsolve.distributed.linear."""
    return state.copy().start_fit(
        seed, order=order, best=np.inf, no_improvement=0, lr_factor=1.0, plateau_best=np.inf,
        plateau_bad_epochs=0, plateau_cooldown=0, plateau_lr=float(rules.schedule["base_lr"][0]))


def run_loop(executor, state, rules, on_epoch, name, max_iter, tol):
    """engine.run for one loop; a diverged loop raises here, before any model is assigned."""
    rep = engine.run(executor, state, rules, on_epoch=on_epoch)
    if rep.status == FIT_DIVERGED:
        handle_fit_status(rep.status, rep.stop_epoch, name, max_iter, tol)
    return rep


def _gram_and_colsum(X, sw):
    """X' S X and the column sums of S X (S = diag(sw), or the identity), in float64, for dense
    or CSR X. Callers: _lipschitz_constant, the Dask workers' gram_stats."""
    if sp.issparse(X):
        Xs = X if sw is None else sp.diags(sw) @ X
        return (np.asarray((X.T @ Xs).todense(), dtype=np.float64),
                np.asarray(Xs.sum(axis=0), dtype=np.float64).ravel())
    return _dense_gram_and_colsum(X, sw)


def _dense_gram_and_colsum(X, sw):
    """X' S X and the column sums of S X (S = diag(sw), or the identity), in float64. Large X is
    cut into row blocks, one single-threaded BLAS product per thread, summed in block order: on
    200,000 x 100 float64 one product took 75 ms and OpenBLAS's own threads made it no faster."""
    n, d = X.shape
    parts = min(available_threads(), max(1, n * d * d // _GRAM_BLOCK_WORK))
    bounds = np.linspace(0, n, parts + 1).astype(int)

    def block(k):
        Xb = X[bounds[k]:bounds[k + 1]]
        Xsb = Xb if sw is None else Xb * sw[bounds[k]:bounds[k + 1], None]
        return np.asarray(Xb.T @ Xsb, dtype=np.float64), np.asarray(Xsb.sum(axis=0),
                                                                    dtype=np.float64)

    if parts == 1:
        return block(0)
    with ThreadPoolExecutor(max_workers=parts) as pool:
        results = list(pool.map(block, range(parts)))
    return sum(r[0] for r in results), sum(r[1] for r in results)


def _lipschitz_constant(X, sample_weight, fit_intercept, rows):
    if rows is not None and rows.shape[0] != X.shape[0]:
        X = X[rows]
        sample_weight = None if sample_weight is None else sample_weight[rows]
    n, d = X.shape
    dtype = np.float64 if X.dtype == np.float64 else np.float32
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=dtype)
    if d + 1 <= _GRAM_MAX_FEATURES:
        gram, colsum = _gram_and_colsum(X, sw)
        total = float(n if sw is None else sw.sum(dtype=np.float64))
        if fit_intercept:
            gram = np.block([[gram, colsum[:, None]], [colsum[None, :], np.array([[total]])]])
        return max(float(np.linalg.eigvalsh(gram / n)[-1]), 0.0)
    from scipy.sparse.linalg import LinearOperator, eigsh

    Xd = X.astype(np.float64) if X.dtype != np.float64 else X
    w = np.ones(n) if sw is None else sw.astype(np.float64)

    def matvec(v):
        v = np.ravel(v)
        z = Xd @ v[:d] + (v[d] if fit_intercept else 0.0)
        z *= w
        out = np.empty(d + int(fit_intercept))
        out[:d] = Xd.T @ z
        if fit_intercept:
            out[d] = z.sum()
        return out / n

    m = d + int(fit_intercept)
    op = LinearOperator((m, m), matvec=matvec, dtype=np.float64)
    v0 = np.ones(m) / np.sqrt(m)
    lam = eigsh(op, k=1, which="LA", tol=1e-4, v0=v0, return_eigenvectors=False)[0]
    return max(float(lam) * 1.01, 0.0)  # Lanczos converges from below: a small margin


class _SGDLinearBase(DistributedParamsMixin, GdsolveEstimatorMixin, ParamNamesOnceMixin,
                     BaseEstimator):
    """Parameters, validation and the loop call shared by the two estimators."""

    _is_classifier = False

    # -- parameter checks (before any work) ----------------------------------------------------
    def _check_params(self):
        name = type(self).__name__
        losses = _CLASSIFICATION_LOSSES if self._is_classifier else _REGRESSION_LOSSES
        if self.loss not in losses:
            raise ValueError(f"{name}: loss must be one of {tuple(losses)}, got {self.loss!r}")
        if self.penalty not in _PENALTIES:
            raise ValueError(f"{name}: penalty must be None, 'l2', 'l1' or 'elasticnet', got "
                             f"{self.penalty!r}")
        if not isinstance(self.alpha, Real) or isinstance(self.alpha, bool) or not self.alpha >= 0:
            raise ValueError(f"{name}: alpha must be a non-negative number, got {self.alpha!r}")
        if not isinstance(self.l1_ratio, Real) or not 0.0 <= self.l1_ratio <= 1.0:
            raise ValueError(f"{name}: l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        if not (self.batch_size == "full" or (isinstance(self.batch_size, Integral)
                                              and not isinstance(self.batch_size, bool)
                                              and self.batch_size >= 1)):
            raise ValueError(f"{name}: batch_size must be a positive integer or 'full', got "
                             f"{self.batch_size!r}")
        if not isinstance(self.max_iter, Integral) or self.max_iter < 1:
            raise ValueError(f"{name}: max_iter must be a positive integer, got {self.max_iter!r}")
        if self.tol is not None and (not isinstance(self.tol, Real) or not self.tol >= 0):
            raise ValueError(f"{name}: tol must be None or a non-negative number, got "
                             f"{self.tol!r}")
        if not isinstance(self.n_iter_no_change, Integral) or self.n_iter_no_change < 1:
            raise ValueError(f"{name}: n_iter_no_change must be a positive integer, got "
                             f"{self.n_iter_no_change!r}")
        if not isinstance(self.validation_fraction, Real) or not (
                0.0 < self.validation_fraction < 1.0):
            raise ValueError(f"{name}: validation_fraction must be in (0, 1), got "
                             f"{self.validation_fraction!r}")
        if not (isinstance(self.average, (bool, np.bool_))
                or (isinstance(self.average, Integral) and self.average >= 0)):
            raise ValueError(f"{name}: average must be a bool or a non-negative integer, got "
                             f"{self.average!r}")
        if self.clip_grad_norm is not None and (not isinstance(self.clip_grad_norm, Real)
                                                or not self.clip_grad_norm > 0):
            raise ValueError(f"{name}: clip_grad_norm must be None or a positive number, got "
                             f"{self.clip_grad_norm!r}")
        if not isinstance(self.eta0, Real) or not self.eta0 >= 0:
            raise ValueError(f"{name}: eta0 must be a non-negative number, got {self.eta0!r}")
        if not isinstance(self.power_t, Real):
            raise ValueError(f"{name}: power_t must be a number, got {self.power_t!r}")
        gpu_inputs.check_device(self.device, name)
        if self.mixed_precision not in (None, "float16", "bfloat16"):
            raise ValueError(f"{name}: mixed_precision must be None, 'float16' or 'bfloat16', "
                             f"got {self.mixed_precision!r}")
        if not isinstance(self.learning_rate, (str, Schedule)):
            raise ValueError(f"{name}: learning_rate must be a schedule name or a "
                             f"gdsolve.schedules.Schedule, got {self.learning_rate!r}")
        if not isinstance(self.optimizer, (str, Optimizer)):
            raise ValueError(f"{name}: optimizer must be a name or a gdsolve.optim.Optimizer, "
                             f"got {self.optimizer!r}")
        rule = self.optimizer.lower() if isinstance(self.optimizer, str) else self.optimizer
        if rule == "muon" or isinstance(rule, Muon):
            raise ValueError(f"{name}: Muon is offered for the MLP estimators' hidden weight "
                             "matrices only; on the multinomial model it was no consistent gain "
                             "over Adam (docs/optimizers.md)")
        if (rule == "sophia" or isinstance(rule, Sophia)) and _LOSS_CODES[self.loss] not in (
                Loss.SQUARED, Loss.LOG):
            raise ValueError(f"{name}: Sophia's Hessian estimate needs the squared or log loss, "
                             f"got loss={self.loss!r}")
        if self.learning_rate in ("constant", "invscaling", "adaptive") and self.eta0 <= 0 \
                and not isinstance(self.optimizer, Optimizer):
            raise ValueError(f"{name}: eta0 must be > 0 with learning_rate="
                             f"{self.learning_rate!r}")
        check_intercept_start(self.intercept_start, f"{name}: ")
        check_distributed_params(self)

    # -- inputs and the device -------------------------------------------------------------------
    def _validate_X_y(self, X, y, reset, **kwargs):
        """validate_data for NumPy / SciPy input; for CuPy input the same checks on the device
        (X never copied to the host), unless device='cpu' asks for a host copy. Resolves where
        the fit runs (self._place). y comes back 1-d on both paths (column_or_1d, which warns
        for a column vector)."""
        self._place = gpu_inputs.fit_place(self, X)
        if gpu_inputs.is_cupy_array(X) and not self._place.gpu:
            X = gpu_inputs.to_host(X)
        if gpu_inputs.is_cupy_array(X):
            X = gpu_inputs.check_cupy_X(self, X, reset=reset)
            return X, column_or_1d(np.asarray(gpu_inputs.to_host(y)), warn=True)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"],
                             dtype=[np.float64, np.float32], order="C", reset=reset, **kwargs)
        return X, y

    def _compute_dtype(self, X):
        """The dtype of the parameters and the arithmetic: X's, float32 for 2-byte storage."""
        if getattr(self, "_place", None) is not None and self._place.storage is not None:
            return np.dtype(np.float32)
        return np.dtype(np.float32) if np.dtype(X.dtype) == np.float16 else np.dtype(X.dtype)

    def _device_scores(self, X):
        """X @ coef_.T + intercept_ on the device for CuPy input (a CuPy array), else None."""
        rt = gpu_inputs.predict_runtime(X)
        if rt is None:
            return None
        check_is_fitted(self)
        X = gpu_inputs.check_cupy_X(self, X, reset=False)
        dtype = self.coef_.dtype
        coef = rt.xp.asarray(np.atleast_2d(self.coef_), dtype=dtype)
        return X.astype(dtype, copy=False) @ coef.T + rt.xp.asarray(self.intercept_, dtype=dtype)

    def _average_start(self):
        if isinstance(self.average, (bool, np.bool_)):
            return 1 if self.average else 0
        return int(self.average)

    # -- learning rate --------------------------------------------------------------------------
    def _full_batch_method(self, batch, opt, path="cpu", loss_code=None):
        """'lbfgs', 'spectral', 'lipschitz' or None (another schedule) for a fit of `batch` rows
        per step (0: full) on `path` ('cpu', 'gpu', 'dask') with loss `loss_code`. 'lbfgs' and
        'spectral' are the CPU executor's line-searched full batch (model/lbfgs.h for smooth
        objectives, model/spectral.h for any, L1 included); the default schedules of plain SGD
        take them there ('lbfgs' when the loss has a continuous gradient and the penalty no L1
        part, else 'spectral'), and the constant step 1/L ('lipschitz') on the GPU and Dask
        paths, or with momentum, clipping, averaging or mixed precision. An explicit 'lbfgs' or
        'spectral' that cannot run is refused here, before any work."""
        name = type(self).__name__
        spec = self.learning_rate
        simple = (opt.is_plain_sgd() and self.clip_grad_norm is None and self._average_start() == 0
                  and self.mixed_precision is None)
        smooth = self._smooth_objective(loss_code)
        if isinstance(spec, str) and spec in ("spectral", "lbfgs"):
            what = ("(quasi-Newton full batch)" if spec == "lbfgs"
                    else "(accelerated full batch)")
            if batch != 0:
                raise ValueError(f"{name}: learning_rate={spec!r} is a full-batch method: "
                                 f"set batch_size='full' (got batch_size={self.batch_size!r})")
            if path != "cpu":
                where = "on the GPU" if path == "gpu" else "on Dask collections"
                raise ValueError(f"{name}: learning_rate={spec!r} {what} runs on the CPU "
                                 f"executor only, not {where}; use learning_rate='lipschitz' "
                                 "(the constant step 1/L) there, or device='cpu' with NumPy / "
                                 "SciPy input")
            if not simple:
                raise ValueError(f"{name}: learning_rate={spec!r} sets its own steps: it needs "
                                 "optimizer='sgd' without momentum or weight decay, and no "
                                 "clip_grad_norm, average or mixed_precision")
            if spec == "lbfgs" and not smooth:
                raise ValueError(f"{name}: learning_rate='lbfgs' needs a smooth objective: no "
                                 "L1 part in the penalty (penalty='l1', or 'elasticnet' with "
                                 "l1_ratio > 0) and a loss with a continuous gradient (not "
                                 "'epsilon_insensitive'); use learning_rate='spectral', the "
                                 "proximal full batch, for those")
            return spec
        sklearn_rate = spec in ("optimal", "invscaling") or type(spec) in (Optimal, InvScaling)
        if isinstance(spec, str) and spec == "lipschitz":
            if int(opt.code) != int(OptimizerCode.SGD):
                raise ValueError(f"{name}: learning_rate='lipschitz' is the constant step 1/L "
                                 "of gradient descent: it needs an SGD-family optimizer")
            return "lipschitz"
        if sklearn_rate and batch == 0 and int(opt.code) == int(OptimizerCode.SGD):
            if path == "cpu" and simple:
                return "lbfgs" if smooth else "spectral"
            return "lipschitz"
        return None

    def _smooth_objective(self, loss_code):
        """Whether the objective has a continuous gradient: a loss other than
        epsilon-insensitive and a penalty without an L1 part (what 'lbfgs' needs)."""
        l1_part = self.alpha > 0 and (self.penalty == "l1" or (
            self.penalty == "elasticnet" and self.l1_ratio > 0))
        return loss_code is not None and loss_code != Loss.EPSILON_INSENSITIVE and not l1_part

    def _resolve_training(self, X, sample_weight, loss_code, n_train, batch, train_rows,
                          path="cpu"):
        """(optimizer, schedule, config dicts) for this fit; see the class docstring. `path`:
        where the fit runs ('cpu', 'gpu', 'dask'), see _full_batch_method."""
        name = type(self).__name__
        opt, base_lr = resolve_optimizer(self.optimizer, self.eta0)
        sgd_family = int(opt.code) == int(OptimizerCode.SGD)
        steps_per_epoch = 1 if batch == 0 else -(-n_train // batch)
        total_steps = max(1, self.max_iter * steps_per_epoch)
        spec = self.learning_rate
        sklearn_rate = spec in ("optimal", "invscaling") or type(spec) in (Optimal, InvScaling)
        alpha = float(self.alpha)
        pen = _PENALTIES[self.penalty]
        method = self._full_batch_method(batch, opt, path, loss_code)
        if method in ("spectral", "lbfgs"):
            spec = Constant(lr=1.0)  # unused: the method takes its own steps
        elif method == "lipschitz" or (sklearn_rate and batch == 0):
            if sgd_family:
                # full batch: constant 1/L, L the Lipschitz constant of the objective's gradient
                lam = lipschitz_constant(X, sample_weight, self.fit_intercept, train_rows)
                l2 = alpha * (1.0 if pen == Penalty.L2 else
                              (1.0 - self.l1_ratio) if pen == Penalty.ELASTICNET else 0.0)
                lipschitz = _LOSS_CURVATURE[loss_code] * lam + l2
                spec = Constant(lr=1.0 / lipschitz if lipschitz > 0 else 1.0)
            else:
                spec = Constant(lr=base_lr)
        elif (spec == "optimal" or type(spec) is Optimal) and not sgd_family:
            spec = Constant(lr=base_lr)  # 'optimal' is SGD theory; adaptive rules get their lr
        elif spec == "optimal" and alpha <= 0:
            raise ValueError(f"{name}: alpha must be > 0 since learning_rate is 'optimal' "
                             "(the rate is 1 / (alpha (t0 + t)))")
        optimal_loss = Loss.LOG if loss_code == Loss.SOFTMAX else loss_code
        sched, sched_cfg = resolve_schedule(
            spec, lr=base_lr, total_steps=total_steps, alpha=alpha if alpha > 0 else None,
            loss=optimal_loss, loss_param=float(getattr(self, "epsilon", 0.1)),
            power_t=self.power_t)
        plateau_mode, plateau_cfg = PlateauMode.NONE, {}
        inner = getattr(sched, "inner", sched)
        if inner.per_epoch:
            if isinstance(inner, ReduceLROnPlateau):
                plateau_mode, plateau_cfg = PlateauMode.REDUCE_ON_PLATEAU, inner.plateau_config()
            else:
                plateau_mode = PlateauMode.ADAPTIVE
        return opt, sched, sched_cfg, plateau_mode, plateau_cfg

    # -- the engine's records -------------------------------------------------------------------
    def _records(self, loss_code, n_outputs, opt, sched_cfg, plateau_mode, plateau_cfg, batch,
                 max_iter, tol, early, full_batch=None):
        """(model, optimizer, cpu records, FitRules) of one fit (see gdsolve/_structs.py).
        full_batch: 'spectral' or 'lbfgs', the line-searched full batch, stopped by tol on the
        gradient (not the driver's objective rule, which a non-monotone method would trip)."""
        spectral = full_batch in ("spectral", "lbfgs")
        model = _structs.record("LinearConfig", {
            "loss": int(loss_code),
            "loss_param": float(getattr(self, "epsilon", 0.1)),
            "n_outputs": int(n_outputs),
            "fit_intercept": bool(self.fit_intercept),
            "penalty": int(_PENALTIES[self.penalty]),
            "alpha": float(self.alpha),
            "l1_ratio": float(self.l1_ratio),
            "average_start": self._average_start(),
            "clip": int(Clip.NORM if self.clip_grad_norm is not None else Clip.NONE),
            "clip_limit": float(self.clip_grad_norm or 0.0),
            "spectral": bool(spectral),
            "grad_tol": float(tol or 0.0) if spectral else 0.0,
            "lbfgs_memory": engine.LBFGS_MEMORY if full_batch == "lbfgs" else 0,
        })
        objective_rule = tol is not None and not (spectral and not early)
        driver = _structs.record("DriverConfig", {
            "max_iter": int(max_iter),
            "batch_size": int(batch),
            "shuffle": bool(self.shuffle),
            "tol": 0.0 if tol is None else float(tol),
            "patience": int(self.n_iter_no_change),
            "count_plateau": objective_rule,
            "stop_on_plateau": objective_rule,
            "monitor_score": bool(early),
            "plateau_mode": int(plateau_mode),
        })
        cpu = _structs.record("CpuConfig", {"n_threads": available_threads(),
                                            "gather_rows": _GATHER_ROWS})
        rules = engine.FitRules(driver, _structs.record("ScheduleConfig", sched_cfg),
                                _core.plateau_record(plateau_cfg))
        return model, _structs.record("OptimizerConfig", opt.to_config()), cpu, rules

    @staticmethod
    def _loop_X(X):
        if sp.issparse(X):
            X = X.tocsr()
            indices = X.indices
            if indices.dtype != np.int32:
                if X.shape[1] > np.iinfo(np.int32).max:
                    raise ValueError("sparse X with more than 2**31 - 1 columns is not supported")
                indices = indices.astype(np.int32)
            return (np.ascontiguousarray(X.data), np.ascontiguousarray(indices),
                    np.ascontiguousarray(X.indptr, dtype=np.int64), X.shape[1])
        return X

    def _verbose_printer(self, label):
        if not self.verbose:
            return None

        def show(epoch, objective, score, lr, seconds):
            extra = "" if np.isnan(score) else f", validation score: {score:.6f}"
            print(f"-- {label}epoch {epoch}: objective {objective:.6f}{extra}, lr {lr:.4g}, "
                  f"{seconds:.2f} s")

        return show

    def _run_loops(self, X, targets, sample_weight, loss_code, n_outputs, states, train_rows,
                   val_rows, max_iter, tol, rng, labels=None):
        """One driver run per target vector (one-vs-rest) or a single one. Returns the new
        states and the reports; raises on divergence (estimator left untouched)."""
        batch = 0 if self.batch_size == "full" else int(self.batch_size)
        n_train = train_rows.shape[0]
        place = getattr(self, "_place", None)
        on_gpu = place is not None and place.gpu
        path = "gpu" if on_gpu else "cpu"
        opt, _, sched_cfg, plateau_mode, plateau_cfg = self._resolve_training(
            X, sample_weight, loss_code, n_train, batch, train_rows, path)
        early = val_rows is not None and val_rows.shape[0] > 0
        full_batch = self._full_batch_method(batch, opt, path, loss_code)
        model, optimizer, cpu, rules = self._records(loss_code, n_outputs, opt, sched_cfg,
                                                     plateau_mode, plateau_cfg, batch, max_iter,
                                                     tol, early, full_batch)
        n_history = engine.lbfgs_history_size(model, X.shape[1])
        name = type(self).__name__
        if on_gpu and batch == 1:
            raise ValueError(f"{name}: batch_size=1 is per-sample SGD, which runs on the CPU only; "
                             "on the GPU use a mini-batch (e.g. batch_size=256) or "
                             "batch_size='full', or set device='cpu'")
        Xloop = X if on_gpu else self._loop_X(X)
        new_states, reports = [], []
        for k, (y_k, state) in enumerate(zip(targets, states, strict=True)):
            seed = int(rng.randint(np.iinfo(np.int32).max))
            if on_gpu:
                executor = GpuLinearExecutor(model, optimizer, rules.schedule, rules.driver,
                                             Xloop, y_k, sample_weight, n_train, val_rows,
                                             runtime=gpu_inputs.runtime_for(),
                                             storage=place.storage)
            else:
                executor = _cpu_linear.LinearExecutor(model, optimizer, rules.schedule,
                                                      rules.driver, cpu, Xloop, y_k,
                                                      sample_weight, n_train, val_rows)
            st = start_call_state(state, seed, rules, train_rows)
            if n_history and (st.history is None or st.history.shape != (n_history,)
                              or st.history.dtype != st.params.dtype):
                st.history = np.zeros(n_history, dtype=st.params.dtype)
            label = "" if labels is None else f"class {labels[k]!r}, "
            rep = run_loop(executor, st, rules, self._verbose_printer(label), name, max_iter, tol)
            rep.gathered = getattr(executor, "gathered", False)
            new_states.append(st)
            reports.append(rep)
            if rep.status == FIT_INTERRUPTED:
                break
        settle_loop_statuses(reports, states, new_states, name, max_iter, tol)
        return new_states, reports

    # -- the start -------------------------------------------------------------------------------
    def _starts_from_best_constant(self):
        """Whether a fresh fit starts the intercept at the best constant (intercept_start):
        'auto' keeps the zero start of scikit-learn's algorithm, per-sample SGD (the rule the
        per-sample path runs: plain SGD, batch_size=1) with one of scikit-learn's rates."""
        if not self.fit_intercept:
            return False
        opt, _ = resolve_optimizer(self.optimizer, self.eta0)
        rate = self.learning_rate
        sklearn_rate = (rate in _SKLEARN_RATES if isinstance(rate, str)
                        else type(rate) in _SKLEARN_RATE_TYPES)
        return starts_at_best_constant(self.intercept_start, opt,
                                       self.batch_size == 1 and sklearn_rate)

    def _start_intercepts(self, loss_code, targets, sample_weight, train_rows, n_outputs):
        """The intercepts a fresh fit starts from, one block of n_outputs per target vector
        (one-vs-rest: per class), concatenated; None for the zero start. The best constant is
        the exact optimum of the intercept-only model on the training rows (gdsolve/_intercept.py),
        with the weights the fit uses (sample weights times class weights)."""
        if not self._starts_from_best_constant():
            return None
        rows = None if train_rows.shape[0] == targets[0].shape[0] else train_rows
        sw = sample_weight if rows is None or sample_weight is None else sample_weight[rows]
        return np.concatenate([
            best_constant(loss_code, y if rows is None else y[rows], sw, n_outputs=n_outputs,
                          epsilon=float(getattr(self, "epsilon", 0.1)))
            for y in targets])

    def _new_states(self, n_loops, n_outputs, n_features, dtype, coef_init=None,
                    intercept_init=None):
        """Fresh FitStates: coefficients coef_init (warm start) or zero, intercepts
        intercept_init (the previous model's or the best constant, (n_loops * n_outputs,)) or
        zero."""
        n_all = n_outputs * n_features + n_outputs
        states = []
        for k in range(n_loops):
            params = np.zeros(n_all, dtype=dtype)
            rows = slice(k, k + 1) if n_loops > 1 else slice(None)
            if coef_init is not None:
                params[: n_outputs * n_features] = np.asarray(coef_init)[rows].ravel()
            if intercept_init is not None:
                params[n_outputs * n_features:] = np.asarray(intercept_init).ravel()[rows]
            states.append(engine.FitState(
                params,
                avg_params=np.zeros(n_all, dtype=dtype) if self._average_start() > 0 else None,
                l1_q=(np.zeros(n_outputs * n_features, dtype=dtype)
                      if self.penalty in ("l1", "elasticnet") else None)))
        return states

    def _split(self, y, sample_weight, n_samples, early_stopping):
        all_rows = np.arange(n_samples, dtype=np.int64)
        if not early_stopping:
            return all_rows, None
        splitter = (StratifiedShuffleSplit if self._is_classifier else ShuffleSplit)(
            test_size=self.validation_fraction, random_state=self.random_state)
        try:
            idx_train, idx_val = next(splitter.split(np.zeros((n_samples, 1)), y))
        except ValueError as exc:
            raise ValueError(f"{type(self).__name__}: could not make the early-stopping "
                             f"validation split ({exc}); lower validation_fraction, add samples "
                             "or set early_stopping=False") from exc
        if idx_train.shape[0] == 0 or idx_val.shape[0] == 0:
            raise ValueError(
                f"Splitting {n_samples} samples into a train set and a validation set with "
                f"validation_fraction={self.validation_fraction} led to an empty set; increase "
                "the number of samples, change validation_fraction or disable early_stopping.")
        if sample_weight is not None and not np.any(sample_weight[idx_val] > 0):
            raise ValueError("The sample weights for validation set are all zero, consider "
                             "using a different random state.")
        return np.sort(idx_train).astype(np.int64), np.sort(idx_val).astype(np.int64)

    def _store(self, states, reports, n_outputs, n_features, dtype):
        coefs, intercepts = [], []
        for st in states:
            use_avg = st.avg_params is not None and st["avg_count"] > 0
            p = st.avg_params if use_avg else st.params
            coefs.append(p[: n_outputs * n_features].reshape(n_outputs, n_features))
            intercepts.append(p[n_outputs * n_features:])
        self._fit_states = states
        coef = np.concatenate(coefs, axis=0).astype(dtype, copy=False)
        intercept = np.concatenate(intercepts).astype(dtype, copy=False)
        curves = [np.asarray(r.loss_curve, dtype=np.float64) for r in reports]
        scores = [np.asarray(r.val_scores, dtype=np.float64) for r in reports]
        self.n_iter_ = int(max(r.n_epochs for r in reports))
        self.t_ = float(max(st["t"] for st in states))
        self._loop_seconds = float(sum(r.seconds for r in reports))  # compiled epochs only
        self._loop_gathered = any(r.gathered for r in reports)  # rows gathered by a helper
        self.loss_curve_ = curves[0] if len(curves) == 1 else curves
        self.validation_scores_ = scores[0] if len(scores) == 1 else scores
        return coef, intercept

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


_COMMON_DOC = """
    The objective is the sample-weighted mean loss plus ``alpha * R(w)``:
    ``(1/n) sum_i s_i loss_i + alpha * R(w)`` with ``R = 1/2 ||w||^2`` (l2), ``||w||_1`` (l1) or
    ``l1_ratio ||w||_1 + (1 - l1_ratio) 1/2 ||w||^2`` (elasticnet), as in scikit-learn's SGD
    estimators. The whole training loop runs in compiled C++ with the GIL released.

    Parameters
    ----------
    penalty : {None, 'l2', 'l1', 'elasticnet'}, default='l2'
    alpha : float, default=1e-4
        Regularisation strength (also sets the 'optimal' learning rate).
    l1_ratio : float, default=0.15
        Elastic-net mixing (1: pure l1).
    fit_intercept : bool, default=True
    intercept_start : {'auto', 'best_constant', 'sklearn'}, default='auto'
        Where a fresh fit (and the first partial_fit call, on its chunk) starts the intercept.
        'best_constant': the exact optimum of the intercept-only model on the training rows
        with the sample (and class) weights: the weighted mean of y (squared), Huber's
        location estimate (huber), the weighted median of the y -+ epsilon breakpoints
        (epsilon_insensitive), the log-odds of the weighted positive fraction (binary and
        one-vs-rest), the log weighted class priors (multinomial); see docs/linear.md.
        'sklearn': scikit-learn's start, 0. 'auto': 'sklearn' for scikit-learn's algorithm,
        per-sample SGD (batch_size=1, plain SGD) with learning_rate 'optimal', 'invscaling',
        'constant' or 'adaptive', where the model equals scikit-learn's; 'best_constant'
        otherwise. The coefficients start at 0 either way; warm_start and later partial_fit
        calls continue from the fitted model. No effect without fit_intercept.
    optimizer : str or gdsolve.optim.Optimizer, default='sgd'
        Update rule: 'sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam', 'adamw',
        'amsgrad', 'nadam', 'radam', 'lion', 'sophia' (squared and log losses; Sophia(estimator=
        'exact') uses the exact Gauss-Newton diagonal instead of the sampled GNB estimate), or an
        Optimizer object (its own lr is used). Muon is an MLP rule and is refused here.
    learning_rate : str or gdsolve.schedules.Schedule
        'optimal' and 'invscaling' are scikit-learn's per-sample schedules (t counts samples);
        with ``batch_size='full'`` and plain 'sgd' they become 'lbfgs' on the CPU when the
        objective is smooth (no L1 part, not epsilon_insensitive), 'spectral' on the CPU
        otherwise, 'lipschitz' elsewhere; 'optimal' with an adaptive optimizer (Adam, ...)
        becomes that optimizer's constant rate. 'lbfgs': the quasi-Newton full batch (L-BFGS
        directions from the last 10 pairs, Armijo backtracking; smooth objectives). 'spectral':
        the accelerated full batch (Barzilai-Borwein steps, non-monotone line search, proximal
        for L1). Both are CPU only, refused on the GPU and for Dask inputs (docs/linear.md).
        'lipschitz': the constant step 1/L (L the Lipschitz constant of the objective's
        gradient, from the data), the full-batch default on the GPU / Dask. Other names:
        'constant', 'adaptive', 'step', 'multistep', 'exponential', 'cosine', 'warm_restarts',
        'one_cycle', 'cyclic',
        'plateau', 'warmup_cosine'.
    eta0 : float, default=0.01
        Base learning rate for the schedules that need one (and the lr of a named optimizer).
    power_t : float
        Exponent of 'invscaling'.
    batch_size : int or 'full', default=1
        Rows per update: 1 is per-sample SGD (scikit-learn's algorithm), 'full' is batch
        gradient descent (one update per epoch, X read once per epoch).
    max_iter : int, default=1000
        Epochs.
    tol : float or None, default=1e-3
        Stop when the epoch objective (validation score with early_stopping) has not improved
        by tol for n_iter_no_change epochs. None: run max_iter epochs. With
        learning_rate='lbfgs' or 'spectral': stop when the max-norm of the objective's
        minimum-norm subgradient (the gradient, for 'lbfgs') is <= tol (or at round-off;
        docs/linear.md).
    n_iter_no_change : int, default=5
    early_stopping : bool, default=False
        Hold out validation_fraction of the data and stop on its score.
    validation_fraction : float, default=0.1
    shuffle : bool, default=True
        Reshuffle the rows every epoch (not needed for batch_size='full').
    random_state : int, RandomState or None
    average : bool or int, default=False
        Averaged SGD: coef_ is the average of the iterates from sample ``average`` on.
    clip_grad_norm : float or None
        Clip the data gradient of each update to this L2 norm.
    warm_start : bool, default=False
    verbose : int, default=0
        Print the objective once per epoch.
    device : {'cpu', 'cuda', 'auto'}, default='cpu'
        Where the fit runs. 'cuda' trains on the GPU with CuPy (a RuntimeError names what is
        missing: CuPy, a driver, a device); 'auto' uses the GPU when CuPy sees one, else the CPU.
        CuPy input runs on the GPU unless device='cpu', which copies it to the host. On the GPU
        everything runs except per-sample SGD (batch_size=1): use a mini-batch. Predictions on
        CuPy input are CuPy arrays; fitted attributes are NumPy arrays either way.
    mixed_precision : {None, 'float16', 'bfloat16'}, default=None
        On the GPU, hold X in this 2-byte dtype (half the memory and the reads); parameters,
        products, accumulation and updates stay float32. float16 CuPy input implies 'float16'.
        Dense X only; 'bfloat16' needs ml_dtypes.
    distributed : {'local_sgd', 'sync_gradient'}, default='local_sgd'
        How a fit on Dask collections (dask.array / dask.dataframe, with a dask.distributed
        Client) trains on the workers that hold the blocks (docs/distributed.md).
        'local_sgd': every worker trains on its blocks from the current model for one local
        epoch (or ``sync_every`` steps), then the models and optimizer states are averaged,
        weighted by rows. 'sync_gradient': every step sums the gradients of all blocks (full
        batch, or each block's share of a global batch) and takes one step. Ignored for
        NumPy / SciPy input.
    sync_every : int or None, default=None
        local_sgd: local steps (batches) between averages; None: one local epoch.
    client : distributed.Client, str or None, default=None
        The Client (or scheduler address) of a Dask fit; None: the active Client.

    Attributes
    ----------
    coef_, intercept_ : arrays in X's dtype (float32 input trains float32 weights)
    n_iter_ : int
        Epochs run (the largest over one-vs-rest problems).
    t_ : float
        Samples seen + 1 (scikit-learn's t).
    loss_curve_ : ndarray
        Objective per epoch (the loss averaged over the epoch's updates plus the penalty at the
        epoch's end; exact at the start of each epoch for batch_size='full'). One array per class
        for one-vs-rest.
    validation_scores_ : ndarray
        Validation score per epoch (early_stopping), else empty.
    n_features_in_, feature_names_in_
"""


class SGDLinearRegression(RegressorMixin, _SGDLinearBase):
    __doc__ = """Linear regression by (stochastic) gradient descent.

    loss : {'squared', 'huber', 'epsilon_insensitive'}, default='squared'
        ``1/2 (y - p)^2``; Huber with threshold epsilon; ``max(0, |y - p| - epsilon)``.
    epsilon : float, default=0.1
""" + _COMMON_DOC

    _is_classifier = False

    def __init__(self, loss="squared", *, penalty="l2", alpha=1e-4, l1_ratio=0.15,
                 fit_intercept=True, intercept_start="auto", optimizer="sgd",
                 learning_rate="invscaling", eta0=0.01,
                 power_t=0.25, batch_size=1, max_iter=1000, tol=1e-3, n_iter_no_change=5,
                 early_stopping=False, validation_fraction=0.1, shuffle=True, random_state=None,
                 average=False, clip_grad_norm=None, epsilon=0.1, warm_start=False, verbose=0,
                 device="cpu", mixed_precision=None, distributed="local_sgd",
                 sync_every=None, client=None):
        store_init_params(self, locals())

    def _check_params(self):
        super()._check_params()
        if not isinstance(self.epsilon, Real) or not self.epsilon >= 0:
            raise ValueError(f"SGDLinearRegression: epsilon must be a non-negative number, got "
                             f"{self.epsilon!r}")

    def _prepare(self, X, y, sample_weight, reset):
        X, y = self._validate_X_y(X, y, reset, y_numeric=True)
        dtype = self._compute_dtype(X)
        y = np.ascontiguousarray(y, dtype=dtype)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{X.shape[0]}, {y.shape[0]}]")
        if sample_weight is not None:  # None stays None: the loop then reads no weights
            sample_weight = np.ascontiguousarray(_check_sample_weight(
                gpu_inputs.to_host(sample_weight), y, dtype=dtype))
        return X, y, sample_weight

    def fit(self, X, y, sample_weight=None):
        """Fit by gradient descent for up to max_iter epochs (one compiled call)."""
        self._check_params()
        if any_dask(X, y, sample_weight):  # data-parallel on the Dask cluster
            return _dask_fit(self, X, y, sample_weight)
        X, y, sw = self._prepare(X, y, sample_weight, reset=True)
        n, d = X.shape
        dtype = self._compute_dtype(X)
        loss_code = _REGRESSION_LOSSES[self.loss]
        train_rows, val_rows = self._split(y, sw, n, self.early_stopping)
        if self.warm_start and hasattr(self, "coef_") and self.coef_.shape == (d,):
            states = self._new_states(1, 1, d, dtype, self.coef_.reshape(1, -1),
                                      self.intercept_)
        else:
            states = self._new_states(1, 1, d, dtype, intercept_init=self._start_intercepts(
                loss_code, [y], sw, train_rows, 1))
        rng = check_random_state(self.random_state)
        states, reports = self._run_loops(
            X, [y], sw, loss_code, 1, states, train_rows, val_rows, self.max_iter, self.tol, rng)
        coef, intercept = self._store(states, reports, 1, d, dtype)
        self.coef_ = coef.ravel()
        self.intercept_ = intercept
        return self

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing the previous state (t, averaging, optimizer)."""
        self._check_params()
        if any_dask(X, y, sample_weight):
            return _dask_fit(self, X, y, sample_weight, partial=True)
        first = not hasattr(self, "_fit_states")
        X, y, sw = self._prepare(X, y, sample_weight, reset=first)
        n, d = X.shape
        dtype = self._compute_dtype(X)
        loss_code = _REGRESSION_LOSSES[self.loss]
        rows = np.arange(n, dtype=np.int64)
        # the first call starts as fit would on this chunk (intercept_start); later calls
        # continue the state
        states = (self._new_states(1, 1, d, dtype, intercept_init=self._start_intercepts(
            loss_code, [y], sw, rows, 1)) if first else self._fit_states)
        states = [s.astype(dtype) for s in states]
        rng = check_random_state(self.random_state)
        states, reports = self._run_loops(
            X, [y], sw, loss_code, 1, states, rows, None, 1, None, rng)
        coef, intercept = self._store(states, reports, 1, d, dtype)
        self.coef_ = coef.ravel()
        self.intercept_ = intercept
        return self

    def predict(self, X):
        """X @ coef_ + intercept_ (a CuPy array for CuPy input; a lazy Dask array, computed
        blockwise, for Dask input)."""
        scores = self._device_scores(X)
        if scores is not None:
            return scores.ravel()
        check_is_fitted(self)
        if any_dask(X):
            return _dask_predict(self, X, "predict")
        X = validate_data(self, X, accept_sparse=["csr", "csc"],
                          dtype=[np.float64, np.float32], reset=False)
        out = X @ self.coef_.astype(X.dtype, copy=False) + self.intercept_[0]
        return np.asarray(out).ravel()


class SGDLogistic(LinearClassifierMixin, _SGDLinearBase):
    __doc__ = """Logistic regression by (stochastic) gradient descent.

    Binary problems train one weight vector on the log loss. Multiclass problems train a true
    multinomial (softmax cross-entropy) model by default, or one binary model per class with
    ``multi_class='ovr'`` (one compiled call per class).

    loss : {'log_loss'}, default='log_loss'
    multi_class : {'multinomial', 'ovr'}, default='multinomial'
    class_weight : dict, 'balanced' or None
        Multiplies each sample's weight by its class's weight.
""" + _COMMON_DOC

    _is_classifier = True

    def __init__(self, loss="log_loss", *, penalty="l2", alpha=1e-4, l1_ratio=0.15,
                 fit_intercept=True, intercept_start="auto", optimizer="sgd",
                 learning_rate="optimal", eta0=0.01,
                 power_t=0.5, batch_size=1, max_iter=1000, tol=1e-3, n_iter_no_change=5,
                 early_stopping=False, validation_fraction=0.1, shuffle=True, random_state=None,
                 average=False, clip_grad_norm=None, class_weight=None,
                 multi_class="multinomial", warm_start=False, verbose=0, device="cpu",
                 mixed_precision=None, distributed="local_sgd", sync_every=None, client=None):
        store_init_params(self, locals())

    def _check_params(self):
        super()._check_params()
        if self.multi_class not in ("multinomial", "ovr"):
            raise ValueError(f"SGDLogistic: multi_class must be 'multinomial' or 'ovr', got "
                             f"{self.multi_class!r}")
        cw = self.class_weight
        if not (cw is None or cw == "balanced" or isinstance(cw, dict)):
            raise ValueError(f"SGDLogistic: class_weight must be None, 'balanced' or a dict, "
                             f"got {cw!r}")

    def _prepare(self, X, y, sample_weight, reset):
        X, y = self._validate_X_y(X, y, reset)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{X.shape[0]}, {y.shape[0]}]")
        if y.dtype.kind not in "biu":  # integer labels are always binary or multiclass
            check_classification_targets(y)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(gpu_inputs.to_host(sample_weight), y,
                                                 dtype=self._compute_dtype(X))
        return X, y, sample_weight

    def _weights_with_classes(self, y, sample_weight, dtype, y_idx=None):
        """Class indices of y (fit passes them in from _encode_labels) and the sample weights
        times the class weights."""
        if y_idx is None:
            y_idx = np.searchsorted(self.classes_, y)
            if self.class_weight is None:
                # a label outside classes_ lands on a neighbour or past the end (scikit-learn's
                # message); one vectorised compare instead of compute_class_weight's np.unique
                found = self.classes_[np.minimum(y_idx, len(self.classes_) - 1)] == y
                if not np.all(found):
                    raise ValueError("classes should include all valid labels that can be in y")
        if self.class_weight is None:
            return y_idx, sample_weight
        # compute_class_weight also checks that y holds no label outside classes_
        class_weight = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        sw = class_weight[y_idx].astype(dtype)
        if sample_weight is not None:
            sw *= sample_weight
        return y_idx, np.ascontiguousarray(sw)

    def _layout(self):
        """(number of loop calls, outputs per call, loss code) for the classes."""
        n_classes = len(self.classes_)
        if n_classes == 2:
            return 1, 1, Loss.LOG
        if self.multi_class == "ovr":
            return n_classes, 1, Loss.LOG
        return 1, n_classes, Loss.SOFTMAX

    def _targets(self, y_idx, dtype):
        n_loops, n_outputs, loss_code = self._layout()
        if loss_code == Loss.SOFTMAX:
            return [np.ascontiguousarray(y_idx, dtype=dtype)]
        if n_loops == 1:
            return [np.where(y_idx == 1, 1.0, -1.0).astype(dtype)]
        return [np.where(y_idx == k, 1.0, -1.0).astype(dtype) for k in range(n_loops)]

    def _class_start(self, y_idx, sw, train_rows):
        """_start_intercepts for the targets of the layout: the log-odds of each binary
        problem's positives, or the log class priors of the multinomial model."""
        if not self._starts_from_best_constant():
            return None
        _, n_outputs, loss_code = self._layout()
        return self._start_intercepts(loss_code, self._targets(y_idx, np.float64), sw,
                                      train_rows, n_outputs)

    def _fit_with(self, X, y_idx, sw, states, train_rows, val_rows, max_iter, tol, rng):
        n_loops, n_outputs, loss_code = self._layout()
        labels = list(self.classes_) if n_loops > 1 else None
        dtype = self._compute_dtype(X)
        states, reports = self._run_loops(X, self._targets(y_idx, dtype), sw, loss_code,
                                          n_outputs, states, train_rows, val_rows, max_iter,
                                          tol, rng, labels=labels)
        coef, intercept = self._store(states, reports, n_outputs, X.shape[1], dtype)
        self.coef_ = coef
        self.intercept_ = intercept

    def fit(self, X, y, sample_weight=None):
        """Fit by gradient descent for up to max_iter epochs (one compiled call, or one per
        class for one-vs-rest)."""
        self._check_params()
        if any_dask(X, y, sample_weight):  # data-parallel on the Dask cluster
            return _dask_fit(self, X, y, sample_weight)
        X, y, sw = self._prepare(X, y, sample_weight, reset=True)
        classes, y_idx = _encode_labels(y)
        if classes.shape[0] < 2:
            raise ValueError(f"SGDLogistic needs samples of at least 2 classes in the data, got "
                             f"{classes.shape[0]} class")
        old_classes = getattr(self, "classes_", None)
        self.classes_ = classes
        dtype = self._compute_dtype(X)
        y_idx, sw = self._weights_with_classes(y, sw, dtype, y_idx)
        n, d = X.shape
        n_loops, n_outputs, _ = self._layout()
        warm = (self.warm_start and hasattr(self, "coef_") and old_classes is not None
                and np.array_equal(old_classes, classes)
                and self.coef_.shape == (n_loops * n_outputs, d))
        train_rows, val_rows = self._split(y_idx, sw, n, self.early_stopping)
        if warm:
            states = self._new_states(n_loops, n_outputs, d, dtype, self.coef_,
                                      self.intercept_)
        else:
            states = self._new_states(n_loops, n_outputs, d, dtype,
                                      intercept_init=self._class_start(y_idx, sw, train_rows))
        rng = check_random_state(self.random_state)
        try:
            self._fit_with(X, y_idx, sw, states, train_rows, val_rows, self.max_iter,
                           self.tol, rng)
        except ValueError:
            if old_classes is None:
                del self.classes_
            else:
                self.classes_ = old_classes
            raise
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), continuing the previous state. `classes` (all labels) is
        required on the first call."""
        self._check_params()
        if any_dask(X, y, sample_weight):
            return _dask_fit(self, X, y, sample_weight, partial=True, classes=classes)
        first = _check_partial_fit_first_call(self, classes)
        X, y, sw = self._prepare(X, y, sample_weight, reset=first)
        if len(self.classes_) < 2:
            raise ValueError("SGDLogistic needs at least 2 classes in `classes`")
        dtype = self._compute_dtype(X)
        y_idx, sw = self._weights_with_classes(y, sw, dtype)
        n, d = X.shape
        n_loops, n_outputs, _ = self._layout()
        if first or not hasattr(self, "_fit_states"):  # starts as fit would on this chunk
            states = self._new_states(n_loops, n_outputs, d, dtype, intercept_init=(
                self._class_start(y_idx, sw, np.arange(n, dtype=np.int64))))
        else:
            states = [s.astype(dtype) for s in self._fit_states]
        rng = check_random_state(self.random_state)
        self._fit_with(X, y_idx, sw, states, np.arange(n, dtype=np.int64), None, 1, None, rng)
        return self

    def decision_function(self, X):
        """X @ coef_.T + intercept_: shape (n,) for two classes, else (n, n_classes); a CuPy
        array for CuPy input."""
        scores = self._device_scores(X)
        if scores is not None:
            return scores.ravel() if scores.shape[1] == 1 else scores
        check_is_fitted(self)
        if any_dask(X):
            return _dask_predict(self, X, "decision_function")
        X = validate_data(self, X, accept_sparse=["csr", "csc"],
                          dtype=[np.float64, np.float32], reset=False)
        scores = np.asarray(X @ self.coef_.T.astype(X.dtype, copy=False)) + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X):
        """Predicted classes; for CuPy input a CuPy array (of the class indices mapped to the
        classes, which must then be numbers); a lazy Dask array, computed blockwise, for Dask
        input."""
        if any_dask(X):
            check_is_fitted(self)
            return _dask_predict(self, X, "predict")
        if not gpu_inputs.is_cupy_array(X):
            return super().predict(X)
        scores = self.decision_function(X)
        xp = gpu_inputs.runtime_for().xp
        idx = (scores > 0).astype(np.int64) if scores.ndim == 1 else xp.argmax(scores, axis=1)
        return xp.asarray(self.classes_)[idx]

    def _device_special(self, X):
        # scipy.special's functions for the array type of X: cupyx.scipy.special for CuPy
        if gpu_inputs.is_cupy_array(X):
            import cupyx.scipy.special

            return cupyx.scipy.special, gpu_inputs.runtime_for().xp
        return None, np

    def predict_proba(self, X):
        """Class probabilities: sigmoid (binary), softmax (multinomial), or normalised
        one-vs-rest sigmoids (CuPy arrays for CuPy input, lazy Dask arrays for Dask input)."""
        if any_dask(X):
            return _dask_predict(self, X, "predict_proba")
        special, xp = self._device_special(X)
        scores = self.decision_function(X)
        if special is not None:
            if scores.ndim == 1:
                return xp.stack([special.expit(-scores), special.expit(scores)], axis=1)
            if self._layout()[2] == Loss.SOFTMAX:
                return special.softmax(scores, axis=1)
            p = special.expit(scores)
            return p / xp.maximum(p.sum(axis=1, keepdims=True), xp.finfo(p.dtype).tiny)
        if scores.ndim == 1:  # expit(-s), not 1 - expit(s): keeps tiny probabilities > 0
            return np.column_stack([expit(-scores), expit(scores)])
        if self._layout()[2] == Loss.SOFTMAX:
            return softmax(scores, axis=1)
        p = expit(scores)
        total = p.sum(axis=1, keepdims=True)
        uniform = total[:, 0] == 0
        p[uniform] = 1.0
        total[uniform] = p.shape[1]
        return p / total

    def predict_log_proba(self, X):
        """Logarithm of predict_proba, computed stably where the model allows it."""
        if any_dask(X):
            return _dask_predict(self, X, "predict_log_proba")
        special, xp = self._device_special(X)
        if special is not None:
            return xp.log(self.predict_proba(X))
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return np.column_stack([log_expit(-scores), log_expit(scores)])
        if self._layout()[2] == Loss.SOFTMAX:
            return log_softmax(scores, axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags
