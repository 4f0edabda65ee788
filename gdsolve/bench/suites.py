"""The suites: which cases each suite builds (data set, problem, dtype) and which peers each
gdsolve solver is paired with (the "gpu" suite is gdsolve.bench.gpu's).

Called by gdsolve.bench.cli (build_cases).
"""

import scipy.sparse as sp

from gdsolve import reference as ref
from gdsolve.bench.cases import (
    ALPHA,
    MLP_ALPHA,
    _dataset,
    _make_case,
    _synthetic_classification,
    _synthetic_regression,
    _synthetic_sparse,
)
from gdsolve.bench.peers import (
    _closed_form,
    _gdsolve_linear,
    _gdsolve_mlp,
    _sklearn_logistic_regression,
    _sklearn_mlp,
    _sklearn_ridge,
    _sklearn_sgd,
    _torch_linear,
    _torch_mlp,
)


def _linear_solvers(case, torch, sizes, seed, full_budget=None, closed_forms=True):
    """gdsolve's four linear variants and the peers each is paired with (scikit-learn's
    LogisticRegression and Ridge with the L-BFGS full batch, the CPU default for
    batch_size='full' on these smooth problems: issue 14's target)."""
    epochs, full = sizes["epochs"], full_budget or sizes["full_epochs"]
    solvers = [
        _gdsolve_linear(case, "sgd", epochs, seed, case.notes),
        _gdsolve_linear(case, "adam", epochs, seed, case.notes),
        _gdsolve_linear(case, "full-batch", full, seed, case.notes),
        _gdsolve_linear(case, "lbfgs", full, seed, case.notes),
    ]
    solvers.append(_sklearn_sgd(case, epochs, seed, pair="gdsolve sgd"))
    if case.kind == "regression":
        solvers.append(_sklearn_ridge(case, pair="gdsolve lbfgs"))
        if closed_forms:
            solvers.append(_closed_form(case, "lstsq", pair="gdsolve full-batch"))
            solvers.append(_closed_form(case, "cholesky", pair="gdsolve full-batch"))
    else:
        solvers.append(_sklearn_logistic_regression(case, pair="gdsolve lbfgs"))
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
    return cases

