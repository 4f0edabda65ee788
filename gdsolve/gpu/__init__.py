"""gdsolve's GPU path: CUDA kernels over the same C++ core headers, compiled by CuPy/NVRTC.

kernels.py holds the sources; backend.py detects the device, compiles and runs them. Used by the
device="cuda" code paths; importing this package never needs CuPy or a GPU.
"""

from gdsolve.gpu.backend import GpuOptimizer, compile_module, cuda_available, require_cuda
from gdsolve.gpu.kernels import header_hash, kernel_sources

__all__ = [
    "GpuOptimizer",
    "compile_module",
    "cuda_available",
    "header_hash",
    "kernel_sources",
    "require_cuda",
]
