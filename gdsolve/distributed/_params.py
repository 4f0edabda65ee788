"""What the estimators need from gdsolve.distributed without importing Dask: recognising a Dask
collection, checking the three distributed parameters (`distributed`, `sync_every`, `client`),
and cloning an estimator whose `client` is a live Client (deep copies of a Client fail).
Callers: gdsolve.linear_model, gdsolve.neural_network (their dispatch hooks and _check_params).
"""

import copy
from numbers import Integral

STRATEGIES = ("local_sgd", "sync_gradient")


def is_dask_collection(obj):
    """Whether obj is a Dask array / DataFrame / Series, decided from its type's module so that
    NumPy, pandas and SciPy inputs never import Dask."""
    return obj is not None and type(obj).__module__.partition(".")[0] in ("dask", "dask_expr")


def any_dask(*objs):
    return any(is_dask_collection(o) for o in objs)


def check_params(est):
    """ValueError for bad distributed parameters (checked on every fit, Dask or not)."""
    name = type(est).__name__
    if est.distributed not in STRATEGIES:
        raise ValueError(f"{name}: distributed must be 'local_sgd' or 'sync_gradient', got "
                         f"{est.distributed!r}")
    every = est.sync_every
    if every is not None and (not isinstance(every, Integral) or isinstance(every, bool)
                              or every < 1):
        raise ValueError(f"{name}: sync_every must be None (one local epoch) or a positive "
                         f"number of steps, got {every!r}")
    if every is not None and est.distributed != "local_sgd":
        raise ValueError(f"{name}: sync_every applies to distributed='local_sgd' only (with "
                         "'sync_gradient' every step is synchronised)")
    client = est.client
    if client is not None and not isinstance(client, str) and not (
            type(client).__module__.startswith("distributed") and hasattr(client, "submit")):
        raise ValueError(f"{name}: client must be None (the active dask.distributed Client), a "
                         f"scheduler address or a distributed.Client, got {client!r}")


def check_update_rule(est, optimizer):
    """The distributed fits run the element-wise update rules (SGD, momentum, Nesterov, Adagrad,
    RMSprop, the Adam family, Lion): their states average slot by slot under local_sgd, and
    _core.linear_step / _core.mlp_step apply them from a summed gradient under sync_gradient."""
    from gdsolve._base import resolve_optimizer
    from gdsolve._codes import Optimizer as OptimizerCode

    if getattr(est, "device", "cpu") not in ("cpu", "auto"):
        raise ValueError(f"{type(est).__name__}: fits on Dask collections run on the workers' "
                         f"CPUs; use device='cpu' (got device={est.device!r})")
    if getattr(est, "mixed_precision", None) is not None:
        raise ValueError(f"{type(est).__name__}: mixed_precision is a GPU setting; fits on Dask "
                         f"collections hold X in its own dtype (got {est.mixed_precision!r})")
    opt, _ = resolve_optimizer(optimizer)
    if int(opt.code) > int(OptimizerCode.LION):
        raise ValueError(f"{type(est).__name__}: fits on Dask collections run the element-wise "
                         f"update rules (sgd ... lion); {type(opt).__name__} is not available "
                         "there yet")


class DistributedParamsMixin:
    """`clone` (scikit-learn's, used by GridSearchCV, cross_validate, ...) deep-copies every
    parameter; a distributed.Client cannot be deep-copied, so the clone shares the same Client
    (as a clone shares nothing else mutable)."""

    def __sklearn_clone__(self):
        client = getattr(self, "client", None)
        if client is None or isinstance(client, str):
            return super().__sklearn_clone__()
        proxy = copy.copy(self)
        proxy.client = None
        new = super(DistributedParamsMixin, proxy).__sklearn_clone__()
        new.client = client
        return new
