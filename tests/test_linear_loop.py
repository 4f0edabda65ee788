"""The compiled linear loop against plain NumPy re-implementations written here from the published
algorithms (Bottou's SGD with scikit-learn's 'optimal' rate, Tsuruoka's cumulative L1, averaged
SGD, PyTorch's Adam, gradient descent), against scikit-learn's SGD where the algorithm is the
same, and the loop's guarantees: dense == sparse, float32 ~ float64, bit-reproducible seeds,
partial_fit == one epoch of fit, divergence and Ctrl-C handling.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import softmax
from sklearn.datasets import load_breast_cancer, load_iris, make_classification
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.preprocessing import StandardScaler

import gdsolve.linear_model as linear_model
from gdsolve import SGDLinearRegression, SGDLogistic, _cpu_linear, _structs, engine
from gdsolve._codes import Loss
from gdsolve.optim import make_optimizer
from gdsolve.schedules import make_schedule


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:240]
    return X, y[:240]


def optimal_t0(alpha):
    # scikit-learn's heuristic for the log loss: eta_init = typw / max(1, |dloss(-typw, 1)|)
    typw = np.sqrt(1.0 / np.sqrt(alpha))
    dloss = -1.0 / (np.exp(-typw) + 1.0)
    return 1.0 / (typw / max(1.0, abs(dloss)) * alpha)


def reference_sgd_binary(X, ys, alpha, l1_ratio, epochs, average=0):
    """Per-sample SGD on the log loss (rows in order): L2 as multiplicative decay, Tsuruoka's
    cumulative L1 truncation after the step, averaged iterates from sample `average` on."""
    n, d = X.shape
    w, b, q, u, t = np.zeros(d), 0.0, np.zeros(d), 0.0, 1.0
    avg, avg_b, m = np.zeros(d), 0.0, 0
    t0 = optimal_t0(alpha)
    for _ in range(epochs):
        for i in range(n):
            p = X[i] @ w + b
            eta = 1.0 / (alpha * (t0 + t - 1.0))
            dloss = -ys[i] / (np.exp(ys[i] * p) + 1.0)
            update = -eta * dloss
            w *= max(0.0, 1.0 - (1.0 - l1_ratio) * eta * alpha)
            w += update * X[i]
            b += update
            if average and t >= average:
                m += 1
                avg += (w - avg) / m
                avg_b += (b - avg_b) / m
            if l1_ratio > 0:
                u += l1_ratio * eta * alpha
                before = w.copy()
                pos, neg = w > 0, w < 0
                w[pos] = np.maximum(0.0, w[pos] - (u + q[pos]))
                w[neg] = np.minimum(0.0, w[neg] + (u - q[neg]))
                q += w - before
            t += 1
    return (avg, avg_b) if average else (w, b)


@pytest.mark.parametrize("penalty,l1_ratio,average", [("l2", 0.0, False), ("l1", 1.0, False),
                                                      ("elasticnet", 0.5, 1),
                                                      ("elasticnet", 0.5, 50)])
def test_per_sample_sgd_matches_reference(cancer, penalty, l1_ratio, average):
    X, y = cancer
    ys = np.where(y == 1, 1.0, -1.0)
    alpha = 1e-3
    w, b = reference_sgd_binary(X, ys, alpha, l1_ratio, 3, average)
    est = SGDLogistic(alpha=alpha, penalty=penalty, l1_ratio=l1_ratio, average=average,
                      shuffle=False, max_iter=3, tol=None).fit(X, y)
    assert_allclose(est.coef_[0], w, rtol=1e-9, atol=1e-11)
    assert_allclose(est.intercept_[0], b, rtol=1e-9, atol=1e-11)
    assert est.t_ == 3 * X.shape[0] + 1


@pytest.mark.parametrize("kwargs", [{}, {"learning_rate": "invscaling", "eta0": 0.1},
                                    {"learning_rate": "adaptive", "eta0": 0.1},
                                    {"average": True}, {"penalty": "l1"}])
def test_per_sample_sgd_matches_sklearn(cancer, kwargs):
    # Same algorithm, same (unshuffled) order: scikit-learn's SGDClassifier gives the same model.
    X, y = cancer
    ours = SGDLogistic(shuffle=False, max_iter=4, tol=None, **kwargs).fit(X, y)
    theirs = SGDClassifier(loss="log_loss", shuffle=False, max_iter=4, tol=None,
                           **kwargs).fit(X, y)
    assert_allclose(ours.coef_, theirs.coef_, rtol=1e-6, atol=1e-8)
    assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss", ["squared", "huber", "epsilon_insensitive"])
def test_regression_losses_match_sklearn(loss):
    rng = np.random.RandomState(0)
    X = rng.randn(150, 6)
    y = X @ rng.randn(6) + 0.3 * rng.randn(150)
    ours = SGDLinearRegression(loss=loss, shuffle=False, max_iter=3, tol=None,
                               average=True).fit(X, y)
    theirs = SGDRegressor(loss="squared_error" if loss == "squared" else loss, shuffle=False,
                          max_iter=3, tol=None, average=True).fit(X, y)
    assert_allclose(ours.coef_, theirs.coef_, rtol=1e-9, atol=1e-12)
    assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-9, atol=1e-12)


def test_multinomial_per_sample_matches_reference():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    alpha, n, d, K = 1e-2, X.shape[0], X.shape[1], 3
    W, b, t = np.zeros((K, d)), np.zeros(K), 1.0
    t0 = optimal_t0(alpha)
    for _ in range(2):
        for i in range(n):
            z = W @ X[i] + b
            g = softmax(z)
            g[y[i]] -= 1.0
            eta = 1.0 / (alpha * (t0 + t - 1.0))
            W *= 1.0 - eta * alpha
            W -= eta * np.outer(g, X[i])
            b -= eta * g
            t += 1
    est = SGDLogistic(alpha=alpha, shuffle=False, max_iter=2, tol=None).fit(X, y)
    assert est.coef_.shape == (K, d)
    assert_allclose(est.coef_, W, rtol=1e-9, atol=1e-11)
    assert_allclose(est.intercept_, b, rtol=1e-9, atol=1e-11)


def test_minibatch_adam_matches_reference(cancer):
    # PyTorch's Adam on the batch-mean gradient plus alpha * w (the l2 part of the objective).
    X, y = cancer
    ys = np.where(y == 1, 1.0, -1.0)
    n, d = X.shape
    alpha, lr, b1, b2, eps, batch = 1e-3, 0.01, 0.9, 0.999, 1e-8, 32
    theta = np.zeros(d + 1)
    theta[d] = np.log(np.mean(ys == 1) / np.mean(ys == -1))  # the best constant: the log-odds
    m, v, step = np.zeros(d + 1), np.zeros(d + 1), 0
    for _ in range(3):
        for start in range(0, n, batch):
            Xb, yb = X[start:start + batch], ys[start:start + batch]
            p = Xb @ theta[:d] + theta[d]
            r = -yb / (np.exp(yb * p) + 1.0)
            g = np.append(Xb.T @ r, r.sum()) / len(yb)
            g[:d] += alpha * theta[:d]
            step += 1
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            denom = np.sqrt(v) / np.sqrt(1 - b2 ** step) + eps
            theta -= lr / (1 - b1 ** step) * m / denom
    est = SGDLogistic(alpha=alpha, optimizer="adam", learning_rate="constant", eta0=lr,
                      batch_size=batch, shuffle=False, max_iter=3, tol=None).fit(X, y)
    assert_allclose(est.coef_[0], theta[:d], rtol=1e-9, atol=1e-12)
    assert_allclose(est.intercept_[0], theta[d], rtol=1e-9, atol=1e-12)


def test_full_batch_descent_matches_reference():
    # Gradient descent with step 1/L, L = lambda_max([X 1]'[X 1] / n) + alpha (squared loss).
    rng = np.random.RandomState(1)
    X = rng.randn(120, 5) * [1.0, 3.0, 0.5, 2.0, 1.0] + 2.0
    y = X @ rng.randn(5) + 1.0
    n, d = X.shape
    alpha = 0.05
    Xt = np.hstack([X, np.ones((n, 1))])
    step = 1.0 / (np.linalg.eigvalsh(Xt.T @ Xt / n)[-1] + alpha)
    theta = np.zeros(d + 1)
    theta[d] = y.mean()  # the best constant of the squared loss
    objective = []
    for _ in range(25):
        r = Xt @ theta - y
        objective.append(0.5 * np.mean(r * r) + 0.5 * alpha * theta[:d] @ theta[:d])
        g = Xt.T @ r / n
        g[:d] += alpha * theta[:d]
        theta -= step * g
    est = SGDLinearRegression(alpha=alpha, batch_size="full", learning_rate="lipschitz",
                              max_iter=25, tol=None).fit(X, y)
    assert_allclose(est.coef_, theta[:d], rtol=1e-9)
    assert_allclose(est.intercept_[0], theta[d], rtol=1e-9)
    assert_allclose(est.loss_curve_, objective, rtol=1e-10)  # exact objective per epoch


def test_clip_grad_norm_minibatch_matches_reference():
    rng = np.random.RandomState(2)
    X = 5.0 * rng.randn(64, 4)
    y = X @ rng.randn(4)
    lr, max_norm, batch = 0.01, 0.5, 16
    theta = np.zeros(5)
    theta[4] = y.mean()  # the best constant of the squared loss
    for start in range(0, 64, batch):
        Xb, yb = X[start:start + batch], y[start:start + batch]
        r = Xb @ theta[:4] + theta[4] - yb
        g = np.append(Xb.T @ r, r.sum()) / batch
        g *= min(1.0, max_norm / (np.linalg.norm(g) + 1e-6))  # PyTorch's clip_grad_norm_
        theta -= lr * g
    est = SGDLinearRegression(penalty=None, learning_rate="constant", eta0=lr, batch_size=batch,
                              clip_grad_norm=max_norm, shuffle=False, max_iter=1,
                              tol=None).fit(X, y)
    assert_allclose(est.coef_, theta[:4], rtol=1e-10)


def _sparse_problem(seed=0, n=300, d=37):  # d: not a whole number of SIMD vectors
    rng = np.random.RandomState(seed)
    X = sp.random(n, d, density=0.15, format="csr", random_state=rng)
    y = (X @ rng.randn(d) > 0).astype(int)
    return X, y


@pytest.mark.parametrize("kwargs", [{}, {"average": 10},
                                    {"optimizer": "adam", "batch_size": 32},
                                    {"optimizer": "adam", "batch_size": 40,
                                     "multi_class": "multinomial"},
                                    {"batch_size": "full", "penalty": "l1", "alpha": 1e-3},
                                    {"multi_class": "ovr"}])
def test_dense_and_sparse_give_the_same_model(kwargs):
    # shuffled dense batches take the several-rows-at-once kernels, CSR rows one at a time
    X, y = _sparse_problem()
    if kwargs.get("multi_class"):
        y = y + (np.arange(len(y)) % 3 == 0)
    dense = SGDLogistic(random_state=3, max_iter=5, tol=None, **kwargs).fit(X.toarray(), y)
    sparse = SGDLogistic(random_state=3, max_iter=5, tol=None, **kwargs).fit(X, y)
    assert_allclose(sparse.coef_, dense.coef_, rtol=1e-9, atol=1e-12)
    assert_allclose(sparse.intercept_, dense.intercept_, rtol=1e-9, atol=1e-12)
    csc = SGDLogistic(random_state=3, max_iter=5, tol=None, **kwargs).fit(X.tocsc(), y)
    assert_allclose(csc.coef_, dense.coef_, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kwargs", [{}, {"optimizer": "adam", "batch_size": 16},
                                    {"batch_size": "full"}])
def test_float32_stays_float32_and_agrees(cancer, kwargs):
    X, y = cancer
    m64 = SGDLogistic(random_state=0, max_iter=5, tol=None, **kwargs).fit(X, y)
    m32 = SGDLogistic(random_state=0, max_iter=5, tol=None, **kwargs).fit(
        X.astype(np.float32), y)
    assert m32.coef_.dtype == np.float32 and m32.intercept_.dtype == np.float32
    assert m32.decision_function(X.astype(np.float32)).dtype == np.float32
    scale = np.abs(m64.coef_).max()
    assert_allclose(m32.coef_, m64.coef_, rtol=0, atol=2e-4 * scale)
    sparse32 = SGDLinearRegression(max_iter=2, tol=None).fit(
        sp.csr_matrix(X.astype(np.float32)), y)
    assert sparse32.coef_.dtype == np.float32


@pytest.mark.parametrize("kwargs", [{}, {"optimizer": "adam", "batch_size": 8},
                                    {"multi_class": "ovr", "average": True}])
def test_fixed_random_state_is_bit_reproducible(kwargs):
    X, y = load_iris(return_X_y=True)
    a = SGDLogistic(random_state=7, max_iter=20, tol=None, **kwargs).fit(X, y)
    b = SGDLogistic(random_state=7, max_iter=20, tol=None, **kwargs).fit(X, y)
    c = SGDLogistic(random_state=8, max_iter=20, tol=None, **kwargs).fit(X, y)
    assert_array_equal(a.coef_, b.coef_)
    assert_array_equal(a.intercept_, b.intercept_)
    assert_array_equal(a.loss_curve_[0] if isinstance(a.loss_curve_, list) else a.loss_curve_,
                       b.loss_curve_[0] if isinstance(b.loss_curve_, list) else b.loss_curve_)
    assert not np.array_equal(a.coef_, c.coef_)  # the seed does drive the shuffling


@pytest.mark.parametrize("kwargs", [{"average": 7, "penalty": "elasticnet"},
                                    {"optimizer": "adam", "batch_size": 10,
                                     "intercept_start": "sklearn"},
                                    {"multi_class": "ovr"}])
def test_partial_fit_chunks_equal_one_epoch_of_fit(kwargs):
    # the same start in both (the first partial_fit call would start from its own chunk's best
    # constant, fit from the whole data's): then the chunks continue the state exactly
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    order = np.random.RandomState(0).permutation(len(y))
    X, y = X[order], y[order]
    whole = SGDLogistic(shuffle=False, max_iter=1, tol=None, **kwargs).fit(X, y)
    parts = SGDLogistic(shuffle=False, **kwargs)
    for start in range(0, 150, 50):
        parts.partial_fit(X[start:start + 50], y[start:start + 50], classes=np.unique(y))
    assert_allclose(parts.coef_, whole.coef_, rtol=1e-10, atol=1e-12)
    assert_allclose(parts.intercept_, whole.intercept_, rtol=1e-10, atol=1e-12)
    assert parts.t_ == whole.t_ == 151


def test_divergence_raises_and_keeps_the_previous_model():
    # Huge features and a fixed step: the squared loss overflows during the first epoch.
    rng = np.random.RandomState(0)
    X = rng.randn(50, 3)
    y = X @ [1.0, 2.0, 3.0]
    est = SGDLinearRegression(max_iter=5, tol=None, random_state=0).fit(X, y)
    coef, intercept = est.coef_.copy(), est.intercept_.copy()
    est.set_params(learning_rate="constant", eta0=1.0)
    with pytest.raises(ValueError, match=r"epoch 1\b.*(StandardScaler|eta0)"):
        est.fit(1e80 * X, 1e80 * y)
    assert_array_equal(est.coef_, coef)
    assert_array_equal(est.intercept_, intercept)


@pytest.mark.parametrize("gather", [0, 1], ids=["direct", "gathered-rows"])
def test_ctrl_c_stops_promptly_and_keeps_the_last_epoch(monkeypatch, gather, fit_interrupted):
    # gathered: a helper thread feeds the rows; the interrupt must stop and join it too
    monkeypatch.setattr(linear_model, "_GATHER_ROWS", gather)
    X, y = make_classification(20000, 50, random_state=0)
    est = SGDLogistic(max_iter=100000, tol=None, random_state=0)
    assert fit_interrupted(est, X, y, 0.3) < 2.0
    assert 1 <= est.n_iter_ < 100000
    assert len(est.loss_curve_) == est.n_iter_
    assert np.all(np.isfinite(est.coef_)) and est.score(X, y) > 0.7


def test_early_stopping_records_scores_and_stops():
    X, y = make_classification(600, 10, random_state=0)
    est = SGDLogistic(early_stopping=True, n_iter_no_change=3, max_iter=500, random_state=0)
    est.fit(X, y)
    assert est.n_iter_ < 500
    assert est.validation_scores_.shape == (est.n_iter_,)
    assert np.all((est.validation_scores_ >= 0) & (est.validation_scores_ <= 1))
    reg = SGDLinearRegression(early_stopping=True, batch_size="full", max_iter=300,
                              random_state=0).fit(X, y.astype(float))
    assert reg.validation_scores_.shape == (reg.n_iter_,) and reg.validation_scores_[-1] > 0.3


def test_tol_stops_on_the_objective():
    X, y = load_iris(return_X_y=True)
    est = SGDLogistic(batch_size="full", learning_rate="lipschitz", tol=1e-4,
                      n_iter_no_change=3, max_iter=100000, random_state=0).fit(X, y)
    curve = est.loss_curve_
    assert est.n_iter_ < 100000 and len(curve) == est.n_iter_
    # scikit-learn's rule: stop after n_iter_no_change epochs in a row not beating best - tol
    best, streak, stop = np.inf, 0, None
    for epoch, value in enumerate(curve, start=1):
        streak = streak + 1 if value > best - 1e-4 else 0
        best = min(best, value)
        if streak >= 3:
            stop = epoch
            break
    assert stop == est.n_iter_


def test_verbose_prints_once_per_epoch(capsys):
    X, y = load_iris(return_X_y=True)
    SGDLogistic(max_iter=4, tol=None, verbose=1).fit(X, y)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "epoch" in ln]
    assert len(lines) == 4 and "objective" in lines[0]


def test_binding_rejects_bad_arrays_before_work():
    X = np.ones((5, 2))
    y = np.ones(5)
    model = _structs.record("LinearConfig", {"loss": int(Loss.SQUARED), "n_outputs": 1})
    records = (_structs.record("OptimizerConfig", make_optimizer("sgd").to_config()),
               _structs.record("ScheduleConfig", make_schedule("constant", lr=0.1).to_config()),
               _structs.record("DriverConfig", {"max_iter": 1, "batch_size": 1}),
               _structs.record("CpuConfig"))
    rows = np.arange(5, dtype=np.int64)

    def executor(cfg, X, y, n_outputs=1):
        return _cpu_linear.LinearExecutor(cfg, *records, X, y, None, 5)

    def state(rows=rows, n_outputs=1):
        return engine.FitState(np.zeros(2 * n_outputs + n_outputs), order=rows)

    def fit(cfg, X, y, rows, n_outputs=1):
        rules = engine.FitRules(records[2], records[1])
        return engine.run(executor(cfg, X, y), state(rows, n_outputs), rules)

    with pytest.raises(ValueError, match="train_rows"):
        fit(model, X, y, rows + 3)
    with pytest.raises(ValueError, match="y"):
        fit(model, X, y.astype(np.float32), rows)
    with pytest.raises(ValueError, match="row-major"):
        fit(model, np.asfortranarray(np.ones((5, 2))), y, rows)
    softmax = _structs.record("LinearConfig", {"loss": int(Loss.SOFTMAX), "n_outputs": 2})
    with pytest.raises(ValueError, match="class indices"):
        fit(softmax, X, y * 2, rows, n_outputs=2)
    csr = sp.csr_matrix(X)
    bad = (csr.data, csr.indices.astype(np.int32) + 5, csr.indptr.astype(np.int64), 2)
    with pytest.raises(ValueError, match="column indices"):
        fit(model, bad, y, rows)
    good = fit(model, X, y, rows)
    assert good.n_epochs == 1


def test_objective_includes_weights_and_penalty():
    # One constant-step full-batch epoch reports (1/n) sum s_i loss_i + alpha/2 ||w||^2 at the
    # starting point (the spectral method reports it at the point it moved to).
    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 3), rng.randn(40)
    sw = rng.uniform(0.5, 2.0, 40)
    w0 = np.array([0.5, -1.0, 2.0])
    est = SGDLinearRegression(alpha=0.3, batch_size="full", learning_rate="lipschitz",
                              max_iter=1, tol=None, warm_start=True)
    est.coef_, est.intercept_ = w0.copy(), np.array([0.25])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, sample_weight=sw)
    r = X @ w0 + 0.25 - y
    expected = np.mean(sw * 0.5 * r * r) + 0.15 * w0 @ w0
    assert_allclose(est.loss_curve_[0], expected, rtol=1e-12)


def test_reduce_on_plateau_lowers_the_rate_in_the_loop(capsys):
    from gdsolve.schedules import ReduceLROnPlateau

    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    sched = ReduceLROnPlateau(factor=0.5, patience=0, threshold=0.5)  # every epoch a "plateau"
    SGDLogistic(learning_rate=sched, eta0=0.1, batch_size=16, max_iter=4, tol=None,
                verbose=1, random_state=0).fit(X, y)
    rates = [float(ln.rsplit("lr ", 1)[1].split(",")[0])
             for ln in capsys.readouterr().out.splitlines() if "lr " in ln]
    # PyTorch's rule: the first epoch improves on +inf; each later one is a plateau and halves
    # the rate used by the next epoch
    assert_allclose(rates, [0.1, 0.1, 0.05, 0.025], rtol=1e-3)
