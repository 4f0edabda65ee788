"""Learning-rate schedules: one small object per schedule over the compiled schedules.h.

Objects hold hyper-parameters (PyTorch's names for PyTorch's schedules, scikit-learn's for its own)
and turn them into the config dict the C++ core reads; `sched(step)` / `sched.values(n)` evaluate
the compiled function. Steps count optimizer updates from 0. Estimators take these objects or the
names in SCHEDULE_NAMES through `make_schedule`, which fills fit-dependent defaults.
"""

import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, clone

from gdsolve import _core
from gdsolve._codes import Anneal, CyclicMode, Loss
from gdsolve._codes import Schedule as ScheduleCode
from gdsolve._params import ParamNamesOnceMixin

__all__ = [
    "Schedule",
    "Constant",
    "Optimal",
    "InvScaling",
    "Adaptive",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "OneCycleLR",
    "CyclicLR",
    "ReduceLROnPlateau",
    "Warmup",
    "make_schedule",
    "SCHEDULE_NAMES",
]


def _positive(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if not isinstance(value, Real) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _nonnegative(name, value):
    if not isinstance(value, Real) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


class Schedule(ParamNamesOnceMixin, BaseEstimator):
    """Base class. Subclasses set `code` and implement `_config_fields` (and `_fill` for the
    parameters that default to values of the fit, left as None until `resolved`)."""

    code = None
    per_epoch = False  # True for the loop-driven schedules (adaptive, reduce-on-plateau)

    def _config_fields(self):
        raise NotImplementedError

    def _fill(self, lr, total_steps, alpha, loss, loss_param):
        """Return a dict of set_params values for parameters that are None."""
        return {}

    def resolved(self, lr=None, total_steps=None, alpha=None, loss=None, loss_param=0.1):
        """A copy with every None parameter filled from the fit (base lr, total steps, ...)."""
        new = clone(self)
        params = new._fill(lr, total_steps, alpha, loss, loss_param)
        if params:
            new.set_params(**params)
        new._check_resolved()
        return new

    def _check_resolved(self):
        missing = [k for k, v in self.get_params(deep=False).items() if v is None
                   and k not in self._optional_none]
        if missing:
            raise ValueError(
                f"{type(self).__name__} needs {', '.join(missing)}: pass them, or let an estimator "
                "fill them with resolved(lr=..., total_steps=...)"
            )

    _optional_none = ()

    def to_config(self):
        """Dict of gds::ScheduleConfig fields (missing ones take structs.h's defaults)."""
        self._check_resolved()
        config = {"code": int(self.code)}
        config.update(self._config_fields())
        return config

    def _evaluate(self, steps):
        steps = np.ascontiguousarray(steps, dtype=np.float64)
        return _core.schedule_values(self.to_config(), steps, steps + 1.0)

    def __call__(self, step):
        """Learning rate at optimizer step `step` (0-based)."""
        return float(self._evaluate(np.array([step], dtype=np.float64))[0][0])

    def values(self, n_steps):
        """Learning rates at steps 0..n_steps-1."""
        return self._evaluate(np.arange(n_steps, dtype=np.float64))[0]

    def momentum_values(self, n_steps):
        """Cycled momentum / beta1 at steps 0..n_steps-1 (NaN where the schedule does not cycle)."""
        mom = self._evaluate(np.arange(n_steps, dtype=np.float64))[1]
        return np.where(mom < 0, np.nan, mom)


class _BaseLR(Schedule):
    """Schedules scaled from one base rate `lr` (None: the estimator's eta0)."""

    def _fill(self, lr, total_steps, alpha, loss, loss_param):
        return {"lr": lr} if self.lr is None else {}

    def _config_fields(self):
        _nonnegative("lr", self.lr)
        return {"base_lr": float(self.lr)}


class Constant(_BaseLR):
    """lr at every step."""

    code = ScheduleCode.CONSTANT

    def __init__(self, lr=None):
        self.lr = lr


class Optimal(Schedule):
    """scikit-learn's 'optimal': 1 / (alpha (t0 + t - 1)), t = samples seen + 1, with scikit-learn's
    heuristic t0 = 1 / (eta_init alpha), eta_init = typw / max(1, dloss(-typw, 1)) (sign kept),
    typw = sqrt(1 / sqrt(alpha))."""

    code = ScheduleCode.OPTIMAL

    def __init__(self, alpha=None, t0=None):
        self.alpha = alpha
        self.t0 = t0

    def _fill(self, lr, total_steps, alpha, loss, loss_param):
        out = {}
        a = self.alpha if self.alpha is not None else alpha
        if self.alpha is None and alpha is not None:
            out["alpha"] = alpha
        if self.t0 is None and a is not None:
            out["t0"] = optimal_t0(a, Loss.LOG if loss is None else loss, loss_param)
        return out

    def _config_fields(self):
        _positive("alpha (optimal learning rate needs alpha > 0)", self.alpha)
        return {"alpha": float(self.alpha), "optimal_t0": float(self.t0)}


def optimal_t0(alpha, loss=Loss.LOG, loss_param=0.1):
    """scikit-learn's t0 for 'optimal' from the loss derivative at margin -typw, target 1."""
    _positive("alpha", alpha)
    typw = math.sqrt(1.0 / math.sqrt(alpha))
    p = np.array([-typw])
    y = np.array([1.0])
    _, dloss = _core.losses(int(loss), p, y, float(loss_param))
    return _core.sklearn_optimal_t0(float(alpha), float(dloss[0]))


class InvScaling(Schedule):
    """scikit-learn's 'invscaling': eta0 / t^power_t, t = samples seen + 1."""

    code = ScheduleCode.INVSCALING

    def __init__(self, eta0=None, power_t=0.5):
        self.eta0 = eta0
        self.power_t = power_t

    def _fill(self, lr, total_steps, alpha, loss, loss_param):
        return {"eta0": lr} if self.eta0 is None else {}

    def _config_fields(self):
        _positive("eta0", self.eta0)
        return {"base_lr": float(self.eta0), "power_t": float(self.power_t)}


class Adaptive(Schedule):
    """scikit-learn's 'adaptive': eta0, divided by 5 each time n_iter_no_change epochs pass
    without improving by tol (while above 1e-6). Driven per epoch by the training loop."""

    code = ScheduleCode.ADAPTIVE
    per_epoch = True

    def __init__(self, eta0=None):
        self.eta0 = eta0

    def _fill(self, lr, total_steps, alpha, loss, loss_param):
        return {"eta0": lr} if self.eta0 is None else {}

    def _config_fields(self):
        _positive("eta0", self.eta0)
        return {"base_lr": float(self.eta0)}


class StepLR(_BaseLR):
    """lr * gamma^floor(step / step_size)."""

    code = ScheduleCode.STEP

    def __init__(self, step_size=None, gamma=0.1, lr=None):
        self.step_size = step_size
        self.gamma = gamma
        self.lr = lr

    def _fill(self, lr, total_steps, alpha, loss, loss_param):
        out = super()._fill(lr, total_steps, alpha, loss, loss_param)
        if self.step_size is None and total_steps is not None:
            out["step_size"] = max(1, int(total_steps) // 3)
        return out

    def _config_fields(self):
        _positive("step_size", self.step_size)
        return {**super()._config_fields(), "step_size": float(self.step_size),
                "gamma": float(self.gamma)}


class MultiStepLR(_BaseLR):
    """lr * gamma^(number of milestones <= step)."""

    code = ScheduleCode.MULTISTEP

    def __init__(self, milestones=None, gamma=0.1, lr=None):
        self.milestones = milestones
        self.gamma = gamma
        self.lr = lr

    def _fill(self, lr, total_steps, alpha, loss, loss_param):
        out = super()._fill(lr, total_steps, alpha, loss, loss_param)
        if self.milestones is None and total_steps is not None:
            out["milestones"] = (int(total_steps * 0.5), int(total_steps * 0.75))
        return out

    def _config_fields(self):
        ms = [int(m) for m in self.milestones]
        if ms != sorted(ms):
            raise ValueError(f"milestones must be increasing, got {self.milestones!r}")
        if len(ms) > 32:
            raise ValueError("at most 32 milestones are supported")
        return {**super()._config_fields(), "milestones": ms, "n_milestones": len(ms),
                "gamma": float(self.gamma)}


class ExponentialLR(_BaseLR):
    """lr * gamma^step."""

    code = ScheduleCode.EXPONENTIAL

    def __init__(self, gamma=None, lr=None):
        self.gamma = gamma
        self.lr = lr

    def _fill(self, lr, total_steps, alpha, loss, loss_param):
        out = super()._fill(lr, total_steps, alpha, loss, loss_param)
        if self.gamma is None and total_steps is not None:
            out["gamma"] = 0.01 ** (1.0 / max(1, int(total_steps)))  # lr / 100 at the end
        return out

    def _config_fields(self):
        _positive("gamma", self.gamma)
        return {**super()._config_fields(), "gamma": float(self.gamma)}


class CosineAnnealingLR(_BaseLR):
    """eta_min + (lr - eta_min) (1 + cos(pi step / T_max)) / 2 (PyTorch's closed form)."""

    code = ScheduleCode.COSINE

    def __init__(self, T_max=None, eta_min=0.0, lr=None):
        self.T_max = T_max
        self.eta_min = eta_min
        self.lr = lr

    def _fill(self, lr, total_steps, alpha, loss, loss_param):
        out = super()._fill(lr, total_steps, alpha, loss, loss_param)
        if self.T_max is None and total_steps is not None:
            out["T_max"] = int(total_steps)
        return out

    def _config_fields(self):
        _positive("T_max", self.T_max)
        return {**super()._config_fields(), "T_max": float(self.T_max),
                "eta_min": float(self.eta_min)}


class CosineAnnealingWarmRestarts(_BaseLR):
    """Cosine annealing restarted after T_0, T_0 T_mult, T_0 T_mult^2, ... steps (SGDR)."""

    code = ScheduleCode.COSINE_WARM_RESTARTS

    def __init__(self, T_0=None, T_mult=1, eta_min=0.0, lr=None):
        self.T_0 = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.lr = lr

    def _fill(self, lr, total_steps, alpha, loss, loss_param):
        out = super()._fill(lr, total_steps, alpha, loss, loss_param)
        if self.T_0 is None and total_steps is not None:
            out["T_0"] = max(1, int(total_steps) // 4)
        return out

    def _config_fields(self):
        _positive("T_0", self.T_0)
        if not isinstance(self.T_mult, Integral) or self.T_mult < 1:
            raise ValueError(f"T_mult must be an integer >= 1, got {self.T_mult!r}")
        return {**super()._config_fields(), "T_0": float(self.T_0), "T_mult": float(self.T_mult),
                "eta_min": float(self.eta_min)}


class OneCycleLR(Schedule):
    """1cycle (PyTorch OneCycleLR): warm up from max_lr/div_factor to max_lr over pct_start of
    total_steps, then anneal to max_lr/(div_factor final_div_factor); momentum / beta1 cycled
    inversely between max_momentum and base_momentum."""

    code = ScheduleCode.ONE_CYCLE

    def __init__(self, max_lr=None, total_steps=None, pct_start=0.3, anneal_strategy="cos",
                 cycle_momentum=True, base_momentum=0.85, max_momentum=0.95, div_factor=25.0,
                 final_div_factor=1e4, three_phase=False):
        self.max_lr = max_lr
        self.total_steps = total_steps
        self.pct_start = pct_start
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = cycle_momentum
        self.base_momentum = base_momentum
        self.max_momentum = max_momentum
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.three_phase = three_phase

    def _fill(self, lr, total_steps, alpha, loss, loss_param):
        out = {}
        if self.max_lr is None:
            out["max_lr"] = lr
        if self.total_steps is None and total_steps is not None:
            out["total_steps"] = int(total_steps)
        return out

    def _config_fields(self):
        _positive("max_lr", self.max_lr)
        _positive("total_steps", self.total_steps)
        if not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1), got {self.pct_start!r}")
        if self.anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got "
                             f"{self.anneal_strategy!r}")
        return {
            "max_lr": float(self.max_lr),
            "total_steps": float(self.total_steps),
            "pct_start": float(self.pct_start),
            "anneal": int(Anneal.COS if self.anneal_strategy == "cos" else Anneal.LINEAR),
            "cycle_momentum": bool(self.cycle_momentum),
            "base_momentum": float(self.base_momentum),
            "max_momentum": float(self.max_momentum),
            "div_factor": float(self.div_factor),
            "final_div_factor": float(self.final_div_factor),
            "three_phase": bool(self.three_phase),
        }


class CyclicLR(Schedule):
    """Cyclical learning rate between base_lr and max_lr (PyTorch CyclicLR, modes triangular,
    triangular2, exp_range; momentum is not cycled)."""

    code = ScheduleCode.CYCLIC

    def __init__(self, base_lr=None, max_lr=None, step_size_up=2000, step_size_down=None,
                 mode="triangular", gamma=1.0):
        self.base_lr = base_lr
        self.max_lr = max_lr
        self.step_size_up = step_size_up
        self.step_size_down = step_size_down
        self.mode = mode
        self.gamma = gamma

    _optional_none = ("step_size_down",)

    def _fill(self, lr, total_steps, alpha, loss, loss_param):
        out = {}
        if self.max_lr is None:
            out["max_lr"] = lr
        if self.base_lr is None and lr is not None:
            out["base_lr"] = lr / 10.0
        return out

    def _config_fields(self):
        _nonnegative("base_lr", self.base_lr)
        _positive("max_lr", self.max_lr)
        _positive("step_size_up", self.step_size_up)
        modes = {"triangular": CyclicMode.TRIANGULAR, "triangular2": CyclicMode.TRIANGULAR2,
                 "exp_range": CyclicMode.EXP_RANGE}
        if self.mode not in modes:
            raise ValueError(f"mode must be one of {tuple(modes)}, got {self.mode!r}")
        return {
            "base_lr": float(self.base_lr),
            "max_lr": float(self.max_lr),
            "step_size_up": float(self.step_size_up),
            "step_size_down": float(self.step_size_down or 0.0),
            "mode": int(modes[self.mode]),
            "gamma": float(self.gamma),
        }


class ReduceLROnPlateau(_BaseLR):
    """Multiply the rate by `factor` when the monitored metric has not improved for `patience`
    epochs (PyTorch ReduceLROnPlateau, mode 'min'). Driven per epoch by the loop; `step(metric)`
    drives it by hand."""

    code = ScheduleCode.REDUCE_ON_PLATEAU
    per_epoch = True

    def __init__(self, lr=None, factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        self.lr = lr
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.eps = eps

    def plateau_config(self):
        if not 0 < self.factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {self.factor!r}")
        if self.threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {self.threshold_mode!r}")
        return {
            "factor": float(self.factor),
            "patience": int(self.patience),
            "threshold": float(self.threshold),
            "threshold_mode": self.threshold_mode,
            "cooldown": int(self.cooldown),
            "min_lr": float(self.min_lr),
            "eps": float(self.eps),
        }


    def step(self, metric):
        """Feed one epoch's metric; returns the learning rate to use next (stateful)."""
        state = getattr(self, "_plateau_state", None)
        if state is None:
            _nonnegative("lr", self.lr)
            state = self._plateau_state = {"lr": float(self.lr)}
        _core.reduce_on_plateau(self.plateau_config(), state, float(metric))
        return state["lr"]

    @property
    def current_lr(self):
        state = getattr(self, "_plateau_state", None)
        return float(self.lr) if state is None else state["lr"]


class Warmup(Schedule):
    """Linear warm-up composed with any schedule: over the first `warmup_steps` steps the rate
    ramps linearly from start_factor * inner(0) towards inner(0) (PyTorch LinearLR), then follows
    inner(step - warmup_steps)."""

    def __init__(self, inner=None, warmup_steps=None, start_factor=1.0 / 3.0):
        self.inner = inner
        self.warmup_steps = warmup_steps
        self.start_factor = start_factor

    @property
    def code(self):
        return self.inner.code

    @property
    def per_epoch(self):
        return self.inner.per_epoch

    def resolved(self, lr=None, total_steps=None, alpha=None, loss=None, loss_param=0.1):
        new = clone(self)
        if new.inner is None:
            new.inner = Constant()
        warm = new.warmup_steps
        if warm is None and total_steps is not None:
            warm = max(1, int(total_steps) // 10)
        rest = None if total_steps is None or warm is None else max(1, int(total_steps) - warm)
        new.set_params(warmup_steps=warm,
                       inner=new.inner.resolved(lr, rest, alpha, loss, loss_param))
        new._check_resolved()
        return new

    def to_config(self):
        if self.inner is None:
            raise ValueError("Warmup needs an inner schedule")
        _positive("warmup_steps", self.warmup_steps)
        if not 0 <= self.start_factor <= 1:
            raise ValueError(f"start_factor must be in [0, 1], got {self.start_factor!r}")
        config = self.inner.to_config()
        config.update(warmup_steps=float(self.warmup_steps),
                      warmup_start_factor=float(self.start_factor))
        return config


_FACTORIES = {
    "constant": Constant,
    "optimal": Optimal,
    "invscaling": InvScaling,
    "adaptive": Adaptive,
    "step": StepLR,
    "multistep": MultiStepLR,
    "exponential": ExponentialLR,
    "cosine": CosineAnnealingLR,
    "warm_restarts": CosineAnnealingWarmRestarts,
    "one_cycle": OneCycleLR,
    "cyclic": CyclicLR,
    "plateau": ReduceLROnPlateau,
    "warmup_cosine": lambda: Warmup(CosineAnnealingLR()),
}

SCHEDULE_NAMES = tuple(_FACTORIES)


def make_schedule(spec, *, lr=None, total_steps=None, alpha=None, loss=None, loss_param=0.1,
                  power_t=None):
    """A resolved Schedule from a name in SCHEDULE_NAMES or a Schedule instance.

    Parameters left as None are filled from the fit: `lr` (base rate / eta0), `total_steps`
    (optimizer updates in the whole fit), `alpha` and `loss` (scikit-learn's optimal).
    `power_t` sets InvScaling's exponent when the schedule is given by name.
    """
    if isinstance(spec, Schedule):
        sched = spec
    elif isinstance(spec, str) and spec in _FACTORIES:
        sched = _FACTORIES[spec]()
        if spec == "invscaling" and power_t is not None:
            sched.set_params(power_t=power_t)
        if spec == "cyclic" and total_steps is not None:
            sched.set_params(step_size_up=max(1, int(total_steps) // 8))
    else:
        raise ValueError(
            f"learning_rate must be one of {SCHEDULE_NAMES} or a gdsolve.schedules.Schedule, "
            f"got {spec!r}"
        )
    return sched.resolved(lr=lr, total_steps=total_steps, alpha=alpha, loss=loss,
                          loss_param=loss_param)
