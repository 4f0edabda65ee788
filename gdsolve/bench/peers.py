"""The solvers: each adapter builds a Solver whose fit(X, y, budget) runs one library (gdsolve,
scikit-learn, closed form from gdsolve.reference, a plain PyTorch loop) and returns a Fitted.

Called by gdsolve.bench.suites (every case's solvers) and .timing (the closed-form crossover).
"""

import math
import time

import numpy as np

from gdsolve import reference as ref
from gdsolve.bench import env
from gdsolve.bench.cases import (
    ADAM_BATCH,
    ADAM_LR,
    MLP_BATCH,
    MLP_LR,
    SGD_ETA0_REGRESSION,
    SGD_POWER_T_REGRESSION,
    Fitted,
    Solver,
    _labels,
)


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
    module = env._optional("gdsolve.linear_model")
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
    elif variant == "lbfgs":  # the CPU default for batch_size='full' on smooth objectives
        params.update(batch_size="full", optimizer="sgd", learning_rate="lbfgs")
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
    module = env._optional("gdsolve.neural_network")
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
