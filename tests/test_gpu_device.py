"""What only a CUDA device can show about the GPU path (marked `gpu`; every test skips, naming
why, when CuPy sees no device): CuPy arrays in give CuPy arrays out, a fit on CuPy input never
copies X to the host (device-to-host copies counted at cupy.asnumpy, the one door the GPU code
uses, and at cupyx sparse .get), epochs after the second replay a CUDA graph, mixed precision
reaches float32's quality, and a GPU-fitted model pickles and predicts on a machine without a
GPU; Muon and Sophia as well (and their epochs, one graph per pattern of Sophia's refreshing
batches, replay the eager model). The parity of GPU and CPU fits over the estimator matrix,
Muon and Sophia included, is tests/test_gpu_path.py's (it runs on the device too under
`pytest -m gpu`).

Run them all: `pytest -m gpu tests` (docs/gpu.md).
"""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification

from gdsolve import SGDLinearRegression, SGDLogistic, SGDMLPClassifier, SGDMLPRegressor
from gdsolve.gpu import backend
from gdsolve.optim import Muon, Sophia

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not backend.cuda_available(),
                       reason="needs a CUDA device; CuPy sees none (gdsolve.gpu.device_status())"),
]


@pytest.fixture(scope="module")
def cp():
    import cupy

    return cupy


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(20000, 64, n_informative=24, n_classes=3, random_state=0)
    return X.astype(np.float32), y


@pytest.fixture
def epoch_graphs(monkeypatch):
    """Records every gpu.graphs.EpochGraph the test's fits create (.made); .go_eager() makes
    the later ones run kernel by kernel (no capture)."""
    from gdsolve.gpu import graphs

    class Recorder:
        made = []
        eager = False

    real_init = graphs.EpochGraph.__init__

    def init(self, runtime):
        real_init(self, runtime)
        if Recorder.eager:
            self.enabled = False
        Recorder.made.append(self)

    Recorder.made = []
    Recorder.go_eager = staticmethod(lambda: setattr(Recorder, "eager", True))
    monkeypatch.setattr(graphs.EpochGraph, "__init__", init)
    return Recorder


def _quiet_fit(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, **kw)


class _Transfers:
    """Counts device-to-host array copies (calls and bytes) through cupy.asnumpy and cupyx
    sparse .get while installed."""

    def __init__(self, monkeypatch, cp):
        import cupyx.scipy.sparse as cps

        self.calls, self.sizes = 0, []
        real_asnumpy = cp.asnumpy

        def asnumpy(a, *args, **kwargs):
            out = real_asnumpy(a, *args, **kwargs)
            self.calls += 1
            self.sizes.append(np.asarray(out).nbytes)
            return out

        monkeypatch.setattr(cp, "asnumpy", asnumpy)
        for cls in (cps.csr_matrix, cps.csc_matrix, cps.coo_matrix):
            real_get = cls.get

            def get(m, *args, _real=real_get, **kwargs):
                out = _real(m, *args, **kwargs)
                self.calls += 1
                self.sizes.append(out.data.nbytes)
                return out

            monkeypatch.setattr(cls, "get", get)


def test_cupy_in_gives_cupy_out_and_numpy_in_gives_numpy_out(cp, problem):
    X, y = problem
    Xd, yd = cp.asarray(X), cp.asarray(y)
    clf = _quiet_fit(SGDLogistic(optimizer="adam", batch_size=1024, max_iter=3, tol=None,
                                 random_state=0, device="cuda"), Xd, yd)
    assert isinstance(clf.coef_, np.ndarray) and isinstance(clf.intercept_, np.ndarray)
    for method in ("predict", "decision_function", "predict_proba", "predict_log_proba"):
        on_device = getattr(clf, method)(Xd)
        on_host = getattr(clf, method)(X)
        assert isinstance(on_device, cp.ndarray), method
        assert isinstance(on_host, np.ndarray), method
        np.testing.assert_allclose(cp.asnumpy(on_device), on_host, rtol=1e-4, atol=1e-5)

    reg = _quiet_fit(SGDLinearRegression(optimizer="adam", batch_size=512, max_iter=3, tol=None,
                                         random_state=0, device="cuda"), Xd, yd.astype(cp.float32))
    assert isinstance(reg.predict(Xd), cp.ndarray) and isinstance(reg.predict(X), np.ndarray)

    mlp = _quiet_fit(SGDMLPClassifier(hidden_layer_sizes=(32,), max_iter=3, tol=0.0,
                                      random_state=0, device="cuda"), Xd, yd)
    assert isinstance(mlp.coefs_[0], np.ndarray)
    assert isinstance(mlp.predict(Xd), cp.ndarray)
    assert isinstance(mlp.predict_proba(Xd), cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(mlp.predict(Xd)), mlp.predict(X))
    mreg = _quiet_fit(SGDMLPRegressor(hidden_layer_sizes=(16,), max_iter=2, tol=0.0,
                                      random_state=0, device="cuda"), Xd, Xd[:, :2])
    assert isinstance(mreg.predict(Xd), cp.ndarray)
    for opt in (Muon(lr=0.02), Sophia(lr=0.01)):
        other = _quiet_fit(SGDMLPClassifier(hidden_layer_sizes=(32, 16), optimizer=opt,
                                            max_iter=2, tol=0.0, random_state=0,
                                            device="cuda"), Xd, yd)
        assert isinstance(other.coefs_[0], np.ndarray)
        assert isinstance(other.predict_proba(Xd), cp.ndarray)


@pytest.mark.parametrize("make", [
    lambda: SGDLogistic(optimizer="adam", batch_size=1024, max_iter=6, tol=None,
                        random_state=0, device="cuda"),
    lambda: SGDLogistic(batch_size="full", max_iter=6, tol=None, device="cuda"),
    lambda: SGDMLPClassifier(hidden_layer_sizes=(32,), max_iter=6, tol=0.0, random_state=0,
                             device="cuda"),
    lambda: SGDMLPClassifier(hidden_layer_sizes=(32, 16), optimizer=Muon(lr=0.02), max_iter=6,
                             tol=0.0, random_state=0, device="cuda"),
    lambda: SGDMLPClassifier(hidden_layer_sizes=(32,), optimizer=Sophia(lr=0.01, k=3),
                             max_iter=6, tol=0.0, random_state=0, device="cuda"),
    lambda: SGDLogistic(optimizer=Sophia(lr=0.01, k=2, estimator="exact"), batch_size="full",
                        max_iter=6, tol=None, device="cuda"),
    lambda: SGDLogistic(optimizer=Sophia(lr=0.01, k=3), batch_size=1024, max_iter=6, tol=None,
                        random_state=0, device="cuda"),
], ids=["linear-mini-batch", "linear-full-batch", "mlp", "mlp-muon", "mlp-sophia",
        "linear-full-sophia-exact", "linear-mini-batch-sophia-gnb"])
def test_a_fit_on_cupy_input_never_copies_X_to_the_host(monkeypatch, cp, problem, make):
    X, y = problem
    Xd, yd = cp.asarray(X), cp.asarray(y)
    transfers = _Transfers(monkeypatch, cp)
    est = _quiet_fit(make(), Xd, yd)
    assert est.n_iter_ == 6
    # y once (n labels, 1/8 of X here), then per epoch the loss sums, the parameters and the
    # optimizer slots: nothing of X's size, and not X piece by piece either
    assert max(transfers.sizes, default=0) <= y.shape[0] * 8
    assert sum(transfers.sizes) < Xd.nbytes / 4
    assert transfers.calls <= 12 * est.n_iter_ + 20


def test_epochs_after_the_second_replay_a_cuda_graph(epoch_graphs, cp, problem):
    made = epoch_graphs.made
    X, y = problem
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed capture warns
        SGDLogistic(optimizer="adam", batch_size=1024, max_iter=4, tol=None, random_state=0,
                    device="cuda").fit(cp.asarray(X), cp.asarray(y))
        SGDMLPClassifier(hidden_layer_sizes=(32,), max_iter=4, tol=0.0, random_state=0,
                         device="cuda").fit(cp.asarray(X), cp.asarray(y))
    assert len(made) == 2
    for graph in made:
        assert graph.enabled and graph.graph is not None and graph.epochs == 4


def test_graph_replay_gives_the_eager_model(epoch_graphs, cp, problem):
    X, y = problem

    def fit():
        return SGDLogistic(optimizer="adam", batch_size=1000, max_iter=4, tol=None,
                           random_state=0, device="cuda").fit(cp.asarray(X), cp.asarray(y))

    replayed = fit()
    epoch_graphs.go_eager()
    kernel_by_kernel = fit()
    np.testing.assert_allclose(replayed.coef_, kernel_by_kernel.coef_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    # 20,000 rows in batches of 1,000 (20 a epoch), k = 3: the refreshing batches change from
    # epoch to epoch, so several graphs are recorded
    lambda: SGDMLPClassifier(hidden_layer_sizes=(32,), optimizer=Sophia(lr=0.01, k=3),
                             batch_size=1000, max_iter=5, tol=0.0, random_state=0,
                             device="cuda"),
    lambda: SGDLogistic(optimizer=Sophia(lr=0.01, k=3, estimator="exact"), batch_size=1000,
                        max_iter=5, tol=None, random_state=0, device="cuda"),
    lambda: SGDMLPClassifier(hidden_layer_sizes=(32, 16), optimizer=Muon(lr=0.02),
                             batch_size=1000, max_iter=5, tol=0.0, random_state=0,
                             device="cuda"),
], ids=["mlp-sophia", "linear-sophia-exact", "mlp-muon"])
def test_muon_and_sophia_graphs_replay_the_eager_model(epoch_graphs, cp, problem, make):
    X, y = problem
    made = epoch_graphs.made
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed capture warns
        replayed = make().fit(cp.asarray(X), cp.asarray(y))
    (graph,) = made
    assert graph.enabled and graph.graphs
    if isinstance(replayed.optimizer, Sophia):
        assert len(graph.graphs) >= 2  # one per pattern of refreshing batches

    epoch_graphs.go_eager()
    kernel_by_kernel = _quiet_fit(make(), cp.asarray(X), cp.asarray(y))
    first = (lambda m: m.coefs_[0]) if hasattr(replayed, "coefs_") else (lambda m: m.coef_)
    np.testing.assert_allclose(first(replayed), first(kernel_by_kernel), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("estimator", ["logistic", "mlp"])
def test_mixed_precision_reaches_float32_quality(cp, problem, precision, estimator):
    if precision == "bfloat16":
        pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes")
    X, y = problem
    Xd, yd = cp.asarray(X), cp.asarray(y)
    if estimator == "logistic":
        def make(**kw):
            return SGDLogistic(optimizer="adam", eta0=0.01, learning_rate="constant",
                               batch_size=256, max_iter=8, tol=None, random_state=0,
                               device="cuda", **kw)
    else:
        def make(**kw):
            return SGDMLPClassifier(hidden_layer_sizes=(64,), batch_size=256, max_iter=8,
                                    tol=0.0, random_state=0, device="cuda", **kw)
    full = _quiet_fit(make(), Xd, yd)
    mixed = _quiet_fit(make(mixed_precision=precision), Xd, yd)
    # X rounded to 11 (float16) or 8 (bfloat16) significant bits: the training objective within
    # 1% of float32's and the accuracy within a point
    assert abs(mixed.loss_curve_[-1] - full.loss_curve_[-1]) <= 1e-2 * full.loss_curve_[-1]
    assert abs(mixed.score(X, y) - full.score(X, y)) <= 0.01


def test_a_gpu_fitted_model_predicts_on_a_machine_without_a_gpu(cp, problem, tmp_path):
    X, y = problem
    models = {
        "logistic": _quiet_fit(SGDLogistic(optimizer="adam", batch_size=1024, max_iter=3,
                                           tol=None, random_state=0, device="cuda"),
                               cp.asarray(X), cp.asarray(y)),
        "mlp": _quiet_fit(SGDMLPClassifier(hidden_layer_sizes=(32,), max_iter=3, tol=0.0,
                                           random_state=0, device="cuda"),
                          cp.asarray(X), cp.asarray(y)),
    }
    path = tmp_path / "models.pkl"
    path.write_bytes(pickle.dumps(models))
    np.save(tmp_path / "X.npy", X[:500])
    expected = {name: m.predict_proba(X[:500]) for name, m in models.items()}
    # a fresh interpreter that sees no device: unpickle and predict there
    code = (
        "import pickle, sys, numpy as np\n"
        "from gdsolve.gpu import backend\n"
        "assert not backend.cuda_available()\n"
        f"models = pickle.load(open({str(path)!r}, 'rb'))\n"
        f"X = np.load({str(tmp_path / 'X.npy')!r})\n"
        f"np.savez({str(tmp_path / 'out.npz')!r}, "
        "**{n: m.predict_proba(X) for n, m in models.items()})\n"
    )
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120, cwd=tmp_path)
    out = np.load(tmp_path / "out.npz")
    for name, proba in expected.items():
        np.testing.assert_allclose(out[name], proba, rtol=1e-6, atol=1e-7)


def test_cupy_csr_input_fits_on_the_device_like_dense(cp, problem):
    import cupyx.scipy.sparse as cps

    X, y = problem
    Xs = X.copy()
    Xs[np.abs(Xs) < 1.0] = 0.0
    make = lambda: SGDLogistic(batch_size="full", max_iter=5, tol=None, device="cuda")  # noqa: E731
    sparse = _quiet_fit(make(), cps.csr_matrix(cp.asarray(Xs)), cp.asarray(y))
    dense = _quiet_fit(make(), cp.asarray(Xs), cp.asarray(y))
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-4, atol=1e-5)
