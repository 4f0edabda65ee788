"""gdsolve.gpu.backend: device detection and its clear errors (run everywhere), the config structs
it builds against the compiled CPU core's own dict conversion (run everywhere), and, with a CUDA
device, the kernels against the CPU (gdsolve.optim / gdsolve._core) for every optimizer.
"""

import os
import re
import sys
import types

import numpy as np
import pytest

from gdsolve import _codes, _core, _structs, optim
from gdsolve.gpu import backend
from gdsolve.gpu.backend import (
    NO_DEVICE_MESSAGE,
    GpuOptimizer,
    compile_module,
    cuda_available,
    optimizer_config_record,
    require_cuda,
    schedule_config_record,
)

HAS_DEVICE = cuda_available()


def requires_gpu(test):
    """Marked `gpu` (pytest -m gpu) and skipped without a device."""
    skip = pytest.mark.skipif(not HAS_DEVICE, reason="needs a CUDA device; CuPy sees none")
    return pytest.mark.gpu(skip(test))


# ---- device detection --------------------------------------------------------------------------


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.path.exists("/dev/nvidiactl"),
    reason="only a Linux machine without the NVIDIA driver is known to have no device",
)
def test_no_driver_means_not_available_and_a_clear_error():
    assert cuda_available() is False
    for attempt in (
        require_cuda,
        lambda: compile_module("optimizer", np.float64),
        lambda: GpuOptimizer({"code": int(_codes.Optimizer.ADAM), "lr": 1e-3}, 10),
    ):
        with pytest.raises(RuntimeError, match=re.escape(NO_DEVICE_MESSAGE)):
            attempt()


def test_missing_cupy_means_not_available(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    assert cuda_available() is False
    with pytest.raises(RuntimeError, match=re.escape(NO_DEVICE_MESSAGE) + ".*cupy cannot be"):
        GpuOptimizer(optim.Adam(), 4)


def _fake_cupy(get_device_count):
    fake = types.ModuleType("cupy")
    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    fake.cuda = types.SimpleNamespace(runtime=runtime)
    return fake


def test_failing_driver_query_means_not_available(monkeypatch):
    def broken():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(broken))
    assert cuda_available() is False
    with pytest.raises(RuntimeError, match="no CUDA-capable device"):
        require_cuda()

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))
    assert cuda_available() is False
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 2))
    assert cuda_available() is True


def test_bad_input_is_a_value_error_before_any_device_work(monkeypatch):
    # with cupy hidden, reaching the device check would raise RuntimeError instead
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(ValueError, match="unknown GPU kernel module 'nope'"):
        compile_module("nope", np.float64)
    with pytest.raises(ValueError, match="float32 and float64, got dtype int32"):
        compile_module("optimizer", np.int32)
    with pytest.raises(ValueError, match="no 'code' entry"):
        GpuOptimizer({"lr": 0.1}, 3)
    with pytest.raises(ValueError, match="unknown optimizer code 99"):
        GpuOptimizer({"code": 99}, 3)
    with pytest.raises(ValueError, match="n_params must be >= 0"):
        GpuOptimizer(optim.SGD(), -1)
    with pytest.raises(ValueError, match="n_params must be an integer"):
        GpuOptimizer(optim.SGD(), 2.5)
    with pytest.raises(ValueError, match="got dtype float16"):
        GpuOptimizer(optim.SGD(), 3, dtype=np.float16)
    with pytest.raises(ValueError, match="Muon orthogonalises whole matrices"):
        GpuOptimizer(optim.Muon(), 3)
    with pytest.raises(ValueError, match="at most 32 milestones"):
        schedule_config_record({"code": int(_codes.Schedule.MULTISTEP), "milestones": range(33)})
    with pytest.raises(ValueError, match="unknown schedule code"):
        schedule_config_record({"code": 42})


# ---- config structs against the compiled core's dict conversion --------------------------------


def record_to_dict(record):
    """Every field of a config record back as a plain dict (milestones as a list)."""
    out = {name: record[name][0].item() for name in record.dtype.names if name != "milestones"}
    if "milestones" in record.dtype.names:
        out["milestones"] = record["milestones"][0][: out["n_milestones"]].tolist()
    return out


S = _codes.Schedule
PARTIAL_SCHEDULES = [
    {"code": S.CONSTANT, "base_lr": 0.1},
    {"code": S.OPTIMAL, "alpha": 1e-3, "optimal_t0": 50.0},
    {"code": S.INVSCALING, "base_lr": 0.1},
    {"code": S.INVSCALING, "base_lr": 0.1, "power_t": 0.5},
    {"code": S.ADAPTIVE, "base_lr": 0.1},
    {"code": S.STEP, "base_lr": 0.1, "gamma": 0.5},
    {"code": S.STEP, "base_lr": 0.1, "step_size": 10},
    {"code": S.MULTISTEP, "base_lr": 0.1, "gamma": 0.5},
    {"code": S.MULTISTEP, "base_lr": 0.1, "gamma": 0.5, "milestones": [3, 7, 30]},
    {"code": S.EXPONENTIAL, "base_lr": 0.1},
    {"code": S.EXPONENTIAL, "base_lr": 0.1, "gamma": 0.9},
    {"code": S.COSINE, "base_lr": 0.1},
    {"code": S.COSINE, "base_lr": 0.1, "T_max": 20, "warmup_steps": 5},
    {"code": S.COSINE_WARM_RESTARTS, "base_lr": 0.1},
    {"code": S.COSINE_WARM_RESTARTS, "base_lr": 0.1, "T_0": 5, "T_mult": 2},
    {"code": S.ONE_CYCLE, "max_lr": 1.0, "total_steps": 100},
    {"code": S.ONE_CYCLE, "max_lr": 1.0, "total_steps": 100, "cycle_momentum": True,
     "three_phase": True, "anneal": 1},
    {"code": S.CYCLIC, "base_lr": 0.1, "max_lr": 1.0},
    {"code": S.CYCLIC, "base_lr": 0.1, "max_lr": 1.0, "step_size_up": 5, "mode": 2, "gamma": 0.99},
    {"code": S.REDUCE_ON_PLATEAU, "base_lr": 0.1},
]


@pytest.mark.parametrize("config", PARTIAL_SCHEDULES, ids=lambda c: S(c["code"]).name)
def test_schedule_record_fills_missing_keys_as_the_cpu_core_does(config):
    # The compiled core converts the partial dict with its own defaults; feeding it our record's
    # complete field set must give the same rates at every step.
    steps = np.arange(60, dtype=np.float64)
    t = 1.0 + 8.0 * steps
    cpu = _core.schedule_values(dict(config), steps, t)
    ours = _core.schedule_values(record_to_dict(schedule_config_record(config)), steps, t)
    for expected, got in zip(cpu, ours, strict=True):
        np.testing.assert_array_equal(got, expected)


O = _codes.Optimizer
PARTIAL_OPTIMIZERS = [{"code": code, "lr": 0.1} for code in O] + [
    {"code": O.SGD, "lr": 0.1, "momentum": 0.9, "nesterov": 2},
    {"code": O.RMSPROP, "lr": 0.1, "alpha": 0.9, "centered": True, "momentum": 0.5},
    {"code": O.ADAM, "lr": 0.1, "beta1": 0.9, "beta2": 0.999, "amsgrad": 1},
    {"code": O.NADAM, "lr": 0.1, "beta1": 0.9, "beta2": 0.999, "weight_decay": 0.1,
     "decoupled_weight_decay": True},
]


@pytest.mark.parametrize("config", PARTIAL_OPTIMIZERS, ids=lambda c: O(c["code"]).name)
def test_optimizer_record_fills_missing_keys_as_the_cpu_core_does(config):
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal(16)
    grads = rng.standard_normal((3, 16))
    results = []
    for cfg in (dict(config), record_to_dict(optimizer_config_record(config))):
        w, slots, step, mu = w0.copy(), [np.full(16, 0.5) for _ in range(3)], 0, 1.0
        for g in grads:
            step, mu, _, _ = _core.optimizer_step(cfg, w, g, *slots, step, mu, 0.1)
        results.append((w, *slots, step, mu))
    for expected, got in zip(*results, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_records_hold_every_given_value():
    rng = np.random.default_rng(2)
    opt_cfg = {name: float(rng.uniform(0.1, 0.9)) for name in backend.OPTIMIZER_CONFIG_DTYPE.names}
    opt_cfg.update(code=int(O.NADAM), nesterov=1, amsgrad=0, centered=1, decoupled_weight_decay=1,
                   ns_steps=3, adjust_lr_fn=1, k=7, hessian_estimator=1)
    assert record_to_dict(optimizer_config_record(opt_cfg)) == opt_cfg

    sched_cfg = {name: float(rng.uniform(1.0, 9.0)) for name in backend.SCHEDULE_CONFIG_DTYPE.names}
    sched_cfg.update(code=int(S.CYCLIC), anneal=1, three_phase=1, cycle_momentum=0, mode=2,
                     milestones=[2, 5, 11], n_milestones=3)
    assert record_to_dict(schedule_config_record(sched_cfg)) == sched_cfg


def test_optimizer_objects_and_their_configs_give_the_same_record():
    opt = optim.NAdam(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)
    np.testing.assert_array_equal(
        optimizer_config_record(opt.to_config()), optimizer_config_record(dict(opt.to_config()))
    )
    rec = record_to_dict(optimizer_config_record(opt.to_config()))
    assert rec["code"] == int(O.NADAM) and rec["beta1"] == 0.9 and rec["beta2"] == 0.999
    assert rec["decoupled_weight_decay"] == 1 and rec["momentum_decay"] == 4e-3


# ---- with a device: kernels against the CPU ----------------------------------------------------

# the elementwise rules (Muon's step orthogonalises whole matrices; tests/test_muon_sophia.py)
GPU_OPTIMIZERS = {name: optim.make_optimizer(name) for name in optim.OPTIMIZER_NAMES
                  if name != "muon"}
GPU_OPTIMIZERS.update(
    {
        "sgd_dampened_decay": optim.SGD(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-2),
        "adagrad_full": optim.Adagrad(lr=0.1, lr_decay=0.01, weight_decay=1e-2,
                                      initial_accumulator_value=0.1),
        "rmsprop_centered_momentum": optim.RMSprop(momentum=0.5, centered=True, weight_decay=1e-2),
        "adamw_amsgrad": optim.AdamW(amsgrad=True),
        "nadam_decoupled": optim.NAdam(weight_decay=1e-2, decoupled_weight_decay=True),
        "radam_decoupled": optim.RAdam(weight_decay=1e-2, decoupled_weight_decay=True),
        "lion_decay": optim.Lion(weight_decay=0.1),
    }
)


def _tolerances(dtype):
    # float32 on the GPU runs with flush-to-zero and fused multiply-adds (CuPy's defaults)
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-13)


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(GPU_OPTIMIZERS))
def test_gpu_optimizer_matches_cpu(name, dtype):
    import cupy

    opt = GPU_OPTIMIZERS[name]
    rng = np.random.default_rng(3)
    n = 1000
    w_cpu = rng.standard_normal(n).astype(dtype)
    w_gpu = cupy.asarray(w_cpu)
    state = opt.init_state(w_cpu)
    gpu = GpuOptimizer(opt, n, dtype)
    for t in range(8):  # 8 steps: RAdam crosses into its rectified branch
        g = rng.standard_normal(n).astype(dtype)
        lr = None if t % 2 == 0 else opt.lr * (1.0 + t / 10.0)  # a schedule's per-step lr
        opt.step(w_cpu, g, state, lr=lr)
        gpu.step(w_gpu, cupy.asarray(g), lr=lr)
    np.testing.assert_allclose(w_gpu.get(), w_cpu, **_tolerances(dtype))
    got = gpu.state()
    assert got["step"] == state["step"] == 8
    assert got["mu_product"] == pytest.approx(state["mu_product"], rel=1e-12)
    for k, slot_name in enumerate(opt.state_slot_names[: gpu.n_slots]):
        np.testing.assert_allclose(got[f"s{k}"], state[slot_name], **_tolerances(dtype))


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_optimizer_momentum_override_matches_cpu(dtype):
    import cupy

    opt = optim.Adam(lr=1e-2)
    rng = np.random.default_rng(4)
    w_cpu = rng.standard_normal(257).astype(dtype)  # not a multiple of the block size
    w_gpu = cupy.asarray(w_cpu)
    state = opt.init_state(w_cpu)
    gpu = GpuOptimizer(opt.to_config(), w_cpu.size, dtype)
    for beta1 in (0.95, 0.9, 0.85, 0.9):  # one-cycle style beta1 cycling
        g = rng.standard_normal(w_cpu.size).astype(dtype)
        opt.step(w_cpu, g, state, momentum=beta1)
        gpu.step(w_gpu, cupy.asarray(g), momentum=beta1)
    np.testing.assert_allclose(w_gpu.get(), w_cpu, **_tolerances(dtype))


def check_rejects_mismatched_arrays(gpu, xp, foreign):
    """A 5-parameter float32 GpuOptimizer on array module xp refuses a wrong dtype, size, or an
    array of another kind (`foreign`), before running anything."""
    good = xp.zeros(5, np.float32)
    with pytest.raises(ValueError, match="dtype float64"):
        gpu.step(xp.zeros(5, np.float64), good)
    with pytest.raises(ValueError, match="has 4 elements"):
        gpu.step(good, xp.zeros(4, np.float32))
    with pytest.raises(ValueError, match=f"{xp.__name__}.ndarray"):
        gpu.step(foreign, good)
    assert gpu.state()["step"] == 0  # nothing ran


@requires_gpu
def test_gpu_optimizer_rejects_mismatched_arrays():
    import cupy

    gpu = GpuOptimizer(optim.SGD(lr=0.1), 5, np.float32)
    check_rejects_mismatched_arrays(gpu, cupy, np.zeros(5, np.float32))


@requires_gpu
@pytest.mark.parametrize("config", PARTIAL_SCHEDULES, ids=lambda c: S(c["code"]).name)
def test_gpu_schedule_matches_cpu(config):
    import cupy

    steps = np.arange(80, dtype=np.float64)
    t = 1.0 + 8.0 * steps
    lr_cpu, mom_cpu = _core.schedule_values(dict(config), steps, t)
    module = compile_module("schedule", np.float64)
    record = schedule_config_record(config)
    grid, block = backend.launch_shape(steps.size)
    lr_gpu = cupy.empty(steps.size)
    mom_gpu = cupy.empty(steps.size)
    steps_gpu, t_gpu = cupy.asarray(steps), cupy.asarray(t)
    module.kernel("schedule_lr_kernel")(
        grid, block, (record, steps_gpu, t_gpu, lr_gpu, np.int64(steps.size))
    )
    module.kernel("schedule_momentum_kernel")(
        grid, block, (record, steps_gpu, mom_gpu, np.int64(steps.size))
    )
    np.testing.assert_allclose(lr_gpu.get(), lr_cpu, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mom_gpu.get(), mom_cpu, rtol=1e-12, atol=1e-15)


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "loss, param", [(_codes.Loss.SQUARED, 0.0), (_codes.Loss.HUBER, 0.5), (_codes.Loss.LOG, 0.0)]
)
def test_gpu_linear_gradient_matches_cpu(loss, param, dtype):
    import cupy

    rng = np.random.default_rng(5)
    n, d = 300, 7
    X = rng.standard_normal((n, d)).astype(dtype)
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(dtype)
    sw = rng.uniform(0.5, 2.0, n).astype(dtype)
    w = rng.standard_normal(d).astype(dtype)
    b = 0.3
    p = (X.astype(np.float64) @ w + b).astype(dtype)
    value, deriv = _core.losses(int(loss), p, y, param)
    r_cpu = sw * deriv
    grad_cpu = X.astype(np.float64).T @ r_cpu / n

    # outputs through cuBLAS, the row rule of model/linear.h in the kernel, R' X through cuBLAS
    module = compile_module("linear", dtype)
    Xg = cupy.asarray(X)
    Z = (Xg @ cupy.asarray(w) + dtype(b)).reshape(n, 1)
    loss_d = cupy.empty(n, np.float64)
    model = _structs.record("LinearConfig", {"loss": int(loss), "loss_param": param})
    grid, block = backend.launch_shape(n)
    module.kernel("linear_row_loss_kernel")(
        grid, block, (model, Z, cupy.asarray(y), cupy.asarray(sw), loss_d, np.int64(n)))
    r_gpu = Z.ravel()
    loss_gpu = loss_d
    grad_gpu = (Xg.T @ r_gpu) / n
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r_gpu.get(), r_cpu, **tol)
    np.testing.assert_allclose(loss_gpu.get(), sw * value, **tol)
    np.testing.assert_allclose(grad_gpu.get(), grad_cpu, **tol)


def test_compiled_modules_are_memoised_per_process_and_keyed_on_the_headers(monkeypatch):
    import gdsolve.gpu.kernels as kernels_module

    built = []

    def factory(code, options, name_expressions):
        built.append(options)
        return object()

    first = backend.compile_module("clip", np.float64, factory)
    assert backend.compile_module("clip", np.float64, factory) is first
    assert len(built) == 1
    backend.compile_module("clip", np.float32, factory)
    assert len(built) == 2
    # an edited header tree has another hash: the module is built again, with the new key
    monkeypatch.setattr(kernels_module, "header_hash", lambda include_dir=None: "0" * 64)
    again = backend.compile_module("clip", np.float64, factory)
    assert again is not first and len(built) == 3
    assert "-DGDSOLVE_HEADERS=" + "0" * 64 in built[-1]
