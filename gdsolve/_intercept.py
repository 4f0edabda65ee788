"""Exact optimum of the intercept-only model for each loss of csrc/include/gdsolve/losses.h.

``best_constant`` gives the intercept that gradient descent can start from instead of 0. Callers:
the estimators' intercept initialisation (intercept_start: linear_model.py, neural_network.py's
output layer, gdsolve/distributed/_start.py) and tests/test_intercept_start.py, which checks it
against independent solvers.
"""

from numbers import Integral, Real

import numpy as np

from gdsolve._codes import Loss

__all__ = ["best_constant", "PROBABILITY_CLIP", "INTERCEPT_STARTS", "check_intercept_start",
           "starts_at_best_constant"]

#: The values of the estimators' intercept_start parameter.
INTERCEPT_STARTS = ("auto", "best_constant", "sklearn")

#: Probabilities (fraction of positives for LOG, class priors for SOFTMAX) are clipped to
#: ``[PROBABILITY_CLIP, 1 - PROBABILITY_CLIP]`` so that the result is finite (|b| <= 23.03).
PROBABILITY_CLIP = 1e-10


def check_intercept_start(value, prefix=""):
    """ValueError (its message after `prefix`) unless `value` is one of INTERCEPT_STARTS."""
    if not isinstance(value, str) or value not in INTERCEPT_STARTS:
        raise ValueError(f"{prefix}intercept_start must be one of {INTERCEPT_STARTS}, got "
                         f"{value!r}")


def starts_at_best_constant(intercept_start, optimizer, scikit_learn_rate):
    """intercept_start's rule for a fresh fit: 'auto' keeps scikit-learn's start only where the
    fit is scikit-learn's algorithm, plain SGD (`optimizer` resolved; no momentum, no weight
    decay) under the caller's condition `scikit_learn_rate` (one of scikit-learn's rates, and
    for the linear models per-sample descent); the best constant otherwise."""
    if intercept_start == "sklearn":
        return False
    if intercept_start == "best_constant":
        return True
    return not (optimizer.is_plain_sgd() and scikit_learn_rate)


def _weighted_sum(s, x):
    """sum_i s_i x_i over the first axis, by NumPy's pairwise summation rather than a BLAS dot:
    OpenBLAS's threads keep spinning after a call, next to the fit's thread team that starts
    right after (measured: epochs of 200,000 x 100 full-batch logistic regression 1.8x slower)."""
    x = np.asarray(x, dtype=np.float64)
    return (s.reshape((-1,) + (1,) * (x.ndim - 1)) * x).sum(axis=0)


def best_constant(loss, y, sample_weight=None, *, n_outputs=1, epsilon=0.1):
    """Intercept vector (float64, shape (n_outputs,)) minimising sum_i s_i * loss(y_i, b).

    The minimiser of the weighted objective of the intercept-only model (every prediction equal to
    ``b``), with the per-sample losses of ``csrc/include/gdsolve/losses.h`` (scikit-learn's SGD
    conventions). Exact: closed forms, or for Huber and epsilon-insensitive a sort of the
    breakpoints (O(n log n)), never an iterative solver.

    Parameters
    ----------
    loss : gdsolve._codes.Loss
        The loss code (an ``int`` equal to one is accepted).
    y : array-like
        ``SQUARED``: shape (n,) or (n, n_outputs), real targets.
        ``HUBER``, ``EPSILON_INSENSITIVE``: shape (n,), real targets; ``n_outputs`` must be 1.
        ``LOG``: shape (n,) with labels in {-1, +1} (the linear models; ``n_outputs`` 1), or shape
        (n, n_outputs) with labels in {0, 1} (independent logistic outputs, e.g. multilabel).
        ``SOFTMAX``: shape (n,), class indices 0 .. n_outputs - 1 (``n_outputs`` >= 2).
    sample_weight : array-like of shape (n,), optional
        Non-negative finite weights ``s_i``; None means all ones.
    n_outputs : int, default=1
        Length of the returned vector (output units / classes).
    epsilon : float, default=0.1
        Huber's threshold and epsilon-insensitive's margin (finite, >= 0); unused otherwise.

    Returns
    -------
    b : ndarray of float64, shape (n_outputs,)
        ``SQUARED``: the weighted mean of each column of ``y``.
        ``HUBER``: the root of ``sum_i s_i clip(b - y_i, -eps, eps)`` (Huber's M-estimate of
        location), solved exactly on the linear piece that holds it. If the root is a whole
        interval (two groups of targets more than ``2 eps`` apart with equal weight), its
        midpoint. ``epsilon == 0`` makes the loss identically 0; then the weighted median (the
        limit of the minimiser as eps -> 0).
        ``EPSILON_INSENSITIVE``: the weighted median of the 2n breakpoints ``y_i - eps`` and
        ``y_i + eps`` (each with weight ``s_i``), since
        ``max(0, |y - b| - eps) = (|b - (y - eps)| + |b - (y + eps)|) / 2 - eps``. When the
        minimisers form an interval, its midpoint. Weight sums are compared with a relative
        tolerance of ``n * 2**-52`` when the weights are not all integers, so that a tie that
        round-off breaks still gives the midpoint.
        ``LOG``: per column, the log-odds ``log(p / (1 - p))`` of the weighted fraction ``p`` of
        positive labels (+1, or 1 in the 0/1 matrix).
        ``SOFTMAX``: the log of the weighted class priors, ``log(prior_k)`` (softmax is invariant
        to a common shift; this is the shift with ``sum_k exp(b_k) = 1`` when nothing is clipped).

        Degenerate data: probabilities are clipped to ``[PROBABILITY_CLIP, 1 - PROBABILITY_CLIP]``
        (1e-10) before the logarithm, so a label value or a class with zero weight (all positives,
        a class not seen yet) gives a finite value (|b| <= 23.03) instead of -inf or +inf. Zero
        total weight (including n = 0) gives zeros.

    Raises
    ------
    ValueError
        Unknown loss code; bad ``n_outputs`` or ``epsilon``; ``y`` of the wrong shape, not finite,
        or with labels / class indices outside what the loss accepts; ``sample_weight`` of the
        wrong shape, negative or not finite.
    """
    loss = _check_loss(loss)
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, Integral) or n_outputs < 1:
        raise ValueError(f"best_constant: n_outputs must be a positive integer, got {n_outputs!r}")
    n_outputs = int(n_outputs)
    y = np.asarray(y)
    if y.ndim not in (1, 2):
        raise ValueError(f"best_constant: y must be 1-D or 2-D, got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise ValueError(f"best_constant: y must be numeric, got dtype {y.dtype}")
    y = y.astype(np.float64, copy=False)
    if not np.all(np.isfinite(y)):
        raise ValueError("best_constant: y contains NaN or infinity")
    s = _check_weights(sample_weight, y.shape[0])
    total = s.sum()

    if loss == Loss.SQUARED:
        y2 = y[:, None] if y.ndim == 1 else y
        if y2.shape[1] != n_outputs:
            raise ValueError(f"best_constant: SQUARED y has {y2.shape[1]} column(s) but "
                             f"n_outputs={n_outputs}")
        if total == 0:
            return np.zeros(n_outputs)
        return _weighted_sum(s, y2) / total

    if loss == Loss.SOFTMAX:
        if n_outputs < 2:
            raise ValueError(f"best_constant: SOFTMAX needs n_outputs >= 2 classes, got "
                             f"{n_outputs}")
        if y.ndim != 1:
            raise ValueError(f"best_constant: SOFTMAX y must be 1-D class indices, got shape "
                             f"{y.shape}")
        if np.any(y != np.round(y)):
            raise ValueError("best_constant: SOFTMAX y must hold integer class indices")
        if y.size and (y.min() < 0 or y.max() >= n_outputs):
            raise ValueError(f"best_constant: SOFTMAX class indices must lie in "
                             f"[0, {n_outputs - 1}], got range [{y.min():g}, {y.max():g}]")
        if total == 0:
            return np.zeros(n_outputs)
        prior = np.bincount(y.astype(np.intp), weights=s, minlength=n_outputs) / total
        return np.log(np.clip(prior, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP))

    if loss == Loss.LOG:
        if y.ndim == 1:
            if n_outputs != 1:
                raise ValueError(f"best_constant: LOG with 1-D y (-1/+1 labels) has one output, "
                                 f"got n_outputs={n_outputs}; pass a 0/1 matrix for several")
            if not np.all((y == 1.0) | (y == -1.0)):
                raise ValueError("best_constant: LOG with 1-D y needs labels in {-1, +1}")
            positive = (y == 1.0)[:, None]
        else:
            if y.shape[1] != n_outputs:
                raise ValueError(f"best_constant: LOG y has {y.shape[1]} column(s) but "
                                 f"n_outputs={n_outputs}")
            if not np.all((y == 1.0) | (y == 0.0)):
                raise ValueError("best_constant: LOG with 2-D y needs labels in {0, 1}")
            positive = y == 1.0
        if total == 0:
            return np.zeros(n_outputs)
        w_pos = _weighted_sum(s, positive)
        w_neg = _weighted_sum(s, ~positive)
        # log(p / (1 - p)) with 1 - p taken from the negatives' weight (no cancellation near 1)
        p = np.clip(w_pos / total, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
        q = np.clip(w_neg / total, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
        return np.log(p) - np.log(q)

    # HUBER, EPSILON_INSENSITIVE: one real output
    name = loss.name
    if y.ndim != 1:
        raise ValueError(f"best_constant: {name} y must be 1-D, got shape {y.shape}")
    if n_outputs != 1:
        raise ValueError(f"best_constant: {name} has one output, got n_outputs={n_outputs}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, Real) or not (
            np.isfinite(epsilon) and epsilon >= 0):
        raise ValueError(f"best_constant: epsilon must be a finite number >= 0, got {epsilon!r}")
    epsilon = float(epsilon)
    keep = s > 0
    y, s = y[keep], s[keep]
    if y.size == 0:
        return np.zeros(1)
    order = np.argsort(y, kind="stable")  # sorted once: the breakpoints below are two sorted runs,
    y, s = y[order], s[order]  # which the stable sort merges in linear time
    if loss == Loss.EPSILON_INSENSITIVE:
        points = np.concatenate([y - epsilon, y + epsilon])
        return np.array([_weighted_median(points, np.concatenate([s, s]))])
    if epsilon == 0.0:
        return np.array([_weighted_median(y, s)])
    return np.array([_huber_location(y, s, epsilon)])


def _check_loss(loss):
    if isinstance(loss, bool) or not isinstance(loss, Integral):
        raise ValueError(f"best_constant: loss must be a gdsolve._codes.Loss code, got {loss!r}")
    try:
        return Loss(int(loss))
    except ValueError:
        raise ValueError(f"best_constant: unknown loss code {int(loss)} (known: "
                         f"{', '.join(f'{m.name}={m.value}' for m in Loss)})") from None


def _check_weights(sample_weight, n):
    if sample_weight is None:
        return np.ones(n)
    s = np.asarray(sample_weight)
    if not (np.issubdtype(s.dtype, np.number) or s.dtype == np.bool_):
        raise ValueError(f"best_constant: sample_weight must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    if s.shape != (n,):
        raise ValueError(f"best_constant: sample_weight must have shape ({n},) like y's rows, got "
                         f"{s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("best_constant: sample_weight contains NaN or infinity")
    if np.any(s < 0):
        raise ValueError("best_constant: sample_weight must be non-negative")
    return s


def _tie_tolerance(w, total):
    """Absolute slack for comparing cumulative sums of w: 0 when they are exact (integers)."""
    if total < 2.0**53 and np.all(w == np.round(w)):
        return 0.0
    return w.size * np.finfo(np.float64).eps * total


def _weighted_median(x, w):
    """Midpoint of the interval of minimisers of sum_i w_i |b - x_i| (all w_i > 0)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    cum = np.cumsum(w[order])
    total = cum[-1]
    half = 0.5 * total
    tol = _tie_tolerance(w, total)
    # b_lo: first point where the right derivative 2 cum - total turns >= 0; b_hi: > 0
    lo = min(np.searchsorted(cum, half - tol, side="left"), xs.size - 1)
    hi = min(np.searchsorted(cum, half + tol, side="right"), xs.size - 1)
    return 0.5 * (xs[lo] + xs[hi])


def _huber_location(y, s, eps):
    """Root of g(b) = sum_i s_i clip(b - y_i, -eps, eps) (y sorted, s_i > 0, eps > 0); midpoint if
    the roots form a stretch.

    g is continuous, piecewise linear and non-decreasing, with breakpoints y_i -+ eps. On a piece
    between two consecutive breakpoints each sample is in the quadratic part M (slope s_i), above
    it (L, +eps) or below it (R, -eps), and g = 0 solves exactly to
    ``b = (sum_M s_i y_i + eps (W_R - W_L)) / W_M``. g is 0 on a whole piece only when M is empty
    and W_L = W_R; otherwise the piece holding the root is found by bisection over the sorted
    breakpoints, evaluating g directly (O(n) each, O(n log n) in all, no running sums whose
    round-off grows with |y|).
    """
    n = y.size
    total = s.sum()
    lo, up = y - eps, y + eps  # both sorted
    t = np.concatenate([lo, up])
    order = np.argsort(t, kind="stable")  # merges the two runs
    ts = t[order]
    last = np.flatnonzero(np.append(ts[1:] != ts[:-1], True))  # last of each distinct value
    u = ts[last]  # distinct breakpoints; pieces (u[j], u[j + 1])
    if u.size == 1:  # every y_i -+ eps rounds to one number (|y| > 2**52 eps)
        return float(u[0])
    cum = np.concatenate([[0.0], np.cumsum(s)])
    n_lo = np.cumsum(order < n)[last[:-1]]  # samples with lo <= u[j]: in M or L on piece j
    n_up = last[:-1] + 1 - n_lo  # samples with up <= u[j]: in L
    w_left = cum[n_up]
    w_right = total - cum[n_lo]
    flat = np.flatnonzero((n_lo == n_up)
                          & (np.abs(w_left - w_right) <= _tie_tolerance(s, total)))
    if flat.size:  # g = 0 on the whole piece: every point of its closure is a minimiser
        return 0.5 * (u[flat[0]] + u[flat[-1] + 1])

    def g(b):
        return float(_weighted_sum(s, np.clip(b - y, -eps, eps)))

    def solve(j):  # root of the linear function that g is on piece j (unclipped)
        a, b = u[j], u[j + 1]
        in_m = (lo <= a) & (up >= b)
        w_m = s[in_m].sum()
        w_l = s[up <= a].sum()
        w_r = s[lo >= b].sum()
        if w_m == 0.0:  # g is constant on the piece: the sign change is at one of its ends
            return b if w_l < w_r else a
        return _weighted_sum(s[in_m], y[in_m]) / w_m + eps * (w_r - w_l) / w_m

    # first breakpoint with g >= 0; g(u[0]) = -eps W < 0 < eps W = g(u[-1])
    i_neg, i_pos = 0, u.size - 1
    while i_pos - i_neg > 1:
        mid = (i_neg + i_pos) // 2
        if g(u[mid]) >= 0.0:
            i_pos = mid
        else:
            i_neg = mid
    j = i_neg
    b = solve(j)
    # round-off in g near a breakpoint can name the neighbouring piece: move to the piece that
    # holds its own solution (at most one step each way in practice), then clip to it
    for _ in range(2):
        if b > u[j + 1] and j + 1 < u.size - 1:
            j += 1
        elif b < u[j] and j > 0:
            j -= 1
        else:
            break
        b = solve(j)
    return float(np.clip(b, u[j], u[j + 1]))
