"""gdsolve._intercept.best_constant: the exact optimum of the intercept-only model per loss.

References are independent of the function under test: closed forms written out here for
squared / log / softmax, and for Huber and epsilon-insensitive scipy's brentq (on the derivative,
to round-off), scipy's bounded minimize_scalar and a brute-force grid plus every breakpoint. The
objectives and derivatives are the compiled per-sample losses of losses.h (gdsolve._core), the
ones the training loops use.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq, minimize_scalar
from scipy.special import logit, softmax

from gdsolve import _core
from gdsolve._codes import Loss
from gdsolve._intercept import PROBABILITY_CLIP, best_constant

RNG_SEED = 20240611
EPS64 = np.finfo(np.float64).eps


def rng(offset=0):
    return np.random.default_rng(RNG_SEED + offset)


# ---------------------------------------------------------------------------------------------
# The intercept-only objective and its derivative, from the compiled losses
# ---------------------------------------------------------------------------------------------


def objective(loss, b, y, s, epsilon=0.1):
    """sum_i s_i loss(y_i, b) for a scalar b (SQUARED / HUBER / EPSILON_INSENSITIVE / LOG +-1)."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    value, _ = _core.losses(int(loss), np.full(y.size, float(b)), y, float(epsilon))
    return float(np.sum(s * value))


def derivative(loss, b, y, s, epsilon=0.1):
    """d/db of objective(loss, b, y, s)."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    _, deriv = _core.losses(int(loss), np.full(y.size, float(b)), y, float(epsilon))
    return float(np.sum(s * deriv))


def softmax_objective_and_gradient(b, labels, s):
    z = np.ascontiguousarray(np.tile(b, (labels.size, 1)), dtype=np.float64)
    values = _core.softmax_xent(z, labels.astype(np.int64))  # z becomes softmax(b) - onehot
    return float(s @ values), s @ z


def weights(n, kind, offset=0):
    if kind == "none":
        return None
    r = rng(100 + offset)
    if kind == "float":
        return r.exponential(size=n)
    if kind == "integer":
        return r.integers(1, 5, size=n).astype(np.float64)
    if kind == "zeros":  # some rows switched off
        s = r.exponential(size=n)
        s[r.random(n) < 0.3] = 0.0
        if not s.any():
            s[0] = 1.0
        return s
    raise AssertionError(kind)


def ones_if_none(s, n):
    return np.ones(n) if s is None else np.asarray(s, dtype=np.float64)


WEIGHT_KINDS = ["none", "float", "integer", "zeros"]


# ---------------------------------------------------------------------------------------------
# SQUARED
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wkind", WEIGHT_KINDS)
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_squared_is_the_weighted_mean_of_each_column(wkind, n_outputs):
    n = 57
    y = rng(1).normal(loc=[1e3, -2.0, 0.5][:n_outputs], scale=4.0, size=(n, n_outputs))
    s = weights(n, wkind)
    y_in = y[:, 0] if n_outputs == 1 else y
    b = best_constant(Loss.SQUARED, y_in, s, n_outputs=n_outputs)
    assert b.dtype == np.float64 and b.shape == (n_outputs,)
    sw = ones_if_none(s, n)
    expected = [np.sum(sw * y[:, k]) / np.sum(sw) for k in range(n_outputs)]
    np.testing.assert_allclose(b, expected, rtol=1e-14)
    for k in range(n_outputs):  # the gradient of the intercept-only objective vanishes
        scale = np.sum(sw * np.abs(y[:, k] - b[k])) + 1.0
        assert abs(derivative(Loss.SQUARED, b[k], y[:, k], sw)) <= 1e-12 * scale


def test_squared_accepts_a_one_column_matrix_and_integer_targets():
    y = np.array([1, 2, 3, 10])
    np.testing.assert_array_equal(best_constant(Loss.SQUARED, y), [4.0])
    np.testing.assert_array_equal(best_constant(Loss.SQUARED, y[:, None]), [4.0])
    assert best_constant(Loss.SQUARED, y.astype(np.float32)).dtype == np.float64


# ---------------------------------------------------------------------------------------------
# LOG: -1/+1 vector and 0/1 matrix
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wkind", WEIGHT_KINDS)
def test_log_pm1_is_the_log_odds_of_the_weighted_positive_fraction(wkind):
    n = 200
    y = np.where(rng(2).random(n) < 0.83, 1.0, -1.0)
    s = weights(n, wkind)
    sw = ones_if_none(s, n)
    b = best_constant(Loss.LOG, y, s)
    p = np.sum(sw[y == 1]) / np.sum(sw)
    assert b.shape == (1,) and b.dtype == np.float64
    np.testing.assert_allclose(b, [np.log(p / (1 - p))], rtol=1e-13)
    assert abs(derivative(Loss.LOG, b[0], y, sw)) <= 1e-13 * np.sum(sw)


@pytest.mark.parametrize("wkind", WEIGHT_KINDS)
def test_log_01_matrix_is_the_log_odds_of_each_column(wkind):
    n, k = 150, 4
    y = (rng(3).random((n, k)) < [0.1, 0.5, 0.7, 0.97]).astype(np.int64)
    s = weights(n, wkind, offset=1)
    sw = ones_if_none(s, n)
    b = best_constant(Loss.LOG, y, s, n_outputs=k)
    assert b.shape == (k,)
    p = (sw @ y) / sw.sum()
    np.testing.assert_allclose(b, logit(p), rtol=1e-13)
    for j in range(k):  # the same as the -1/+1 convention on that column, and a zero gradient
        pm1 = 2.0 * y[:, j] - 1.0
        np.testing.assert_allclose(b[j], best_constant(Loss.LOG, pm1, s)[0], rtol=1e-13,
                                   atol=1e-15)
        assert abs(derivative(Loss.LOG, b[j], pm1, sw)) <= 1e-13 * sw.sum()


def test_log_accepts_boolean_matrix():
    y = np.array([[True, False], [True, True], [False, True], [True, True]])
    np.testing.assert_allclose(best_constant(Loss.LOG, y, n_outputs=2), logit([0.75, 0.75]),
                               rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# SOFTMAX
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wkind", WEIGHT_KINDS)
@pytest.mark.parametrize("k", [2, 3, 7])
def test_softmax_is_the_log_of_the_weighted_priors(wkind, k):
    n = 300
    labels = rng(4).choice(k, size=n, p=np.arange(1, k + 1) / (k * (k + 1) / 2))
    s = weights(n, wkind, offset=2)
    sw = ones_if_none(s, n)
    b = best_constant(Loss.SOFTMAX, labels, s, n_outputs=k)
    assert b.shape == (k,) and b.dtype == np.float64
    prior = np.array([sw[labels == c].sum() for c in range(k)]) / sw.sum()
    np.testing.assert_allclose(b, np.log(prior), rtol=1e-14)
    # shift invariance: the model's probabilities are the priors; the gradient is 0
    np.testing.assert_allclose(softmax(b), prior, rtol=1e-14)
    value, grad = softmax_objective_and_gradient(b, labels, sw)
    np.testing.assert_allclose(grad, 0.0, atol=1e-13 * sw.sum())
    shifted_value, shifted_grad = softmax_objective_and_gradient(b + 5.0, labels, sw)
    np.testing.assert_allclose(shifted_value, value, rtol=1e-13)
    np.testing.assert_allclose(shifted_grad, 0.0, atol=1e-13 * sw.sum())
    # no other constant does better (random perturbations)
    for delta in rng(5).normal(scale=0.05, size=(5, k)):
        assert softmax_objective_and_gradient(b + delta, labels, sw)[0] >= value


def test_softmax_two_classes_agrees_with_log_loss():
    labels = rng(6).integers(0, 2, size=99)
    s = weights(99, "float")
    b = best_constant(Loss.SOFTMAX, labels, s, n_outputs=2)
    logit_b = best_constant(Loss.LOG, 2.0 * labels - 1.0, s)[0]
    np.testing.assert_allclose(b[1] - b[0], logit_b, rtol=1e-13)


def test_softmax_accepts_integral_float_labels():
    labels = np.array([0, 2, 2, 1, 2])
    np.testing.assert_array_equal(best_constant(Loss.SOFTMAX, labels, n_outputs=3),
                                  best_constant(Loss.SOFTMAX, labels.astype(float), n_outputs=3))


# ---------------------------------------------------------------------------------------------
# HUBER
# ---------------------------------------------------------------------------------------------


def huber_root(y, s, epsilon):
    """Root of the derivative by brentq, to round-off (xtol tiny, rtol 4 eps)."""
    def g(b):
        return derivative(Loss.HUBER, b, y, s, epsilon)
    lo, hi = y[s > 0].min() - epsilon, y[s > 0].max() + epsilon
    return brentq(g, lo, hi, xtol=1e-300, rtol=4 * EPS64, maxiter=500)


def bounded_min(loss, y, s, epsilon):
    lo, hi = y[s > 0].min() - epsilon, y[s > 0].max() + epsilon
    res = minimize_scalar(lambda b: objective(loss, b, y, s, epsilon), bounds=(lo, hi),
                          method="bounded", options={"xatol": 1e-12, "maxiter": 2000})
    return res.x, res.fun


def huber_cases():
    r = rng(7)
    cases = {
        # eps above the spread: every sample in the quadratic part, the root is the weighted mean
        "quadratic_part": (r.normal(size=40), "float", 50.0),
        # tiny eps: odd n, the median sample holds the root in its quadratic part
        "linear_part_odd": (r.normal(size=51), "none", 1e-3),
        # tiny eps, even n with unequal weights: the root is in one sample's quadratic part
        "linear_part_even": (r.normal(size=50), "float", 1e-3),
        "mixed_heavy_tails": (r.standard_t(1.5, size=201) * 3.0, "float", 1.35),
        "mixed_even": (r.standard_t(1.5, size=200) * 3.0, "integer", 1.35),
        "with_zero_weights": (r.standard_t(2.0, size=120), "zeros", 0.7),
        "ties": (r.integers(0, 5, size=61).astype(float), "float", 0.3),
        "ties_odd_unweighted": (r.integers(0, 5, size=61).astype(float), "none", 0.3),
        "large_mean": (1e6 + r.normal(scale=2.0, size=300), "float", 0.5),
        "large_mean_linear": (1e6 + r.standard_t(1.0, size=301), "none", 0.05),
        "negative_large": (-3e4 + r.exponential(scale=10.0, size=80), "float", 5.0),
        "single_sample": (np.array([3.25]), "none", 0.1),
        "two_samples_quadratic": (np.array([0.0, 1.0]), "float", 0.6),
    }
    return {name: (y, weights(y.size, kind, offset=i), eps)
            for i, (name, (y, kind, eps)) in enumerate(cases.items())}


HUBER_CASES = huber_cases()


@pytest.mark.parametrize("name", sorted(HUBER_CASES))
def test_huber_matches_the_unique_minimiser(name):
    y, s, eps = HUBER_CASES[name]
    sw = ones_if_none(s, y.size)
    b = best_constant(Loss.HUBER, y, s, epsilon=eps)
    assert b.shape == (1,) and b.dtype == np.float64
    b = b[0]
    root = huber_root(y, sw, eps)
    scale = max(abs(root), np.ptp(y) + eps)
    # unique: the derivative changes sign within a hair of the root (checked, not assumed)
    assert derivative(Loss.HUBER, root - 1e-9 * scale, y, sw, eps) < 0
    assert derivative(Loss.HUBER, root + 1e-9 * scale, y, sw, eps) > 0
    assert abs(b - root) <= 1e-12 * scale
    # the objective is no worse than the bounded scalar minimiser's
    _, ref_fun = bounded_min(Loss.HUBER, y, sw, eps)
    assert objective(Loss.HUBER, b, y, sw, eps) <= ref_fun + 1e-12 * (1.0 + abs(ref_fun))
    # zero gradient, to the round-off of b - y_i (ulp of |y|) summed over the weights
    assert abs(derivative(Loss.HUBER, b, y, sw, eps)) <= 1e-13 * (eps + np.abs(y).max()) * sw.sum()


def test_huber_with_epsilon_above_the_spread_is_the_weighted_mean():
    y, s, eps = HUBER_CASES["quadratic_part"]
    np.testing.assert_allclose(best_constant(Loss.HUBER, y, s, epsilon=eps),
                               [np.sum(s * y) / np.sum(s)], rtol=1e-13)


def test_huber_flat_stretch_returns_its_midpoint():
    # two equal-weight groups 10 apart, eps = 1: the derivative is 0 on [1, 9]
    y = np.array([0.0, 0.0, 10.0, 10.0])
    b = best_constant(Loss.HUBER, y, epsilon=1.0)[0]
    assert b == 5.0
    for t in np.linspace(1.0, 9.0, 9):
        assert objective(Loss.HUBER, t, y, np.ones(4), 1.0) == pytest.approx(
            objective(Loss.HUBER, b, y, np.ones(4), 1.0), rel=1e-15)
    # non-integer weights that balance only up to round-off still give the midpoint
    s = np.array([0.1, 0.2, 0.15, 0.15])
    assert best_constant(Loss.HUBER, y, s, epsilon=1.0)[0] == pytest.approx(5.0, rel=1e-14)


def test_huber_epsilon_zero_is_the_weighted_median():
    y = np.array([3.0, -1.0, 7.0, 2.0, 100.0])
    assert best_constant(Loss.HUBER, y, epsilon=0.0)[0] == 3.0
    assert best_constant(Loss.HUBER, y, [1, 1, 1, 1, 10], epsilon=0.0)[0] == 100.0


def test_huber_translation_equivariance():
    y, s, eps = HUBER_CASES["mixed_heavy_tails"]
    b = best_constant(Loss.HUBER, y, s, epsilon=eps)[0]
    shifted = best_constant(Loss.HUBER, y + 123.5, s, epsilon=eps)[0]
    assert abs(shifted - (b + 123.5)) <= 1e-12 * 200


# weights with exact ties (integers) and ones whose ties only hold up to round-off (0.1 + 0.2)
SMALL_WEIGHTS = st.sampled_from([0.0, 1.0, 2.0, 3.0, 0.1, 0.2, 0.3, 0.15, 1.0 / 3.0])


def small_data(ys, ws):
    y = np.array(ys, dtype=float) / 2.0
    s = np.array(ws[: y.size], dtype=float)
    if s.sum() == 0:
        s[0] = 1.0
    return y, s


@settings(max_examples=150, deadline=None)
@given(ys=st.lists(st.integers(-6, 6), min_size=1, max_size=12),
       ws=st.lists(SMALL_WEIGHTS, min_size=12, max_size=12),
       eps=st.sampled_from([0.25, 0.5, 1.0, 1.5, 4.0]))
def test_huber_small_data_minimises_the_objective(ys, ws, eps):
    # many ties and breakpoints landing on one another; flat stretches allowed
    y, s = small_data(ys, ws)
    b = best_constant(Loss.HUBER, y, s, epsilon=eps)[0]
    grid = np.concatenate([np.linspace(y.min() - eps, y.max() + eps, 2001),
                           y - eps, y + eps])
    f_min = min(objective(Loss.HUBER, t, y, s, eps) for t in grid)
    assert objective(Loss.HUBER, b, y, s, eps) <= f_min + 1e-12
    assert abs(derivative(Loss.HUBER, b, y, s, eps)) <= 1e-12


# ---------------------------------------------------------------------------------------------
# EPSILON_INSENSITIVE
# ---------------------------------------------------------------------------------------------


def eps_insensitive_brute_force(y, s, eps, n_grid=20001):
    """Minimum over a fine grid and every breakpoint, and the set of breakpoints attaining it."""
    keep = s > 0
    points = np.concatenate([y[keep] - eps, y[keep] + eps])
    grid = np.linspace(points.min(), points.max(), n_grid)
    f_points = np.array([objective(Loss.EPSILON_INSENSITIVE, t, y, s, eps) for t in points])
    f_grid = np.array([objective(Loss.EPSILON_INSENSITIVE, t, y, s, eps) for t in grid])
    f_min = min(f_points.min(), f_grid.min())
    tol = 1e-12 * (1.0 + f_min)
    attaining = points[f_points <= f_min + tol]
    return f_min, tol, attaining


def eps_cases():
    r = rng(8)
    cases = {
        "odd_unweighted": (r.normal(size=31), "none", 0.1),
        "even_unweighted": (r.normal(size=30), "none", 0.1),  # a whole interval of minimisers
        "float_weights": (r.normal(size=40), "float", 0.2),
        "zero_weights": (r.standard_t(2.0, size=45), "zeros", 0.05),
        "ties": (r.integers(0, 4, size=25).astype(float), "integer", 0.25),
        "ties_unweighted_even": (r.integers(0, 4, size=24).astype(float), "none", 0.25),
        "eps_zero_median": (r.normal(size=20), "none", 0.0),
        "eps_above_spread": (r.normal(size=15), "float", 10.0),  # minimum 0 on an interval
        "large_mean": (1e6 + r.normal(size=33), "float", 0.3),
        "single": (np.array([-2.5]), "none", 0.4),
    }
    return {name: (y, weights(y.size, kind, offset=20 + i), eps)
            for i, (name, (y, kind, eps)) in enumerate(cases.items())}


EPS_CASES = eps_cases()


@pytest.mark.parametrize("name", sorted(EPS_CASES))
def test_epsilon_insensitive_is_a_true_minimiser_and_the_midpoint(name):
    y, s, eps = EPS_CASES[name]
    sw = ones_if_none(s, y.size)
    b = best_constant(Loss.EPSILON_INSENSITIVE, y, s, epsilon=eps)
    assert b.shape == (1,) and b.dtype == np.float64
    b = b[0]
    f_min, tol, attaining = eps_insensitive_brute_force(y, sw, eps)
    f_b = objective(Loss.EPSILON_INSENSITIVE, b, y, sw, eps)
    assert f_b <= f_min + tol
    _, ref_fun = bounded_min(Loss.EPSILON_INSENSITIVE, y, sw, eps)
    assert f_b <= ref_fun + 1e-12 * (1.0 + ref_fun)
    # canonical choice: the midpoint of the interval of minimisers (ends are breakpoints)
    midpoint = 0.5 * (attaining.min() + attaining.max())
    assert abs(b - midpoint) <= 1e-12 * max(1.0, abs(midpoint))


@settings(max_examples=150, deadline=None)
@given(ys=st.lists(st.integers(-6, 6), min_size=1, max_size=12),
       ws=st.lists(SMALL_WEIGHTS, min_size=12, max_size=12),
       eps=st.sampled_from([0.0, 0.25, 0.5, 1.0, 4.0]))
def test_epsilon_insensitive_small_data_is_the_midpoint_minimiser(ys, ws, eps):
    y, s = small_data(ys, ws)
    b = best_constant(Loss.EPSILON_INSENSITIVE, y, s, epsilon=eps)[0]
    f_min, tol, attaining = eps_insensitive_brute_force(y, s, eps, n_grid=501)
    assert objective(Loss.EPSILON_INSENSITIVE, b, y, s, eps) <= f_min + tol
    assert abs(b - 0.5 * (attaining.min() + attaining.max())) <= 1e-12


def test_epsilon_insensitive_interval_examples():
    assert best_constant(Loss.EPSILON_INSENSITIVE, [0.0, 10.0], epsilon=1.0)[0] == 5.0
    assert best_constant(Loss.EPSILON_INSENSITIVE, [0.0, 1.0, 2.0, 10.0], epsilon=0.0)[0] == 1.5
    # a heavy sample keeps the answer inside its tube, at the edge nearest the light one
    b = best_constant(Loss.EPSILON_INSENSITIVE, [0.0, 4.0], [1.0, 3.0], epsilon=0.5)[0]
    assert b == 3.5


# ---------------------------------------------------------------------------------------------
# Gradient property for the smooth losses, one table
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [Loss.SQUARED, Loss.HUBER, Loss.LOG])
@pytest.mark.parametrize("wkind", WEIGHT_KINDS)
def test_gradient_vanishes_at_the_answer(loss, wkind):
    n = 97
    r = rng(9)
    y = np.where(r.random(n) < 0.3, 1.0, -1.0) if loss == Loss.LOG else \
        r.standard_t(3.0, size=n) * 5.0 + 40.0
    s = ones_if_none(weights(n, wkind, offset=40), n)
    b = best_constant(loss, y, s, epsilon=1.0)[0]
    g_scale = s.sum() * (1.0 if loss != Loss.SQUARED else np.abs(y - b).max())
    assert abs(derivative(loss, b, y, s, 1.0)) <= 1e-12 * g_scale
    # and it is a minimum: both neighbours are worse (convexity)
    f_b = objective(loss, b, y, s, 1.0)
    for step in (1e-3, -1e-3):
        assert objective(loss, b + step, y, s, 1.0) > f_b


# ---------------------------------------------------------------------------------------------
# Degenerate data
# ---------------------------------------------------------------------------------------------


LOGIT_CLIP = float(np.log((1 - PROBABILITY_CLIP) / PROBABILITY_CLIP))


def test_log_all_one_label_is_finite_and_clipped():
    assert best_constant(Loss.LOG, np.ones(10))[0] == pytest.approx(LOGIT_CLIP, rel=1e-12)
    assert best_constant(Loss.LOG, -np.ones(10))[0] == pytest.approx(-LOGIT_CLIP, rel=1e-12)
    # positives present but with zero weight
    b = best_constant(Loss.LOG, [1.0, -1.0, -1.0], [0.0, 1.0, 2.0])
    assert b[0] == pytest.approx(-LOGIT_CLIP, rel=1e-12)
    # one constant column of a multilabel matrix
    y = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 0]])
    b = best_constant(Loss.LOG, y, n_outputs=3)
    assert np.all(np.isfinite(b))
    np.testing.assert_allclose(b, [LOGIT_CLIP, logit(1 / 3), logit(1 / 3)], rtol=1e-12)


def test_softmax_unseen_class_is_finite():
    b = best_constant(Loss.SOFTMAX, [0, 0, 2, 2, 2], n_outputs=4)
    assert np.all(np.isfinite(b))
    np.testing.assert_allclose(b, np.log([0.4, PROBABILITY_CLIP, 0.6, PROBABILITY_CLIP]),
                               rtol=1e-12)
    b = best_constant(Loss.SOFTMAX, [1, 1, 1], n_outputs=3)  # one class only
    np.testing.assert_allclose(b, np.log([PROBABILITY_CLIP, 1 - PROBABILITY_CLIP,
                                          PROBABILITY_CLIP]), rtol=1e-12)


@pytest.mark.parametrize("loss,y,n_outputs", [
    (Loss.SQUARED, np.arange(4.0), 1),
    (Loss.SQUARED, np.ones((4, 2)), 2),
    (Loss.HUBER, np.arange(4.0), 1),
    (Loss.EPSILON_INSENSITIVE, np.arange(4.0), 1),
    (Loss.LOG, np.array([1.0, -1.0, 1.0, 1.0]), 1),
    (Loss.LOG, np.ones((4, 3)), 3),
    (Loss.SOFTMAX, np.array([0, 1, 2, 2]), 3),
])
@pytest.mark.parametrize("empty", [False, True])
def test_zero_total_weight_gives_zeros(loss, y, n_outputs, empty):
    if empty:
        y, s = y[:0], None
    else:
        s = np.zeros(len(y))
    b = best_constant(loss, y, s, n_outputs=n_outputs)
    assert b.dtype == np.float64
    np.testing.assert_array_equal(b, np.zeros(n_outputs))


@pytest.mark.parametrize("loss", [Loss.HUBER, Loss.EPSILON_INSENSITIVE])
def test_one_weighted_sample_gives_its_target(loss):
    y = np.array([5.0, -3.0, 8.0])
    assert best_constant(loss, y, [0.0, 2.0, 0.0], epsilon=0.5)[0] == -3.0


def test_huge_targets_stay_finite():
    # y -+ eps not representable (|y| > 2**52 eps): the breakpoints collapse
    b = best_constant(Loss.HUBER, [0.0, 1e20, 2e20], epsilon=0.1)[0]
    assert b == 1e20
    assert np.isfinite(best_constant(Loss.EPSILON_INSENSITIVE, [1e300, -1e300, 1e300])[0])


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------


BAD_INPUTS = {
    "unknown_loss": (dict(loss=9, y=[1.0]), "unknown loss code 9"),
    "loss_name": (dict(loss="huber", y=[1.0]), "Loss code"),
    "loss_bool": (dict(loss=True, y=[1.0]), "Loss code"),
    "n_outputs_zero": (dict(loss=Loss.SQUARED, y=[1.0], n_outputs=0), "n_outputs"),
    "n_outputs_float": (dict(loss=Loss.SQUARED, y=[1.0], n_outputs=1.0), "n_outputs"),
    "y_3d": (dict(loss=Loss.SQUARED, y=np.zeros((2, 2, 2))), "1-D or 2-D"),
    "y_nan": (dict(loss=Loss.SQUARED, y=[1.0, np.nan]), "NaN or infinity"),
    "y_strings": (dict(loss=Loss.SQUARED, y=np.array(["a", "b"])), "numeric"),
    "squared_columns": (dict(loss=Loss.SQUARED, y=np.zeros((3, 2)), n_outputs=3), "column"),
    "weight_shape": (dict(loss=Loss.SQUARED, y=[1.0, 2.0], sample_weight=[1.0]), "shape"),
    "weight_2d": (dict(loss=Loss.SQUARED, y=[1.0, 2.0], sample_weight=[[1.0, 1.0]]), "shape"),
    "weight_negative": (dict(loss=Loss.SQUARED, y=[1.0, 2.0], sample_weight=[1.0, -1.0]),
                        "non-negative"),
    "weight_inf": (dict(loss=Loss.SQUARED, y=[1.0, 2.0], sample_weight=[1.0, np.inf]),
                   "NaN or infinity"),
    "huber_2d": (dict(loss=Loss.HUBER, y=np.zeros((3, 1))), "1-D"),
    "huber_outputs": (dict(loss=Loss.HUBER, y=[1.0], n_outputs=2), "one output"),
    "huber_negative_eps": (dict(loss=Loss.HUBER, y=[1.0], epsilon=-0.1), "epsilon"),
    "eps_ins_nan_eps": (dict(loss=Loss.EPSILON_INSENSITIVE, y=[1.0], epsilon=np.nan), "epsilon"),
    "eps_ins_inf_eps": (dict(loss=Loss.EPSILON_INSENSITIVE, y=[1.0], epsilon=np.inf), "epsilon"),
    "log_01_vector": (dict(loss=Loss.LOG, y=[0.0, 1.0]), r"\{-1, \+1\}"),
    "log_pm1_matrix": (dict(loss=Loss.LOG, y=[[-1.0], [1.0]]), r"\{0, 1\}"),
    "log_vector_outputs": (dict(loss=Loss.LOG, y=[1.0, -1.0], n_outputs=2), "one output"),
    "log_columns": (dict(loss=Loss.LOG, y=np.zeros((3, 2)), n_outputs=3), "column"),
    "softmax_out_of_range": (dict(loss=Loss.SOFTMAX, y=[0, 3], n_outputs=3), r"\[0, 2\]"),
    "softmax_negative": (dict(loss=Loss.SOFTMAX, y=[-1, 1], n_outputs=3), r"\[0, 2\]"),
    "softmax_fraction": (dict(loss=Loss.SOFTMAX, y=[0.5, 1], n_outputs=3), "integer"),
    "softmax_2d": (dict(loss=Loss.SOFTMAX, y=np.zeros((3, 3)), n_outputs=3), "1-D"),
    "softmax_one_class": (dict(loss=Loss.SOFTMAX, y=[0, 0], n_outputs=1), ">= 2"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_inputs_raise_value_error(name):
    kwargs, match = BAD_INPUTS[name]
    kwargs = dict(kwargs)
    loss, y = kwargs.pop("loss"), kwargs.pop("y")
    with pytest.raises(ValueError, match=match):
        best_constant(loss, y, **kwargs)


def test_plain_int_codes_are_accepted():
    assert best_constant(int(Loss.SQUARED), [1.0, 3.0])[0] == 2.0
    assert best_constant(np.int64(Loss.LOG), [1.0, -1.0])[0] == 0.0
