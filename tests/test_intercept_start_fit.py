"""intercept_start in the estimators: a fresh fit starts the intercept (the MLP's output bias) at
the exact optimum of the intercept-only model, checked in the state the driver receives before
the first step against closed forms written out here (weighted mean, log-odds, log priors) or
independent solvers (scipy's brentq for Huber, every breakpoint for epsilon-insensitive); where
'auto' keeps scikit-learn's start; warm_start / partial_fit; 'sklearn' reproducing the zero-start
trajectories bit for bit and against a NumPy reference; the emulated GPU path; the issue's
diabetes case against the closed-form ridge optimum. The Dask path: tests/test_distributed.py.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import brentq
from sklearn.datasets import load_diabetes, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import ShuffleSplit
from sklearn.preprocessing import StandardScaler

import gdsolve.engine as engine
from gdsolve import SGDLinearRegression, SGDLogistic, SGDMLPClassifier, SGDMLPRegressor
from gdsolve.schedules import CosineAnnealingLR, Optimal

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def starts(monkeypatch):
    """The parameters of every state the epoch driver is handed (one per one-vs-rest class),
    copied before the first epoch runs."""
    seen = []
    run = engine.run

    def spy(executor, state, rules, **kwargs):
        seen.append(state.params.copy())
        return run(executor, state, rules, **kwargs)

    monkeypatch.setattr(engine, "run", spy)
    return seen


def regression_data(n=300, d=5, seed=0, shift=40.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + rng.standard_t(3.0, size=n) * 2.0 + shift
    sw = rng.uniform(0.2, 3.0, n)
    return X, y, sw


MINI_BATCH = dict(optimizer="adam", learning_rate="constant", eta0=0.01, batch_size=32,
                  max_iter=2, tol=None, random_state=0)


# ---- the references, written out --------------------------------------------------------------

def huber_reference(y, s, eps):
    """The root of the Huber derivative sum_i s_i clip(b - y_i, -eps, eps) (brentq)."""
    def g(b):
        return np.sum(s * np.clip(b - y, -eps, eps))

    return brentq(g, y.min() - eps, y.max() + eps, xtol=1e-14, rtol=1e-15)


def eps_insensitive_reference(y, s, eps):
    """The midpoint of the breakpoints y_i -+ eps where sum_i s_i max(0, |y_i - b| - eps) is
    smallest (the objective is convex and piecewise linear: its minimisers form an interval
    between two breakpoints)."""
    points = np.concatenate([y - eps, y + eps])
    f = np.array([np.sum(s * np.maximum(0.0, np.abs(y - b) - eps)) for b in points])
    best = points[f <= f.min() * (1 + 1e-12) + 1e-12]
    return 0.5 * (best.min() + best.max())


# ---- linear models: the start of each loss ----------------------------------------------------

@pytest.mark.parametrize("loss", ["squared", "huber", "epsilon_insensitive"])
@pytest.mark.parametrize("weighted", [False, True])
def test_regression_starts_at_the_intercept_only_optimum(starts, loss, weighted):
    X, y, sw = regression_data()
    s = sw if weighted else np.ones(len(y))
    est = SGDLinearRegression(loss=loss, epsilon=1.5, **MINI_BATCH)
    est.fit(X, y, sample_weight=sw if weighted else None)
    (start,) = starts
    want = {"squared": np.sum(s * y) / np.sum(s),
            "huber": huber_reference(y, s, 1.5),
            "epsilon_insensitive": eps_insensitive_reference(y, s, 1.5)}[loss]
    assert_array_equal(start[:-1], 0.0)  # the coefficients start at zero
    assert start[-1] == pytest.approx(want, rel=1e-12)
    assert abs(want) > 30  # far from scikit-learn's zero start


def test_regression_start_uses_the_training_rows_only(starts):
    X, y, sw = regression_data(n=400)
    y[:200] += 100.0  # the validation split would move the mean
    est = SGDLinearRegression(early_stopping=True, validation_fraction=0.2, **MINI_BATCH)
    est.fit(X, y, sample_weight=sw)
    train, _ = next(ShuffleSplit(test_size=0.2, random_state=0).split(np.zeros((400, 1))))
    want = np.sum(sw[train] * y[train]) / np.sum(sw[train])
    assert starts[0][-1] == pytest.approx(want, rel=1e-12)
    assert abs(want - np.average(y, weights=sw)) > 0.1


def test_binary_and_one_vs_rest_start_at_the_weighted_log_odds(starts):
    X, y = make_classification(500, 6, n_informative=4, n_classes=3, weights=[0.6, 0.3, 0.1],
                               random_state=0)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    cw = {0: 1.0, 1: 2.5, 2: 0.7}
    s = sw * np.array([cw[k] for k in y])
    yb = (y == 1).astype(int)
    SGDLogistic(class_weight=cw, **MINI_BATCH).fit(X, yb, sample_weight=sw)
    sb = sw * np.array([cw[k] for k in yb])
    want = np.log(np.sum(sb[yb == 1]) / np.sum(sb[yb == 0]))
    assert starts[0][-1] == pytest.approx(want, rel=1e-12)
    starts.clear()
    SGDLogistic(multi_class="ovr", class_weight=cw, **MINI_BATCH).fit(X, y, sample_weight=sw)
    assert len(starts) == 3
    for k, start in enumerate(starts):
        want = np.log(np.sum(s[y == k]) / np.sum(s[y != k]))
        assert start[-1] == pytest.approx(want, rel=1e-12)
        assert_array_equal(start[:-1], 0.0)


def test_multinomial_starts_at_the_log_class_priors(starts):
    X, y = make_classification(600, 6, n_informative=4, n_classes=4, weights=[0.5, 0.2, 0.2],
                               random_state=2)
    sw = np.random.default_rng(3).uniform(0.5, 2.0, len(y))
    labels = np.array(["a", "b", "c", "d"])[y]  # labels as the user gives them
    est = SGDLogistic(class_weight="balanced", **MINI_BATCH).fit(X, labels, sample_weight=sw)
    counts = np.bincount(y)
    s = sw * (len(y) / (4 * counts))[y]  # 'balanced': n / (n_classes * count)
    prior = np.array([np.sum(s[y == k]) for k in range(4)]) / np.sum(s)
    (start,) = starts
    assert_allclose(start[-4:], np.log(prior), rtol=1e-12)
    assert_array_equal(start[:-4], 0.0)
    assert est.intercept_.shape == (4,)


def test_float32_starts_at_the_rounded_optimum(starts):
    X, y, sw = regression_data()
    SGDLinearRegression(**MINI_BATCH).fit(X.astype(np.float32), y.astype(np.float32),
                                          sample_weight=sw)
    y32 = y.astype(np.float32).astype(np.float64)
    sw32 = sw.astype(np.float32).astype(np.float64)
    assert starts[0].dtype == np.float32
    assert starts[0][-1] == np.float32(np.sum(sw32 * y32) / np.sum(sw32))


@pytest.mark.parametrize("start", ["auto", "best_constant"])
def test_no_intercept_means_no_start(starts, start):
    X, y, _ = regression_data()
    est = SGDLinearRegression(fit_intercept=False, intercept_start=start, **MINI_BATCH).fit(X, y)
    assert_array_equal(starts[0], 0.0)
    assert est.intercept_[0] == 0.0


# ---- where 'auto' keeps scikit-learn's zero start ---------------------------------------------

@pytest.mark.parametrize("kwargs, zero", [
    (dict(), True),  # per-sample SGD, 'optimal'
    (dict(learning_rate="invscaling", eta0=0.05), True),
    (dict(learning_rate="constant", eta0=0.05), True),
    (dict(learning_rate="adaptive", eta0=0.05), True),
    (dict(learning_rate=Optimal()), True),
    (dict(learning_rate="cosine", eta0=0.05), False),  # not one of scikit-learn's rates
    (dict(learning_rate=CosineAnnealingLR(lr=0.05)), False),
    (dict(optimizer="momentum", eta0=0.01, learning_rate="constant"), False),
    (dict(optimizer="adam"), False),
    (dict(batch_size=16), False),  # mini-batch
    (dict(batch_size="full"), False),
    (dict(intercept_start="best_constant"), False),
    (dict(batch_size=16, intercept_start="sklearn"), True),
])
def test_auto_keeps_the_zero_start_only_for_scikit_learns_algorithm(starts, kwargs, zero):
    X, y = make_classification(200, 4, weights=[0.8], random_state=0)
    SGDLogistic(**{"max_iter": 2, "tol": None, "random_state": 0, **kwargs}).fit(X, y)
    log_odds = np.log(np.mean(y == 1) / np.mean(y == 0))
    assert starts[0][-1] == (0.0 if zero else pytest.approx(log_odds, rel=1e-12))


def test_bad_intercept_start_is_refused_before_any_work():
    X, y, _ = regression_data()
    for est in (SGDLinearRegression(intercept_start="zero"), SGDLogistic(intercept_start=None),
                SGDMLPRegressor(intercept_start="mean"), SGDMLPClassifier(intercept_start=0)):
        with pytest.raises(ValueError, match="intercept_start must be one of"):
            est.fit(X, y if isinstance(est, (SGDLinearRegression, SGDMLPRegressor)) else y > 40)
        assert not hasattr(est, "coef_") and not hasattr(est, "coefs_")


# ---- warm_start and partial_fit keep their parameters -----------------------------------------

def test_warm_start_and_later_partial_fits_continue_from_the_fitted_model(starts):
    X, y, sw = regression_data()
    est = SGDLinearRegression(warm_start=True, **MINI_BATCH).fit(X, y)
    fitted = np.append(est.coef_, est.intercept_)
    est.fit(X, y + 100.0)  # a best constant would be near 140: the fitted model is kept
    assert_array_equal(starts[1], fitted)
    inc = SGDLinearRegression(**MINI_BATCH)
    inc.partial_fit(X[:150], y[:150], sample_weight=sw[:150])
    after_first = np.append(inc.coef_, inc.intercept_)
    inc.partial_fit(X[150:], y[150:] + 100.0)
    # the first call starts at its own chunk's best constant, the second continues
    assert starts[2][-1] == pytest.approx(np.average(y[:150], weights=sw[:150]), rel=1e-12)
    assert_array_equal(starts[3], after_first)
    clf = SGDLogistic(**MINI_BATCH)
    Xc, yc = make_classification(300, 4, weights=[0.7], random_state=4)
    clf.partial_fit(Xc[:100], yc[:100], classes=[0, 1])
    assert starts[4][-1] == pytest.approx(np.log(np.mean(yc[:100]) / np.mean(1 - yc[:100])),
                                          rel=1e-12)


# ---- 'sklearn': today's trajectories ----------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda **kw: SGDLogistic(optimizer="adam", learning_rate="cosine", eta0=0.02, batch_size=32,
                             max_iter=5, tol=None, random_state=0, **kw),
    lambda **kw: SGDLogistic(optimizer="lion", learning_rate="constant", eta0=1e-3,
                             batch_size="full", max_iter=5, tol=None, multi_class="ovr", **kw),
    lambda **kw: SGDLinearRegression(loss="huber", batch_size="full", max_iter=6, tol=None,
                                     **kw),
], ids=["adam-multinomial", "lion-ovr-full", "huber-full"])
def test_sklearn_start_equals_a_warm_start_from_the_zero_model_bit_for_bit(make):
    # warm_start from coef_ = intercept_ = 0 is the zero start by construction (documented: the
    # previous coefficients, a fresh optimizer state), in every configuration
    X, y = make_classification(300, 5, n_informative=3, n_classes=3, random_state=5)
    if isinstance(make(), SGDLinearRegression):
        y = X @ np.arange(1.0, 6.0) + 20.0
    cold = make(intercept_start="sklearn").fit(X, y)
    warm = make(warm_start=True, intercept_start="best_constant").fit(X, y)
    warm.coef_ = np.zeros_like(warm.coef_)
    warm.intercept_ = np.zeros_like(warm.intercept_)
    warm.fit(X, y)
    assert_array_equal(cold.coef_, warm.coef_)
    assert_array_equal(cold.intercept_, warm.intercept_)
    assert_array_equal(np.ravel(cold.loss_curve_), np.ravel(warm.loss_curve_))


def numpy_minibatch_adam(X, y, b0, alpha, lr, batch, epochs):
    """PyTorch's Adam on the squared loss's batch-mean gradient plus alpha * w, rows in order,
    the intercept starting at b0."""
    n, d = X.shape
    theta = np.zeros(d + 1)
    theta[d] = b0
    m, v, step = np.zeros(d + 1), np.zeros(d + 1), 0
    for _ in range(epochs):
        for start in range(0, n, batch):
            Xb, yb = X[start:start + batch], y[start:start + batch]
            r = Xb @ theta[:d] + theta[d] - yb
            g = np.append(Xb.T @ r, r.sum()) / len(yb)
            g[:d] += alpha * theta[:d]
            step += 1
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            theta -= lr / (1 - 0.9 ** step) * m / (np.sqrt(v) / np.sqrt(1 - 0.999 ** step) + 1e-8)
    return theta


@pytest.mark.parametrize("start", ["sklearn", "best_constant"])
def test_both_starts_follow_the_numpy_reference(start):
    X, y, _ = regression_data(n=200)
    est = SGDLinearRegression(optimizer="adam", learning_rate="constant", eta0=0.05,
                              alpha=1e-3, batch_size=20, shuffle=False, max_iter=4, tol=None,
                              intercept_start=start).fit(X, y)
    theta = numpy_minibatch_adam(X, y, 0.0 if start == "sklearn" else y.mean(), 1e-3, 0.05,
                                 20, 4)
    assert_allclose(est.coef_, theta[:-1], rtol=1e-9, atol=1e-12)
    assert_allclose(est.intercept_[0], theta[-1], rtol=1e-9)


# ---- MLPs: the output layer's bias ------------------------------------------------------------

def glorot_draws(units, seed):
    """scikit-learn's MLP initialisation (relu): per layer, coefs then intercepts, U(-b, b)."""
    rs = np.random.RandomState(seed)
    coefs, intercepts = [], []
    for a, b in zip(units[:-1], units[1:], strict=True):
        bound = np.sqrt(6.0 / (a + b))
        coefs.append(rs.uniform(-bound, bound, (a, b)))
        intercepts.append(rs.uniform(-bound, bound, b))
    return coefs, intercepts


def flat(coefs, intercepts):
    return np.concatenate([c.ravel() for c in coefs] + list(intercepts))


MLP = dict(hidden_layer_sizes=(7, 5), max_iter=2, batch_size=32, random_state=3)


@pytest.mark.parametrize("problem", ["regressor-multi", "binary", "multilabel", "softmax"])
def test_mlp_output_bias_starts_at_the_best_constant(starts, problem):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(240, 4))
    if problem == "regressor-multi":
        y = np.column_stack([X[:, 0] + 50.0, -3.0 * X[:, 1] - 7.0])
        est, want = SGDMLPRegressor(**MLP), y.mean(axis=0)
    elif problem == "softmax":
        y = rng.choice(3, size=240, p=[0.6, 0.3, 0.1])
        est, want = SGDMLPClassifier(**MLP), np.log(np.bincount(y) / len(y))
    else:
        y = (rng.random((240, 3 if problem == "multilabel" else 1)) < [0.8, 0.3, 0.1][
            :3 if problem == "multilabel" else 1]).astype(int)
        p = y.mean(axis=0)
        est, want = SGDMLPClassifier(**MLP), np.log(p / (1 - p))
        y = y if problem == "multilabel" else y.ravel()
    est.fit(X, y)
    k = len(want)
    coefs, intercepts = glorot_draws([4, 7, 5, k], 3)
    (start,) = starts
    # hidden layers and output coefficients: scikit-learn's draws; the output bias: the optimum
    assert_array_equal(start[:-k], flat(coefs, intercepts)[:-k])
    assert_allclose(start[-k:], want, rtol=1e-12)
    assert est.intercepts_[-1].shape == (k,)


def test_mlp_start_with_early_stopping_uses_the_training_rows(starts):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 4))
    y = X[:, 0] + 10.0 * np.arange(200)  # spread: a subset's mean differs from the whole's
    SGDMLPRegressor(early_stopping=True, validation_fraction=0.25, **MLP).fit(X, y)
    # scikit-learn's order: the initial weights, then the split from the same RandomState
    rs = np.random.RandomState(3)
    for a, b in zip([4, 7, 5], [7, 5, 1], strict=True):
        bound = np.sqrt(6.0 / (a + b))
        rs.uniform(-bound, bound, (a, b))
        rs.uniform(-bound, bound, b)
    from sklearn.model_selection import train_test_split

    train, _ = train_test_split(np.arange(200), random_state=rs, test_size=0.25)
    assert starts[0][-1] == pytest.approx(y[train].mean(), rel=1e-12)
    assert abs(y[train].mean() - y.mean()) > 1.0


@pytest.mark.parametrize("kwargs, drawn", [
    (dict(optimizer="sgd", learning_rate="constant"), True),  # scikit-learn's solver='sgd'
    (dict(optimizer="sgd", learning_rate="invscaling"), True),
    (dict(optimizer="sgd", learning_rate="cosine"), False),
    (dict(optimizer="nesterov"), False),
    (dict(), False),  # Adam
    (dict(intercept_start="sklearn"), True),
])
def test_mlp_auto_keeps_scikit_learns_draw_only_for_its_sgd(starts, kwargs, drawn):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(100, 4))
    y = X[:, 0] + 30.0
    SGDMLPRegressor(**{**MLP, **kwargs}).fit(X, y)
    draw = glorot_draws([4, 7, 5, 1], 3)[1][-1]
    assert starts[0][-1] == (draw[0] if drawn else pytest.approx(y.mean(), rel=1e-12))


def test_mlp_first_partial_fit_starts_from_its_chunk_and_later_ones_continue(starts):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(200, 4))
    y = rng.choice(3, size=200, p=[0.2, 0.5, 0.3])
    est = SGDMLPClassifier(**MLP)
    est.partial_fit(X[:80], y[:80], classes=[0, 1, 2])
    after = flat(est.coefs_, est.intercepts_)
    est.partial_fit(X[80:], y[80:])
    assert_allclose(starts[0][-3:], np.log(np.bincount(y[:80], minlength=3) / 80), rtol=1e-12)
    assert_array_equal(starts[1], after)


# ---- the emulated GPU path --------------------------------------------------------------------

@pytest.fixture
def emulated_gpu(monkeypatch, tmp_path_factory):
    """device='cuda' on the host emulation of the kernels (as tests/test_gpu_path.py)."""
    import gdsolve.gpu.backend as backend
    import gdsolve.gpu.inputs as gpu_inputs
    from gdsolve.gpu.device import emulated_runtime
    from gdsolve.gpu.host_emulation import compiler_command

    try:
        compiler_command()
    except Exception:  # pragma: no cover - every CI image has g++
        pytest.skip("needs a host C++ compiler")
    monkeypatch.setenv("GDSOLVE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))
    runtime = emulated_runtime()
    monkeypatch.setattr(backend, "device_status", lambda: (True, ""))
    monkeypatch.setattr(gpu_inputs, "runtime_for", lambda: runtime)
    return runtime


def test_gpu_path_starts_where_the_cpu_starts(starts, emulated_gpu):
    X, y, sw = regression_data()
    for device in ("cpu", "cuda"):
        SGDLinearRegression(loss="huber", device=device, **MINI_BATCH).fit(
            X, y, sample_weight=sw)
    Xc, yc = make_classification(300, 6, n_informative=4, n_classes=3, weights=[0.5, 0.3],
                                 random_state=0)
    for device in ("cpu", "cuda"):
        SGDLogistic(device=device, **MINI_BATCH).fit(Xc, yc)
    for device in ("cpu", "cuda"):
        SGDMLPClassifier(device=device, **MLP).fit(Xc, yc)
    assert len(starts) == 6
    assert starts[0][-1] == pytest.approx(huber_reference(y, sw, 0.1), rel=1e-12)
    assert_allclose(starts[2][-3:], np.log(np.bincount(yc) / len(yc)), rtol=1e-12)
    assert_allclose(starts[4][-3:], np.log(np.bincount(yc) / len(yc)), rtol=1e-12)
    for cpu, gpu in zip(starts[::2], starts[1::2], strict=True):
        assert_array_equal(gpu, cpu)


# ---- the issue's diabetes case ----------------------------------------------------------------

def ridge_optimum(X, y, alpha):
    """The exact minimiser of (1/n) sum_i 1/2 (y_i - x_i w - b)^2 + alpha/2 ||w||^2 (gdsolve's
    objective: docs/linear.md) and its value: centre, then (Xc'Xc/n + alpha I) w = Xc'yc/n."""
    n, d = X.shape
    xm, ym = X.mean(axis=0), y.mean()
    Xc, yc = X - xm, y - ym
    w = np.linalg.solve(Xc.T @ Xc / n + alpha * np.eye(d), Xc.T @ yc / n)
    b = ym - xm @ w
    return w, b


def objective(X, y, w, b, alpha):
    r = y - X @ w - b
    return 0.5 * np.mean(r * r) + 0.5 * alpha * w @ w


def test_diabetes_adam_case_from_the_issue():
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    alpha = 1e-3
    w, b = ridge_optimum(X, y, alpha)
    f_star = objective(X, y, w, b, alpha)
    gaps = {}
    for start in ("auto", "sklearn"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = SGDLinearRegression(optimizer="adam", batch_size=32, eta0=0.05,
                                      learning_rate="cosine", alpha=alpha, max_iter=300,
                                      random_state=0, intercept_start=start).fit(X, y)
        gaps[start] = (objective(X, y, est.coef_, est.intercept_[0], alpha) - f_star) / f_star
        if start == "auto":
            assert abs(est.intercept_[0] - b) < 0.1  # the start is the optimum's intercept
    # measured: about 7.6e-3 with the best constant (the rest is the ill-conditioned
    # direction of X'X/n, eigenvalue 0.0086, which 300 epochs of Adam do not finish), 1.35
    # from zero (the intercept ends near 90 of 152)
    assert gaps["sklearn"] > 1.0
    assert gaps["auto"] < 1e-2


def test_diabetes_adam_case_ends_where_pytorch_adam_does():
    """What is left of the issue's case is Adam's: PyTorch's Adam, from the same start with the
    same settings (batch 32, lr 0.05, cosine over the 300 epochs' steps), ends at the same gap
    (measured: 6.8e-3 for PyTorch over 3 seeds, 6.9e-3 for gdsolve with tol=None; the default
    tol stops gdsolve after about 130 epochs, at 7.6e-3)."""
    torch = pytest.importorskip("torch")
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    n, d = X.shape
    alpha, batch, epochs = 1e-3, 32, 300
    w, b = ridge_optimum(X, y, alpha)
    f_star = objective(X, y, w, b, alpha)
    est = SGDLinearRegression(optimizer="adam", batch_size=batch, eta0=0.05,
                              learning_rate="cosine", alpha=alpha, max_iter=epochs, tol=None,
                              random_state=0).fit(X, y)
    ours = (objective(X, y, est.coef_, est.intercept_[0], alpha) - f_star) / f_star
    torch.manual_seed(0)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    W = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    B = torch.tensor([y.mean()], dtype=torch.float64, requires_grad=True)  # the best constant
    opt = torch.optim.Adam([W, B], lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * -(-n // batch))
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            r = yt[idx] - Xt[idx] @ W - B
            loss = 0.5 * (r * r).mean() + 0.5 * alpha * (W * W).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    theirs = (objective(X, y, W.detach().numpy(), B.item(), alpha) - f_star) / f_star
    assert 0.8 * theirs <= ours <= 1.25 * theirs, (ours, theirs)
