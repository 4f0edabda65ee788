"""Optimizers: one small object per update rule, over the compiled C++ rules in optimizers.h.

Each object only holds hyper-parameters (PyTorch's names and defaults) and turns them into the
config dict the C++ core reads; `step` calls the compiled rule on NumPy arrays in place. The
estimators accept these objects (or their names) through `make_optimizer`.
"""

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, clone

from gdsolve import _core
from gdsolve._codes import Clip
from gdsolve._codes import Optimizer as OptimizerCode

__all__ = [
    "Optimizer",
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "NAdam",
    "RAdam",
    "Lion",
    "clip_grad_norm_",
    "clip_grad_value_",
    "make_optimizer",
    "OPTIMIZER_NAMES",
]


def _check_float_array(a, what):
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
        raise ValueError(f"{what} must be a float32 or float64 NumPy array")
    if not a.flags.c_contiguous:
        raise ValueError(f"{what} must be C-contiguous (it is updated in place)")


def _check_nonnegative(name, value):
    if not isinstance(value, Real) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


def _check_betas(betas):
    if len(betas) != 2 or not all(isinstance(b, Real) and 0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")


class Optimizer(BaseEstimator):
    """Base class: hyper-parameters in, compiled update out.

    Subclasses set `code` and `state_slot_names`; constructor parameters carry the C++ field
    names (see gds::OptimizerConfig).
    """

    code = None
    state_slot_names = ()

    def _config_fields(self):
        """Constructor parameters under the C++ field names (betas -> beta1, beta2)."""
        fields = {}
        for name, value in self.get_params(deep=False).items():
            if name == "betas":
                fields["beta1"], fields["beta2"] = float(value[0]), float(value[1])
            elif isinstance(value, (bool, np.bool_)):
                fields[name] = bool(value)
            else:
                fields[name] = float(value)
        return fields

    def _validate(self):
        _check_nonnegative("lr", self.lr)
        if hasattr(self, "weight_decay"):
            _check_nonnegative("weight_decay", self.weight_decay)
        if hasattr(self, "eps"):
            _check_nonnegative("eps", self.eps)
        if hasattr(self, "betas"):
            _check_betas(self.betas)

    def to_config(self):
        """Dict of gds::OptimizerConfig fields (missing ones are 0 in C++)."""
        self._validate()
        config = {"code": int(self.code), "lr": float(self.lr)}
        config.update(self._config_fields())
        return config

    def init_state(self, params):
        """Fresh state for `params`: the step counter and one zero array per state slot."""
        params = np.asarray(params)
        state = {"step": 0, "mu_product": 1.0}
        for name in self.state_slot_names:
            state[name] = np.zeros_like(params)
        return state

    def step(self, params, grads, state, lr=None, momentum=None):
        """Apply one update to `params` in place (float32 or float64, C-contiguous).

        `lr` overrides the learning rate for this step (a schedule's value); `momentum` overrides
        momentum / beta1 (one-cycle momentum cycling).
        """
        _check_float_array(params, "params")
        grads = np.ascontiguousarray(grads, dtype=params.dtype)
        if grads.shape != params.shape:
            raise ValueError(f"grads shape {grads.shape} does not match params {params.shape}")
        flat = params.reshape(-1)
        slots = []
        for name in self.state_slot_names:
            slot = state[name]
            _check_float_array(slot, f"state[{name!r}]")
            if slot.shape != params.shape or slot.dtype != params.dtype:
                raise ValueError(f"state[{name!r}] does not match params in shape or dtype")
            slots.append(slot.reshape(-1))
        empty = np.empty(0, dtype=params.dtype)
        slots += [empty] * (3 - len(slots))
        step, mu_product, _, _ = _core.optimizer_step(
            self.to_config(),
            flat,
            grads.reshape(-1),
            slots[0],
            slots[1],
            slots[2],
            int(state["step"]),
            float(state["mu_product"]),
            float(self.lr if lr is None else lr),
            -1.0 if momentum is None else float(momentum),
        )
        state["step"] = step
        state["mu_product"] = mu_product


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and dampening (PyTorch SGD)."""

    code = OptimizerCode.SGD
    state_slot_names = ("momentum_buffer",)

    def __init__(self, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.weight_decay = weight_decay
        self.nesterov = nesterov

    def _validate(self):
        super()._validate()
        _check_nonnegative("momentum", self.momentum)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum requires momentum > 0 and dampening = 0")


class Adagrad(Optimizer):
    """AdaGrad with learning-rate decay and an initial accumulator (PyTorch Adagrad)."""

    code = OptimizerCode.ADAGRAD
    state_slot_names = ("sum",)

    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        self.lr = lr
        self.lr_decay = lr_decay
        self.weight_decay = weight_decay
        self.initial_accumulator_value = initial_accumulator_value
        self.eps = eps

    def _validate(self):
        super()._validate()
        _check_nonnegative("lr_decay", self.lr_decay)
        _check_nonnegative("initial_accumulator_value", self.initial_accumulator_value)

    def init_state(self, params):
        state = super().init_state(params)
        state["sum"][...] = self.initial_accumulator_value
        return state


class RMSprop(Optimizer):
    """RMSprop, optionally centered and with momentum (PyTorch RMSprop)."""

    code = OptimizerCode.RMSPROP
    state_slot_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        self.lr = lr
        self.alpha = alpha
        self.eps = eps
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.centered = centered

    def _validate(self):
        super()._validate()
        _check_nonnegative("momentum", self.momentum)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha!r}")


class Adam(Optimizer):
    """Adam with L2 weight decay in the gradient, optionally AMSGrad (PyTorch Adam)."""

    code = OptimizerCode.ADAM
    state_slot_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.amsgrad = amsgrad


class AdamW(Adam):
    """Adam with decoupled weight decay (PyTorch AdamW; default weight_decay 1e-2)."""

    code = OptimizerCode.ADAMW

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


class NAdam(Optimizer):
    """Adam with Nesterov momentum and momentum decay (PyTorch NAdam)."""

    code = OptimizerCode.NADAM
    state_slot_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 momentum_decay=4e-3, decoupled_weight_decay=False):
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.momentum_decay = momentum_decay
        self.decoupled_weight_decay = decoupled_weight_decay


class RAdam(Optimizer):
    """Rectified Adam (PyTorch RAdam)."""

    code = OptimizerCode.RADAM
    state_slot_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False):
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.decoupled_weight_decay = decoupled_weight_decay


class Lion(Optimizer):
    """Lion, sign of interpolated momentum (Chen et al. 2023); decoupled weight decay."""

    code = OptimizerCode.LION
    state_slot_names = ("exp_avg",)

    def __init__(self, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        self.lr = lr
        self.betas = betas
        self.weight_decay = weight_decay



def clip_grad_norm_(grads, max_norm):
    """Scale `grads` in place so its L2 norm is at most `max_norm` (PyTorch's formula)."""
    _check_float_array(grads, "grads")
    _check_nonnegative("max_norm", max_norm)
    _core.clip(int(Clip.NORM), float(max_norm), grads.reshape(-1))


def clip_grad_value_(grads, clip_value):
    """Clamp every element of `grads` in place to [-clip_value, clip_value]."""
    _check_float_array(grads, "grads")
    _check_nonnegative("clip_value", clip_value)
    _core.clip(int(Clip.VALUE), float(clip_value), grads.reshape(-1))


_FACTORIES = {
    "sgd": lambda: SGD(),
    "momentum": lambda: SGD(momentum=0.9),
    "nesterov": lambda: SGD(momentum=0.9, nesterov=True),
    "adagrad": lambda: Adagrad(),
    "rmsprop": lambda: RMSprop(),
    "adam": lambda: Adam(),
    "adamw": lambda: AdamW(),
    "amsgrad": lambda: Adam(amsgrad=True),
    "nadam": lambda: NAdam(),
    "radam": lambda: RAdam(),
    "lion": lambda: Lion(),
}

OPTIMIZER_NAMES = tuple(_FACTORIES)


def make_optimizer(spec, lr=None):
    """An Optimizer from a name in OPTIMIZER_NAMES or an Optimizer instance (cloned).

    `lr`, when given, replaces the optimizer's learning rate.
    """
    if isinstance(spec, Optimizer):
        opt = clone(spec)
    elif isinstance(spec, str) and spec.lower() in _FACTORIES:
        opt = _FACTORIES[spec.lower()]()
    else:
        raise ValueError(
            f"optimizer must be one of {OPTIMIZER_NAMES} or a gdsolve.optim.Optimizer, got {spec!r}"
        )
    if lr is not None:
        opt.set_params(lr=lr)
    opt._validate()
    return opt
