"""The CUDA kernel sources of gdsolve's GPU path: `.cu` files in gdsolve/gpu/kernels/ (shipped in
the wheel), compiled by CuPy/NVRTC (gdsolve.gpu.backend) or, without a GPU, by the host compiler
(gdsolve.gpu.host_emulation). Used by gdsolve.gpu and tests/test_nvrtc.py.

Each kernel only indexes and calls the gds:: functions of the core headers (gdsolve.get_include()),
so the GPU runs the same math as the CPU executors. Argument convention (CuPy turns Python ints
and floats into 8-byte kernel arguments): scalar parameters are `long long` or `double` only;
config structs are passed by value from a one-element NumPy record (gdsolve._structs); arrays
are pointers, and a nullable pointer may be passed as None.
"""

import functools
import hashlib
import os

import gdsolve

# Instantiations compiled for every templated kernel: C++ type name per NumPy dtype name.
CTYPES = {"float32": "float", "float64": "double"}

KERNEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")
PRELUDE = "prelude.cuh"

# module -> (templated kernel name patterns, {T} standing for the element type; plain kernels)
_MODULES = {
    "optimizer": (("optimizer_update_kernel<{T}>",), ("optimizer_begin_step_kernel",)),
    "schedule": ((), ("schedule_lr_kernel", "schedule_momentum_kernel")),
    "linear": (("linear_row_loss_kernel<{T}>", "linear_step_begin_kernel<{T}, {T}>",
                "linear_step_kernel<{T}, {T}>", "linear_penalty_kernel<{T}>",
                "linear_sophia_rows_kernel<{T}>", "linear_sophia_hessian_kernel<{T}>"), ()),
    "mlp": (("mlp_bias_activation_kernel<{T}>", "mlp_output_kernel<{T}>",
             "mlp_step_squares_kernel<{T}>", "mlp_step_begin_kernel<{T}>",
             "mlp_step_kernel<{T}>", "mlp_muon_momentum_kernel<{T}>",
             "muon_normalize_kernel<{T}>", "muon_combine_kernel<{T}>",
             "mlp_muon_apply_kernel<{T}>", "mlp_companion_step_kernel<{T}>",
             "mlp_gnb_output_kernel<{T}>", "sophia_gnb_hessian_kernel<{T}>"),
            ("mlp_muon_step_begin_kernel",)),
    "softmax": (("softmax_xent_kernel<{T}>",), ()),
    "activation": (("activation_forward_kernel<{T}>", "activation_backward_kernel<{T}>"), ()),
    "clip": (("clip_value_kernel<{T}>", "clip_norm_scale_kernel<{T}>"), ()),
}

MODULE_NAMES = tuple(_MODULES)


def kernel_name_expression(kernel, ctype=None):
    """NVRTC name expression of one kernel: its pattern with {T} filled in, or the plain name."""
    if ctype is None or "{T}" not in kernel:
        return kernel
    return kernel.format(T=ctype)


def _base_name(pattern):
    return pattern.split("<", 1)[0]


def module_kernels(name):
    """(templated kernel names, plain kernel names) of one module."""
    if name not in _MODULES:
        raise ValueError(f"unknown GPU kernel module {name!r}; expected one of {MODULE_NAMES}")
    templated, plain = _MODULES[name]
    return tuple(_base_name(k) for k in templated), plain


def kernel_pattern(name, kernel):
    """The name-expression pattern of one templated kernel of a module."""
    for pattern in _MODULES[name][0]:
        if _base_name(pattern) == kernel:
            return pattern
    raise ValueError(f"module {name!r} has no templated kernel {kernel!r}")


def source_path(name):
    """Where the module's .cu source lives in the package."""
    module_kernels(name)  # validates the name
    return os.path.join(KERNEL_DIR, f"{name}.cu")


@functools.cache
def _read(path):
    with open(path) as f:
        return f.read()


def module_source(name):
    """Full CUDA source of one module, the prelude inlined (NVRTC compiles a string: it has no
    file to resolve a relative include from)."""
    source = _read(source_path(name))
    prelude = _read(os.path.join(KERNEL_DIR, PRELUDE))
    return source.replace(f'#include "{PRELUDE}"', prelude, 1)


def name_expressions(name, ctypes=("float", "double")):
    """Every instantiation of a module's kernels for the given C++ element types."""
    module_kernels(name)  # validates the name
    templated, plain = _MODULES[name]
    return [kernel_name_expression(k, t) for k in templated for t in ctypes] + list(plain)


def kernel_sources():
    """module name -> (CUDA source, [name expressions for float and double])."""
    return {name: (module_source(name), name_expressions(name)) for name in _MODULES}


def header_hash(include_dir=None):
    """sha256 over the header tree (relative paths and bytes) under include_dir/gdsolve.

    CuPy's on-disk kernel cache keys on the source text and options but not on headers found
    through -I, so this hash goes into the options to make a header edit invalidate the cache.
    """
    root = os.path.join(include_dir or gdsolve.get_include(), "gdsolve")
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fname in sorted(filenames):
            path = os.path.join(dirpath, fname)
            digest.update(os.path.relpath(path, root).replace(os.sep, "/").encode() + b"\0")
            with open(path, "rb") as f:
                digest.update(f.read() + b"\0")
    return digest.hexdigest()


def compile_options(include_dir=None):
    """NVRTC options shared by the backend (CuPy RawModule) and the compile-only tests."""
    include_dir = include_dir or gdsolve.get_include()
    return (
        "-I" + include_dir,
        "--std=c++17",
        "-DGDSOLVE_HEADERS=" + header_hash(include_dir),
    )
