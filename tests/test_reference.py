"""Tests of gdsolve.reference: the exact solvers against numpy.linalg.lstsq, scikit-learn's Ridge,
Lasso and a tightly converged LogisticRegression, and the objective / gap against NumPy formulas
written here from the module's documented objective."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import log_expit, logsumexp
from sklearn.datasets import load_breast_cancer, load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, Ridge, SGDClassifier
from sklearn.preprocessing import StandardScaler

from gdsolve import reference as ref

RTOL = 1e-8


def rel_err(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=150, n_features=12, noise=3.0, bias=4.0, random_state=0)
    X[:, 0] += 5.0  # a non-centred column makes the intercept handling matter
    weights = np.random.default_rng(0).uniform(0.2, 3.0, size=len(y))
    return X, y, weights


@pytest.fixture(scope="module")
def binary():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:, :12]
    weights = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    return X, y, weights


@pytest.fixture(scope="module")
def multiclass():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    weights = np.random.default_rng(2).uniform(0.5, 2.0, size=len(y))
    return X, y, weights


# ---------------------------------------------------------------- least squares / ridge


@pytest.mark.parametrize("solver", ["lstsq", "cholesky"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_ols_matches_numpy_lstsq(regression, solver, fit_intercept, weighted):
    X, y, w = regression
    weights = w if weighted else np.ones(len(y))
    # Independent: weighted rows, intercept as a column of ones, plain numpy lstsq.
    design = np.hstack([X, np.ones((len(y), 1))]) if fit_intercept else X
    root = np.sqrt(weights)
    theta = np.linalg.lstsq(design * root[:, None], y * root, rcond=None)[0]
    got = ref.least_squares(X, y, alpha=0.0, sample_weight=w if weighted else None,
                            fit_intercept=fit_intercept, solver=solver)
    assert rel_err(got.coef, theta[: X.shape[1]]) < RTOL
    if fit_intercept:
        assert abs(got.intercept - theta[-1]) < RTOL * max(1.0, abs(theta[-1]))
    else:
        assert got.intercept == 0.0


@pytest.mark.parametrize("solver", ["lstsq", "cholesky"])
@pytest.mark.parametrize("weighted", [False, True])
def test_ridge_matches_sklearn_ridge(regression, solver, weighted):
    X, y, w = regression
    n, alpha = len(y), 0.05
    weights = w if weighted else None
    # sklearn Ridge minimises sum s (y - Xw - b)^2 + a ||w||^2, i.e. our alpha = a / n.
    peer = Ridge(alpha=alpha * n, solver="cholesky").fit(X, y, sample_weight=weights)
    got = ref.least_squares(X, y, alpha=alpha, sample_weight=weights, solver=solver)
    assert rel_err(got.coef, peer.coef_) < RTOL
    assert abs(got.intercept - peer.intercept_) < RTOL * max(1.0, abs(peer.intercept_))
    assert abs(ref.relative_gap(peer, got)) < 1e-12
    assert got.gradient_norm < 1e-8


def test_cholesky_on_sparse_input_matches_dense(regression):
    X, y, w = regression
    Xs = X.copy()
    Xs[np.abs(Xs) < 0.7] = 0.0
    dense = ref.least_squares(Xs, y, alpha=0.01, sample_weight=w, solver="lstsq")
    sparse = ref.least_squares(sp.csr_matrix(Xs), y, alpha=0.01, sample_weight=w,
                               solver="cholesky")
    assert rel_err(sparse.coef, dense.coef) < RTOL
    assert abs(sparse.intercept - dense.intercept) < RTOL * max(1.0, abs(dense.intercept))


def test_rank_deficient_cholesky_raises_and_lstsq_gives_min_norm(regression):
    X, y, _ = regression
    Xd = np.hstack([X, X[:, :1]])  # duplicated column: X'X singular
    with pytest.raises(ValueError, match="singular"):
        ref.least_squares(Xd, y, alpha=0.0, solver="cholesky", fit_intercept=False)
    got = ref.least_squares(Xd, y, alpha=0.0, solver="lstsq", fit_intercept=False)
    expected = np.linalg.lstsq(Xd, y, rcond=None)[0]  # also the minimum-norm solution
    assert rel_err(got.coef, expected) < 1e-7


# ---------------------------------------------------------------- logistic


def _sklearn_logistic(X, y, alpha, weights):
    # LogisticRegression(C) minimises C sum s loss + 0.5 ||w||^2, i.e. our alpha = 1 / (C n).
    return LogisticRegression(C=1.0 / (alpha * len(y)), solver="newton-cholesky", tol=1e-14,
                              max_iter=1000).fit(X, y, sample_weight=weights)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("data", ["binary", "multiclass"])
def test_logistic_newton_matches_tight_logistic_regression(request, data, weighted):
    X, y, w = request.getfixturevalue(data)
    alpha = 1e-3
    weights = w if weighted else None
    peer = _sklearn_logistic(X, y, alpha, weights)
    got = ref.logistic(X, y, alpha=alpha, sample_weight=weights)
    assert got.solver == "newton"
    assert rel_err(got.coef, peer.coef_.reshape(got.coef.shape)) < RTOL
    assert rel_err(got.intercept, peer.intercept_.reshape(np.shape(got.intercept))) < RTOL
    assert abs(ref.relative_gap(peer, got)) < 1e-12
    np.testing.assert_array_equal(got.predict(X), peer.predict(X))


def test_logistic_lbfgs_and_sparse_reach_the_same_optimum(binary):
    X, y, w = binary
    newton = ref.logistic(X, y, alpha=1e-3, sample_weight=w)
    lbfgs = ref.logistic(X, y, alpha=1e-3, sample_weight=w, solver="lbfgs")
    on_sparse = ref.logistic(sp.csr_matrix(X), y, alpha=1e-3, sample_weight=w)
    assert abs(ref.relative_gap(lbfgs, newton)) < 1e-12
    assert rel_err(lbfgs.coef, newton.coef) < 1e-6
    assert rel_err(on_sparse.coef, newton.coef) < RTOL


def test_logistic_ovr_is_one_binary_problem_per_class(multiclass):
    X, y, _ = multiclass
    ovr = ref.logistic(X, y, alpha=1e-2, multi_class="ovr")
    for k in range(3):
        single = ref.logistic(X, (y == k).astype(int), alpha=1e-2)
        assert rel_err(ovr.coef[k], single.coef[0]) < RTOL


def test_l1_references_match_sklearn_lasso(regression):
    X, y, _ = regression
    got = ref.solve(X, y, loss="squared_error", penalty="l1", alpha=2.0)
    # sklearn Lasso minimises 1/(2n) ||y - Xw - b||^2 + alpha ||w||_1: the same objective.
    peer = Lasso(alpha=2.0, tol=1e-15, max_iter=100_000).fit(X, y)
    assert abs(ref.relative_gap(peer, got)) < 1e-10
    assert rel_err(got.coef, peer.coef_) < 1e-6
    np.testing.assert_array_equal(np.abs(got.coef) > 1e-8, peer.coef_ != 0)


def test_separable_data_without_penalty_warns():
    X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.array([0, 0, 1, 1])
    with pytest.warns(ConvergenceWarning, match="optimum may not exist"):
        ref.logistic(X, y, alpha=0.0, penalty=None, max_iter=30)


# ---------------------------------------------------------------- objective and gap


def test_objective_value_matches_numpy_formulas(regression, multiclass):
    X, y, w = regression
    rng = np.random.default_rng(3)
    coef, b = rng.normal(size=X.shape[1]), 0.7
    r = X @ coef + b - y
    n = len(y)
    sq = np.sum(w * 0.5 * r**2) / n + 0.1 * (0.3 * np.abs(coef).sum() + 0.7 * 0.5 * coef @ coef)
    got = ref.objective_value(coef, b, X, y, loss="squared_error", penalty="elasticnet",
                              alpha=0.1, l1_ratio=0.3, sample_weight=w)
    assert got == pytest.approx(sq, rel=1e-12)
    eps = 2.0
    hub = np.where(np.abs(r) <= eps, 0.5 * r**2, eps * np.abs(r) - 0.5 * eps**2).mean()
    got = ref.objective_value(coef, b, X, y, loss="huber", epsilon=eps, penalty=None)
    assert got == pytest.approx(hub, rel=1e-12)

    Xc, yc, wc = multiclass
    W, bc = rng.normal(size=(3, Xc.shape[1])), rng.normal(size=3)
    Z = Xc @ W.T + bc
    soft = np.sum(wc * (logsumexp(Z, axis=1) - Z[np.arange(len(yc)), yc])) / len(yc)
    soft += 0.01 * 0.5 * np.sum(W * W)
    got = ref.objective_value(W, bc, Xc, yc, loss="log_loss", alpha=0.01, sample_weight=wc)
    assert got == pytest.approx(soft, rel=1e-12)
    ovr = sum(-np.mean(log_expit(np.where(yc == k, 1.0, -1.0) * Z[:, k])) for k in range(3))
    ovr += 0.01 * 0.5 * np.sum(W * W)
    got = ref.objective_value(W, bc, Xc, yc, loss="log_loss", alpha=0.01, multi_class="ovr")
    assert got == pytest.approx(ovr, rel=1e-12)


def test_objective_reads_peer_parameters(regression, binary):
    X, y, w = regression
    n = len(y)
    ridge = Ridge(alpha=3.0).fit(X, y, sample_weight=w)
    r = y - ridge.predict(X)
    # Ridge's own objective (sum s r^2 + a ||w||^2) divided by 2n is ours.
    own = (np.sum(w * r**2) + 3.0 * ridge.coef_ @ ridge.coef_) / (2 * n)
    assert ref.objective(ridge, X, y, sample_weight=w) == pytest.approx(own, rel=1e-12)
    ols = LinearRegression().fit(X, y)
    assert ref.objective(ols, X, y) == pytest.approx(0.5 * np.mean((y - ols.predict(X)) ** 2))

    Xb, yb, _ = binary
    logreg = LogisticRegression(C=0.5).fit(Xb, yb)
    margins = logreg.decision_function(Xb)
    own = 0.5 * np.sum(-log_expit(np.where(yb == 1, 1, -1) * margins)) + 0.5 * np.sum(
        logreg.coef_**2)
    assert ref.objective(logreg, Xb, yb) == pytest.approx(own / (0.5 * len(yb)), rel=1e-12)


def test_relative_gap_is_zero_at_the_optimum_and_grows_away(binary):
    X, y, _ = binary
    best = ref.logistic(X, y, alpha=1e-2)
    assert abs(ref.relative_gap(best, best)) < 1e-15
    moved = best.coef + 0.05
    gap = ref.relative_gap((moved, best.intercept), best)
    value = ref.objective_value(moved, best.intercept, X, y, loss="log_loss", alpha=1e-2)
    assert gap == pytest.approx((value - best.objective) / best.objective, rel=1e-12)
    assert gap > 0
    sgd = SGDClassifier(loss="log_loss", alpha=1e-2, max_iter=5, tol=None, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sgd.fit(X, y)
    assert ref.relative_gap(sgd, best) > 0


def test_reference_for_uses_the_estimator_problem(binary):
    X, y, _ = binary
    peer = LogisticRegression(C=2.0)
    got = ref.reference_for(peer, X, y)
    assert got.problem.alpha == pytest.approx(1.0 / (2.0 * len(y)))
    fitted = _sklearn_logistic(X, y, got.problem.alpha, None)
    assert rel_err(got.coef, fitted.coef_) < RTOL


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda X, y: ref.least_squares(X, y, alpha=-1.0), "alpha"),
        (lambda X, y: ref.least_squares(X, y, solver="qr"), "solver"),
        (lambda X, y: ref.least_squares(X, y[:-1]), "samples"),
        (lambda X, y: ref.least_squares(X, y, sample_weight=-np.ones(len(y))), "sample_weight"),
        (lambda X, y: ref.solve(X, y, loss="epsilon_insensitive"), "not differentiable"),
        (lambda X, y: ref.solve(X, y, loss="hinge"), "loss"),
        (lambda X, y: ref.solve(X, y, penalty="l3"), "penalty"),
        (lambda X, y: ref.logistic(X, np.zeros(len(y))), "2 classes"),
        (lambda X, y: ref.problem_of(Ridge(), None), "n_samples"),
        (lambda X, y: ref.relative_gap(Ridge(), object()), "Reference"),
    ],
)
def test_bad_input_raises_value_error(regression, call, message):
    X, y, _ = regression
    with pytest.raises(ValueError, match=message):
        call(X, y)


# ---------------------------------------------------------------- gdsolve's own estimators


def _linear_model():
    return pytest.importorskip("gdsolve.linear_model", reason="gdsolve.linear_model not built")


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("regression", {"penalty": "l2", "alpha": 1e-2}),
        ("regression", {"penalty": "l1", "alpha": 5e-2}),
        ("multiclass", {"penalty": "l2", "alpha": 1e-2, "multi_class": "multinomial"}),
        ("multiclass", {"penalty": "l2", "alpha": 1e-2, "multi_class": "ovr"}),
    ],
)
def test_long_full_batch_gdsolve_fits_reach_the_reference(regression, multiclass, kind, params):
    # Same objective convention (weights normalised by n_samples, penalty, intercept): a
    # converged full-batch fit with sample weights lands on the exact optimum.
    lm = _linear_model()
    if kind == "regression":
        X, y, w = regression
        X = StandardScaler().fit_transform(X)
        est = lm.SGDLinearRegression(batch_size="full", learning_rate="optimal", max_iter=3000,
                                     tol=None, **params)
    else:
        X, y, w = multiclass
        est = lm.SGDLogistic(batch_size="full", learning_rate="optimal", max_iter=3000,
                             tol=None, **params)
    est.fit(X, y, sample_weight=w)
    best = ref.reference_for(est, X, y, sample_weight=w)
    assert best.problem.penalty == params["penalty"]
    assert best.problem.alpha == params["alpha"]
    assert -1e-14 <= ref.relative_gap(est, best) < 1e-9  # below 0: round-off at the optimum
    assert ref.objective(est, X, y, sample_weight=w) == pytest.approx(best.objective, rel=1e-9)


def test_objective_of_a_gdsolve_logistic_model_matches_numpy(binary):
    lm = _linear_model()
    X, y, w = binary
    est = lm.SGDLogistic(alpha=1e-3, penalty="elasticnet", l1_ratio=0.4, max_iter=3,
                         tol=None, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, sample_weight=w)
    coef, b = est.coef_.ravel(), est.intercept_[0]
    margins = X @ coef + b
    signs = np.where(y == est.classes_[1], 1.0, -1.0)
    expected = np.sum(w * np.log1p(np.exp(-signs * margins))) / len(y)
    expected += 1e-3 * (0.4 * np.abs(coef).sum() + 0.6 * 0.5 * coef @ coef)
    assert ref.objective(est, X, y, sample_weight=w) == pytest.approx(expected, rel=1e-10)
