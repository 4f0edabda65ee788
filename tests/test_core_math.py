"""Per-element math of the C++ core: losses.h, activations.h, penalties.h (through gdsolve._core).

Values and derivatives are checked against the NumPy/SciPy formulas in tests/reference_rules.py and
against central finite differences, in float32 and float64, including margins far outside the
range where a naive exp() overflows.
"""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from reference_rules import (
    activation,
    cumulative_l1,
    loss_epsilon_insensitive,
    loss_huber,
    loss_log,
    loss_squared,
    penalty_value,
    soft_threshold,
)
from scipy.special import log_softmax, softmax

from gdsolve import _core
from gdsolve._codes import Activation, Loss, Penalty

DTYPES = [np.float32, np.float64]

LOSSES = {  # id: (code, parameter, reference(p, y) -> (value, derivative), classification)
    "squared": (Loss.SQUARED, 0.0, loss_squared, False),
    "huber_0.3": (Loss.HUBER, 0.3, lambda p, y: loss_huber(p, y, 0.3), False),
    "huber_1.35": (Loss.HUBER, 1.35, lambda p, y: loss_huber(p, y, 1.35), False),
    "epsilon_insensitive": (Loss.EPSILON_INSENSITIVE, 0.1,
                            lambda p, y: loss_epsilon_insensitive(p, y, 0.1), False),
    "log": (Loss.LOG, 0.0, loss_log, True),
}
KINKS = {"huber_0.3": (), "huber_1.35": (), "epsilon_insensitive": (-0.1, 0.1)}


def tol(dtype):
    return dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-6)


def loss_inputs(classification, dtype, n=400, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(scale=3.0, size=n)
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0) if classification else rng.normal(size=n)
    return p.astype(dtype), y.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss_id", sorted(LOSSES))
def test_loss_value_and_derivative_match_numpy(loss_id, dtype):
    code, param, ref, classification = LOSSES[loss_id]
    p, y = loss_inputs(classification, dtype)
    value, deriv = _core.losses(int(code), p, y, param)
    assert value.dtype == dtype and deriv.dtype == dtype
    ref_value, ref_deriv = ref(p.astype(np.float64), y.astype(np.float64))
    np.testing.assert_allclose(value, ref_value, **tol(dtype))
    # log: beyond |margin| 18 the derivative uses exp(-|z|) alone (as scikit-learn does), off
    # by at most a factor 1 + e^-18
    deriv_tol = dict(rtol=2e-8, atol=1e-14) if loss_id == "log" and dtype == np.float64 \
        else tol(dtype)
    np.testing.assert_allclose(deriv, ref_deriv, **deriv_tol)


@pytest.mark.parametrize("loss_id", sorted(LOSSES))
def test_loss_derivative_is_finite_difference_of_value(loss_id):
    code, param, _, classification = LOSSES[loss_id]
    p, y = loss_inputs(classification, np.float64, seed=1)
    keep = np.ones_like(p, dtype=bool)
    for kink in KINKS.get(loss_id, ()):  # not differentiable there
        keep &= np.abs(p - y - kink) > 1e-3
    p, y = p[keep], y[keep]
    h = 1e-6
    up, _ = _core.losses(int(code), p + h, y, param)
    down, _ = _core.losses(int(code), p - h, y, param)
    _, deriv = _core.losses(int(code), p, y, param)
    np.testing.assert_allclose(deriv, (up - down) / (2 * h), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_loss_huge_margins(dtype):
    margins = np.array([-1e4, -3e3, -800.0, -90.0, -18.5, -18.0, -17.5, 0.0, 17.5, 18.0, 18.5,
                        90.0, 800.0, 3e3, 1e4])
    for label in (-1.0, 1.0):
        p = (margins * label).astype(dtype)  # so that y * p runs over `margins`
        y = np.full_like(p, label)
        with np.errstate(all="raise"):
            value, deriv = _core.losses(int(Loss.LOG), p, y, 0.0)
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(deriv))
        ref_value, ref_deriv = loss_log(p.astype(np.float64), y.astype(np.float64))
        np.testing.assert_allclose(value, ref_value, rtol=1e-6 if dtype == np.float32 else 1e-14,
                                   atol=1e-30)
        np.testing.assert_allclose(deriv, ref_deriv, rtol=2e-8 if dtype == np.float64 else 1e-6,
                                   atol=1e-30)
        assert value[0] == pytest.approx(1e4, rel=1e-6)  # log(1 + e^1e4) = 1e4, not inf
        assert deriv[0] == -label  # saturated
        assert value[-1] == 0.0 and deriv[-1] == 0.0  # e^-1e4 underflows to 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_regression_losses_are_exact_at_large_residuals(dtype):
    p = np.array([-1e6, -1e3, 1e3, 1e6], dtype=dtype)
    y = np.zeros_like(p)
    for loss_id in ("squared", "huber_1.35", "epsilon_insensitive"):
        code, param, ref, _ = LOSSES[loss_id]
        value, deriv = _core.losses(int(code), p, y, param)
        ref_value, ref_deriv = ref(p.astype(np.float64), y.astype(np.float64))
        np.testing.assert_allclose(value, ref_value, rtol=1e-6)
        np.testing.assert_allclose(deriv, ref_deriv, rtol=1e-6)


# ---- softmax cross-entropy -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e3])
def test_softmax_cross_entropy_matches_scipy(dtype, scale):
    rng = np.random.default_rng(int(scale))
    z = (rng.normal(size=(64, 7)) * scale).astype(dtype)
    labels = rng.integers(0, 7, size=64).astype(np.int64)
    z64 = z.astype(np.float64)
    expected_loss = -log_softmax(z64, axis=1)[np.arange(64), labels]
    expected_grad = softmax(z64, axis=1)
    expected_grad[np.arange(64), labels] -= 1.0
    grad = z.copy()
    with np.errstate(all="raise"):
        loss = _core.softmax_xent(grad, labels)
    assert loss.dtype == dtype and grad.dtype == dtype
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    if dtype == np.float64:
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-12, atol=1e-12 * scale)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)
    else:
        # float32 logits of size `scale` carry an absolute rounding of ~6e-8 * scale
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-5, atol=2e-7 * scale)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)


def test_softmax_gradient_is_finite_difference_of_loss():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(10, 4))
    labels = rng.integers(0, 4, size=10).astype(np.int64)
    grad = z.copy()
    _core.softmax_xent(grad, labels)
    h = 1e-6
    for j in range(4):
        step = np.zeros_like(z)
        step[:, j] = h
        up = _core.softmax_xent(z + step, labels)
        down = _core.softmax_xent(z - step, labels)
        np.testing.assert_allclose(grad[:, j], (up - down) / (2 * h), rtol=1e-6, atol=1e-9)


# ---- activations -----------------------------------------------------------------------------

ACTIVATIONS = {"identity": Activation.IDENTITY, "relu": Activation.RELU, "tanh": Activation.TANH,
               "logistic": Activation.LOGISTIC}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_and_derivative_match_numpy(name, dtype):
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(scale=3.0, size=300), [-1e4, -800.0, -40.0, 0.0, 40.0,
                                                          800.0, 1e4]]).astype(dtype)
    with np.errstate(all="raise"):
        value, deriv = _core.activations(int(ACTIVATIONS[name]), z)
    assert value.dtype == dtype and deriv.dtype == dtype
    ref_value, ref_deriv = activation(name, z.astype(np.float64))
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(deriv))
    np.testing.assert_allclose(value, ref_value, **tol(dtype))
    # derivatives come from the output a = f(z): 1 - a^2 and a (1 - a) lose the tiny tails
    atol = 1e-15 if dtype == np.float64 else 1e-7
    np.testing.assert_allclose(deriv, ref_deriv, rtol=tol(dtype)["rtol"] * 10, atol=atol)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivative_is_finite_difference(name):
    z = np.random.default_rng(2).normal(scale=2.0, size=200)
    z = z[np.abs(z) > 1e-3]  # relu has a kink at 0
    code = int(ACTIVATIONS[name])
    h = 1e-6
    up, _ = _core.activations(code, z + h)
    down, _ = _core.activations(code, z - h)
    _, deriv = _core.activations(code, z)
    np.testing.assert_allclose(deriv, (up - down) / (2 * h), rtol=1e-6, atol=1e-9)


# ---- penalties -------------------------------------------------------------------------------

PENALTIES = {"none": Penalty.NONE, "l2": Penalty.L2, "l1": Penalty.L1,
             "elasticnet": Penalty.ELASTICNET}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_penalty_value_and_split(name, dtype):
    w = np.random.default_rng(3).normal(size=50).astype(dtype)
    alpha, l1_ratio = 0.03, 0.35
    l2, l1, value = _core.penalty(int(PENALTIES[name]), alpha, l1_ratio, w)
    expected = penalty_value(name, alpha, l1_ratio, w.astype(np.float64))
    assert value == pytest.approx(expected, rel=1e-12 if dtype == np.float64 else 1e-6, abs=0)
    # the split is the gradient of the smooth part (l2 * w) and the l1 threshold scale
    wd = w.astype(np.float64)
    assert l2 * 0.5 * float(wd @ wd) + l1 * float(np.abs(wd).sum()) == pytest.approx(
        expected, rel=1e-6)
    assert l1 == pytest.approx({"none": 0, "l2": 0, "l1": alpha, "elasticnet": alpha * l1_ratio}
                               [name])


@pytest.mark.parametrize("dtype", DTYPES)
def test_l1_soft_threshold(dtype):
    w = np.random.default_rng(4).normal(scale=0.2, size=200).astype(dtype)
    expected = soft_threshold(w.astype(np.float64), 0.1)
    _core.l1_soft_threshold(w, 0.1)
    assert w.dtype == dtype
    np.testing.assert_allclose(w, expected, rtol=1e-6, atol=1e-7 if dtype == np.float32 else 0)
    assert np.count_nonzero(w == 0) > 50  # exact zeros appear


@pytest.mark.parametrize("dtype", DTYPES)
def test_l1_cumulative_truncation(dtype):
    # several rounds of: gradient move, then truncation against the accumulated penalty u
    rng = np.random.default_rng(6)
    w = rng.normal(scale=0.1, size=100).astype(dtype)
    q = np.zeros_like(w)
    w_ref, q_ref = w.astype(np.float64), np.zeros(100)
    u = 0.0
    for _ in range(20):
        move = (rng.normal(scale=0.02, size=100)).astype(dtype)
        w += move
        w_ref += move.astype(np.float64)
        u += 0.004
        _core.l1_cumulative_truncate(w, q, u)
        w_ref, q_ref = cumulative_l1(w_ref, q_ref, u)
        tol32 = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
        np.testing.assert_allclose(w, w_ref, **tol32)
        np.testing.assert_allclose(q, q_ref, **tol32)
    assert np.count_nonzero(w == 0) > 10


def ulp_error(got, want):
    """|got - want| in units in the last place of want (of want's dtype)."""
    want = np.asarray(want)
    return np.abs(got.astype(np.float64) - want.astype(np.float64)) / np.spacing(np.abs(want))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_exp_nonpositive_within_two_ulp(dtype):
    """fast_math.h's vectorizable exp against NumPy's on a dense grid of x <= 0, down to the
    underflow threshold (where it returns exactly 0); the vector overload (whole 32-byte vectors,
    the tail one by one) equals the scalar one exactly."""
    low = -700.0 if dtype == np.float64 else -85.0
    x = np.concatenate([np.linspace(low, 0.0, 200_001), -np.logspace(-12, 0, 2001), [0.0]])
    x = x.astype(dtype)
    got = _core.fast_math("exp_nonpositive", x)
    assert got.dtype == dtype
    assert ulp_error(got, np.exp(x)).max() <= 2.0
    assert_array_equal(_core.fast_math("exp_nonpositive", x, lanes=True), got)
    tiny = np.array([-1e4, -800.0, -1e4, -800.0, -1e4, -800.0, -1e4, -800.0, -1e4], dtype=dtype)
    assert not _core.fast_math("exp_nonpositive", tiny).any()
    assert not _core.fast_math("exp_nonpositive", tiny, lanes=True).any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_log1p_unit_within_four_ulp(dtype):
    """fast_math.h's log1p on [0, 1] (the log loss's log(1 + exp(-|z|))) against NumPy's,
    including tiny arguments, where log1p(x) ~ x must keep full relative accuracy, and both
    sides of the sqrt(2) reduction point."""
    x = np.concatenate([np.linspace(0.0, 1.0, 200_001), np.logspace(-300 if dtype == np.float64
                                                                    else -37, -1, 4001),
                        [np.sqrt(2.0) - 1.0 + d for d in (-1e-9, 0.0, 1e-9)]])
    x = x.astype(dtype)
    got = _core.fast_math("log1p_unit", x)
    want = np.log1p(x.astype(np.float64)).astype(dtype)
    nonzero = want != 0
    assert got.dtype == dtype
    assert ulp_error(got[nonzero], want[nonzero]).max() <= 4.0
    assert np.all(got[~nonzero] == 0)
    assert_array_equal(_core.fast_math("log1p_unit", x, lanes=True), got)
