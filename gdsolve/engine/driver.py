"""The epoch driver: one loop for every model kind (linear, MLP) and every executor (the CPU
thread team, CuPy on the GPU, Dask workers). Per epoch it has the executor train one epoch from
the FitState (the executor shuffles the order by driver/shuffle.h and splits the batches), asks
it for the validation score under early stopping, and applies the end-of-epoch rules of
csrc/include/gdsolve/driver/epoch_rules.h (reduce-on-plateau, scikit-learn's stopping rule and
`adaptive` schedule, the best validated parameters); it records the loss curve, stops on
divergence and Ctrl-C with the last completed epoch kept, and reports the fit status.

An executor has `run_epoch(state) -> (status, objective)` (the state updated only when the
epoch completes: MAX_ITER "ran", or CONVERGED "ran, and stop after it"), `score(state) ->
float` and `has_validation`. Callers: the estimators;
anyone continuing a fit from its FitState.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from gdsolve import _core, _structs
from gdsolve._codes import FitStatus

__all__ = ["FitRules", "FitReport", "run"]

# the statuses of a completed epoch, as plain ints: the loop compares them every epoch
_RAN, _CONVERGED = int(FitStatus.MAX_ITER), int(FitStatus.CONVERGED)


@dataclass
class FitRules:
    """The records the driver's rules read: DriverConfig, ScheduleConfig (for the rate the epoch
    ended with), ReduceOnPlateauConfig."""

    driver: np.ndarray
    schedule: np.ndarray
    plateau: np.ndarray = field(default_factory=lambda: _structs.record("ReduceOnPlateauConfig"))

    @property
    def max_iter(self):
        return int(self.driver["max_iter"][0])

    @property
    def keep_best(self):
        return bool(self.driver["keep_best"][0])


@dataclass
class FitReport:
    status: int = int(FitStatus.MAX_ITER)
    stop_epoch: int = 0        # 1-based epoch the run stopped in (diverged / interrupted)
    loss_curve: list = field(default_factory=list)   # objective per completed epoch
    val_scores: list = field(default_factory=list)   # validation score per epoch (early stopping)
    seconds: float = 0.0       # time in the executor's epochs

    @property
    def n_epochs(self):
        return len(self.loss_curve)


def run(executor, state, rules, *, until=None, on_epoch=None):
    """Train from `state` (a FitState, updated in place) until rules.max_iter epochs of the fit
    are done, the stopping rule stops it, an epoch diverges or Ctrl-C: returns a FitReport.

    `until` pauses after that many epochs of the fit instead (the state then continues the fit
    exactly). `on_epoch(epoch, objective, score, lr, seconds)` is called after every epoch."""
    report = FitReport()
    end = rules.max_iter if until is None else min(int(until), rules.max_iter)
    start = time.perf_counter()
    keep_best = rules.keep_best and state.best_params is not None
    paused = False
    validating = executor.has_validation
    driver, schedule, plateau = rules.driver, rules.schedule, rules.plateau
    try:
        while True:
            epoch = state["epoch"]
            if epoch >= end:
                paused = epoch < rules.max_iter
                break
            t0 = time.perf_counter()
            status, objective = executor.run_epoch(state)
            report.seconds += time.perf_counter() - t0
            # CONVERGED: the epoch completed and the executor's own rule (the spectral full
            # batch's gradient tolerance) ends the fit after it
            if status != _RAN and status != _CONVERGED:
                report.status = int(status)
                report.stop_epoch = epoch + 1
                break
            score = executor.score(state) if validating else np.nan
            stop, improved, lr = _core.epoch_end(driver, schedule, plateau, state.scalars,
                                                 objective, score)
            report.loss_curve.append(float(objective))
            if validating:
                report.val_scores.append(float(score))
            if keep_best and improved:
                np.copyto(state.best_params, state.params)
            if on_epoch is not None:
                on_epoch(epoch + 1, objective, score, lr, time.perf_counter() - start)
            if stop or status == _CONVERGED:
                report.status = _CONVERGED
                break
    except KeyboardInterrupt:  # between epochs (inside one, the executor polls for it)
        report.status = int(FitStatus.INTERRUPTED)
        report.stop_epoch = state["epoch"] + 1
    if keep_best and not paused and report.status != FitStatus.DIVERGED:
        np.copyto(state.params, state.best_params)  # early stopping ends on the best epoch
    return report
