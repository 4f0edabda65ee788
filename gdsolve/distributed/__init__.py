"""Data-parallel training on a Dask cluster: the estimators' fit / partial_fit on dask.array or
dask.dataframe inputs with a dask.distributed Client, and lazy blockwise predictions.

The estimators call `dask_fit` / `dask_fit_mlp` / `dask_predict` from their dispatch hooks when an
input is a Dask collection. The blocks stay on the workers that hold them; every task runs a CPU
executor over one block (_worker.py); the FitState lives on the client, where the one epoch
driver (gdsolve.engine.run) runs a ShardedExecutor (_executor.py) exactly as it runs a CPU
executor. docs/distributed.md describes the strategies, their costs and the benchmark.

Importing this package (and so gdsolve) never imports Dask: the modules that need it load when a
Dask input arrives. Dask and distributed come with the `dask` extra.
"""

from gdsolve.distributed._params import (
    STRATEGIES,
    DistributedParamsMixin,
    any_dask,
    is_dask_collection,
)
from gdsolve.distributed._params import check_params as check_distributed_params

__all__ = ["STRATEGIES", "DistributedParamsMixin", "any_dask", "check_distributed_params",
           "dask_fit", "dask_fit_mlp", "dask_predict", "is_dask_collection"]


def dask_fit(est, X, y, sample_weight=None, **kwargs):
    """SGDLinearRegression / SGDLogistic fit (partial=True: partial_fit) on Dask collections."""
    from gdsolve.distributed import linear

    return linear.fit(est, X, y, sample_weight, **kwargs)


def dask_fit_mlp(est, X, y, **kwargs):
    """SGDMLPClassifier / SGDMLPRegressor fit (incremental=True: partial_fit) on Dask inputs."""
    from gdsolve.distributed import mlp

    return mlp.fit(est, X, y, **kwargs)


def dask_predict(est, X, method):
    """est.<method>(X) for a Dask X: a lazy Dask array computed blockwise on the workers."""
    from gdsolve.distributed import _predict

    return _predict.predict(est, X, method)
