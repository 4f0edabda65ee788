"""Every compiled update rule (csrc/include/gdsolve/optimizers.h) and gradient clipping (clip.h).

Checked through the low-level binding gdsolve._core.optimizer_step and through gdsolve.optim's
public classes, against the NumPy re-implementations in tests/reference_rules.py and, when torch is
installed, against torch.optim / torch.nn.utils (the authority on semantics).
"""

import inspect

import numpy as np
import pytest
from reference_rules import ReferenceOptimizer, clip_by_norm, clip_by_value, one_cycle

from gdsolve import _core
from gdsolve._codes import Clip
from gdsolve._codes import Optimizer as Code

N_STEPS = 60
N_PARAMS = 37

# (case id, rule, non-default hyper-parameters with PyTorch names). Every case decays weights.
CASES = [
    ("sgd", "sgd", dict(lr=0.05, weight_decay=0.03)),
    ("sgd_momentum", "sgd", dict(lr=0.03, momentum=0.8, weight_decay=0.02)),
    ("sgd_dampening", "sgd", dict(lr=0.03, momentum=0.7, dampening=0.3, weight_decay=0.02)),
    ("sgd_nesterov", "sgd", dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("adagrad", "adagrad", dict(lr=0.2, lr_decay=0.05, weight_decay=0.02,
                                initial_accumulator_value=0.3, eps=1e-6)),
    ("rmsprop", "rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.02)),
    ("rmsprop_centered", "rmsprop", dict(lr=0.01, alpha=0.95, eps=1e-6, weight_decay=0.02,
                                         centered=True)),
    ("rmsprop_momentum", "rmsprop", dict(lr=0.005, alpha=0.9, weight_decay=0.02, momentum=0.6)),
    ("rmsprop_centered_momentum", "rmsprop", dict(lr=0.005, alpha=0.9, weight_decay=0.02,
                                                  momentum=0.6, centered=True)),
    ("adam", "adam", dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.03)),
    ("adam_amsgrad", "adam", dict(lr=0.02, betas=(0.85, 0.9), eps=1e-7, weight_decay=0.03,
                                  amsgrad=True)),
    ("adamw", "adamw", dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("adamw_amsgrad", "adamw", dict(lr=0.02, betas=(0.85, 0.9), eps=1e-7, weight_decay=0.1,
                                    amsgrad=True)),
    ("nadam", "nadam", dict(lr=0.01, betas=(0.85, 0.99), eps=1e-7, weight_decay=0.03,
                            momentum_decay=6e-3)),
    ("nadam_decoupled", "nadam", dict(lr=0.01, betas=(0.85, 0.99), eps=1e-7, weight_decay=0.1,
                                      momentum_decay=6e-3, decoupled_weight_decay=True)),
    # beta2 = 0.99: rho_t <= 5 for the first steps, > 5 afterwards (both RAdam branches).
    ("radam", "radam", dict(lr=0.01, betas=(0.85, 0.99), eps=1e-7, weight_decay=0.03)),
    ("radam_decoupled", "radam", dict(lr=0.01, betas=(0.85, 0.99), eps=1e-7, weight_decay=0.1,
                                      decoupled_weight_decay=True)),
    ("lion", "lion", dict(lr=3e-3, betas=(0.8, 0.95), weight_decay=0.5)),
]
CASE_IDS = [c[0] for c in CASES]

CODE_OF = {"sgd": Code.SGD, "adagrad": Code.ADAGRAD, "rmsprop": Code.RMSPROP, "adam": Code.ADAM,
           "adamw": Code.ADAMW, "nadam": Code.NADAM, "radam": Code.RADAM, "lion": Code.LION}
TORCH_NAME = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam",
              "adamw": "AdamW", "nadam": "NAdam", "radam": "RAdam", "lion": "Lion"}


def core_config(rule, hyper):
    """PyTorch-named hyper-parameters -> the gds::OptimizerConfig dict read by _core."""
    h = {**ReferenceOptimizer.DEFAULTS[rule], **hyper}
    config = {"code": int(CODE_OF[rule])}
    for key, value in h.items():
        if key == "betas":
            config["beta1"], config["beta2"] = value
        else:
            config[key] = value
    return config


def problem(seed, n_steps=N_STEPS, n=N_PARAMS):
    """Random start and a gradient sequence whose scale drifts (so AMSGrad's max matters)."""
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=n)
    scales = np.exp(rng.uniform(-1.0, 1.0, size=n_steps))[:, None]
    grads = rng.normal(size=(n_steps, n)) * scales
    return w0, grads


def run_core(rule, hyper, w0, grads, dtype, lrs=None, momenta=None, n_slots=3):
    """Steps the compiled rule; returns (w after each step, final w, final scalars)."""
    config = core_config(rule, hyper)
    w = w0.astype(dtype)
    slots = [np.zeros(len(w) if i < n_slots else 0, dtype=dtype) for i in range(3)]
    if rule == "adagrad":
        slots[0][:] = config["initial_accumulator_value"]
    step, mu_product = 0, 1.0
    history = []
    for k, g in enumerate(grads):
        lr = config["lr"] if lrs is None else lrs[k]
        mom = -1.0 if momenta is None else momenta[k]
        step, mu_product, lr_used, _ = _core.optimizer_step(
            config, w, g.astype(dtype), slots[0], slots[1], slots[2], step, mu_product, lr, mom)
        assert lr_used == pytest.approx(lr)
        history.append(w.copy())
    return np.array(history), w, (step, mu_product, slots)


def run_reference(rule, hyper, w0, grads, lrs=None, momenta=None):
    ref = ReferenceOptimizer(rule, **hyper)
    w = w0.astype(np.float64)
    history = []
    for k, g in enumerate(grads):
        w = ref.step(w, g, lr=None if lrs is None else lrs[k],
                     beta1=None if momenta is None else momenta[k])
        history.append(w)
    return np.array(history), ref


def tolerances(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)


# ---- compiled rule vs the NumPy reference ----------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case_id, rule, hyper", CASES, ids=CASE_IDS)
def test_rule_matches_reference(case_id, rule, hyper, dtype):
    w0, grads = problem(seed=len(case_id))
    if dtype == np.float32:  # both sides see the same rounded inputs
        w0, grads = w0.astype(np.float32), grads.astype(np.float32)
    core_hist, w, (step, mu_product, _) = run_core(rule, hyper, w0, grads, dtype)
    ref_hist, ref = run_reference(rule, hyper, w0, grads)
    assert w.dtype == dtype
    assert step == N_STEPS
    np.testing.assert_allclose(core_hist, ref_hist, **tolerances(dtype))
    # the updates are far from negligible, so a wrong rule could not pass by staying put
    assert np.abs(ref_hist[-1] - w0).max() > 10 * tolerances(dtype)["atol"] + 1e-3
    if rule == "nadam":
        assert mu_product == pytest.approx(ref.mu_product, rel=1e-12)
    if rule == "radam":
        assert ref.radam_plain_steps > 0 and ref.radam_rectified_steps > 0


@pytest.mark.parametrize("case_id, rule, hyper", CASES, ids=CASE_IDS)
def test_unused_slots_may_be_empty(case_id, rule, hyper):
    # The binding passes NULL for slots shorter than w; a rule must not touch slots it does not
    # declare in state_slots(), so running with only those gives the same trajectory.
    n_slots = _core.state_slots(core_config(rule, hyper))
    w0, grads = problem(seed=3, n_steps=10)
    full, _, _ = run_core(rule, hyper, w0, grads, np.float64)
    minimal, _, _ = run_core(rule, hyper, w0, grads, np.float64, n_slots=n_slots)
    np.testing.assert_array_equal(full, minimal)


def test_state_slot_counts_follow_the_algorithms():
    # slots each published rule keeps per parameter
    assert _core.state_slots(core_config("sgd", {})) == 0
    assert _core.state_slots(core_config("sgd", dict(momentum=0.9))) == 1  # momentum buffer
    assert _core.state_slots(core_config("adagrad", {})) == 1  # sum of squares
    assert _core.state_slots(core_config("rmsprop", dict(centered=True, momentum=0.5))) == 3
    assert _core.state_slots(core_config("adam", {})) == 2  # m, v
    assert _core.state_slots(core_config("adamw", dict(amsgrad=True))) == 3  # m, v, max v
    assert _core.state_slots(core_config("nadam", {})) == 2
    assert _core.state_slots(core_config("radam", {})) == 2
    assert _core.state_slots(core_config("lion", {})) == 1  # one EMA
    assert _core.state_slots({"code": int(Code.MUON)}) == 1  # momentum buffer
    assert _core.state_slots({"code": int(Code.SOPHIA)}) == 2  # EMA of g, EMA of the Hessian


@pytest.mark.parametrize("rule, hyper", [
    ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("rmsprop", dict(lr=0.01, momentum=0.8, weight_decay=0.01)),
    ("adam", dict(lr=0.05, weight_decay=0.01)),
    ("adamw", dict(lr=0.05, amsgrad=True)),
    ("nadam", dict(lr=0.05)),
    ("radam", dict(lr=0.05, betas=(0.9, 0.99))),
    ("lion", dict(lr=0.01, weight_decay=0.1)),
], ids=lambda v: v if isinstance(v, str) else None)
def test_per_step_lr_and_momentum_override(rule, hyper):
    # what a one-cycle schedule drives: a new lr and momentum / beta1 at every step
    w0, grads = problem(seed=11)
    cyc = [one_cycle(k, max_lr=0.05, total_steps=N_STEPS) for k in range(N_STEPS)]
    lrs = [c[0] for c in cyc]
    momenta = [c[1] for c in cyc]
    core_hist, _, _ = run_core(rule, hyper, w0, grads, np.float64, lrs=lrs, momenta=momenta)
    ref_hist, _ = run_reference(rule, hyper, w0, grads, lrs=lrs, momenta=momenta)
    np.testing.assert_allclose(core_hist, ref_hist, rtol=1e-10, atol=1e-12)


def test_momentum_override_is_reported():
    config = core_config("adam", {})
    w, g = np.ones(2), np.ones(2)
    slots = [np.zeros(2) for _ in range(3)]
    *_, mom_used = _core.optimizer_step(config, w, g, *slots, 0, 1.0, 0.1, 0.87)
    assert mom_used == 0.87
    *_, mom_used = _core.optimizer_step(config, w, g, *slots, 1, 1.0, 0.1)
    assert mom_used == config["beta1"]


def test_acceptance_adam_one_step_core():
    # issue acceptance line: Adam(lr=0.1), one step on w = 1, g = 1 gives 0.9
    # (bias-corrected m_hat = v_hat = 1, so the step is lr * 1 / (1 + eps)).
    w, g = np.ones(3), np.ones(3)
    slots = [np.zeros(3) for _ in range(3)]
    _core.optimizer_step(core_config("adam", dict(lr=0.1)), w, g, *slots, 0, 1.0, 0.1)
    np.testing.assert_allclose(w, [0.9, 0.9, 0.9], rtol=1e-7)


@pytest.mark.parametrize("case_id, rule, hyper", CASES, ids=CASE_IDS)
def test_float32_stays_float32_and_updates_in_place(case_id, rule, hyper):
    w = np.linspace(-1, 1, 8, dtype=np.float32)
    buffer_address = w.__array_interface__["data"][0]
    slots = [np.zeros(8, dtype=np.float32) for _ in range(3)]
    before = w.copy()
    _core.optimizer_step(core_config(rule, hyper), w, np.full(8, 0.5, np.float32), *slots, 0,
                         1.0, hyper["lr"])
    assert w.dtype == np.float32 and all(s.dtype == np.float32 for s in slots)
    assert w.__array_interface__["data"][0] == buffer_address
    assert not np.array_equal(w, before)
    with pytest.raises(ValueError):  # mixed precision is refused, not silently cast
        _core.optimizer_step(core_config(rule, hyper), w, np.ones(8), *slots, 0, 1.0, 0.1)


def test_gradient_length_mismatch_raises_before_update():
    w = np.ones(4)
    slots = [np.zeros(4) for _ in range(3)]
    with pytest.raises(ValueError, match="gradient"):
        _core.optimizer_step(core_config("sgd", {}), w, np.ones(3), *slots, 0, 1.0, 0.1)
    np.testing.assert_array_equal(w, 1.0)


# ---- against torch.optim ---------------------------------------------------------------------


def run_torch(torch, rule, hyper, w0, grads, dtype, lrs=None, momenta=None):
    cls = getattr(torch.optim, TORCH_NAME[rule], None)
    if cls is None:
        pytest.skip(f"torch {torch.__version__} has no optim.{TORCH_NAME[rule]}")
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    p = torch.nn.Parameter(torch.tensor(w0, dtype=tdtype))
    # torch keeps scalar state (step, NAdam's mu_product) in the default dtype: make it float64
    previous_default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        opt = cls([p], **hyper)
        return _torch_steps(torch, opt, p, grads, tdtype, lrs, momenta)
    finally:
        torch.set_default_dtype(previous_default)


def _torch_steps(torch, opt, p, grads, tdtype, lrs, momenta):
    history = []
    for k, g in enumerate(grads):
        group = opt.param_groups[0]
        if lrs is not None:
            group["lr"] = lrs[k]
        if momenta is not None:
            if "betas" in group:
                group["betas"] = (momenta[k], group["betas"][1])
            else:
                group["momentum"] = momenta[k]
        p.grad = torch.tensor(g, dtype=tdtype)
        opt.step()
        history.append(p.detach().numpy().astype(np.float64).copy())
    return np.array(history)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case_id, rule, hyper", CASES, ids=CASE_IDS)
def test_rule_matches_torch(case_id, rule, hyper, dtype):
    torch = pytest.importorskip("torch")
    w0, grads = problem(seed=len(case_id) + 100)
    w0, grads = w0.astype(dtype), grads.astype(dtype)
    core_hist, _, _ = run_core(rule, hyper, w0, grads, dtype)
    torch_hist = run_torch(torch, rule, hyper, w0, grads, dtype)
    np.testing.assert_allclose(core_hist, torch_hist, **tolerances(dtype))


@pytest.mark.parametrize("rule, hyper", [
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("rmsprop", dict(lr=0.01, momentum=0.8, centered=True)),
    ("adam", dict(lr=0.05, weight_decay=0.01, amsgrad=True)),
    ("nadam", dict(lr=0.05, decoupled_weight_decay=True, weight_decay=0.05)),
    ("radam", dict(lr=0.05, betas=(0.9, 0.99))),
], ids=lambda v: v if isinstance(v, str) else None)
def test_scheduled_lr_and_momentum_match_torch(rule, hyper):
    # torch reads lr and momentum / betas from the param group at each step, as OneCycleLR sets
    torch = pytest.importorskip("torch")
    w0, grads = problem(seed=5)
    cyc = [one_cycle(k, max_lr=0.05, total_steps=N_STEPS) for k in range(N_STEPS)]
    lrs, momenta = [c[0] for c in cyc], [c[1] for c in cyc]
    core_hist, _, _ = run_core(rule, hyper, w0, grads, np.float64, lrs=lrs, momenta=momenta)
    torch_hist = run_torch(torch, rule, hyper, w0, grads, np.float64, lrs=lrs, momenta=momenta)
    np.testing.assert_allclose(core_hist, torch_hist, rtol=1e-10, atol=1e-12)


# ---- gradient clipping -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("limit", [0.05, 0.7, 100.0])
def test_clip_by_value(dtype, limit):
    g = np.random.default_rng(0).normal(size=257).astype(dtype)
    expected = clip_by_value(g, limit)
    _core.clip(int(Clip.VALUE), limit, g)
    assert g.dtype == dtype
    np.testing.assert_array_equal(g, expected.astype(dtype))  # clamping is exact


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("max_norm", [0.5, 3.0, 1e3])  # 1e3: above the norm, nothing changes
def test_clip_by_norm(dtype, max_norm):
    g = np.random.default_rng(1).normal(size=257).astype(dtype)
    expected = clip_by_norm(g, max_norm)
    _core.clip(int(Clip.NORM), max_norm, g)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, expected, rtol=1e-6 if dtype == np.float32 else 1e-14)
    if max_norm < 10:
        assert np.linalg.norm(g.astype(np.float64)) == pytest.approx(max_norm, rel=1e-5)


def test_clip_none_leaves_gradient():
    g = np.random.default_rng(2).normal(size=10)
    before = g.copy()
    _core.clip(int(Clip.NONE), 0.01, g)
    np.testing.assert_array_equal(g, before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("max_norm", [0.5, 3.0, 1e3])
def test_clip_matches_torch(dtype, max_norm):
    torch = pytest.importorskip("torch")
    g = np.random.default_rng(3).normal(size=129).astype(dtype)
    p = torch.nn.Parameter(torch.zeros(129, dtype=torch.float64 if dtype == np.float64
                                       else torch.float32))
    p.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_norm_([p], max_norm)
    by_norm = g.copy()
    _core.clip(int(Clip.NORM), max_norm, by_norm)
    np.testing.assert_allclose(by_norm, p.grad.numpy(), rtol=1e-6 if dtype == np.float32 else 1e-13)
    p.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_value_([p], max_norm / 10)
    by_value = g.copy()
    _core.clip(int(Clip.VALUE), max_norm / 10, by_value)
    np.testing.assert_array_equal(by_value, p.grad.numpy())


# ---- public API: gdsolve.optim ---------------------------------------------------------------

optim = pytest.importorskip("gdsolve.optim")

PUBLIC_CLASS = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam",
                "adamw": "AdamW", "nadam": "NAdam", "radam": "RAdam", "lion": "Lion"}


def public_optimizer(rule, hyper):
    return getattr(optim, PUBLIC_CLASS[rule])(**hyper)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case_id, rule, hyper", CASES, ids=CASE_IDS)
def test_public_step_matches_reference(case_id, rule, hyper, dtype):
    opt = public_optimizer(rule, hyper)
    assert opt.code == CODE_OF[rule]
    w0, grads = problem(seed=len(case_id) + 7, n=12)
    w0, grads = w0.astype(dtype), grads.astype(dtype)
    params = w0.reshape(3, 4).copy()  # 2-D parameters: the public step works on any shape
    state = opt.init_state(params)
    ref_hist, _ = run_reference(rule, hyper, w0, grads)
    for k, g in enumerate(grads):
        assert opt.step(params, g.reshape(3, 4), state) is None  # in place
        assert params.dtype == dtype
        np.testing.assert_allclose(params.reshape(-1), ref_hist[k], **tolerances(dtype))
    assert state["step"] == N_STEPS
    for name in opt.state_slot_names:
        assert state[name].dtype == dtype and state[name].shape == (3, 4)


@pytest.mark.parametrize("case_id, rule, hyper", CASES, ids=CASE_IDS)
def test_public_config_matches_hyper_parameters(case_id, rule, hyper):
    opt = public_optimizer(rule, hyper)
    config = opt.to_config()
    expected = core_config(rule, hyper)
    for key, value in expected.items():
        assert config.get(key, 0) == pytest.approx(value), key
    assert len(opt.state_slot_names) >= _core.state_slots(config)


def test_public_acceptance_adam_one_step():
    w = np.ones(3)
    opt = optim.Adam(lr=0.1)
    opt.step(w, np.ones(3), opt.init_state(w))
    np.testing.assert_allclose(w, [0.9, 0.9, 0.9], rtol=1e-7)


def test_public_adagrad_initial_accumulator_in_state():
    opt = optim.Adagrad(initial_accumulator_value=0.25)
    state = opt.init_state(np.zeros(5, dtype=np.float32))
    np.testing.assert_array_equal(state["sum"], 0.25)
    assert state["sum"].dtype == np.float32


def test_public_step_with_lr_and_momentum_override():
    w0, grads = problem(seed=21, n=6)
    cyc = [one_cycle(k, max_lr=0.05, total_steps=N_STEPS) for k in range(N_STEPS)]
    opt = optim.Adam(lr=123.0)  # never used: every step overrides it
    params = w0.copy()
    state = opt.init_state(params)
    for k, g in enumerate(grads):
        opt.step(params, g, state, lr=cyc[k][0], momentum=cyc[k][1])
    ref_hist, _ = run_reference("adam", {}, w0, grads, lrs=[c[0] for c in cyc],
                                momenta=[c[1] for c in cyc])
    np.testing.assert_allclose(params, ref_hist[-1], rtol=1e-10)


def test_public_step_rejects_bad_arrays_before_work():
    opt = optim.SGD(lr=0.1)
    params = np.ones((4, 4))
    state = opt.init_state(params)
    with pytest.raises((TypeError, ValueError), match="params"):
        opt.step(params[:, ::2], np.ones((4, 2)), state)  # not contiguous: cannot update in place
    with pytest.raises((TypeError, ValueError), match="params"):
        opt.step(np.ones(3, dtype=np.int64), np.ones(3), opt.init_state(np.ones(3)))
    with pytest.raises(ValueError, match="shape"):
        opt.step(params, np.ones(5), state)
    np.testing.assert_array_equal(params, 1.0)


@pytest.mark.parametrize("bad", [
    lambda: optim.SGD(lr=-1.0),
    lambda: optim.Adam(betas=(0.9, 1.0)),
    lambda: optim.Adam(eps=-1e-8),
    lambda: optim.SGD(nesterov=True),  # nesterov without momentum
    lambda: optim.AdamW(weight_decay=-0.1),
    lambda: optim.Muon(ns_steps=0),
    lambda: optim.Muon(ns_steps=100),
    lambda: optim.Muon(adjust_lr_fn="spectral"),
    lambda: optim.Muon(ns_coefficients=(1.0, 2.0)),
    lambda: optim.Muon(momentum=-0.5),
    lambda: optim.Muon(companion=optim.Sophia()),
    lambda: optim.Muon(companion=optim.Adam(lr=-1.0)),
    lambda: optim.Sophia(k=0),
    lambda: optim.Sophia(gamma=-1.0),
    lambda: optim.Sophia(betas=(0.9, 1.0)),
    lambda: optim.Sophia(estimator="hutchinson"),
])
def test_public_invalid_hyper_parameters_raise_value_error(bad):
    with pytest.raises(ValueError):
        bad().to_config()


def test_public_defaults_are_pytorchs():
    torch = pytest.importorskip("torch")
    muon = optim.Muon().get_params(deep=False)
    assert muon.pop("companion") is None  # AdamW() with PyTorch's defaults
    params = inspect.signature(torch.optim.Muon).parameters
    for name, value in muon.items():
        assert params[name].default == (pytest.approx(value) if value is not None else None), name
    assert isinstance(optim.Muon().companion_optimizer(), optim.AdamW)
    # Sophia is not in torch.optim: the authors' SophiaG defaults (lr, betas, rho = gamma,
    # weight_decay) with the paper's eps and k
    assert optim.Sophia().get_params() == dict(lr=1e-4, betas=(0.965, 0.99), gamma=0.04,
                                               eps=1e-12, weight_decay=0.1, k=10,
                                               estimator="gnb")
    for rule, cls_name in PUBLIC_CLASS.items():
        ours = getattr(optim, cls_name)().get_params()
        torch_cls = getattr(torch.optim, TORCH_NAME[rule], None)
        if torch_cls is None:  # Lion is not in torch.optim: defaults of Chen et al. (2023)
            assert ours == dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0)
            continue
        params = inspect.signature(torch_cls).parameters
        for name, value in ours.items():
            assert params[name].default == pytest.approx(value), (cls_name, name)


@pytest.mark.parametrize("name, cls_name, params", [
    ("sgd", "SGD", {}),
    ("momentum", "SGD", dict(momentum=0.9)),
    ("nesterov", "SGD", dict(momentum=0.9, nesterov=True)),
    ("adagrad", "Adagrad", {}),
    ("rmsprop", "RMSprop", {}),
    ("adam", "Adam", {}),
    ("adamw", "AdamW", {}),
    ("amsgrad", "Adam", dict(amsgrad=True)),
    ("nadam", "NAdam", {}),
    ("radam", "RAdam", {}),
    ("lion", "Lion", {}),
    ("muon", "Muon", {}),
    ("sophia", "Sophia", {}),
])
def test_make_optimizer_names(name, cls_name, params):
    assert name in optim.OPTIMIZER_NAMES
    opt = optim.make_optimizer(name)
    expected = getattr(optim, cls_name)(**params)
    assert type(opt) is type(expected)
    assert opt.get_params() == expected.get_params()
    assert optim.make_optimizer(name, lr=0.25).lr == 0.25


def test_make_optimizer_names_are_exactly_the_documented_ones():
    assert set(optim.OPTIMIZER_NAMES) == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop",
                                          "adam", "adamw", "amsgrad", "nadam", "radam", "lion",
                                          "muon", "sophia"}


def test_make_optimizer_clones_instances():
    spec = optim.RMSprop(lr=0.3, centered=True)
    opt = optim.make_optimizer(spec)
    assert opt is not spec and opt.get_params() == spec.get_params()
    overridden = optim.make_optimizer(spec, lr=0.01)
    assert overridden.lr == 0.01 and spec.lr == 0.3


def test_make_optimizer_unknown_name():
    with pytest.raises(ValueError, match="optimizer"):
        optim.make_optimizer("adamax")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_public_clipping(dtype):
    g = np.random.default_rng(4).normal(size=(8, 9)).astype(dtype)
    expected_norm = clip_by_norm(g, 1.5)
    expected_value = clip_by_value(g, 0.3)
    by_norm, by_value = g.copy(), g.copy()
    optim.clip_grad_norm_(by_norm, 1.5)
    optim.clip_grad_value_(by_value, 0.3)
    assert by_norm.dtype == dtype and by_value.dtype == dtype
    np.testing.assert_allclose(by_norm, expected_norm, rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_array_equal(by_value, expected_value.astype(dtype))
    with pytest.raises(ValueError):
        optim.clip_grad_norm_(g.copy(), -1.0)
