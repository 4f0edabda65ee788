"""The GPU path on the CPU: gdsolve.gpu.host_emulation compiles CUDA kernel sources with the host
C++ compiler (under gdsolve/gpu/cuda_host_shim.h) and runs them one thread at a time, with NumPy
arrays standing for CuPy arrays. Small kernels of tests/kernels/*.cu against NumPy, the argument
checks that mirror CuPy's conversion, the refusal of shared memory, the cache, every module of
gdsolve.gpu.kernels driven by the backend's own code against the CPU core, and NVRTC compiling the
same texts. Needs a host C++ compiler (skipped without one), never a GPU.
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest
from test_gpu_backend import GPU_OPTIMIZERS, PARTIAL_SCHEDULES, check_rejects_mismatched_arrays

import gdsolve
from gdsolve import _codes, _core, _structs, optim
from gdsolve.gpu import backend, host_emulation, kernels
from gdsolve.gpu.backend import GpuOptimizer, compile_module
from gdsolve.gpu.device import emulated_runtime
from gdsolve.gpu.host_emulation import (
    HostCompileError,
    HostModule,
    KernelArgumentError,
    UnsupportedKernelError,
)


def _compiler_available():
    try:
        host_emulation._compiler_version(tuple(host_emulation.compiler_command()))
    except HostCompileError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _compiler_available(), reason="no host C++ compiler")

KERNEL_DIR = Path(__file__).parent / "kernels"
FLOATS = {"float32": np.float32, "float64": np.float64}


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GDSOLVE_CACHE_DIR", str(tmp_path_factory.mktemp("gdsolve-cache")))
        yield


def kernel_source(name):
    return (KERNEL_DIR / name).read_text()


TEST_EXPRESSIONS = [
    "axpy_kernel<float>", "axpy_kernel<double>", "coverage_kernel", "index_3d_kernel",
    "atomic_sum_kernel", "optimizer_config_fields_kernel", "optimizer_config_lr_kernel",
    "is_null_kernel",
]


@pytest.fixture(scope="module")
def test_module():
    return HostModule(kernel_source("grid_stride.cu"), kernels.compile_options(), TEST_EXPRESSIONS)


# ---- small kernels against NumPy ---------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["weight=None", "weight"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_templated_grid_stride_kernel(test_module, dtype, weighted):
    t = FLOATS[dtype]
    ctype = kernels.CTYPES[dtype]
    rng = np.random.default_rng(0)
    n = 1001  # odd, and more than the 3 x 64 threads launched: each thread strides
    x = rng.standard_normal(n).astype(t)
    y = rng.standard_normal(n).astype(t)
    weight = rng.uniform(0.5, 2.0, n).astype(t) if weighted else None
    expected = (t(0.75) * x + y) * (weight if weighted else t(1))
    test_module.get_function(f"axpy_kernel<{ctype}>")((3,), (64,), (0.75, x, y, weight, n))
    assert y.dtype == t
    np.testing.assert_allclose(y, expected, rtol=1e-6 if t is np.float32 else 1e-15)


@pytest.mark.parametrize(
    "n, grid, block",
    [(1001, (3,), (64,)), (7, (1,), (1,)), (5, (4,), (32,)), (256, (1,), (256,)),
     (100_003, (7,), (96,)), (0, (2,), (8,)), (9, (0,), (-3,))],
)
def test_grid_stride_covers_every_element_once(test_module, n, grid, block):
    visits = np.zeros(n, dtype=np.int64)
    test_module.get_function("coverage_kernel")(grid, block, (visits, n))
    np.testing.assert_array_equal(visits, 1)


@pytest.mark.parametrize(
    "grid, block, box",
    [((3, 2, 2), (4, 3, 2), (10, 5, 3)), ((3, 2), (4, 3), (11, 6, 1)), ((2,), (8,), (13, 1, 1))],
)
def test_multidimensional_grids(test_module, grid, block, box):
    nx, ny, nz = box
    cell = np.full(nx * ny * nz, -1, dtype=np.int64)
    block_of = np.full(nx * ny * nz, -1, dtype=np.int64)
    test_module.get_function("index_3d_kernel")(grid, block, (cell, block_of, nx, ny, nz))
    g = (tuple(grid) + (1, 1))[:3]
    b = (tuple(block) + (1, 1))[:3]
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    covered = (x < g[0] * b[0]) & (y < g[1] * b[1]) & (z < g[2] * b[2])
    expected_block = ((z // b[2]) * g[1] + y // b[1]) * g[0] + x // b[0]
    np.testing.assert_array_equal(cell, np.where(covered, np.arange(cell.size).reshape(z.shape),
                                                 -1).ravel())
    np.testing.assert_array_equal(block_of, np.where(covered, expected_block, -1).ravel())


def test_atomic_add_reduction(test_module):
    rng = np.random.default_rng(1)
    n = 1001
    x = rng.standard_normal(n)
    total = np.zeros(1)
    count = np.zeros(1, dtype=np.uint64)
    max_index = np.full(1, -1, dtype=np.int32)
    test_module.get_function("atomic_sum_kernel")((4,), (32,), (x, total, count, max_index, n))
    assert total[0] == pytest.approx(x.sum(), rel=1e-12)
    assert count[0] == n and max_index[0] == n - 1


def test_config_struct_passes_by_value_from_the_backend_record(test_module):
    opt = optim.NAdam(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)
    record = backend.optimizer_config_record(opt.to_config())
    fields = ["code", "lr", "momentum", "nesterov", "beta1", "beta2", "eps", "weight_decay",
              "amsgrad", "decoupled_weight_decay"]
    expected = [float(record[name][0]) for name in fields]
    kernel = test_module.get_function("optimizer_config_fields_kernel")
    # the backend's one-element structured array, and the structured scalar CuPy 14 also accepts
    for value in (record, record[0]):
        out = np.zeros(len(fields))
        kernel((1,), (1,), (value, out))
        assert out.tolist() == expected
    lr = np.zeros(300)
    test_module.get_function("optimizer_config_lr_kernel")((2,), (64,), (record, lr, lr.size))
    np.testing.assert_array_equal(lr, 0.01)


def test_nullable_pointer(test_module):
    kernel = test_module.get_function("is_null_kernel")
    out = np.zeros(1, dtype=np.int64)
    for arg, null in ((None, 1), (np.empty(0), 1), (np.zeros(3), 0), (np.zeros(1), 0)):
        kernel((1,), (1,), (arg, out))
        assert out[0] == null, arg


# ---- argument checks: what CuPy would not accept, or the device would misread -----------------


def _raises(kernel, args, match, exc=KernelArgumentError, grid=(1,), block=(1,), **kw):
    with pytest.raises(exc, match=match):
        kernel(grid, block, args, **kw)


def test_argument_count_and_scalar_sizes_are_checked(test_module):
    axpy = test_module.get_function("axpy_kernel<double>")
    x, y = np.zeros(4), np.zeros(4)
    assert axpy.num_params == 5
    assert axpy.signature == "axpy_kernel<double>(double, const double*, double*, const double*, " \
        "long long int)"
    _raises(axpy, (1.0, x, y, None), r"long long int\) takes 5 arguments, got 4")
    _raises(axpy, (np.float32(1.0), x, y, None, 4), r"double value; got numpy.float32 \(4 bytes\)")
    _raises(axpy, (1, x, y, None, 4), r"Python int .*pass float\(x\)")
    _raises(axpy, (1.0, x, y, None, 4.0), r"long long value; got a Python float")
    _raises(axpy, (1.0, x, y, None, np.int32(4)), r"4 bytes where the kernel reads 8")
    _raises(axpy, (1.0, x, y, None, True), r"long long value; got a Python bool .*1 byte")
    _raises(axpy, (1.0, x, y, None, _codes.Loss.HUBER), r"Unsupported type")  # as CuPy 14
    _raises(axpy, (1.0, x, y, None, [4]), r"Unsupported type")
    _raises(axpy, (None, x, y, None, 4), r"None passes a null pointer")
    _raises(axpy, (np.array([1.0, 2.0]), x, y, None, 4), r"Only numpy.ndarrays of size one")
    _raises(axpy, (1.0, x, y, None, 2**64), r"out of bounds", exc=OverflowError)
    _raises(axpy, (1.0, x, y, None, np.array([4], dtype=">i8")), r"non-native byte order")
    axpy((1,), (1,), [np.array([1.0]), x, y, None, np.int64(4)])  # size-one arrays go by value
    np.testing.assert_array_equal(y, 0.0)


def test_pointer_arguments_are_checked(test_module):
    axpy = test_module.get_function("axpy_kernel<float>")
    x, y = np.zeros(8, np.float32), np.zeros(8, np.float32)
    _raises(axpy, (1.0, x.astype(np.float64), y, None, 8), r"pointer to const float; got an "
            r"array of float64")
    _raises(axpy, (1.0, x.astype(np.int32), y, None, 8), r"array of int32")
    _raises(axpy, (1.0, np.zeros(16, np.float32)[::2], y, None, 8), r"non-C-contiguous")
    y.flags.writeable = False
    _raises(axpy, (1.0, x, y, None, 8), r"read-only array for a pointer to non-const")
    y.flags.writeable = True
    x.flags.writeable = False  # fine: the kernel reads x through const float*
    axpy((1,), (1,), (1.0, x, y, None, 8))
    _raises(axpy, (1.0, x.ctypes.data, y, None, 8), r"got int; pass a numpy.ndarray")
    _raises(axpy, (1.0, np.float32(1), y, None, 8), r"got float32; pass a numpy.ndarray")
    misaligned = np.zeros(33, np.uint8)[1:].view(np.float32)
    _raises(axpy, (1.0, misaligned, y, None, 8), r"not aligned to 4 bytes")

    fields = test_module.get_function("optimizer_config_fields_kernel")
    record = backend.optimizer_config_record({"code": 0, "lr": 0.1})
    _raises(fields, (0.1, np.zeros(10)), r"struct value; got a Python float .*structured array")
    short = np.zeros(1, dtype=np.dtype([("code", np.int32), ("lr", np.float64)], align=True))
    size = backend.OPTIMIZER_CONFIG_DTYPE.itemsize
    _raises(fields, (short, np.zeros(10)), rf"{size}-byte struct value; .*16 bytes where the "
            rf"kernel reads {size}")
    _raises(fields, (record, np.zeros(10, np.float32)), r"array of float32")


def test_launch_shape_is_checked_as_cupy_and_cuda_do(test_module):
    coverage = test_module.get_function("coverage_kernel")
    visits = np.zeros(4, np.int64)
    _raises(coverage, (visits, 4), r"grid must be a tuple", exc=TypeError, grid=4)
    _raises(coverage, (visits, 4), r"block must be a tuple", exc=TypeError, block=[4])
    _raises(coverage, (visits, 4), r"at most three", exc=ValueError, grid=(1, 1, 1, 1))
    _raises(coverage, (visits, 4), r"entries must be ints", exc=TypeError, grid=(1.5,))
    _raises(coverage, (visits, 4), r"more than 1024 threads", exc=ValueError, block=(64, 32))
    _raises(coverage, (visits, 4), r"block\[2\] = 65 exceeds", exc=ValueError, block=(1, 1, 65))
    _raises(coverage, (visits, 4), r"grid\[1\] = 65536 exceeds", exc=ValueError, grid=(1, 65536))
    _raises(coverage, (visits, 4), r"shared_mem must be 0", exc=ValueError, shared_mem=128)
    with pytest.raises(TypeError):  # as cupy.RawKernel.__call__(grid, block, args, **kwargs)
        coverage((1,), (1,), (visits, 4), 0)
    np.testing.assert_array_equal(visits, 0)  # nothing ran
    coverage((np.int64(2),), (2,), (visits, 4), stream=None)
    np.testing.assert_array_equal(visits, 1)


def test_unknown_name_expression(test_module):
    with pytest.raises(ValueError, match=r"only the kernels named in name_expressions"):
        test_module.get_function("axpy_kernel<long double>")


# ---- refused kernels, compile errors, options ----------------------------------------------------


def test_shared_memory_kernel_is_refused_with_a_clear_message():
    with pytest.raises(UnsupportedKernelError) as info:
        HostModule(kernel_source("shared_memory.cu"), (), ["block_sum_kernel"])
    message = str(info.value)
    assert "__shared__" in message and "__syncthreads" in message
    assert "one thread at a time" in message and "grid-stride" in message
    assert "poisoned" in info.value.log


@pytest.mark.parametrize("use", ["__syncwarp();", "(void)__shfl_down_sync(0xffffffffu, 1, 1);"])
def test_warp_primitives_are_refused(use):
    with pytest.raises(UnsupportedKernelError, match="one thread at a time"):
        HostModule(f"__global__ void k() {{ {use} }}", (), ["k"])


def test_compile_error_carries_the_compiler_log():
    source = kernels.module_source("optimizer").replace(
        "gds::optimizer_update<T>(", "gds::optimizer_update_missing<T>("
    )
    with pytest.raises(HostCompileError, match="optimizer_update_missing") as info:
        HostModule(source, kernels.compile_options(), kernels.name_expressions("optimizer"))
    assert not isinstance(info.value, UnsupportedKernelError)
    assert "optimizer_update_missing" in info.value.log and info.value.command
    with pytest.raises(HostCompileError, match="no_such_kernel"):
        HostModule("__global__ void k() {}", (), ["no_such_kernel"])


def test_options_keep_includes_and_macros_and_drop_nvrtc_code_generation():
    flags, std = host_emulation.translate_options(
        list(kernels.compile_options())
        + ["--gpu-architecture=compute_90", "-ftz=true", "--use_fast_math", "-I", "rel/dir",
           "--define-macro=A=1", "-UB", "--std=c++20"]
    )
    assert flags == [
        "-I" + gdsolve.get_include(), "-DGDSOLVE_HEADERS=" + kernels.header_hash(),
        "-I" + os.path.abspath("rel/dir"), "-DA=1", "-UB",
    ]
    assert std == "-std=c++20"
    with pytest.raises(ValueError, match="no host equivalent"):
        host_emulation.translate_options(["--fancy-new-flag"])
    with pytest.raises(ValueError, match="C\\+\\+17 or C\\+\\+20"):
        host_emulation.translate_options(["--std=c++14"])


def test_defines_reach_the_host_compile():
    source = "__global__ void k(long long* out) { out[0] = VALUE; }"
    for value in (3, 7):
        out = np.zeros(1, np.int64)
        HostModule(source, (f"-DVALUE={value}",), ["k"]).get_function("k")((1,), (1,), (out,))
        assert out[0] == value


def test_core_headers_take_the_host_path_under_the_shim():
    headers = ("config.h", "codes.h", "structs.h", "math/losses.h", "math/activations.h",
               "math/penalties.h", "math/clip.h", "math/optimizers.h", "math/schedules.h",
               "model/linear.h", "model/mlp.h", "driver/epoch_rules.h")
    names = set()
    for header in headers:
        text = (Path(gdsolve.get_include()) / "gdsolve" / header).read_text()
        names |= set(re.findall(
            r"template <class T>\s*(?:GDS_HD\s+)?inline\s+[\w:&*<> ]*?\b(\w+)\s*\(", text
        ))
    assert {"optimizer_update", "loss_value", "softmax_cross_entropy", "soft_threshold"} <= names
    source = "".join(f'#include "gdsolve/{h}"\n' for h in headers) + (
        "#if defined(__CUDACC__) || defined(__CUDACC_RTC__) || defined(GDS_DEVICE_COMPILE)\n"
        '#error "the shim must leave the core headers on their host path"\n#endif\n'
        "template <class T> __global__ void instantiate_core() {\n"
        + "".join(f"    (void)&gds::{name}<T>;\n" for name in sorted(names))
        + "}\n"
    )
    module = HostModule(source, kernels.compile_options(),
                        ["instantiate_core<float>", "instantiate_core<double>"])
    module.get_function("instantiate_core<double>")((1,), (1,), ())


# ---- the cache -----------------------------------------------------------------------------------


def test_libraries_are_cached_on_disk_and_track_headers(tmp_path, monkeypatch):
    monkeypatch.setenv("GDSOLVE_CACHE_DIR", str(tmp_path / "cache"))
    include = tmp_path / "include"
    include.mkdir()
    (include / "value.h").write_text("#define VALUE 1\n")
    source = '#include "value.h"\n__global__ void k(long long* out) { out[0] = VALUE; }\n'
    options = ("-I" + str(include),)

    def run():
        out = np.zeros(1, np.int64)
        module = HostModule(source, options, ["k"])
        module.get_function("k")((1,), (1,), (out,))
        return module.library_path, int(out[0])

    path, value = run()
    assert value == 1 and Path(path).parent == tmp_path / "cache" / "host-kernels"
    assert len(list((tmp_path / "cache" / "host-kernels").glob("*.json"))) == 1

    compiles = []
    real_compile = host_emulation._compile
    monkeypatch.setattr(host_emulation, "_compile",
                        lambda *a: compiles.append(a) or real_compile(*a))
    assert run() == (path, 1)  # memory cache
    host_emulation._memory_cache.clear()
    assert run() == (path, 1) and not compiles  # disk cache, no compile

    (include / "value.h").write_text("#define VALUE 2\n")  # a header edit invalidates both
    new_path, value = run()
    assert value == 2 and new_path != path and len(compiles) == 1

    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(HostCompileError, match="cannot run the host C\\+\\+ compiler"):
        HostModule(source + "// another text\n", options, ["k"])


def test_cache_dir_defaults_to_a_per_user_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("GDSOLVE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert host_emulation.cache_dir() == str(tmp_path / "gdsolve" / "host-kernels")
    monkeypatch.setenv("GDSOLVE_CACHE_DIR", str(tmp_path / "x"))
    assert host_emulation.cache_dir() == str(tmp_path / "x" / "host-kernels")


# ---- every module of gdsolve.gpu.kernels, through the backend, against the CPU core --------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("module", kernels.MODULE_NAMES)
def test_every_kernel_module_compiles_under_the_emulation(module, dtype):
    compiled = compile_module(module, dtype, module_factory=HostModule)
    assert isinstance(compiled.raw_module, HostModule)
    templated, plain = kernels.module_kernels(module)
    for name in templated + plain:
        kernel = compiled.kernel(name)
        assert kernel.num_params >= 2
        assert kernel.signature.startswith(name)


def _emulated_optimizer(opt, n, dtype):
    return GpuOptimizer(opt, n, dtype, xp=np, module_factory=HostModule)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(GPU_OPTIMIZERS))
def test_emulated_gpu_optimizer_matches_cpu(name, dtype):
    # The same kernels, driven by the same GpuOptimizer code, on NumPy arrays: the host compiler
    # builds the same gds::optimizer_update as the CPU core (ISO C++, no FMA contraction), so the
    # result is the CPU's bit for bit.
    dtype = FLOATS[dtype]
    opt = GPU_OPTIMIZERS[name]
    rng = np.random.default_rng(3)
    n = 1000
    w_cpu = rng.standard_normal(n).astype(dtype)
    w_emu = w_cpu.copy()
    state = opt.init_state(w_cpu)
    emu = _emulated_optimizer(opt, n, dtype)
    for t in range(8):  # 8 steps: RAdam crosses into its rectified branch
        g = rng.standard_normal(n).astype(dtype)
        lr = None if t % 2 == 0 else opt.lr * (1.0 + t / 10.0)
        opt.step(w_cpu, g, state, lr=lr)
        emu.step(w_emu, g, lr=lr)
    np.testing.assert_array_equal(w_emu, w_cpu)
    got = emu.state()
    assert got["step"] == state["step"] == 8
    assert got["mu_product"] == state["mu_product"]
    for k, slot_name in enumerate(opt.state_slot_names[: emu.n_slots]):
        np.testing.assert_array_equal(got[f"s{k}"], state[slot_name])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_emulated_momentum_override_matches_cpu(dtype):
    dtype = FLOATS[dtype]
    opt = optim.Adam(lr=1e-2)
    rng = np.random.default_rng(4)
    w_cpu = rng.standard_normal(257).astype(dtype)  # not a multiple of the block size
    w_emu = w_cpu.copy()
    state = opt.init_state(w_cpu)
    emu = _emulated_optimizer(opt.to_config(), w_cpu.size, dtype)
    for beta1 in (0.95, 0.9, 0.85, 0.9):
        g = rng.standard_normal(w_cpu.size).astype(dtype)
        opt.step(w_cpu, g, state, momentum=beta1)
        emu.step(w_emu, g, momentum=beta1)
    np.testing.assert_array_equal(w_emu, w_cpu)


def test_emulated_optimizer_checks_arrays_and_hook():
    emu = _emulated_optimizer(optim.SGD(lr=0.1), 5, np.float32)
    check_rejects_mismatched_arrays(emu, np, [0.0] * 5)
    with pytest.raises(ValueError, match="give both or neither"):
        GpuOptimizer(optim.SGD(), 5, xp=np)
    empty = _emulated_optimizer(optim.Adam(), 0, np.float64)
    empty.step(np.zeros(0), np.zeros(0))  # launches only the one-thread begin-step kernel


@pytest.mark.parametrize("config", PARTIAL_SCHEDULES, ids=lambda c: _codes.Schedule(c["code"]).name)
def test_emulated_schedule_matches_cpu(config):
    steps = np.arange(80, dtype=np.float64)
    t = 1.0 + 8.0 * steps
    lr_cpu, mom_cpu = _core.schedule_values(dict(config), steps, t)
    module = compile_module("schedule", np.float64, module_factory=HostModule)
    record = backend.schedule_config_record(config)
    grid, block = backend.launch_shape(steps.size)
    lr, mom = np.empty(steps.size), np.empty(steps.size)
    module.kernel("schedule_lr_kernel")(grid, block, (record, steps, t, lr, np.int64(steps.size)))
    module.kernel("schedule_momentum_kernel")(grid, block, (record, steps, mom, steps.size))
    np.testing.assert_array_equal(lr, lr_cpu)
    np.testing.assert_array_equal(mom, mom_cpu)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True], ids=["sw=None", "sw"])
@pytest.mark.parametrize(
    "loss, param", [(_codes.Loss.SQUARED, 0.0), (_codes.Loss.HUBER, 0.5), (_codes.Loss.LOG, 0.0)]
)
def test_emulated_linear_row_loss_matches_cpu(loss, param, weighted, dtype):
    dtype = FLOATS[dtype]
    rng = np.random.default_rng(5)
    n, d = 301, 7
    X = rng.standard_normal((n, d)).astype(dtype)
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(dtype)
    sw = rng.uniform(0.5, 2.0, n).astype(dtype) if weighted else np.ones(n, dtype)
    w = rng.standard_normal(d).astype(dtype)
    p = (X @ w + dtype(0.3)).astype(dtype)  # the outputs, as cuBLAS would give them
    value, deriv = _core.losses(int(loss), p, y, param)

    module = compile_module("linear", dtype, module_factory=HostModule)
    model = _structs.record("LinearConfig", {"loss": int(loss), "loss_param": param})
    Z, loss_out = p.reshape(n, 1).copy(), np.empty(n)
    grid, block = backend.launch_shape(n)
    module.kernel("linear_row_loss_kernel")(
        grid, block, (model, Z, y, sw if weighted else None, loss_out, n))
    np.testing.assert_array_equal(Z.ravel(), sw * deriv)
    np.testing.assert_array_equal(loss_out, sw.astype(np.float64) * value.astype(np.float64))


STEP_CASES = [
    ("sgd", {"penalty": 1, "alpha": 0.1}),
    ("momentum", {"penalty": 2, "alpha": 0.05}),
    ("adam", {"penalty": 3, "alpha": 0.05, "l1_ratio": 0.4, "clip": 2, "clip_limit": 0.1}),
    ("rmsprop", {"penalty": 2, "alpha": 0.05, "clip": 1, "clip_limit": 0.2}),
    ("nadam", {"penalty": 1, "alpha": 0.1, "average_start": 1}),
    ("lion", {"penalty": 2, "alpha": 0.01, "fit_intercept": 0}),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, model_fields", STEP_CASES, ids=[c[0] for c in STEP_CASES])
def test_emulated_linear_step_matches_cpu(name, model_fields, dtype):
    # model/linear.h's step: the GPU kernels (one thread for the constants, one per element)
    # against the CPU's _core.linear_step, several steps of a K = 2, d = 5 model
    dtype = FLOATS[dtype]
    rng = np.random.default_rng(8)
    K, d, count = 2, 5, 17
    n = K * d + K
    model = _structs.record("LinearConfig", {"n_outputs": K, **model_fields})
    opt = _structs.record("OptimizerConfig", optim.make_optimizer(name).to_config())
    sched = _structs.record("ScheduleConfig", {"code": int(_codes.Schedule.COSINE),
                                               "base_lr": 0.05, "T_max": 20})
    cpu = [rng.standard_normal(n).astype(dtype)] + [np.zeros(n, dtype) for _ in range(4)]
    gpu = [a.copy() for a in cpu]
    sc_cpu, sc_gpu = _structs.record("FitScalars"), _structs.record("FitScalars")
    module = compile_module("linear", dtype, module_factory=HostModule)
    plan = np.zeros(_core.linear_step_plan_size(), np.uint8)
    grid, block = backend.launch_shape(n)
    for _ in range(6):
        grad = rng.standard_normal(n) * 3.0
        _core.linear_step(model, opt, sched, sc_cpu, cpu[0], grad, count, *cpu[1:4],
                          avg_params=cpu[4])
        g = grad.astype(dtype)
        module.kernel("linear_step_begin_kernel")(
            (1,), (1,), (model, opt, sched, sc_gpu, count, d, g, plan))
        module.kernel("linear_step_kernel")(
            grid, block, (model, opt, plan, d, gpu[0], g, *gpu[1:4], gpu[4], n))
    for a, b in zip(gpu, cpu, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6 if dtype == np.float32 else 1e-13,
                                   atol=1e-7 if dtype == np.float32 else 1e-15)
    np.testing.assert_array_equal(sc_gpu, sc_cpu)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_emulated_softmax_matches_cpu(dtype):
    dtype = FLOATS[dtype]
    rng = np.random.default_rng(6)
    n, k = 37, 5
    logits = (3.0 * rng.standard_normal((n, k))).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.int64)
    z_cpu = logits.copy()
    loss_cpu = _core.softmax_xent(z_cpu, labels)
    module = compile_module("softmax", dtype, module_factory=HostModule)
    loss = np.empty(n, dtype)
    grid, block = backend.launch_shape(n)
    module.kernel("softmax_xent_kernel")(grid, block, (logits, labels, loss, n, k))
    np.testing.assert_array_equal(loss, loss_cpu)
    np.testing.assert_array_equal(logits, z_cpu)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("code", list(_codes.Activation), ids=lambda c: c.name)
def test_emulated_activation_matches_cpu(code, dtype):
    dtype = FLOATS[dtype]
    rng = np.random.default_rng(7)
    z = (2.0 * rng.standard_normal(513)).astype(dtype)
    value, deriv = _core.activations(int(code), z)
    module = compile_module("activation", dtype, module_factory=HostModule)
    grid, block = backend.launch_shape(z.size)
    a = z.copy()
    module.kernel("activation_forward_kernel")(grid, block, (int(code), a, a, a.size))  # in place
    np.testing.assert_array_equal(a, value)
    delta = np.ones(z.size, dtype)
    module.kernel("activation_backward_kernel")(grid, block, (int(code), a, delta, a.size))
    np.testing.assert_array_equal(delta, deriv)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_emulated_clip_matches_cpu(max_norm, dtype):
    dtype = FLOATS[dtype]
    rng = np.random.default_rng(9)
    g = rng.standard_normal(301).astype(dtype)
    module = compile_module("clip", dtype, module_factory=HostModule)
    grid, block = backend.launch_shape(g.size)

    by_value = g.copy()
    _core.clip(int(_codes.Clip.VALUE), 0.7, g_cpu := g.copy())
    module.kernel("clip_value_kernel")(grid, block, (by_value, 0.7, g.size))
    np.testing.assert_array_equal(by_value, g_cpu)

    sq = 0.0
    for v in g.tolist():  # the core's order: a double sum over the elements in turn
        sq += v * v
    total_norm = np.array([np.sqrt(sq)])  # on a GPU this stays on the device (a cupy array)
    by_norm = g.copy()
    _core.clip(int(_codes.Clip.NORM), max_norm, g_cpu := g.copy())
    module.kernel("clip_norm_scale_kernel")(grid, block, (by_norm, total_norm, max_norm, g.size))
    np.testing.assert_array_equal(by_norm, g_cpu)


# ---- the same texts under NVRTC ------------------------------------------------------------------


@pytest.mark.parametrize(
    "filename, expressions",
    [("grid_stride.cu", TEST_EXPRESSIONS), ("shim_builtins.cu", ["shim_builtins_kernel"]),
     ("shared_memory.cu", ["block_sum_kernel"])],
)
def test_same_source_compiles_under_nvrtc(filename, expressions):
    pytest.importorskip("cupy_backends.cuda.libs.nvrtc")
    from test_nvrtc import nvrtc_compile

    lowered, ptx = nvrtc_compile(kernel_source(filename), filename, expressions)
    for expr in expressions:
        assert f".entry {lowered[expr]}(" in ptx, f"{expr} missing from the PTX"


def test_shim_builtins_run_on_the_host():
    # every definition of the shim, used once (the NVRTC test above compiles the same file)
    module = HostModule(kernel_source("shim_builtins.cu"), (), ["shim_builtins_kernel"])
    i = np.zeros(1, np.int32)
    u = np.zeros(1, np.uint32)
    ull = np.zeros(1, np.uint64)
    ll = np.zeros(1, np.int64)
    f = np.zeros(1, np.float32)
    d = np.zeros(1, np.float64)
    module.get_function("shim_builtins_kernel")((2,), (3,), (i, u, ull, ll, f, d))
    assert d[0] == 6 * 3.0  # atomicAdd(d, (1 * 2) + 1) from each of the six threads
    assert ll[0] == 1 and f[0] == 1.0


def test_shim_is_only_for_host_compilers():
    text = Path(host_emulation.SHIM_PATH).read_text()
    assert "#error" in text and "__CUDACC__" in text
    refused = host_emulation.refused_names()
    for name in ("__shared__", "__syncthreads", "__syncwarp", "__shfl_down_sync"):
        assert name in refused
        assert re.search(rf"#pragma GCC poison [^\n]*\b{name}\b", text), name


def _newton_schulz_reference(G, a, b, c, steps, eps):
    """Newton-Schulz as Muon's authors and torch.optim.Muon write it, in float64 NumPy: X =
    G / max(||G||_F, eps) on the wide orientation, then X <- a X + (b A + c A^2) X, A = X X'."""
    X = G.astype(np.float64)
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T
    X = X / max(np.linalg.norm(X), eps)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall else X


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_emulated_newton_schulz_matches_the_published_iteration(dtype):
    # the GPU MLP executor's Newton-Schulz (mlp.cu's kernels around matmul, gdsolve.gpu.mlp)
    # on wide, tall and square matrices and a zero one (the eps floor), against float64 NumPy;
    # float32 within its rounding over five iterations of the quintic
    from gdsolve.gpu.mlp import NewtonSchulz

    dtype = FLOATS[dtype]
    opt = optim.Muon(ns_steps=5)
    record = _structs.record("OptimizerConfig", opt.to_config())
    module = compile_module("mlp", dtype, module_factory=HostModule)
    shapes = [(12, 16), (16, 8), (9, 9), (5, 3)]
    ns = NewtonSchulz(emulated_runtime(), module, record, shapes)
    rng = np.random.default_rng(7)
    a, b, c = opt.ns_coefficients
    for R, C in shapes + [(4, 6)]:
        G = np.zeros((R, C)) if (R, C) == (4, 6) else rng.standard_normal((R, C))
        n = R * C
        ns.x[0][:n] = G.astype(dtype).ravel()
        ns.sq[:n] = ns.x[0][:n].astype(np.float64) ** 2
        got = ns.orthogonalise(R, C).reshape(R, C)
        assert got.dtype == dtype
        want = _newton_schulz_reference(G.astype(dtype), a, b, c, 5, opt.eps)
        tol = 1e-12 if dtype == np.float64 else 2e-5
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        if G.any():  # Newton-Schulz pushes the singular values towards 1 (into about [0.7, 1.2])
            s = np.linalg.svd(got.astype(np.float64), compute_uv=False)
            assert s.min() > 0.5 and s.max() < 1.3
