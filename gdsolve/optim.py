"""Optimizers: one small object per update rule, over the compiled C++ rules in optimizers.h.

Each object only holds hyper-parameters (PyTorch's names and defaults) and turns them into the
config dict the C++ core reads; `step` calls the compiled rule on NumPy arrays in place. The
estimators accept these objects (or their names) through `make_optimizer`.
"""

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, clone

from gdsolve import _core
from gdsolve._codes import Clip, HessianEstimator, MuonAdjustLr
from gdsolve._codes import Optimizer as OptimizerCode
from gdsolve._params import ParamNamesOnceMixin

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
    "Muon",
    "Sophia",
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


class Optimizer(ParamNamesOnceMixin, BaseEstimator):
    """Base class: hyper-parameters in, compiled update out.

    Subclasses set `code` and `state_slot_names`; constructor parameters carry the C++ field
    names (see gds::OptimizerConfig).
    """

    code = None
    state_slot_names = ()

    def is_plain_sgd(self):
        """Whether this is plain gradient descent: the SGD rule without momentum or weight decay
        (where scikit-learn's algorithms and the full-batch step rules apply)."""
        return False

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

    def is_plain_sgd(self):
        return self.momentum == 0 and self.weight_decay == 0

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


_MUON_ADJUST = {None: MuonAdjustLr.ORIGINAL, "original": MuonAdjustLr.ORIGINAL,
                "match_rms_adamw": MuonAdjustLr.MATCH_RMS_ADAMW}


class Muon(Optimizer):
    """Muon: momentum orthogonalised by Newton-Schulz iterations, for 2-D weight matrices
    (torch.optim.Muon of PyTorch 2.13: same parameters and defaults; formulas in
    docs/optimizers.md).

    Muon is defined for weight matrices only. In the MLP estimators it updates the weight
    matrices of the hidden layers, and `companion` updates everything else (the output layer's
    matrix and every intercept), as Muon's authors recommend. `companion` is a gdsolve.optim
    Optimizer (an elementwise rule: not Muon or Sophia); None means AdamW() with PyTorch's
    defaults. Under a schedule the companion's rate is its own lr times the schedule's factor
    (this step's rate over Muon's lr). It is a parameter of this object rather than of the
    estimators because it is part of the update rule: `optimizer=Muon(lr=0.02,
    companion=AdamW(lr=3e-4))` keeps the whole rule in one place, and clone / get_params /
    set_params(companion__lr=...) reach it like any nested scikit-learn parameter.

    `step(params, grads, state)` updates one 2-D array (its shape is torch's: A rows, B
    columns in the learning-rate adjustment) and refuses other shapes, as torch.optim.Muon does.
    """

    code = OptimizerCode.MUON
    state_slot_names = ("momentum_buffer",)

    def __init__(self, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5,
                 adjust_lr_fn=None, companion=None):
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.nesterov = nesterov
        self.ns_coefficients = ns_coefficients
        self.eps = eps
        self.ns_steps = ns_steps
        self.adjust_lr_fn = adjust_lr_fn
        self.companion = companion

    def _validate(self):
        super()._validate()
        _check_nonnegative("momentum", self.momentum)
        coefficients = self.ns_coefficients
        if (not isinstance(coefficients, (tuple, list)) or len(coefficients) != 3
                or not all(isinstance(c, Real) for c in coefficients)):
            raise ValueError(f"ns_coefficients must be three numbers, got {coefficients!r}")
        if (not isinstance(self.ns_steps, int) or isinstance(self.ns_steps, bool)
                or not 1 <= self.ns_steps < 100):
            raise ValueError(f"ns_steps must be an int in [1, 100), got {self.ns_steps!r}")
        if self.adjust_lr_fn not in _MUON_ADJUST:
            raise ValueError("adjust_lr_fn must be None, 'original' or 'match_rms_adamw', got "
                             f"{self.adjust_lr_fn!r}")
        companion = self.companion
        if companion is not None and (not isinstance(companion, Optimizer)
                                      or isinstance(companion, (Muon, Sophia))):
            raise ValueError("companion must be None or an elementwise gdsolve.optim Optimizer "
                             f"(not Muon or Sophia), got {companion!r}")
        if companion is not None:
            companion._validate()

    def _config_fields(self):
        a, b, c = (float(v) for v in self.ns_coefficients)
        return {"weight_decay": float(self.weight_decay), "momentum": float(self.momentum),
                "nesterov": bool(self.nesterov), "ns_a": a, "ns_b": b, "ns_c": c,
                "eps": float(self.eps), "ns_steps": int(self.ns_steps),
                "adjust_lr_fn": int(_MUON_ADJUST[self.adjust_lr_fn])}

    def companion_optimizer(self):
        """The rule of the parameters Muon does not update (a fresh AdamW() when companion is
        None)."""
        return AdamW() if self.companion is None else clone(self.companion)

    def step(self, params, grads, state, lr=None, momentum=None):
        """One Muon step of the 2-D array `params` (in place); `lr` / `momentum` override the
        rate and the momentum for this step."""
        _check_float_array(params, "params")
        if params.ndim != 2:
            raise ValueError(f"Muon updates 2-D weight matrices only; params has shape "
                             f"{params.shape} (update other parameters with its companion)")
        grads = np.ascontiguousarray(grads, dtype=params.dtype)
        if grads.shape != params.shape:
            raise ValueError(f"grads shape {grads.shape} does not match params {params.shape}")
        buf = state["momentum_buffer"]
        _check_float_array(buf, "state['momentum_buffer']")
        if buf.shape != params.shape or buf.dtype != params.dtype:
            raise ValueError("state['momentum_buffer'] does not match params in shape or dtype")
        state["step"] = _core.muon_step(self.to_config(), params, grads, buf, int(state["step"]),
                                        float(self.lr if lr is None else lr),
                                        -1.0 if momentum is None else float(momentum))


_HESSIAN_ESTIMATORS = {"gnb": HessianEstimator.GNB, "exact": HessianEstimator.EXACT}


class Sophia(Optimizer):
    """Sophia-G (Liu, Li, Hall, Liang, Ma 2023): an EMA of the gradients divided elementwise by
    gamma times an EMA of a diagonal Hessian estimate, clipped to [-1, 1], with decoupled weight
    decay; the estimate is refreshed every k steps. The paper's names; the defaults are the
    authors' SophiaG's (lr, betas, weight_decay; their rho is gamma here) with the paper's eps and
    k. Formulas in docs/optimizers.md.

    estimator: 'gnb' (the Gauss-Newton-Bartlett estimator: B * ghat^2 with ghat the batch-mean
    gradient at labels sampled from the model, as published) or 'exact' (the exact Gauss-Newton
    diagonal, for the linear models' log and squared losses).

    `step(params, grads, state, hessian=None)` applies one update to NumPy arrays; pass the
    diagonal estimate `hessian` (same shape, e.g. `gnb_estimate(ghat, B)`) on the steps that
    refresh it (`hessian_due(state)`: t mod k = 1), which folds it into state['hessian'] first.
    """

    code = OptimizerCode.SOPHIA
    state_slot_names = ("exp_avg", "hessian")

    def __init__(self, lr=1e-4, betas=(0.965, 0.99), gamma=0.04, eps=1e-12, weight_decay=0.1,
                 k=10, estimator="gnb"):
        self.lr = lr
        self.betas = betas
        self.gamma = gamma
        self.eps = eps
        self.weight_decay = weight_decay
        self.k = k
        self.estimator = estimator

    def _validate(self):
        super()._validate()
        _check_nonnegative("gamma", self.gamma)
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"k must be an int >= 1, got {self.k!r}")
        if self.estimator not in _HESSIAN_ESTIMATORS:
            raise ValueError(f"estimator must be 'gnb' or 'exact', got {self.estimator!r}")

    def _config_fields(self):
        return {"beta1": float(self.betas[0]), "beta2": float(self.betas[1]),
                "gamma": float(self.gamma), "eps": float(self.eps),
                "weight_decay": float(self.weight_decay), "k": int(self.k),
                "hessian_estimator": int(_HESSIAN_ESTIMATORS[self.estimator])}

    def hessian_due(self, state):
        """Whether the next step refreshes the Hessian estimate (its step t has t mod k = 1)."""
        return int(state["step"]) % int(self.k) == 0

    @staticmethod
    def gnb_estimate(ghat, batch_size):
        """The GNB estimate from ghat, the mean gradient of a batch of `batch_size` rows at
        labels sampled from the model: batch_size * ghat**2."""
        ghat = np.asarray(ghat)
        return batch_size * ghat * ghat

    def step(self, params, grads, state, lr=None, momentum=None, hessian=None):
        """One update in place; `hessian` (optional): a fresh estimate of the diagonal, folded
        into state['hessian'] (h <- beta2 h + (1 - beta2) hessian) before the update."""
        if hessian is not None:
            _check_float_array(params, "params")
            hessian = np.ascontiguousarray(hessian, dtype=params.dtype)
            for name in self.state_slot_names:  # all checked before the estimate goes in
                slot = state[name]
                _check_float_array(slot, f"state[{name!r}]")
                if slot.shape != params.shape or slot.dtype != params.dtype:
                    raise ValueError(f"state[{name!r}] does not match params in shape or dtype")
            if hessian.shape != params.shape:
                raise ValueError(f"hessian shape {hessian.shape} does not match params "
                                 f"{params.shape}")
            h = state["hessian"]
            grads = np.ascontiguousarray(grads, dtype=params.dtype)
            if grads.shape != params.shape:
                raise ValueError(f"grads shape {grads.shape} does not match params "
                                 f"{params.shape}")
            _core.sophia_hessian_ema(float(self.betas[1]), h.reshape(-1), hessian.reshape(-1))
        super().step(params, grads, state, lr=lr, momentum=momentum)


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
    "muon": lambda: Muon(),
    "sophia": lambda: Sophia(),
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
        opt.lr = lr  # every Optimizer has lr (set_params' introspection cost ~10 us a fit)
    opt._validate()
    return opt
