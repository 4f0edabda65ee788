"""Data-parallel fits on a two-worker Dask LocalCluster of processes (gdsolve.distributed):
sync_gradient with full batch follows the single-machine full-batch trajectory to float
tolerance (every optimizer, sample weights, class weights, multinomial and one-vs-rest, the MLP);
local_sgd reaches the single-machine objective; no block reaches the client (a trap in the
client's deserializer, and the bytes the workers send out); a worker killed mid-fit changes
nothing; bad input gets the single machine's errors from the first pass and leaves no partial
model; predictions are lazy and computed blockwise; `import gdsolve` never imports Dask.
"""

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression

import gdsolve.linear_model as linear_model
from gdsolve import SGDLinearRegression, SGDLogistic, SGDMLPClassifier, SGDMLPRegressor, reference

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=50)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def binary():
    X, y = make_classification(12000, 12, n_informative=6, random_state=0)
    return (X - X.mean(0)) / X.std(0), y


@pytest.fixture(scope="module")
def three_classes():
    X, y = make_classification(6000, 10, n_informative=6, n_classes=3, random_state=1)
    return (X - X.mean(0)) / X.std(0), y


def chunked(*arrays, chunks):
    return [None if a is None else da.from_array(a, chunks=(chunks,) + a.shape[1:])
            for a in arrays]


def test_import_gdsolve_never_imports_dask(tmp_path):
    code = ("import sys, numpy as np, gdsolve; "
            "gdsolve.SGDLogistic(max_iter=2, tol=None).fit(np.eye(4), [0, 1, 0, 1]); "
            "assert not any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules)")
    # cwd away from the checkout: the fresh interpreter must import the installed package
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


# ---- sync_gradient, full batch: the single machine's trajectory ---------------------------------

FULL = dict(batch_size="full", tol=None, max_iter=25)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop",
                                       "adam", "adamw", "amsgrad", "nadam", "radam", "lion"])
def test_sync_gradient_full_batch_follows_one_machine_for_every_optimizer(client, three_classes,
                                                                          optimizer):
    X, y = three_classes
    sw = np.random.RandomState(0).uniform(0.2, 2.0, X.shape[0])
    # scikit-learn's zero start: at the best constant the full-batch intercept gradient is zero
    # up to round-off, which Lion's sign and the small eps of Adagrad / RMSprop / Adam magnify,
    # so two summation orders would agree less closely than this test asks (docs/linear.md)
    kw = dict(FULL, max_iter=12, optimizer=optimizer, learning_rate="constant", eta0=0.05,
              penalty="l2", alpha=1e-3, random_state=0, intercept_start="sklearn")
    one = SGDLogistic(**kw).fit(X, y, sample_weight=sw)
    dX, dy, dsw = chunked(X, y, sw, chunks=1500)
    dist = SGDLogistic(distributed="sync_gradient", **kw).fit(dX, dy, sample_weight=dsw)
    np.testing.assert_allclose(dist.loss_curve_, one.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(dist.coef_, one.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dist.intercept_, one.intercept_, rtol=1e-9, atol=1e-12)
    assert dist.t_ == one.t_ and dist.n_iter_ == one.n_iter_


@pytest.mark.parametrize("case", ["ovr-class-weight-l1", "binary-1/L-average", "regression-huber",
                                  "float32", "sparse-csr"])
def test_sync_gradient_full_batch_follows_one_machine(client, three_classes, binary, case):
    est_cls, (X, y), kw = {
        "ovr-class-weight-l1": (SGDLogistic, three_classes,
                                dict(multi_class="ovr", class_weight="balanced", penalty="l1",
                                     alpha=1e-3, learning_rate="constant", eta0=0.2)),
        "binary-1/L-average": (SGDLogistic, binary, dict(average=True)),  # 'optimal' -> 1/L
        "regression-huber": (SGDLinearRegression, (None, None),
                             dict(loss="huber", epsilon=1.0, learning_rate="constant", eta0=0.1)),
        "float32": (SGDLogistic, binary, dict(learning_rate="constant", eta0=0.5)),
        "sparse-csr": (SGDLogistic, binary, dict(learning_rate="constant", eta0=0.5)),
    }[case]
    if X is None:
        X, y = make_regression(5000, 8, noise=5.0, random_state=0)
        y = y / y.std()
    if case == "float32":
        X = X.astype(np.float32)
    dX, dy = chunked(X, y, chunks=1300)  # unequal last chunk
    if case == "sparse-csr":
        X = X * (np.random.RandomState(0).uniform(size=X.shape) < 0.3)
        dX = chunked(X, chunks=1300)[0].map_blocks(sp.csr_matrix, dtype=X.dtype,
                                                   meta=sp.csr_matrix((0, 0)))
        X = sp.csr_matrix(X)
    one = est_cls(**FULL, random_state=0, **kw).fit(X, y)
    dist = est_cls(**FULL, random_state=0, distributed="sync_gradient", **kw).fit(dX, dy)
    rtol = 1e-5 if case == "float32" else 1e-9
    assert dist.coef_.dtype == one.coef_.dtype
    np.testing.assert_allclose(dist.loss_curve_, one.loss_curve_, rtol=rtol)
    np.testing.assert_allclose(dist.coef_, one.coef_, rtol=rtol, atol=rtol * 1e-3)
    np.testing.assert_allclose(dist.intercept_, one.intercept_, rtol=rtol, atol=rtol * 1e-3)


def test_sync_gradient_full_batch_mlp_follows_one_machine(client, three_classes):
    X, y = three_classes
    kw = dict(hidden_layer_sizes=(16,), batch_size="full", max_iter=15, tol=0.0,
              learning_rate_init=0.01, alpha=1e-3, clip_grad_norm=1.0, random_state=0)
    one = SGDMLPClassifier(**kw).fit(X, y)
    dist = SGDMLPClassifier(distributed="sync_gradient", **kw).fit(*chunked(X, y, chunks=1500))
    np.testing.assert_allclose(dist.loss_curve_, one.loss_curve_, rtol=1e-11)
    for a, b in zip(dist.coefs_ + dist.intercepts_, one.coefs_ + one.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert dist.t_ == one.t_
    Xr, yr = make_regression(3000, 6, n_targets=2, random_state=0)
    yr = yr / yr.std()
    one = SGDMLPRegressor(**kw).fit(Xr, yr)
    dist = SGDMLPRegressor(distributed="sync_gradient", **kw).fit(*chunked(Xr, yr, chunks=700))
    np.testing.assert_allclose(dist.loss_curve_, one.loss_curve_, rtol=1e-11)


def test_partial_fit_on_dask_continues_like_one_machine(client, three_classes):
    X, y = three_classes
    dX, dy = chunked(X, y, chunks=1500)
    kw = dict(batch_size="full", learning_rate="constant", eta0=0.5, random_state=0)
    one, dist = SGDLogistic(**kw), SGDLogistic(distributed="sync_gradient", **kw)
    for _ in range(3):
        one.partial_fit(X, y, classes=[0, 1, 2])
        dist.partial_fit(dX, dy, classes=[0, 1, 2])
    np.testing.assert_allclose(dist.coef_, one.coef_, rtol=1e-10, atol=1e-13)
    assert dist.t_ == one.t_
    kw = dict(hidden_layer_sizes=(8,), batch_size="full", learning_rate_init=0.01, random_state=0)
    one, dist = SGDMLPClassifier(**kw), SGDMLPClassifier(distributed="sync_gradient", **kw)
    for _ in range(3):
        one.partial_fit(X, y, classes=[0, 1, 2])
        dist.partial_fit(dX, dy, classes=[0, 1, 2])
    np.testing.assert_allclose(dist.coefs_[0], one.coefs_[0], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dist.loss_curve_, one.loss_curve_, rtol=1e-11)


def test_sync_gradient_mini_batch_steps_and_schedule_as_one_machine(client, binary):
    X, y = binary
    kw = dict(batch_size=1000, optimizer="adam", learning_rate="cosine", eta0=0.01, max_iter=3,
              tol=None, random_state=0)
    one = SGDLogistic(**kw).fit(X, y)
    dist = SGDLogistic(distributed="sync_gradient", **kw).fit(*chunked(X, y, chunks=3000))
    for field in ("step", "optimizer_step", "t"):
        assert dist._fit_states[0][field] == one._fit_states[0][field]
    assert dist._distributed_stats["rounds"] == 3 * 12  # one round trip per global batch
    opt = reference.reference_for(one, X, y)
    assert reference.relative_gap(dist, opt) < 2 * reference.relative_gap(one, opt) + 1e-3


# ---- local_sgd: the single machine's objective --------------------------------------------------

@pytest.mark.parametrize("chunks", [3000, 1500])  # 4 and 8 blocks
@pytest.mark.parametrize("kw", [dict(), dict(batch_size=32, optimizer="adam", eta0=1e-2,
                                             learning_rate="constant"),
                                dict(batch_size=16, sync_every=50, optimizer="adam", eta0=1e-2,
                                     learning_rate="constant")],
                         ids=["per-sample-optimal", "adam", "sync_every"])
def test_local_sgd_reaches_the_single_machine_objective(client, binary, chunks, kw):
    X, y = binary
    one = SGDLogistic(random_state=0, **kw).fit(X, y)
    dist = SGDLogistic(random_state=0, **kw).fit(*chunked(X, y, chunks=chunks))
    assert dist._distributed_stats["n_shards"] == X.shape[0] // chunks
    f_one = reference.objective(one, X, y)
    f_dist = reference.objective(dist, X, y)
    assert f_dist <= 1.01 * f_one, (f_dist, f_one)


def test_local_sgd_mlp_and_regression(client, three_classes):
    X, y = three_classes
    one = SGDMLPClassifier((16,), max_iter=30, random_state=0).fit(X, y)
    dist = SGDMLPClassifier((16,), max_iter=120, random_state=0).fit(*chunked(X, y, chunks=1500))
    assert reference.objective(dist, X, y) <= 1.05 * reference.objective(one, X, y)
    Xr, yr = make_regression(6000, 8, noise=1.0, random_state=0)
    yr = yr / yr.std()
    one = SGDLinearRegression(random_state=0).fit(Xr, yr)
    dist = SGDLinearRegression(random_state=0).fit(*chunked(Xr, yr, chunks=1500))
    assert reference.objective(dist, Xr, yr) <= 1.01 * reference.objective(one, Xr, yr)


# ---- the blocks stay on the workers -------------------------------------------------------------

@pytest.fixture
def blocks_cannot_reach_the_client():
    """Any array above 32 KiB deserialized in this process (the client) raises: a Dask array
    whose conversion to NumPy on the client fails."""
    from distributed.protocol.serialize import dask_deserialize

    original = dask_deserialize.dispatch(np.ndarray)

    def trap(header, frames):
        arr = original(header, frames)
        if arr.nbytes > 32 * 1024:
            raise RuntimeError(f"an array of {arr.nbytes} bytes reached the client")
        return arr

    dask_deserialize.register(np.ndarray)(trap)
    yield
    dask_deserialize.register(np.ndarray)(original)


def _clear_transfer_logs(client):
    client.run(lambda dask_worker: dask_worker.transfer_outgoing_log.clear())


def _bytes_to_the_client(client):
    """Bytes the workers sent to anyone but another worker (the client, or the scheduler
    gathering for it), from their transfer logs (Worker.get_data records every transfer)."""
    workers = set(client.scheduler_info()["workers"])
    logs = client.run(lambda dask_worker: list(dask_worker.transfer_outgoing_log))
    return sum(entry["total"] for log in logs.values() for entry in log
               if entry["who"] not in workers)


@pytest.mark.parametrize("strategy", ["local_sgd", "sync_gradient"])
def test_shards_are_never_gathered(client, blocks_cannot_reach_the_client, strategy):
    X, y = make_classification(40000, 30, n_informative=8, n_classes=4, random_state=2)
    dX = da.from_array(X, chunks=(5000, 30))  # 1.2 MB blocks
    dy = da.from_array(y, chunks=5000)
    with pytest.raises(RuntimeError, match="reached the client"):
        dX.compute()  # the trap works
    _clear_transfer_logs(client)
    est = SGDLogistic(distributed=strategy, batch_size=2000 if strategy == "sync_gradient" else 1,
                      max_iter=3, tol=None, random_state=0).fit(dX, dy)
    sent = _bytes_to_the_client(client)
    param_bytes = 8 * (est.coef_.size + est.intercept_.size)
    rounds = est._distributed_stats["rounds"]
    n_shards = est._distributed_stats["n_shards"]
    # per round, each shard sends back its parameters (SGD keeps no slot) and its counters, or
    # its gradient: about the parameters' size, and nothing of the data
    per_shard_round = sent / (rounds * n_shards)
    assert param_bytes <= per_shard_round < 2 * param_bytes + 1024, (sent, rounds)
    proba = est.predict_proba(dX)
    assert isinstance(proba, da.Array)
    assert proba[:10].compute().shape == (10, 4)  # a small slice is fine


# ---- a worker lost mid-fit ----------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(distributed="sync_gradient", batch_size=600),
                                dict(batch_size=32, sync_every=20, optimizer="adam",
                                     learning_rate="constant", eta0=1e-3)],
                         ids=["sync_gradient", "local_sgd"])
def test_killing_a_worker_mid_fit_changes_nothing(client, binary, monkeypatch, kw):
    X, y = binary
    dX, dy = chunked(X, y, chunks=3000)
    kw = dict(kw, max_iter=4, tol=None, random_state=0)
    reference_fit = SGDLogistic(**kw).fit(dX, dy)
    killed = []

    def printer(self, label):
        def kill_during_the_next_epoch(epoch, *args):
            if epoch == 1 and not killed:
                pid = next(iter(client.run(os.getpid).values()))
                killed.append(pid)
                threading.Timer(0.1, os.kill, (pid, signal.SIGKILL)).start()
        return kill_during_the_next_epoch

    monkeypatch.setattr(linear_model.SGDLogistic, "_verbose_printer", printer)
    est = SGDLogistic(**kw).fit(dX, dy)
    assert killed
    client.wait_for_workers(2, timeout=60)
    assert pid_gone(killed[0])
    np.testing.assert_allclose(est.coef_, reference_fit.coef_, rtol=1e-12)
    np.testing.assert_allclose(est.loss_curve_, reference_fit.loss_curve_, rtol=1e-12)


def pid_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ---- bad input: the single machine's errors, before or during the first pass --------------------

def _message(fn):
    with pytest.raises(ValueError) as info:
        fn()
    return str(info.value)


def test_bad_input_gets_the_single_machine_errors_and_leaves_no_partial_model(client, binary):
    X, y = binary
    X_nan = X.copy()
    X_nan[-3, 2] = np.nan  # in the last block
    fitted = SGDLogistic(max_iter=3, tol=None, random_state=0).fit(*chunked(X, y, chunks=3000))
    coef = fitted.coef_.copy()
    for make, args in [(lambda: SGDLogistic(max_iter=3), (X_nan, y)),
                       (lambda: SGDLinearRegression(max_iter=3), (X_nan, y.astype(float))),
                       (lambda: SGDMLPClassifier((4,), max_iter=3), (X_nan, y))]:
        one = _message(lambda make=make, args=args: make().fit(*args))
        est = make()
        dist = _message(lambda est=est, args=args: est.fit(*chunked(*args, chunks=3000)))
        assert dist == one and "NaN" in dist
        assert not hasattr(est, "coef_") and not hasattr(est, "coefs_")
        assert not hasattr(est, "classes_") and not hasattr(est, "n_features_in_")
    # refitting a fitted model on bad data leaves the model as it was
    assert "NaN" in _message(lambda: fitted.fit(*chunked(X_nan, y, chunks=3000)))
    np.testing.assert_array_equal(fitted.coef_, coef)

    y_bad = y.copy()
    y_bad[-1] = 7  # a label outside `classes`, in the last block
    one = _message(lambda: SGDLogistic().partial_fit(X, y_bad, classes=[0, 1]))
    est = SGDLogistic()
    dist = _message(lambda: est.partial_fit(*chunked(X, y_bad, chunks=3000), classes=[0, 1]))
    assert dist == one == "classes should include all valid labels that can be in y"
    assert not hasattr(est, "coef_") and not hasattr(est, "classes_")
    one = _message(lambda: SGDMLPClassifier((4,)).partial_fit(X, y_bad, classes=[0, 1]))
    dist = _message(lambda: SGDMLPClassifier((4,)).partial_fit(*chunked(X, y_bad, chunks=3000),
                                                                classes=[0, 1]))
    assert dist == one

    dX = da.from_array(X, chunks=3000)
    msg = _message(lambda: SGDLogistic().fit(dX, da.from_array(y, chunks=2000)))
    assert "same row blocks" in msg and "(3000, 3000, 3000, 3000)" in msg
    msg = _message(lambda: SGDLogistic().fit(dX, da.from_array(y[:-5], chunks=2000)))
    assert msg == "Found input variables with inconsistent numbers of samples: [12000, 11995]"
    msg = _message(lambda: SGDLogistic(distributed="sync_gradient", batch_size=2).fit(
        dX, da.from_array(y, chunks=3000)))
    assert "at least the number of blocks" in msg
    y_nan = y.astype(float)
    y_nan[-1] = np.nan
    one = _message(lambda: SGDLinearRegression().fit(X, y_nan))
    assert _message(lambda: SGDLinearRegression().fit(*chunked(X, y_nan, chunks=3000))) == one


def test_bad_distributed_parameters_are_refused_before_any_work():
    X, y = np.eye(4), [0, 1, 0, 1]
    with pytest.raises(ValueError, match="distributed must be"):
        SGDLogistic(distributed="allreduce").fit(X, y)
    with pytest.raises(ValueError, match="sync_every"):
        SGDMLPRegressor(sync_every=0).fit(X, y)
    with pytest.raises(ValueError, match="sync_every applies to"):
        SGDLogistic(distributed="sync_gradient", sync_every=5).fit(X, y)
    with pytest.raises(ValueError, match="client must be"):
        SGDLinearRegression(client=3).fit(X, y)


def test_no_client_gives_a_clear_error(tmp_path):
    code = ("import dask.array as da, gdsolve\n"
            "try:\n"
            "    gdsolve.SGDLogistic().fit(da.ones((8, 2), chunks=4), da.arange(8, chunks=4) % 2)\n"
            "except ValueError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=tmp_path).stdout
    assert "needs a dask.distributed Client" in out and "client=" in out


# ---- predictions, early stopping, DataFrames, clone ---------------------------------------------

def test_predictions_are_lazy_and_blockwise(client, three_classes):
    X, y = three_classes
    dX, dy = chunked(X, y, chunks=1500)
    for est in (SGDLogistic(max_iter=3, tol=None).fit(dX, dy),
                SGDLogistic(max_iter=3, tol=None, multi_class="ovr").fit(dX, dy),
                SGDMLPClassifier((8,), max_iter=3).fit(dX, dy)):
        for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
            if not hasattr(est, method):
                continue
            lazy = getattr(est, method)(dX)
            assert isinstance(lazy, da.Array) and lazy.chunks[0] == dX.chunks[0]
            np.testing.assert_array_equal(lazy.compute(), getattr(est, method)(X))
    reg = SGDMLPRegressor((8,), max_iter=3).fit(dX, dy.astype(float))
    np.testing.assert_array_equal(reg.predict(dX).compute(), reg.predict(X))
    with pytest.raises(ValueError, match="features"):
        reg.predict(dX[:, :5])


def test_early_stopping_with_per_block_validation(client, three_classes):
    X, y = three_classes
    dX, dy = chunked(X, y, chunks=1300)
    est = SGDLogistic(early_stopping=True, batch_size=64, optimizer="adam", eta0=1e-2,
                      learning_rate="constant", n_iter_no_change=2, max_iter=40,
                      random_state=0).fit(dX, dy)
    assert 2 < est.n_iter_ < 40 and len(est.validation_scores_) == est.n_iter_
    assert 0.5 < max(est.validation_scores_) <= 1.0
    mlp = SGDMLPClassifier((16,), early_stopping=True, max_iter=60, n_iter_no_change=2,
                           learning_rate_init=0.01, random_state=0).fit(dX, dy)
    assert len(mlp.validation_scores_) == mlp.n_iter_ < 60
    assert mlp.best_validation_score_ == max(mlp.validation_scores_)
    # the model is the best validated one (keep_best), not the last
    assert mlp.score(X, y) > 0.6


def test_dask_dataframes_and_clone(client, binary):
    dd = pytest.importorskip("dask.dataframe")
    import pandas as pd

    X, y = binary
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    dX = dd.from_pandas(frame, npartitions=4)
    dy = dd.from_pandas(pd.Series(y, name="y"), npartitions=4)
    est = SGDLogistic(max_iter=3, tol=None, client=client).fit(dX, dy)
    assert list(est.feature_names_in_) == list(frame.columns)
    np.testing.assert_array_equal(est.predict(dX).compute(), est.predict(frame))
    twin = clone(est)
    assert twin.client is client and not hasattr(twin, "coef_")
    assert twin.get_params()["distributed"] == "local_sgd"


def test_gpu_settings_and_whole_matrix_rules_are_refused_for_dask_inputs(client, binary):
    X, y = binary
    dX, dy = chunked(X, y, chunks=200)
    cases = [
        (SGDLogistic(batch_size=64, device="cuda"), "run on the workers' CPUs"),
        (SGDLogistic(batch_size=64, device="auto", mixed_precision="float16"), "GPU setting"),
        (SGDLogistic(batch_size=64, optimizer="sophia"), "element-wise update rules"),
        (SGDMLPClassifier(optimizer="muon", max_iter=2), "element-wise update rules"),
    ]
    for est, message in cases:
        with pytest.raises(ValueError, match=message):
            est.fit(dX, dy)
        assert not hasattr(est, "coef_") and not hasattr(est, "coefs_")


# ---- the best-constant start (intercept_start) --------------------------------------------------

@pytest.fixture
def starts(monkeypatch):
    """The parameters of every state the epoch driver is handed, before its first epoch."""
    import gdsolve.engine as engine

    seen, run = [], engine.run

    def spy(executor, state, rules, **kwargs):
        seen.append(state.params.copy())
        return run(executor, state, rules, **kwargs)

    monkeypatch.setattr(engine, "run", spy)
    return seen


START_CASES = {
    "squared-weighted": (SGDLinearRegression, "r", True, {}),
    "huber-weighted": (SGDLinearRegression, "r", True, dict(loss="huber", epsilon=2.0)),
    "epsilon-insensitive": (SGDLinearRegression, "r", False,
                            dict(loss="epsilon_insensitive", epsilon=0.5)),
    "binary-class-weight": (SGDLogistic, "b", True, dict(class_weight={0: 1.0, 1: 3.0})),
    "ovr-early-stopping": (SGDLogistic, "c", False,
                           dict(multi_class="ovr", early_stopping=True)),
    "multinomial-balanced": (SGDLogistic, "c", True, dict(class_weight="balanced")),
    "mlp-softmax": (SGDMLPClassifier, "c", False, dict(hidden_layer_sizes=(6,))),
    "mlp-multilabel": (SGDMLPClassifier, "ml", False, dict(hidden_layer_sizes=(6,))),
    "mlp-regressor-two-outputs": (SGDMLPRegressor, "r2", False, dict(hidden_layer_sizes=(6,))),
}


@pytest.mark.parametrize("case", sorted(START_CASES))
def test_dask_fit_starts_at_the_single_machine_best_constant(client, starts, three_classes,
                                                             binary, case):
    est_cls, kind, weighted, kw = START_CASES[case]
    if kind in ("r", "r2"):
        X, y = make_regression(3000, 6, noise=10.0, random_state=3)
        y = y / 10.0 + 40.0  # far from the zero start
        if kind == "r2":
            y = np.column_stack([y, -2.0 * y])
    elif kind == "ml":
        X, labels = three_classes
        y = np.column_stack([labels == 0, labels != 1]).astype(int)
    else:
        X, y = binary if kind == "b" else three_classes
    n = X.shape[0]
    sw = np.random.RandomState(5).uniform(0.2, 2.0, n) if weighted else None
    mlp = est_cls in (SGDMLPClassifier, SGDMLPRegressor)
    common = dict(random_state=0, max_iter=1, batch_size=64)
    if not mlp:
        common.update(optimizer="adam", learning_rate="constant", eta0=0.01, tol=None)
    fit_kw = {} if sw is None else {"sample_weight": sw}
    est_cls(**common, **kw).fit(X, y, **fit_kw)
    n_runs = len(starts)
    dX, dy, dsw = chunked(X, y, sw, chunks=1100)  # unequal last chunk
    est_cls(**common, **kw).fit(dX, dy, **({} if sw is None else {"sample_weight": dsw}))
    one, dist = starts[:n_runs], starts[n_runs:]
    assert len(dist) == n_runs
    k = {"c": 3, "ml": 2, "r2": 2}.get(kind, 1)
    if "early-stopping" in case:  # the split is drawn per block: close, not equal
        for a, b in zip(one, dist, strict=True):
            assert abs(b[-1] - a[-1]) < 0.05
        return
    for a, b in zip(one, dist, strict=True):
        np.testing.assert_array_equal(b[:-k], a[:-k])  # zero, or scikit-learn's draws
        np.testing.assert_allclose(b[-k:], a[-k:], rtol=1e-12, atol=1e-14)
        assert np.all(np.abs(a[-k:]) > 0.05)  # a start that is not zero (nor a draw)


def test_dask_partial_fit_starts_from_its_first_collection(client, starts, binary):
    X, y = binary
    est = SGDLogistic(optimizer="adam", batch_size=64, random_state=0)
    dX, dy = chunked(X[:4000], y[:4000], chunks=1500)
    est.partial_fit(dX, dy, classes=[0, 1])
    fitted = np.append(est.coef_, est.intercept_)
    est.partial_fit(*chunked(X[4000:], y[4000:], chunks=1500))
    p = np.mean(y[:4000])
    assert starts[0][-1] == pytest.approx(np.log(p / (1 - p)), rel=1e-12)
    np.testing.assert_array_equal(starts[1], fitted)


def test_spectral_full_batch_is_refused_for_dask_inputs_and_the_default_keeps_working(client,
                                                                                       binary):
    # learning_rate='spectral' / 'lbfgs' run on the CPU executor only; the default full batch
    # resolves to the constant step 1/L on Dask ('lipschitz' on one machine)
    X, y = binary
    dX, dy = chunked(X, y, chunks=3000)
    for method in ("spectral", "lbfgs"):
        est = SGDLogistic(batch_size="full", learning_rate=method, distributed="sync_gradient")
        with pytest.raises(ValueError, match="CPU executor only, not on Dask collections"):
            est.fit(dX, dy)
        assert not hasattr(est, "coef_")
    dist = SGDLogistic(**FULL, distributed="sync_gradient", random_state=0).fit(dX, dy)
    one = SGDLogistic(**FULL, learning_rate="lipschitz", random_state=0).fit(X, y)
    np.testing.assert_allclose(dist.coef_, one.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dist.loss_curve_, one.loss_curve_, rtol=1e-12)
