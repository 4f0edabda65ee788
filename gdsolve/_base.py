"""Pieces shared by the linear and MLP estimators: fit-status handling (divergence, Ctrl-C,
convergence warnings), optimizer/schedule resolution, and the pickle version stamp.

The epoch driver returns a gds::FitStatus code (csrc/include/gdsolve/codes.h); the
estimators call `handle_fit_status` right after the loop returns and before assigning any fitted
attribute, so a diverged fit never leaves a half-overwritten model.
"""

import functools
import os
import warnings

from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import ThreadpoolController

import gdsolve
from gdsolve.optim import Optimizer, make_optimizer
from gdsolve.schedules import Schedule, make_schedule

FIT_MAX_ITER = 0
FIT_CONVERGED = 1
FIT_DIVERGED = 2
FIT_INTERRUPTED = 3
FIT_STATUS = {
    FIT_MAX_ITER: "max_iter",
    FIT_CONVERGED: "converged",
    FIT_DIVERGED: "diverged",
    FIT_INTERRUPTED: "interrupted",
}


def available_threads():
    """Threads the compiled loops may use to share a batch: the CPUs this process may run on, at
    most 8, and at most the environment variable GDSOLVE_NUM_THREADS when it is set."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    limit = os.environ.get("GDSOLVE_NUM_THREADS", "").strip()
    if limit:
        try:
            wanted = int(limit)
        except ValueError:
            wanted = 0
        if wanted < 1:
            raise ValueError(f"GDSOLVE_NUM_THREADS must be a positive integer, got {limit!r}")
        n = min(n, wanted)
    return max(1, min(n, 8))


@functools.cache
def _threadpool_controller():
    # built once: a fresh threadpool_limits inspects the loaded libraries, about 1 ms per fit
    return ThreadpoolController()


def single_threaded_blas():
    """Context manager limiting every loaded BLAS to one thread (while the loop's own threads
    each run BLAS calls side by side)."""
    return _threadpool_controller().limit(limits=1, user_api="blas")


class FitInterruptedWarning(UserWarning):
    """A fit was stopped by KeyboardInterrupt; the model holds the last completed epoch."""


def divergence_error(estimator_name, epoch):
    return ValueError(
        f"{estimator_name}: the loss or the weights became non-finite (NaN or inf) at epoch "
        f"{epoch}; the fit was stopped and the previous model kept. Scaling the input data "
        f"(StandardScaler or MinMaxScaler) or a smaller eta0 / learning rate might help."
    )


def store_init_params(est, params):
    """Store every __init__ argument (`params`: the __init__'s locals()) as an attribute of the
    same name, unchanged: scikit-learn's rule of no logic in __init__ (validation happens in
    fit), written once for the four estimators."""
    for name, value in params.items():
        if name != "self" and not name.startswith("__"):
            setattr(est, name, value)


def settle_loop_statuses(reports, states, new_states, estimator_name, max_iter, tol):
    """After the loops of one fit (one per class for one-vs-rest): warn for an interrupted or
    unconverged loop (an interrupted fit keeps, for the loops it did not reach, copies of their
    starting states, appended to new_states)."""
    statuses = [r.status for r in reports]
    if FIT_INTERRUPTED in statuses:
        stop = reports[statuses.index(FIT_INTERRUPTED)].stop_epoch
        handle_fit_status(FIT_INTERRUPTED, stop, estimator_name, max_iter, tol)
        new_states += [s.copy() for s in states[len(new_states):]]
    elif FIT_MAX_ITER in statuses:
        handle_fit_status(FIT_MAX_ITER, max_iter, estimator_name, max_iter, tol)
    else:
        assert all(s == FIT_CONVERGED for s in statuses)


def handle_fit_status(status, epoch, estimator_name, max_iter, tol):
    """Raise or warn for a loop's status. Returns True when fitted attributes may be assigned.

    `epoch` is the 1-based epoch the loop stopped at (the one that diverged, for DIVERGED).
    """
    if status == FIT_DIVERGED:
        raise divergence_error(estimator_name, epoch)
    if status == FIT_INTERRUPTED:
        warnings.warn(
            f"{estimator_name}: fit interrupted by KeyboardInterrupt during epoch {epoch}; the "
            "model holds the last completed epoch.",
            FitInterruptedWarning,
            stacklevel=3,
        )
        return True
    if status == FIT_MAX_ITER and tol is not None and max_iter > 1:
        warnings.warn(
            f"{estimator_name}: maximum number of iterations ({max_iter}) reached before "
            "convergence. Consider increasing max_iter to improve the fit.",
            ConvergenceWarning,
            stacklevel=3,
        )
    if status not in FIT_STATUS:
        raise RuntimeError(f"{estimator_name}: unknown fit status {status!r} from the loop")
    return True


def resolve_optimizer(spec, eta0=None):
    """(Optimizer, base_lr). A name takes `eta0` as its lr when eta0 is given and > 0; an
    Optimizer object keeps its own lr (eta0 is then ignored)."""
    if isinstance(spec, Optimizer):
        opt = make_optimizer(spec)
    else:
        opt = make_optimizer(spec, lr=eta0 if eta0 is not None and eta0 > 0 else None)
    return opt, float(opt.lr)


def resolve_schedule(spec, *, lr, total_steps, alpha=None, loss=None, loss_param=0.1,
                     power_t=None):
    """A resolved Schedule (see gdsolve.schedules.make_schedule) plus its config dict."""
    if not isinstance(spec, (str, Schedule)):
        raise ValueError(
            f"learning_rate must be a schedule name or a gdsolve.schedules.Schedule, got {spec!r}"
        )
    sched = make_schedule(spec, lr=lr, total_steps=total_steps, alpha=alpha, loss=loss,
                          loss_param=loss_param, power_t=power_t)
    return sched, sched.to_config()


class GdsolveEstimatorMixin:
    """Stamps pickles with gdsolve's version (BaseEstimator only does that for sklearn.* modules)
    and warns when a pickle from another version is loaded."""

    def __getstate__(self):
        state = super().__getstate__()
        state["_gdsolve_version"] = gdsolve.__version__
        return state

    def __setstate__(self, state):
        version = state.pop("_gdsolve_version", None)
        if version is not None and version != gdsolve.__version__:
            warnings.warn(
                f"Loading a {type(self).__name__} pickled with gdsolve {version} into gdsolve "
                f"{gdsolve.__version__}; this might lead to breaking code or invalid results.",
                UserWarning,
                stacklevel=2,
            )
        super().__setstate__(state)
