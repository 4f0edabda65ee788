"""The bench's environment: optional modules (estimators, torch, matplotlib, tqdm), BLAS and
PyTorch thread counts, and the machine description written into bench.json.

Called by gdsolve.bench.peers, .suites, .timing, .report and .cli. They call `env._optional` and
`env._load_average` through the module, so a test that patches those two here changes every caller.
"""

import importlib
import os
import platform
import sys
from datetime import datetime, timezone

import numpy as np


def _optional(module):
    """The module or None (its absence becomes a note in the report, never an error)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _torch(enabled=True, threads=None):
    if not enabled:
        return None
    torch = _optional("torch")
    if torch is not None:
        # Same thread count as NumPy's BLAS, so the peers share the machine alike.
        torch.set_num_threads(max(1, threads or _blas_threads()))
    return torch


def _blas_limit(threads):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def _blas_threads():
    try:
        from threadpoolctl import threadpool_info
        counts = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
        return max(counts) if counts else (os.cpu_count() or 1)
    except ImportError:  # threadpoolctl comes with scikit-learn; be safe anyway
        return os.cpu_count() or 1


def _load_average():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(torch=None):
    """CPU, cores, BLAS (threadpoolctl) and library versions."""
    import scipy
    import sklearn

    import gdsolve

    versions = {"gdsolve": gdsolve.__version__, "numpy": np.__version__,
                "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
                "python": platform.python_version()}
    for name in ("torch", "threadpoolctl", "matplotlib", "cupy"):
        module = sys.modules.get(name) or (_optional(name) if name != "cupy" else None)
        if module is not None:
            versions[name] = getattr(module, "__version__", "unknown")
    try:
        from threadpoolctl import threadpool_info
        blas = [{k: info.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                                          "num_threads", "threading_layer", "architecture")}
                for info in threadpool_info()]
    except ImportError:
        blas = []
    return {
        "cpu": _cpu_name(), "machine": platform.machine(), "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "usable_cpus": _usable_cpus(),
        "load_average": _load_average(), "blas": blas,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "versions": versions,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
