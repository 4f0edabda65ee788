"""The line-searched full batch (the CPU default for batch_size='full'): learning_rate='lbfgs'
(smooth objectives) and 'spectral' (any, L1 by its prox). The optimum of every convex problem to
a relative objective gap of 1e-10 (float32: 1e-5), against references computed here
(closed-form ridge, scipy's L-BFGS-B at tight tolerance, a long plain NumPy FISTA for L1 /
elastic net), exact zeros, sample weights, the gradient tolerance, threads; the L-BFGS iterates
against a NumPy re-implementation of model/lbfgs.h's rules; the defaults, a resumed fit and the
refusals."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from numpy.testing import assert_allclose
from scipy.special import logsumexp, softmax
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    make_classification,
    make_regression,
)
from sklearn.preprocessing import StandardScaler

from gdsolve import SGDLinearRegression, SGDLogistic, engine

GAP = 1e-10
GAP32 = 1e-5
HUBER_EPSILON = 0.5


# ---- the objective, written out in NumPy (docs/linear.md) ------------------------------------

def _design(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)


def smooth_value_grad(theta, X, y, sw, kind, l2, K=1):
    """f = (1/n) sum_i s_i loss_i + l2/2 ||W||^2 and its gradient, theta = [W.ravel(), b]."""
    n, d = X.shape
    W, b = theta[:K * d].reshape(K, d), theta[K * d:]
    Z = X @ W.T + b
    if kind == "squared":
        r = Z[:, 0] - y
        loss, dZ = 0.5 * r * r, r[:, None]
    elif kind == "huber":  # epsilon = HUBER_EPSILON
        r = Z[:, 0] - y
        a = np.abs(r)
        small = a <= HUBER_EPSILON
        loss = np.where(small, 0.5 * r * r, HUBER_EPSILON * a - 0.5 * HUBER_EPSILON ** 2)
        dZ = np.where(small, r, HUBER_EPSILON * np.sign(r))[:, None]
    elif kind == "log":  # y in {-1, +1}
        m = y * Z[:, 0]
        loss = np.logaddexp(0.0, -m)
        dZ = (-y * np.exp(-np.logaddexp(0.0, m)))[:, None]
    else:  # softmax, y the class index
        loss = logsumexp(Z, axis=1) - Z[np.arange(n), y]
        dZ = softmax(Z, axis=1)
        dZ[np.arange(n), y] -= 1.0
    f = float(sw @ loss) / n + 0.5 * l2 * float(np.sum(W * W))
    gW = (dZ * sw[:, None]).T @ X / n + l2 * W
    gb = (dZ * sw[:, None]).sum(axis=0) / n
    return f, np.concatenate([gW.ravel(), gb])


def objective(est, X, y, sw, kind, l2, l1):
    K = 1 if kind != "softmax" else est.coef_.shape[0]
    theta = np.concatenate([np.ravel(est.coef_).astype(np.float64),
                            np.ravel(est.intercept_).astype(np.float64)])
    f, _ = smooth_value_grad(theta, X, y, sw, kind, l2, K)
    return f + l1 * float(np.sum(np.abs(theta[:K * X.shape[1]])))


def lbfgs_optimum(X, y, sw, kind, l2, K=1):
    d = X.shape[1]
    res = scipy.optimize.minimize(smooth_value_grad, np.zeros(K * d + K), jac=True,
                                  args=(X, y, sw, kind, l2, K), method="L-BFGS-B",
                                  options={"maxiter": 50_000, "maxfun": 100_000, "gtol": 1e-13,
                                           "ftol": 1e-16, "maxcor": 50})
    return res.fun, res.x


def ridge_optimum(X, y, sw, l2):
    """Closed form of the weighted ridge objective with an unpenalised intercept."""
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])
    P = np.eye(d + 1) * (l2 * n)
    P[d, d] = 0.0
    theta = np.linalg.solve(A.T @ (A * sw[:, None]) + P, A.T @ (sw * y))
    return smooth_value_grad(theta, X, y, sw, "squared", l2)[0], theta


def fista_optimum(X, y, sw, kind, l2, l1, n_iter=30_000):
    """Plain FISTA (step 1/L, L from the largest eigenvalue) with the L1 prox on the weights."""
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])
    lam = np.linalg.eigvalsh(A.T @ (A * sw[:, None]) / n)[-1]
    L = (1.0 if kind == "squared" else 0.25) * lam + l2
    x = np.zeros(d + 1)
    v, t = x.copy(), 1.0
    for _ in range(n_iter):
        _, g = smooth_value_grad(v, X, y, sw, kind, l2)
        z = v - g / L
        z[:d] = np.sign(z[:d]) * np.maximum(np.abs(z[:d]) - l1 / L, 0.0)
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        v = z + (t - 1.0) / t_next * (z - x)
        x, t = z, t_next
    f = smooth_value_grad(x, X, y, sw, kind, l2)[0] + l1 * float(np.sum(np.abs(x[:d])))
    return f, x


def min_norm_subgradient(est, X, y, sw, kind, l2, l1):
    K = 1 if kind != "softmax" else est.coef_.shape[0]
    theta = np.concatenate([np.ravel(est.coef_), np.ravel(est.intercept_)]).astype(np.float64)
    _, g = smooth_value_grad(theta, X, y, sw, kind, l2, K)
    n_w = K * X.shape[1]
    w, gw = theta[:n_w], g[:n_w]
    r = np.where(w != 0, gw + l1 * np.sign(w), np.maximum(np.abs(gw) - l1, 0.0))
    return float(max(np.max(np.abs(r)), np.max(np.abs(g[n_w:]))))


# ---- the problems ------------------------------------------------------------------------------

def _problem(name):
    """(X for the estimator, dense float64 X, y for the estimator, y for the objective, kind)."""
    if name == "regression":
        X, y = make_regression(3000, 30, noise=5.0, random_state=0)
        return X, X, y, y, "squared"
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        X = StandardScaler().fit_transform(X)
        return X, X, y, y, "squared"
    if name == "binary":
        X, y = make_classification(4000, 30, n_informative=10, random_state=0)
        X = StandardScaler().fit_transform(X)
        return X, X, y, 2.0 * y - 1.0, "log"
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
        X = StandardScaler().fit_transform(X)
        return X, X, y, 2.0 * y - 1.0, "log"
    if name == "sparse_binary":
        rng = np.random.RandomState(0)
        X = sp.random(3000, 200, density=0.05, format="csr", random_state=rng)
        y = (X @ rng.randn(200) + 0.3 * rng.randn(3000) > 0).astype(int)
        return X, X.toarray(), y, 2.0 * y - 1.0, "log"
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X = StandardScaler().fit_transform(X)
        return X, X, y, y, "softmax"
    raise ValueError(name)


def _estimator(kind, tol=1e-10, **kw):
    cls = SGDLinearRegression if kind == "squared" else SGDLogistic
    return cls(batch_size="full", max_iter=20_000, tol=tol, **kw)


PROBLEMS = ["regression", "diabetes", "binary", "breast_cancer", "sparse_binary", "digits"]
METHODS = ["lbfgs", "spectral"]  # the smooth objectives run both


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weights"])
def test_reaches_the_l2_optimum(name, weighted, method):
    X, Xd, y, y_obj, kind = _problem(name)
    n = Xd.shape[0]
    sw = np.random.RandomState(3).uniform(0.2, 3.0, n) if weighted else np.ones(n)
    alpha = 1e-3 if kind == "squared" else 1e-4
    est = _estimator(kind, alpha=alpha, learning_rate=method).fit(
        X, y, sample_weight=sw if weighted else None)
    if kind == "squared":
        f_star, _ = ridge_optimum(Xd, y_obj, sw, alpha)
    else:
        K = 10 if kind == "softmax" else 1
        f_star, _ = lbfgs_optimum(Xd, y_obj, sw, kind, alpha, K)
    gap = (objective(est, Xd, y_obj, sw, kind, alpha, 0.0) - f_star) / abs(f_star)
    assert gap <= GAP, (name, gap, est.n_iter_)


@pytest.mark.parametrize("method", METHODS)
def test_without_intercept_reaches_the_ridge_optimum(method):
    X, y = make_regression(2000, 10, noise=10.0, random_state=0)
    y = y / y.std() + 3.0  # an intercept would matter
    n, d = X.shape
    alpha = 1e-3
    est = SGDLinearRegression(batch_size="full", alpha=alpha, tol=1e-10, max_iter=20_000,
                              fit_intercept=False, learning_rate=method).fit(X, y)
    assert est.intercept_[0] == 0.0
    w = np.linalg.solve(X.T @ X / n + alpha * np.eye(d), X.T @ y / n)
    f = lambda v: 0.5 * np.mean((X @ v - y) ** 2) + 0.5 * alpha * v @ v  # noqa: E731
    assert (f(est.coef_) - f(w)) / f(w) <= GAP


@pytest.mark.parametrize("method", METHODS)
def test_reaches_the_huber_optimum(method):
    X, y = make_regression(3000, 15, noise=10.0, random_state=4)
    y = y / y.std()
    sw = np.random.RandomState(5).uniform(0.5, 2.0, X.shape[0])
    est = SGDLinearRegression(loss="huber", epsilon=HUBER_EPSILON, batch_size="full", alpha=1e-3,
                              max_iter=20_000, tol=1e-10, learning_rate=method).fit(
                                  X, y, sample_weight=sw)
    f_star, _ = lbfgs_optimum(X, y, sw, "huber", 1e-3)
    gap = (objective(est, X, y, sw, "huber", 1e-3, 0.0) - f_star) / abs(f_star)
    assert gap <= GAP, gap


@pytest.mark.parametrize("penalty", ["l1", "elasticnet"])
@pytest.mark.parametrize("name", ["regression", "binary", "sparse_binary"])
def test_reaches_the_proximal_optimum_with_exact_zeros(name, penalty):
    X, Xd, y, y_obj, kind = _problem(name)
    if name == "regression":  # a smaller problem: the NumPy FISTA reference runs long
        X, Xd, y, y_obj = X[:800, :15], Xd[:800, :15], y[:800], y_obj[:800]
    else:
        X, Xd, y, y_obj = X[:1500], Xd[:1500], y[:1500], y_obj[:1500]
    n, d = Xd.shape
    sw = np.random.RandomState(1).uniform(0.5, 2.0, n)
    alpha = 2.0 if kind == "squared" else 5e-3
    l1_ratio = 1.0 if penalty == "l1" else 0.5
    l1, l2 = alpha * l1_ratio, alpha * (1.0 - l1_ratio)
    est = _estimator(kind, alpha=alpha, penalty=penalty, l1_ratio=l1_ratio)
    est.fit(X, y, sample_weight=sw)
    f_star, x_star = fista_optimum(Xd, y_obj, sw, kind, l2, l1)
    gap = (objective(est, Xd, y_obj, sw, kind, l2, l1) - f_star) / abs(f_star)
    assert gap <= GAP, (gap, est.n_iter_)
    coef = np.ravel(est.coef_)
    # exact zeros, on the reference's pattern (where the reference's zero is clear-cut: its
    # gradient is strictly inside the L1 threshold)
    _, g = smooth_value_grad(x_star, Xd, y_obj, sw, kind, l2)
    clear_zero = (x_star[:d] == 0) & (np.abs(g[:d]) < 0.9 * l1)
    clear_nonzero = np.abs(x_star[:d]) > 1e-6
    assert clear_zero.sum() > 0 and clear_nonzero.sum() > 0
    assert np.all(coef[clear_zero] == 0.0)
    assert np.all(coef[clear_nonzero] != 0.0)
    assert_allclose(coef[clear_nonzero], x_star[:d][clear_nonzero], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["regression", "binary", "sparse_binary", "digits"])
def test_float32_reaches_a_looser_gap(name, method):
    X, Xd, y, y_obj, kind = _problem(name)
    X32 = X.astype(np.float32)
    n = Xd.shape[0]
    sw = np.ones(n)
    alpha = 1e-3 if kind == "squared" else 1e-4
    est = _estimator(kind, alpha=alpha, tol=1e-6, learning_rate=method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # round-off may stop it before tol: not a failure
        est.fit(X32, y)
    assert est.coef_.dtype == np.float32
    if kind == "squared":
        f_star, _ = ridge_optimum(Xd.astype(np.float32).astype(np.float64), y_obj, sw, alpha)
    else:
        K = 10 if kind == "softmax" else 1
        f_star, _ = lbfgs_optimum(Xd.astype(np.float32).astype(np.float64), y_obj, sw, kind,
                                  alpha, K)
    Xr = Xd.astype(np.float32).astype(np.float64)
    gap = (objective(est, Xr, y_obj, sw, kind, alpha, 0.0) - f_star) / abs(f_star)
    assert gap <= GAP32, gap


@pytest.mark.parametrize("tol", [1e-3, 1e-6])
@pytest.mark.parametrize("name,penalty", [("binary", "l2"), ("binary", "l1"),
                                          ("digits", "l2"), ("regression", "elasticnet")])
def test_stops_at_the_gradient_tolerance(name, penalty, tol):
    X, Xd, y, y_obj, kind = _problem(name)
    alpha = 1e-3 if kind == "squared" else 1e-3
    l1_ratio = 0.5
    l1 = {"l2": 0.0, "l1": alpha, "elasticnet": alpha * l1_ratio}[penalty]
    l2 = {"l2": alpha, "l1": 0.0, "elasticnet": alpha * (1 - l1_ratio)}[penalty]
    est = _estimator(kind, alpha=alpha, penalty=penalty, l1_ratio=l1_ratio, tol=tol).fit(X, y)
    sw = np.ones(Xd.shape[0])
    r = min_norm_subgradient(est, Xd, y_obj, sw, kind, l2, l1)
    assert r <= tol * (1 + 1e-6)
    # and not much more than needed: the epoch before did not meet tol (the loss curve's end)
    assert est.n_iter_ < 20_000
    looser = _estimator(kind, alpha=alpha, penalty=penalty, l1_ratio=l1_ratio,
                        tol=tol * 1e3).fit(X, y)
    assert looser.n_iter_ < est.n_iter_


def test_thread_team_equals_one_thread(monkeypatch):
    import gdsolve.linear_model as lm

    X, y = make_classification(20_000, 40, random_state=2)
    X = StandardScaler().fit_transform(X)
    fits = {}
    for threads in (1, 4):
        monkeypatch.setattr(lm, "available_threads", lambda t=threads: t)
        fits[threads] = SGDLogistic(batch_size="full", alpha=1e-4, tol=1e-9,
                                    max_iter=2000).fit(X, y)
    assert_allclose(fits[4].coef_, fits[1].coef_, rtol=1e-7, atol=1e-9)
    assert_allclose(fits[4].intercept_, fits[1].intercept_, rtol=1e-7, atol=1e-9)


def test_default_full_batch_is_lbfgs_or_spectral_and_lipschitz_keeps_the_constant_step():
    X, Xd, y, y_obj, kind = _problem("binary")
    default = SGDLogistic(batch_size="full", max_iter=30, tol=None).fit(X, y)
    explicit = SGDLogistic(batch_size="full", learning_rate="lbfgs", max_iter=30,
                           tol=None).fit(X, y)
    assert_allclose(default.coef_, explicit.coef_, rtol=0, atol=0)
    assert default._fit_states[0]["lbfgs_pairs"] == engine.LBFGS_MEMORY
    # an L1 part or epsilon-insensitive loss: the proximal spectral method
    for cls, kw in ((SGDLogistic, dict(penalty="l1", alpha=1e-3)),
                    (SGDLogistic, dict(penalty="elasticnet", l1_ratio=0.3, alpha=1e-3)),
                    (SGDLinearRegression, dict(loss="epsilon_insensitive"))):
        target = y if cls is SGDLogistic else y_obj
        fit = cls(batch_size="full", max_iter=10, tol=None, **kw).fit(X, target)
        spectral = cls(batch_size="full", learning_rate="spectral", max_iter=10, tol=None,
                       **kw).fit(X, target)
        assert_allclose(fit.coef_, spectral.coef_, rtol=0, atol=0)
        assert fit._fit_states[0]["spectral_step"] > 0
        assert fit._fit_states[0]["lbfgs_pairs"] == 0
    # 'lipschitz': the constant step 1/L, L = 0.25 lambda_max([X 1]'[X 1] / n) + alpha
    old = SGDLogistic(batch_size="full", learning_rate="lipschitz", max_iter=30,
                      tol=None).fit(X, y)
    n, d = Xd.shape
    A = np.hstack([Xd, np.ones((n, 1))])
    L = 0.25 * np.linalg.eigvalsh(A.T @ A / n)[-1] + 1e-4
    theta = np.zeros(d + 1)
    positive = np.mean(y_obj > 0)  # the intercept starts at the log-odds (intercept_start)
    theta[d] = np.log(positive / (1 - positive))
    for _ in range(30):
        theta -= smooth_value_grad(theta, Xd, y_obj, np.ones(n), "log", 1e-4)[1] / L
    assert_allclose(old.coef_.ravel(), theta[:d], rtol=1e-8, atol=1e-12)
    # after 30 epochs the line-searched fits are much closer to the optimum
    f_star, _ = lbfgs_optimum(Xd, y_obj, np.ones(n), "log", 1e-4)
    gap_old = objective(old, Xd, y_obj, np.ones(n), "log", 1e-4, 0.0) - f_star
    for method in METHODS:
        fit = SGDLogistic(batch_size="full", learning_rate=method, max_iter=30,
                          tol=None).fit(X, y)
        assert objective(fit, Xd, y_obj, np.ones(n), "log", 1e-4, 0.0) - f_star < 1e-3 * gap_old


def numpy_lbfgs(theta, value_grad, n_iter, m):
    """model/lbfgs.h's rules, written out in NumPy: the two-loop direction over the last m
    pairs (H0 = s'y / y'y of the newest), Armijo backtracking by halves from 1 (before any pair
    from 1 / ||g||_inf), stopped (round-off) once -t g'd <= 8 eps |F|, pairs kept when
    s'y > 1e-12 y'y."""
    f, g = value_grad(theta)
    t0 = 1.0 / np.max(np.abs(g))
    pairs = []
    for k in range(n_iter):
        q = g.copy()
        coefs = []
        for s, y in reversed(pairs):
            a = (s @ q) / (s @ y)
            coefs.append(a)
            q -= a * y
        if pairs:
            s, y = pairs[-1]
            q *= (s @ y) / (y @ y)
        for (s, y), a in zip(pairs, reversed(coefs), strict=True):
            q += (a - (y @ q) / (s @ y)) * s
        d = -q
        gd = g @ d
        t = t0
        while True:
            if -t * gd <= 8 * np.finfo(np.float64).eps * abs(f):
                return theta, k + 1  # no step lowers F beyond round-off: an epoch, no step
            trial = theta + t * d
            f_new, g_new = value_grad(trial)
            if f_new <= f + 1e-4 * t * gd:
                break
            t *= 0.5
        s, y = trial - theta, g_new - g
        if s @ y > 1e-12 * (y @ y):
            pairs = (pairs + [(s, y)])[-m:]
        theta, f, g, t0 = trial, f_new, g_new, 1.0
    return theta, n_iter


@pytest.mark.parametrize("name,weighted", [("binary", True), ("regression", False),
                                           ("digits", False)])
def test_lbfgs_iterates_equal_the_numpy_rules(name, weighted):
    X, Xd, y, y_obj, kind = _problem(name)
    n, d = Xd.shape
    sw = np.random.RandomState(2).uniform(0.5, 2.0, n) if weighted else np.ones(n)
    alpha = 1e-3 if kind == "squared" else 1e-4
    K = 10 if kind == "softmax" else 1
    n_iter = 14  # past m = 10 pairs: the ring buffer wraps
    est = _estimator(kind, alpha=alpha, tol=None, learning_rate="lbfgs")
    est.set_params(max_iter=n_iter).fit(X, y, sample_weight=sw if weighted else None)
    theta = np.zeros(K * d + K)  # the best-constant start (intercept_start)
    if kind == "squared":
        theta[-1] = sw @ y_obj / sw.sum()
    elif kind == "log":
        p = sw @ (y_obj > 0) / sw.sum()
        theta[-1] = np.log(p / (1 - p))
    else:
        theta[K * d:] = np.log(np.bincount(y_obj, weights=sw, minlength=K) / sw.sum())
    ref, ref_iter = numpy_lbfgs(theta,
                                lambda v: smooth_value_grad(v, Xd, y_obj, sw, kind, alpha, K),
                                n_iter, engine.LBFGS_MEMORY)
    ours = np.concatenate([np.ravel(est.coef_), np.ravel(est.intercept_)])
    assert est.n_iter_ == ref_iter
    assert_allclose(ours, ref, rtol=1e-7, atol=1e-9 * np.max(np.abs(ref)))


def _fit_paused(monkeypatch, est, X, y, until, resume):
    """est.fit(X, y) with its driver run paused after `until` epochs and continued from
    resume(state) (a copy, or a pickle round trip); returns the concatenated loss curve."""
    import gdsolve.linear_model as lm

    real_run = engine.run
    curve = []

    def paused_run(executor, state, rules, **kw):
        first = real_run(executor, state, rules, until=until)
        resumed = resume(state)
        rest = real_run(executor, resumed, rules, **kw)
        curve.extend(first.loss_curve + rest.loss_curve)
        for name in engine.state.ARRAYS:
            if getattr(state, name) is not None:
                np.copyto(getattr(state, name), getattr(resumed, name))
        state.scalars[...] = resumed.scalars
        return rest

    monkeypatch.setattr(lm.engine, "run", paused_run)
    est.fit(X, y)
    return curve


def test_lbfgs_resumed_from_a_pickled_state_equals_uninterrupted(monkeypatch):
    X, _, y, _, _ = _problem("digits")
    one = SGDLogistic(batch_size="full", max_iter=25, tol=None, alpha=1e-4).fit(X, y)
    est = SGDLogistic(batch_size="full", max_iter=25, tol=None, alpha=1e-4)
    pairs = []

    def round_trip(state):
        resumed = pickle.loads(pickle.dumps(state))
        pairs.append(resumed["lbfgs_pairs"])
        return resumed

    _fit_paused(monkeypatch, est, X, y, 12, round_trip)  # past m = 10 pairs
    assert pairs == [engine.LBFGS_MEMORY]
    assert_allclose(est.coef_, one.coef_, rtol=0, atol=0)
    assert_allclose(est.intercept_, one.intercept_, rtol=0, atol=0)


def test_momentum_and_averaging_keep_the_constant_step():
    X, _, y, _, _ = _problem("binary")
    for kw in (dict(optimizer="nesterov"), dict(average=True), dict(clip_grad_norm=1.0)):
        est = SGDLogistic(batch_size="full", max_iter=3, tol=None, **kw).fit(X, y)
        assert est._fit_states[0]["spectral_step"] == 0


def test_resumed_fit_equals_uninterrupted(monkeypatch):
    X, _, y, _, _ = _problem("binary")
    one = SGDLogistic(batch_size="full", max_iter=25, tol=None, penalty="l1",
                      alpha=1e-3).fit(X, y)
    est = SGDLogistic(batch_size="full", max_iter=25, tol=None, penalty="l1", alpha=1e-3)
    # continue from a copy, as from a pickled state
    curve = _fit_paused(monkeypatch, est, X, y, 10, lambda state: state.copy())
    assert_allclose(curve, one.loss_curve_, rtol=0, atol=0)
    assert_allclose(est.coef_, one.coef_, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(batch_size=64), "batch_size='full'"),
    (dict(batch_size="full", optimizer="adam"), "optimizer='sgd'"),
    (dict(batch_size="full", optimizer="momentum"), "optimizer='sgd'"),
    (dict(batch_size="full", average=True), "average"),
])
def test_spectral_refuses_what_it_cannot_run(kwargs, match):
    X, _, y, _, _ = _problem("binary")
    for method in METHODS:
        est = SGDLogistic(learning_rate=method, **kwargs)
        with pytest.raises(ValueError, match=match):
            est.fit(X, y)
        assert not hasattr(est, "coef_")


@pytest.mark.parametrize("cls,kwargs", [
    (SGDLogistic, dict(penalty="l1", alpha=1e-3)),
    (SGDLogistic, dict(penalty="elasticnet", l1_ratio=0.5, alpha=1e-3)),
    (SGDLinearRegression, dict(loss="epsilon_insensitive")),
])
def test_lbfgs_refuses_a_nonsmooth_objective(cls, kwargs):
    X, _, y, y_obj, _ = _problem("binary")
    est = cls(batch_size="full", learning_rate="lbfgs", **kwargs)
    with pytest.raises(ValueError, match="smooth objective.*'spectral'"):
        est.fit(X, y if cls is SGDLogistic else y_obj)
    assert not hasattr(est, "coef_")
