"""Every learning-rate schedule of the compiled core (csrc/include/gdsolve/schedules.h).

Checked through gdsolve._core.schedule_values / reduce_on_plateau and through gdsolve.schedules'
public classes, against the math-based formulas in tests/reference_rules.py, against
torch.optim.lr_scheduler when torch is installed, and, for scikit-learn's 'optimal' and
'invscaling', against what SGDRegressor / SGDClassifier actually fit.
"""

import math
import warnings

import numpy as np
import pytest
from reference_rules import (
    ReferencePlateau,
    SklearnStopRule,
    cosine_lr,
    cyclic_lr,
    exponential_lr,
    linear_warmup_then,
    loss_epsilon_insensitive,
    loss_huber,
    loss_log,
    loss_squared,
    multistep_lr,
    one_cycle,
    sklearn_adaptive_sgd,
    sklearn_invscaling_lr,
    sklearn_optimal_lr,
    sklearn_optimal_t0,
    sklearn_plain_sgd,
    step_lr,
    warm_restarts_lrs,
)

from gdsolve import _core
from gdsolve import schedules as sch
from gdsolve._codes import Anneal, CyclicMode, Loss
from gdsolve._codes import Schedule as Code

N = 300  # steps evaluated per schedule


class Case:
    """One schedule written three ways: core config dict, public object, and reference lr(k);
    plus the torch.optim.lr_scheduler equivalent (a factory taking the optimizer)."""

    def __init__(self, id, config, public, reference, torch_factory=None, momentum=None):
        self.id, self.config, self.public, self.reference = id, config, public, reference
        self.torch_factory, self.momentum = torch_factory, momentum

    def reference_values(self, n=N):
        if self.reference == "warm_restarts":
            c = self.config
            return np.array(warm_restarts_lrs(c["base_lr"], c["eta_min"], int(c["T_0"]),
                                              int(c["T_mult"]), n))
        return np.array([self.reference(k) for k in range(n)])


def L():
    from torch.optim import lr_scheduler

    return lr_scheduler


def warm_restarts_case(t_0, t_mult, eta_min):
    return Case(
        f"warm_restarts_T0_{t_0}_Tmult_{t_mult}",
        dict(code=Code.COSINE_WARM_RESTARTS, base_lr=0.3, T_0=t_0, T_mult=t_mult,
             eta_min=eta_min),
        lambda: sch.CosineAnnealingWarmRestarts(T_0=t_0, T_mult=t_mult, eta_min=eta_min, lr=0.3),
        "warm_restarts",
        lambda o: L().CosineAnnealingWarmRestarts(o, T_0=t_0, T_mult=t_mult, eta_min=eta_min),
    )


def one_cycle_case(anneal, three_phase, pct_start=0.3, div_factor=25.0, final_div_factor=1e4):
    kw = dict(max_lr=0.8, total_steps=N, pct_start=pct_start, div_factor=div_factor,
              final_div_factor=final_div_factor, three_phase=three_phase,
              base_momentum=0.8, max_momentum=0.93)
    return Case(
        f"one_cycle_{anneal}_{'three' if three_phase else 'two'}_phase",
        dict(code=Code.ONE_CYCLE, anneal=int(Anneal.COS if anneal == "cos" else Anneal.LINEAR),
             cycle_momentum=True, **kw),
        lambda: sch.OneCycleLR(anneal_strategy=anneal, **kw),
        lambda k: one_cycle(k, anneal=anneal, **kw)[0],
        lambda o: L().OneCycleLR(o, anneal_strategy=anneal, **kw),
        momentum=lambda k: one_cycle(k, anneal=anneal, **kw)[1],
    )


def cyclic_case(mode, up, down, gamma=1.0):
    kw = dict(base_lr=0.01, max_lr=0.2, step_size_up=up, step_size_down=down, gamma=gamma)
    return Case(
        f"cyclic_{mode}_{up}_{down}",
        dict(code=Code.CYCLIC, base_lr=0.01, max_lr=0.2, step_size_up=up,
             step_size_down=down or 0.0, mode=int(CyclicMode[mode.upper()]), gamma=gamma),
        lambda: sch.CyclicLR(mode=mode, **kw),
        lambda k: cyclic_lr(k, mode=mode, **kw),
        lambda o: L().CyclicLR(o, mode=mode, cycle_momentum=False, **kw),
    )


MILESTONES = (10, 50, 50, 120, 260)  # a repeated milestone counts twice, as in PyTorch

CASES = [
    Case("constant", dict(code=Code.CONSTANT, base_lr=0.3), lambda: sch.Constant(lr=0.3),
         lambda k: 0.3, lambda o: L().LambdaLR(o, lambda k: 1.0)),
    Case("step", dict(code=Code.STEP, base_lr=0.3, step_size=37, gamma=0.7),
         lambda: sch.StepLR(step_size=37, gamma=0.7, lr=0.3),
         lambda k: step_lr(0.3, 37, 0.7, k), lambda o: L().StepLR(o, step_size=37, gamma=0.7)),
    Case("multistep", dict(code=Code.MULTISTEP, base_lr=0.3, milestones=MILESTONES, gamma=0.6),
         lambda: sch.MultiStepLR(milestones=MILESTONES, gamma=0.6, lr=0.3),
         lambda k: multistep_lr(0.3, MILESTONES, 0.6, k),
         lambda o: L().MultiStepLR(o, milestones=list(MILESTONES), gamma=0.6)),
    Case("exponential", dict(code=Code.EXPONENTIAL, base_lr=0.3, gamma=0.99),
         lambda: sch.ExponentialLR(gamma=0.99, lr=0.3),
         lambda k: exponential_lr(0.3, 0.99, k), lambda o: L().ExponentialLR(o, gamma=0.99)),
    # T_max < N: the closed form keeps following the cosine past T_max, as PyTorch's does
    Case("cosine", dict(code=Code.COSINE, base_lr=0.3, T_max=120, eta_min=0.01),
         lambda: sch.CosineAnnealingLR(T_max=120, eta_min=0.01, lr=0.3),
         lambda k: cosine_lr(0.3, 0.01, 120, k),
         lambda o: L().CosineAnnealingLR(o, T_max=120, eta_min=0.01)),
    warm_restarts_case(10, 1, 0.0),
    warm_restarts_case(5, 2, 0.02),
    warm_restarts_case(2, 3, 0.01),  # restarts at 242: log(243)/log(3) rounds below 5
    one_cycle_case("cos", False),
    one_cycle_case("linear", False, pct_start=0.25, div_factor=10.0, final_div_factor=100.0),
    one_cycle_case("cos", True),
    one_cycle_case("linear", True, pct_start=0.2),
    cyclic_case("triangular", 20, None),
    cyclic_case("triangular2", 15, 25),
    cyclic_case("exp_range", 10, 30, gamma=0.995),
    Case("warmup_cosine",
         dict(code=Code.COSINE, base_lr=0.3, T_max=100, eta_min=0.0, warmup_steps=20,
              warmup_start_factor=0.25),
         lambda: sch.Warmup(sch.CosineAnnealingLR(T_max=100, lr=0.3), warmup_steps=20,
                            start_factor=0.25),
         lambda k: linear_warmup_then(lambda j: cosine_lr(0.3, 0.0, 100, j), 20, 0.25, k),
         lambda o: L().SequentialLR(o, [L().LinearLR(o, start_factor=0.25, total_iters=20),
                                        L().CosineAnnealingLR(o, T_max=100)], milestones=[20])),
    Case("warmup_step",
         dict(code=Code.STEP, base_lr=0.3, step_size=30, gamma=0.5, warmup_steps=13,
              warmup_start_factor=0.1),
         lambda: sch.Warmup(sch.StepLR(step_size=30, gamma=0.5, lr=0.3), warmup_steps=13,
                            start_factor=0.1),
         lambda k: linear_warmup_then(lambda j: step_lr(0.3, 30, 0.5, j), 13, 0.1, k),
         lambda o: L().SequentialLR(o, [L().LinearLR(o, start_factor=0.1, total_iters=13),
                                        L().StepLR(o, step_size=30, gamma=0.5)],
                                    milestones=[13])),
]
CASE_IDS = [c.id for c in CASES]


def core_values(config, steps, t=None):
    steps = np.asarray(steps, dtype=np.float64)
    t = steps + 1.0 if t is None else np.asarray(t, dtype=np.float64)
    return _core.schedule_values(config, steps, t)


# ---- compiled schedules vs the math reference ------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_core_schedule_matches_reference(case):
    lr, mom = core_values(case.config, np.arange(N))
    expected = case.reference_values()
    np.testing.assert_allclose(lr, expected, rtol=1e-12, atol=1e-15)
    if case.momentum is None:
        assert np.all(mom == -1.0)  # "not cycled"
    else:
        np.testing.assert_allclose(mom, [case.momentum(k) for k in range(N)], rtol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_public_schedule_matches_reference(case):
    sched = case.public()
    values = sched.values(N)
    np.testing.assert_allclose(values, case.reference_values(), rtol=1e-12, atol=1e-15)
    for k in (0, 1, 77, N - 1):
        assert sched(k) == pytest.approx(values[k], rel=1e-15)
    mom = sched.momentum_values(N)
    if case.momentum is None:
        assert np.all(np.isnan(mom))
    else:
        np.testing.assert_allclose(mom, [case.momentum(k) for k in range(N)], rtol=1e-12)
    config = sched.to_config()
    for key, value in case.config.items():  # the public object fills the same C++ fields
        got = config.get(key)
        if key == "milestones":
            assert list(got) == list(value)
        elif key == "step_size_down" and value == 0.0:
            assert not got
        else:
            assert got == pytest.approx(value), key


def torch_lrs(torch, factory, n, base_lr=0.3, optimizer="sgd"):
    """Learning rate (and momentum / beta1) that torch's scheduler sets before each of n steps."""
    p = torch.nn.Parameter(torch.zeros(1))
    if optimizer == "sgd":
        opt = torch.optim.SGD([p], lr=base_lr, momentum=0.9)
    else:
        opt = torch.optim.Adam([p], lr=base_lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's internal step(0) deprecation warning
        scheduler = factory(opt)
        lrs, moms = [], []
        for _ in range(n):
            group = opt.param_groups[0]
            lrs.append(group["lr"])
            moms.append(group["momentum"] if optimizer == "sgd" else group["betas"][0])
            opt.step()
            scheduler.step()
    return np.array(lrs), np.array(moms)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_core_schedule_matches_torch(case):
    torch = pytest.importorskip("torch")
    lr, mom = core_values(case.config, np.arange(N))
    t_lr, t_mom = torch_lrs(torch, case.torch_factory, N)
    np.testing.assert_allclose(lr, t_lr, rtol=1e-10, atol=1e-14)
    if case.momentum is not None:
        np.testing.assert_allclose(mom, t_mom, rtol=1e-10)
        _, adam_beta1 = torch_lrs(torch, case.torch_factory, N, optimizer="adam")
        np.testing.assert_allclose(mom, adam_beta1, rtol=1e-10)  # beta1 cycles for Adam


def test_warmup_then_one_cycle_momentum_holds_during_warmup():
    config = dict(one_cycle_case("cos", False).config, warmup_steps=12, warmup_start_factor=0.5)
    _, mom = core_values(config, np.arange(N))
    inner = [one_cycle(k, max_lr=0.8, total_steps=N, base_momentum=0.8, max_momentum=0.93)[1]
             for k in range(N)]
    expected = [inner[0]] * 12 + inner[: N - 12]
    np.testing.assert_allclose(mom, expected, rtol=1e-12)


@pytest.mark.parametrize("code", [Code.ADAPTIVE, Code.REDUCE_ON_PLATEAU])
def test_loop_driven_schedules_are_flat_between_epochs(code):
    # the loop rescales them at epoch ends; within the compiled schedule they are the base rate
    lr, mom = core_values(dict(code=code, base_lr=0.07), np.arange(50))
    np.testing.assert_array_equal(lr, 0.07)
    assert np.all(mom == -1.0)


# ---- scikit-learn's optimal and invscaling ---------------------------------------------------

SKLEARN_LOSSES = {  # gdsolve code, parameter, reference (value, derivative)
    "squared": (Loss.SQUARED, 0.0, lambda p, y: loss_squared(p, y)),
    "huber_0.1": (Loss.HUBER, 0.1, lambda p, y: loss_huber(p, y, 0.1)),
    "huber_2.5": (Loss.HUBER, 2.5, lambda p, y: loss_huber(p, y, 2.5)),
    "epsilon_insensitive": (Loss.EPSILON_INSENSITIVE, 0.1,
                            lambda p, y: loss_epsilon_insensitive(p, y, 0.1)),
    "log": (Loss.LOG, 0.0, lambda p, y: loss_log(p, y)),
}


@pytest.mark.parametrize("alpha", [1e-6, 1e-4, 1e-2, 1.0, 30.0])
@pytest.mark.parametrize("loss_name", sorted(SKLEARN_LOSSES))
def test_optimal_t0_heuristic(alpha, loss_name):
    code, param, ref_loss = SKLEARN_LOSSES[loss_name]
    typw = math.sqrt(1.0 / math.sqrt(alpha))
    dloss = float(ref_loss(np.array(-typw), np.array(1.0))[1])
    expected = sklearn_optimal_t0(alpha, dloss)
    assert _core.sklearn_optimal_t0(alpha, dloss) == pytest.approx(expected, rel=1e-14)
    public = sch.Optimal(alpha=alpha).resolved(loss=code, loss_param=param)
    assert public.t0 == pytest.approx(expected, rel=1e-14)
    # first sample's rate is sklearn's eta_init
    assert public(0) == pytest.approx(1.0 / (alpha * expected), rel=1e-12)


def test_optimal_and_invscaling_use_the_sample_counter():
    # t (samples seen + 1) drives them, not the optimizer step: batches of 32 samples
    steps = np.arange(200, dtype=np.float64)
    t = 1.0 + 32.0 * steps
    lr, _ = core_values(dict(code=Code.OPTIMAL, alpha=3e-3, optimal_t0=517.0), steps, t)
    np.testing.assert_allclose(lr, [sklearn_optimal_lr(3e-3, 517.0, x) for x in t], rtol=1e-13)
    lr, _ = core_values(dict(code=Code.INVSCALING, base_lr=0.05, power_t=0.37), steps, t)
    np.testing.assert_allclose(lr, [sklearn_invscaling_lr(0.05, 0.37, x) for x in t],
                               rtol=1e-13)


def sgd_data(seed, n=25, classification=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = X @ np.array([1.5, -2.0, 0.5, 0.0]) + 0.3 + 0.1 * rng.normal(size=n)
    if classification:
        y = np.where(y + 0.5 * rng.normal(size=n) > 0, 1.0, -1.0)
    return X, y


@pytest.mark.parametrize("estimator, loss_name, alpha", [
    ("regressor", "squared", 1e-2),
    ("regressor", "huber_2.5", 1e-3),
    ("regressor", "epsilon_insensitive", 1e-2),
    ("classifier", "log", 1e-3),
])
def test_optimal_reproduces_sklearn_sgd(estimator, loss_name, alpha):
    # the schedule's rates, fed to a NumPy copy of sklearn's per-sample update, give the
    # coefficients SGDRegressor / SGDClassifier(learning_rate="optimal") fit
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    code, param, ref_loss = SKLEARN_LOSSES[loss_name]
    X, y = sgd_data(0, classification=estimator == "classifier")
    epochs = 3
    sk_loss = {"squared": "squared_error", "huber_2.5": "huber",
               "epsilon_insensitive": "epsilon_insensitive", "log": "log_loss"}[loss_name]
    kw = dict(loss=sk_loss, penalty="l2", alpha=alpha, learning_rate="optimal",
              max_iter=epochs, tol=None, shuffle=False)
    if estimator == "regressor":
        model = SGDRegressor(epsilon=param if param else 0.1, **kw).fit(X, y)
    else:
        model = SGDClassifier(**kw).fit(X, y)
    etas = sch.Optimal(alpha=alpha).resolved(loss=code, loss_param=param).values(
        epochs * len(y))
    w, b = sklearn_plain_sgd(X, y, etas, alpha, lambda p, t: float(ref_loss(p, t)[1]))
    np.testing.assert_allclose(model.coef_.ravel(), w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.intercept_[0], b, rtol=1e-9, atol=1e-12)


def test_invscaling_reproduces_sklearn_sgd():
    from sklearn.linear_model import SGDRegressor

    X, y = sgd_data(1)
    epochs = 4
    model = SGDRegressor(learning_rate="invscaling", eta0=0.02, power_t=0.3, alpha=1e-3,
                         max_iter=epochs, tol=None, shuffle=False).fit(X, y)
    etas = sch.InvScaling(eta0=0.02, power_t=0.3).values(epochs * len(y))
    w, b = sklearn_plain_sgd(X, y, etas, 1e-3, lambda p, t: p - t)
    np.testing.assert_allclose(model.coef_, w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.intercept_[0], b, rtol=1e-9, atol=1e-12)


# ---- scikit-learn's stopping rule / 'adaptive' (plateau_stop_update) --------------------------


def core_stop_rule(tol, n_iter_no_change, higher_is_better=False, adaptive=False):
    state = {}

    def update(value, eta):
        keep_going, factor = _core.plateau_stop(state, value, tol, n_iter_no_change,
                                                higher_is_better, adaptive, eta)
        return keep_going, eta * factor

    return update


@pytest.mark.parametrize("higher_is_better", [False, True])
@pytest.mark.parametrize("adaptive", [False, True])
def test_plateau_stop_rule_matches_sklearn_logic(higher_is_better, adaptive):
    rng = np.random.default_rng(4)
    trend = np.linspace(1.0, 0.0, 200) ** 3  # improving quickly, then barely
    values = trend + rng.uniform(0, 2e-3, 200)
    if higher_is_better:
        values = 1 - values
    core = core_stop_rule(1e-3, 4, higher_is_better, adaptive)
    ref = SklearnStopRule(1e-3, 4, higher_is_better, adaptive)
    eta_core = eta_ref = 0.1
    n_cuts = 0
    for epoch, value in enumerate(values):
        keep_core, eta_core = core(float(value), eta_core)
        keep_ref, new_ref = ref.update(float(value), eta_ref)
        n_cuts += new_ref < eta_ref
        eta_ref = new_ref
        assert keep_core == keep_ref and eta_core == pytest.approx(eta_ref, rel=1e-15), epoch
        if not keep_ref:
            break
    assert not keep_ref  # the sequence ends in a plateau that stops the fit
    assert (n_cuts > 0) == adaptive


def test_adaptive_reproduces_sklearn_sgd():
    # the compiled rule driving eta gives SGDRegressor(learning_rate="adaptive")'s fit and n_iter_
    from sklearn.linear_model import SGDRegressor

    X, y = sgd_data(2, n=20)
    kw = dict(eta0=0.05, alpha=1e-3, tol=1e-4, n_iter_no_change=3, max_iter=200)
    model = SGDRegressor(learning_rate="adaptive", shuffle=False, **kw).fit(X, y)
    w, b, n_epochs = sklearn_adaptive_sgd(
        X, y, kw["eta0"], kw["alpha"], kw["max_iter"],
        core_stop_rule(kw["tol"], kw["n_iter_no_change"], adaptive=True))
    assert n_epochs == model.n_iter_ < kw["max_iter"]
    np.testing.assert_allclose(model.coef_, w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.intercept_[0], b, rtol=1e-9, atol=1e-12)


# ---- reduce-on-plateau state machine ---------------------------------------------------------


def plateau_metrics(seed=0):
    """Improvement, noisy plateaus, improvements too small for the relative threshold."""
    rng = np.random.default_rng(seed)
    return np.concatenate([
        np.linspace(1.0, 0.5, 15),
        0.5 + rng.uniform(0.0, 0.01, 40),
        np.linspace(0.49, 0.3, 10),
        0.3 * (1 - 2e-5 * np.arange(30)),
        0.2 + rng.uniform(0.0, 0.05, 60),
        np.linspace(0.19, 0.01, 20),
        0.01 + rng.uniform(0.0, 1e-4, 40),
    ])


PLATEAU_CONFIGS = [
    dict(factor=0.5, patience=3, threshold=1e-4, threshold_mode="rel", cooldown=2, min_lr=0.0,
         eps=1e-8),
    dict(factor=0.3, patience=0, threshold=0.01, threshold_mode="abs", cooldown=0, min_lr=0.0,
         eps=1e-8),
    dict(factor=0.5, patience=5, threshold=1e-3, threshold_mode="rel", cooldown=0,
         min_lr=0.04, eps=1e-8),  # floor reached
    dict(factor=0.7, patience=2, threshold=1e-4, threshold_mode="rel", cooldown=4, min_lr=0.0,
         eps=0.05),  # late reductions smaller than eps are skipped
]


@pytest.mark.parametrize("config", PLATEAU_CONFIGS, ids=lambda c: "_".join(map(str, c.values())))
def test_reduce_on_plateau_state_machine(config):
    ref = ReferencePlateau(0.5, **config)
    state = {"lr": 0.5}
    n_reduced = 0
    for metric in plateau_metrics():
        reduced = _core.reduce_on_plateau(config, state, float(metric))
        assert reduced == ref.step(float(metric))
        n_reduced += reduced
        assert state["lr"] == pytest.approx(ref.lr, rel=1e-15)
        assert state["num_bad_epochs"] == ref.bad
        assert state["cooldown_counter"] == ref.cooldown_left
        assert state["best"] == ref.best
    assert n_reduced >= 2  # the sequence exercises the reductions
    assert state["lr"] >= config["min_lr"]


@pytest.mark.parametrize("config", PLATEAU_CONFIGS, ids=lambda c: "_".join(map(str, c.values())))
def test_reduce_on_plateau_matches_torch(config):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", **config)
    public = sch.ReduceLROnPlateau(lr=0.5, **config)
    for metric in plateau_metrics(seed=1):
        opt.step()
        scheduler.step(float(metric))
        assert public.step(float(metric)) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-15)
    assert public.current_lr < 0.5


# ---- public API details ----------------------------------------------------------------------


def test_schedule_names_are_the_documented_ones():
    assert set(sch.SCHEDULE_NAMES) == {
        "constant", "optimal", "invscaling", "adaptive", "step", "multistep", "exponential",
        "cosine", "warm_restarts", "one_cycle", "cyclic", "plateau", "warmup_cosine"}


EXPECTED_TYPES = {
    "constant": "Constant", "optimal": "Optimal", "invscaling": "InvScaling",
    "adaptive": "Adaptive", "step": "StepLR", "multistep": "MultiStepLR",
    "exponential": "ExponentialLR", "cosine": "CosineAnnealingLR",
    "warm_restarts": "CosineAnnealingWarmRestarts", "one_cycle": "OneCycleLR",
    "cyclic": "CyclicLR", "plateau": "ReduceLROnPlateau", "warmup_cosine": "Warmup",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_TYPES))
def test_make_schedule_by_name_resolves_every_parameter(name):
    sched = sch.make_schedule(name, lr=0.1, total_steps=200, alpha=1e-3, loss=Loss.LOG)
    assert type(sched).__name__ == EXPECTED_TYPES[name]
    values = sched.values(200)
    assert values.shape == (200,) and np.all(np.isfinite(values)) and np.all(values > 0)
    assert sched.per_epoch == (name in ("adaptive", "plateau"))
    if name not in ("optimal", "one_cycle", "cyclic", "warmup_cosine"):
        assert values[0] == pytest.approx(0.1)  # the estimator's base rate


def test_make_schedule_fit_relative_defaults():
    cosine = sch.make_schedule("cosine", lr=0.1, total_steps=200)
    assert cosine.T_max == 200 and cosine.lr == 0.1
    np.testing.assert_allclose(cosine.values(200), [cosine_lr(0.1, 0.0, 200, k)
                                                    for k in range(200)], rtol=1e-12)
    one = sch.make_schedule("one_cycle", lr=0.1, total_steps=200)
    assert one.max_lr == 0.1 and one.total_steps == 200
    warm = sch.make_schedule("warmup_cosine", lr=0.1, total_steps=200)
    assert isinstance(warm.inner, sch.CosineAnnealingLR)
    assert warm.warmup_steps + warm.inner.T_max == 200  # the cosine ends with the fit
    optimal = sch.make_schedule("optimal", lr=None, total_steps=10, alpha=1e-3, loss=Loss.LOG)
    assert optimal.alpha == 1e-3
    assert optimal.t0 == pytest.approx(sklearn_optimal_t0(
        1e-3, float(loss_log(np.array(-(1e-3) ** -0.25), np.array(1.0))[1])))


def test_make_schedule_keeps_given_objects_and_does_not_mutate_them():
    spec = sch.CosineAnnealingLR(eta_min=0.001)
    sched = sch.make_schedule(spec, lr=0.2, total_steps=50)
    assert sched is not spec and spec.T_max is None and spec.lr is None
    assert sched.T_max == 50 and sched.lr == 0.2 and sched.eta_min == 0.001
    fixed = sch.make_schedule(sch.StepLR(step_size=5, lr=0.9), lr=0.2, total_steps=50)
    assert fixed.lr == 0.9 and fixed.step_size == 5  # user values win over fit defaults


def test_make_schedule_unknown_name():
    with pytest.raises(ValueError, match="learning_rate"):
        sch.make_schedule("linear", lr=0.1, total_steps=10)


@pytest.mark.parametrize("bad", [
    lambda: sch.CosineAnnealingLR(lr=0.1),  # T_max missing
    lambda: sch.CosineAnnealingWarmRestarts(T_0=5, T_mult=1.5, lr=0.1),
    lambda: sch.OneCycleLR(max_lr=0.1, total_steps=100, pct_start=1.2),
    lambda: sch.OneCycleLR(max_lr=0.1, total_steps=100, anneal_strategy="exp"),
    lambda: sch.CyclicLR(base_lr=0.01, max_lr=0.1, mode="sawtooth"),
    lambda: sch.StepLR(step_size=0, lr=0.1),
    lambda: sch.MultiStepLR(milestones=(30, 10), lr=0.1),
    lambda: sch.Optimal(alpha=0.0, t0=1.0),
    lambda: sch.Warmup(sch.Constant(lr=0.1), warmup_steps=-3),
])
def test_invalid_schedules_raise_value_error(bad):
    with pytest.raises(ValueError):
        bad().values(3)


def test_plateau_config_rejects_bad_mode():
    with pytest.raises(ValueError, match="threshold_mode"):
        sch.ReduceLROnPlateau(lr=0.1, threshold_mode="relative").step(1.0)
