"""What a benchmark case is: suite names, problem sizes per preset, the solvers' shared settings,
the Case / Solver / Fitted records, and the data (synthetic problems, scikit-learn's datasets).

Called by gdsolve.bench.peers (records, settings), .suites (data), .timing (data, for the
crossover) and .cli (suite names, sizes, settings for bench.json).
"""

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from gdsolve import reference as ref

SUITES = ("linear", "logistic", "sparse", "mlp", "closed-form", "gpu")
DEFAULT_SUITES = ("linear", "logistic", "sparse", "mlp", "closed-form")

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


# ---- records -----------------------------------------------------------------------------------


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


# ---- data --------------------------------------------------------------------------------------


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
