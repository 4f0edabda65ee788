"""Learning-rate range test: `lr_find(estimator, X, y)` and its plot helper.

Users call it (also as `gdsolve.lr_find`) to pick a learning rate. It drives the estimator only
through its public API, so it works for every gdsolve estimator (and scikit-learn's SGD / MLP):
a clone is trained with `partial_fit` on successive mini-batches while the constant learning rate
grows exponentially from `start_lr` to `end_lr` (eta0 for linear models, learning_rate_init for
MLPs, or the lr of an Optimizer object); after every step the objective
(`gdsolve.reference.objective`) is measured on a fixed evaluation sample. The suggestion is the
learning rate where the smoothed loss falls fastest (steepest negative slope against log lr),
taken before the loss minimum and before divergence.
"""

import math
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_X_y

from gdsolve.reference import objective

__all__ = ["lr_find", "LRFinderResult", "plot_lr_find"]


@dataclass
class LRFinderResult:
    """Outcome of a range test.

    lrs, losses : learning rate of each step and the evaluation objective after it
    smoothed_losses : exponential moving average of losses (bias-corrected)
    suggestion : learning rate at the steepest descent of the smoothed loss
    min_loss_lr : learning rate at the smoothed-loss minimum (suggestion <= min_loss_lr)
    diverged : whether the run stopped on divergence (loss above `diverge_factor` x best,
        non-finite, or the estimator refusing the step); diverged_lr is that step's lr
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed_losses: np.ndarray
    suggestion: float
    suggestion_index: int
    min_loss_lr: float
    min_loss_index: int
    diverged: bool
    diverged_lr: float | None
    start_lr: float
    end_lr: float
    lr_param: str

    def plot(self, ax=None, **kwargs):
        return plot_lr_find(self, ax=ax, **kwargs)


def _lr_setter(estimator):
    """(parameter name, function(estimator, lr) -> None) setting a constant learning rate."""
    params = estimator.get_params(deep=False)
    optimizer = params.get("optimizer")
    if optimizer is not None and hasattr(optimizer, "get_params") and \
            "lr" in optimizer.get_params():
        # An Optimizer object keeps its own lr (the estimators ignore eta0 then).
        def set_lr(est, lr):
            est.set_params(optimizer__lr=lr)
        return "optimizer.lr", set_lr
    for name in ("eta0", "learning_rate_init"):
        if name in params:
            def set_lr(est, lr, name=name):
                est.set_params(**{name: lr})
            return name, set_lr
    raise ValueError(
        f"lr_find needs an estimator with an eta0 or learning_rate_init parameter (or an "
        f"optimizer object with lr); {type(estimator).__name__} has neither"
    )


def _default_step_size(estimator, n_samples):
    batch = estimator.get_params(deep=False).get("batch_size")
    if isinstance(batch, Integral) and batch > 1:
        return int(min(batch, n_samples))
    if batch == "full":
        return n_samples
    if batch == "auto":
        return min(200, n_samples)
    return min(32, n_samples)  # per-sample SGD: 32 updates per step


def lr_find(estimator, X, y, *, start_lr=1e-6, end_lr=10.0, num_steps=100, batch_size=None,
            smoothing=0.5, diverge_factor=4.0, eval_size=2048, random_state=0):
    """Learning-rate range test on a clone of `estimator` (which is left untouched).

    Parameters
    ----------
    estimator : gdsolve (or scikit-learn SGD / MLP) estimator with partial_fit
    X, y : training data
    start_lr, end_lr : the learning-rate range, swept geometrically over `num_steps` steps
    batch_size : samples per step (one partial_fit call); default: the estimator's integer
        batch_size, all samples for "full", min(200, n) for "auto", else 32
    smoothing : weight of the previous value in the moving average of the loss (0 = none)
    diverge_factor : stop once the smoothed loss exceeds this multiple of its minimum
    eval_size : samples of the fixed evaluation set the loss is measured on
    random_state : seed of the batch order and the evaluation sample

    Returns
    -------
    LRFinderResult (``.suggestion``, ``.plot()``)
    """
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr)):
        if not isinstance(value, Real) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if not end_lr > start_lr:
        raise ValueError(f"end_lr ({end_lr}) must be larger than start_lr ({start_lr})")
    if not isinstance(num_steps, Integral) or num_steps < 5:
        raise ValueError(f"num_steps must be an int >= 5, got {num_steps!r}")
    if batch_size is not None and (not isinstance(batch_size, Integral) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if not isinstance(smoothing, Real) or not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    if not isinstance(diverge_factor, Real) or not diverge_factor > 1:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor!r}")
    if not isinstance(eval_size, Integral) or eval_size < 1:
        raise ValueError(f"eval_size must be a positive int, got {eval_size!r}")
    if not hasattr(estimator, "partial_fit"):
        raise ValueError(f"lr_find needs partial_fit; {type(estimator).__name__} has none")
    X, y = check_X_y(X, y, accept_sparse="csr", dtype=(np.float64, np.float32),
                     multi_output=True, y_numeric=not is_classifier(estimator))
    n = X.shape[0]

    est = clone(estimator)
    lr_param, set_lr = _lr_setter(est)
    params = est.get_params(deep=False)
    if "learning_rate" in params:
        est.set_params(learning_rate="constant")  # the sweep owns the learning rate
    for flag in ("early_stopping", "warm_start"):
        if params.get(flag):
            est.set_params(**{flag: False})
    rng = check_random_state(random_state)
    step = batch_size or _default_step_size(est, n)
    step = min(step, n)
    eval_rows = rng.choice(n, size=min(eval_size, n), replace=False)
    X_eval, y_eval = X[eval_rows], y[eval_rows]
    fit_kwargs = {"classes": np.unique(y)} if is_classifier(est) else {}

    lrs = np.geomspace(start_lr, end_lr, num_steps)
    losses, smoothed = [], []
    order = rng.permutation(n)
    cursor = 0
    average = 0.0
    best = math.inf
    diverged_lr = None
    for i, lr in enumerate(lrs):
        if cursor + step > n:
            order, cursor = rng.permutation(n), 0
        rows = order[cursor:cursor + step]
        cursor += step
        set_lr(est, float(lr))
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                est.partial_fit(X[rows], y[rows], **fit_kwargs)
                loss = objective(est, X_eval, y_eval)
        except (ValueError, FloatingPointError, OverflowError):
            # gdsolve and scikit-learn refuse a diverging step with a ValueError: the range
            # test's stopping signal, not an error.
            diverged_lr = float(lr)
            break
        if not math.isfinite(loss):
            diverged_lr = float(lr)
            break
        losses.append(loss)
        average = smoothing * average + (1 - smoothing) * loss
        value = average / (1 - smoothing ** (i + 1))
        smoothed.append(value)
        best = min(best, value)
        if i > 0 and value > diverge_factor * best:
            diverged_lr = float(lr)
            break
    return _summarise(lrs[:len(losses)], np.array(losses), np.array(smoothed), diverged_lr,
                      start_lr, end_lr, lr_param)


def _summarise(lrs, losses, smoothed, diverged_lr, start_lr, end_lr, lr_param):
    if len(losses) < 3:
        raise ValueError(
            f"the loss diverged within {len(losses)} steps of start_lr={start_lr:g}: "
            "lower start_lr (or scale the inputs)"
        )
    min_index = int(np.argmin(smoothed))
    if min_index < 2:
        warnings.warn(
            "the loss did not decrease over the range; lower start_lr. Suggesting start_lr.",
            UserWarning,
            stacklevel=3,
        )
        suggestion_index = 0
    else:
        # Steepest descent of the smoothed loss against log(lr), before the minimum.
        slope = np.gradient(smoothed[:min_index + 1], np.log(lrs[:min_index + 1]))
        suggestion_index = int(np.argmin(slope))
    if diverged_lr is None:
        warnings.warn(
            f"the loss did not diverge up to end_lr={end_lr:g}; the suggestion may be "
            "conservative (raise end_lr to see the full curve)",
            UserWarning,
            stacklevel=3,
        )
    return LRFinderResult(
        lrs=lrs, losses=losses, smoothed_losses=smoothed,
        suggestion=float(lrs[suggestion_index]), suggestion_index=suggestion_index,
        min_loss_lr=float(lrs[min_index]), min_loss_index=min_index,
        diverged=diverged_lr is not None, diverged_lr=diverged_lr,
        start_lr=float(start_lr), end_lr=float(end_lr), lr_param=lr_param,
    )


def plot_lr_find(result, ax=None, show_raw=True):
    """Loss against learning rate (log x), with the suggestion marked. Returns the Axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    if show_raw:
        ax.plot(result.lrs, result.losses, color="0.7", lw=1, label="loss")
    ax.plot(result.lrs, result.smoothed_losses, lw=2, label="smoothed loss")
    ax.axvline(result.suggestion, color="C3", ls="--",
               label=f"suggestion {result.suggestion:.2g}")
    if result.diverged_lr is not None:
        ax.axvline(result.diverged_lr, color="0.4", ls=":",
                   label=f"diverged at {result.diverged_lr:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel(f"learning rate ({result.lr_param})")
    ax.set_ylabel("objective on the evaluation sample")
    ax.legend(fontsize=8)
    return ax
