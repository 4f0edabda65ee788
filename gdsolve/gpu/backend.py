"""CuPy side of gdsolve's GPU path: device detection, kernel compilation, the config records,
and GpuOptimizer (the compiled update rules on CuPy arrays). Called by device="cuda" code paths
and tests/test_gpu_backend.py; the kernel sources are gdsolve/gpu/kernels/*.cu.

CuPy is imported lazily, so this module imports (and cuda_available() answers False) without it.
"""

import functools
from collections.abc import Mapping

import numpy as np

from gdsolve import _codes, _structs
from gdsolve.gpu import kernels

NO_DEVICE_MESSAGE = "device='cuda' requested but no CUDA device is available"

# Threads per block of the elementwise kernels, and a cap on blocks: the kernels loop with a grid
# stride, so a capped grid still covers every element.
BLOCK_SIZE = 256
MAX_BLOCKS = 65535

# ---- The C++ structs, as NumPy records -----------------------------------------------------------
# gdsolve._structs builds them from structs.h's own layout table; tests/test_nvrtc.py proves that
# NVRTC lays the structs out at the same offsets.

OPTIMIZER_CONFIG_DTYPE = _structs.dtype("OptimizerConfig")
OPTIMIZER_SCALARS_DTYPE = _structs.dtype("OptimizerScalars")
OPTIMIZER_STEP_DTYPE = _structs.dtype("OptimizerStep")
SCHEDULE_CONFIG_DTYPE = _structs.dtype("ScheduleConfig")
MAX_MILESTONES = _structs.dtype("ScheduleConfig")["milestones"].shape[0]


def _checked_code(config, enum, what):
    if not isinstance(config, Mapping):
        raise ValueError(f"{what} config must be a dict, got {type(config).__name__}")
    if "code" not in config:
        raise ValueError(f"{what} config has no 'code' entry")
    try:
        return int(enum(int(config["code"])))
    except (TypeError, ValueError):
        valid = ", ".join(f"{m.name}={m.value}" for m in enum)
        raise ValueError(
            f"unknown {what} code {config['code']!r}; expected one of {valid}"
        ) from None


def optimizer_config_record(config):
    """gds::OptimizerConfig as a one-element structured array, from Optimizer.to_config()."""
    _checked_code(config, _codes.Optimizer, "optimizer")
    return _structs.record("OptimizerConfig", config)


def schedule_config_record(config):
    """gds::ScheduleConfig as a one-element structured array, from Schedule.to_config()."""
    _checked_code(config, _codes.Schedule, "schedule")
    return _structs.record("ScheduleConfig", config)


# ---- Device detection and compilation ----------------------------------------------------------


def device_status():
    """(True, "") when CuPy sees at least one CUDA device, else (False, why not)."""
    try:
        import cupy
    except Exception as exc:  # missing, or a broken install: either way no GPU path
        return False, f"cupy cannot be imported ({exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, driver too old, no device: CUDARuntimeError and kin
        return False, str(exc)
    if count < 1:
        return False, "CUDA reports no device"
    return True, ""


def cuda_available():
    """True when CuPy is importable and a CUDA device can be used."""
    return device_status()[0]


def require_cuda():
    """Raise a RuntimeError saying why, unless a CUDA device is usable."""
    ok, why = device_status()
    if not ok:
        raise RuntimeError(f"{NO_DEVICE_MESSAGE}: {why}")


def _ctype(dtype):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name not in kernels.CTYPES:
        raise ValueError(f"GPU kernels support float32 and float64, got dtype {name}")
    return name


class GpuModule:
    """One compiled kernel module for one element type: kernel("name") returns the function."""

    def __init__(self, name, dtype, raw_module):
        self.name = name
        self.dtype = np.dtype(dtype)
        self.raw_module = raw_module
        self._templated, self._plain = kernels.module_kernels(name)

    def kernel(self, kernel_name):
        ctype = kernels.CTYPES[self.dtype.name]
        if kernel_name in self._templated:
            pattern = kernels.kernel_pattern(self.name, kernel_name)
            return self.raw_module.get_function(kernels.kernel_name_expression(pattern, ctype))
        if kernel_name in self._plain:
            return self.raw_module.get_function(kernel_name)
        raise ValueError(
            f"module {self.name!r} has no kernel {kernel_name!r}; "
            f"it has {self._templated + self._plain}"
        )


def compile_module(name, dtype, module_factory=None):
    """Compile (once per process; CuPy also caches on disk) one kernel module for float32/64.

    module_factory replaces cupy.RawModule (same arguments), e.g.
    gdsolve.gpu.host_emulation.HostModule to run the kernels on the CPU; no device is needed then.
    """
    kernels.module_kernels(name)  # ValueError on an unknown module, before any work
    dtype_name = _ctype(dtype)
    if module_factory is None:
        require_cuda()
    # keyed on the options too: they carry the header hash, so edited headers recompile
    return _compile_module_cached(name, dtype_name, module_factory, kernels.compile_options())


@functools.lru_cache(maxsize=None)
def _compile_module_cached(name, dtype_name, module_factory, options):
    if module_factory is None:
        import cupy

        module_factory = cupy.RawModule
    ctype = kernels.CTYPES[dtype_name]
    raw = module_factory(
        code=kernels.module_source(name),
        options=options,
        name_expressions=kernels.name_expressions(name, (ctype,)),
    )
    return GpuModule(name, dtype_name, raw)


def launch_shape(n):
    """(grid, block) for the grid-stride elementwise kernels over n items."""
    blocks = max(1, min(MAX_BLOCKS, -(-int(n) // BLOCK_SIZE)))
    return (blocks,), (BLOCK_SIZE,)


# ---- Optimizer on the device -------------------------------------------------------------------


class GpuOptimizer:
    """One compiled update rule over a flat CuPy parameter vector of n_params elements.

    The state slots, the step counter and NAdam's mu product stay on the device; each step launches
    optimizer_begin_step_kernel (one thread) then optimizer_update_kernel (one thread per element),
    with no host synchronisation. `config` is a gdsolve.optim.Optimizer or its to_config().

    xp and module_factory (keyword-only, both or neither) swap CuPy for another array module and
    kernel compiler: xp=numpy with gdsolve.gpu.host_emulation.HostModule runs the same kernels on
    NumPy arrays on the CPU (tests/test_gpu_emulation.py).
    """

    def __init__(self, config, n_params, dtype=np.float32, *, xp=None, module_factory=None):
        if hasattr(config, "to_config"):  # a gdsolve.optim.Optimizer
            config = config.to_config()
        self._config = optimizer_config_record(config)
        if self._config["code"][0] == _codes.Optimizer.MUON:
            raise ValueError("GpuOptimizer steps element-wise rules over a flat vector; Muon "
                             "orthogonalises whole matrices (the GPU runs it inside the MLP "
                             "executor: SGDMLPClassifier / SGDMLPRegressor with device='cuda')")
        self.dtype = np.dtype(_ctype(dtype))
        if isinstance(n_params, bool) or not isinstance(n_params, (int, np.integer)):
            raise ValueError(f"n_params must be an integer, got {n_params!r}")
        if n_params < 0:
            raise ValueError(f"n_params must be >= 0, got {n_params}")
        self.n_params = int(n_params)
        if (xp is None) != (module_factory is None):
            raise ValueError("xp and module_factory go together: give both or neither")
        if xp is None:
            require_cuda()
            import cupy as xp
        self._xp = xp

        from gdsolve import _core

        self._module = compile_module("optimizer", self.dtype, module_factory)
        self._begin = self._module.kernel("optimizer_begin_step_kernel")
        self._update = self._module.kernel("optimizer_update_kernel")
        self.n_slots = _core.state_slots(dict(config))
        self.slots = [
            xp.zeros(self.n_params, dtype=self.dtype) if k < self.n_slots else None
            for k in range(3)
        ]
        if self._config["code"][0] == _codes.Optimizer.ADAGRAD:
            # PyTorch starts Adagrad's sum of squares at initial_accumulator_value.
            self.slots[0].fill(self._config["initial_accumulator_value"][0])
        scalars = np.zeros(1, dtype=OPTIMIZER_SCALARS_DTYPE)
        scalars["mu_product"] = 1.0
        # Raw bytes on the device; the kernels see gds::OptimizerScalars / gds::OptimizerStep.
        self._scalars = xp.asarray(scalars.view(np.uint8))
        self._step = xp.zeros(OPTIMIZER_STEP_DTYPE.itemsize, dtype=np.uint8)

    def _check_array(self, a, what):
        if not isinstance(a, self._xp.ndarray):
            raise ValueError(
                f"{what} must be a {self._xp.__name__}.ndarray, got {type(a).__name__}"
            )
        if a.dtype != self.dtype:
            raise ValueError(f"{what} has dtype {a.dtype}, this optimizer runs {self.dtype}")
        if a.size != self.n_params:
            raise ValueError(f"{what} has {a.size} elements, expected {self.n_params}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{what} must be C-contiguous")

    def step(self, params, grads, lr=None, momentum=None):
        """Update params in place from grads. lr defaults to the config's; momentum, if given,
        replaces momentum/beta1 for this step (one-cycle momentum cycling)."""
        self._check_array(params, "params")
        self._check_array(grads, "grads")
        lr = float(self._config["lr"][0]) if lr is None else float(lr)
        if momentum is not None and not float(momentum) >= 0.0:
            raise ValueError(f"momentum must be >= 0, got {momentum}")
        momentum = -1.0 if momentum is None else float(momentum)  # < 0: the core keeps its own
        self._begin(
            (1,), (1,),
            (self._config, self._scalars, np.float64(lr), np.float64(momentum), self._step),
        )
        if self.n_params == 0:
            return
        grid, block = launch_shape(self.n_params)
        s0, s1, s2 = self.slots
        self._update(
            grid, block,
            (self._config, self._step, params, grads, s0, s1, s2, np.int64(self.n_params)),
        )

    def state(self):
        """Host copy of the state: step, mu_product and the used slots s0..s2 (NumPy arrays)."""
        to_host = getattr(self._xp, "asnumpy", np.array)  # cupy.asnumpy; a copy under NumPy
        scalars = to_host(self._scalars).view(OPTIMIZER_SCALARS_DTYPE)[0]
        out = {"step": int(scalars["step"]), "mu_product": float(scalars["mu_product"])}
        for k, slot in enumerate(self.slots):
            if slot is not None:
                out[f"s{k}"] = to_host(slot)
        return out
