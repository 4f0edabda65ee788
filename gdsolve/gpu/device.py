"""Where a fit runs and what the GPU executors run on: the estimators' `device` parameter ("cpu",
"cuda", "auto"), the array module of an input (NumPy, CuPy), host and device copies, and the
Runtime an executor is built with (CuPy and its RawModule on a GPU, or NumPy and
gdsolve.gpu.host_emulation.HostModule to run the very same kernels and driver code on the CPU).
Callers: the estimators, gdsolve.gpu.linear, gdsolve.gpu.mlp, the tests.

Nothing here imports CuPy unless a GPU path is asked for.
"""

from dataclasses import dataclass

import numpy as np

from gdsolve.gpu import backend

DEVICES = ("cpu", "cuda", "auto")
MIXED_PRECISION = (None, "float16", "bfloat16")


def is_cupy_array(a):
    """True for a cupy.ndarray or a cupyx.scipy.sparse matrix (without importing CuPy)."""
    module = type(a).__module__
    return module.startswith("cupy") or module.startswith("cupyx")


def check_device(device, name):
    if device not in DEVICES:
        raise ValueError(f"{name}: device must be one of {DEVICES}, got {device!r}")


def resolve_device(device, X, name):
    """'cpu' or 'cuda' for a fit on X. 'cuda' needs CuPy and a usable device (RuntimeError naming
    what is missing); 'auto' is the GPU when CuPy sees one, else the CPU; CuPy input runs on the
    GPU unless device='cpu' asks for a copy to the host."""
    check_device(device, name)
    if device == "cuda":
        ok, why = backend.device_status()
        if not ok:
            raise RuntimeError(f"{name}: {backend.NO_DEVICE_MESSAGE}: {why}")
        return "cuda"
    if device == "cpu":
        return "cpu"
    if is_cupy_array(X):
        ok, why = backend.device_status()
        if not ok:  # CuPy arrays without a device cannot exist; say so all the same
            raise RuntimeError(f"{name}: CuPy input but {why}")
        return "cuda"
    return "cuda" if backend.cuda_available() else "cpu"


def to_host(a):
    """A NumPy array (or SciPy sparse matrix) of a possibly-CuPy input; NumPy passes through.
    Dense copies go through cupy.asnumpy, as Runtime.asnumpy's do: the one door for
    device-to-host copies of arrays, which tests/test_gpu_device.py counts."""
    if a is None or not is_cupy_array(a):
        return a
    import cupy

    if isinstance(a, cupy.ndarray):
        return cupy.asnumpy(a)
    return a.get()  # a cupyx.scipy.sparse matrix


@dataclass(frozen=True)
class Runtime:
    """The array module and kernel compiler of an executor: CuPy with cupy.RawModule on a GPU;
    NumPy (and scipy.sparse) with HostModule for the emulation. `sparse` is cupyx.scipy.sparse
    or scipy.sparse."""

    xp: object
    sparse: object
    module_factory: object = None  # None: cupy.RawModule
    emulated: bool = False

    def compile(self, name, dtype):
        return backend.compile_module(name, dtype, self.module_factory)

    def asnumpy(self, a):
        return a if self.emulated else self.xp.asnumpy(a)

    def synchronize(self):
        if not self.emulated:
            self.xp.cuda.get_current_stream().synchronize()


def cuda_runtime():
    """The GPU Runtime (CuPy); RuntimeError when no device is usable."""
    backend.require_cuda()
    import cupy
    import cupyx.scipy.sparse

    return Runtime(cupy, cupyx.scipy.sparse)


def emulated_runtime():
    """The same kernels compiled for the host and run on NumPy arrays (tests, CI)."""
    import scipy.sparse

    from gdsolve.gpu.host_emulation import HostModule

    return Runtime(np, scipy.sparse, HostModule, emulated=True)


def storage_dtype(mixed_precision, xp):
    """The dtype X is held in on the device for `mixed_precision` ("float16", "bfloat16")."""
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, got "
                         f"{mixed_precision!r}")
    if mixed_precision is None:
        return None
    if mixed_precision == "float16":
        return np.dtype(np.float16)
    try:
        import ml_dtypes
    except ImportError:
        raise ValueError("mixed_precision='bfloat16' needs the ml_dtypes package (which provides "
                         "NumPy's bfloat16); use 'float16' or install ml_dtypes") from None
    return np.dtype(ml_dtypes.bfloat16)
