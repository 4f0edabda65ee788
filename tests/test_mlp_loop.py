"""The compiled MLP executor (gdsolve/_cpu_mlp.pyx over cpu/mlp_executor.h) against independent
references: central finite differences of its own objective, a plain NumPy forward/backward and
optimizer written here from the published formulas, and scikit-learn's MLP where the rules
coincide.
"""

import os
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from scipy.special import expit, log_softmax, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from gdsolve import _core, _cpu_mlp, _structs, engine
from gdsolve._codes import Activation, Loss
from gdsolve.neural_network import (
    SGDMLPClassifier,
    SGDMLPRegressor,
    pack_parameters,
    unpack_parameters,
)
from gdsolve.optim import SGD, Adam
from gdsolve.schedules import StepLR

ACTIVATIONS = ["identity", "relu", "tanh", "logistic"]
LOSSES = {"squared": Loss.SQUARED, "logistic": Loss.LOG, "softmax": Loss.SOFTMAX}


# ---- NumPy reference (written from the textbook formulas; shares no code with gdsolve) -------

def _act(name, z):
    return {"identity": lambda v: v, "relu": lambda v: np.maximum(v, 0), "tanh": np.tanh,
            "logistic": expit}[name](z)


def _act_derivative_from_output(name, a):
    return {"identity": np.ones_like, "relu": lambda v: (v > 0).astype(v.dtype),
            "tanh": lambda v: 1 - v * v, "logistic": lambda v: v * (1 - v)}[name](a)


def ref_loss_grad(coefs, intercepts, X, target, kind, activation, alpha):
    """Mean loss + 0.5 alpha ||W||^2 / n and its gradient (lists per layer)."""
    acts = [X]
    for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        z = acts[-1] @ W + b
        acts.append(_act(activation, z) if i < len(coefs) - 1 else z)
    z, n = acts[-1], X.shape[0]
    if kind == "softmax":
        onehot = np.eye(z.shape[1])[target]
        loss = -np.sum(log_softmax(z, axis=1) * onehot) / n
        delta = (softmax(z, axis=1) - onehot) / n
    elif kind == "logistic":
        p = expit(z)
        loss = np.sum(-target * np.log(p) - (1 - target) * np.log1p(-p)) / n
        delta = (p - target) / n
    else:
        loss = 0.5 * np.sum((z - target) ** 2) / n
        delta = (z - target) / n
    loss += 0.5 * alpha * sum(np.sum(W * W) for W in coefs) / n
    gW, gb = [None] * len(coefs), [None] * len(coefs)
    for layer in range(len(coefs) - 1, -1, -1):
        gW[layer] = acts[layer].T @ delta + alpha * coefs[layer] / n
        gb[layer] = delta.sum(axis=0)
        if layer > 0:
            delta = (delta @ coefs[layer].T) * _act_derivative_from_output(activation, acts[layer])
    return loss, gW, gb


def flat(coefs, intercepts):
    """The executors' parameter layout (every coefficient matrix, then every bias), float64."""
    return pack_parameters(coefs, intercepts, np.float64)


unflat = unpack_parameters


def glorot(units, activation, seed):
    """scikit-learn's MLP initialisation: per layer, coefs then intercepts from U(-b, b)."""
    rs = np.random.RandomState(seed)
    factor = 2.0 if activation == "logistic" else 6.0
    coefs, intercepts = [], []
    for a, b in zip(units[:-1], units[1:], strict=True):
        bound = np.sqrt(factor / (a + b))
        coefs.append(rs.uniform(-bound, bound, (a, b)))
        intercepts.append(rs.uniform(-bound, bound, b))
    return coefs, intercepts


def best_output_bias(kind, target, k):
    """The output layer's bias a fresh fit starts from (intercept_start='auto' off plain SGD;
    docs/mlp.md), written out: the log class frequencies (softmax), the log-odds of each 0/1
    column (logistic outputs), the mean of each target column (squared)."""
    if kind == "softmax":
        return np.log(np.bincount(target, minlength=k) / len(target))
    t = np.asarray(target, dtype=float).reshape(len(target), -1)
    if kind == "logistic":
        p = t.mean(axis=0)
        return np.log(p) - np.log1p(-p)
    return t.mean(axis=0)


class RefOptimizer:
    """PyTorch's SGD (momentum, nesterov) and Adam, from the torch.optim documentation."""

    def __init__(self, kind, lr, momentum=0.0, nesterov=False, betas=(0.9, 0.999), eps=1e-8):
        self.kind, self.lr, self.momentum, self.nesterov = kind, lr, momentum, nesterov
        self.b1, self.b2, self.eps = betas[0], betas[1], eps
        self.t, self.buf, self.m, self.v = 0, None, None, None

    def step(self, w, g, lr):
        self.t += 1
        if self.kind == "sgd":
            if self.momentum:
                self.buf = g.copy() if self.buf is None else self.momentum * self.buf + g
                g = g + self.momentum * self.buf if self.nesterov else self.buf
            return w - lr * g
        if self.m is None:
            self.m, self.v = np.zeros_like(w), np.zeros_like(w)
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        return w - lr * m_hat / (np.sqrt(v_hat) + self.eps)


def ref_train(coefs, intercepts, X, target, kind, activation, alpha, batch_size, epochs, opt,
              lr_at=None, clip=None):
    """Sequential batches (no shuffling), one optimizer step each; returns params, epoch losses."""
    units = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
    w = flat(coefs, intercepts)
    losses, step = [], 0
    n = X.shape[0]
    for epoch in range(epochs):
        total = 0.0
        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n))
            c, b = unflat(w, units)
            loss, gW, gb = ref_loss_grad(c, b, X[rows], target[rows], kind, activation, alpha)
            g = flat(gW, gb)
            if clip is not None:
                g = g * min(1.0, clip / (np.linalg.norm(g) + 1e-6))
            lr = opt.lr if lr_at is None else lr_at(step, epoch)
            w = opt.step(w, g, lr)
            total += loss * (rows.stop - rows.start)
            step += 1
        losses.append(total / n)
    return w, losses


# ---- gradient and objective --------------------------------------------------------------------

def _problem(kind, n=23, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if kind == "softmax":
        return X, rng.integers(0, k, n), k
    if kind == "logistic":
        return X, (rng.random((n, k)) < 0.5).astype(float), k
    return X, rng.normal(size=(n, k)), k


def _arrays(X, target, kind):
    if kind == "softmax":
        return _cpu_mlp.MlpArrays(X, None, target.astype(np.int32))
    return _cpu_mlp.MlpArrays(X, target, None)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("kind", list(LOSSES))
def test_backward_matches_central_differences_of_compiled_loss(activation, kind):
    X, target, k = _problem(kind)
    units = [X.shape[1], 7, 5, k]
    p = np.random.default_rng(1).normal(scale=0.6, size=_cpu_mlp.n_params(units))
    data = _arrays(X, target, kind)
    act, loss = int(Activation[activation.upper()]), int(LOSSES[kind])
    alpha = 0.3

    def objective(q):
        return _cpu_mlp.loss_grad(units, act, loss, q, data, alpha)[0]

    _, grad = _cpu_mlp.loss_grad(units, act, loss, p, data, alpha)
    h = 1e-6
    numeric = np.empty_like(p)
    for i in range(p.size):
        e = np.zeros_like(p)
        e[i] = h
        numeric[i] = (objective(p + e) - objective(p - e)) / (2 * h)
    assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8 * np.abs(grad).max())


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("kind", list(LOSSES))
def test_objective_and_gradient_match_numpy_reference(activation, kind):
    X, target, k = _problem(kind, seed=3)
    units = [X.shape[1], 8, k]
    p = np.random.default_rng(4).normal(scale=0.7, size=_cpu_mlp.n_params(units))
    value, grad = _cpu_mlp.loss_grad(units, int(Activation[activation.upper()]),
                                      int(LOSSES[kind]), p, _arrays(X, target, kind), 0.05)
    ref_value, gW, gb = ref_loss_grad(*unflat(p, units), X, target, kind, activation, 0.05)
    assert_allclose(value, ref_value, rtol=1e-12)
    assert_allclose(grad, flat(gW, gb), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_objective_with_extreme_logits(dtype):
    # logits hundreds apart: most exponentials underflow to 0 inside the batch softmax
    X, target, k = _problem("softmax", n=40, k=5, seed=9)
    units = [X.shape[1], k]
    p = np.random.default_rng(10).normal(scale=150.0, size=_cpu_mlp.n_params(units))
    value, grad = _cpu_mlp.loss_grad(units, 0, int(Loss.SOFTMAX), p.astype(dtype),
                                      _arrays(X.astype(dtype), target, "softmax"), 0.0)
    ref_value, gW, gb = ref_loss_grad(*unflat(p, units), X, target, "softmax", "identity", 0.0)
    rtol = 1e-12 if dtype == np.float64 else 1e-4
    assert_allclose(value, ref_value, rtol=rtol)
    assert_allclose(grad, flat(gW, gb), rtol=rtol, atol=rtol * np.abs(flat(gW, gb)).max())


def test_float32_objective_close_to_float64():
    X, target, k = _problem("softmax", n=50)
    units = [X.shape[1], 16, k]
    p = np.random.default_rng(5).normal(scale=0.5, size=_cpu_mlp.n_params(units))
    v64, g64 = _cpu_mlp.loss_grad(units, 1, int(Loss.SOFTMAX), p, _arrays(X, target, "softmax"),
                                   1e-3)
    v32, g32 = _cpu_mlp.loss_grad(units, 1, int(Loss.SOFTMAX), p.astype(np.float32),
                                   _arrays(X.astype(np.float32), target, "softmax"), 1e-3)
    assert g32.dtype == np.float32
    assert_allclose(v32, v64, rtol=1e-5)
    assert_allclose(g32, g64, rtol=1e-3, atol=1e-5 * np.abs(g64).max())


def test_sparse_first_layer_matches_dense():
    X, target, k = _problem("logistic", n=30, d=12)
    X[np.abs(X) < 0.8] = 0.0
    units = [X.shape[1], 9, k]
    p = np.random.default_rng(6).normal(size=_cpu_mlp.n_params(units))
    dense = _cpu_mlp.loss_grad(units, 2, int(Loss.LOG), p, _arrays(X, target, "logistic"), 0.1)
    csr = _cpu_mlp.loss_grad(units, 2, int(Loss.LOG), p,
                              _arrays(sp.csr_matrix(X), target, "logistic"), 0.1)
    assert_allclose(csr[0], dense[0], rtol=1e-13)
    assert_allclose(csr[1], dense[1], rtol=1e-11, atol=1e-14)
    out_dense = _cpu_mlp.predict(units, 2, int(Loss.LOG), p, _cpu_mlp.MlpArrays(X))
    out_csr = _cpu_mlp.predict(units, 2, int(Loss.LOG), p, _cpu_mlp.MlpArrays(sp.csr_matrix(X)))
    assert_allclose(out_csr, out_dense, rtol=1e-12)


@pytest.mark.parametrize("kind", list(LOSSES))
def test_predict_matches_numpy_forward(kind):
    X, _, k = _problem(kind, n=1100)  # more rows than one 512-row prediction chunk
    units = [X.shape[1], 10, 4, k]
    p = np.random.default_rng(7).normal(size=_cpu_mlp.n_params(units))
    out = _cpu_mlp.predict(units, 3, int(LOSSES[kind]), p, _cpu_mlp.MlpArrays(X))
    coefs, intercepts = unflat(p, units)
    z = expit(expit(X @ coefs[0] + intercepts[0]) @ coefs[1] + intercepts[1]) @ coefs[2]
    z = z + intercepts[2]
    expected = {"softmax": softmax(z, axis=1), "logistic": expit(z), "squared": z}[kind]
    assert_allclose(out, expected, rtol=1e-11, atol=1e-14)


# ---- whole trajectories --------------------------------------------------------------------------

def _quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


@pytest.mark.parametrize(
    "case",
    [
        dict(name="adam-regressor", est=SGDMLPRegressor, kind="squared", activation="tanh",
             optimizer="adam", lr=0.01, ref=dict(kind="adam")),
        dict(name="momentum-softmax", est=SGDMLPClassifier, kind="softmax", activation="relu",
             optimizer=SGD(lr=0.05, momentum=0.9), lr=0.05, ref=dict(kind="sgd", momentum=0.9)),
        dict(name="nesterov-binary-clipped", est=SGDMLPClassifier, kind="logistic",
             activation="logistic", optimizer="nesterov", lr=0.1, clip=0.5,
             ref=dict(kind="sgd", momentum=0.9, nesterov=True)),
        dict(name="adam-multilabel-steplr", est=SGDMLPClassifier, kind="logistic",
             activation="tanh", optimizer=Adam(lr=0.02), lr=0.02,
             schedule=StepLR(step_size=4, gamma=0.5), ref=dict(kind="adam"),
             lr_at=lambda step, epoch: 0.02 * 0.5 ** (step // 4)),
    ],
    ids=lambda c: c["name"],
)
def test_fit_trajectory_equals_numpy_reference(case):
    rng = np.random.default_rng(11)
    n, d = 29, 4
    X = rng.normal(size=(n, d))
    if case["kind"] == "softmax":
        y = rng.integers(0, 3, n)
        target, k = y, 3
    elif case["name"].startswith("nesterov"):
        y = rng.integers(0, 2, n)
        target, k = y[:, None].astype(float), 1
    elif case["est"] is SGDMLPClassifier:
        y = (rng.random((n, 3)) < 0.5).astype(int)
        target, k = y.astype(float), 3
    else:
        y = rng.normal(size=(n, 2))
        target, k = y, 2
    hidden = (6, 5)
    est = case["est"](hidden_layer_sizes=hidden, activation=case["activation"], alpha=1e-2,
                      optimizer=case["optimizer"], learning_rate_init=case["lr"], batch_size=8,
                      max_iter=3, shuffle=False, tol=0.0, n_iter_no_change=100, random_state=3,
                      clip_grad_norm=case.get("clip"),
                      learning_rate=case.get("schedule", "constant"))
    _quiet_fit(est, X, y)

    units = [d, *hidden, k]
    coefs, intercepts = glorot(units, case["activation"], 3)
    intercepts[-1] = best_output_bias(case["kind"], target, k)
    w, losses = ref_train(coefs, intercepts, X, target, case["kind"], case["activation"], 1e-2,
                          8, 3, RefOptimizer(lr=case["lr"], **case["ref"]),
                          lr_at=case.get("lr_at"), clip=case.get("clip"))
    ref_coefs, ref_intercepts = unflat(w, units)
    for got, want in zip(est.coefs_ + est.intercepts_, ref_coefs + ref_intercepts, strict=True):
        assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert_allclose(est.loss_curve_, losses, rtol=1e-10)
    assert est.n_iter_ == 3 and est.t_ == 3 * n


@pytest.mark.parametrize("learning_rate", ["constant", "invscaling", "adaptive"])
def test_plain_sgd_matches_sklearn_mlp_regressor(learning_rate):
    # scikit-learn's solver='sgd' with momentum=0 is the plain SGD rule; with the same initial
    # weights (same RandomState draws) and no shuffling the trajectories coincide, including the
    # per-epoch invscaling rate, adaptive's division by 5 and the stopping rule.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 3))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    params = dict(hidden_layer_sizes=(8,), activation="tanh", alpha=1e-3, batch_size=16,
                  learning_rate=learning_rate, learning_rate_init=0.05, max_iter=60,
                  shuffle=False, tol=1e-3, n_iter_no_change=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = MLPRegressor(solver="sgd", momentum=0.0, **params).fit(X, y)
        est = SGDMLPRegressor(optimizer="sgd", **params).fit(X, y)
    assert est.n_iter_ == ref.n_iter_
    assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=1e-9)
    for got, want in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_, strict=True):
        assert_allclose(got, want, rtol=1e-8, atol=1e-12)
    assert_allclose(est.best_loss_, ref.best_loss_, rtol=1e-9)


def test_stopping_rule_counts_like_sklearn():
    # tol so large that no epoch after the first (which replaces the initial +inf best) counts
    # as an improvement: scikit-learn stops once the count exceeds n_iter_no_change, i.e. after
    # n_iter_no_change + 2 epochs.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)), rng.integers(0, 2, 50)
    ref = MLPClassifier(tol=10.0, n_iter_no_change=4, random_state=0).fit(X, y)
    est = SGDMLPClassifier(tol=10.0, n_iter_no_change=4, random_state=0).fit(X, y)
    assert est.n_iter_ == ref.n_iter_ == 6


def _direct_fit(X, y, X_val, y_val, max_epochs, lr=0.05, seed=0):
    units = [X.shape[1], 16, 3]
    coefs, intercepts = glorot(units, "relu", seed)
    params = flat(coefs, intercepts)
    state = engine.FitState(params, best_params=params.copy(),
                            order=np.arange(X.shape[0], dtype=np.uint32),
                            scalars={"plateau_lr": lr, "rng": seed})
    model = _structs.record("MlpConfig", {"activation": int(Activation.RELU),
                                          "loss": int(Loss.SOFTMAX), "alpha": 0.0})
    driver = _structs.record("DriverConfig", {
        "batch_size": 10, "max_iter": max_epochs, "tol": 1e-4, "patience": 1001,
        "count_plateau": True, "stop_on_plateau": True, "shuffle": True,
        "monitor_score": True, "keep_best": True})
    schedule = _structs.record("ScheduleConfig", {"code": 0, "base_lr": lr})
    executor = _cpu_mlp.MlpExecutor(units, model,
                                    _structs.record("OptimizerConfig", Adam(lr=lr).to_config()),
                                    schedule, driver, _structs.record("CpuConfig"),
                                    _arrays(X, y, "softmax"), _arrays(X_val, y_val, "softmax"))
    report = engine.run(executor, state, engine.FitRules(driver, schedule,
                                                         _core.plateau_record({})))
    out = (report.status, report.n_epochs, report.stop_epoch)
    return out, state.params, np.array(report.loss_curve), np.array(report.val_scores), units


def test_early_stopping_keeps_the_best_validated_parameters():
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(120, 5)), rng.integers(0, 3, 120)  # pure noise: validation wanders
    X_val, y_val = rng.normal(size=(40, 5)), rng.integers(0, 3, 40)
    (status, epochs, _), params, curve, scores, units = _direct_fit(X, y, X_val, y_val, 25)
    assert status == 0 and epochs == 25
    assert np.all(np.isfinite(scores)) and np.all(np.isfinite(curve))
    proba = _cpu_mlp.predict(units, int(Activation.RELU), int(Loss.SOFTMAX), params,
                              _cpu_mlp.MlpArrays(X_val))
    accuracy = np.mean(np.argmax(proba, axis=1) == y_val)
    assert accuracy == pytest.approx(np.max(scores))  # the kept model is the best epoch's


def test_divergence_raises_and_keeps_previous_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4)) * 100
    y = X @ rng.normal(size=4) * 1e3
    est = SGDMLPRegressor(hidden_layer_sizes=(4,), optimizer="sgd", max_iter=3, random_state=0)
    _quiet_fit(est, X / 100, y / 1e5)
    before = [c.copy() for c in est.coefs_]
    est.set_params(warm_start=True, learning_rate_init=10.0, max_iter=50)
    with pytest.raises(ValueError, match="non-finite"):
        est.fit(X, y)
    for got, want in zip(est.coefs_, before, strict=True):
        assert_allclose(got, want)
    assert np.isfinite(est.predict(X[:3])).all()


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT to itself")
def test_ctrl_c_stops_the_compiled_loop_and_leaves_a_usable_model(fit_interrupted):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    # short epochs (~2 ms) and a fit that would run for minutes
    est = SGDMLPClassifier(hidden_layer_sizes=(16,), max_iter=100000, tol=0.0,
                           learning_rate_init=0.01, n_iter_no_change=10**8, random_state=0)
    fit_interrupted(est, X, y, 0.5)
    assert 0 < est.n_iter_ < 100000
    assert len(est.loss_curve_) == est.n_iter_
    assert np.all([np.isfinite(c).all() for c in est.coefs_])
    assert est.score(X, y) > 0.9
