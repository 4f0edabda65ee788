"""SGDMLPClassifier / SGDMLPRegressor as scikit-learn estimators: the common estimator checks,
quality against scikit-learn's MLP on the same data and initialisation, the learning problems
of the issue (digits, XOR, two moons, a smooth 1-D function), and the estimator API
(partial_fit, warm_start, early stopping, dtypes, sparse input, errors, pickling)."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits, make_moons, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    parametrize_with_checks,
)

import gdsolve
from gdsolve.neural_network import SGDMLPClassifier, SGDMLPRegressor
from gdsolve.optim import Muon, Sophia
from gdsolve.schedules import OneCycleLR


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


# Every common check passes: none is expected to fail. (fit takes no sample_weight, so the
# sample-weight checks scikit-learn expects SGD estimators to fail are not run.)
@parametrize_with_checks(
    [SGDMLPClassifier(max_iter=100, random_state=0), SGDMLPRegressor(max_iter=100, random_state=0),
     SGDMLPClassifier(optimizer=Muon(lr=0.02), max_iter=100, random_state=0),
     SGDMLPRegressor(optimizer=Sophia(lr=1e-2), max_iter=100, random_state=0)]
)
def test_sklearn_estimator_checks(estimator, check):
    _quiet(check, estimator)


@pytest.mark.parametrize("Est", [SGDMLPClassifier, SGDMLPRegressor])
def test_dataframe_column_names_consistency(Est):
    pytest.importorskip("pandas")
    _quiet(check_dataframe_column_names_consistency, Est.__name__,
           Est(max_iter=20, random_state=0))


# ---- quality -------------------------------------------------------------------------------------

def test_digits_accuracy_comparable_to_sklearn_mlp():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    settings = dict(hidden_layer_sizes=(64,), alpha=1e-4, batch_size=64, learning_rate_init=1e-3,
                    max_iter=60, random_state=0)
    ref = _quiet(MLPClassifier(**settings).fit, X_train, y_train)
    est = _quiet(SGDMLPClassifier(**settings).fit, X_train, y_train)
    ref_acc, acc = ref.score(X_test, y_test), est.score(X_test, y_test)
    assert acc >= ref_acc - 0.01, (acc, ref_acc)
    assert acc > 0.95
    # same initial weights and the same objective: the training losses end close together
    assert est.loss_ == pytest.approx(ref.loss_, rel=0.3)


def test_xor_is_learned():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 25, dtype=float)
    y = np.logical_xor(X[:, 0], X[:, 1]).astype(int)
    est = _quiet(SGDMLPClassifier(hidden_layer_sizes=(8,), activation="tanh",
                                  learning_rate_init=0.05, max_iter=300, random_state=0).fit, X, y)
    assert_array_equal(est.predict(X[:4]), [0, 1, 1, 0])
    assert est.predict_proba(X[:4])[[0, 3], 1].max() < 0.2
    assert est.predict_proba(X[:4])[[1, 2], 1].min() > 0.8


def test_two_moons_are_learned():
    X, y = make_moons(600, noise=0.1, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    est = _quiet(SGDMLPClassifier(hidden_layer_sizes=(32, 32), learning_rate_init=0.01,
                                  max_iter=200, random_state=0).fit, X_train, y_train)
    assert est.out_activation_ == "logistic" and est.n_outputs_ == 1
    assert est.score(X_test, y_test) > 0.97


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_regressor_fits_a_smooth_function(dtype):
    x = np.linspace(-3, 3, 400, dtype=dtype)[:, None]
    y = np.sin(2 * x).ravel()
    est = _quiet(SGDMLPRegressor(hidden_layer_sizes=(32, 32), activation="tanh",
                                 learning_rate_init=0.01, max_iter=1000, tol=0.0,
                                 n_iter_no_change=1000, random_state=0).fit, x, y)
    pred = est.predict(x)
    assert pred.dtype == dtype
    assert np.sqrt(np.mean((pred - y) ** 2)) < 0.05


def test_multioutput_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    Y = np.column_stack([X[:, 0] * X[:, 1], np.tanh(X[:, 2]), X.sum(axis=1)])
    est = _quiet(SGDMLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=300,
                                 random_state=0).fit, X, Y)
    assert est.predict(X).shape == (300, 3) and est.n_outputs_ == 3
    assert est.score(X, Y) > 0.9


def test_multilabel_comparable_to_sklearn_mlp():
    X, Y = make_multilabel_classification(400, n_features=10, n_classes=4, random_state=0)
    X_train, X_test, Y_train, Y_test = train_test_split(X, Y, random_state=0)
    settings = dict(hidden_layer_sizes=(32,), max_iter=100, random_state=0)
    ref = _quiet(MLPClassifier(**settings).fit, X_train, Y_train)
    est = _quiet(SGDMLPClassifier(**settings).fit, X_train, Y_train)
    assert est.predict(X_test).shape == Y_test.shape
    assert est.predict_proba(X_test).shape == Y_test.shape
    assert est.score(X_test, Y_test) >= ref.score(X_test, Y_test) - 0.05


def test_one_cycle_schedule_and_clipping_train():
    X, y = make_moons(400, noise=0.1, random_state=1)
    est = _quiet(SGDMLPClassifier(hidden_layer_sizes=(32, 32), optimizer="momentum",
                                  learning_rate=OneCycleLR(max_lr=0.2), clip_grad_norm=1.0,
                                  max_iter=60, random_state=0).fit, X, y)
    assert est.score(X, y) > 0.95


# ---- estimator API ------------------------------------------------------------------------------

def _blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])
    return X, y


def test_partial_fit_epochs_equal_fit_without_shuffling():
    X, y = _blobs()
    params = dict(hidden_layer_sizes=(10,), shuffle=False, random_state=0, batch_size=32)
    full = _quiet(SGDMLPClassifier(max_iter=4, tol=0.0, n_iter_no_change=100, **params).fit, X, y)
    inc = SGDMLPClassifier(**params)
    for _ in range(4):
        inc.partial_fit(X, y, classes=[0, 1, 2])
    for got, want in zip(inc.coefs_ + inc.intercepts_, full.coefs_ + full.intercepts_,
                         strict=True):
        assert_allclose(got, want, rtol=1e-12)
    assert_allclose(inc.loss_curve_, full.loss_curve_, rtol=1e-12)
    assert inc.t_ == full.t_ == 4 * len(X)
    assert inc.n_iter_ == 1


def test_partial_fit_class_checks():
    X, y = _blobs()
    est = SGDMLPClassifier(hidden_layer_sizes=(5,))
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        est.partial_fit(X, y)
    est.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert est.n_outputs_ == 3  # softmax over all announced classes
    with pytest.raises(ValueError, match="classes not in"):
        est.partial_fit(X, y + 5)
    with pytest.raises(ValueError, match="early_stopping"):
        SGDMLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_warm_start_continues_from_the_fitted_weights():
    X, y = _blobs()
    est = _quiet(SGDMLPClassifier(hidden_layer_sizes=(10,), max_iter=5, random_state=0).fit, X, y)
    first_curve = list(est.loss_curve_)
    est.set_params(warm_start=True, max_iter=3)
    _quiet(est.fit, X, y)
    assert est.loss_curve_[:5] == first_curve and len(est.loss_curve_) == 8
    assert est.n_iter_ == 3
    assert est.loss_curve_[5] < first_curve[0]  # did not restart from the initial weights
    cold = _quiet(SGDMLPClassifier(hidden_layer_sizes=(10,), max_iter=3, random_state=0).fit, X, y)
    assert len(cold.loss_curve_) == 3
    with pytest.raises(ValueError, match="same classes"):
        est.fit(X[y < 2], y[y < 2])


def test_early_stopping_attributes():
    X, y = _blobs(400)
    est = _quiet(SGDMLPClassifier(hidden_layer_sizes=(16,), early_stopping=True, max_iter=50,
                                  n_iter_no_change=3, random_state=0).fit, X, y)
    assert est.best_loss_ is None
    assert len(est.validation_scores_) == est.n_iter_ == len(est.loss_curve_)
    assert est.best_validation_score_ == max(est.validation_scores_)
    reg = _quiet(SGDMLPRegressor(hidden_layer_sizes=(16,), early_stopping=True, max_iter=30,
                                 random_state=0).fit, X, X[:, 0] - X[:, 1])
    assert -1.0 < reg.validation_scores_[0] <= 1.0  # R^2
    assert reg.best_validation_score_ == max(reg.validation_scores_)


def test_no_hidden_layer_is_a_linear_model():
    X, y = _blobs()
    est = _quiet(SGDMLPClassifier(hidden_layer_sizes=(), learning_rate_init=0.05, max_iter=100,
                                  random_state=0).fit, X, y)
    assert est.n_layers_ == 2 and est.coefs_[0].shape == (4, 3)
    logits = X @ est.coefs_[0] + est.intercepts_[0]
    assert_allclose(est.predict_proba(X), np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    assert est.score(X, y) > 0.9


def test_binary_and_single_class():
    X, y = _blobs()
    labels = np.array(["no", "yes"])[(y > 0).astype(int)]
    est = _quiet(SGDMLPClassifier(hidden_layer_sizes=(8,), random_state=0).fit, X, labels)
    assert set(est.predict(X)) <= {"no", "yes"}
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert_array_equal(est.classes_[np.argmax(proba, axis=1)], est.predict(X))
    one = _quiet(SGDMLPClassifier(hidden_layer_sizes=(4,), max_iter=5).fit, X, np.ones(len(X)))
    assert_array_equal(one.predict(X[:3]), [1, 1, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_end_to_end(dtype):
    X, y = _blobs()
    est = _quiet(SGDMLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit,
                 X.astype(dtype), y)
    assert all(c.dtype == dtype for c in est.coefs_ + est.intercepts_)
    assert est.predict_proba(X.astype(dtype)).dtype == dtype


def test_float32_fit_tracks_float64_fit():
    X, y = _blobs()
    params = dict(hidden_layer_sizes=(8,), max_iter=10, random_state=0)
    e64 = _quiet(SGDMLPClassifier(**params).fit, X, y)
    e32 = _quiet(SGDMLPClassifier(**params).fit, X.astype(np.float32), y)
    assert_allclose(e32.loss_curve_, e64.loss_curve_, rtol=1e-4)


def test_sparse_input_matches_dense():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(150, 30)) * (rng.random((150, 30)) < 0.2)
    y = (X[:, :5].sum(axis=1) > 0).astype(int)
    params = dict(hidden_layer_sizes=(12,), max_iter=8, random_state=0)
    dense = _quiet(SGDMLPClassifier(**params).fit, X, y)
    for fmt in (sp.csr_matrix, sp.csc_matrix, sp.csr_array):
        sparse = _quiet(SGDMLPClassifier(**params).fit, fmt(X), y)
        for got, want in zip(sparse.coefs_, dense.coefs_, strict=True):
            assert_allclose(got, want, rtol=1e-10, atol=1e-13)
        assert_allclose(sparse.predict_proba(fmt(X)), dense.predict_proba(X), rtol=1e-10)


def test_attributes_like_sklearn():
    X, y = _blobs()
    est = _quiet(SGDMLPClassifier(hidden_layer_sizes=(7, 5), max_iter=3, random_state=0).fit, X, y)
    ref = _quiet(MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=3, random_state=0).fit, X, y)
    for name in ("n_layers_", "n_outputs_", "out_activation_", "n_iter_", "t_"):
        assert getattr(est, name) == getattr(ref, name), name
    assert [c.shape for c in est.coefs_] == [c.shape for c in ref.coefs_]
    assert [b.shape for b in est.intercepts_] == [b.shape for b in ref.intercepts_]
    assert est.loss_ == est.loss_curve_[-1] and est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None and est.best_validation_score_ is None


def test_verbose_prints_epoch_losses(capfd):
    X, y = _blobs(50)
    _quiet(SGDMLPClassifier(hidden_layer_sizes=(4,), max_iter=2, verbose=True).fit, X, y)
    out = capfd.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out
    assert "Validation score" not in out
    X, y = _blobs(100)
    _quiet(SGDMLPClassifier(hidden_layer_sizes=(4,), max_iter=2, early_stopping=True,
                            verbose=True).fit, X, y)
    assert "Validation score: " in capfd.readouterr().out


def test_pickle_round_trip_keeps_predictions_and_stamps_version():
    X, y = _blobs()
    est = _quiet(SGDMLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit, X, y)
    state = est.__getstate__()
    assert state["_gdsolve_version"] == gdsolve.__version__
    again = pickle.loads(pickle.dumps(est))
    assert_array_equal(again.predict_proba(X), est.predict_proba(X))


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes"),
        (dict(hidden_layer_sizes="wide"), "hidden_layer_sizes"),
        (dict(activation="softplus"), "activation"),
        (dict(alpha=-1.0), "alpha"),
        (dict(learning_rate_init=0.0), "learning_rate_init"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size="half"), "batch_size"),
        (dict(max_iter=0), "max_iter"),
        (dict(tol=-1.0), "tol"),
        (dict(n_iter_no_change=0), "n_iter_no_change"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(clip_grad_norm=-2.0), "clip_grad_norm"),
        (dict(optimizer="adamax"), "optimizer"),
        (dict(learning_rate="linear"), "learning_rate"),
        (dict(device="tpu"), "device"),
        (dict(shuffle="yes"), "shuffle"),
    ],
)
def test_invalid_parameters_raise_value_error(params, match):
    X, y = _blobs(30)
    with pytest.raises(ValueError, match=match):
        SGDMLPClassifier(**params).fit(X, y)


def test_batch_size_larger_than_data_warns_and_clips():
    X, y = _blobs(30)
    with pytest.warns(UserWarning, match="batch_size"):
        _quiet(SGDMLPRegressor(hidden_layer_sizes=(3,), batch_size=100, max_iter=2).fit,
               X, y.astype(float))


def test_matches_a_pytorch_loop_step_for_step():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 5))
    y = rng.integers(0, 3, 40)
    alpha, batch = 1e-2, 16
    est = _quiet(SGDMLPClassifier(hidden_layer_sizes=(7,), alpha=alpha, batch_size=batch,
                                  max_iter=3, shuffle=False, tol=0.0, n_iter_no_change=50,
                                  random_state=0).fit, X, y)
    # the same initial weights, then PyTorch's own Adam and cross-entropy
    rs = np.random.RandomState(0)
    layers = []
    for fan_in, fan_out in ((5, 7), (7, 3)):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        lin = torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(rs.uniform(-bound, bound, (fan_in, fan_out)).T))
            lin.bias.copy_(torch.from_numpy(rs.uniform(-bound, bound, fan_out)))
        layers.append(lin)
    with torch.no_grad():  # the output bias starts at the log class frequencies (docs/mlp.md)
        layers[1].bias.copy_(torch.from_numpy(np.log(np.bincount(y, minlength=3) / len(y))))
    model = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(3):
        for start in range(0, 40, batch):
            xb, yb = Xt[start:start + batch], yt[start:start + batch]
            penalty = sum((lin.weight ** 2).sum() for lin in layers)
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss = loss + 0.5 * alpha * penalty / len(xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for got, lin in zip(est.coefs_, layers, strict=True):
        assert_allclose(got, lin.weight.detach().numpy().T, rtol=1e-9, atol=1e-12)
