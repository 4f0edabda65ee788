"""Batches shared by a team of threads (csrc/include/gdsolve/worker_team.h): the linear loop
splits each mini-batch's and full batch's rows between threads and sums their gradients in a
fixed order. The model must equal the one-thread model up to summation rounding, and a given
thread count must stay bit-reproducible."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification

import gdsolve.linear_model as linear_model
from gdsolve import SGDLinearRegression, SGDLogistic


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(3000, 40, n_informative=10, n_classes=3, random_state=0)
    return X, y


def fit_with_threads(monkeypatch, n_threads, estimator, X, y):
    monkeypatch.setattr(linear_model, "_n_threads", lambda: n_threads)
    return estimator.fit(X, y)


CONFIGS = [
    dict(optimizer="adam", learning_rate="constant", eta0=1e-2, batch_size=256),
    dict(optimizer="sgd", learning_rate="constant", eta0=1e-2, batch_size=512, penalty="l1",
         alpha=1e-3),
    dict(batch_size="full"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["adam-256", "sgd-l1-512", "full"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_team_matches_one_thread(monkeypatch, problem, config, sparse, dtype):
    X, y = problem
    X = X.astype(dtype)
    if sparse:
        X = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0).astype(dtype))
    make = lambda: SGDLogistic(max_iter=5, tol=None, random_state=0, **config)  # noqa: E731
    one = fit_with_threads(monkeypatch, 1, make(), X, y)
    two = fit_with_threads(monkeypatch, 2, make(), X, y)
    again = fit_with_threads(monkeypatch, 2, make(), X, y)
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    scale = np.abs(one.coef_).max()
    assert_allclose(two.coef_, one.coef_, rtol=rtol, atol=rtol * scale)
    assert_allclose(two.loss_curve_, one.loss_curve_, rtol=rtol)
    assert_array_equal(again.coef_, two.coef_)  # a fixed team size is bit-reproducible
    assert two.coef_.dtype == dtype


def test_team_regression_full_batch_reaches_least_squares(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5000, 30))
    y = X @ rng.standard_normal(30) + 0.1 * rng.standard_normal(5000) + 3.0
    model = fit_with_threads(
        monkeypatch, 2,
        SGDLinearRegression(batch_size="full", penalty=None, max_iter=500, tol=None), X, y)
    A = np.hstack([X, np.ones((5000, 1))])
    exact = np.linalg.lstsq(A, y, rcond=None)[0]
    assert_allclose(model.coef_, exact[:-1], rtol=1e-6, atol=1e-8)
    assert_allclose(model.intercept_, exact[-1], rtol=1e-6)
