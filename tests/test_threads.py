"""Batches shared by a team of threads (csrc/include/gdsolve/cpu/worker_team.h): the linear and MLP
loops split each batch's rows between threads and sum their gradients in a fixed order. The model
must equal the one-thread model up to summation rounding, and a given thread count must stay
bit-reproducible."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning

import gdsolve.linear_model as linear_model
import gdsolve.neural_network as neural_network
from gdsolve import SGDLinearRegression, SGDLogistic, _cpu_linear, _cpu_mlp
from gdsolve.neural_network import SGDMLPClassifier


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(3000, 40, n_informative=10, n_classes=3, random_state=0)
    return X, y


def fit_with_threads(monkeypatch, n_threads, estimator, X, y):
    monkeypatch.setattr(linear_model, "available_threads", lambda: n_threads)
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


@pytest.mark.parametrize("clip", [None, 1.0], ids=["no-clip", "clip-norm"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mlp_team_matches_one_thread(monkeypatch, problem, clip, sparse, dtype):
    """The MLP team: each member runs forward/backward on its share of the batch with
    single-threaded BLAS, then sums and updates a slice of the parameters."""
    X, y = problem
    X = X.astype(dtype)
    if sparse:
        X = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0).astype(dtype))
    assert _cpu_mlp.team_size(2, 200) == 2 and _cpu_mlp.team_size(2, 40) == 1

    def fit(n_threads):
        monkeypatch.setattr(neural_network, "available_threads", lambda: n_threads)
        return SGDMLPClassifier(hidden_layer_sizes=(32, 16), batch_size=200, max_iter=4,
                                clip_grad_norm=clip, random_state=0, tol=0.0).fit(X, y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one, two, again = fit(1), fit(2), fit(2)
    rtol = 1e-9 if dtype == np.float64 else 1e-3
    for a, b in zip(one.coefs_ + one.intercepts_, two.coefs_ + two.intercepts_, strict=True):
        assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())
    assert_allclose(two.loss_curve_, one.loss_curve_, rtol=rtol)
    for a, b in zip(two.coefs_, again.coefs_, strict=True):
        assert_array_equal(a, b)
    assert two.coefs_[0].dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_row_pass_reads_every_row_once(dtype, threads):
    """The benchmark floor (row_pass.h): with weights of ones its checksum is the sum of X."""
    X = np.random.default_rng(0).standard_normal((1000, 7)).astype(dtype)
    order = np.random.default_rng(1).permutation(1000)
    seconds, checksum = _cpu_linear.row_pass(X, order, threads)
    assert seconds > 0
    assert checksum == pytest.approx(float(X.astype(np.float64).sum()), rel=1e-4, abs=1e-3)
    with pytest.raises(ValueError, match="beyond X"):
        _cpu_linear.row_pass(X, np.array([0, 1000]), threads)


def test_num_threads_environment_variable(monkeypatch):
    from gdsolve._base import available_threads

    monkeypatch.setenv("GDSOLVE_NUM_THREADS", "1")
    assert available_threads() == 1
    monkeypatch.setenv("GDSOLVE_NUM_THREADS", "64")
    assert 1 <= available_threads() <= 8
    for bad in ("0", "two", "-3"):
        monkeypatch.setenv("GDSOLVE_NUM_THREADS", bad)
        with pytest.raises(ValueError, match="GDSOLVE_NUM_THREADS must be a positive integer"):
            available_threads()


GATHER_CONFIGS = [
    dict(),  # the plain per-sample loop: binary log loss, L2
    dict(penalty="elasticnet", l1_ratio=0.3, alpha=1e-3, average=10),  # cumulative L1, ASGD
    dict(multiclass=True),  # multinomial softmax: the general per-sample loop
]


@pytest.mark.parametrize("config", GATHER_CONFIGS, ids=["simple", "l1-average", "softmax"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gathered_rows_give_the_same_model(monkeypatch, config, sparse, dtype):
    """Shuffled per-sample SGD with the epoch's rows copied into a ring of chunks
    (cpu/row_gatherer.h RowGatherer; by a helper thread and the training thread, or by the
    training thread alone) must equal the direct loop bit for bit: same rows, same order, same
    arithmetic. 10,000 rows fill the ring's 8 chunks of 512 rows twice over."""
    config = dict(config)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10_000, 30)).astype(dtype)
    if config.pop("multiclass", False):
        y = np.argmax(X[:, :3] + 0.3 * rng.standard_normal((10_000, 3)), axis=1)
    else:
        y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.standard_normal(10_000) > 0).astype(int)
    if sparse:
        X = sp.csr_matrix(np.where(np.abs(X) > 1.0, X, 0.0).astype(dtype))
    weights = rng.uniform(0.5, 2.0, 10_000)

    def fit(gather):
        monkeypatch.setattr(linear_model, "_GATHER_ROWS", gather)
        return SGDLogistic(max_iter=3, tol=None, random_state=0, **config).fit(
            X, y, sample_weight=weights)

    direct = fit(0)
    assert not direct._loop_gathered
    # 1: a helper thread and the training thread share the copying; 2: no helper thread
    for gathered in (fit(1), fit(2)):
        assert gathered._loop_gathered
        assert_array_equal(gathered.coef_, direct.coef_)
        assert_array_equal(gathered.intercept_, direct.intercept_)
        assert_array_equal(gathered.loss_curve_, direct.loss_curve_)
        assert gathered.t_ == direct.t_


def test_gather_is_automatic_only_for_large_shuffled_data(monkeypatch):
    monkeypatch.setattr(linear_model, "available_threads", lambda: 2)
    X = np.random.default_rng(0).standard_normal((200, 5))
    y = (X[:, 0] > 0).astype(int)
    small = SGDLogistic(max_iter=2, tol=None, random_state=0).fit(X, y)
    assert not small._loop_gathered  # 8 KB of rows stay in cache: no helper thread
    Xl = np.random.default_rng(0).standard_normal((11_000, 100))  # 8.8 MB
    yl = (Xl[:, 0] > 0).astype(int)
    assert SGDLogistic(max_iter=1, tol=None, random_state=0).fit(Xl, yl)._loop_gathered
    assert not SGDLogistic(max_iter=1, tol=None, shuffle=False).fit(Xl, yl)._loop_gathered
    monkeypatch.setattr(linear_model, "available_threads", lambda: 1)
    assert not SGDLogistic(max_iter=1, tol=None, random_state=0).fit(Xl, yl)._loop_gathered
