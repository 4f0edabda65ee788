"""The estimators as scikit-learn users meet them: pipelines, grid search, pandas / lists /
F-ordered input, partial_fit's messages, parameter errors, class weights, probabilities,
optimizer and schedule objects, warm starts and pickling.
"""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_iris, make_regression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import gdsolve
import gdsolve.linear_model as linear_model
from gdsolve import SGDLinearRegression, SGDLogistic
from gdsolve.optim import Adam
from gdsolve.schedules import CosineAnnealingLR, Warmup

# short fits on purpose: stopping before convergence is expected here
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def test_exported_from_the_package():
    assert gdsolve.SGDLogistic is SGDLogistic
    assert {"SGDLogistic", "SGDLinearRegression"} <= set(gdsolve.__all__)


def test_pipeline_and_grid_search(iris):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), SGDLogistic(random_state=0, max_iter=50))
    grid = GridSearchCV(pipe, {
        "sgdlogistic__optimizer": ["sgd", "adam"],
        "sgdlogistic__batch_size": [1, 16, "full"],
        "sgdlogistic__learning_rate": ["optimal", "cosine"],
        "sgdlogistic__alpha": [1e-4, 1e-2],
    }, cv=3)
    grid.fit(X, y)
    assert grid.best_score_ > 0.9
    assert grid.predict(X).shape == (150,)
    reg = GridSearchCV(SGDLinearRegression(random_state=0, max_iter=50),
                       {"loss": ["squared", "huber"], "penalty": [None, "l1", "elasticnet"]},
                       cv=3)
    Xr, yr = make_regression(120, 5, noise=1.0, random_state=0)
    reg.fit(Xr, yr)
    assert reg.best_score_ > 0.9


def test_pandas_lists_and_fortran_input(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    df = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    from_df = SGDLogistic(random_state=0, max_iter=20, tol=None).fit(df, pd.Series(y))
    assert list(from_df.feature_names_in_) == ["sl", "sw", "pl", "pw"]
    from_list = SGDLogistic(random_state=0, max_iter=20, tol=None).fit(X.tolist(), y.tolist())
    from_f = SGDLogistic(random_state=0, max_iter=20, tol=None).fit(np.asfortranarray(X), y)
    assert_array_equal(from_df.coef_, from_list.coef_)
    assert_array_equal(from_df.coef_, from_f.coef_)
    df32 = df.astype(np.float32)
    assert SGDLogistic(max_iter=5, tol=None).fit(df32, y).coef_.dtype == np.float32


def test_partial_fit_messages(iris):
    X, y = iris
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        SGDLogistic().partial_fit(X, y)
    with pytest.raises(ValueError, match="classes should include all valid labels"):
        SGDLogistic().partial_fit(X, y, classes=[0, 1])
    est = SGDLogistic().partial_fit(X[:50], y[:50], classes=[0, 1, 2])
    assert est.coef_.shape == (3, 4)
    with pytest.raises(ValueError, match="X has 3 features"):
        est.partial_fit(X[:, :3], y)
    reg = SGDLinearRegression().partial_fit(X, y.astype(float))
    assert reg.n_iter_ == 1 and reg.t_ == 151


@pytest.mark.parametrize("params,match", [
    ({"penalty": "l3"}, "penalty"),
    ({"alpha": -1.0}, "alpha"),
    ({"l1_ratio": 2.0}, "l1_ratio"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": "half"}, "batch_size"),
    ({"max_iter": 0}, "max_iter"),
    ({"optimizer": "newton"}, "optimizer"),
    ({"learning_rate": "fast"}, "learning_rate"),
    ({"learning_rate": "constant", "eta0": 0.0}, "eta0"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"average": -1}, "average"),
    ({"clip_grad_norm": 0.0}, "clip_grad_norm"),
    ({"device": "tpu"}, "device"),
    ({"multi_class": "auto"}, "multi_class"),
    ({"loss": "hinge"}, "loss"),
    ({"learning_rate": "optimal", "alpha": 0.0}, "alpha"),
])
def test_bad_parameters_raise_clear_errors(iris, params, match):
    X, y = iris
    with pytest.raises(ValueError, match=match):
        SGDLogistic(**params).fit(X, y)


def test_one_label_is_rejected(iris):
    X, _ = iris
    with pytest.raises(ValueError, match="class"):
        SGDLogistic().fit(X, np.zeros(150))


@pytest.mark.parametrize("multi_class", ["multinomial", "ovr"])
def test_probabilities(iris, multi_class):
    X, y = iris
    est = SGDLogistic(multi_class=multi_class, random_state=0, max_iter=30).fit(X, y)
    proba = est.predict_proba(X)
    assert proba.shape == (150, 3)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert_allclose(np.exp(est.predict_log_proba(X)), proba, rtol=1e-10, atol=1e-300)
    assert_array_equal(est.predict(X), est.classes_[est.decision_function(X).argmax(axis=1)])
    if multi_class == "multinomial":  # (saturated one-vs-rest sigmoids may tie at 1.0)
        assert_array_equal(est.predict(X), est.classes_[proba.argmax(axis=1)])
    if multi_class == "ovr":
        assert isinstance(est.loss_curve_, list) and len(est.loss_curve_) == 3
    else:
        assert est.loss_curve_.ndim == 1


@pytest.mark.parametrize("labels", [
    np.array([3, 1, 3, 7, 1, 7]), np.array([-3, -1, -3], dtype=np.int8),
    np.array([True, False, True]), np.array([5, 5, 9], dtype=np.uint16),
    np.array([-5, 2 ** 40, 7]), np.array([2 ** 64 - 1, 2 ** 64 - 3, 2 ** 64 - 1], dtype=np.uint64),
    np.array(["b", "a", "b"]), np.array([2.0, 1.0, 2.0])])
def test_label_encoding_equals_numpy_unique(labels):
    classes, codes = linear_model._encode_labels(labels)
    expected_classes, expected_codes = np.unique(labels, return_inverse=True)
    assert_array_equal(classes, expected_classes)
    assert classes.dtype == expected_classes.dtype
    assert_array_equal(codes, expected_codes)


def test_integer_labels_keep_their_checks(iris):
    # integer labels bypass check_classification_targets; partial_fit still rejects new ones
    X, y = iris
    est = SGDLogistic(random_state=0, max_iter=5, tol=None).fit(X, y + 10)
    assert_array_equal(est.classes_, [10, 11, 12])
    with pytest.raises(ValueError, match="classes should include all valid labels"):
        est.partial_fit(X, y + 11)
    with pytest.raises(ValueError, match="Unknown label type"):
        SGDLogistic().fit(X, y + 0.5)


def test_binary_string_labels(iris):
    X, y = iris
    labels = np.array(["setosa", "other"])[(y > 0).astype(int)]
    est = SGDLogistic(random_state=0).fit(X, labels)
    assert est.coef_.shape == (1, 4) and set(est.classes_) == {"setosa", "other"}
    assert est.score(X, labels) > 0.95
    d = est.decision_function(X)
    assert_array_equal(est.predict(X), est.classes_[(d > 0).astype(int)])


def test_class_weight_balanced_equals_explicit_sample_weights(iris):
    X, y = iris
    y = np.where(y == 2, 1, y)  # classes of 50 and 100 samples
    balanced = SGDLogistic(class_weight="balanced", random_state=0, max_iter=10,
                           tol=None).fit(X, y)
    weights = np.where(y == 0, 150 / (2 * 50), 150 / (2 * 100))
    explicit = SGDLogistic(random_state=0, max_iter=10, tol=None).fit(X, y, sample_weight=weights)
    assert_allclose(balanced.coef_, explicit.coef_, rtol=1e-12)
    as_dict = SGDLogistic(class_weight={0: 1.5, 1: 0.75}, random_state=0, max_iter=10,
                          tol=None).fit(X, y)
    assert_allclose(as_dict.coef_, explicit.coef_, rtol=1e-12)


def test_optimizer_and_schedule_objects(iris):
    X, y = iris
    X = StandardScaler().fit_transform(X)
    est = SGDLogistic(optimizer=Adam(lr=0.05), learning_rate=Warmup(CosineAnnealingLR(), 20),
                      batch_size=16, max_iter=60, tol=None, random_state=0).fit(X, y)
    assert est.score(X, y) > 0.9
    for name in ["step", "multistep", "exponential", "warm_restarts", "one_cycle", "cyclic",
                 "plateau", "adaptive", "warmup_cosine"]:
        m = SGDLogistic(optimizer="momentum", learning_rate=name, eta0=0.01, batch_size=8,
                        max_iter=15, random_state=0).fit(X, y)
        assert m.score(X, y) > 0.8, name
    for name in ["adagrad", "rmsprop", "adamw", "amsgrad", "nadam", "radam", "lion"]:
        m = SGDLogistic(optimizer=name, batch_size=8, max_iter=15, random_state=0).fit(X, y)
        assert m.score(X, y) > 0.8, name


def test_warm_start_continues_from_the_previous_coefficients():
    X, y = make_regression(200, 4, noise=0.1, random_state=0)
    cold = SGDLinearRegression(batch_size="full", max_iter=5, tol=None).fit(X, y)
    warm = SGDLinearRegression(batch_size="full", max_iter=5, tol=None, warm_start=True)
    warm.fit(X, y)
    assert_allclose(warm.coef_, cold.coef_)
    first = warm.loss_curve_.copy()
    warm.fit(X, y)
    assert warm.loss_curve_[0] < first[-1] + 1e-12  # started where the last fit ended


def test_fit_intercept_false_and_sample_weight_semantics():
    X, y = make_regression(100, 3, noise=0.1, random_state=1)
    est = SGDLinearRegression(fit_intercept=False, max_iter=20, tol=None).fit(X, y)
    assert_array_equal(est.intercept_, [0.0])
    # (1/n) sum s_i loss_i + alpha R: zero weights on half the rows == the other half alone
    # with twice the alpha (the mean is over all n rows, as in scikit-learn's SGD).
    sw = np.r_[np.zeros(50), np.ones(50)]
    kwargs = {"batch_size": "full", "optimizer": "nesterov", "max_iter": 2000, "tol": None}
    weighted = SGDLinearRegression(alpha=0.1, **kwargs).fit(X, y, sample_weight=sw)
    half = SGDLinearRegression(alpha=0.2, **kwargs).fit(X[50:], y[50:])
    assert_allclose(weighted.coef_, half.coef_, rtol=1e-8)
    assert_allclose(weighted.intercept_, half.intercept_, rtol=1e-8, atol=1e-10)


def test_pickle_round_trip_stamps_the_version(iris):
    X, y = iris
    est = SGDLogistic(random_state=0, max_iter=10).fit(X, y)
    blob = pickle.dumps(est)
    assert b"_gdsolve_version" in blob
    again = pickle.loads(blob)
    assert_array_equal(again.predict(X), est.predict(X))
    again.partial_fit(X, y)  # the loop state survived the round trip


def test_sparse_input_sparse_tag():
    X, y = make_regression(80, 6, random_state=0)
    Xs = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0))
    est = SGDLinearRegression(max_iter=10, tol=None, random_state=0).fit(Xs, y)
    assert est.__sklearn_tags__().input_tags.sparse
    assert_allclose(est.predict(Xs), est.predict(Xs.toarray()))
