"""_core.mlp_step (model/mlp.h's mlp_step_begin / mlp_step_element, the step a Python executor
such as Dask's sync_gradient applies from a summed gradient) against the CPU executor's own step:
full-batch epochs of MlpExecutor (one step each) and the same steps from
MlpExecutor.gradient + _core.mlp_step give the same parameters, optimizer slots and counters.
"""

import numpy as np
import pytest
from sklearn.datasets import make_classification

from gdsolve import _core, _cpu_mlp, _structs
from gdsolve._codes import Activation, Clip, Loss
from gdsolve.engine import FitState
from gdsolve.neural_network import glorot_uniform_init, pack_parameters
from gdsolve.optim import make_optimizer

RTOL = {np.float64: 1e-11, np.float32: 2e-5}


def _setup(dtype, optimizer, clip, alpha):
    X, y = make_classification(300, 8, n_informative=5, n_classes=3, random_state=1)
    X = X.astype(dtype)
    units = [8, 6, 3]
    coefs, intercepts = glorot_uniform_init(units, "tanh", np.random.RandomState(0), dtype)
    params = pack_parameters(coefs, intercepts, dtype)
    opt = make_optimizer(optimizer, lr=0.05)
    init = opt.init_state(params)
    slots = [np.ascontiguousarray(init[n], dtype=dtype) for n in opt.state_slot_names]
    model = _structs.record("MlpConfig", {
        "activation": int(Activation.TANH), "loss": int(Loss.SOFTMAX), "alpha": alpha,
        "clip": int(Clip.NORM if clip else Clip.NONE), "clip_limit": clip or 0.0})
    opt_rec = _structs.record("OptimizerConfig", opt.to_config())
    sched = _structs.record("ScheduleConfig", {"code": 0, "base_lr": 0.05})
    driver = _structs.record("DriverConfig", {"max_iter": 10, "batch_size": X.shape[0],
                                              "shuffle": False})
    cpu = _structs.record("CpuConfig", {"n_threads": 1})
    train = _cpu_mlp.MlpArrays(X, None, y.astype(np.int32))
    empty = _cpu_mlp.MlpArrays(np.empty((0, 8), dtype=dtype), None, np.empty(0, np.int32))
    ex = _cpu_mlp.MlpExecutor(np.asarray(units, dtype=np.int64), model, opt_rec, sched, driver,
                              cpu, train, empty)
    state = FitState(params, slots=slots, order=np.arange(X.shape[0], dtype=np.uint32))
    n_coef = sum(a * b for a, b in zip(units[:-1], units[1:], strict=True))
    return ex, state, model, opt_rec, sched, n_coef, X.shape[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimizer, clip, alpha", [
    ("sgd", None, 0.0), ("nesterov", None, 1e-2), ("adam", 0.05, 1e-3), ("adamw", None, 1e-2),
    ("rmsprop", 0.05, 0.0), ("lion", None, 1e-3), ("nadam", None, 1e-3)])
def test_mlp_step_from_the_executors_gradient_equals_its_full_batch_epoch(dtype, optimizer,
                                                                          clip, alpha):
    ex, state, model, opt_rec, sched, n_coef, n = _setup(dtype, optimizer, clip, alpha)
    mine = state.copy()
    rows = np.arange(n, dtype=np.uint32)
    for _ in range(3):
        before = state.params.copy()
        status, objective = ex.run_epoch(state)
        assert status == 0
        loss, grad = ex.gradient(mine.params, rows, 1.0 / n)
        sq = _core.mlp_step(model, opt_rec, sched, mine.scalars, mine.params,
                            grad.astype(np.float64), n, n_coef, mine.slot0, mine.slot1,
                            mine.slot2)
        mine["t"] = mine["t"] + n  # the executor's epoch advances t once, as scikit-learn's MLP
        np.testing.assert_allclose(sq, np.sum(before[:n_coef].astype(np.float64) ** 2),
                                   rtol=1e-6)
        np.testing.assert_allclose(loss / n + 0.5 * alpha * sq / n, objective,
                                   rtol=RTOL[dtype] * 10)
        for name in ("params", "slot0", "slot1", "slot2"):
            np.testing.assert_allclose(getattr(mine, name), getattr(state, name),
                                       rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-3, err_msg=name)
        for field in ("step", "optimizer_step", "mu_product", "t"):
            assert mine[field] == pytest.approx(state[field], rel=1e-15), field
    assert np.any(state.params != before)  # the steps moved the parameters


def test_mlp_step_checks_its_arrays():
    ex, state, model, opt_rec, sched, n_coef, n = _setup(np.float64, "sgd", None, 0.0)
    grad = np.zeros_like(state.params)
    with pytest.raises(ValueError, match="count"):
        _core.mlp_step(model, opt_rec, sched, state.scalars, state.params, grad, 0, n_coef,
                       state.slot0, state.slot1, state.slot2)
    with pytest.raises(ValueError, match="n_coef"):
        _core.mlp_step(model, opt_rec, sched, state.scalars, state.params, grad, n,
                       state.params.shape[0] + 1, state.slot0, state.slot1, state.slot2)
    with pytest.raises(ValueError, match="grad"):
        _core.mlp_step(model, opt_rec, sched, state.scalars, state.params, grad[:-1], n, n_coef,
                       state.slot0, state.slot1, state.slot2)
