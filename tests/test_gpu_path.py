"""The whole GPU path on the CPU: the estimators with device="cuda" run the GPU executors
(gdsolve.gpu.linear, gdsolve.gpu.mlp) over NumPy arrays, with the very kernel sources compiled
for the host (gdsolve.gpu.host_emulation). A GPU-path fit equals the CPU fit of the same model
with the same batch order, within a per-dtype tolerance (the products are summed in another
order: cuBLAS-style matmul against the CPU's own loops), over estimator x optimizer x schedule x
penalty x dtype x dense/sparse; plus the GPU path's own rules (errors, mixed precision, outputs).
Every test also runs on a real device when there is one (marked `gpu`: `pytest -m gpu`);
tests/test_gpu_device.py holds what only a device can show (CuPy arrays in and out, no host copy
of X, CUDA graphs).
"""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from sklearn.datasets import make_classification, make_regression

import gdsolve.gpu.backend as backend
import gdsolve.gpu.inputs as gpu_inputs
from gdsolve import SGDLinearRegression, SGDLogistic, SGDMLPClassifier, SGDMLPRegressor
from gdsolve.gpu.device import emulated_runtime
from gdsolve.gpu.host_emulation import compiler_command
from gdsolve.optim import SGD, Adam, AdamW, Muon, Sophia

try:
    compiler_command()
    HAS_COMPILER = True
except Exception:  # pragma: no cover - every CI image has g++
    HAS_COMPILER = False

pytestmark = pytest.mark.skipif(not HAS_COMPILER, reason="needs a host C++ compiler")

# Relative tolerance on the final model after a few epochs: float64 differs only by the
# summation order of the products; float32 by that in float32.
RTOL = {np.float64: 1e-9, np.float32: 2e-4}


@pytest.fixture(autouse=True, params=["emulated", pytest.param("cuda", marks=pytest.mark.gpu)])
def gpu_runtime(request, monkeypatch, tmp_path_factory):
    """device='cuda' runs on the CPU emulation, and (marked `gpu`) on a real device."""
    if request.param == "cuda":
        if not backend.cuda_available():
            pytest.skip("needs a CUDA device; CuPy sees none")
        return gpu_inputs.runtime_for()
    monkeypatch.setenv("GDSOLVE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))
    runtime = emulated_runtime()
    monkeypatch.setattr(backend, "device_status", lambda: (True, ""))
    monkeypatch.setattr(gpu_inputs, "runtime_for", lambda: runtime)
    return runtime


@pytest.fixture(scope="module")
def data():
    Xc, yc = make_classification(600, 12, n_informative=6, n_classes=3, random_state=0)
    Xb, yb = make_classification(600, 12, n_informative=6, random_state=1)
    Xr, yr = make_regression(600, 12, noise=3.0, random_state=2)
    yr = yr / yr.std()
    sw = np.random.default_rng(3).uniform(0.3, 2.0, 600)
    return {"c": (Xc, yc), "b": (Xb, yb), "r": (Xr, yr), "sw": sw}


def _pair(make, X, y, **fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = make("cpu").fit(X, y, **fit)
        gpu = make("cuda").fit(X, y, **fit)
    return cpu, gpu


def _close(cpu, gpu, dtype):
    rtol = RTOL[dtype]
    for a, b in ((cpu.coef_, gpu.coef_), (cpu.intercept_, gpu.intercept_)):
        assert b.dtype == a.dtype
        assert_allclose(b, a, rtol=rtol, atol=rtol * max(1.0, np.abs(a).max()))
    assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=rtol * 10)
    assert gpu.n_iter_ == cpu.n_iter_


LINEAR_CASES = {
    "sgd-constant-l2": dict(optimizer="sgd", learning_rate="constant", eta0=0.05),
    "momentum-cosine-l1": dict(optimizer="momentum", learning_rate="cosine", eta0=0.02,
                               penalty="l1", alpha=1e-3),
    "nesterov-step-elasticnet": dict(optimizer="nesterov", learning_rate="step", eta0=0.02,
                                     penalty="elasticnet", alpha=1e-3),
    "adagrad-exponential": dict(optimizer="adagrad", learning_rate="exponential", eta0=0.05),
    "rmsprop-warm-restarts-clip": dict(optimizer="rmsprop", learning_rate="warm_restarts",
                                       eta0=0.01, clip_grad_norm=0.5),
    "adam-one-cycle-l1": dict(optimizer="adam", learning_rate="one_cycle", eta0=0.02,
                              penalty="l1", alpha=1e-3),
    "adamw-cyclic": dict(optimizer="adamw", learning_rate="cyclic", eta0=0.01),
    "amsgrad-warmup-average": dict(optimizer="amsgrad", learning_rate="warmup_cosine",
                                   eta0=0.02, average=200),
    "nadam-multistep": dict(optimizer="nadam", learning_rate="multistep", eta0=0.02),
    "radam-adaptive": dict(optimizer="radam", learning_rate="adaptive", eta0=0.02, tol=1e-4),
    "lion-constant": dict(optimizer="lion", learning_rate="constant", eta0=1e-3),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(LINEAR_CASES))
@pytest.mark.parametrize("problem", ["b", "c"])
def test_logistic_gpu_path_equals_cpu(data, case, problem, dtype):
    X, y = data[problem]
    params = {**dict(batch_size=64, max_iter=4, tol=None, random_state=0), **LINEAR_CASES[case]}

    def make(device):
        return SGDLogistic(device=device, **params)

    _close(*_pair(make, X.astype(dtype), y), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kwargs", [
    # the GPU's full batch is the constant step 1/L (the CPU's default is 'lbfgs' or 'spectral')
    dict(batch_size="full", learning_rate="lipschitz", max_iter=15),
    dict(batch_size="full", learning_rate="lipschitz", max_iter=15, penalty="l1", alpha=1e-3),
    dict(batch_size=50, optimizer="adam", learning_rate="constant", eta0=0.01, max_iter=4,
         multi_class="ovr"),
    dict(batch_size=50, optimizer="adam", learning_rate="constant", eta0=0.01, max_iter=30,
         early_stopping=True, tol=1e-3, n_iter_no_change=3),
    dict(batch_size=50, optimizer="momentum", learning_rate="constant", eta0=0.01, max_iter=4,
         class_weight="balanced"),
], ids=["full", "full-l1", "ovr", "early-stopping", "class-weight"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_logistic_gpu_path_modes_equal_cpu(data, kwargs, sparse, dtype):
    X, y = data["c"]
    X = X.astype(dtype)
    if sparse:
        X = sp.csr_matrix(np.where(np.abs(X) > 0.7, X, 0.0).astype(dtype))

    def make(device):
        return SGDLogistic(device=device, random_state=0, **{"tol": None, **kwargs})

    cpu, gpu = _pair(make, X, y)
    _close(cpu, gpu, dtype)
    if kwargs.get("early_stopping"):
        assert_allclose(gpu.validation_scores_, cpu.validation_scores_)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", ["squared", "huber", "epsilon_insensitive"])
def test_regression_gpu_path_with_weights_equals_cpu(data, loss, dtype):
    X, y = data["r"]

    def make(device):
        return SGDLinearRegression(loss=loss, optimizer="adam", learning_rate="cosine",
                                   eta0=0.05, batch_size=32, max_iter=4, tol=None,
                                   random_state=0, device=device)

    _close(*_pair(make, X.astype(dtype), y.astype(dtype), sample_weight=data["sw"]), dtype)


def test_partial_fit_and_warm_start_on_the_gpu_path_equal_cpu(data):
    X, y = data["c"]
    classes = np.unique(y)
    models = {}
    for device in ("cpu", "cuda"):
        est = SGDLogistic(optimizer="adam", learning_rate="constant", eta0=0.01, batch_size=40,
                          device=device, random_state=0)
        for rows in np.array_split(np.arange(600), 3):
            est.partial_fit(X[rows], y[rows], classes=classes)
        warm = SGDLogistic(optimizer="adam", learning_rate="constant", eta0=0.01, batch_size=40,
                           max_iter=3, tol=None, warm_start=True, device=device, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warm.fit(X, y)
            warm.fit(X[:300], y[:300])
        models[device] = (est, warm)
    for cpu, gpu in zip(models["cpu"], models["cuda"], strict=True):
        assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-9, atol=1e-12)


MLP_CASES = [
    ("relu", "adam", "constant", None),
    ("tanh", "nesterov", "invscaling", None),
    ("logistic", "rmsprop", "cosine", 1.0),
    ("identity", "adamw", "adaptive", None),
    ("relu", "lion", "one_cycle", 0.5),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation, optimizer, schedule, clip", MLP_CASES)
@pytest.mark.parametrize("problem", ["b", "c"], ids=["logistic-output", "softmax"])
def test_mlp_classifier_gpu_path_equals_cpu(data, problem, activation, optimizer, schedule,
                                             clip, dtype):
    X, y = data[problem]

    def make(device):
        return SGDMLPClassifier(hidden_layer_sizes=(16, 8), activation=activation,
                                optimizer=optimizer, learning_rate=schedule,
                                learning_rate_init=0.01, batch_size=50, max_iter=4, tol=0.0,
                                clip_grad_norm=clip, random_state=0, device=device)

    cpu, gpu = _pair(make, X.astype(dtype), y)
    rtol = RTOL[dtype]
    for a, b in zip(cpu.coefs_ + cpu.intercepts_, gpu.coefs_ + gpu.intercepts_, strict=True):
        assert b.dtype == dtype
        assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())
    assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=rtol * 10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mlp_regressor_multi_output_and_early_stopping_gpu_path_equal_cpu(data, dtype):
    X, y = data["r"]
    Y = np.column_stack([y, -0.5 * y + 1.0]).astype(dtype)

    def make(device):
        return SGDMLPRegressor(hidden_layer_sizes=(16,), batch_size=64, max_iter=12, tol=1e-4,
                               early_stopping=True, n_iter_no_change=3, random_state=0,
                               device=device)

    cpu, gpu = _pair(make, X.astype(dtype), Y)
    rtol = RTOL[dtype]
    assert gpu.n_iter_ == cpu.n_iter_
    for a, b in zip(cpu.coefs_, gpu.coefs_, strict=True):
        assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())
    assert_allclose(gpu.validation_scores_, cpu.validation_scores_, rtol=rtol, atol=rtol)


def test_per_sample_sgd_on_the_gpu_asks_for_a_mini_batch(data):
    X, y = data["b"]
    est = SGDLogistic(device="cuda")
    with pytest.raises(ValueError, match="batch_size=1 .*mini-batch"):
        est.fit(X, y)
    assert not hasattr(est, "coef_")


def test_cuda_without_a_device_names_what_is_missing(monkeypatch, data, gpu_runtime):
    monkeypatch.setattr(backend, "device_status", lambda: (False, "cupy cannot be imported"))
    X, y = data["b"]
    with pytest.raises(RuntimeError, match="no CUDA device.*cupy cannot be imported"):
        SGDLogistic(device="cuda", batch_size=64).fit(X, y)
    with pytest.raises(RuntimeError, match="cupy cannot be imported"):
        SGDMLPClassifier(device="cuda").fit(X, y)
    # 'auto' falls back to the CPU silently, with the CPU's model
    auto = SGDLogistic(device="auto", batch_size=64, max_iter=3, tol=None,
                       random_state=0).fit(X, y)
    cpu = SGDLogistic(device="cpu", batch_size=64, max_iter=3, tol=None,
                      random_state=0).fit(X, y)
    np.testing.assert_array_equal(auto.coef_, cpu.coef_)


def test_bad_device_and_precision_are_rejected_before_any_work(data):
    X, y = data["b"]
    with pytest.raises(ValueError, match="device must be one of"):
        SGDLogistic(device="tpu").fit(X, y)
    with pytest.raises(ValueError, match="mixed_precision must be"):
        SGDLogistic(device="cuda", mixed_precision="int8").fit(X, y)
    with pytest.raises(ValueError, match="needs device='cuda'"):
        SGDMLPClassifier(device="cpu", mixed_precision="float16").fit(X, y)
    with pytest.raises(ValueError, match="sparse X is held in float32"):
        SGDLogistic(device="cuda", batch_size=64, mixed_precision="float16").fit(
            sp.csr_matrix(X), y)


def _rounded_to(X, precision):
    """X rounded to the 2-byte dtype mixed_precision holds it in, back in float32."""
    if precision == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes")
        return X.astype(ml_dtypes.bfloat16).astype(np.float32)
    return X.astype(np.float16).astype(np.float32)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("estimator", ["logistic", "logistic-full", "mlp"])
def test_mixed_precision_matches_float32_on_the_rounded_data(data, estimator, precision):
    # X held in float16 / bfloat16 on the device, float32 arithmetic: the model is the float32
    # model of the rounded X (up to float32 summation order), and close to float32 on X itself
    X, y = data["c"]
    rounded_X = _rounded_to(X, precision)
    assert not np.array_equal(rounded_X, X.astype(np.float32))
    if estimator.startswith("logistic"):
        batch = "full" if estimator == "logistic-full" else 64

        # scikit-learn's zero start: at the best constant the full-batch intercept gradient is
        # zero up to round-off, which Adam's normalisation turns into a first step of +-lr, so
        # two summation orders would differ by about lr there (docs/linear.md)
        def make(**kw):
            return SGDLogistic(optimizer="adam", learning_rate="constant", eta0=0.01,
                               batch_size=batch, max_iter=5, tol=None, random_state=0,
                               intercept_start="sklearn", **kw)
    else:
        def make(**kw):
            return SGDMLPClassifier(hidden_layer_sizes=(16,), batch_size=64, max_iter=5,
                                    tol=0.0, random_state=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mixed = make(device="cuda", mixed_precision=precision).fit(X, y)
        rounded = make(device="cpu").fit(rounded_X, y)
        full = make(device="cpu").fit(X.astype(np.float32), y)
    first = (lambda m: m.coefs_[0]) if estimator == "mlp" else (lambda m: m.coef_)
    assert first(mixed).dtype == np.float32
    assert_allclose(first(mixed), first(rounded), rtol=2e-4, atol=2e-4)
    assert abs(mixed.loss_curve_[-1] - full.loss_curve_[-1]) < 2e-2 * full.loss_curve_[-1]


def test_gpu_fitted_model_pickles_and_predicts_like_the_cpu(data):
    X, y = data["c"]
    gpu = SGDLogistic(optimizer="adam", learning_rate="constant", eta0=0.01, batch_size=64,
                      max_iter=3, tol=None, random_state=0, device="cuda").fit(X, y)
    assert isinstance(gpu.coef_, np.ndarray)
    back = pickle.loads(pickle.dumps(gpu))
    np.testing.assert_array_equal(back.predict_proba(X), gpu.predict_proba(X))
    cpu = SGDLogistic(optimizer="adam", learning_rate="constant", eta0=0.01, batch_size=64,
                      max_iter=3, tol=None, random_state=0).fit(X, y)
    assert np.mean(back.predict(X) == cpu.predict(X)) == 1.0


# ---- Muon and Sophia (issue 13) ---------------------------------------------------------------
# The same per-dtype RTOL as every other rule. Muon: the Newton-Schulz products run through matmul
# (cuBLAS on a device) in another summation order than the CPU's BLAS gemm, and its combinations
# b A + c A A and a X + B X are rounded apart from the product (the CPU folds them into gemm's
# alpha / beta); five iterations of the quintic keep that at the products' rounding (seen: 1e-14
# in float64, 3e-6 in float32). Sophia: the same drawn labels as the CPU (math/sophia.h's
# counter-based draws); the linear model's estimate is summed in T by matmul (the CPU sums in
# double), so only summation order differs again.


def _close_mlp(cpu, gpu, dtype):
    rtol = RTOL[dtype]
    for a, b in zip(cpu.coefs_ + cpu.intercepts_, gpu.coefs_ + gpu.intercepts_, strict=True):
        assert b.dtype == dtype
        assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())
    assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=rtol * 10)
    assert gpu.n_iter_ == cpu.n_iter_


MUON_CASES = {
    "defaults-constant": (lambda: Muon(lr=0.02), dict(learning_rate="constant")),
    "original-cosine-clip": (lambda: Muon(lr=0.02, adjust_lr_fn="original"),
                             dict(learning_rate="cosine", clip_grad_norm=0.5)),
    "match-rms-adamw-one-cycle": (lambda: Muon(lr=0.02, adjust_lr_fn="match_rms_adamw",
                                               companion=AdamW(lr=0.005, weight_decay=0.05)),
                                  dict(learning_rate="one_cycle")),
    "no-nesterov-sgd-companion-invscaling-l2": (
        lambda: Muon(lr=0.05, nesterov=False, weight_decay=0.0,
                     companion=SGD(lr=0.05, momentum=0.9)),
        dict(learning_rate="invscaling", alpha=1e-2)),
    "adam-companion-adaptive-tanh": (lambda: Muon(lr=0.02, companion=Adam(lr=0.01)),
                                     dict(learning_rate="adaptive", activation="tanh")),
}


def _small_mlp(optimizer, kw):
    """make(device): a (16, 8) classifier, 4 epochs of batches of 50, with a fresh `optimizer()`."""
    def make(device):
        return SGDMLPClassifier(hidden_layer_sizes=(16, 8), optimizer=optimizer(), batch_size=50,
                                max_iter=4, tol=0.0, random_state=0, device=device,
                                **{"activation": "relu", **kw})
    return make


SOPHIA_MLP_CASES = {
    "k1-constant": (lambda: Sophia(lr=0.01, k=1), dict(learning_rate="constant")),
    "k5-cosine-clip": (lambda: Sophia(lr=0.01, k=5), dict(learning_rate="cosine",
                                                          clip_grad_norm=0.5)),
    "defaults-k10-l2-logistic": (lambda: Sophia(lr=0.003),
                                 dict(alpha=1e-2, activation="logistic")),
}

WHOLE_GRADIENT_MLP_CASES = {**{f"muon-{k}": v for k, v in MUON_CASES.items()},
                            **{f"sophia-{k}": v for k, v in SOPHIA_MLP_CASES.items()}}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(WHOLE_GRADIENT_MLP_CASES))
@pytest.mark.parametrize("problem", ["b", "c"], ids=["logistic-output", "softmax"])
def test_mlp_muon_and_sophia_gpu_path_equal_cpu(data, problem, case, dtype):
    # (16, 8) on 12 features: a wide (12 x 16) and a tall (16 x 8) hidden matrix; 12 batches an
    # epoch, so with Sophia's k = 5 the refreshing batches differ from epoch to epoch
    optimizer, kw = WHOLE_GRADIENT_MLP_CASES[case]
    X, y = data[problem]
    make = _small_mlp(optimizer, kw)
    cpu, gpu = _pair(make, X.astype(dtype), y)
    _close_mlp(cpu, gpu, dtype)
    if case.startswith("muon"):  # Muon moved the hidden matrices away from the companion's
        other = make("cuda").set_params(optimizer=optimizer().companion_optimizer())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other.fit(X.astype(dtype), y)
        assert not np.allclose(other.coefs_[0], gpu.coefs_[0], rtol=1e-3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimizer", [lambda: Sophia(lr=0.01, k=3), lambda: Muon(lr=0.02)],
                         ids=["sophia", "muon"])
def test_mlp_regressor_muon_sophia_early_stopping_gpu_path_equal_cpu(data, optimizer, dtype):
    # squared outputs: Sophia draws N(z, 1) targets (two draws per output)
    X, y = data["r"]
    Y = np.column_stack([y, -0.5 * y + 1.0]).astype(dtype)

    def make(device):
        return SGDMLPRegressor(hidden_layer_sizes=(16,), optimizer=optimizer(), batch_size=64,
                               max_iter=8, tol=1e-4, early_stopping=True, n_iter_no_change=3,
                               random_state=0, device=device)

    cpu, gpu = _pair(make, X.astype(dtype), Y)
    _close_mlp(cpu, gpu, dtype)
    assert_allclose(gpu.validation_scores_, cpu.validation_scores_, rtol=RTOL[dtype],
                    atol=RTOL[dtype])


@pytest.mark.parametrize("optimizer", [lambda: Sophia(lr=0.01, k=4), lambda: Muon(lr=0.02)],
                         ids=["sophia", "muon"])
def test_mlp_muon_sophia_partial_fit_gpu_path_equals_cpu(data, optimizer):
    # the step counter, Sophia's refresh pattern and the draws' key carry over between calls
    X, y = data["c"]
    classes = np.unique(y)
    fits = {}
    for device in ("cpu", "cuda"):
        est = SGDMLPClassifier(hidden_layer_sizes=(16,), optimizer=optimizer(), batch_size=45,
                               random_state=0, device=device)
        for rows in np.array_split(np.arange(600), 3):
            est.partial_fit(X[rows], y[rows], classes=classes)
        fits[device] = est
    for a, b in zip(fits["cpu"].coefs_, fits["cuda"].coefs_, strict=True):
        assert_allclose(b, a, rtol=1e-9, atol=1e-12)


SOPHIA_LINEAR_CASES = {
    "gnb-minibatch": (dict(estimator="gnb"), dict(batch_size=64)),
    "exact-minibatch-elasticnet": (dict(estimator="exact"),
                                   dict(batch_size=64, penalty="elasticnet", alpha=1e-3)),
    "gnb-full-k1": (dict(estimator="gnb", k=1), dict(batch_size="full", max_iter=10)),
    "exact-full-no-intercept": (dict(estimator="exact", k=2),
                                dict(batch_size="full", max_iter=10, fit_intercept=False)),
    "exact-class-weight-cosine": (dict(estimator="exact"),
                                  dict(batch_size=50, class_weight="balanced",
                                       learning_rate="cosine")),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("case", sorted(SOPHIA_LINEAR_CASES))
@pytest.mark.parametrize("problem", ["b", "c"], ids=["binary", "multinomial"])
def test_logistic_sophia_gpu_path_equals_cpu(data, problem, case, sparse, dtype):
    sophia, kw = SOPHIA_LINEAR_CASES[case]
    X, y = data[problem]
    X = X.astype(dtype)
    if sparse:
        X = sp.csr_matrix(np.where(np.abs(X) > 0.7, X, 0.0).astype(dtype))

    def make(device):
        return SGDLogistic(optimizer=Sophia(**{"lr": 0.01, "k": 3, **sophia}), random_state=0,
                           device=device, **{"max_iter": 4, "tol": None, **kw})

    _close(*_pair(make, X, y), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("estimator", ["gnb", "exact"])
def test_regression_sophia_with_weights_gpu_path_equals_cpu(data, estimator, dtype):
    X, y = data["r"]

    def make(device):
        return SGDLinearRegression(optimizer=Sophia(lr=0.02, k=2, estimator=estimator),
                                   batch_size=32, max_iter=4, tol=None, random_state=0,
                                   device=device)

    _close(*_pair(make, X.astype(dtype), y.astype(dtype), sample_weight=data["sw"]), dtype)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", ["mlp-muon", "mlp-sophia", "logistic-sophia-exact",
                                  "logistic-full-sophia-exact", "logistic-full-sophia-gnb"])
def test_mixed_precision_muon_sophia_match_float32_on_the_rounded_data(data, case, precision):
    # X held in a 2-byte dtype, float32 everywhere else: the float32 model of the rounded X
    X, y = data["c"]
    rounded_X = _rounded_to(X, precision)
    if case.startswith("mlp"):
        opt = Muon(lr=0.02) if case == "mlp-muon" else Sophia(lr=0.01, k=3)

        def make(**kw):
            return SGDMLPClassifier(hidden_layer_sizes=(16, 8), optimizer=opt, batch_size=64,
                                    max_iter=4, tol=0.0, random_state=0, **kw)
        first = lambda m: m.coefs_[0]  # noqa: E731
    else:
        estimator = case.rsplit("-", 1)[1]
        batch = "full" if "full" in case else 64

        def make(**kw):
            return SGDLogistic(optimizer=Sophia(lr=0.01, k=2, estimator=estimator),
                               batch_size=batch, max_iter=5, tol=None, random_state=0, **kw)
        first = lambda m: m.coef_  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mixed = make(device="cuda", mixed_precision=precision).fit(X, y)
        rounded = make(device="cpu").fit(rounded_X, y)
    assert first(mixed).dtype == np.float32
    assert_allclose(first(mixed), first(rounded), rtol=2e-4, atol=2e-4)


def test_what_stays_unsupported_is_refused_on_the_gpu_before_any_work(data):
    # as on the CPU: Muon on the linear models, the exact estimator on the MLPs, Sophia with a
    # loss that defines no predictive distribution; nothing fitted is left behind
    X, y = data["c"]
    cases = [
        (SGDLogistic(optimizer="muon", batch_size=64, device="cuda"), y, "Muon is offered"),
        (SGDMLPClassifier(optimizer=Sophia(estimator="exact"), device="cuda"), y, "gnb"),
        (SGDLinearRegression(optimizer="sophia", loss="huber", batch_size=64, device="cuda"),
         data["r"][1], "squared or log"),
    ]
    for est, target, message in cases:
        with pytest.raises(ValueError, match=message):
            est.fit(X, target)
        assert not hasattr(est, "coef_") and not hasattr(est, "coefs_")


def test_spectral_full_batch_is_refused_on_the_gpu_path_and_the_default_keeps_working(data):
    # learning_rate='spectral' / 'lbfgs' run on the CPU executor only: refused before any work;
    # the default full batch resolves to the constant step 1/L on the GPU ('lipschitz' on the CPU)
    X, y = data["b"]
    for method in ("spectral", "lbfgs"):
        est = SGDLogistic(batch_size="full", learning_rate=method, device="cuda")
        with pytest.raises(ValueError, match="CPU executor only, not on the GPU"):
            est.fit(X, y)
        assert not hasattr(est, "coef_")

    def make(device):
        lr = "lipschitz" if device == "cpu" else "optimal"  # 'optimal': the default
        return SGDLogistic(batch_size="full", learning_rate=lr, device=device, max_iter=8,
                           tol=None)

    _close(*_pair(make, X, y), np.float64)
