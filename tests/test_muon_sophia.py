"""Muon and Sophia, compiled, against independent references: torch.optim.Muon with
torch.optim.AdamW (or another torch rule) for the companion parameters in a real PyTorch loop
(Newton-Schulz run in float64 there: PyTorch 2.13 runs it in bfloat16), and a plain NumPy
re-implementation of Sophia-G as Liu, Li, Hall, Liang and Ma (2023) publish it (Algorithm 3, the
Gauss-Newton-Bartlett estimator), with the sampled labels drawn from the documented generator, for
the MLPs and the linear models. Also: the draws, the estimators' expectation, pause/resume,
thread teams, schedules, clipping, early stopping and the refusals.
"""

import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit, log_softmax, softmax
from sklearn.exceptions import ConvergenceWarning
from test_mlp_loop import best_output_bias, flat, glorot, ref_loss_grad, unflat

from gdsolve import (
    SGDLinearRegression,
    SGDLogistic,
    SGDMLPClassifier,
    SGDMLPRegressor,
    _core,
    _cpu_mlp,
    _structs,
    engine,
)
from gdsolve.optim import SGD, AdamW, Muon, Sophia
from gdsolve.schedules import StepLR


def _quiet_fit(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kw)


# ---- the documented generator of Sophia's draws (math/sophia.h), written out here ------------

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def draw(key, t, row, q):
    """Uniform in [0, 1): h = mix(key + G t), mix(h + G (row + 1)), mix(h + G (q + 1))."""
    h = _mix((key + GOLDEN * t) & MASK)
    h = _mix((h + GOLDEN * (row + 1)) & MASK)
    h = _mix((h + GOLDEN * (q + 1)) & MASK)
    return (h >> 11) * 2.0**-53


def test_draws_follow_the_documented_formula_and_are_uniform():
    key = 0x1234_5678_9ABC_DEF0
    rows = np.arange(4000, dtype=np.int64)
    for t, q in ((1, 0), (11, 0), (11, 3)):
        got = _core.sophia_uniforms(key, t, rows, q)
        assert_array_equal(got, [draw(key, t, int(r), q) for r in rows])
    u = _core.sophia_uniforms(key, 7, rows, 0)
    assert 0.0 <= u.min() and u.max() < 1.0
    # uniform: every tenth of [0, 1) holds 400 +- 4 sigma of the draws
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - 400) < 4 * np.sqrt(400 * 0.9))
    # different steps, rows and draw indices are (nearly) uncorrelated
    v = _core.sophia_uniforms(key, 8, rows, 0)
    w = _core.sophia_uniforms(key, 7, rows, 1)
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.1 and abs(np.corrcoef(u, w)[0, 1]) < 0.1


# ---- Muon on one matrix (gdsolve.optim.Muon.step) --------------------------------------------

def numpy_newton_schulz(G, a=3.4445, b=-4.775, c=2.0315, steps=5, eps=1e-7):
    X = G.T if G.shape[0] > G.shape[1] else G
    X = X / max(np.linalg.norm(X), eps)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if G.shape[0] > G.shape[1] else X


def numpy_muon(shape, grads, w0, lr, mu, wd, nesterov=True, adjust=None):
    w, buf = w0.copy(), np.zeros(shape)
    A, B = shape
    scale = 0.2 * math.sqrt(max(A, B)) if adjust == "match_rms_adamw" else math.sqrt(max(1, A / B))
    out = []
    for g in grads:
        buf = mu * buf + (1 - mu) * g
        u = (1 - mu) * g + mu * buf if nesterov else buf
        w = w * (1 - lr * wd) - lr * scale * numpy_newton_schulz(u)
        out.append(w.copy())
    return out


@pytest.mark.parametrize("shape", [(9, 4), (4, 9), (6, 6)], ids=["tall", "wide", "square"])
@pytest.mark.parametrize("adjust", [None, "match_rms_adamw"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_step_matches_numpy_reference(shape, adjust, nesterov):
    rng = np.random.default_rng(len(shape) + shape[0])
    w0 = rng.normal(size=shape)
    grads = rng.normal(size=(12,) + shape)
    opt = Muon(lr=0.03, momentum=0.9, weight_decay=0.2, nesterov=nesterov, adjust_lr_fn=adjust)
    w, state = w0.copy(), opt.init_state(w0)
    ref = numpy_muon(shape, grads, w0, 0.03, 0.9, 0.2, nesterov, adjust)
    for g, want in zip(grads, ref, strict=True):
        opt.step(w, g, state)
        assert_allclose(w, want, rtol=1e-12, atol=1e-14)
    assert state["step"] == 12
    assert np.abs(w - w0).max() > 0.1


def test_newton_schulz_keeps_the_singular_vectors():
    # the quintic iteration is an odd matrix polynomial: U f(S) V^T with f(s) near 1 for the
    # singular values of the normalised matrix (Keller Jordan's coefficients leave f in about
    # (0.5, 1.5), not exactly 1)
    rng = np.random.default_rng(0)
    G = rng.normal(size=(8, 5)) @ np.diag([1.0, 0.5, 0.2, 0.1, 0.05])
    opt = Muon(lr=1.0, momentum=0.0, nesterov=False, weight_decay=0.0)
    w = np.zeros_like(G)
    opt.step(w, G, opt.init_state(w))
    O = -w / math.sqrt(8 / 5)  # w = -lr * sqrt(A / B) * O
    U, s, Vt = np.linalg.svd(G, full_matrices=False)
    inner = U.T @ O @ Vt.T
    assert_allclose(inner, np.diag(np.diag(inner)), atol=1e-12)
    assert np.all((np.diag(inner) > 0.5) & (np.diag(inner) < 1.5))


def _torch_float64_newton_schulz(monkeypatch, torch):
    # PyTorch 2.13 orthogonalises in bfloat16; the same iteration in float64 makes the parity
    # exact up to rounding (the rest of torch.optim.Muon is unchanged)
    import torch.optim._muon as torch_muon

    def float64_ns(grad, ns_coefficients, ns_steps, eps):
        a, b, c = ns_coefficients
        X = grad.to(torch.float64)
        if grad.size(0) > grad.size(1):
            X = X.T
        X = X / X.norm().clamp(min=eps)
        for _ in range(ns_steps):
            A = X @ X.T
            X = torch.addmm(X, torch.addmm(A, A, A, beta=b, alpha=c), X, beta=a)
        if grad.size(0) > grad.size(1):
            X = X.T
        return X.to(grad.dtype)

    monkeypatch.setattr(torch_muon, "_zeropower_via_newtonschulz", float64_ns)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_muon_step_matches_torch(monkeypatch, dtype):
    torch = pytest.importorskip("torch")
    _torch_float64_newton_schulz(monkeypatch, torch)
    rng = np.random.default_rng(5)
    for shape, adjust in (((7, 3), None), ((3, 7), "match_rms_adamw"), ((5, 5), "original")):
        w0 = rng.normal(size=shape).astype(dtype)
        p = torch.nn.Parameter(torch.tensor(w0))
        topt = torch.optim.Muon([p], lr=0.02, weight_decay=0.1, adjust_lr_fn=adjust)
        opt = Muon(lr=0.02, weight_decay=0.1, adjust_lr_fn=adjust)
        w, state = w0.copy(), opt.init_state(w0)
        for step in range(10):
            g = rng.normal(size=shape).astype(dtype)
            momentum = 0.85 + 0.01 * step  # one-cycle style: torch reads group["momentum"]
            topt.param_groups[0]["momentum"] = momentum
            p.grad = torch.tensor(g)
            topt.step()
            opt.step(w, g, state, momentum=momentum)
        tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
        assert w.dtype == dtype
        assert_allclose(w, p.detach().numpy(), **tol)


def test_muon_refuses_what_is_not_a_matrix_before_work():
    opt = Muon()
    w = np.ones(5)
    with pytest.raises(ValueError, match="2-D"):
        opt.step(w, np.ones(5), opt.init_state(w))
    w2 = np.ones((2, 3))
    state = opt.init_state(w2)
    with pytest.raises(ValueError, match="shape"):
        opt.step(w2, np.ones((3, 2)), state)
    assert_array_equal(w2, 1.0)
    assert_array_equal(state["momentum_buffer"], 0.0)


# ---- Sophia on flat arrays (gdsolve.optim.Sophia.step) ----------------------------------------

def numpy_sophia_step(w, m, h, g, hhat, lr, b1, b2, gamma, eps, wd):
    """Algorithm 3 of the paper for one step: the Hessian EMA (when hhat is given), the EMA of the
    gradient, the decoupled decay, the clipped step. Returns (w, m, h, clipped fraction)."""
    if hhat is not None:
        h = b2 * h + (1 - b2) * hhat
    m = b1 * m + (1 - b1) * g
    w = w * (1 - lr * wd)
    ratio = m / np.maximum(gamma * h, eps)
    return w - lr * np.clip(ratio, -1, 1), m, h, np.mean(np.abs(ratio) > 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sophia_step_matches_numpy_reference(dtype):
    rng = np.random.default_rng(3)
    n = 40
    hyper = dict(lr=0.01, betas=(0.9, 0.95), gamma=0.2, eps=1e-3, weight_decay=0.3, k=4)
    opt = Sophia(**hyper)
    w0 = rng.normal(size=n).astype(dtype)
    w, state = w0.copy(), opt.init_state(w0)
    rw, rm, rh = w0.astype(np.float64), np.zeros(n), np.zeros(n)
    clipped = []
    for step in range(1, 31):
        g = rng.normal(size=n).astype(dtype)
        due = opt.hessian_due(state)
        assert due == ((step - 1) % 4 == 0)  # t mod k = 1
        hhat = (rng.exponential(size=n) * 5).astype(dtype) if due else None
        opt.step(w, g, state, hessian=hhat)
        rw, rm, rh, c = numpy_sophia_step(rw, rm, rh, g, hhat, 0.01, 0.9, 0.95, 0.2, 1e-3, 0.3)
        clipped.append(c)
        tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
        assert_allclose(w, rw, **tol)
        assert_allclose(state["hessian"], rh, **tol)
    assert w.dtype == dtype and state["step"] == 30
    assert 0.05 < np.mean(clipped) < 0.95  # both the clipped and the unclipped branch ran


def test_sophia_gnb_estimate_and_bad_hessian():
    opt = Sophia()
    assert_allclose(opt.gnb_estimate(np.array([0.5, -2.0]), 8), [2.0, 32.0])
    w = np.ones(3)
    state = opt.init_state(w)
    with pytest.raises(ValueError, match="hessian"):
        opt.step(w, np.ones(3), state, hessian=np.ones(4))
    assert_array_equal(w, 1.0)
    assert_array_equal(state["hessian"], 0.0)


# ---- the MLP: Muon + companion against a PyTorch loop -----------------------------------------

def _torch_loss(torch, z, yb, kind):
    if kind == "softmax":
        return torch.nn.functional.cross_entropy(z, yb)
    if kind == "logistic":
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        return bce(z, yb, reduction="sum") / len(yb)
    return 0.5 * ((z - yb) ** 2).sum() / len(yb)


def _torch_mlp_trajectory(torch, coefs, intercepts, X, target, kind, activation, alpha,
                          batch_size, epochs, muon_kw, companion, lr_at=None, clip=None):
    """Muon on the hidden layers' weights (torch.nn.Linear layout: fan_out x fan_in), the
    companion torch optimizer on the output layer's weight and every bias; batches in order."""
    act = {"tanh": torch.tanh, "relu": torch.relu, "logistic": torch.sigmoid}[activation]
    Ws = [torch.nn.Parameter(torch.tensor(c.T.copy())) for c in coefs]
    bs = [torch.nn.Parameter(torch.tensor(b.copy())) for b in intercepts]
    muon = torch.optim.Muon(Ws[:-1], **muon_kw)
    name, kw = companion
    other = getattr(torch.optim, name)([Ws[-1]] + bs, **kw)
    Xt = torch.tensor(X)
    yt = torch.tensor(target)
    losses, step, n = [], 0, X.shape[0]
    for _ in range(epochs):
        total = 0.0
        for start in range(0, n, batch_size):
            xb, yb = Xt[start:start + batch_size], yt[start:start + batch_size]
            h = xb
            for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
                h = h @ W.T + b
                if i < len(Ws) - 1:
                    h = act(h)
            loss = _torch_loss(torch, h, yb, kind) + 0.5 * alpha * sum(
                (W * W).sum() for W in Ws) / len(yb)
            muon.zero_grad()
            other.zero_grad()
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(Ws + bs, clip)
            if lr_at is not None:
                for opt, base in ((muon, muon_kw["lr"]), (other, kw["lr"])):
                    opt.param_groups[0]["lr"] = base * lr_at(step)
            muon.step()
            other.step()
            total += loss.item() * len(yb)
            step += 1
        losses.append(total / n)
    return ([W.detach().numpy().T for W in Ws], [b.detach().numpy() for b in bs], losses)


MUON_CASES = [
    dict(name="softmax-tanh-adamw", est=SGDMLPClassifier, kind="softmax", activation="tanh",
         hidden=(6, 5), muon=dict(lr=0.05, weight_decay=0.05),
         companion=("AdamW", dict(lr=0.01, weight_decay=0.02))),
    dict(name="regressor-relu-steplr-clip", est=SGDMLPRegressor, kind="squared",
         activation="relu", hidden=(7,), muon=dict(lr=0.02, momentum=0.9, nesterov=False,
                                                   adjust_lr_fn="match_rms_adamw"),
         companion=("AdamW", dict(lr=0.005)), schedule=StepLR(step_size=3, gamma=0.5),
         lr_at=lambda step: 0.5 ** (step // 3), clip=0.3),
    dict(name="multilabel-logistic-sgd-companion", est=SGDMLPClassifier, kind="logistic",
         activation="logistic", hidden=(3, 8), muon=dict(lr=0.04, weight_decay=0.0),
         companion=("SGD", dict(lr=0.1, momentum=0.9, nesterov=True))),
]


@pytest.mark.parametrize("case", MUON_CASES, ids=lambda c: c["name"])
def test_mlp_muon_trajectory_equals_torch(monkeypatch, case):
    torch = pytest.importorskip("torch")
    _torch_float64_newton_schulz(monkeypatch, torch)
    rng = np.random.default_rng(11)
    n, d = 29, 4
    X = rng.normal(size=(n, d))
    if case["kind"] == "softmax":
        y = rng.integers(0, 3, n)
        target, k = y, 3
    elif case["kind"] == "logistic":
        y = (rng.random((n, 3)) < 0.5).astype(int)
        target, k = y.astype(float), 3
    else:
        y = rng.normal(size=(n, 2))
        target, k = y, 2
    name, kw = case["companion"]
    companion = {"AdamW": AdamW, "SGD": SGD}[name](**kw)
    opt = Muon(**case["muon"], companion=companion)
    hidden, alpha = case["hidden"], 1e-2
    est = case["est"](hidden_layer_sizes=hidden, activation=case["activation"], alpha=alpha,
                      optimizer=opt, batch_size=8, max_iter=3, shuffle=False, tol=0.0,
                      n_iter_no_change=100, random_state=3, clip_grad_norm=case.get("clip"),
                      learning_rate=case.get("schedule", "constant"),
                      intercept_start="sklearn")  # the Glorot draw, as torch gets it
    units = [d, *hidden, k]
    coefs, intercepts = glorot(units, case["activation"], 3)
    # one step first: the same start, one batch
    one = est.set_params(max_iter=1, batch_size=n)
    _quiet_fit(one, X, y)
    tc, tb, tl = _torch_mlp_trajectory(torch, coefs, intercepts, X, target, case["kind"],
                                       case["activation"], alpha, n, 1, case["muon"],
                                       case["companion"], case.get("lr_at"), case.get("clip"))
    for got, want in zip(one.coefs_ + one.intercepts_, tc + tb, strict=True):
        assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # a whole short trajectory: 3 epochs of 4 batches
    est.set_params(max_iter=3, batch_size=8)
    _quiet_fit(est, X, y)
    tc, tb, tl = _torch_mlp_trajectory(torch, coefs, intercepts, X, target, case["kind"],
                                       case["activation"], alpha, 8, 3, case["muon"],
                                       case["companion"], case.get("lr_at"), case.get("clip"))
    for got, want in zip(est.coefs_ + est.intercepts_, tc + tb, strict=True):
        assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert_allclose(est.loss_curve_, tl, rtol=1e-10)
    moved = max(np.abs(c - c0).max() for c, c0 in zip(est.coefs_, coefs, strict=True))
    assert moved > 0.05


def test_mlp_muon_thread_team_matches_one_thread(monkeypatch):
    # batches of 128 rows are shared by a team of threads when there are two CPUs; the sums then
    # run in another order, so the two fits agree up to rounding
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12))
    y = (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 2] > 0)
    fits = []
    for threads in ("1", "2"):
        monkeypatch.setenv("GDSOLVE_NUM_THREADS", threads)
        for opt in (Muon(lr=0.02), Sophia(lr=3e-3, k=2)):
            est = SGDMLPClassifier(hidden_layer_sizes=(32, 16), optimizer=opt, batch_size=128,
                                   max_iter=4, tol=0.0, random_state=0)
            fits.append(_quiet_fit(est, X, y))
    for one, team in ((fits[0], fits[2]), (fits[1], fits[3])):
        for a, b in zip(one.coefs_ + one.intercepts_, team.coefs_ + team.intercepts_,
                        strict=True):
            assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# ---- the MLP: Sophia against a NumPy re-implementation of the paper ---------------------------

def _forward_logits(coefs, intercepts, X, activation):
    act = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "logistic": expit}[activation]
    h = X
    for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        h = h @ W + b
        if i < len(coefs) - 1:
            h = act(h)
    return h


def sampled_targets(z, kind, key, t, rows):
    """Labels drawn from the model's predictive distribution (docs/optimizers.md): a class from
    the softmax (draw 0), a 0/1 label per logistic output (draw j), a N(z, 1) target per squared
    output (Box-Muller on draws 2j, 2j + 1)."""
    out = []
    for zr, row in zip(z, rows, strict=True):
        if kind == "softmax":
            u = draw(key, t, int(row), 0)
            cdf = np.cumsum(softmax(zr))
            out.append(min(int(np.searchsorted(cdf, u, side="right")), len(zr) - 1))
        elif kind == "logistic":
            out.append([float(draw(key, t, int(row), j) < expit(zr[j])) for j in range(len(zr))])
        else:
            e = [math.sqrt(-2 * math.log(1 - draw(key, t, int(row), 2 * j)))
                 * math.cos(2 * math.pi * draw(key, t, int(row), 2 * j + 1))
                 for j in range(len(zr))]
            out.append(zr + np.array(e))
    return np.array(out)


def numpy_sophia_mlp(coefs, intercepts, X, target, kind, activation, alpha, batch_size, epochs,
                     hyper, key, clip=None):
    """Sophia-G over sequential batches: per step t the batch gradient (with scikit-learn's L2
    term, clipped by norm), on t mod k = 1 the GNB estimate B * ghat^2 (ghat: the batch-mean
    gradient of the loss alone at labels drawn from the network, same parameters) folded into h,
    then Algorithm 3's update."""
    units = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
    w = flat(coefs, intercepts)
    m, h = np.zeros_like(w), np.zeros_like(w)
    b1, b2 = hyper["betas"]
    t, n, losses, clipped = 0, X.shape[0], [], []
    for _ in range(epochs):
        total = 0.0
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(start + batch_size, n))
            c, b = unflat(w, units)
            loss, gW, gb = ref_loss_grad(c, b, X[rows], target[rows], kind, activation, alpha)
            g = flat(gW, gb)
            if clip is not None:
                g = g * min(1.0, clip / (np.linalg.norm(g) + 1e-6))
            t += 1
            hhat = None
            if (t - 1) % hyper["k"] == 0:
                z = _forward_logits(c, b, X[rows], activation)
                drawn = sampled_targets(z, kind, key, t, rows)
                _, sW, sb = ref_loss_grad(c, b, X[rows], drawn, kind, activation, 0.0)
                hhat = len(rows) * flat(sW, sb) ** 2
            w, m, h, frac = numpy_sophia_step(w, m, h, g, hhat, hyper["lr"], b1, b2,
                                              hyper["gamma"], hyper["eps"],
                                              hyper["weight_decay"])
            clipped.append(frac)
            total += loss * len(rows)
        losses.append(total / n)
    return w, losses, np.mean(clipped)


SOPHIA_MLP_CASES = [
    dict(name="softmax", est=SGDMLPClassifier, kind="softmax", activation="tanh",
         hyper=dict(lr=0.02, betas=(0.9, 0.95), gamma=0.05, eps=1e-8, weight_decay=0.1, k=3)),
    dict(name="multilabel-clipped", est=SGDMLPClassifier, kind="logistic", activation="relu",
         hyper=dict(lr=0.03, betas=(0.8, 0.9), gamma=0.02, eps=1e-6, weight_decay=0.0, k=2),
         clip=0.5),
    dict(name="regressor", est=SGDMLPRegressor, kind="squared", activation="logistic",
         hyper=dict(lr=0.01, betas=(0.965, 0.99), gamma=2.0, eps=1e-12, weight_decay=0.2,
                    k=5)),
]


@pytest.mark.parametrize("case", SOPHIA_MLP_CASES, ids=lambda c: c["name"])
def test_mlp_sophia_trajectory_equals_numpy_reference(case):
    rng = np.random.default_rng(21)
    n, d = 30, 5
    X = rng.normal(size=(n, d))
    if case["kind"] == "softmax":
        y = rng.integers(0, 4, n)
        target, k = y, 4
    elif case["kind"] == "logistic":
        y = (rng.random((n, 3)) < 0.4).astype(int)
        target, k = y.astype(float), 3
    else:
        y = rng.normal(size=(n, 2))
        target, k = y, 2
    hidden, alpha = (6, 4), 1e-2
    est = case["est"](hidden_layer_sizes=hidden, activation=case["activation"], alpha=alpha,
                      optimizer=Sophia(**case["hyper"]), batch_size=7, max_iter=3,
                      shuffle=False, tol=0.0, n_iter_no_change=100, random_state=4,
                      clip_grad_norm=case.get("clip"))
    _quiet_fit(est, X, y)
    key = est._fit_state["rng"]  # the generator's state as each epoch starts (no shuffling)
    units = [d, *hidden, k]
    coefs, intercepts = glorot(units, case["activation"], 4)
    intercepts[-1] = best_output_bias(case["kind"], target, k)
    w, losses, clipped = numpy_sophia_mlp(coefs, intercepts, X, target, case["kind"],
                                          case["activation"], alpha, 7, 3, case["hyper"], key,
                                          clip=case.get("clip"))
    ref_coefs, ref_intercepts = unflat(w, units)
    for got, want in zip(est.coefs_ + est.intercepts_, ref_coefs + ref_intercepts, strict=True):
        assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert_allclose(est.loss_curve_, losses, rtol=1e-10)
    assert 0.0 < clipped < 1.0  # the clip both bound and did not bind
    assert np.all(est._fit_state.slot1 >= 0) and np.any(est._fit_state.slot1 > 0)


# ---- the linear models: Sophia against NumPy --------------------------------------------------

def numpy_sophia_linear(X, y, sw, loss, K, batch, epochs, hyper, key, alpha, penalty="l2",
                        l1_ratio=0.0, fit_intercept=True, estimator="gnb", b0=0.0):
    """The linear model's step (docs/linear.md) under Sophia: the batch-mean data gradient plus
    the L2 part of the penalty on the weights; on t mod k = 1 the Hessian estimate of the data
    loss at the parameters before the step (GNB with labels drawn for each row, or the exact
    Gauss-Newton diagonal) into h; the update; the L1 part as a proximal step of
    l1 * lr / max(gamma h, eps, |m|). Rows in order; sw: sample weights; b0: the intercepts'
    start."""
    n, d = X.shape
    W, b = np.zeros((K, d)), np.zeros(K) + b0
    mW, mb, hW, hb = np.zeros((K, d)), np.zeros(K), np.zeros((K, d)), np.zeros(K)
    b1, b2 = hyper["betas"]
    lr, gamma, eps, wd = hyper["lr"], hyper["gamma"], hyper["eps"], hyper["weight_decay"]
    l2 = alpha * (1.0 if penalty == "l2" else (1 - l1_ratio) if penalty == "elasticnet" else 0)
    l1 = alpha * (1.0 if penalty == "l1" else l1_ratio if penalty == "elasticnet" else 0)
    t, losses = 0, []
    for _ in range(epochs):
        loss_sum = 0.0
        for start in range(0, n, batch):
            r = np.arange(start, min(start + batch, n))
            B = len(r)
            z = X[r] @ W.T + b
            if loss == "softmax":
                p = softmax(z, axis=1)
                onehot = np.eye(K)[y[r].astype(int)]
                loss_sum += -np.sum(sw[r] * np.sum(log_softmax(z, axis=1) * onehot, 1))
                dz = (p - onehot) * sw[r, None]
            elif loss == "log":
                m_ = y[r] * z[:, 0]
                loss_sum += np.sum(sw[r] * np.logaddexp(0, -m_))
                dz = (-y[r] * expit(-m_) * sw[r])[:, None]
            else:
                loss_sum += np.sum(sw[r] * 0.5 * (z[:, 0] - y[r]) ** 2)
                dz = ((z[:, 0] - y[r]) * sw[r])[:, None]
            gW = dz.T @ X[r] / B + l2 * W
            gb = dz.sum(0) / B
            t += 1
            if (t - 1) % hyper["k"] == 0:
                if estimator == "exact":
                    if loss == "softmax":
                        curv = p * (1 - p)
                    elif loss == "log":
                        q = expit(z)
                        curv = q * (1 - q)
                    else:
                        curv = np.ones_like(z)
                    curv = curv * sw[r, None]
                    eW, eb = curv.T @ (X[r] ** 2) / B, curv.sum(0) / B
                else:
                    if loss == "softmax":
                        drawn = sampled_targets(z, "softmax", key, t, r)
                        sz = (softmax(z, axis=1) - np.eye(K)[drawn]) * sw[r, None]
                    elif loss == "log":
                        drawn = np.array([draw(key, t, int(i), 0) < expit(zi[0])
                                          for i, zi in zip(r, z, strict=True)])
                        sz = ((expit(z[:, 0]) - drawn) * sw[r])[:, None]
                    else:
                        drawn = sampled_targets(z, "squared", key, t, r)
                        sz = (z - drawn) * sw[r, None]
                    ghW, ghb = sz.T @ X[r] / B, sz.sum(0) / B
                    eW, eb = B * ghW**2, B * ghb**2
                hW = b2 * hW + (1 - b2) * eW
                if fit_intercept:
                    hb = b2 * hb + (1 - b2) * eb
            W = W * (1 - lr * wd)
            mW = b1 * mW + (1 - b1) * gW
            W = W - lr * np.clip(mW / np.maximum(gamma * hW, eps), -1, 1)
            if fit_intercept:
                b = b * (1 - lr * wd)
                mb = b1 * mb + (1 - b1) * gb
                b = b - lr * np.clip(mb / np.maximum(gamma * hb, eps), -1, 1)
            if l1 > 0:
                thr = l1 * lr / np.maximum(np.maximum(gamma * hW, eps), np.abs(mW))
                W = np.sign(W) * np.maximum(np.abs(W) - thr, 0)
        pen = 0.5 * l2 * np.sum(W * W) + l1 * np.sum(np.abs(W))
        losses.append(loss_sum / n + pen)
    return W, b, losses


LINEAR_CASES = [
    dict(name="binary-gnb", est=SGDLogistic, loss="log", classes=2, estimator="gnb"),
    dict(name="binary-exact-weighted", est=SGDLogistic, loss="log", classes=2,
         estimator="exact", weighted=True),
    dict(name="multinomial-gnb-l1", est=SGDLogistic, loss="softmax", classes=3, estimator="gnb",
         penalty="elasticnet"),
    dict(name="multinomial-exact", est=SGDLogistic, loss="softmax", classes=3,
         estimator="exact"),
    dict(name="squared-gnb-no-intercept", est=SGDLinearRegression, loss="squared",
         estimator="gnb", fit_intercept=False, weighted=True),
    dict(name="squared-exact", est=SGDLinearRegression, loss="squared", estimator="exact"),
]


@pytest.mark.parametrize("case", LINEAR_CASES, ids=lambda c: c["name"])
def test_linear_sophia_trajectory_equals_numpy_reference(case):
    rng = np.random.default_rng(7)
    n, d = 60, 6
    X = rng.normal(size=(n, d))
    if case["loss"] == "squared":
        y = X @ rng.normal(size=d) + 0.3 * rng.normal(size=n) + 0.5
        y_ref, K = y, 1
    else:
        y = rng.integers(0, case["classes"], n)
        K = 1 if case["classes"] == 2 else case["classes"]
        y_ref = np.where(y == 1, 1.0, -1.0) if K == 1 else y.astype(float)
    sw = rng.uniform(0.3, 2.0, n) if case.get("weighted") else None
    hyper = dict(lr=0.02, betas=(0.9, 0.95), gamma=0.05, eps=1e-8, weight_decay=0.05, k=3)
    penalty = case.get("penalty", "l2")
    est = case["est"](optimizer=Sophia(**hyper, estimator=case["estimator"]), batch_size=16,
                      learning_rate="constant", max_iter=4, tol=None, shuffle=False,
                      random_state=1, alpha=0.01, penalty=penalty, l1_ratio=0.4,
                      fit_intercept=case.get("fit_intercept", True))
    _quiet_fit(est, X, y, sample_weight=sw)
    key = est._fit_states[0]["rng"]
    # the intercepts start at the weighted best constant (docs/linear.md), written out
    s = np.ones(n) if sw is None else sw
    if not case.get("fit_intercept", True):
        b0 = 0.0
    elif case["loss"] == "squared":
        b0 = np.sum(s * y) / np.sum(s)
    elif K == 1:
        b0 = np.log(np.sum(s[y == 1]) / np.sum(s[y != 1]))
    else:
        b0 = np.log(np.bincount(y, weights=s, minlength=K) / np.sum(s))
    W, b, losses = numpy_sophia_linear(
        X, y_ref, s, case["loss"], K, 16, 4, hyper, key, 0.01,
        penalty=penalty, l1_ratio=0.4, fit_intercept=case.get("fit_intercept", True),
        estimator=case["estimator"], b0=b0)
    assert_allclose(np.atleast_2d(est.coef_), W, rtol=1e-9, atol=1e-12)
    assert_allclose(est.intercept_, b, rtol=1e-9, atol=1e-12)
    assert_allclose(est.loss_curve_, losses, rtol=1e-9)
    assert np.abs(W).max() > 0.05


def test_gnb_estimate_is_unbiased_for_the_exact_diagonal():
    # E[B ghat^2] over the drawn labels is the Gauss-Newton diagonal (the score has mean zero):
    # with lr = 0 the parameters stay at 0 (scikit-learn's zero start) and, refreshed every
    # step (k = 1), h is an EMA of independent GNB draws with E[h_T] = (1 - beta2^T) * the
    # exact estimator's diagonal
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 4))
    y = rng.integers(0, 3, 20)
    h = {}
    for estimator in ("exact", "gnb"):
        est = SGDLogistic(optimizer=Sophia(lr=0.0, betas=(0.9, 0.999), weight_decay=0.0, k=1,
                                           estimator=estimator),
                          batch_size="full", learning_rate="constant", max_iter=3000, tol=None,
                          random_state=0, alpha=0.0, penalty=None, intercept_start="sklearn")
        _quiet_fit(est, X, y)
        h[estimator] = est._fit_states[0].slot1 / (1 - 0.999**3000)
    # at w = 0 the softmax is uniform: p (1 - p) = 2/9 per class, times mean x_j^2
    assert_allclose(h["exact"][:12].reshape(3, 4), np.tile(2 / 9 * np.mean(X**2, 0), (3, 1)),
                    rtol=1e-10)
    assert_allclose(h["exact"][12:], 2 / 9, rtol=1e-10)
    # the EMA's relative standard deviation is about sqrt(2 (1 - b2) / (1 + b2)) = 0.045
    assert_allclose(h["gnb"], h["exact"], rtol=0.2)
    assert abs(np.mean(h["gnb"] / h["exact"]) - 1) < 0.05


# ---- pause / resume, schedules, clipping, early stopping, refusals ---------------------------

@pytest.mark.parametrize("optimizer", [Muon(lr=0.02), Sophia(lr=3e-3, k=4)],
                         ids=["muon", "sophia"])
def test_paused_and_resumed_fit_equals_uninterrupted(optimizer):
    # Sophia's draws depend only on the key, the step and the row: a fit continued from its
    # FitState (shuffled epochs) equals the uninterrupted fit bit for bit
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 5))
    y = rng.integers(0, 3, 90)
    units = [5, 8, 3]
    params = flat(*glorot(units, "relu", 0))
    opt_rec = _structs.record("OptimizerConfig", optimizer.to_config())
    companion = (_structs.record("OptimizerConfig", optimizer.companion_optimizer().to_config())
                 if isinstance(optimizer, Muon) else None)
    model = _structs.record("MlpConfig", {"activation": 1, "loss": 4, "alpha": 1e-3})
    driver = _structs.record("DriverConfig", {"batch_size": 16, "max_iter": 6, "shuffle": True})
    schedule = _structs.record("ScheduleConfig", {"code": 0, "base_lr": optimizer.lr})
    arrays = _cpu_mlp.MlpArrays(X, None, y.astype(np.int32))
    empty = _cpu_mlp.MlpArrays(np.empty((0, 5)), None, np.empty(0, np.int32))
    rules = engine.FitRules(driver, schedule, _core.plateau_record({}))
    finals = []
    for until in (None, 2):
        ex = _cpu_mlp.MlpExecutor(units, model, opt_rec, schedule, driver,
                                  _structs.record("CpuConfig"), arrays, empty, companion)
        state = engine.FitState(params.copy(), order=np.arange(90, dtype=np.uint32),
                                scalars={"rng": 12345, "plateau_lr": optimizer.lr})
        if until is not None:
            engine.run(ex, state, rules, until=until)
            state = pickle_roundtrip(state)
        engine.run(ex, state, rules)
        finals.append(state)
    assert_array_equal(finals[0].params, finals[1].params)
    assert_array_equal(finals[0].slot0, finals[1].slot0)
    assert_array_equal(finals[0].slot1, finals[1].slot1)


def pickle_roundtrip(obj):
    import pickle

    return pickle.loads(pickle.dumps(obj))


@pytest.mark.parametrize("optimizer", ["muon", "sophia", Muon(lr=0.02, companion=AdamW(lr=3e-3)),
                                       Sophia(lr=3e-3)], ids=str)
def test_schedules_clipping_and_early_stopping_work(optimizer):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 8))
    y = (X[:, :2].sum(1) > 0).astype(int) + (X[:, 2] > 0.5)
    for kw in (dict(learning_rate="cosine"), dict(clip_grad_norm=0.5),
               dict(early_stopping=True, n_iter_no_change=3, max_iter=200),
               dict(learning_rate="one_cycle")):
        est = SGDMLPClassifier(hidden_layer_sizes=(16,), optimizer=optimizer,
                               learning_rate_init=0.01, max_iter=kw.pop("max_iter", 20),
                               batch_size=32, random_state=0, **kw)
        _quiet_fit(est, X, y)
        assert est.loss_curve_[-1] < 0.8 * est.loss_curve_[0]
        assert est.score(X, y) > 0.7
        if "early_stopping" in kw:
            assert est.n_iter_ < 200 and len(est.validation_scores_) == est.n_iter_


def test_sophia_linear_runs_with_schedule_and_clipping():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 10))
    y = (X @ rng.normal(size=10) > 0).astype(int)
    for kw in (dict(learning_rate="cosine"), dict(clip_grad_norm=0.1),
               dict(early_stopping=True, tol=1e-4)):
        est = SGDLogistic(optimizer="sophia", batch_size=32, max_iter=20, random_state=0, **kw)
        _quiet_fit(est, X, y)
        assert est.score(X, y) > 0.9


def test_refusals_before_any_work():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="Muon"):
        SGDLogistic(optimizer="muon").fit(X, y)
    with pytest.raises(ValueError, match="Muon"):
        SGDLinearRegression(optimizer=Muon()).fit(X, y.astype(float))
    with pytest.raises(ValueError, match="squared or log"):
        SGDLinearRegression(optimizer="sophia", loss="huber").fit(X, y.astype(float))
    with pytest.raises(ValueError, match="gnb"):
        SGDMLPClassifier(optimizer=Sophia(estimator="exact")).fit(X, y)
    with pytest.raises(ValueError, match="companion"):
        SGDMLPClassifier(optimizer=Muon(companion=Sophia())).fit(X, y)
    est = SGDMLPClassifier(optimizer="muon", max_iter=2, random_state=0)
    _quiet_fit(est, X, y)
    before = [c.copy() for c in est.coefs_]
    with pytest.raises(ValueError, match="companion"):
        est.set_params(optimizer=Muon(companion=Muon())).fit(X, y)
    for a, b in zip(est.coefs_, before, strict=True):
        assert_array_equal(a, b)


def test_muon_leaves_a_network_without_hidden_layers_to_its_companion():
    # no hidden layer: no matrix is Muon's; the fit is the companion's (AdamW) alone
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 3))
    y = rng.integers(0, 3, 40)
    kw = dict(hidden_layer_sizes=(), batch_size=10, max_iter=3, shuffle=False, random_state=0,
              tol=0.0)
    a = _quiet_fit(SGDMLPClassifier(optimizer=Muon(companion=AdamW(lr=0.01)), **kw), X, y)
    b = _quiet_fit(SGDMLPClassifier(optimizer=AdamW(lr=0.01), **kw), X, y)
    assert_array_equal(a.coefs_[0], b.coefs_[0])
    assert_array_equal(a.intercepts_[0], b.intercepts_[0])
