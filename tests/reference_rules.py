"""Independent NumPy/math re-implementations of the formulas in gdsolve's C++ core.

Written from the published descriptions (PyTorch's optimizer and scheduler docs, scikit-learn's SGD,
Chen et al. 2023 for Lion); never imports gdsolve. Imported by tests/test_optim.py,
tests/test_schedules.py and tests/test_core_math.py as the reference the compiled core must match.
"""

import math

import numpy as np
from scipy.special import expit

# ---------------------------------------------------------------------------------------------
# Optimizers. Each rule works on float64 copies, one call per step, with its state in a dict.
# ---------------------------------------------------------------------------------------------


class ReferenceOptimizer:
    """One optimizer rule, stepped like torch.optim (step counter t starts at 1).

    `name` is one of sgd, adagrad, rmsprop, adam, adamw, nadam, radam, lion; `hyper` holds the
    PyTorch-named hyper-parameters. `step(w, g, lr=None, beta1=None)` returns the new w; `beta1`
    overrides momentum / beta1 for that step (one-cycle momentum cycling).
    """

    DEFAULTS = {
        "sgd": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
        "adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                        eps=1e-10),
        "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                        centered=False),
        "adam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False),
        "adamw": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False),
        "nadam": dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                      momentum_decay=4e-3, decoupled_weight_decay=False),
        "radam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                      decoupled_weight_decay=False),
        "lion": dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0),
    }

    def __init__(self, name, **hyper):
        unknown = set(hyper) - set(self.DEFAULTS[name])
        if unknown:
            raise ValueError(f"unknown hyper-parameters for {name}: {sorted(unknown)}")
        self.name = name
        self.h = {**self.DEFAULTS[name], **hyper}
        self.t = 0
        self.state = {}
        self.mu_product = 1.0
        self.radam_rectified_steps = 0  # how many steps took RAdam's rho_t > 5 branch
        self.radam_plain_steps = 0

    def _zeros(self, key, w, fill=0.0):
        if key not in self.state:
            self.state[key] = np.full_like(w, fill, dtype=np.float64)
        return self.state[key]

    def step(self, w, g, lr=None, beta1=None):
        w = np.array(w, dtype=np.float64)
        g = np.array(g, dtype=np.float64)
        self.t += 1
        h = self.h
        lr = h["lr"] if lr is None else lr
        return getattr(self, "_" + self.name)(w, g, lr, beta1)

    # SGD (PyTorch): L2 into the gradient; momentum buffer starts as the first gradient.
    def _sgd(self, w, g, lr, beta1):
        h = self.h
        mom = h["momentum"] if beta1 is None else beta1
        g = g + h["weight_decay"] * w
        if h["momentum"] != 0:
            if "buf" not in self.state:
                self.state["buf"] = g.copy()
            else:
                self.state["buf"] = mom * self.state["buf"] + (1 - h["dampening"]) * g
            buf = self.state["buf"]
            g = g + mom * buf if h["nesterov"] else buf
        return w - lr * g

    # Adagrad: effective rate lr / (1 + (t-1) lr_decay); accumulator of squared gradients.
    def _adagrad(self, w, g, lr, beta1):
        h = self.h
        g = g + h["weight_decay"] * w
        acc = self._zeros("sum", w, h["initial_accumulator_value"])
        acc += g * g
        clr = lr / (1 + (self.t - 1) * h["lr_decay"])
        return w - clr * g / (np.sqrt(acc) + h["eps"])

    # RMSprop: running mean of g^2 (and of g when centered), optional momentum on g / denom.
    def _rmsprop(self, w, g, lr, beta1):
        h = self.h
        a = h["alpha"]
        g = g + h["weight_decay"] * w
        sq = self._zeros("square_avg", w)
        sq[:] = a * sq + (1 - a) * g**2
        if h["centered"]:
            ga = self._zeros("grad_avg", w)
            ga[:] = a * ga + (1 - a) * g
            denom = np.sqrt(sq - ga**2) + h["eps"]
        else:
            denom = np.sqrt(sq) + h["eps"]
        if h["momentum"] > 0:
            mom = h["momentum"] if beta1 is None else beta1
            buf = self._zeros("buf", w)
            buf[:] = mom * buf + g / denom
            return w - lr * buf
        return w - lr * g / denom

    # Adam's family: weight decay (decoupled: w shrinks first; else L2 in g), then both moments.
    def _decay_and_moments(self, w, g, lr, beta1, decoupled):
        h = self.h
        b1 = h["betas"][0] if beta1 is None else beta1
        b2 = h["betas"][1]
        if decoupled:
            w = w * (1 - lr * h["weight_decay"])
        else:
            g = g + h["weight_decay"] * w
        m = self._zeros("m", w)
        v = self._zeros("v", w)
        m[:] = b1 * m + (1 - b1) * g
        v[:] = b2 * v + (1 - b2) * g * g
        return b1, b2, w, m, v

    # Adam / AdamW: bias-corrected moments, eps added after sqrt(v_hat); AdamW decays w first.
    def _adam(self, w, g, lr, beta1, decoupled=False):
        h = self.h
        b1, b2, w, m, v = self._decay_and_moments(w, g, lr, beta1, decoupled)
        if h["amsgrad"]:
            vmax = self._zeros("vmax", w)
            vmax[:] = np.maximum(vmax, v)
            v_used = vmax
        else:
            v_used = v
        m_hat = m / (1 - b1**self.t)
        v_hat = v_used / (1 - b2**self.t)
        return w - lr * m_hat / (np.sqrt(v_hat) + h["eps"])

    def _adamw(self, w, g, lr, beta1):
        return self._adam(w, g, lr, beta1, decoupled=True)

    # NAdam (Dozat; PyTorch's momentum-decay schedule mu_t = b1 (1 - 0.5 * 0.96^(t psi))).
    def _nadam(self, w, g, lr, beta1):
        h = self.h
        psi = h["momentum_decay"]
        g_decayed = g if h["decoupled_weight_decay"] else g + h["weight_decay"] * w
        b1, b2, w, m, v = self._decay_and_moments(w, g, lr, beta1, h["decoupled_weight_decay"])
        g = g_decayed
        mu_t = b1 * (1 - 0.5 * 0.96 ** (self.t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((self.t + 1) * psi))
        self.mu_product *= mu_t
        denom = np.sqrt(v / (1 - b2**self.t)) + h["eps"]
        w = w - lr * (1 - mu_t) / (1 - self.mu_product) * g / denom
        return w - lr * mu_next / (1 - self.mu_product * mu_next) * m / denom

    # RAdam (Liu et al. 2020): rectified adaptive step once the variance estimate is tractable.
    def _radam(self, w, g, lr, beta1):
        h = self.h
        b1, b2, w, m, v = self._decay_and_moments(w, g, lr, beta1, h["decoupled_weight_decay"])
        t = self.t
        m_hat = m / (1 - b1**t)
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t > 5:
            self.radam_rectified_steps += 1
            r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                          / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            adaptive = math.sqrt(1 - b2**t) / (np.sqrt(v) + h["eps"])
            return w - lr * m_hat * r * adaptive
        self.radam_plain_steps += 1
        return w - lr * m_hat

    # Lion (Chen et al. 2023, Algorithm 2): decoupled decay, sign of the interpolation, then EMA.
    def _lion(self, w, g, lr, beta1):
        h = self.h
        b1 = h["betas"][0] if beta1 is None else beta1
        b2 = h["betas"][1]
        m = self._zeros("m", w)
        direction = np.sign(b1 * m + (1 - b1) * g)
        w = w * (1 - lr * h["weight_decay"]) - lr * direction
        m[:] = b2 * m + (1 - b2) * g
        return w


# ---------------------------------------------------------------------------------------------
# Gradient clipping (torch.nn.utils.clip_grad_value_ / clip_grad_norm_ with its 1e-6 guard).
# ---------------------------------------------------------------------------------------------


def clip_by_value(g, limit):
    return np.minimum(np.maximum(np.asarray(g, dtype=np.float64), -limit), limit)


def clip_by_norm(g, max_norm):
    g = np.asarray(g, dtype=np.float64)
    norm = math.sqrt(float(np.sum(g * g)))
    return g * min(1.0, max_norm / (norm + 1e-6))


# ---------------------------------------------------------------------------------------------
# Schedules: learning rate at optimizer step k (k = 0, 1, ...), PyTorch closed forms.
# ---------------------------------------------------------------------------------------------


def step_lr(base_lr, step_size, gamma, k):
    return base_lr * gamma ** (k // step_size)


def multistep_lr(base_lr, milestones, gamma, k):
    return base_lr * gamma ** sum(1 for m in milestones if m <= k)


def exponential_lr(base_lr, gamma, k):
    return base_lr * gamma**k


def cosine_lr(base_lr, eta_min, t_max, k):
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * k / t_max)) / 2


def warm_restarts_lrs(base_lr, eta_min, t_0, t_mult, n_steps):
    """Walks the cycles with integer counters (no logarithms), as torch's step() does."""
    out = []
    t_cur, t_i = 0, t_0
    for _ in range(n_steps):
        out.append(eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2)
        t_cur += 1
        if t_cur >= t_i:
            t_cur -= t_i
            t_i *= t_mult
    return out


def _anneal(strategy, start, end, fraction):
    if strategy == "linear":
        return start + (end - start) * fraction
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2


def one_cycle(k, max_lr, total_steps, pct_start=0.3, anneal="cos", div_factor=25.0,
              final_div_factor=1e4, three_phase=False, base_momentum=0.85, max_momentum=0.95):
    """(lr, momentum) of PyTorch's OneCycleLR at step k (phase boundaries as in its docs)."""
    initial = max_lr / div_factor
    final = initial / final_div_factor
    up_end = pct_start * total_steps - 1
    if three_phase:
        phases = [
            (up_end, initial, max_lr, max_momentum, base_momentum),
            (2 * pct_start * total_steps - 2, max_lr, initial, base_momentum, max_momentum),
            (total_steps - 1, initial, final, max_momentum, max_momentum),
        ]
    else:
        phases = [
            (up_end, initial, max_lr, max_momentum, base_momentum),
            (total_steps - 1, max_lr, final, base_momentum, max_momentum),
        ]
    start = 0.0
    for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
        if k <= end or i == len(phases) - 1:
            frac = (k - start) / (end - start)
            return _anneal(anneal, lr0, lr1, frac), _anneal(anneal, m0, m1, frac)
        start = end
    raise AssertionError("unreachable")


def cyclic_lr(k, base_lr, max_lr, step_size_up, step_size_down=None, mode="triangular",
              gamma=1.0):
    """Triangular wave: up for step_size_up steps, down for step_size_down, then repeat."""
    down = step_size_up if step_size_down is None else step_size_down
    period = step_size_up + down
    cycle_index = int(k // period)  # 0-based
    pos = k - cycle_index * period
    if pos <= step_size_up:
        rise = pos / step_size_up
    else:
        rise = 1 - (pos - step_size_up) / down
    amplitude = max_lr - base_lr
    if mode == "triangular2":
        amplitude /= 2**cycle_index
    elif mode == "exp_range":
        amplitude *= gamma**k
    return base_lr + amplitude * rise


def linear_warmup_then(inner, warmup_steps, start_factor, k):
    """PyTorch LinearLR(start_factor, total_iters=warmup) then `inner` restarted at 0."""
    if k < warmup_steps:
        return inner(0) * (start_factor + (1 - start_factor) * k / warmup_steps)
    return inner(k - warmup_steps)


class ReferencePlateau:
    """PyTorch ReduceLROnPlateau in mode "min", written from its documentation."""

    def __init__(self, lr, factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        self.lr = lr
        self.factor, self.patience, self.threshold = factor, patience, threshold
        self.threshold_mode, self.cooldown, self.min_lr, self.eps = (
            threshold_mode, cooldown, min_lr, eps)
        self.best = math.inf
        self.bad = 0
        self.cooldown_left = 0

    def step(self, metric):
        if self.threshold_mode == "rel":
            improved = metric < self.best * (1 - self.threshold)
        else:
            improved = metric < self.best - self.threshold
        if improved:
            self.best, self.bad = metric, 0
        else:
            self.bad += 1
        if self.cooldown_left > 0:  # bad epochs during cooldown are forgiven
            self.cooldown_left -= 1
            self.bad = 0
        if self.bad > self.patience:
            self.bad = 0
            self.cooldown_left = self.cooldown
            new = max(self.lr * self.factor, self.min_lr)
            if self.lr - new > self.eps:
                self.lr = new
                return True
        return False


# scikit-learn's SGD learning rates; t counts samples seen, starting at 1.


def sklearn_optimal_t0(alpha, dloss_at_minus_typw):
    """sklearn's heuristic: eta_init = typw / max(1, dloss(p=-typw, y=1)) (signed, no abs)."""
    typw = math.sqrt(1.0 / math.sqrt(alpha))
    eta_init = typw / max(1.0, dloss_at_minus_typw)
    return 1.0 / (eta_init * alpha)


def sklearn_optimal_lr(alpha, t0, t):
    return 1.0 / (alpha * (t0 + t - 1))


def sklearn_invscaling_lr(eta0, power_t, t):
    return eta0 / t**power_t


def sklearn_plain_sgd(X, y, etas, alpha, dloss, fit_intercept=True):
    """scikit-learn's per-sample SGD with an L2 penalty (dense, no shuffling, no averaging):
    w <- w (1 - eta alpha) - eta dloss(p, y) x ;  b <- b - eta dloss(p, y). One eta per sample."""
    w = np.zeros(X.shape[1])
    b = 0.0
    n = X.shape[0]
    for i, eta in enumerate(etas):
        x, yi = X[i % n], y[i % n]
        p = float(x @ w + b)
        d = float(np.clip(dloss(p, yi), -1e12, 1e12))
        w = w * max(0.0, 1 - eta * alpha) - eta * d * x
        if fit_intercept:
            b -= eta * d
    return w, b


# ---------------------------------------------------------------------------------------------
# Losses (value, d/dp) with scikit-learn's conventions; y in {-1, +1} for the log loss.
# ---------------------------------------------------------------------------------------------


def loss_squared(p, y):
    r = p - y
    return 0.5 * r * r, r


def loss_huber(p, y, eps):
    r = p - y
    a = np.abs(r)
    value = np.where(a <= eps, 0.5 * r * r, eps * a - 0.5 * eps * eps)
    return value, np.clip(r, -eps, eps)


def loss_epsilon_insensitive(p, y, eps):
    r = p - y
    value = np.maximum(0.0, np.abs(r) - eps)
    return value, np.where(r > eps, 1.0, np.where(r < -eps, -1.0, 0.0))


def loss_log(p, y):
    z = y * p
    return np.logaddexp(0.0, -z), -y * expit(-z)


# ---------------------------------------------------------------------------------------------
# Activations: value and derivative with respect to the pre-activation z.
# ---------------------------------------------------------------------------------------------


def activation(name, z):
    z = np.asarray(z, dtype=np.float64)
    if name == "identity":
        return z, np.ones_like(z)
    if name == "relu":
        return np.maximum(z, 0.0), (z > 0).astype(np.float64)
    if name == "tanh":
        e = np.exp(-2 * np.abs(z))  # sech(z)^2 = 4 e^(-2|z|) / (1 + e^(-2|z|))^2, no overflow
        return np.tanh(z), 4 * e / (1 + e) ** 2
    if name == "logistic":
        a = expit(z)
        return a, expit(z) * expit(-z)
    raise ValueError(f"unknown activation {name!r}")


# ---------------------------------------------------------------------------------------------
# Penalties: R(w) in mean(loss) + alpha R(w) and the L1 proximal steps.
# ---------------------------------------------------------------------------------------------


def penalty_value(name, alpha, l1_ratio, w):
    w = np.asarray(w, dtype=np.float64)
    l2 = 0.5 * float(w @ w)
    l1 = float(np.abs(w).sum())
    if name == "none":
        return 0.0
    if name == "l2":
        return alpha * l2
    if name == "l1":
        return alpha * l1
    return alpha * (l1_ratio * l1 + (1 - l1_ratio) * l2)


def soft_threshold(w, threshold):
    w = np.asarray(w, dtype=np.float64)
    return np.sign(w) * np.maximum(np.abs(w) - threshold, 0.0)


def cumulative_l1(w, q, u):
    """Tsuruoka et al. (2009) cumulative penalty, clipped at zero: returns (new w, new q)."""
    w = np.asarray(w, dtype=np.float64)
    new_w = np.where(w > 0, np.maximum(0.0, w - (u + q)),
                     np.where(w < 0, np.minimum(0.0, w + (u - q)), w))
    return new_w, q + (new_w - w)


# ---------------------------------------------------------------------------------------------
# scikit-learn's end-of-epoch rule: stop (or, for 'adaptive', divide eta by 5) after
# n_iter_no_change epochs without improving the best value by tol.
# ---------------------------------------------------------------------------------------------


class SklearnStopRule:
    def __init__(self, tol, n_iter_no_change, higher_is_better=False, adaptive=False):
        self.tol, self.n = tol, n_iter_no_change
        self.higher_is_better, self.adaptive = higher_is_better, adaptive
        self.best = -math.inf if higher_is_better else math.inf
        self.no_improvement = 0

    def update(self, value, eta):
        """Returns (keep_going, new eta)."""
        if self.higher_is_better:  # validation score
            stalled = value < self.best + self.tol
            self.best = max(self.best, value)
        else:  # training objective
            stalled = value > self.best - self.tol
            self.best = min(self.best, value)
        self.no_improvement = self.no_improvement + 1 if stalled else 0
        if self.no_improvement >= self.n:
            if self.adaptive and eta > 1e-6:
                self.no_improvement = 0
                return True, eta / 5
            return False, eta
        return True, eta


def sklearn_adaptive_sgd(X, y, eta0, alpha, max_iter, end_of_epoch):
    """scikit-learn's squared-loss SGD with L2 and learning_rate='adaptive' (no shuffling):
    `end_of_epoch(mean objective, eta)` -> (keep_going, new eta). Returns (w, b, epochs run)."""
    w = np.zeros(X.shape[1])
    b = 0.0
    eta = eta0
    for epoch in range(max_iter):
        objective = 0.0
        for x, target in zip(X, y, strict=True):
            p = float(x @ w + b)
            objective += 0.5 * (p - target) ** 2 + alpha * 0.5 * float(w @ w)
            d = p - target
            w = w * max(0.0, 1 - eta * alpha) - eta * d * x
            b -= eta * d
        keep_going, eta = end_of_epoch(objective / len(y), eta)
        if not keep_going:
            return w, b, epoch + 1
    return w, b, max_iter
