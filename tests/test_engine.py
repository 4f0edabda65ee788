"""The training engine (gdsolve.engine): a fit paused after k epochs, its FitState sent through
pickle, and continued, equals the uninterrupted fit bit for bit; the driver's rules and the
executors' contract (an epoch that does not complete leaves the state as it was); the vector
fast paths of the loss definitions against the scalar definitions.
"""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.datasets import make_classification

import gdsolve.linear_model as linear_model
import gdsolve.neural_network as neural_network
from gdsolve import SGDLogistic, SGDMLPClassifier, _core, _cpu_linear, _structs, engine
from gdsolve._codes import FitStatus, Loss
from gdsolve.schedules import ReduceLROnPlateau


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(1500, 20, n_informative=8, n_classes=3, random_state=0)
    return X, y


def paused_run(pause_at, seen):
    """engine.run that stops after `pause_at` epochs, sends the FitState through pickle into a
    fresh object, and continues the fit from it (the estimator then reads the same object)."""
    real_run = engine.run

    def run(executor, state, rules, **kw):
        first = real_run(executor, state, rules, until=pause_at, **kw)
        seen.append(state["epoch"])
        if first.status != FitStatus.MAX_ITER or state["epoch"] < pause_at:
            return first
        restored = pickle.loads(pickle.dumps(state))
        assert restored is not state and restored.params is not state.params
        second = real_run(executor, restored, rules, **kw)
        state.__setstate__(restored.__getstate__())
        second.loss_curve = first.loss_curve + second.loss_curve
        second.val_scores = first.val_scores + second.val_scores
        second.seconds += first.seconds
        return second

    return run


CASES = {
    "minibatch-adam-cosine": dict(optimizer="adam", learning_rate="cosine", eta0=0.01,
                                  batch_size=64, max_iter=9),
    "per-sample-optimal": dict(learning_rate="optimal", max_iter=6, average=200),
    "full-batch-plateau": dict(batch_size="full", max_iter=12, eta0=0.5,
                               learning_rate=ReduceLROnPlateau(factor=0.5, patience=0,
                                                               threshold=1e-3)),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_linear_fit_continued_from_a_pickled_state_is_bit_identical(monkeypatch, data, case,
                                                                    threads):
    monkeypatch.setenv("GDSOLVE_NUM_THREADS", str(threads))
    X, y = data
    params = dict(CASES[case], tol=None, random_state=0)
    whole = SGDLogistic(**params).fit(X, y)
    seen = []
    monkeypatch.setattr(linear_model.engine, "run", paused_run(4, seen))
    resumed = SGDLogistic(**params).fit(X, y)
    assert seen == [4]  # it really paused
    assert_array_equal(resumed.coef_, whole.coef_)
    assert_array_equal(resumed.intercept_, whole.intercept_)
    assert_array_equal(resumed.loss_curve_, whole.loss_curve_)
    assert resumed.n_iter_ == whole.n_iter_ == params["max_iter"]
    assert resumed.t_ == whole.t_


@pytest.mark.parametrize("threads", [1, 2])
def test_mlp_fit_continued_from_a_pickled_state_is_bit_identical(monkeypatch, data, threads):
    monkeypatch.setenv("GDSOLVE_NUM_THREADS", str(threads))
    X, y = data
    params = dict(hidden_layer_sizes=(16, 8), batch_size=100, max_iter=7, tol=0.0,
                  n_iter_no_change=20, learning_rate="cosine", random_state=0)
    whole = SGDMLPClassifier(**params).fit(X, y)
    seen = []
    monkeypatch.setattr(neural_network.engine, "run", paused_run(3, seen))
    resumed = SGDMLPClassifier(**params).fit(X, y)
    assert seen == [3]
    for a, b in zip(resumed.coefs_ + resumed.intercepts_, whole.coefs_ + whole.intercepts_,
                    strict=True):
        assert_array_equal(a, b)
    assert resumed.loss_curve_ == whole.loss_curve_


def test_fit_state_pickles_every_array_and_scalar():
    state = engine.FitState(np.arange(5.0), slots=[np.ones(5)], avg_params=np.zeros(5),
                            order=np.arange(3), scalars={"t": 7.0, "rng": 2**63 + 5})
    state["no_improvement"] = 2
    back = pickle.loads(pickle.dumps(state))
    for name in engine.state.ARRAYS:
        a, b = getattr(state, name), getattr(back, name)
        assert (a is None) == (b is None)
        if a is not None:
            assert_array_equal(a, b)
    assert back.scalars.tobytes() == state.scalars.tobytes()
    assert back["rng"] == 2**63 + 5 and back["t"] == 7.0 and back["no_improvement"] == 2
    copy = state.copy()
    copy.params[0] = 99.0
    copy["epoch"] = 3
    assert state.params[0] == 0.0 and state["epoch"] == 0


def _executor(X, y, model_fields=None, **driver):
    model = _structs.record("LinearConfig", {"loss": int(Loss.LOG), **(model_fields or {})})
    rules = engine.FitRules(_structs.record("DriverConfig", {"max_iter": 5, **driver}),
                            _structs.record("ScheduleConfig", {"code": 0, "base_lr": 0.1}))
    opt = _structs.record("OptimizerConfig", {"code": 0, "lr": 0.1})
    ex = _cpu_linear.LinearExecutor(model, opt, rules.schedule, rules.driver,
                                    _structs.record("CpuConfig"), X, y, None, X.shape[0])
    return ex, rules


def test_an_epoch_that_diverges_leaves_the_state_as_it_was():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    y = np.where(rng.random(50) < 0.5, -1.0, 1.0)
    ex, rules = _executor(X, y, batch_size=10)
    state = engine.FitState(np.zeros(4), order=np.arange(50))
    status, objective = ex.run_epoch(state)
    assert status == FitStatus.MAX_ITER and np.isfinite(objective)
    before = state.copy()
    ex_bad, _ = _executor(X * 1e300, y, batch_size=10)
    status, _ = ex_bad.run_epoch(state)
    assert status == FitStatus.DIVERGED
    for name in ("params", "slot0", "order"):
        assert_array_equal(getattr(state, name), getattr(before, name))
    assert state.scalars.tobytes() == before.scalars.tobytes()
    report = engine.run(ex_bad, state, rules)
    assert report.status == FitStatus.DIVERGED and report.stop_epoch == 1
    assert report.n_epochs == 0


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


# (how the state is spoilt, the error's words): the binding reads the arrays through NumPy's C
# API and must refuse what a typed memoryview refuses, before the epoch runs
BAD_STATES = {
    "params float32": (lambda st: setattr(st, "params", st.params.astype(np.float32)),
                       "state.params must be a 1-d float64"),
    "params byte-swapped": (lambda st: setattr(st, "params", st.params.astype(">f8")),
                            "state.params must be a 1-d float64"),
    "params strided": (lambda st: setattr(st, "params", np.zeros(8)[::2]),
                       "state.params must be contiguous"),
    "params short": (lambda st: setattr(st, "params", np.zeros(3)), "state.params has 3"),
    "params 2-d": (lambda st: setattr(st, "params", np.zeros((4, 1))),
                   "state.params must be a 1-d"),
    "params read-only": (lambda st: setattr(st, "params", _read_only(st.params)), "read-only"),
    "slot1 missing": (lambda st: setattr(st, "slot1", None), "state.slot1 is required"),
    "order int64": (lambda st: setattr(st, "order", st.order.astype(np.int64)),
                    "state.order must be a 1-d uint32"),
    "order read-only": (lambda st: setattr(st, "order", _read_only(st.order)),
                        "state.order must be writeable"),
    "order out of range": (lambda st: st.order.__setitem__(0, 50),
                           r"state.order \(the train_rows\) must index rows 0..49"),
    "scalars read-only": (lambda st: setattr(st, "scalars", _read_only(st.scalars)),
                          "FitScalars record must be contiguous and writeable"),
    "scalars another record": (lambda st: setattr(st, "scalars", _structs.record("CpuConfig")),
                               "expected a one-element FitScalars record"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_a_bad_state_is_refused_before_the_epoch(case):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    y = np.where(rng.random(50) < 0.5, -1.0, 1.0)
    ex, _ = _executor(X, y, batch_size=10)
    state = engine.FitState(np.zeros(4), order=np.arange(50))
    spoil, words = BAD_STATES[case]
    spoil(state)
    before = {name: None if getattr(state, name) is None else getattr(state, name).copy()
              for name in ("params", "slot0", "order")}
    with pytest.raises(ValueError, match=words):
        ex.run_epoch(state)
    for name, value in before.items():
        if value is not None:
            assert_array_equal(getattr(state, name), value)


def test_epoch_end_refuses_records_of_another_struct():
    rules = engine.FitRules(_structs.record("DriverConfig"), _structs.record("ScheduleConfig"))
    scalars = _structs.record("FitScalars")
    with pytest.raises(ValueError, match="one-element DriverConfig record"):
        _core.epoch_end(rules.schedule, rules.schedule, rules.plateau, scalars, 1.0, np.nan)
    with pytest.raises(ValueError, match="one-element FitScalars record"):
        _core.epoch_end(rules.driver, rules.schedule, rules.plateau, np.zeros(1), 1.0, np.nan)
    stop, improved, lr = _core.epoch_end(rules.driver, rules.schedule, rules.plateau, scalars,
                                         1.0, np.nan)
    assert improved and not stop


def test_driver_applies_the_stopping_rule_of_epoch_rules():
    # scikit-learn's rule through the driver: stop after `patience` epochs without the objective
    # improving by tol; an independent count over the recorded curve gives the same epoch
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 4))
    y = np.where(X[:, 0] + 0.1 * rng.standard_normal(200) > 0, 1.0, -1.0)
    ex, rules = _executor(X, y, batch_size=0, tol=1e-3, patience=3, count_plateau=True,
                          stop_on_plateau=True, max_iter=10000)
    state = engine.FitState(np.zeros(5), order=np.arange(200))
    report = engine.run(ex, state, rules)
    assert report.status == FitStatus.CONVERGED
    best, streak, stop = np.inf, 0, None
    for epoch, value in enumerate(report.loss_curve, start=1):
        streak = streak + 1 if value > best - 1e-3 else 0
        best = min(best, value)
        if streak >= 3:
            stop = epoch
            break
    assert stop == report.n_epochs == state["epoch"]


def test_next_epoch_order_is_a_permutation_advancing_the_generator():
    state = engine.FitState(np.zeros(1), order=np.arange(1000), scalars={"rng": 42})
    order = state.order.copy()
    _core.shuffle_order(order, state.scalars)
    assert sorted(order) == list(range(1000)) and not np.array_equal(order, state.order)
    again = state.order.copy()
    scalars = _structs.record("FitScalars", {"rng": 42})
    _core.shuffle_order(again, scalars)
    assert_array_equal(again, order)  # same seed, same order
    assert scalars["rng"][0] == state["rng"] != 42


# ---- the vector fast paths against the scalar definitions (math/losses.h) --------------------

@pytest.mark.parametrize("dtype, ulps", [(np.float64, 4), (np.float32, 8)])
def test_vector_log_loss_equals_the_definition_within_a_few_ulp(dtype, ulps):
    t = np.concatenate([np.linspace(-40, 40, 20001), [0.0, -0.0, 1e-8, -1e-8, 700.0, -700.0]])
    t = t.astype(dtype)
    fast_loss, fast_sig = _core.fast_log_loss(t)
    ones = np.ones_like(t)
    loss, dloss = _core.losses(int(Loss.LOG), t, ones, 0.0)  # y = 1: margin t, dloss = -sig
    eps = np.finfo(dtype).eps
    tiny = np.finfo(dtype).tiny
    assert np.all(np.abs(fast_loss - loss) <= ulps * eps * np.abs(loss) + tiny)
    assert np.all(np.abs(fast_sig + dloss) <= ulps * eps * np.abs(dloss) + tiny)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_batch_softmax_equals_the_definition(dtype, rtol):
    rng = np.random.default_rng(3)
    z = (4.0 * rng.standard_normal((300, 7))).astype(dtype)
    labels = rng.integers(0, 7, 300)
    ref = z.copy()
    ref_loss = _core.softmax_xent(ref, labels.astype(np.int64))
    fast = z.copy()
    total = _core.softmax_xent_batch(fast, labels.astype(np.int32), 1.0)
    assert total == pytest.approx(float(np.sum(ref_loss, dtype=np.float64)), rel=rtol)
    np.testing.assert_allclose(fast, ref, rtol=rtol, atol=rtol)
