"""Predictions on Dask collections: a lazy Dask array whose every block is the estimator's own
NumPy method on the matching block of X, computed on the worker that holds it. The graph carries
a copy of the fitted model without its training state (the FitStates, curves, the Client).
Called by gdsolve.distributed.dask_predict (the estimators' predict / predict_proba /
decision_function hooks).
"""

import copy

import dask.array as da
import numpy as np

# Fitted attributes a prediction does not read (the training state can be large: FitState order
# arrays, loss curves) or that cannot travel (the Client).
_TRAINING_ONLY = ("_fit_states", "_fit_state", "loss_curve_", "validation_scores_",
                  "_best_parameters", "_distributed_stats", "feature_names_in_")


def _predictor(est):
    model = copy.copy(est)
    model.client = None
    for name in _TRAINING_ONLY:
        model.__dict__.pop(name, None)
    return model


def _block(block, model, method):
    return getattr(model, method)(block)


def predict(est, X, method):
    name = type(est).__name__
    names = getattr(est, "feature_names_in_", None)
    if hasattr(X, "to_dask_array"):  # a Dask DataFrame: its columns, then its values
        columns = np.asarray(list(X.columns), dtype=object)
        if names is not None and (columns.shape != names.shape or np.any(columns != names)):
            raise ValueError("The feature names should match those that were passed during fit.")
        X = X.to_dask_array()
    if not isinstance(X, da.Array) or X.ndim != 2:
        raise ValueError(f"{name}.{method} on Dask input needs a 2-D Dask array or DataFrame")
    if X.shape[1] != est.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {name} is expecting "
                         f"{est.n_features_in_} features as input.")
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    model = _predictor(est)
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    sample = getattr(model, method)(np.zeros((1, X.shape[1]), dtype=dtype))
    kwargs = {"dtype": sample.dtype, "meta": np.empty((0,) + sample.shape[1:], sample.dtype)}
    if sample.ndim == 1:
        return X.map_blocks(_block, model, method, drop_axis=1, **kwargs)
    return X.map_blocks(_block, model, method, chunks=(X.chunks[0], sample.shape[1:]), **kwargs)
