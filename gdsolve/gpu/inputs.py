"""What the estimators need from the GPU path before a fit and for predictions: where the fit
runs (device="cpu" / "cuda" / "auto"), checks of CuPy inputs that never copy X to the host (the
same rules and messages as scikit-learn's validate_data for NumPy), and predictions that return
CuPy arrays for CuPy input. Callers: gdsolve.linear_model, gdsolve.neural_network.
"""

import numpy as np

from gdsolve.gpu.device import (
    check_device,
    cuda_runtime,
    is_cupy_array,
    resolve_device,
    storage_dtype,
    to_host,
)

__all__ = ["FitPlace", "fit_place", "check_cupy_X", "runtime_for", "predict_runtime",
           "is_cupy_array", "to_host"]


class FitPlace:
    """Where one fit runs: device ('cpu' / 'cuda') and, on the GPU, X's storage dtype."""

    def __init__(self, device, storage):
        self.device = device
        self.storage = storage

    @property
    def gpu(self):
        return self.device == "cuda"


def fit_place(est, X):
    """Resolve est.device (and est.mixed_precision) for a fit on X, before any work."""
    name = type(est).__name__
    check_device(est.device, name)
    mixed = getattr(est, "mixed_precision", None)
    device = resolve_device(est.device, X, name)
    if device != "cuda":
        if mixed is not None and est.device != "auto":
            raise ValueError(f"{name}: mixed_precision={mixed!r} holds X in a 2-byte dtype on "
                             "the GPU; it needs device='cuda' (or 'auto' with a GPU)")
        return FitPlace("cpu", None)
    runtime = runtime_for()
    storage = storage_dtype(mixed, runtime.xp)
    if storage is None and X is not None and getattr(X, "dtype", None) is not None:
        if np.dtype(X.dtype) == np.float16:
            storage = np.dtype(np.float16)  # float16 input: mixed precision as given
    if storage is not None and _is_sparse(X):
        raise ValueError(f"{name}: mixed_precision={mixed!r} holds a dense X in a 2-byte dtype; "
                         "sparse X is held in float32: pass mixed_precision=None")
    return FitPlace("cuda", storage)


def _is_sparse(X):
    import scipy.sparse

    return scipy.sparse.issparse(X) or type(X).__module__.startswith("cupyx.scipy.sparse")


def runtime_for():
    """The Runtime the GPU path runs on (tests swap in the CPU emulation here)."""
    return cuda_runtime()


def predict_runtime(X):
    """The Runtime for predictions on CuPy input (None for NumPy input: the CPU path)."""
    return runtime_for() if is_cupy_array(X) else None


def check_cupy_X(est, X, *, reset, allow_half=True):
    """scikit-learn's checks of a CuPy X, on the device: 2-d, numeric float (float32 / float64;
    float16 for mixed precision), finite, at least one sample and feature, and the number of
    features of the fit (n_features_in_, set when reset). Returns X (a C-contiguous view)."""
    name = type(est).__name__
    xp = runtime_for().xp
    if getattr(X, "ndim", None) != 2:
        raise ValueError(f"Expected a 2D array, got a {getattr(X, 'ndim', '?')}D array instead")
    floats = (np.float32, np.float64) + ((np.float16,) if allow_half else ())
    if np.dtype(X.dtype) not in floats:
        X = X.astype(np.float64)
    n, d = X.shape
    if n < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 "
                         f"is required by {name}.")
    if d < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 "
                         f"is required by {name}.")
    if not bool(xp.isfinite(X).all()):
        raise ValueError("Input X contains NaN or infinity.")
    if reset:
        est.n_features_in_ = d
    elif d != est.n_features_in_:
        raise ValueError(f"X has {d} features, but {name} is expecting {est.n_features_in_} "
                         "features as input.")
    return xp.ascontiguousarray(X)
