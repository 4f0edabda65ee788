"""CUDA kernel sources for gdsolve's GPU path, as Python strings compiled by CuPy/NVRTC.

Each kernel only indexes and calls the gds:: functions of the core headers (gdsolve.get_include()),
so the GPU runs the same math as the CPU loops. Used by gdsolve.gpu.backend and tests/test_nvrtc.py.

Argument convention (CuPy turns Python ints into 8-byte and floats into 8-byte kernel arguments):
scalar parameters are `long long` or `double` only; config structs are passed by value from a
one-element NumPy structured array (gdsolve.gpu.backend builds it); arrays are pointers, and a
nullable pointer may be passed as None.
"""

import hashlib
import os

import gdsolve

# Instantiations compiled for every templated kernel: C++ type name per NumPy dtype name.
CTYPES = {"float32": "float", "float64": "double"}

# Core headers the kernels use (all NVRTC-safe; loop_common.h is host-only and never included).
KERNEL_HEADERS = (
    "optimizers.h",
    "schedules.h",
    "losses.h",
    "activations.h",
    "penalties.h",
    "clip.h",
)

# Shared by every module: grid-stride loop so that any grid size covers any n.
_PRELUDE = r"""
#define GDS_GRID_STRIDE_LOOP(i, n)                                                        \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);         \
         i += (long long)blockDim.x * gridDim.x)
"""

_OPTIMIZER = r"""
#include "gdsolve/optimizers.h"

// One thread: advance the step counter (and NAdam's mu product) held on the device and write the
// step's constants, so the host never re-implements optimizer_begin_step and never synchronises.
// momentum_override < 0 keeps the configured momentum/beta1.
__global__ void optimizer_begin_step_kernel(gds::OptimizerConfig cfg,
                                            gds::OptimizerScalars* scalars, double lr,
                                            double momentum_override, gds::OptimizerStep* out) {
    if (blockIdx.x == 0 && threadIdx.x == 0)
        *out = gds::optimizer_begin_step(cfg, *scalars, lr, momentum_override);
}

// One element per thread. Slots the rule does not use may be null.
template <class T>
__global__ void optimizer_update_kernel(gds::OptimizerConfig cfg, const gds::OptimizerStep* step,
                                        T* w, const T* g, T* s0, T* s1, T* s2, long long n) {
    const gds::OptimizerStep st = *step;
    GDS_GRID_STRIDE_LOOP(i, n) {
        T unused0 = T(0), unused1 = T(0), unused2 = T(0);
        T& a = s0 ? s0[i] : unused0;
        T& b = s1 ? s1[i] : unused1;
        T& c = s2 ? s2[i] : unused2;
        gds::optimizer_update<T>(cfg, st, w[i], g[i], a, b, c);
    }
}
"""

_SCHEDULE = r"""
#include "gdsolve/schedules.h"

// Learning rate at each (step, t) pair; t is scikit-learn's sample counter (optimal/invscaling).
__global__ void schedule_lr_kernel(gds::ScheduleConfig cfg, const double* steps, const double* t,
                                   double* out, long long n) {
    GDS_GRID_STRIDE_LOOP(i, n) { out[i] = gds::schedule_lr(cfg, steps[i], t[i]); }
}

// One-cycle momentum/beta1 at each step (-1 where the schedule does not cycle momentum).
__global__ void schedule_momentum_kernel(gds::ScheduleConfig cfg, const double* steps,
                                         double* out, long long n) {
    GDS_GRID_STRIDE_LOOP(i, n) { out[i] = gds::schedule_momentum(cfg, steps[i]); }
}
"""

_LINEAR = r"""
#include "gdsolve/losses.h"

// One row per thread of a dense row-major X (n x d): p = x_i . w + b, then
// dloss[i] = sw_i * dloss/dp(p, y_i) and loss[i] = sw_i * loss(p, y_i). sample_weight may be null
// (all ones); loss may be null when only the gradient is wanted.
template <class T>
__global__ void linear_gradient_kernel(const T* X, const T* y, const T* sample_weight,
                                       const T* w, double intercept, long long loss_code,
                                       double loss_param, T* dloss, T* loss, long long n,
                                       long long d) {
    const int code = (int)loss_code;
    const T param = (T)loss_param;
    GDS_GRID_STRIDE_LOOP(i, n) {
        const T* row = X + i * d;
        T p = (T)intercept;
        for (long long j = 0; j < d; ++j) p += row[j] * w[j];
        const T sw = sample_weight ? sample_weight[i] : T(1);
        dloss[i] = sw * gds::loss_derivative<T>(code, p, y[i], param);
        if (loss) loss[i] = sw * gds::loss_value<T>(code, p, y[i], param);
    }
}

// One column per thread: grad[j] = scale * sum_i r[i] X[i, j] (scale = 1/n for a mean). Threads
// of a warp read neighbouring columns of the same row, so the loads coalesce.
template <class T>
__global__ void column_reduce_kernel(const T* X, const T* r, T* grad, double scale, long long n,
                                     long long d) {
    GDS_GRID_STRIDE_LOOP(j, d) {
        T acc = T(0);
        for (long long i = 0; i < n; ++i) acc += r[i] * X[i * d + j];
        grad[j] = (T)scale * acc;
    }
}
"""

_SOFTMAX = r"""
#include "gdsolve/losses.h"

// One row of logits (n x k, row-major) per thread: loss[i] = -log softmax(z_i)[label_i] and the
// row is overwritten with its gradient softmax(z_i) - onehot(label_i).
template <class T>
__global__ void softmax_xent_kernel(T* logits, const long long* labels, T* loss, long long n,
                                    long long k) {
    GDS_GRID_STRIDE_LOOP(i, n) {
        loss[i] = gds::softmax_cross_entropy<T>(logits + i * k, (int)k, (int)labels[i]);
    }
}
"""

_ACTIVATION = r"""
#include "gdsolve/activations.h"

// a = f(z) elementwise (a may alias z).
template <class T>
__global__ void activation_forward_kernel(long long code, const T* z, T* a, long long n) {
    const int c = (int)code;
    GDS_GRID_STRIDE_LOOP(i, n) { a[i] = gds::activation_value<T>(c, z[i]); }
}

// Backpropagation through f: delta *= f'(z), with f' expressed through the output a = f(z).
template <class T>
__global__ void activation_backward_kernel(long long code, const T* a, T* delta, long long n) {
    const int c = (int)code;
    GDS_GRID_STRIDE_LOOP(i, n) { delta[i] *= gds::activation_derivative_from_output<T>(c, a[i]); }
}
"""

_PENALTY = r"""
#include "gdsolve/penalties.h"

// Proximal step of the L1 part of the penalty after an update with learning rate lr:
// w = soft_threshold(w, lr * l1), where l1 comes from the core's penalty_split.
template <class T>
__global__ void penalty_prox_kernel(long long penalty_code, double alpha, double l1_ratio,
                                    double lr, T* w, long long n) {
    const gds::PenaltySplit split = gds::penalty_split((int)penalty_code, alpha, l1_ratio);
    if (split.l1 == 0.0) return;
    const T threshold = (T)(lr * split.l1);
    GDS_GRID_STRIDE_LOOP(i, n) { w[i] = gds::soft_threshold<T>(w[i], threshold); }
}
"""

_CLIP = r"""
#include "gdsolve/clip.h"

// Clamp each gradient element to [-limit, limit] (PyTorch clip_grad_value_).
template <class T>
__global__ void clip_value_kernel(T* g, double limit, long long n) {
    const T v = (T)limit;
    GDS_GRID_STRIDE_LOOP(i, n) { g[i] = gds::clip_value<T>(g[i], v); }
}

// Scale by the core's clip_norm_factor given the global L2 norm already reduced on the device
// (PyTorch clip_grad_norm_); the norm stays on the device, so no synchronisation.
template <class T>
__global__ void clip_norm_scale_kernel(T* g, const double* total_norm, double max_norm,
                                       long long n) {
    const T f = (T)gds::clip_norm_factor(*total_norm, max_norm);
    if (!(f < T(1))) return;  // as the host's clip_gradient: leave g untouched when not shrinking
    GDS_GRID_STRIDE_LOOP(i, n) { g[i] *= f; }
}
"""

# module name -> (source body, templated kernels, plain kernels)
_MODULES = {
    "optimizer": (_OPTIMIZER, ("optimizer_update_kernel",), ("optimizer_begin_step_kernel",)),
    "schedule": (_SCHEDULE, (), ("schedule_lr_kernel", "schedule_momentum_kernel")),
    "linear": (_LINEAR, ("linear_gradient_kernel", "column_reduce_kernel"), ()),
    "softmax": (_SOFTMAX, ("softmax_xent_kernel",), ()),
    "activation": (_ACTIVATION, ("activation_forward_kernel", "activation_backward_kernel"), ()),
    "penalty": (_PENALTY, ("penalty_prox_kernel",), ()),
    "clip": (_CLIP, ("clip_value_kernel", "clip_norm_scale_kernel"), ()),
}

MODULE_NAMES = tuple(_MODULES)


def kernel_name_expression(kernel, ctype=None):
    """NVRTC name expression of one kernel: "kernel<float>" for a template, else "kernel"."""
    return f"{kernel}<{ctype}>" if ctype else kernel


def module_kernels(name):
    """(templated kernel names, plain kernel names) of one module."""
    if name not in _MODULES:
        raise ValueError(f"unknown GPU kernel module {name!r}; expected one of {MODULE_NAMES}")
    _, templated, plain = _MODULES[name]
    return templated, plain


def module_source(name):
    """Full CUDA source of one module (prelude + body)."""
    module_kernels(name)  # validates the name
    return _PRELUDE + _MODULES[name][0]


def name_expressions(name, ctypes=("float", "double")):
    """Every instantiation of a module's kernels for the given C++ element types."""
    templated, plain = module_kernels(name)
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
