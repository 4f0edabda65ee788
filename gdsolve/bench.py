"""`gdsolve bench`: gdsolve against closed-form solvers, scikit-learn and PyTorch on built-in data.

Run by the console script (`gdsolve bench`, see gdsolve/__main__.py), by `python -m gdsolve.bench`
and by tests/test_bench.py. Every case fits gdsolve and its peers in one process, alternating the
repeats, and reports median time per epoch, fit time, final objective, relative gap to the exact
optimum (gdsolve.reference) and held-out score; ratios gdsolve/peer are the headline numbers.
Writes a terminal table, bench.json (every number and the machine), results.md and PNG plots.
"""

import argparse
import gc
import importlib
import json
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np
import scipy.sparse as sp

from gdsolve import reference as ref

SUITES = ("linear", "logistic", "sparse", "mlp", "closed-form", "gpu")
DEFAULT_SUITES = ("linear", "logistic", "sparse", "mlp", "closed-form")
GAP_FLOOR = 1e-16  # gaps at or below round-off are drawn here on the log-scale plots

# Problem sizes per preset. "quick" is the CI smoke run (< 20 s), "default" the README command
# (< 2 min on 2 cores), "large" a longer local run; benchmarks/ holds the speed-target suites.
SIZES = {
    "quick": {
        "linear": (3000, 20), "logistic": (3000, 20), "sparse": (3000, 2000, 15),
        "mlp": (1500, 20), "crossover": (2000, (8, 32, 128)),
        "epochs": 5, "full_epochs": 30, "mlp_epochs": 5, "hidden": (32,), "repeats": 1,
        "datasets": ("diabetes", "breast_cancer"), "trace_points": 3,
    },
    "default": {
        "linear": (20000, 50), "logistic": (20000, 50), "sparse": (20000, 10000, 30),
        "mlp": (10000, 40), "crossover": (10000, (8, 32, 128, 512)),
        "epochs": 10, "full_epochs": 100, "mlp_epochs": 15, "hidden": (64,), "repeats": 5,
        "datasets": ("diabetes", "breast_cancer", "digits"), "trace_points": 4,
    },
    "large": {
        "linear": (200000, 100), "logistic": (200000, 100), "sparse": (200000, 50000, 50),
        "mlp": (50000, 50), "crossover": (50000, (8, 32, 128, 512, 2048)),
        "epochs": 10, "full_epochs": 200, "mlp_epochs": 20, "hidden": (128, 64), "repeats": 3,
        "datasets": ("diabetes", "breast_cancer", "digits"), "trace_points": 6,
    },
}
ALPHA = 1e-4           # L2 strength of every linear case (gdsolve convention)
MLP_ALPHA = 1e-4
ADAM_LR = 1e-2         # mini-batch Adam for the linear cases, gdsolve and PyTorch alike
ADAM_BATCH = 256
MLP_LR = 1e-3
MLP_BATCH = 200
SGD_ETA0_REGRESSION = 0.01  # scikit-learn SGDRegressor's invscaling defaults, on both sides
SGD_POWER_T_REGRESSION = 0.25


# ------------------------------------------------------------------------------------------------
# Optional pieces: the estimators (built in parallel), torch, matplotlib, tqdm
# ------------------------------------------------------------------------------------------------


def _optional(module):
    """The module or None (its absence becomes a note in the report, never an error)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _torch(enabled=True, threads=None):
    if not enabled:
        return None
    torch = _optional("torch")
    if torch is not None:
        # Same thread count as NumPy's BLAS, so the peers share the machine alike.
        torch.set_num_threads(max(1, threads or _blas_threads()))
    return torch


def _blas_limit(threads):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def _blas_threads():
    try:
        from threadpoolctl import threadpool_info
        counts = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
        return max(counts) if counts else (os.cpu_count() or 1)
    except ImportError:  # threadpoolctl comes with scikit-learn; be safe anyway
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------------------------
# Cases and solvers
# ------------------------------------------------------------------------------------------------


@dataclass
class Fitted:
    """What a solver returns: enough to score it without knowing its library."""

    n_epochs: int                     # epochs (or iterations) actually run; 0 for closed form
    coef: object = None               # linear models
    intercept: object = None
    predict: object = None            # X -> labels / values, for the held-out score
    predict_proba: object = None      # MLPs: X -> class probabilities, for the objective
    squared_weights: float = 0.0      # MLPs: sum of squared coefficients (penalty term)
    # Loops written here (PyTorch) record the model after every epoch of the timed run:
    # (seconds since the fit started, epoch, () -> Fitted). Others get separate shorter fits.
    snapshots: list | None = None


@dataclass
class Solver:
    name: str                 # unique within a case, shown in the table
    library: str              # gdsolve | scikit-learn | scipy | pytorch
    fit: object               # (X, y, budget) -> Fitted
    budget: int | None        # epochs / iterations of the timed run; None for closed form
    unit: str = "epoch"       # what budget counts: epoch | iteration | "" (closed form)
    pair: str | None = None   # the gdsolve solver this peer's ratios are taken against
    reference: str = "main"   # which exact optimum the gap is measured against
    note: str = ""


@dataclass
class Case:
    name: str
    suite: str
    kind: str                 # regression | binary | multiclass
    source: str
    X: object
    y: np.ndarray
    X_test: object
    y_test: np.ndarray
    problem: ref.Problem | None   # None: non-convex (MLP), no exact optimum
    mlp_alpha: float = 0.0
    solvers: list = field(default_factory=list)
    references: dict = field(default_factory=dict)
    reference_times: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def classes(self):
        return np.unique(self.y) if self.kind != "regression" else None


def _labels(case_or_y, classes=None):
    """(class index per sample, +-1 signs for binary) of y."""
    y = case_or_y
    classes = np.unique(y) if classes is None else classes
    index = np.searchsorted(classes, y)
    return index, np.where(index == len(classes) - 1, 1.0, -1.0)


def _lipschitz_step(X, kind, l2, fit_intercept):
    """1 / L for full-batch gradient descent on the mean loss: L = lambda_max([X 1]'[X 1] / n)
    times the loss curvature bound (1 squared, 1/4 logistic, 1/2 softmax), plus l2."""
    n = X.shape[0]
    rng = np.random.default_rng(0)
    v = rng.normal(size=X.shape[1] + int(fit_intercept))
    lam = 0.0
    for _ in range(50):  # power iteration on [X 1]'[X 1] / n
        v /= np.linalg.norm(v)
        w, b = (v[:-1], v[-1]) if fit_intercept else (v, 0.0)
        u = np.asarray(X @ w).reshape(-1) + b
        nv = np.asarray(X.T @ u).reshape(-1)
        if fit_intercept:
            nv = np.append(nv, u.sum())
        nv /= n
        new_lam = float(np.linalg.norm(nv))
        v = nv
        if abs(new_lam - lam) <= 1e-6 * new_lam:
            lam = new_lam
            break
        lam = new_lam
    curvature = {"regression": 1.0, "binary": 0.25, "multiclass": 0.5}[kind]
    return 1.0 / (curvature * lam + l2)


# ---- gdsolve -----------------------------------------------------------------------------------


def _filter_params(estimator_class, params, notes, who):
    """Drop keyword arguments the estimator does not take (its API may still be settling)."""
    accepted = set(estimator_class().get_params())
    dropped = sorted(set(params) - accepted)
    if dropped:
        notes.append(f"{who}: parameters {dropped} not accepted by {estimator_class.__name__}")
    return {k: v for k, v in params.items() if k in accepted}


def _gdsolve_linear(case, variant, budget, seed, notes, device=None):
    """A gdsolve linear-model solver, or None with a note when gdsolve.linear_model is missing."""
    module = _optional("gdsolve.linear_model")
    cls_name = "SGDLinearRegression" if case.kind == "regression" else "SGDLogistic"
    cls = getattr(module, cls_name, None) if module is not None else None
    if cls is None:
        note = f"gdsolve.linear_model.{cls_name} is not available: gdsolve solvers skipped"
        if note not in notes:
            notes.append(note)
        return None
    problem = case.problem
    params = {
        "penalty": problem.penalty, "alpha": problem.alpha, "l1_ratio": problem.l1_ratio,
        "fit_intercept": problem.fit_intercept, "tol": None, "random_state": seed,
    }
    if case.kind == "regression":
        params["loss"] = "squared_error"
    if variant == "sgd":
        params.update(batch_size=1, optimizer="sgd")
        if case.kind == "regression":
            params.update(learning_rate="invscaling", eta0=SGD_ETA0_REGRESSION,
                          power_t=SGD_POWER_T_REGRESSION)
        else:
            params.update(learning_rate="optimal")
    elif variant == "adam":
        params.update(batch_size=ADAM_BATCH, optimizer="adam", learning_rate="constant",
                      eta0=ADAM_LR)
    elif variant == "full-batch":
        step = _lipschitz_step(case.X, case.kind, problem.penalty_split()[0],
                               problem.fit_intercept)
        params.update(batch_size="full", optimizer="sgd", learning_rate="constant", eta0=step)
    else:
        raise ValueError(f"unknown gdsolve variant {variant!r}")
    if device is not None:
        params["device"] = device
    params = _filter_params(cls, params, notes, f"gdsolve {variant}")

    def fit(X, y, epochs):
        est = cls(max_iter=int(epochs), **params).fit(X, y)
        return Fitted(int(est.n_iter_), est.coef_, est.intercept_, est.predict)

    name = f"gdsolve {variant}" + (f" ({device})" if device else "")
    return Solver(name, "gdsolve", fit, budget)


def _gdsolve_mlp(case, budget, seed, hidden, notes):
    module = _optional("gdsolve.neural_network")
    cls = getattr(module, "SGDMLPClassifier", None) if module is not None else None
    if cls is None:
        notes.append("gdsolve.neural_network.SGDMLPClassifier is not available: skipped")
        return None
    params = _filter_params(cls, {
        "hidden_layer_sizes": hidden, "alpha": case.mlp_alpha, "optimizer": "adam",
        "learning_rate": "constant", "learning_rate_init": MLP_LR, "batch_size": MLP_BATCH,
        "tol": 0.0, "shuffle": True, "random_state": seed,
    }, notes, "gdsolve adam MLP")

    def fit(X, y, epochs):
        est = cls(max_iter=int(epochs), n_iter_no_change=int(epochs) + 1, **params).fit(X, y)
        return _fitted_mlp(est)

    return Solver("gdsolve adam", "gdsolve", fit, budget)


def _fitted_mlp(est):
    sq = sum(float(np.sum(np.asarray(W, dtype=np.float64) ** 2)) for W in est.coefs_)
    return Fitted(int(est.n_iter_), predict=est.predict, predict_proba=est.predict_proba,
                  squared_weights=sq)


# ---- scikit-learn ------------------------------------------------------------------------------


def _sklearn_sgd(case, budget, seed, pair):
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    problem = case.problem
    common = {"penalty": problem.penalty, "alpha": problem.alpha, "l1_ratio": problem.l1_ratio,
              "fit_intercept": problem.fit_intercept, "tol": None, "random_state": seed}
    if case.kind == "regression":
        def make(epochs):
            return SGDRegressor(loss="squared_error", learning_rate="invscaling",
                                eta0=SGD_ETA0_REGRESSION, power_t=SGD_POWER_T_REGRESSION,
                                max_iter=int(epochs), **common)
        name = "sklearn SGDRegressor"
    else:
        def make(epochs):
            return SGDClassifier(loss="log_loss", learning_rate="optimal", max_iter=int(epochs),
                                 **common)
        name = "sklearn SGDClassifier"

    def fit(X, y, epochs):
        est = make(epochs).fit(X, y)
        return Fitted(int(est.n_iter_), est.coef_, est.intercept_, est.predict)

    multiclass = case.kind == "multiclass"
    note = "one-vs-rest: gap against the OvR optimum" if multiclass else ""
    return Solver(name, "scikit-learn", fit, budget, pair=pair,
                  reference="ovr" if multiclass else "main", note=note)


def _sklearn_logistic_regression(case, pair):
    from sklearn.linear_model import LogisticRegression

    n = case.X.shape[0]
    C = 1.0 / (case.problem.alpha * n) if case.problem.alpha > 0 else np.inf

    def fit(X, y, max_iter):
        est = LogisticRegression(C=C, solver="lbfgs", max_iter=int(max_iter),
                                 fit_intercept=case.problem.fit_intercept).fit(X, y)
        return Fitted(int(np.max(est.n_iter_)), est.coef_, est.intercept_, est.predict)

    return Solver("sklearn LogisticRegression", "scikit-learn", fit, 1000, unit="iteration",
                  pair=pair, note="lbfgs, default tol; budget = max_iter")


def _sklearn_ridge(case, pair, alpha_zero=False):
    from sklearn.linear_model import LinearRegression, Ridge

    n = case.X.shape[0]
    fit_intercept = case.problem.fit_intercept
    if alpha_zero:
        def make():
            return LinearRegression(fit_intercept=fit_intercept)
        name = "sklearn LinearRegression"
    else:
        # Ridge minimises ||y - Xw||^2 + a ||w||^2: a = n * alpha in gdsolve's convention.
        def make():
            return Ridge(alpha=case.problem.alpha * n, fit_intercept=fit_intercept)
        name = "sklearn Ridge"

    def fit(X, y, _budget):
        est = make().fit(X, y)
        return Fitted(0, est.coef_, est.intercept_, est.predict)

    return Solver(name, "scikit-learn", fit, None, unit="", pair=pair)


def _sklearn_mlp(case, budget, seed, hidden):
    from sklearn.neural_network import MLPClassifier

    def fit(X, y, epochs):
        est = MLPClassifier(hidden_layer_sizes=hidden, alpha=case.mlp_alpha, solver="adam",
                            learning_rate_init=MLP_LR, batch_size=MLP_BATCH,
                            max_iter=int(epochs), tol=0.0, n_iter_no_change=int(epochs) + 1,
                            shuffle=True, random_state=seed).fit(X, y)
        return _fitted_mlp(est)

    return Solver("sklearn MLPClassifier", "scikit-learn", fit, budget, pair="gdsolve adam")


# ---- closed form (gdsolve.reference) -----------------------------------------------------------


def _closed_form(case, solver, pair):
    problem = case.problem

    def fit(X, y, _budget):
        sol = ref.least_squares(X, y, alpha=problem.alpha, fit_intercept=problem.fit_intercept,
                                solver=solver)
        return Fitted(0, sol.coef, sol.intercept, sol.predict)

    label = {"lstsq": "scipy lstsq", "cholesky": "Cholesky normal eq."}[solver]
    return Solver(label, "scipy", fit, None, unit="", pair=pair)


# ---- PyTorch -----------------------------------------------------------------------------------


def _torch_linear(case, torch, variant, budget, seed, pair):
    """Plain PyTorch training loop for the same objective (mean loss + alpha/2 ||w||^2)."""
    problem = case.problem
    l2 = problem.penalty_split()[0]
    classes = case.classes
    if variant == "adam":
        batch, make_opt = ADAM_BATCH, (lambda params: torch.optim.Adam(params, lr=ADAM_LR))
    else:
        step = _lipschitz_step(case.X, case.kind, l2, problem.fit_intercept)
        batch, make_opt = None, (lambda params: torch.optim.SGD(params, lr=step))
    F = torch.nn.functional

    def to_fitted(w, b, epochs):
        coef = w.numpy().T.astype(np.float64)
        intercept = b.numpy().astype(np.float64)
        if case.kind == "regression":
            coef, intercept = coef[0], float(intercept[0])
        return Fitted(int(epochs), coef, intercept, _linear_predict(coef, intercept, classes))

    def fit(X, y, epochs):
        started = time.perf_counter()
        Xt = torch.from_numpy(np.ascontiguousarray(X))
        n, p = X.shape
        if case.kind == "multiclass":
            target = torch.from_numpy(_labels(y, classes)[0].astype(np.int64))
            k = len(classes)
        elif case.kind == "binary":
            target = torch.from_numpy(_labels(y, classes)[1].astype(X.dtype))
            k = 1
        else:
            target = torch.from_numpy(np.asarray(y, dtype=X.dtype))
            k = 1
        w = torch.zeros(p, k, dtype=Xt.dtype, requires_grad=True)
        b = torch.zeros(k, dtype=Xt.dtype, requires_grad=problem.fit_intercept)
        opt = make_opt([w, b] if problem.fit_intercept else [w])
        gen = torch.Generator().manual_seed(seed)
        size = n if batch is None else batch
        snapshots = []
        for epoch in range(int(epochs)):
            order = torch.randperm(n, generator=gen) if size < n else None
            for start in range(0, n, size):
                if order is None:
                    xb, tb = Xt, target
                else:
                    idx = order[start:start + size]
                    xb, tb = Xt[idx], target[idx]
                z = xb @ w + b
                if case.kind == "multiclass":
                    loss = F.cross_entropy(z, tb)
                elif case.kind == "binary":
                    loss = F.softplus(-tb * z[:, 0]).mean()
                else:
                    loss = 0.5 * ((z[:, 0] - tb) ** 2).mean()
                if l2:
                    loss = loss + 0.5 * l2 * (w * w).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            snapshots.append((time.perf_counter() - started, epoch + 1,
                              w.detach().clone(), b.detach().clone()))
        fitted = to_fitted(w.detach(), b.detach(), epochs)
        fitted.snapshots = [(t, e, lambda w=ws, b=bs, e=e: to_fitted(w, b, e))
                            for t, e, ws, bs in snapshots]
        return fitted

    label = "PyTorch Adam" if variant == "adam" else "PyTorch full-batch GD"
    return Solver(label, "pytorch", fit, budget, pair=pair)


def _linear_predict(coef, intercept, classes):
    def predict(X):
        z = np.asarray(X @ np.asarray(coef).T) + intercept
        if classes is None:
            return z.reshape(-1)
        if z.ndim == 1 or z.shape[-1] == 1:
            return classes[(z.reshape(-1) > 0).astype(int)]
        return classes[np.argmax(z, axis=1)]
    return predict


def _glorot(layer_units, seed):
    """scikit-learn's MLP initialisation (same draws for the same seed), for the PyTorch peer."""
    rs = np.random.RandomState(seed)
    params = []
    for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:], strict=True):
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        params.append((rs.uniform(-bound, bound, (fan_in, fan_out)),
                       rs.uniform(-bound, bound, fan_out)))
    return params


def _torch_mlp(case, torch, budget, seed, hidden):
    F = torch.nn.functional
    classes = case.classes

    def to_fitted(tensors, epochs):
        weights = [t.numpy().astype(np.float64) for t in tensors]

        def predict_proba(Xp):
            h = np.asarray(Xp, dtype=np.float64)
            for i in range(0, len(weights), 2):
                h = h @ weights[i] + weights[i + 1]
                if i + 2 < len(weights):
                    h = np.maximum(h, 0.0)
            h -= h.max(axis=1, keepdims=True)
            e = np.exp(h)
            return e / e.sum(axis=1, keepdims=True)

        sq = sum(float(np.sum(weights[i] ** 2)) for i in range(0, len(weights), 2))
        return Fitted(int(epochs), predict=lambda Xp: classes[np.argmax(predict_proba(Xp), 1)],
                      predict_proba=predict_proba, squared_weights=sq)

    def fit(X, y, epochs):
        started = time.perf_counter()
        Xt = torch.from_numpy(np.ascontiguousarray(X))
        target = torch.from_numpy(_labels(y, classes)[0].astype(np.int64))
        units = [X.shape[1], *hidden, len(classes)]
        layers = []
        for W, b in _glorot(units, seed):
            layers.append(torch.tensor(W, dtype=Xt.dtype, requires_grad=True))
            layers.append(torch.tensor(b, dtype=Xt.dtype, requires_grad=True))
        opt = torch.optim.Adam(layers, lr=MLP_LR)
        gen = torch.Generator().manual_seed(seed)
        n = X.shape[0]
        snapshots = []
        for epoch in range(int(epochs)):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, MLP_BATCH):
                idx = order[start:start + MLP_BATCH]
                h = Xt[idx]
                for i in range(0, len(layers), 2):
                    h = h @ layers[i] + layers[i + 1]
                    if i + 2 < len(layers):
                        h = torch.relu(h)
                # scikit-learn's batch objective: mean loss + alpha/2 ||W||^2 / batch size
                penalty = sum((layers[i] ** 2).sum() for i in range(0, len(layers), 2))
                loss = F.cross_entropy(h, target[idx]) + 0.5 * case.mlp_alpha * penalty / len(idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            snapshots.append((time.perf_counter() - started, epoch + 1,
                              [t.detach().clone() for t in layers]))
        fitted = to_fitted([t.detach() for t in layers], epochs)
        fitted.snapshots = [(t, e, lambda ts=ts, e=e: to_fitted(ts, e))
                            for t, e, ts in snapshots]
        return fitted

    return Solver("PyTorch Adam", "pytorch", fit, budget, pair="gdsolve adam")


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def _split(X, y, seed, test_fraction=0.25):
    rng = np.random.default_rng(seed)
    order = rng.permutation(X.shape[0])
    n_test = max(1, int(round(test_fraction * X.shape[0])))
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]


def _standardise(X_train, X_test):
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std[std == 0] = 1.0
    return (X_train - mean) / std, (X_test - mean) / std


def _synthetic_regression(n, p, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    w = rng.normal(size=p) * (rng.random(p) < 0.5)
    y = X @ w + 0.5 * rng.normal(size=n) + 1.0
    return X, (y - y.mean()) / y.std()


def _synthetic_classification(n, p, n_classes, seed):
    from sklearn.datasets import make_classification

    return make_classification(n_samples=n, n_features=p, n_informative=max(2, p // 2),
                               n_redundant=p // 10, n_classes=n_classes,
                               n_clusters_per_class=1, class_sep=0.8, flip_y=0.05,
                               random_state=seed)


def _synthetic_sparse(n, p, nnz_per_row, seed):
    """Text-like CSR design (log-normal counts, ~nnz_per_row per row) with a sparse true model."""
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, p, size=(n, nnz_per_row))
    vals = rng.lognormal(0.0, 0.5, size=(n, nnz_per_row)) / math.sqrt(nnz_per_row)
    X = sp.csr_matrix((vals.ravel(), cols.ravel(), np.arange(0, n * nnz_per_row + 1,
                                                                nnz_per_row)), shape=(n, p))
    X.sum_duplicates()
    w = rng.normal(size=p) * (rng.random(p) < 0.2) * 3.0
    margin = np.asarray(X @ w).reshape(-1)
    margin -= np.median(margin)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-margin))).astype(int)
    return X, y


def _dataset(name):
    from sklearn import datasets

    loader = {"diabetes": datasets.load_diabetes, "breast_cancer": datasets.load_breast_cancer,
              "digits": datasets.load_digits}[name]
    X, y = loader(return_X_y=True)
    if name == "diabetes":
        y = (y - y.mean()) / y.std()
    return X.astype(np.float64), y


def _make_case(name, suite, kind, source, X, y, seed, dtype, problem, standardise=True,
               mlp_alpha=0.0):
    X_train, y_train, X_test, y_test = _split(X, y, seed)
    if standardise and not sp.issparse(X_train):
        X_train, X_test = _standardise(X_train, X_test)
    X_train = X_train.astype(dtype)
    X_test = X_test.astype(dtype)
    return Case(name, suite, kind, source, X_train, y_train, X_test, y_test, problem,
                mlp_alpha=mlp_alpha)


# ------------------------------------------------------------------------------------------------
# Suites
# ------------------------------------------------------------------------------------------------


def _linear_solvers(case, torch, sizes, seed, full_budget=None, closed_forms=True):
    """gdsolve's three linear variants and the peers each is paired with."""
    epochs, full = sizes["epochs"], full_budget or sizes["full_epochs"]
    solvers = [
        _gdsolve_linear(case, "sgd", epochs, seed, case.notes),
        _gdsolve_linear(case, "adam", epochs, seed, case.notes),
        _gdsolve_linear(case, "full-batch", full, seed, case.notes),
    ]
    solvers.append(_sklearn_sgd(case, epochs, seed, pair="gdsolve sgd"))
    if case.kind == "regression":
        solvers.append(_sklearn_ridge(case, pair="gdsolve full-batch"))
        if closed_forms:
            solvers.append(_closed_form(case, "lstsq", pair="gdsolve full-batch"))
            solvers.append(_closed_form(case, "cholesky", pair="gdsolve full-batch"))
    else:
        solvers.append(_sklearn_logistic_regression(case, pair="gdsolve full-batch"))
    if sp.issparse(case.X):
        case.notes.append("PyTorch peers are not run on sparse input")
    elif torch is not None:
        solvers.append(_torch_linear(case, torch, "adam", epochs, seed, pair="gdsolve adam"))
        solvers.append(_torch_linear(case, torch, "full-batch", full, seed,
                                     pair="gdsolve full-batch"))
    return [s for s in solvers if s is not None]


def build_cases(suites, sizes, dtype, seed, torch, n_samples=None, n_features=None):
    """The cases of the chosen suites (each with its solvers), in run order."""
    cases = []
    datasets = sizes["datasets"]
    l2 = ref.Problem(loss="squared_error", penalty="l2", alpha=ALPHA)
    log = ref.Problem(loss="log_loss", penalty="l2", alpha=ALPHA)

    def size(key):
        n, p = sizes[key][:2]
        return n_samples or n, n_features or p

    if "linear" in suites:
        n, p = size("linear")
        X, y = _synthetic_regression(n, p, seed)
        case = _make_case(f"regression {n}x{p}", "linear", "regression", "synthetic", X, y,
                          seed, dtype, l2)
        case.solvers = _linear_solvers(case, torch, sizes, seed)
        cases.append(case)
        if "diabetes" in datasets:
            X, y = _dataset("diabetes")
            case = _make_case("diabetes", "linear", "regression", "sklearn load_diabetes", X, y,
                              seed, dtype, l2)
            case.solvers = _linear_solvers(case, torch, sizes, seed)
            cases.append(case)
    if "logistic" in suites:
        n, p = size("logistic")
        X, y = _synthetic_classification(n, p, 2, seed)
        case = _make_case(f"binary {n}x{p}", "logistic", "binary", "synthetic", X, y, seed,
                          dtype, log)
        case.solvers = _linear_solvers(case, torch, sizes, seed)
        cases.append(case)
        if "breast_cancer" in datasets:
            X, y = _dataset("breast_cancer")
            case = _make_case("breast_cancer", "logistic", "binary",
                              "sklearn load_breast_cancer", X, y, seed, dtype, log)
            case.solvers = _linear_solvers(case, torch, sizes, seed)
            cases.append(case)
        if "digits" in datasets:
            X, y = _dataset("digits")
            case = _make_case("digits (softmax)", "logistic", "multiclass", "sklearn load_digits",
                              X, y, seed, dtype, log)
            case.solvers = _linear_solvers(case, torch, sizes, seed)
            cases.append(case)
    if "sparse" in suites:
        n, p, nnz = sizes["sparse"]
        n, p = n_samples or n, n_features or p
        X, y = _synthetic_sparse(n, p, min(nnz, p), seed)
        case = _make_case(f"sparse binary {n}x{p}", "sparse", "binary",
                          f"synthetic CSR, {min(nnz, p)} nonzeros a row", X, y, seed, dtype, log)
        case.solvers = _linear_solvers(case, torch, sizes, seed)
        cases.append(case)
    if "mlp" in suites:
        hidden = sizes["hidden"]
        epochs = sizes["mlp_epochs"]
        mlp_sources = []
        n, p = size("mlp")
        X, y = _synthetic_classification(n, p, 5, seed)
        mlp_sources.append((f"MLP 5 classes {n}x{p}", "synthetic", X, y))
        if "digits" in datasets:
            X, y = _dataset("digits")
            mlp_sources.append(("MLP digits", "sklearn load_digits", X, y))
        for name, source, X, y in mlp_sources:
            case = _make_case(name, "mlp", "multiclass", f"{source}, hidden {hidden}", X, y,
                              seed, dtype, None, mlp_alpha=MLP_ALPHA)
            solvers = [_gdsolve_mlp(case, epochs, seed, hidden, case.notes),
                       _sklearn_mlp(case, epochs, seed, hidden)]
            if torch is not None:
                solvers.append(_torch_mlp(case, torch, epochs, seed, hidden))
            case.solvers = [s for s in solvers if s is not None]
            cases.append(case)
    if "closed-form" in suites:
        n, p = sizes["crossover"][0], n_features or 100
        n = n_samples or n
        X, y = _synthetic_regression(n, p, seed + 1)
        ols = ref.Problem(loss="squared_error", penalty=None, alpha=0.0)
        case = _make_case(f"OLS {n}x{p}", "closed-form", "regression", "synthetic", X, y, seed,
                          dtype, ols)
        solvers = [
            _gdsolve_linear(case, "full-batch", sizes["full_epochs"], seed, case.notes),
            _gdsolve_linear(case, "sgd", sizes["epochs"], seed, case.notes),
            _sklearn_ridge(case, pair="gdsolve full-batch", alpha_zero=True),
            _closed_form(case, "lstsq", pair="gdsolve full-batch"),
            _closed_form(case, "cholesky", pair="gdsolve full-batch"),
        ]
        case.solvers = [s for s in solvers if s is not None]
        cases.append(case)
    if "gpu" in suites:
        cases.extend(_gpu_cases(sizes, dtype, seed, n_samples, n_features))
    return cases


def _gpu_cases(sizes, dtype, seed, n_samples, n_features):
    """gdsolve device='cuda' against its own CPU path and PyTorch CUDA (when both exist)."""
    gpu = _optional("gdsolve.gpu")
    module = _optional("gdsolve.linear_model")
    available = gpu is not None and gpu.cuda_available()
    cls = getattr(module, "SGDLogistic", None) if module is not None else None
    takes_device = cls is not None and "device" in cls().get_params()
    n, p = sizes["logistic"]
    X, y = _synthetic_classification(n_samples or n, n_features or p, 2, seed)
    case = _make_case(f"GPU binary {X.shape[0]}x{X.shape[1]}", "gpu", "binary", "synthetic", X,
                      y, seed, dtype, ref.Problem(loss="log_loss", penalty="l2", alpha=ALPHA))
    if not available:
        case.notes.append("gpu suite skipped: no CUDA device (gdsolve.gpu.cuda_available())")
        return [case]
    if not takes_device:
        case.notes.append("gpu suite skipped: the linear estimators do not take device= yet")
        return [case]
    solvers = [
        _gdsolve_linear(case, "full-batch", sizes["full_epochs"], seed, case.notes),
        _gdsolve_linear(case, "full-batch", sizes["full_epochs"], seed, case.notes,
                        device="cuda"),
    ]
    case.solvers = [s for s in solvers if s is not None]
    if len(case.solvers) == 2:
        case.solvers[1].pair = case.solvers[0].name  # CPU / GPU ratio
    return [case]


# ------------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------------


def _objective_and_score(case, solver, fitted):
    """(final training objective, relative gap or None, held-out score)."""
    from sklearn.metrics import accuracy_score, r2_score

    if case.problem is not None:
        reference = case.references[solver.reference]
        value = ref.objective_value(fitted.coef, fitted.intercept, reference.X, reference.y,
                                    reference.problem, classes=reference.classes)
        gap = (value - reference.objective) / max(abs(reference.objective), 1e-300)
    else:
        proba = np.clip(fitted.predict_proba(case.X), 1e-300, 1.0)
        index = _labels(case.y, case.classes)[0]
        n = case.X.shape[0]
        value = float(-np.mean(np.log(proba[np.arange(n), index])))
        value += 0.5 * case.mlp_alpha * fitted.squared_weights / n
        gap = None
    predicted = fitted.predict(case.X_test)
    if case.kind == "regression":
        score = float(r2_score(case.y_test, predicted))
    else:
        score = float(accuracy_score(case.y_test, predicted))
    return float(value), (None if gap is None else float(gap)), score


def _run_fit(solver, X, y, budget):
    """Time one fit; warnings (ConvergenceWarning by design: budgets are fixed) silenced and the
    garbage collector paused, as timeit does."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            fitted = solver.fit(X, y, budget)
            elapsed = time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return fitted, elapsed


def _trace_budgets(budget, points):
    if budget is None:
        return []
    grid = np.unique(np.round(np.geomspace(1, budget, num=max(points, 1))).astype(int))
    return [int(b) for b in grid if b < budget]


def _references(case):
    """Exact optima for the case's problem (and the one-vs-rest one when a peer needs it)."""
    if case.problem is None or not case.solvers:
        return
    X64 = case.X.astype(np.float64)
    needed = {s.reference for s in case.solvers} | {"main"}
    for key in sorted(needed):
        problem = case.problem if key == "main" else replace(case.problem, multi_class="ovr")
        start = time.perf_counter()
        # Untimed and small: one BLAS thread avoids the large slowdowns of threaded
        # factorisations on a machine shared with other work.
        with warnings.catch_warnings(), _blas_limit(1):
            warnings.simplefilter("ignore")
            case.references[key] = ref.solve(X64, case.y, problem)
        case.reference_times[key] = time.perf_counter() - start


def run_case(case, repeats, trace_points, progress=None):
    """Every solver of `case`: one warm-up, `repeats` timed fits (solver order alternating
    between repeats), then shorter fits for the gap-vs-time trace. Returns the case's record."""
    case_started = time.perf_counter()
    _references(case)
    records = {s.name: {"times": [], "epochs": [], "fitted": None, "error": None}
               for s in case.solvers}

    def tick(label):
        if progress is not None:
            if progress.n >= progress.total:  # the fit count is estimated up front
                progress.total = progress.n + 1
            progress.set_postfix_str(f"{case.name}: {label}"[:60])
            progress.update(1)

    for solver in case.solvers:  # warm-up: imports, first-call allocations
        try:
            _run_fit(solver, case.X, case.y, 1 if solver.budget else None)
        except Exception as err:  # a failing solver is reported, never aborts the run
            records[solver.name]["error"] = f"{type(err).__name__}: {err}"
        tick(solver.name)
    for r in range(repeats):
        order = case.solvers if r % 2 == 0 else case.solvers[::-1]
        for solver in order:
            rec = records[solver.name]
            if rec["error"] is None:
                try:
                    fitted, elapsed = _run_fit(solver, case.X, case.y, solver.budget)
                    rec["times"].append(elapsed)
                    rec["epochs"].append(fitted.n_epochs)
                    rec["fitted"] = fitted
                except Exception as err:
                    rec["error"] = f"{type(err).__name__}: {err}"
            tick(solver.name)

    results = []
    for solver in case.solvers:
        rec = records[solver.name]
        row = {
            "solver": solver.name, "library": solver.library, "unit": solver.unit,
            "budget": solver.budget, "pair": solver.pair, "reference": solver.reference,
            "note": solver.note, "error": rec["error"], "fit_times": rec["times"],
            "epochs_run": rec["epochs"][-1] if rec["epochs"] else None,
            "median_fit_time": None, "median_epoch_time": None, "objective": None,
            "gap": None, "score": None, "trace": [],
            "ratio_epoch_time": None, "ratio_fit_time": None,
        }
        if rec["fitted"] is not None:
            fit_time = float(np.median(rec["times"]))
            row["median_fit_time"] = fit_time
            epochs = rec["epochs"][-1]
            if epochs:
                row["median_epoch_time"] = float(np.median(
                    [t / max(e, 1) for t, e in zip(rec["times"], rec["epochs"], strict=True)]))
            value, gap, score = _objective_and_score(case, solver, rec["fitted"])
            row.update(objective=value, gap=gap, score=score)
            trace = []
            snapshots = rec["fitted"].snapshots
            if snapshots:
                # In-run snapshots of the last timed fit, at geometrically spaced epochs.
                wanted = set(_trace_budgets(epochs, 2 * trace_points))
                for elapsed, epoch, make in snapshots:
                    if epoch in wanted:
                        value_b, gap_b, _ = _objective_and_score(case, solver, make())
                        trace.append({"budget": epoch, "epochs": epoch, "time": elapsed,
                                      "objective": value_b, "gap": gap_b})
            # Else shorter fits up to what the timed fit ran (an iteration budget may stop early).
            for budget in _trace_budgets(epochs or None, trace_points) if not snapshots else []:
                try:
                    # Best of two: a single short fit is easily hit by a scheduling hiccup.
                    fitted, elapsed = _run_fit(solver, case.X, case.y, budget)
                    elapsed = min(elapsed, _run_fit(solver, case.X, case.y, budget)[1])
                except Exception as err:
                    row["note"] = (row["note"] + "; " if row["note"] else "") + \
                        f"trace fit failed at budget {budget}: {type(err).__name__}"
                    break
                value_b, gap_b, _ = _objective_and_score(case, solver, fitted)
                trace.append({"budget": budget, "epochs": fitted.n_epochs, "time": elapsed,
                              "objective": value_b, "gap": gap_b})
                tick(f"{solver.name} trace")
            trace.append({"budget": solver.budget, "epochs": epochs, "time": fit_time,
                          "objective": value, "gap": gap})
            row["trace"] = trace
        results.append(row)
        del rec["fitted"]

    by_name = {row["solver"]: row for row in results}
    for row in results:
        partner = by_name.get(row["pair"]) if row["pair"] else None
        if partner is None:
            continue
        if partner["median_epoch_time"] and row["median_epoch_time"]:
            row["ratio_epoch_time"] = partner["median_epoch_time"] / row["median_epoch_time"]
        if partner["median_fit_time"] and row["median_fit_time"]:
            row["ratio_fit_time"] = partner["median_fit_time"] / row["median_fit_time"]
    if case.problem is None:
        best = min((r["objective"] for r in results if r["objective"] is not None),
                   default=None)
        for row in results:
            for point in row["trace"]:
                point["gap_to_best"] = (None if best is None else
                                        (point["objective"] - best) / max(abs(best), 1e-300))
    return {
        "name": case.name, "suite": case.suite, "kind": case.kind, "source": case.source,
        "n_samples": int(case.X.shape[0]), "n_features": int(case.X.shape[1]),
        "n_test": int(case.X_test.shape[0]), "sparse": bool(sp.issparse(case.X)),
        "dtype": str(case.X.dtype),
        "problem": None if case.problem is None else dict(case.problem.__dict__),
        "mlp_alpha": case.mlp_alpha if case.problem is None else None,
        "reference": {
            key: {"solver": r.solver, "objective": r.objective, "n_iter": r.n_iter,
                  "gradient_norm": r.gradient_norm, "time": case.reference_times[key],
                  "problem": dict(r.problem.__dict__)}
            for key, r in case.references.items()
        },
        "score_name": "r2" if case.kind == "regression" else "accuracy",
        "wall_time": time.perf_counter() - case_started,
        "results": results,
        "notes": list(dict.fromkeys(case.notes)),
    }


def time_to_gap(trace, target):
    """Seconds to first reach `target` relative gap, interpolating log(gap) between trace
    points; None when never reached."""
    points = sorted((p["time"], p["gap"]) for p in trace if p.get("gap") is not None)
    prev = None
    for t, gap in points:
        if gap <= target:
            if prev is None or prev[1] <= 0 or gap <= 0:
                return t
            lg0, lg1, lt = math.log(prev[1]), math.log(gap), math.log(target)
            frac = (lg0 - lt) / (lg0 - lg1) if lg0 != lg1 else 1.0
            return prev[0] + frac * (t - prev[0])
        prev = (t, gap)
    return None


def run_crossover(sizes, dtype, seed, repeats, targets, progress=None, n_samples=None):
    """Time to reach each gap target vs number of features: gdsolve GD against lstsq and
    Cholesky on ridge problems n x p (the closed-form crossover)."""
    n, features = sizes["crossover"]
    n = n_samples or n
    rows = []
    problem = ref.Problem(loss="squared_error", penalty="l2", alpha=ALPHA)
    for p in features:
        X, y = _synthetic_regression(n, p, seed + p)
        case = _make_case(f"crossover p={p}", "closed-form", "regression", "synthetic", X, y,
                          seed, dtype, problem)
        solvers = [
            _gdsolve_linear(case, "full-batch", sizes["full_epochs"], seed, case.notes),
            _closed_form(case, "lstsq", pair="gdsolve full-batch"),
            _closed_form(case, "cholesky", pair="gdsolve full-batch"),
        ]
        case.solvers = [s for s in solvers if s is not None]
        record = run_case(case, repeats, sizes["trace_points"] + 2, progress)
        entry = {"n_samples": record["n_samples"], "n_features": p, "solvers": {},
                 "notes": record["notes"]}
        for row in record["results"]:
            entry["solvers"][row["solver"]] = {
                "median_fit_time": row["median_fit_time"], "gap": row["gap"],
                "time_to_gap": {f"{t:g}": time_to_gap(row["trace"], t) for t in targets},
                "trace": row["trace"], "error": row["error"],
            }
        rows.append(entry)
    return {"n_samples": n, "features": list(features), "targets": list(targets),
            "alpha": ALPHA, "rows": rows}


def _count_fits(cases, repeats, trace_points):
    total = 0
    for case in cases:
        for s in case.solvers:
            total += 1 + repeats + (len(_trace_budgets(s.budget, trace_points)) if s.budget
                                    else 0)
    return total


# ------------------------------------------------------------------------------------------------
# Machine description and output
# ------------------------------------------------------------------------------------------------


def _load_average():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(torch=None):
    """CPU, cores, BLAS (threadpoolctl) and library versions."""
    import scipy
    import sklearn

    import gdsolve

    versions = {"gdsolve": gdsolve.__version__, "numpy": np.__version__,
                "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
                "python": platform.python_version()}
    for name in ("torch", "threadpoolctl", "matplotlib", "cupy"):
        module = sys.modules.get(name) or (_optional(name) if name != "cupy" else None)
        if module is not None:
            versions[name] = getattr(module, "__version__", "unknown")
    try:
        from threadpoolctl import threadpool_info
        blas = [{k: info.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                                          "num_threads", "threading_layer", "architecture")}
                for info in threadpool_info()]
    except ImportError:
        blas = []
    return {
        "cpu": _cpu_name(), "machine": platform.machine(), "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "usable_cpus": _usable_cpus(),
        "load_average": _load_average(), "blas": blas,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "versions": versions,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _fmt(value, kind):
    if value is None:
        return "-"
    if kind == "time":
        if value >= 1:
            return f"{value:.2f}s"
        if value >= 1e-3:
            return f"{value * 1e3:.1f}ms"
        return f"{value * 1e6:.0f}us"
    if kind == "gap":
        return f"{value:.1e}"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "obj":
        return f"{value:.6g}"
    if kind == "score":
        return f"{value:.4f}"
    return str(value)


TABLE_COLUMNS = ("case", "solver", "epochs", "time/epoch", "fit time", "objective", "gap",
                 "score", "gdsolve/peer epoch", "gdsolve/peer fit")


def table_rows(report):
    rows = []
    for case in report["cases"]:
        for r in case["results"]:
            if r["error"]:
                rows.append([case["name"], r["solver"], "-", "-", "-", "-", "-", "-", "-",
                             "error: " + r["error"][:40]])
                continue
            epochs = "-" if not r["epochs_run"] else f"{r['epochs_run']}" + (
                " it" if r["unit"] == "iteration" else "")
            gap = r["gap"]
            rows.append([
                case["name"], r["solver"], epochs, _fmt(r["median_epoch_time"], "time"),
                _fmt(r["median_fit_time"], "time"), _fmt(r["objective"], "obj"),
                _fmt(gap, "gap") if gap is not None else "n/a",
                _fmt(r["score"], "score"), _fmt(r["ratio_epoch_time"], "ratio"),
                _fmt(r["ratio_fit_time"], "ratio"),
            ])
    return rows


def format_table(report):
    rows = table_rows(report)
    widths = [max(len(str(c)) for c in col) for col in zip(TABLE_COLUMNS, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(TABLE_COLUMNS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    previous = None
    for row in rows:
        shown = list(row)
        if row[0] == previous:
            shown[0] = ""
        previous = row[0]
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(shown, widths, strict=True)))
    return "\n".join(lines)


def machine_summary(machine):
    """One line: CPU, cores, BLAS and versions."""
    blas = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
                     f"{b.get('num_threads')} threads)" for b in machine["blas"]
                     if b.get("user_api") == "blas")
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    return (f"{machine['cpu']}, {machine['cpu_count']} cores ({machine['usable_cpus']} used); "
            f"BLAS: {blas or 'unknown'}; {versions}")


def format_markdown(report, image_prefix=""):
    """results.md: command, machine, the table, the crossover times and the plots."""
    rows = table_rows(report)
    lines = [f"Command: `{report['command'].strip()}` ({report['machine']['date']}, "
             f"{report['wall_time']:.0f} s)", "",
             f"Machine: {machine_summary(report['machine'])}", "",
             "| " + " | ".join(TABLE_COLUMNS) + " |",
             "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"]
    previous = None
    for row in rows:
        shown = list(row)
        if row[0] == previous:
            shown[0] = ""
        previous = row[0]
        lines.append("| " + " | ".join(str(c) for c in shown) + " |")
    lines += ["", "Ratios are gdsolve/peer against the paired gdsolve solver (below 1: gdsolve "
              "is faster); gap is (objective - optimum) / |optimum|."]
    cross = report.get("crossover")
    if cross and cross["rows"]:
        names = sorted({name for row in cross["rows"] for name in row["solvers"]})
        for target in cross["targets"]:
            key = f"{target:g}"
            lines += ["", f"Time to reach relative gap {key} (ridge, n = {cross['n_samples']}):",
                      "", "| n_features | " + " | ".join(names) + " |",
                      "|---|" + "|".join("---" for _ in names) + "|"]
            for row in cross["rows"]:
                cells = []
                for name in names:
                    entry = row["solvers"].get(name)
                    value = None if entry is None else entry["time_to_gap"].get(key)
                    cells.append(_fmt(value, "time") if value is not None else "not reached")
                lines.append(f"| {row['n_features']} | " + " | ".join(cells) + " |")
    if report["notes"]:
        lines += [""] + [f"- {note}" for note in report["notes"]]
    images = report.get("images") or []
    if images:
        lines.append("")
        lines += [f"![{name[:-4]}]({image_prefix}{name})" for name in images]
    return "\n".join(lines)


def _slug(name):
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _save_png(fig, path):
    """PNG with a 64-colour palette: line plots stay sharp at a third of the size."""
    import io

    try:
        from PIL import Image
    except ImportError:  # matplotlib depends on Pillow, but keep plain saving as a fallback
        fig.savefig(path)
        return
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=64).save(path, optimize=True)


def plot_gap(case_record, path):
    """Relative gap to the exact optimum vs fit time, log-log, one line per solver (a marker for
    closed forms). MLPs have no exact optimum: their training objective is drawn instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mlp = case_record["problem"] is None
    key = "objective" if mlp else "gap"
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=80)
    drawn = 0
    for row in case_record["results"]:
        points = [(p["time"], max(p[key], GAP_FLOOR)) for p in row["trace"]
                  if p.get(key) is not None and p["time"] > 0]
        if not points:
            continue
        points.sort()
        t, g = zip(*points, strict=True)
        style = "-o" if len(points) > 1 else "s"
        ax.plot(t, g, style, label=row["solver"], markersize=5)
        drawn += 1
    ax.set_xscale("log")
    ax.set_yscale("linear" if mlp else "log")
    ax.set_xlabel("fit time (s)")
    ax.set_ylabel("training objective (loss + penalty)" if mlp else
                  f"relative gap to the exact optimum (<= {GAP_FLOOR:g} drawn at {GAP_FLOOR:g})",
                  fontsize=9)
    ax.set_title(f"{case_record['name']} ({case_record['dtype']})" +
                 (": non-convex, no exact optimum" if mlp else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.12, top=0.92)  # tight_layout is slow
    _save_png(fig, path)
    plt.close(fig)
    return drawn


def plot_crossover(crossover, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(crossover["targets"]), figsize=(4.2 * len(
        crossover["targets"]), 4.0), dpi=80, squeeze=False)
    names = sorted({name for row in crossover["rows"] for name in row["solvers"]})
    for ax, target in zip(axes[0], crossover["targets"], strict=True):
        key = f"{target:g}"
        for name in names:
            pts = [(row["n_features"], row["solvers"][name]["time_to_gap"].get(key))
                   for row in crossover["rows"] if name in row["solvers"]]
            pts = [(p, t) for p, t in pts if t is not None and t > 0]
            if pts:
                ax.plot(*zip(*pts, strict=True), "-o", label=name, markersize=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("n_features")
        ax.set_ylabel("time to reach the gap (s)")
        ax.set_title(f"relative gap {key}, n = {crossover['n_samples']}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.92, wspace=0.3)
    _save_png(fig, path)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


def _parse_suites(values):
    suites = []
    for value in values or []:
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            if name == "all":
                suites.extend(DEFAULT_SUITES)
            elif name not in SUITES:
                raise ValueError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
            else:
                suites.append(name)
    return tuple(dict.fromkeys(suites)) or DEFAULT_SUITES


def build_parser(prog="gdsolve bench"):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark gdsolve against closed-form solvers, scikit-learn and PyTorch. "
                    "With no arguments: every suite on the default problems (< 2 minutes on "
                    "2 cores).",
    )
    p.add_argument("--suite", action="append", metavar="NAME",
                   help=f"suites to run, comma separated or repeated: {', '.join(SUITES)}, all "
                        f"(default: {','.join(DEFAULT_SUITES)})")
    p.add_argument("--quick", action="store_true",
                   help="small problems, 1 repeat, 1 thread: the CI smoke run (< 20 s)")
    p.add_argument("--size", choices=sorted(SIZES), default=None,
                   help="problem-size preset (default: 'default', or 'quick' with --quick)")
    p.add_argument("--n-samples", type=int, default=None,
                   help="override the number of samples of the synthetic problems")
    p.add_argument("--n-features", type=int, default=None,
                   help="override the number of features of the synthetic problems")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed fits per solver (median reported; default from the preset)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of the stochastic solvers (default from the preset)")
    p.add_argument("--gap-target", type=float, action="append", default=None,
                   help="relative gap(s) for the closed-form crossover (default 1e-4 and 1e-8)")
    p.add_argument("--out", default="gdsolve-bench",
                   help="output folder for bench.json, results.md and the PNGs")
    p.add_argument("--threads", type=int, default=None,
                   help="cores for everyone: BLAS (threadpoolctl), PyTorch and gdsolve's loops "
                        "(CPU affinity). Default: all cores, or 1 when the machine is busy "
                        "(load average above half the cores) and with --quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peers")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-datasets", action="store_true",
                   help="skip scikit-learn's bundled datasets (synthetic problems only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _check_args(args):
    for name in ("repeats", "epochs", "n_samples", "n_features", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.n_samples is not None and args.n_samples < 8:
        raise ValueError(f"--n-samples must be >= 8, got {args.n_samples}")
    for target in args.gap_target or []:
        if not 0 < target < 1:
            raise ValueError(f"--gap-target must be in (0, 1), got {target}")


def run(args):
    """Run the benchmark described by parsed `args`; returns the report dict (also written)."""
    _check_args(args)
    threads = args.threads or (1 if args.quick else None)
    busy_note = None
    load = _load_average()
    cores = os.cpu_count() or 1
    if threads is None and load is not None and load > 0.5 * cores:
        # Multi-threaded BLAS / PyTorch kernels on small blocks slow down 10-100x when another
        # process holds a core (their threads spin at every barrier): on a busy machine the
        # default run goes single-threaded, and says so.
        threads = 1
        busy_note = (f"the machine was busy at the start (load average {load:.1f} on {cores} "
                     "cores): ran single-threaded, as --threads 1; pass --threads N to override")
    args.busy_note = busy_note
    if threads is None:
        return _run(args, None)
    from threadpoolctl import threadpool_limits

    # N threads means N cores for everyone: BLAS (threadpoolctl), PyTorch, and gdsolve's own
    # loop threads, which follow the process's CPU affinity.
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        if affinity is not None and threads < len(affinity):
            os.sched_setaffinity(0, sorted(affinity)[:threads])
        with threadpool_limits(limits=threads):
            return _run(args, threads)
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)


def _run(args, threads):
    suites = _parse_suites(args.suite)
    preset = args.size or ("quick" if args.quick else "default")
    sizes = dict(SIZES[preset])
    if args.epochs is not None:
        sizes["epochs"] = args.epochs
        sizes["mlp_epochs"] = args.epochs
    if args.no_datasets:
        sizes["datasets"] = ()
    repeats = args.repeats or sizes["repeats"]
    dtype = np.dtype(args.dtype)
    targets = tuple(args.gap_target or (1e-4, 1e-8))
    torch = _torch(not args.no_torch, threads)
    notes = [args.busy_note] if getattr(args, "busy_note", None) else []
    if torch is None and not args.no_torch:
        notes.append("PyTorch is not installed: PyTorch peers skipped (pip install torch)")
    tqdm = _optional("tqdm")
    started = time.perf_counter()

    cases = build_cases(suites, sizes, dtype, args.seed, torch, args.n_samples, args.n_features)
    n_fits = _count_fits(cases, repeats, sizes["trace_points"])
    if "closed-form" in suites:
        crossover_case_fits = (1 + repeats) * 3 + sizes["trace_points"] + 2
        n_fits += crossover_case_fits * len(sizes["crossover"][1])
    progress = None
    if tqdm is not None and not args.quiet:
        progress = tqdm.tqdm(total=n_fits, desc="gdsolve bench", unit="fit", file=sys.stderr,
                             dynamic_ncols=True)
    records = []
    try:
        for case in cases:
            records.append(run_case(case, repeats, sizes["trace_points"], progress))
        crossover = (run_crossover(sizes, dtype, args.seed, repeats, targets, progress,
                                   args.n_samples) if "closed-form" in suites else None)
    finally:
        if progress is not None:
            progress.close()
    # One line per distinct note, naming the cases it concerns.
    where = {}
    for record in records:
        for note in record["notes"]:
            where.setdefault(note, []).append(record["name"])
    for row in (crossover or {}).get("rows", []):
        for note in row["notes"]:
            where.setdefault(note, []).append(f"crossover p={row['n_features']}")
    notes.extend(f"{note} ({', '.join(cases)})" for note, cases in where.items())
    report = {
        "command": "gdsolve bench " + " ".join(getattr(args, "argv", []) or []),
        "config": {"suites": list(suites), "size": preset, "dtype": args.dtype,
                   "repeats": repeats, "seed": args.seed, "sizes": _jsonable(sizes),
                   "threads": threads or _blas_threads(),
                   "alpha": ALPHA, "adam_lr": ADAM_LR, "adam_batch": ADAM_BATCH,
                   "mlp_lr": MLP_LR, "mlp_batch": MLP_BATCH, "gap_targets": list(targets)},
        "machine": machine_info(torch),
        "cases": records,
        "crossover": crossover,
        "notes": list(dict.fromkeys(notes)),
    }
    report["wall_time"] = time.perf_counter() - started
    write_outputs(report, args.out, plots=not args.no_plots)
    report["wall_time"] = time.perf_counter() - started
    # rewrite with the final wall time (plots included)
    with open(os.path.join(args.out, "bench.json"), "w") as fh:
        json.dump(_jsonable(report), fh, indent=1, allow_nan=False)
    return report


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


def write_outputs(report, out, plots=True):
    """bench.json, results.md and (unless plots=False) gap_<case>.png and crossover.png."""
    os.makedirs(out, exist_ok=True)
    images = []
    if plots:
        if _optional("matplotlib") is None:
            report["notes"].append("matplotlib is not installed: plots skipped")
        else:
            for case in report["cases"]:
                if not case["results"]:
                    continue
                name = f"gap_{_slug(case['name'])}.png"
                plot_gap(case, os.path.join(out, name))
                images.append(name)
            if report.get("crossover"):
                plot_crossover(report["crossover"], os.path.join(out, "crossover.png"))
                images.append("crossover.png")
    report["images"] = images
    with open(os.path.join(out, "bench.json"), "w") as fh:
        json.dump(_jsonable(report), fh, indent=1, allow_nan=False)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(format_markdown(report) + "\n")


def main(argv=None, prog="gdsolve bench"):
    """Entry point of `gdsolve bench` / `python -m gdsolve.bench`. Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    args.argv = argv
    try:
        report = run(args)
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    print(format_table(report))
    for note in report["notes"]:
        print(f"note: {note}")
    print(f"\nratios are gdsolve/peer (below 1: gdsolve faster). Wrote {args.out}/bench.json, "
          f"results.md and {len(report['images'])} plots in {report['wall_time']:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m gdsolve.bench"))
