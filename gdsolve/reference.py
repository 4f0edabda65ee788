"""Exact optima that gradient-descent fits are measured against, and the objective they minimise.

Called by users (``objective``, ``relative_gap``), by ``gdsolve.bench`` (closed-form peers and the
gap of every solver) and by the tests. Least squares / ridge are solved by ``scipy.linalg.lstsq``
or by Cholesky on the normal equations; logistic regression by Newton's method (or L-BFGS when the
Hessian would be large) run to round-off; L1 / elastic-net and Huber by L-BFGS-B.

The objective is the estimators' one::

    F(w, b) = sum_i s_i * loss(y_i, x_i . w + b) / n_samples  +  alpha * R(w)

with ``s`` the sample weights (ones by default; scikit-learn SGD's normalisation by ``n_samples``,
not by ``sum(s)``), ``R = 0.5 ||w||^2`` (l2), ``||w||_1`` (l1) or
``l1_ratio ||w||_1 + (1 - l1_ratio) 0.5 ||w||^2`` (elasticnet), the intercept never penalised.
Losses: squared_error ``0.5 (y - p)^2``, huber, epsilon_insensitive, log_loss ``log(1 + exp(-y p))``
for binary ``y`` in {-1, +1} (the second class is +1), and for three or more classes the mean
softmax cross-entropy (``multi_class="multinomial"``) or the sum of the one-vs-rest binary
objectives (``multi_class="ovr"``, what scikit-learn's SGDClassifier minimises).

Peers map onto it as: ``Ridge(a)`` <-> ``alpha = a / n``; ``LogisticRegression(C)`` <->
``alpha = 1 / (C n)``; ``Lasso`` / ``ElasticNet`` / ``SGD*`` share ``alpha``.
"""

import warnings
from dataclasses import dataclass, field, replace
from numbers import Integral, Real

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse as sp
from scipy.special import expit, log_expit, logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array

__all__ = [
    "Problem",
    "Reference",
    "least_squares",
    "logistic",
    "solve",
    "reference_for",
    "problem_of",
    "objective",
    "objective_value",
    "relative_gap",
]

LOSSES = ("squared_error", "huber", "epsilon_insensitive", "log_loss")
PENALTIES = ("l2", "l1", "elasticnet", None)
_LOSS_ALIASES = {"squared": "squared_error", "log": "log_loss"}  # gdsolve's / older names
MULTI_CLASS = ("multinomial", "ovr")

# Above this many Hessian entries Newton's dense solve costs more than L-BFGS's extra iterations.
_NEWTON_MAX_PARAMS = 3000
_NEWTON_MAX_PARAMS_SPARSE = 500
# lstsq works on a dense copy of X; refuse to densify a sparse matrix bigger than this.
_LSTSQ_MAX_DENSE = 50_000_000


# --------------------------------------------------------------------------------------------
# The problem definition
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One objective F(w, b): loss, penalty and their parameters (see the module docstring)."""

    loss: str = "squared_error"
    penalty: str | None = "l2"
    alpha: float = 0.0
    l1_ratio: float = 0.15
    epsilon: float = 0.1
    fit_intercept: bool = True
    multi_class: str = "multinomial"

    def __post_init__(self):
        penalty = None if self.penalty in (None, "none") else self.penalty
        object.__setattr__(self, "penalty", penalty)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {PENALTIES}, got {self.penalty!r}")
        if not isinstance(self.alpha, Real) or not (np.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
        if not isinstance(self.l1_ratio, Real) or not 0.0 <= self.l1_ratio <= 1.0:
            raise ValueError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        if not isinstance(self.epsilon, Real) or not self.epsilon >= 0:
            raise ValueError(f"epsilon must be a number >= 0, got {self.epsilon!r}")
        if self.multi_class not in MULTI_CLASS:
            raise ValueError(f"multi_class must be one of {MULTI_CLASS}, got {self.multi_class!r}")
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "l1_ratio", float(self.l1_ratio))
        object.__setattr__(self, "epsilon", float(self.epsilon))
        object.__setattr__(self, "fit_intercept", bool(self.fit_intercept))

    @property
    def is_classification(self):
        return self.loss == "log_loss"

    def penalty_split(self):
        """(coefficient of 0.5 ||w||^2, coefficient of ||w||_1), as csrc penalties.h."""
        if self.penalty is None:
            return 0.0, 0.0
        if self.penalty == "l2":
            return self.alpha, 0.0
        if self.penalty == "l1":
            return 0.0, self.alpha
        return self.alpha * (1.0 - self.l1_ratio), self.alpha * self.l1_ratio

    def penalty_value(self, coef):
        l2, l1 = self.penalty_split()
        coef = np.asarray(coef, dtype=np.float64)
        return 0.5 * l2 * float(np.sum(coef * coef)) + l1 * float(np.sum(np.abs(coef)))


@dataclass
class Reference:
    """An exact optimum: coefficients, intercept, objective value and how they were obtained.

    ``coef_`` / ``intercept_`` / ``classes_`` mirror the estimators, so a Reference can be passed
    wherever a fitted linear model is expected (``objective``, ``predict``). It keeps references
    to the training data (not copies) so that ``relative_gap(estimator, reference)`` needs nothing
    else.
    """

    coef: np.ndarray
    intercept: np.ndarray | float
    objective: float
    problem: Problem
    solver: str
    n_iter: int
    classes: np.ndarray | None = None
    gradient_norm: float = 0.0
    X: object = field(default=None, repr=False, compare=False)
    y: object = field(default=None, repr=False, compare=False)
    sample_weight: object = field(default=None, repr=False, compare=False)

    @property
    def coef_(self):
        return self.coef

    @property
    def intercept_(self):
        return self.intercept

    @property
    def classes_(self):
        return self.classes

    def decision_function(self, X):
        X = check_array(X, accept_sparse=("csr", "csc"), dtype=np.float64)
        return _margins(self.coef, self.intercept, X)

    def predict(self, X):
        scores = self.decision_function(X)
        if not self.problem.is_classification:
            return scores
        if scores.ndim == 1:
            return self.classes[(scores > 0).astype(int)]
        return self.classes[np.argmax(scores, axis=1)]


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _check_X(X):
    return check_array(X, accept_sparse=("csr", "csc"), dtype=np.float64, ensure_min_samples=1)


def _check_sample_weight(sample_weight, n_samples):
    if sample_weight is None:
        return np.ones(n_samples)
    sw = np.asarray(sample_weight, dtype=np.float64)
    if sw.ndim == 0:
        sw = np.full(n_samples, float(sw))
    if sw.shape != (n_samples,):
        raise ValueError(f"sample_weight has shape {sw.shape}, expected ({n_samples},)")
    if not np.all(np.isfinite(sw)) or np.any(sw < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    if sw.sum() <= 0:
        raise ValueError("sample_weight must not be all zero")
    return sw


def _check_Xy(X, y, sample_weight, *, classification):
    X = _check_X(X)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}")
    if not classification:
        y = y.astype(np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinity")
    sw = _check_sample_weight(sample_weight, X.shape[0])
    return X, y, sw


def _normaliser(sample_weight):
    """Denominator of the weighted mean loss (scikit-learn SGD's convention: n_samples)."""
    return float(sample_weight.shape[0])


def _encode_classes(y, classes):
    """Map labels to indices of `classes` (sorted unique labels unless given)."""
    classes = np.unique(y) if classes is None else np.asarray(classes)
    index = np.searchsorted(classes, y)
    index = np.clip(index, 0, len(classes) - 1)
    if not np.all(classes[index] == y):
        raise ValueError(f"y has labels outside the classes {classes!r}")
    return classes, index


def _margins(coef, intercept, X):
    """X @ coef.T + intercept, 1-D for a single output."""
    coef = np.asarray(coef, dtype=np.float64)
    intercept = np.asarray(intercept, dtype=np.float64)
    if coef.ndim == 1 or coef.shape[0] == 1:
        z = X @ coef.reshape(-1)
        return np.asarray(z).reshape(-1) + float(intercept.reshape(-1)[0] if intercept.size else 0)
    z = np.asarray(X @ coef.T)
    return z + intercept.reshape(1, -1)


def _weighted_mean_rows(X, w):
    """sum_i w_i x_i / sum_i w_i, dense or sparse X."""
    return np.asarray(X.T @ w).reshape(-1) / w.sum()


# --------------------------------------------------------------------------------------------
# Objective values
# --------------------------------------------------------------------------------------------


def _loss_terms(problem, z, y_enc):
    """Per-sample losses for margins z; y_enc is float targets (regression), +-1 (binary) or
    class indices (multinomial)."""
    loss = problem.loss
    if loss == "squared_error":
        r = z - y_enc
        return 0.5 * r * r
    if loss == "huber":
        r = np.abs(z - y_enc)
        eps = problem.epsilon
        return np.where(r <= eps, 0.5 * r * r, eps * r - 0.5 * eps * eps)
    if loss == "epsilon_insensitive":
        return np.maximum(0.0, np.abs(y_enc - z) - problem.epsilon)
    if z.ndim == 1:
        return -log_expit(y_enc * z)
    return logsumexp(z, axis=1) - z[np.arange(z.shape[0]), y_enc]


def objective_value(coef, intercept, X, y, problem=None, *, sample_weight=None, classes=None,
                    **problem_params):
    """F(coef, intercept) on (X, y) for `problem` (a Problem, or its fields as keywords).

    Binary log_loss takes ``coef`` of shape (n_features,) or (1, n_features); multiclass takes
    (n_classes, n_features) and reads ``problem.multi_class``.
    """
    if problem is None:
        problem = Problem(**problem_params)
    elif problem_params:
        problem = replace(problem, **problem_params)
    X, y, sw = _check_Xy(X, y, sample_weight, classification=problem.is_classification)
    coef = np.asarray(coef, dtype=np.float64)
    n_coef_features = coef.shape[-1] if coef.ndim else 0
    if n_coef_features != X.shape[1]:
        raise ValueError(f"coef has {n_coef_features} features, X has {X.shape[1]}")
    if not problem.fit_intercept:
        intercept = np.zeros(1 if coef.ndim == 1 else coef.shape[0])
    z = _margins(coef, intercept, X)
    norm = _normaliser(sw)
    if not problem.is_classification:
        if z.ndim != 1:
            raise ValueError("regression losses take a single output (coef of shape (n_features,))")
        return float(sw @ _loss_terms(problem, z, y)) / norm + problem.penalty_value(coef)
    classes, index = _encode_classes(y, classes)
    if len(classes) == 2 or z.ndim == 1:
        if z.ndim != 1:
            raise ValueError(f"binary log_loss takes one row of coefficients, got {coef.shape}")
        signs = np.where(index == len(classes) - 1, 1.0, -1.0)
        return float(sw @ _loss_terms(problem, z, signs)) / norm + problem.penalty_value(coef)
    if z.shape[1] != len(classes):
        raise ValueError(f"coef has {z.shape[1]} rows but there are {len(classes)} classes")
    if problem.multi_class == "multinomial":
        return float(sw @ _loss_terms(problem, z, index)) / norm + problem.penalty_value(coef)
    total = 0.0
    for k in range(len(classes)):
        signs = np.where(index == k, 1.0, -1.0)
        total += float(sw @ _loss_terms(problem, z[:, k], signs)) / norm
        total += problem.penalty_value(coef[k])
    return total


# --------------------------------------------------------------------------------------------
# Least squares / ridge, closed form
# --------------------------------------------------------------------------------------------


def least_squares(X, y, *, alpha=0.0, sample_weight=None, fit_intercept=True, solver="lstsq"):
    """Exact minimiser of ``sum_i s_i 0.5 (y_i - x_i w - b)^2 / n + alpha 0.5 ||w||^2``.

    ``solver="lstsq"``: ``scipy.linalg.lstsq`` (SVD-based, gelsd) on the weighted, centred design
    stacked over ``sqrt(n alpha) I``; the minimum-norm solution when alpha = 0 and X is rank
    deficient. ``solver="cholesky"``: Cholesky on ``Xc' S Xc + n alpha I``; X may be sparse (the
    centring is then implicit). The intercept is ``ybar - xbar w`` with weighted means.
    """
    if solver not in ("lstsq", "cholesky"):
        raise ValueError(f"solver must be 'lstsq' or 'cholesky', got {solver!r}")
    problem = Problem(loss="squared_error", penalty="l2", alpha=alpha,
                      fit_intercept=fit_intercept)
    X, y, sw = _check_Xy(X, y, sample_weight, classification=False)
    if solver == "lstsq" and sp.issparse(X) and X.shape[0] * X.shape[1] > _LSTSQ_MAX_DENSE:
        raise ValueError(
            f"solver='lstsq' needs a dense copy of X ({X.shape[0]} x {X.shape[1]}); "
            "use solver='cholesky' for large sparse inputs"
        )
    n_features = X.shape[1]
    ridge = problem.alpha * _normaliser(sw)
    if fit_intercept:
        x_mean = _weighted_mean_rows(X, sw)
        y_mean = float(sw @ y / sw.sum())
    else:
        x_mean = np.zeros(n_features)
        y_mean = 0.0

    if solver == "lstsq":
        dense = X.toarray() if sp.issparse(X) else X
        root_w = np.sqrt(sw)
        A = root_w[:, None] * (dense - x_mean)
        b = root_w * (y - y_mean)
        if ridge > 0:
            A = np.vstack([A, np.sqrt(ridge) * np.eye(n_features)])
            b = np.concatenate([b, np.zeros(n_features)])
        coef = scipy.linalg.lstsq(A, b, lapack_driver="gelsd", check_finite=False)[0]
    else:
        if sp.issparse(X):
            gram = np.asarray((X.T @ X.multiply(sw[:, None]).tocsr()).todense())
            gram -= sw.sum() * np.outer(x_mean, x_mean)
            rhs = np.asarray(X.T @ (sw * y)).reshape(-1) - sw.sum() * x_mean * y_mean
        else:
            centred = X - x_mean
            weighted = centred * sw[:, None]
            gram = centred.T @ weighted
            rhs = weighted.T @ (y - y_mean)
        gram[np.diag_indices_from(gram)] += ridge
        singular = ValueError(
            "the normal equations are singular (X is rank deficient and alpha = 0); "
            "use solver='lstsq' or alpha > 0"
        )
        try:
            factor = scipy.linalg.cho_factor(gram, lower=True, check_finite=False)
        except np.linalg.LinAlgError as err:
            raise singular from err
        # Round-off can let a singular Gram matrix factor with a tiny pivot: treat pivots below
        # what float64 can resolve as singular rather than return a meaningless solution.
        pivots = np.abs(np.diag(factor[0])) ** 2
        if n_features and pivots.min() <= 1e-13 * pivots.max():
            raise singular
        coef = scipy.linalg.cho_solve(factor, rhs, check_finite=False)
    intercept = y_mean - float(x_mean @ coef) if fit_intercept else 0.0
    value = objective_value(coef, intercept, X, y, problem, sample_weight=sw)
    grad = _least_squares_gradient(coef, intercept, X, y, sw, problem)
    return Reference(coef=coef, intercept=intercept, objective=value, problem=problem,
                     solver=solver, n_iter=1, gradient_norm=grad, X=X, y=y, sample_weight=sw)


def _least_squares_gradient(coef, intercept, X, y, sw, problem):
    r = sw * (np.asarray(X @ coef).reshape(-1) + intercept - y) / _normaliser(sw)
    g = np.asarray(X.T @ r).reshape(-1) + problem.alpha * coef
    g0 = r.sum() if problem.fit_intercept else 0.0
    return float(max(np.max(np.abs(g), initial=0.0), abs(g0)))


# --------------------------------------------------------------------------------------------
# Smooth objectives for the iterative references: value, gradient, Hessian in theta = [W | b]
# --------------------------------------------------------------------------------------------


class _Smooth:
    """Loss part plus the l2 part of the penalty, with parameters flattened as theta.

    Layout: theta = W.ravel() followed by b (n_outputs values) when fit_intercept. W has one row
    per output: 1 for regression and binary, K for multinomial.
    """

    def __init__(self, X, y_enc, sw, problem, n_outputs, l2):
        self.X, self.y, self.sw, self.problem = X, y_enc, sw, problem
        self.n_outputs = n_outputs
        self.n_features = X.shape[1]
        self.l2 = l2
        self.norm = _normaliser(sw)
        self.size = n_outputs * (self.n_features + int(problem.fit_intercept))

    def unpack(self, theta):
        k, p = self.n_outputs, self.n_features
        W = theta[: k * p].reshape(k, p)
        b = theta[k * p:] if self.problem.fit_intercept else np.zeros(k)
        return W, b

    def margins(self, theta):
        W, b = self.unpack(theta)
        z = np.asarray(self.X @ W.T) + b
        return z[:, 0] if self.n_outputs == 1 else z

    def value_grad(self, theta):
        W, _ = self.unpack(theta)
        z = self.margins(theta)
        loss = self.problem.loss
        if loss == "log_loss" and self.n_outputs > 1:
            lse = logsumexp(z, axis=1)
            value_terms = lse - z[np.arange(z.shape[0]), self.y]
            dz = np.exp(z - lse[:, None])
            dz[np.arange(z.shape[0]), self.y] -= 1.0
        elif loss == "log_loss":
            value_terms = -log_expit(self.y * z)
            dz = -self.y * expit(-self.y * z)
        elif loss == "squared_error":
            r = z - self.y
            value_terms, dz = 0.5 * r * r, r
        elif loss == "huber":
            r = z - self.y
            eps = self.problem.epsilon
            small = np.abs(r) <= eps
            value_terms = np.where(small, 0.5 * r * r, eps * np.abs(r) - 0.5 * eps * eps)
            dz = np.where(small, r, eps * np.sign(r))
        else:
            raise ValueError(f"loss {loss!r} is not differentiable; no iterative reference for it")
        value = float(self.sw @ value_terms) / self.norm + 0.5 * self.l2 * float(np.sum(W * W))
        dz = (dz * (self.sw / self.norm)[:, None]) if dz.ndim == 2 else dz * self.sw / self.norm
        dz2 = dz.reshape(dz.shape[0], -1)
        gW = np.asarray(self.X.T @ dz2).T + self.l2 * W
        parts = [gW.ravel()]
        if self.problem.fit_intercept:
            parts.append(dz2.sum(axis=0))
        return value, np.concatenate(parts)

    def hessian(self, theta):
        """Exact Hessian of value(); only for log_loss and squared_error."""
        z = self.margins(theta)
        k, p = self.n_outputs, self.n_features
        fit_b = self.problem.fit_intercept
        q = p + int(fit_b)
        scaled = self.sw / self.norm
        sparse = sp.issparse(self.X)

        def gram(rows, d):
            # [X 1]' diag(d) [X 1] over `rows`, dense (q, q); the ones column is handled apart so
            # that a sparse product stays sparse.
            part = self.X[rows]
            if sparse:
                xtdx = (part.T @ part.multiply(d[:, None]).tocsr()).toarray()
            else:
                xtdx = part.T @ (part * d[:, None])
            if not fit_b:
                return xtdx
            block = np.empty((q, q))
            block[:p, :p] = xtdx
            block[:p, p] = block[p, :p] = np.asarray(part.T @ d).reshape(-1)
            block[p, p] = d.sum()
            return block

        # H in class-major layout: block (a, c) is (q, q) over [w_a | b_a] x [w_c | b_c].
        H = np.zeros((k * q, k * q))
        for start in range(0, self.X.shape[0], 4096):
            rows = slice(start, start + 4096)
            s = scaled[rows]
            if self.problem.loss == "squared_error":
                H += gram(rows, s)
            elif k == 1:
                sig = expit(z[rows])
                H += gram(rows, s * sig * (1.0 - sig))
            else:
                # softmax: d^2 loss / dz_a dz_c = P_a (delta_ac - P_c)
                zr = z[rows]
                P = np.exp(zr - logsumexp(zr, axis=1)[:, None])
                if sparse:
                    for a in range(k):
                        for c in range(a, k):
                            block = gram(rows, s * P[:, a] * ((a == c) - P[:, c]))
                            H[a * q:(a + 1) * q, c * q:(c + 1) * q] += block
                            if a != c:
                                H[c * q:(c + 1) * q, a * q:(a + 1) * q] += block.T
                else:
                    # one GEMM for every block: -Z' diag(s) Z with Z_(i, a, j) = P_ia x_ij,
                    # plus the diagonal blocks X' diag(s P_a) X
                    part = self.X[rows]
                    if fit_b:
                        part = np.hstack([part, np.ones((part.shape[0], 1))])
                    Z = (part[:, None, :] * P[:, :, None]).reshape(part.shape[0], k * q)
                    H -= Z.T @ (Z * s[:, None])
                    for a in range(k):
                        H[a * q:(a + 1) * q, a * q:(a + 1) * q] += gram(rows, s * P[:, a])
        # Reorder to theta's layout (all W rows, then the k intercepts) and add the l2 term.
        order = np.concatenate([np.arange(a * q, a * q + p) for a in range(k)]
                               + ([np.arange(p, k * q, q)] if fit_b else []))
        H = H[np.ix_(order, order)]
        w_diag = np.arange(k * p)
        H[w_diag, w_diag] += self.l2
        return H


def _newton(smooth, theta, *, tol, max_iter):
    """Damped Newton (Armijo backtracking) to round-off; returns theta, n_iter, gradient norm."""
    value, grad = smooth.value_grad(theta)
    n_iter = 0
    roundoff_steps = 0
    for n_iter in range(1, max_iter + 1):
        if np.max(np.abs(grad)) <= tol:
            n_iter -= 1
            break
        H = smooth.hessian(theta)
        # A tiny ridge handles the flat direction of softmax intercepts (and alpha = 0); the
        # gradient is orthogonal to it, so the step is unaffected.
        H[np.diag_indices_from(H)] += 1e-13 * max(1.0, float(np.mean(np.diag(H))))
        try:
            step = -scipy.linalg.solve(H, grad, assume_a="pos", check_finite=False)
        except np.linalg.LinAlgError:
            step = -scipy.linalg.lstsq(H, grad, check_finite=False)[0]
        decrease = float(grad @ step)
        if -decrease <= 1e-15 * max(1.0, abs(value)):
            # Predicted decrease below round-off of the value: Armijo cannot judge the step, and
            # this close to the optimum the full Newton step is safe (quadratic convergence).
            theta = theta + step
            value, grad = smooth.value_grad(theta)
            roundoff_steps += 1
            if roundoff_steps >= 2:
                break  # the gradient's round-off floor is above tol
            continue
        t = 1.0
        while t >= 1e-10:
            new_value, new_grad = smooth.value_grad(theta + t * step)
            if new_value <= value + 1e-4 * t * decrease:
                break
            t *= 0.5
        else:
            break  # no representable progress left along the Newton direction
        theta = theta + t * step
        value, grad = new_value, new_grad
    return theta, n_iter, float(np.max(np.abs(grad)))


def _lbfgs(smooth, theta, *, l1, tol, max_iter):
    """L-BFGS-B; with an l1 term, on split variables w = u - v, u, v >= 0 (smooth and exact)."""
    k, p = smooth.n_outputs, smooth.n_features
    n_w = k * p
    if l1 == 0:
        fun, x0, bounds = smooth.value_grad, theta, None
    else:
        def fun(split):
            u, v = split[:n_w], split[n_w: 2 * n_w]
            value, grad = smooth.value_grad(np.concatenate([u - v, split[2 * n_w:]]))
            gw = grad[:n_w]
            value += l1 * float(np.sum(u + v))
            return value, np.concatenate([gw + l1, -gw + l1, grad[n_w:]])

        w0 = theta[:n_w]
        x0 = np.concatenate([np.maximum(w0, 0), np.maximum(-w0, 0), theta[n_w:]])
        bounds = [(0, None)] * (2 * n_w) + [(None, None)] * (smooth.size - n_w)
    result = scipy.optimize.minimize(
        fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": max_iter, "maxfun": 4 * max_iter, "gtol": tol, "ftol": 1e-16,
                 "maxcor": 30},
    )
    x = result.x
    theta = x if l1 == 0 else np.concatenate([x[:n_w] - x[n_w: 2 * n_w], x[2 * n_w:]])
    # Optimality in the subgradient sense: for w_j = 0 only |g_j| > l1 is a violation.
    _, grad = smooth.value_grad(theta)
    gw = grad[:n_w]
    w = theta[:n_w]
    violation = np.where(w != 0, np.abs(gw + l1 * np.sign(w)), np.maximum(np.abs(gw) - l1, 0))
    grad_norm = float(max(np.max(violation, initial=0.0), np.max(np.abs(grad[n_w:]), initial=0.0)))
    return theta, int(result.nit), grad_norm


def _iterative(X, y_enc, sw, problem, n_outputs, *, solver, tol, max_iter):
    l2, l1 = problem.penalty_split()
    smooth = _Smooth(X, y_enc, sw, problem, n_outputs, l2)
    theta = np.zeros(smooth.size)
    if solver == "auto":
        newton_ok = l1 == 0 and problem.loss in ("log_loss", "squared_error")
        # Sparse designs are usually wide: L-BFGS's cheap iterations win over a dense Hessian.
        limit = _NEWTON_MAX_PARAMS_SPARSE if sp.issparse(X) else _NEWTON_MAX_PARAMS
        solver = "newton" if newton_ok and smooth.size <= limit else "lbfgs"
    if max_iter is None:
        max_iter = 100 if solver == "newton" else 20_000
    if solver == "newton":
        if l1 != 0 or problem.loss not in ("log_loss", "squared_error"):
            raise ValueError("solver='newton' supports the l2 / no penalty with log_loss or "
                             "squared_error; use solver='lbfgs'")
        theta, n_iter, grad_norm = _newton(smooth, theta, tol=tol, max_iter=max_iter)
    elif solver == "lbfgs":
        theta, n_iter, grad_norm = _lbfgs(smooth, theta, l1=l1, tol=tol, max_iter=max_iter)
    else:
        raise ValueError(f"solver must be 'auto', 'newton' or 'lbfgs', got {solver!r}")
    if problem.loss == "log_loss" and l1 == 0 and l2 == 0:
        # Without a penalty, separable classes have no finite optimum: the gradient still
        # vanishes as ||w|| grows, so test separation itself.
        z = smooth.margins(theta)
        separated = np.all(y_enc * z > 0) if z.ndim == 1 else np.all(z.argmax(axis=1) == y_enc)
        if separated:
            warnings.warn(
                "the classes are linearly separable and there is no penalty: the optimum may "
                "not exist (the coefficients grow without bound); use alpha > 0",
                ConvergenceWarning,
                stacklevel=3,
            )
    # Round-off floor of the gradient grows with the data scale; warn only well above it.
    if grad_norm > max(1e3 * tol, 1e-6):
        warnings.warn(
            f"reference solver '{solver}' stopped with gradient norm {grad_norm:.2e} after "
            f"{n_iter} iterations; the optimum may not exist (separable data with alpha = 0?) "
            "or max_iter is too small",
            ConvergenceWarning,
            stacklevel=3,
        )
    W, b = smooth.unpack(theta)
    return W, b, solver, n_iter, grad_norm


# --------------------------------------------------------------------------------------------
# Logistic regression and the general entry point
# --------------------------------------------------------------------------------------------


def logistic(X, y, *, alpha=1e-4, penalty="l2", l1_ratio=0.15, sample_weight=None,
             fit_intercept=True, multi_class="multinomial", classes=None, solver="auto",
             tol=1e-12, max_iter=None):
    """Tightly converged optimum of the logistic objective ``SGDLogistic`` minimises.

    Binary: ``mean_i s_i log(1 + exp(-y_i (x_i w + b))) + alpha R(w)`` (second class = +1).
    Three or more classes: softmax cross-entropy (``multi_class="multinomial"``) or one binary
    problem per class (``"ovr"``). ``solver="auto"`` uses Newton's method (to round-off) for
    l2 / no penalty while the Hessian is small, else L-BFGS; l1 and elasticnet use L-BFGS-B on
    split variables. ``tol`` bounds the final gradient (max norm).
    """
    problem = Problem(loss="log_loss", penalty=penalty, alpha=alpha, l1_ratio=l1_ratio,
                      fit_intercept=fit_intercept, multi_class=multi_class)
    return solve(X, y, problem, sample_weight=sample_weight, classes=classes, solver=solver,
                 tol=tol, max_iter=max_iter)


def solve(X, y, problem=None, *, sample_weight=None, classes=None, solver="auto", tol=1e-12,
          max_iter=None, **problem_params):
    """Exact optimum of any convex `problem` (a Problem, or its fields as keywords).

    squared_error with l2 / no penalty goes to ``least_squares`` (solver "lstsq" or "cholesky";
    "auto" = "cholesky"); everything else to Newton / L-BFGS (``solver`` "auto", "newton",
    "lbfgs"). epsilon_insensitive is not differentiable and has no reference here.
    """
    if problem is None:
        problem = Problem(**problem_params)
    elif problem_params:
        problem = replace(problem, **problem_params)
    if not isinstance(tol, Real) or not tol > 0:
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if max_iter is not None and (not isinstance(max_iter, Integral) or max_iter < 1):
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if problem.loss == "epsilon_insensitive":
        raise ValueError("epsilon_insensitive loss is not differentiable; no exact reference "
                         "solver is provided for it")
    closed_form = problem.loss == "squared_error" and problem.penalty in ("l2", None)
    if closed_form and solver in ("auto", "lstsq", "cholesky"):
        return least_squares(X, y, alpha=problem.penalty_split()[0], sample_weight=sample_weight,
                             fit_intercept=problem.fit_intercept,
                             solver="cholesky" if solver == "auto" else solver)
    if solver in ("lstsq", "cholesky"):
        raise ValueError(f"solver={solver!r} only solves squared_error with l2 or no penalty")
    X, y, sw = _check_Xy(X, y, sample_weight, classification=problem.is_classification)
    kwargs = {"solver": solver, "tol": tol, "max_iter": max_iter}
    if not problem.is_classification:
        W, b, used, n_iter, grad_norm = _iterative(X, y, sw, problem, 1, **kwargs)
        coef, intercept, classes = W[0], float(b[0]), None
    else:
        classes, index = _encode_classes(y, classes)
        if len(classes) < 2:
            raise ValueError(f"logistic regression needs at least 2 classes, got {classes!r}")
        if len(classes) == 2:
            signs = np.where(index == 1, 1.0, -1.0)
            W, b, used, n_iter, grad_norm = _iterative(X, signs, sw, problem, 1, **kwargs)
        elif problem.multi_class == "multinomial":
            W, b, used, n_iter, grad_norm = _iterative(X, index, sw, problem, len(classes),
                                                       **kwargs)
            # Softmax is unchanged by adding one vector to every class: report the canonical
            # (class-mean zero) representative, as scikit-learn does.
            b = b - b.mean()
            if problem.penalty is None:
                W = W - W.mean(axis=0)
        else:
            rows = [_iterative(X, np.where(index == k, 1.0, -1.0), sw, problem, 1, **kwargs)
                    for k in range(len(classes))]
            W = np.vstack([r[0] for r in rows])
            b = np.concatenate([r[1] for r in rows])
            used, n_iter = rows[0][2], max(r[3] for r in rows)
            grad_norm = max(r[4] for r in rows)
        coef, intercept = W, b
        if not problem.fit_intercept:
            intercept = np.zeros(W.shape[0])
    value = objective_value(coef, intercept, X, y, problem, sample_weight=sw, classes=classes)
    return Reference(coef=coef, intercept=intercept, objective=value, problem=problem,
                     solver=used, n_iter=n_iter, classes=classes, gradient_norm=grad_norm,
                     X=X, y=y, sample_weight=sw)


# --------------------------------------------------------------------------------------------
# Estimators -> problems, objective, gap
# --------------------------------------------------------------------------------------------


def problem_of(estimator, n_samples=None, sample_weight=None):
    """The Problem a fitted or unfitted linear estimator minimises, in gdsolve's convention.

    Understands gdsolve's SGDLinearRegression / SGDLogistic, scikit-learn's SGDRegressor,
    SGDClassifier (log_loss), LogisticRegression, Ridge, LinearRegression, Lasso, ElasticNet and
    a Reference. ``n_samples`` (or ``sample_weight``) is needed for the peers whose penalty scales
    with the data (Ridge, LogisticRegression).
    """
    if isinstance(estimator, Reference):
        return estimator.problem
    if not hasattr(estimator, "get_params"):
        raise ValueError(f"cannot read a problem from {type(estimator).__name__}: no get_params()")
    params = estimator.get_params(deep=False)
    name = type(estimator).__name__
    fit_intercept = params.get("fit_intercept", True)
    if sample_weight is not None:
        norm = _normaliser(np.asarray(sample_weight, dtype=np.float64))
    elif n_samples is not None:
        norm = float(n_samples)
    else:
        norm = None

    def need_norm():
        if norm is None:
            raise ValueError(f"{name}'s penalty scales with the data: pass n_samples")
        return norm

    if name == "LogisticRegression":
        C = params["C"]
        l1_ratio = params.get("l1_ratio")
        legacy = params.get("penalty", "deprecated")
        if legacy not in ("deprecated", None) and legacy != "elasticnet":
            l1_ratio = {"l2": 0.0, "l1": 1.0}.get(legacy, l1_ratio)
        if legacy is None or not np.isfinite(C):
            return Problem(loss="log_loss", penalty=None, fit_intercept=fit_intercept)
        l1_ratio = 0.0 if l1_ratio is None else float(l1_ratio)
        penalty = "l2" if l1_ratio == 0 else "l1" if l1_ratio == 1 else "elasticnet"
        return Problem(loss="log_loss", penalty=penalty, alpha=1.0 / (C * need_norm()),
                       l1_ratio=l1_ratio, fit_intercept=fit_intercept)
    if name == "Ridge":
        return Problem(loss="squared_error", penalty="l2", alpha=params["alpha"] / need_norm(),
                       fit_intercept=fit_intercept)
    if name == "LinearRegression":
        return Problem(loss="squared_error", penalty=None, fit_intercept=fit_intercept)
    if name == "Lasso":
        return Problem(loss="squared_error", penalty="l1", alpha=params["alpha"],
                       fit_intercept=fit_intercept)
    if name == "ElasticNet":
        return Problem(loss="squared_error", penalty="elasticnet", alpha=params["alpha"],
                       l1_ratio=params["l1_ratio"], fit_intercept=fit_intercept)
    # SGD-style estimators (gdsolve's and scikit-learn's) share the parameter names.
    classification = hasattr(estimator, "predict_proba") or name in ("SGDLogistic",
                                                                     "SGDClassifier")
    loss = params.get("loss", "log_loss" if classification else "squared_error")
    loss = _LOSS_ALIASES.get(loss, loss)
    if loss not in LOSSES:
        raise ValueError(f"{name} uses loss={loss!r}, which has no objective here "
                         f"(supported: {LOSSES})")
    multi_class = params.get("multi_class", "ovr" if name == "SGDClassifier" else "multinomial")
    if multi_class not in MULTI_CLASS:
        multi_class = "multinomial"
    return Problem(loss=loss, penalty=params.get("penalty", "l2"), alpha=params.get("alpha", 0.0),
                   l1_ratio=params.get("l1_ratio", 0.15), epsilon=params.get("epsilon", 0.1),
                   fit_intercept=fit_intercept, multi_class=multi_class)


def reference_for(estimator, X, y, sample_weight=None, *, solver="auto", tol=1e-12):
    """The exact optimum of the problem `estimator` is set up to solve, on (X, y)."""
    n_samples = X.shape[0] if hasattr(X, "shape") else len(X)
    problem = problem_of(estimator, n_samples=n_samples, sample_weight=sample_weight)
    return solve(X, y, problem, sample_weight=sample_weight, solver=solver, tol=tol)


def _mlp_objective(estimator, X, y, sample_weight):
    """Mean loss + alpha 0.5 sum ||W_l||^2 / n_samples: scikit-learn's MLP objective (the bias
    vectors not penalised). Classifier: cross-entropy of predict_proba; regressor: 0.5 (y - p)^2."""
    X = _check_X(X)
    n = X.shape[0]
    sw = _check_sample_weight(sample_weight, n)
    if hasattr(estimator, "predict_proba"):
        proba = np.clip(np.asarray(estimator.predict_proba(X), dtype=np.float64), 1e-300, 1.0)
        _, index = _encode_classes(np.asarray(y), estimator.classes_)
        if proba.ndim == 1 or proba.shape[1] == 1:
            p1 = proba.reshape(-1)
            terms = -np.log(np.where(index == 1, p1, 1.0 - p1).clip(1e-300))
        else:
            terms = -np.log(proba[np.arange(n), index])
    else:
        pred = np.asarray(estimator.predict(X), dtype=np.float64)
        target = np.asarray(y, dtype=np.float64).reshape(pred.shape)
        terms = 0.5 * (pred - target) ** 2
        if terms.ndim == 2:
            terms = terms.sum(axis=1)
    squares = sum(float(np.sum(np.asarray(W, dtype=np.float64) ** 2)) for W in estimator.coefs_)
    alpha = float(estimator.get_params().get("alpha", 0.0))
    return float(sw @ terms) / _normaliser(sw) + 0.5 * alpha * squares / n


def objective(estimator, X, y, sample_weight=None):
    """The objective a fitted estimator reached on (X, y), with its own parameters.

    Linear models (gdsolve, scikit-learn peers, Reference): ``F(coef_, intercept_)`` for
    ``problem_of(estimator)``. MLPs (anything with ``coefs_``): mean loss plus the L2 term.
    """
    if hasattr(estimator, "coefs_") and not hasattr(estimator, "coef_"):
        return _mlp_objective(estimator, X, y, sample_weight)
    if not hasattr(estimator, "coef_"):
        raise ValueError(f"{type(estimator).__name__} is not fitted (no coef_)")
    n_samples = X.shape[0] if hasattr(X, "shape") else len(X)
    problem = problem_of(estimator, n_samples=n_samples, sample_weight=sample_weight)
    return objective_value(_coef_for(estimator.coef_, problem, estimator), estimator.intercept_,
                           X, y, problem, sample_weight=sample_weight,
                           classes=getattr(estimator, "classes_", None))


def _coef_for(coef, problem, estimator):
    coef = np.asarray(coef.toarray() if sp.issparse(coef) else coef, dtype=np.float64)
    if not problem.is_classification and coef.ndim == 2 and coef.shape[0] == 1:
        return coef[0]
    return coef


def relative_gap(estimator, reference, *, floor=1e-300):
    """``(F(estimator) - F*) / |F*|`` on the reference's data and objective.

    `estimator` is anything with ``coef_`` / ``intercept_`` (gdsolve or scikit-learn models,
    another Reference) or a ``(coef, intercept)`` pair; its coefficients are scored under the
    reference's problem, so peers with other parameter names compare on the same objective.
    Values at round-off can be slightly negative.
    """
    if not isinstance(reference, Reference):
        raise ValueError("reference must be a gdsolve.reference.Reference (from least_squares, "
                         f"logistic, solve or reference_for), got {type(reference).__name__}")
    if reference.X is None:
        raise ValueError("this Reference holds no training data; rebuild it with solve()")
    if isinstance(estimator, tuple) and len(estimator) == 2:
        coef, intercept = estimator
    else:
        if not hasattr(estimator, "coef_"):
            raise ValueError(f"{type(estimator).__name__} is not a fitted linear model "
                             "(no coef_)")
        coef, intercept = estimator.coef_, estimator.intercept_
    coef = _coef_for(coef, reference.problem, estimator)
    value = objective_value(coef, intercept, reference.X, reference.y, reference.problem,
                            sample_weight=reference.sample_weight, classes=reference.classes)
    return (value - reference.objective) / max(abs(reference.objective), floor)
