"""Small dense multilayer perceptrons behind scikit-learn estimators: SGDMLPClassifier and
SGDMLPRegressor. Users call these; each `fit` validates the input, builds the flat parameter
vector, its FitState and the engine's config records, and runs the epoch driver
(gdsolve.engine) over the CPU executor (gdsolve/_cpu_mlp.pyx over
csrc/include/gdsolve/cpu/mlp_executor.h): every epoch is one compiled call.

Conventions follow scikit-learn's MLPClassifier / MLPRegressor (defaults, Glorot-uniform
initialisation, loss_ including 0.5 * alpha * ||W||^2 / batch_size, stopping rule, attributes);
update rules and schedules are gdsolve's (PyTorch semantics), see docs/mlp.md.
"""

import math
import warnings
from contextlib import nullcontext
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from gdsolve import _core, _cpu_mlp, _structs, engine
from gdsolve._base import (
    FIT_DIVERGED,
    GdsolveEstimatorMixin,
    available_threads,
    handle_fit_status,
    resolve_optimizer,
    resolve_schedule,
    single_threaded_blas,
    store_init_params,
)
from gdsolve._codes import Activation, Clip, Loss, PlateauMode
from gdsolve._codes import Schedule as ScheduleCode
from gdsolve._intercept import best_constant, check_intercept_start, starts_at_best_constant
from gdsolve._params import ParamNamesOnceMixin
from gdsolve.distributed import DistributedParamsMixin, any_dask, check_distributed_params
from gdsolve.distributed import dask_fit_mlp as _dask_fit
from gdsolve.distributed import dask_predict as _dask_predict
from gdsolve.gpu import inputs as gpu_inputs
from gdsolve.gpu import mlp as gpu_mlp
from gdsolve.optim import Muon, Sophia

__all__ = ["SGDMLPClassifier", "SGDMLPRegressor"]

_ACTIVATIONS = {
    "identity": Activation.IDENTITY,
    "relu": Activation.RELU,
    "tanh": Activation.TANH,
    "logistic": Activation.LOGISTIC,
}
_OUT_ACTIVATION = {Loss.SQUARED: "identity", Loss.LOG: "logistic", Loss.SOFTMAX: "softmax"}
_SKLEARN_MLP_RATES = ("constant", "invscaling", "adaptive")  # MLPClassifier's learning_rate


def starts_from_best_constant(est):
    """Whether a fresh fit of the MLP estimator `est` sets the output layer's bias to the best
    constant (intercept_start): 'auto' keeps scikit-learn's Glorot draw for plain SGD with one
    of scikit-learn's rates, the case whose trajectory equals MLPRegressor / MLPClassifier
    (solver='sgd', momentum=0)."""
    opt, _ = resolve_optimizer(est.optimizer, est.learning_rate_init)
    return starts_at_best_constant(est.intercept_start, opt, isinstance(est.learning_rate, str)
                                   and est.learning_rate in _SKLEARN_MLP_RATES)


def output_bias_start(loss, n_outputs, targets, labels):
    """The best constant of the output loss (gdsolve/_intercept.py) over the training rows:
    the mean of each target column (squared), the log-odds of each 0/1 column (logistic
    outputs), the log class priors (softmax)."""
    if loss == Loss.SOFTMAX:
        return best_constant(loss, labels, n_outputs=n_outputs)
    return best_constant(loss, np.asarray(targets).reshape(-1, n_outputs), n_outputs=n_outputs)


def glorot_uniform_init(layer_units, activation, random_state, dtype=np.float64):
    """Initial (coefs, intercepts) as scikit-learn's MLP draws them: for each layer in order, the
    coefficients then the intercepts from U(-b, b), b = sqrt(6 / (fan_in + fan_out)) (sqrt(2 / ...)
    for the logistic activation). With the same RandomState the draws equal scikit-learn's."""
    factor = 2.0 if activation == "logistic" else 6.0
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:], strict=True):
        bound = math.sqrt(factor / (fan_in + fan_out))
        coefs.append(random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
        intercepts.append(random_state.uniform(-bound, bound, fan_out).astype(dtype))
    return coefs, intercepts


def pack_parameters(coefs, intercepts, dtype):
    """The loop's flat layout: every coefficient matrix (row-major), then every intercept."""
    parts = [np.asarray(c, dtype=dtype).ravel() for c in coefs]
    parts += [np.asarray(b, dtype=dtype).ravel() for b in intercepts]
    return np.ascontiguousarray(np.concatenate(parts))


def unpack_parameters(flat, layer_units):
    """(coefs, intercepts) as views into `flat` (see pack_parameters)."""
    coefs, intercepts, off = [], [], 0
    for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:], strict=True):
        coefs.append(flat[off:off + fan_in * fan_out].reshape(fan_in, fan_out))
        off += fan_in * fan_out
    for fan_out in layer_units[1:]:
        intercepts.append(flat[off:off + fan_out])
        off += fan_out
    return coefs, intercepts


# What a warm-started `fit` resets (scikit-learn builds a new optimizer; the stopping counters
# and the samples-seen count carry over); `plateau_lr` is the schedule's base rate.
_OPTIMIZER_RESET = dict(step=0, optimizer_step=0, mu_product=1.0, lr_factor=1.0,
                        plateau_best=np.inf, plateau_bad_epochs=0, plateau_cooldown=0)


def _initial_slots(optimizer, companion, params, units, dtype):
    """The optimizer state slots of a fresh fit. Muon (model/mlp.h): its momentum buffer (slot 0)
    starts at zero on the hidden layers' matrices, the companion's state (its init_state) on the
    rest of the vector, which is the tail from the output layer's coefficients on."""
    if companion is None:
        init = optimizer.init_state(params)
        return [np.ascontiguousarray(init[name], dtype=dtype)
                for name in optimizer.state_slot_names]
    init = companion.init_state(params)
    slots = [np.ascontiguousarray(init[name], dtype=dtype) for name in companion.state_slot_names]
    if not slots:
        slots = [np.zeros_like(params)]
    hidden = sum(a * b for a, b in zip(units[:-2], units[1:-1], strict=True))
    slots[0][:hidden] = 0
    return slots


def _verbose_printer(verbose):
    if not verbose:
        return None

    def show(epoch, loss, score, lr, seconds):  # scikit-learn's MLP messages
        print(f"Iteration {epoch}, loss = {loss:.8f}")
        if score == score:
            print(f"Validation score: {score:f}")

    return show


class _BaseSGDMLP(DistributedParamsMixin, GdsolveEstimatorMixin, ParamNamesOnceMixin,
                  BaseEstimator):
    """Shared fit machinery; subclasses define the targets (`_encode_targets`) and outputs."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        alpha=0.0001,
        optimizer="adam",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        batch_size="auto",
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        shuffle=True,
        random_state=None,
        warm_start=False,
        clip_grad_norm=None,
        intercept_start="auto",
        verbose=False,
        device="cpu",
        mixed_precision=None,
        distributed="local_sgd",
        sync_every=None,
        client=None,
    ):
        store_init_params(self, locals())

    # ---- parameter checks (all before any work) --------------------------------------------

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, Integral) and not isinstance(sizes, bool):
            sizes = [sizes]
        try:
            sizes = list(sizes)
        except TypeError:
            raise ValueError(
                f"hidden_layer_sizes must be an int or a sequence of ints, got {sizes!r}"
            ) from None
        if not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    def _check_params(self):
        def number(name, low, high=None, low_open=False, integer=False):
            value = getattr(self, name)
            kind = Integral if integer else Real
            ok = isinstance(value, kind) and not isinstance(value, bool)
            ok = ok and (value > low if low_open else value >= low)
            ok = ok and (high is None or value < high)
            if not ok:
                bound = f"> {low}" if low_open else f">= {low}"
                if high is not None:
                    bound += f" and < {high}"
                what = "an int" if integer else "a number"
                raise ValueError(f"{name} must be {what} {bound}, got {value!r}")

        self._hidden_sizes()
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}"
            )
        number("alpha", 0.0)
        number("learning_rate_init", 0.0, low_open=True)
        number("power_t", 0.0)
        number("max_iter", 1, integer=True)
        number("tol", 0.0)
        number("n_iter_no_change", 1, integer=True)
        number("validation_fraction", 0.0, 1.0, low_open=True)
        bs = self.batch_size
        if not (bs in ("auto", "full") or (isinstance(bs, Integral) and not isinstance(bs, bool)
                                           and bs >= 1)):
            raise ValueError(f"batch_size must be 'auto', 'full' or an int >= 1, got {bs!r}")
        if self.clip_grad_norm is not None:
            number("clip_grad_norm", 0.0, low_open=True)
        gpu_inputs.check_device(self.device, type(self).__name__)
        if self.mixed_precision not in (None, "float16", "bfloat16"):
            raise ValueError(f"mixed_precision must be None, 'float16' or 'bfloat16', got "
                             f"{self.mixed_precision!r}")
        check_intercept_start(self.intercept_start)
        for flag in ("early_stopping", "shuffle", "warm_start"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise ValueError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        check_distributed_params(self)

    def _batch_size_for(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size == "full":
            return n_samples
        if self.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be "
                "clipped",
                UserWarning,
                stacklevel=3,
            )
        return int(min(self.batch_size, n_samples))

    # ---- the fit -----------------------------------------------------------------------------

    def _fit(self, X, y, incremental):
        self._check_params()
        hidden = self._hidden_sizes()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, targets, labels = self._validate_fit_data(X, y, incremental, reset=first_pass)
        place = self._place
        dtype = (np.dtype(np.float32) if place.storage is not None or X.dtype == np.float16
                 else np.dtype(X.dtype))
        if targets is not None:
            targets = np.ascontiguousarray(targets, dtype=dtype)
        loss = self._loss_code
        n_outputs = self._n_outputs_for_loop
        units = [X.shape[1]] + hidden + [n_outputs]
        rs = check_random_state(self.random_state)

        params, state, loss_curve, val_curve = self._start_parameters(units, rs, dtype,
                                                                      first_pass)

        # early stopping: hold out a validation split drawn from the RandomState, after the
        # initial weights (as scikit-learn, which stratifies only single-output targets)
        if self.early_stopping:
            stratify = targets[:, 0] if loss == Loss.LOG and n_outputs == 1 else None
            index = np.arange(X.shape[0])
            train_idx, val_idx = train_test_split(
                index, random_state=rs, test_size=self.validation_fraction, stratify=stratify
            )
            if val_idx.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the "
                    "size of your dataset."
                )
            train_arrays = self._arrays(X, targets, labels, train_idx)
            val_arrays = self._arrays(X, targets, labels, val_idx)
        elif place.gpu:
            train_arrays, val_arrays = self._arrays(X, targets, labels, None), None
        else:
            train_arrays = self._arrays(X, targets, labels, None)
            val_arrays = _cpu_mlp.MlpArrays(np.empty((0, X.shape[1]), dtype=dtype),
                                            None if loss == Loss.SOFTMAX
                                            else np.empty((0, n_outputs), dtype=dtype),
                                            np.empty(0, np.int32) if loss == Loss.SOFTMAX
                                            else None)
        if first_pass and starts_from_best_constant(self):
            # the output layer's bias at the best constant of the training rows; every draw
            # (hidden layers, output coefficients, split, seed) stays scikit-learn's
            rows = train_idx if self.early_stopping else slice(None)
            params[-n_outputs:] = output_bias_start(
                loss, n_outputs, None if targets is None else targets[rows],
                None if labels is None else labels[rows])
        n_train = train_arrays[0].shape[0] if place.gpu else train_arrays.n_rows
        batch_size = self._batch_size_for(n_train)
        seed = int(rs.randint(np.iinfo(np.int32).max))  # the shuffling generator's seed

        optimizer, base_lr = resolve_optimizer(self.optimizer, self.learning_rate_init)
        companion = optimizer.companion_optimizer() if isinstance(optimizer, Muon) else None
        if isinstance(optimizer, Sophia) and optimizer.estimator != "gnb":
            raise ValueError("the MLP estimators run Sophia with estimator='gnb' (the exact "
                             "Gauss-Newton diagonal is offered for the linear models), got "
                             f"{optimizer.estimator!r}")
        total_steps = int(self.max_iter) * int(math.ceil(n_train / batch_size))
        schedule, schedule_config = resolve_schedule(
            self.learning_rate, lr=base_lr, total_steps=total_steps, alpha=self.alpha or None,
            loss=Loss.LOG if is_classifier_loss(loss) else Loss.SQUARED, power_t=self.power_t,
        )
        plateau_lr = float(schedule_config.get("base_lr", base_lr))

        state = self._start_state(state, params, optimizer, companion, units, dtype, incremental,
                                  first_pass, plateau_lr)
        state.start_fit(seed, order=np.arange(n_train, dtype=np.uint32))
        rules = self._fit_rules(schedule, schedule_config, batch_size, incremental)
        driver = rules.driver
        model = self._model_record(loss)
        n_threads = 1 if place.gpu else _cpu_mlp.team_size(available_threads(), batch_size)
        opt_record = _structs.record("OptimizerConfig", optimizer.to_config())
        companion_record = (None if companion is None
                            else _structs.record("OptimizerConfig", companion.to_config()))
        if place.gpu:
            executor = gpu_mlp.GpuMlpExecutor(units, model, opt_record, rules.schedule, driver,
                                              train_arrays, val_arrays,
                                              runtime=gpu_inputs.runtime_for(),
                                              storage=place.storage, companion=companion_record)
        else:
            cpu = _structs.record("CpuConfig", {"n_threads": n_threads})
            executor = _cpu_mlp.MlpExecutor(np.asarray(units, dtype=np.int64), model, opt_record,
                                            rules.schedule, driver, cpu, train_arrays, val_arrays,
                                            companion_record)
        # a team of threads shares each batch, every member with single-threaded BLAS (small
        # GEMMs side by side beat one GEMM split by BLAS's threads)
        blas_limit = single_threaded_blas() if n_threads > 1 else nullcontext()
        with blas_limit:
            report = engine.run(executor, state, rules, on_epoch=_verbose_printer(self.verbose))
        # raises on divergence before anything is assigned: the previous model stays intact
        handle_fit_status(report.status, report.stop_epoch, type(self).__name__,
                          1 if incremental else int(self.max_iter), float(self.tol))
        if report.status == FIT_DIVERGED:  # pragma: no cover - handle_fit_status raised
            return self

        return self._store_fit(state, report, units, loss, n_outputs, loss_curve, val_curve)

    # ---- the pieces of a fit that every executor's path shares (also gdsolve.distributed.mlp) --

    def _start_parameters(self, units, rs, dtype, first_pass):
        """(parameter vector, the fitted FitState or None, the loss and validation curves so
        far): Glorot draws for a fresh fit, the fitted model for warm_start / partial_fit."""
        if first_pass:
            coefs, intercepts = glorot_uniform_init(units, self.activation, rs, dtype)
            params = pack_parameters(coefs, intercepts, dtype)
            state = None
            loss_curve, val_curve = [], None
        else:
            prev_units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
            if prev_units != units:
                raise ValueError(
                    f"warm_start/partial_fit needs the same layer sizes as the fitted model "
                    f"{prev_units}, got {units}; set warm_start=False to refit"
                )
            params = pack_parameters(self.coefs_, self.intercepts_, dtype)
            state = self._fit_state
            loss_curve = list(self.loss_curve_)
            val_curve = (list(self.validation_scores_) if self.validation_scores_ is not None
                         else None)
        if self.early_stopping and val_curve is None:
            val_curve = []
        return params, state, loss_curve, val_curve

    def _start_state(self, state, params, optimizer, companion, units, dtype, incremental,
                     first_pass, plateau_lr):
        """The FitState this call trains (start_fit not yet called). The optimizer state is kept
        across partial_fit calls and fresh for every fit (as scikit-learn)."""
        if incremental and state is not None:
            state = state.astype(dtype)  # a copy: a failed call keeps the fitted state
            state.params = params
        else:
            slots = _initial_slots(optimizer, companion, params, units, dtype)
            scalars = None if state is None else state.scalars.copy()
            state = engine.FitState(params, slots=slots, scalars=None)
            if scalars is None:
                state.update(plateau_lr=plateau_lr)
            else:  # warm start: the stopping counters and samples seen carry over
                state.scalars[...] = scalars
                state.update(plateau_lr=plateau_lr, **_OPTIMIZER_RESET)
        if getattr(self, "_early_stopping_state", self.early_stopping) != self.early_stopping:
            # the best value switches between training loss and validation score
            state.update(best=np.inf, no_improvement=0)
        state.best_params = None
        if self.early_stopping:
            state.best_params = (pack_parameters(*self._best_parameters, dtype)
                                 if not first_pass and hasattr(self, "_best_parameters")
                                 else params.copy())
        return state

    def _fit_rules(self, schedule, schedule_config, batch_size, incremental):
        """The driver's records (DriverConfig, ScheduleConfig, ReduceOnPlateauConfig)."""
        inner = getattr(schedule, "inner", schedule)
        plateau_mode = (PlateauMode.ADAPTIVE if schedule.code == ScheduleCode.ADAPTIVE else
                        PlateauMode.REDUCE_ON_PLATEAU
                        if schedule.code == ScheduleCode.REDUCE_ON_PLATEAU else PlateauMode.NONE)
        driver = _structs.record("DriverConfig", {
            "max_iter": 1 if incremental else int(self.max_iter),
            "batch_size": batch_size,
            "shuffle": bool(self.shuffle),
            "tol": float(self.tol),
            # scikit-learn's MLP stops after more than n_iter_no_change epochs without progress
            "patience": int(self.n_iter_no_change) + 1,
            "count_plateau": True,
            "stop_on_plateau": not incremental,
            "monitor_score": bool(self.early_stopping),
            "plateau_mode": int(plateau_mode),
            "keep_best": bool(self.early_stopping),
        })
        plateau_cfg = (inner.plateau_config() if plateau_mode == PlateauMode.REDUCE_ON_PLATEAU
                       else {})
        return engine.FitRules(driver, _structs.record("ScheduleConfig", schedule_config),
                               _core.plateau_record(plateau_cfg))

    def _model_record(self, loss):
        return _structs.record("MlpConfig", {
            "activation": int(_ACTIVATIONS[self.activation]),
            "loss": int(loss),
            "alpha": float(self.alpha),
            "clip": int(Clip.NORM if self.clip_grad_norm is not None else Clip.NONE),
            "clip_limit": float(self.clip_grad_norm or 0.0),
        })

    def _store_fit(self, state, report, units, loss, n_outputs, loss_curve, val_curve):
        """The fitted attributes from the trained state and the driver's report."""
        self.coefs_, self.intercepts_ = unpack_parameters(state.params, units)
        self._fit_state = state
        self._early_stopping_state = bool(self.early_stopping)
        self.n_layers_ = len(units)
        self.n_outputs_ = n_outputs
        self.out_activation_ = _OUT_ACTIVATION[loss]
        self.loss_curve_ = loss_curve + report.loss_curve
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else float("nan")
        self.n_iter_ = int(report.n_epochs)
        self.t_ = int(state["t"] - 1)
        if self.early_stopping:
            self.validation_scores_ = val_curve + report.val_scores
            self.best_validation_score_ = float(-state["best"])
            self.best_loss_ = None
            self._best_parameters = unpack_parameters(state.best_params.copy(), units)
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = float(state["best"])
        return self

    def _arrays(self, X, targets, labels, rows):
        """One data set as the executor takes it: MlpArrays on the CPU, (X, Y, labels) on the
        GPU (X's rows picked on the device)."""
        if rows is not None:
            X = X[rows]
            targets = None if targets is None else targets[rows]
            labels = None if labels is None else labels[rows]
        if self._place.gpu:
            return X, targets, labels
        return _cpu_mlp.MlpArrays(X, targets, labels)

    def _validate_X_predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr"], dtype=(np.float64, np.float32),
                          reset=False)
        return X

    def _forward(self, X):
        """Network output (n_samples, n_outputs_) in X's dtype; probabilities for classifiers.
        A CuPy array, computed on the device, for CuPy input."""
        rt = gpu_inputs.predict_runtime(X)
        if rt is not None:
            check_is_fitted(self)
            X = gpu_inputs.check_cupy_X(self, X, reset=False)
            dtype = self.coefs_[0].dtype
            units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
            params = rt.xp.asarray(pack_parameters(self.coefs_, self.intercepts_, dtype))
            return gpu_mlp.predict_output(rt, units, int(_ACTIVATIONS[self.activation]),
                                          int(self._loss_code), params, X.astype(dtype))
        X = self._validate_X_predict(X)
        dtype = X.dtype
        units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
        params = pack_parameters(self.coefs_, self.intercepts_, dtype)
        return _cpu_mlp.predict(np.asarray(units, dtype=np.int64),
                                int(_ACTIVATIONS[self.activation]), int(self._loss_code), params,
                                _cpu_mlp.MlpArrays(X))

    def fit(self, X, y):
        """Fit the network on (X, y): at most max_iter epochs in one compiled call (on the
        workers of a Dask cluster for Dask input)."""
        if any_dask(X, y):
            self._check_params()
            return _dask_fit(self, X, y)
        return self._fit(X, y, incremental=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def is_classifier_loss(loss):
    return loss in (Loss.LOG, Loss.SOFTMAX)


def _validate_xy(est, X, y, reset, y_numeric):
    """validate_data, or for CuPy input the same checks on the device (device='cpu' copies it
    to the host); sets est._place (where the fit runs)."""
    est._place = gpu_inputs.fit_place(est, X)
    if gpu_inputs.is_cupy_array(X) and not est._place.gpu:
        X = gpu_inputs.to_host(X)
    if gpu_inputs.is_cupy_array(X):
        X = gpu_inputs.check_cupy_X(est, X, reset=reset)
        y = np.asarray(gpu_inputs.to_host(y))
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{X.shape[0]}, {y.shape[0]}]")
        return X, y
    X, y = validate_data(
        est, X, y, accept_sparse=["csr"], multi_output=True, y_numeric=y_numeric,
        dtype=(np.float64, np.float32), reset=reset,
    )
    return X, y


class SGDMLPClassifier(ClassifierMixin, _BaseSGDMLP):
    """Multilayer perceptron classifier trained by a compiled mini-batch loop.

    Softmax cross-entropy for three or more classes; one logistic output for two classes;
    independent logistic outputs for a multilabel indicator `y`. Parameters and attributes follow
    scikit-learn's MLPClassifier (solver='adam' defaults) with gdsolve's optimizers and schedules:

    hidden_layer_sizes : int or tuple of int, default=(100,)
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
    alpha : float, default=1e-4
        L2 strength; the objective of a batch of size B is mean(loss) + 0.5 * alpha * ||W||^2 / B
        (coefficients only), as scikit-learn's MLP.
    optimizer : str or gdsolve.optim.Optimizer, default='adam'
        A name in gdsolve.optim.OPTIMIZER_NAMES (scikit-learn's solver='sgd' is 'nesterov') or an
        Optimizer object (which keeps its own lr). 'muon' / Muon updates the hidden layers'
        weight matrices and its `companion` (AdamW by default) the output layer and the
        intercepts; 'sophia' / Sophia runs the GNB estimator (labels drawn from the network).
    learning_rate : str or gdsolve.schedules.Schedule, default='constant'
        Per-step schedule ('constant', 'invscaling', 'adaptive' with scikit-learn's MLP meaning;
        PyTorch's schedules by name or object). Applies to every optimizer.
    learning_rate_init : float, default=1e-3
        Base learning rate of an optimizer given by name.
    power_t : float, default=0.5
        Exponent of 'invscaling'.
    batch_size : int, 'auto' or 'full', default='auto'
        'auto' = min(200, n_samples); 'full' = n_samples.
    max_iter, tol, n_iter_no_change, early_stopping, validation_fraction, shuffle,
    random_state, warm_start, verbose : as scikit-learn's MLPClassifier.
    clip_grad_norm : float or None, default=None
        Clip the global L2 norm of each batch gradient (PyTorch's clip_grad_norm_).
    intercept_start : {'auto', 'best_constant', 'sklearn'}, default='auto'
        The output layer's bias in a fresh fit (and the first partial_fit call, on its chunk).
        'best_constant': the best constant of the output loss on the training rows, the
        log-odds of each logistic output's positive fraction, the log class priors (softmax),
        the mean of each target (regressor; docs/mlp.md). 'sklearn': scikit-learn's start, the
        Glorot-uniform draw, as for every other parameter. 'auto': the draw for
        plain SGD (optimizer='sgd') with learning_rate 'constant', 'invscaling' or 'adaptive',
        whose trajectory equals scikit-learn's solver='sgd', momentum=0; 'best_constant'
        otherwise. Hidden layers and output coefficients are drawn as scikit-learn draws them
        either way; warm_start and later partial_fit calls continue from the fitted network.
    device : {'cpu', 'cuda', 'auto'}, default='cpu'
        Where the fit runs (as the linear estimators': 'cuda' needs CuPy and a device; 'auto'
        uses a GPU when CuPy sees one; CuPy input runs on the GPU unless device='cpu').
        Predictions on CuPy input are CuPy arrays; fitted attributes are NumPy arrays.
    mixed_precision : {None, 'float16', 'bfloat16'}, default=None
        On the GPU, hold X in this 2-byte dtype; parameters and arithmetic stay float32.
    distributed : {'local_sgd', 'sync_gradient'}, default='local_sgd'
        How a fit on Dask collections (with a dask.distributed Client) trains on the workers
        that hold the blocks (docs/distributed.md): 'local_sgd' trains every worker on its
        blocks for one local epoch (or ``sync_every`` batches) from the current network, then
        averages the parameters and optimizer states weighted by rows; 'sync_gradient' sums
        every batch's gradient over the blocks and takes one step. Ignored for NumPy input.
    sync_every : int or None, default=None
        local_sgd: local batches between averages; None: one local epoch.
    client : distributed.Client, str or None, default=None
        The Client (or scheduler address) of a Dask fit; None: the active Client.

    Attributes: classes_, coefs_, intercepts_, loss_, loss_curve_, best_loss_,
    validation_scores_, best_validation_score_, n_iter_, t_, n_layers_, n_outputs_,
    out_activation_, n_features_in_, feature_names_in_.
    """

    def _validate_fit_data(self, X, y, incremental, reset):
        X, y = _validate_xy(self, X, y, reset, y_numeric=False)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not incremental and (not hasattr(self, "classes_") or not self.warm_start):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        if self._label_binarizer.y_type_ == "multiclass":
            # class indices straight from the sorted classes (no one-hot matrix to build)
            self._loss_code = Loss.SOFTMAX
            self._n_outputs_for_loop = len(self.classes_)
            labels = np.searchsorted(self.classes_, y).astype(np.int32)
            return X, None, labels
        binarized = self._label_binarizer.transform(y)
        if sp.issparse(binarized):
            binarized = binarized.toarray()
        self._loss_code = Loss.LOG
        targets = np.ascontiguousarray(binarized, dtype=X.dtype)
        self._n_outputs_for_loop = targets.shape[1]
        return X, targets, None

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), continuing the optimizer state. `classes` is required on the
        first call (all labels that will ever appear; ignored for a multilabel y)."""
        self._check_params()
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        if any_dask(X, y):
            return _dask_fit(self, X, y, incremental=True, classes=classes)
        if not hasattr(self, "classes_"):
            if classes is None and not type_of_target(y).startswith("multilabel"):
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(
            np.unique(classes), np.asarray(self.classes_)
        ):
            raise ValueError(
                f"`classes={np.asarray(classes)!r}` is not the same as on the first call to "
                f"partial_fit, was {self.classes_!r}"
            )
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predicted classes (or label indicator rows for a multilabel model); a CuPy array for
        CuPy input (the classes must then be numbers); a lazy Dask array, computed blockwise,
        for Dask input."""
        if any_dask(X):
            check_is_fitted(self)
            return _dask_predict(self, X, "predict")
        proba = self._forward(X)
        if gpu_inputs.is_cupy_array(proba):
            xp = gpu_inputs.runtime_for().xp
            if self._label_binarizer.y_type_.startswith("multilabel"):
                return (proba > 0.5).astype(np.int64)
            idx = (proba[:, 0] > 0.5).astype(np.int64) if self.n_outputs_ == 1 else \
                xp.argmax(proba, axis=1)
            return xp.asarray(self.classes_)[idx]
        if self.n_outputs_ == 1:
            proba = proba.ravel()
        return self._label_binarizer.inverse_transform(proba)

    def predict_proba(self, X):
        """Class probabilities, columns in the order of classes_."""
        if any_dask(X):
            check_is_fitted(self)
            return _dask_predict(self, X, "predict_proba")
        proba = self._forward(X)
        if self.n_outputs_ == 1:
            p = proba.ravel()
            xp = gpu_inputs.runtime_for().xp if gpu_inputs.is_cupy_array(p) else np
            return xp.stack([1 - p, p], axis=1)
        return proba

    def predict_log_proba(self, X):
        if any_dask(X):
            check_is_fitted(self)
            return _dask_predict(self, X, "predict_log_proba")
        proba = self.predict_proba(X)
        xp = gpu_inputs.runtime_for().xp if gpu_inputs.is_cupy_array(proba) else np
        return xp.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class SGDMLPRegressor(RegressorMixin, _BaseSGDMLP):
    """Multilayer perceptron regressor (squared loss, identity output, multi-output y) trained by
    a compiled mini-batch loop. Parameters and attributes as SGDMLPClassifier (and scikit-learn's
    MLPRegressor); the batch objective is 0.5 * sum over outputs of (prediction - y)^2 averaged
    over the batch, plus 0.5 * alpha * ||W||^2 / batch_size. With one output loss_ equals
    scikit-learn's; with k outputs scikit-learn reports its loss divided by k (its gradient is
    the same as here).
    """

    _loss_code = Loss.SQUARED

    def _validate_fit_data(self, X, y, incremental, reset):
        X, y = _validate_xy(self, X, y, reset, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        targets = np.ascontiguousarray(y.reshape(y.shape[0], -1), dtype=X.dtype)
        self._n_outputs_for_loop = targets.shape[1]
        return X, targets, None

    def partial_fit(self, X, y):
        """One epoch over (X, y), continuing the optimizer state."""
        if any_dask(X, y):
            self._check_params()
            return _dask_fit(self, X, y, incremental=True)
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predicted targets, (n_samples,) for one output; a lazy Dask array, computed
        blockwise, for Dask input."""
        if any_dask(X):
            check_is_fitted(self)
            return _dask_predict(self, X, "predict")
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out
