"""Tests of gdsolve.lr_finder.lr_find: the suggestion lies inside the range and the loss diverges
past it, full-batch gradient descent diverges where the theory says (lr > 2 / L, L computed here
from the eigenvalues of the Hessian), the suggested rate trains, and bad input is refused."""

import warnings

import matplotlib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import SGDClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

import gdsolve
from gdsolve.lr_finder import LRFinderResult, lr_find, plot_lr_find
from gdsolve.neural_network import SGDMLPClassifier, SGDMLPRegressor
from gdsolve.reference import objective

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def classification():
    X, y = make_classification(n_samples=1500, n_features=12, n_informative=6, random_state=0)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1200, 8)) * np.linspace(0.5, 2.0, 8)  # unequal scales: L matters
    y = X @ rng.normal(size=8) + 0.3 * rng.normal(size=1200) + 2.0
    return X, y


def linear_model():
    return pytest.importorskip("gdsolve.linear_model", reason="gdsolve.linear_model not built yet")


def estimators():
    """(id, factory, data fixture name) for every estimator kind lr_find must handle."""
    cases = [
        ("mlp-classifier", lambda: SGDMLPClassifier(hidden_layer_sizes=(16,), random_state=0),
         "classification"),
        ("mlp-regressor", lambda: SGDMLPRegressor(hidden_layer_sizes=(16,), random_state=0),
         "regression"),
        ("sklearn-sgd", lambda: SGDClassifier(loss="log_loss", random_state=0),
         "classification"),
        ("sgd-logistic", lambda: linear_model().SGDLogistic(random_state=0), "classification"),
        ("sgd-linear", lambda: linear_model().SGDLinearRegression(random_state=0),
         "regression"),
    ]
    return [pytest.param(factory, data, id=name) for name, factory, data in cases]


@pytest.mark.parametrize(("factory", "data"), estimators())
def test_suggestion_inside_range_and_curve_diverges_past_it(request, factory, data):
    X, y = request.getfixturevalue(data)
    estimator = factory()
    result = lr_find(estimator, X, y, start_lr=1e-5, end_lr=1e3, num_steps=80)
    assert isinstance(result, LRFinderResult)
    assert result.start_lr <= result.suggestion <= result.end_lr
    np.testing.assert_allclose(result.lrs, np.geomspace(1e-5, 1e3, 80)[: len(result.losses)])
    # The loss falls from the start to the suggestion's neighbourhood ...
    assert result.smoothed_losses[result.min_loss_index] < 0.8 * result.smoothed_losses[0]
    assert result.suggestion <= result.min_loss_lr
    # ... and diverges past it.
    assert result.diverged
    assert result.diverged_lr > result.suggestion
    after = result.losses[result.suggestion_index:]
    assert len(after) == 0 or after.max() > result.losses[result.suggestion_index]
    # The estimator handed in is left untouched; the function is exported as gdsolve.lr_find.
    assert gdsolve.lr_find is lr_find
    with pytest.raises(NotFittedError):
        check_is_fitted(estimator)


def test_full_batch_gd_diverges_where_theory_says(regression):
    lm = linear_model()
    X, y = regression
    n = X.shape[0]
    # Hessian of mean 0.5 (y - Xw - b)^2: [X 1]'[X 1] / n; GD diverges once lr > 2 / L.
    design = np.hstack([X, np.ones((n, 1))])
    L = np.linalg.eigvalsh(design.T @ design / n).max()
    est = lm.SGDLinearRegression(batch_size="full", optimizer="sgd", penalty=None,
                                 random_state=0)
    result = lr_find(est, X, y, start_lr=1e-4, end_lr=100.0, num_steps=120, smoothing=0.0)
    # Full batch + evaluation on all rows: each step is exact GD on the measured objective, which
    # cannot increase while lr <= 2 / L (every error component shrinks by |1 - lr lambda| <= 1).
    losses, lrs = result.losses, result.lrs
    rises = np.flatnonzero(losses[1:] > losses[:-1] * (1 + 1e-12)) + 1
    assert len(rises) and lrs[rises[0]] > 2.0 / L
    # Past it the loss blows up (detected once the top component has regrown).
    assert result.diverged
    assert 2.0 / L < result.diverged_lr < 20.0 / L
    assert result.suggestion < 2.0 / L


def test_suggested_rate_trains_and_a_far_larger_one_does_not(classification):
    X, y = classification
    base = SGDMLPClassifier(hidden_layer_sizes=(16,), random_state=0, max_iter=5, tol=0.0,
                            n_iter_no_change=100)
    result = lr_find(base, X, y, start_lr=1e-5, end_lr=1e3)
    untrained = objective(clone(base).set_params(max_iter=1, learning_rate_init=1e-9).fit(X, y),
                          X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        good = clone(base).set_params(learning_rate_init=result.suggestion).fit(X, y)
        assert objective(good, X, y) < 0.6 * untrained
        try:
            bad = clone(base).set_params(learning_rate_init=100 * result.diverged_lr).fit(X, y)
            assert objective(bad, X, y) > objective(good, X, y)
        except ValueError as err:  # divergence refused by the estimator
            assert "non-finite" in str(err)


def test_optimizer_object_lr_is_swept(classification):
    optim = pytest.importorskip("gdsolve.optim")
    X, y = classification
    est = SGDMLPClassifier(hidden_layer_sizes=(16,), optimizer=optim.Adam(lr=1e-3),
                           random_state=0)
    result = lr_find(est, X, y, start_lr=1e-5, end_lr=1e3)
    assert result.lr_param == "optimizer.lr"
    assert result.diverged and result.start_lr <= result.suggestion < result.diverged_lr
    assert est.optimizer.lr == 1e-3  # the caller's optimizer object is not modified


def test_plot_helper_draws_the_curve(classification):
    import matplotlib.pyplot as plt

    X, y = classification
    result = lr_find(SGDMLPClassifier(hidden_layer_sizes=(8,), random_state=0), X, y,
                     start_lr=1e-5, end_lr=1e3, num_steps=40)
    ax = result.plot()
    lines = ax.get_lines()
    xs = np.concatenate([line.get_xdata() for line in lines[:2]])
    assert len(lines) >= 3 and np.allclose(np.sort(np.unique(xs)), np.sort(result.lrs))
    assert ax.get_xscale() == "log"
    fig, ax2 = plt.subplots()
    assert plot_lr_find(result, ax=ax2, show_raw=False) is ax2
    plt.close("all")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_lr": 1.0, "end_lr": 0.1}, "end_lr"),
        ({"start_lr": -1.0}, "start_lr"),
        ({"num_steps": 2}, "num_steps"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"diverge_factor": 1.0}, "diverge_factor"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments_raise(classification, kwargs, message):
    X, y = classification
    with pytest.raises(ValueError, match=message):
        lr_find(SGDMLPClassifier(), X, y, **kwargs)


def test_estimator_without_learning_rate_or_partial_fit_is_refused(classification):
    from sklearn.linear_model import LogisticRegression

    X, y = classification
    with pytest.raises(ValueError, match="partial_fit"):
        lr_find(LogisticRegression(), X, y)
    with pytest.raises(ValueError, match="eta0 or learning_rate_init"):
        lr_find(_NoRate(), X, y)


class _NoRate(SGDClassifier):
    """partial_fit but no learning-rate parameter."""

    def __init__(self):
        super().__init__()

    def get_params(self, deep=True):
        return {}
