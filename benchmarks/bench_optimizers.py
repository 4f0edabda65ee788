"""Benchmark of the update rules on the MLP: epochs and seconds for SGDMLPClassifier to reach a
target training loss with Muon, Sophia, Adam and AdamW, each at its tuned learning rate, on
digits and on the 50,000 x 50 problem of benchmarks/bench_mlp.py; with a plot of the training
loss against time. A second part measures whether Muon helps the multinomial linear model (a
NumPy loop, since gdsolve offers Muon for the MLP only).

Tuning: for every rule, each learning rate of its grid trains once (same seed); the tuned rate
reaches the target in the fewest epochs (ties: the lowest final loss). The timed runs then
alternate the rules, `--repeats` times, and the table gives the median. Other hyper-parameters
are each rule's defaults (Muon's companion: AdamW(lr=1e-3)).

    python benchmarks/bench_optimizers.py                      # both problems, a few minutes
    python benchmarks/bench_optimizers.py --quick              # smoke run
    python benchmarks/bench_optimizers.py --out docs/img       # also write the plot there
"""

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import gdsolve
from gdsolve import neural_network
from gdsolve.neural_network import SGDMLPClassifier
from gdsolve.optim import Adam, AdamW, Muon, Sophia

RULES = {
    "adam": (lambda lr: Adam(lr=lr), (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)),
    "adamw": (lambda lr: AdamW(lr=lr), (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)),
    "muon": (lambda lr: Muon(lr=lr, companion=AdamW(lr=1e-3)), (3e-3, 1e-2, 2e-2, 5e-2, 1e-1)),
    "sophia": (lambda lr: Sophia(lr=lr), (3e-4, 1e-3, 3e-3, 1e-2)),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problems", default="digits,50000x50")
    p.add_argument("--epochs", type=int, default=None,
                   help="epoch budget of every run (default: 40 on digits, 20 on 50000x50)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per rule (alternating)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for gdsolve's loop and BLAS (default: all cores)")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--out", default=None, help="folder for bench_optimizers.png / .json")
    p.add_argument("--skip-linear", action="store_true", help="leave out the linear Muon part")
    p.add_argument("--quick", action="store_true", help="smoke run: small problems, few epochs")
    args = p.parse_args(argv)
    args.problems = args.problems.split(",")
    if args.quick:
        args.epochs, args.repeats = 6, 1
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be >= 1")
    return args


def problem(name, dtype, quick):
    """(X, y, hidden layers, batch size, target training loss, epoch budget)."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X = StandardScaler().fit_transform(X).astype(dtype)
        return X, y, (64,), 64, 0.02, 40
    n = 5_000 if quick else 50_000
    X, y = make_classification(n_samples=n, n_features=50, n_informative=20, n_redundant=10,
                               n_classes=10, random_state=0)
    return StandardScaler().fit_transform(X).astype(dtype), y, (128, 64), 200, 0.35, 20


def fit_trace(optimizer, X, y, hidden, batch, epochs):
    """(loss per epoch, seconds since the driver started at each epoch's end) of one fit. The
    times come from the epoch driver's per-epoch callback (the one `verbose` prints from)."""
    trace = []

    def printer(verbose):
        return lambda epoch, loss, score, lr, seconds: trace.append((loss, seconds))

    est = SGDMLPClassifier(hidden_layer_sizes=hidden, optimizer=optimizer, batch_size=batch,
                           max_iter=epochs, tol=0.0, n_iter_no_change=10**6, random_state=0,
                           verbose=True)
    original = neural_network._verbose_printer
    neural_network._verbose_printer = printer
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
    finally:
        neural_network._verbose_printer = original
    return [t[0] for t in trace], [t[1] for t in trace]


def first_below(losses, target):
    for i, v in enumerate(losses):
        if v <= target:
            return i
    return None


def tune(name, X, y, hidden, batch, epochs, target):
    make, grid = RULES[name]
    best = None
    for lr in grid:
        losses, _ = fit_trace(make(lr), X, y, hidden, batch, epochs)
        hit = first_below(losses, target)
        key = (hit if hit is not None else math.inf, losses[-1] if np.isfinite(losses[-1])
               else math.inf)
        if best is None or key < best[0]:
            best = (key, lr)
    return best[1]


def run_problem(pname, args):
    dtype = np.dtype(args.dtype)
    X, y, hidden, batch, target, epochs = problem(pname, dtype, args.quick)
    epochs = args.epochs or epochs
    if args.quick:
        target = 2.0 if pname == "digits" else 2.5
    rows = []
    lrs = {name: tune(name, X, y, hidden, batch, epochs, target) for name in RULES}
    traces = {name: [] for name in RULES}
    for _ in range(args.repeats):  # alternate the rules
        for name in RULES:
            traces[name].append(fit_trace(RULES[name][0](lrs[name]), X, y, hidden, batch,
                                          epochs))
    for name in RULES:
        hits = [first_below(losses, target) for losses, _ in traces[name]]
        hit = hits[0]  # same seed: every repeat follows the same trajectory
        seconds = [times[h] for (_, times), h in zip(traces[name], hits, strict=True)
                   if h is not None]
        per_epoch = statistics.median(times[-1] / len(times) for _, times in traces[name])
        rows.append(dict(problem=pname, rule=name, lr=lrs[name],
                         epochs=None if hit is None else hit + 1,
                         seconds=statistics.median(seconds) if seconds else None,
                         seconds_per_epoch=per_epoch,
                         final_loss=traces[name][0][0][-1]))
    shape = f"{X.shape[0]} x {X.shape[1]}, {len(np.unique(y))} classes, hidden {hidden}, " \
            f"batch {batch}, {dtype.name}"
    # plot the repeat whose total time is the median one
    shown = {n: sorted(traces[n], key=lambda tr: tr[1][-1])[len(traces[n]) // 2] for n in RULES}
    return dict(name=pname, shape=shape, target=target, rows=rows, traces=shown)


# ---- part 2: Muon on the multinomial linear model (NumPy loop) --------------------------------

def _ns(G, a=3.4445, b=-4.775, c=2.0315, steps=5, eps=1e-7):
    X = G.T if G.shape[0] > G.shape[1] else G
    X = X / max(np.linalg.norm(X), eps)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if G.shape[0] > G.shape[1] else X


def _linear_run(rule, lr, X, y, K, alpha, batch, epochs, fstar):
    """Epoch-wise objective gaps of mini-batch Adam, or Muon on W (K x d, torch defaults but
    weight decay 0, the objective has its own L2) with Adam(lr 1e-2) on the intercepts."""
    n, d = X.shape
    W, b = np.zeros((K, d)), np.zeros(K)
    state = {"t": 0, "mW": np.zeros((K, d)), "vW": np.zeros((K, d)), "mb": np.zeros(K),
             "vb": np.zeros(K), "buf": np.zeros((K, d))}
    rng = np.random.default_rng(0)
    gaps = []

    def adam(w, g, m, v, t, rate):
        m[...] = 0.9 * m + 0.1 * g
        v[...] = 0.999 * v + 0.001 * g * g
        w -= rate / (1 - 0.9**t) * m / (np.sqrt(v) / math.sqrt(1 - 0.999**t) + 1e-8)

    for _ in range(epochs):
        order = rng.permutation(n)
        for s in range(0, n, batch):
            r = order[s:s + batch]
            p = softmax(X[r] @ W.T + b, axis=1)
            p[np.arange(len(r)), y[r]] -= 1
            gW, gb = p.T @ X[r] / len(r) + alpha * W, p.sum(0) / len(r)
            state["t"] += 1
            t = state["t"]
            if rule == "adam":
                adam(W, gW, state["mW"], state["vW"], t, lr)
                adam(b, gb, state["mb"], state["vb"], t, lr)
            else:
                buf = state["buf"]
                buf[...] = 0.95 * buf + 0.05 * gW
                W -= lr * math.sqrt(max(1, K / d)) * _ns(0.05 * gW + 0.95 * buf)
                adam(b, gb, state["mb"], state["vb"], t, 1e-2)
        z = X @ W.T + b
        f = -np.mean(log_softmax(z, axis=1)[np.arange(n), y]) + 0.5 * alpha * np.sum(W * W)
        gaps.append(f - fstar)
    return gaps


def linear_muon(args):
    out = []
    cases = [("digits", 64), ("50000x50", 512)]
    epochs = 4 if args.quick else 20
    for pname, batch in cases:
        X, y = problem(pname, np.float64, args.quick)[:2]
        K, n, alpha = int(y.max()) + 1, X.shape[0], 1e-4
        ref = LogisticRegression(C=1 / (alpha * n), tol=1e-10, max_iter=10_000).fit(X, y)
        z = X @ ref.coef_.T + ref.intercept_
        fstar = (-np.mean(log_softmax(z, axis=1)[np.arange(n), y])
                 + 0.5 * alpha * np.sum(ref.coef_**2))
        for rule in ("adam", "muon"):
            best = None
            for lr in (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1):
                gaps = _linear_run(rule, lr, X, y, K, alpha, batch, epochs, fstar)
                hit = [next((i + 1 for i, g in enumerate(gaps) if g <= tol), None)
                       for tol in (1e-2, 1e-3)]
                key = (min(gaps),)
                if best is None or key < best[0]:
                    best = (key, dict(problem=pname, batch=batch, rule=rule, lr=lr,
                                      min_gap=min(gaps), epochs_to_1e_2=hit[0],
                                      epochs_to_1e_3=hit[1]))
            out.append(best[1])
    return out


# ---- report -----------------------------------------------------------------------------------

def table(results):
    lines = ["| problem | rule | tuned lr | epochs to target | ms to target | ms / epoch | "
             "loss after the budget |", "|---|---|---|---|---|---|---|"]
    for res in results:
        for r in res["rows"]:
            epochs = "-" if r["epochs"] is None else str(r["epochs"])
            ms = "-" if r["seconds"] is None else f"{1e3 * r['seconds']:.0f}"
            lines.append(f"| {res['name']} (target {res['target']}) | {r['rule']} | {r['lr']:g} | "
                         f"{epochs} | {ms} | {1e3 * r['seconds_per_epoch']:.1f} | "
                         f"{r['final_loss']:.4f} |")
    return "\n".join(lines)


def linear_table(rows):
    lines = ["| problem | batch | rule | best lr | smallest gap in the budget | epochs to 1e-2 | "
             "epochs to 1e-3 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['problem']} | {r['batch']} | {r['rule']} | {r['lr']:g} | "
                     f"{r['min_gap']:.2e} | {r['epochs_to_1e_2'] or '-'} | "
                     f"{r['epochs_to_1e_3'] or '-'} |")
    return "\n".join(lines)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.2), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        for r in res["rows"]:
            losses, times = res["traces"][r["rule"]]
            ax.plot(times, losses, label=f"{r['rule']} (lr {r['lr']:g})")
        ax.axhline(res["target"], color="grey", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set_xlabel("seconds")
        ax.set_ylabel("training loss")
        ax.set_title(f"{res['name']}: {res['shape']}", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        os.environ["GDSOLVE_NUM_THREADS"] = str(args.threads)
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    print(f"gdsolve {gdsolve.__version__}, {os.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}, NumPy {np.__version__}", flush=True)
    started = time.perf_counter()
    results = [run_problem(p, args) for p in args.problems]
    print(table(results))
    linear = [] if args.skip_linear else linear_muon(args)
    if linear:
        print()
        print(linear_table(linear))
    print(f"\n({time.perf_counter() - started:.0f} s)")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        plot(results, os.path.join(args.out, "bench_optimizers.png"))
        with open(os.path.join(args.out, "bench_optimizers.json"), "w") as f:
            json.dump(dict(mlp=[{k: v for k, v in r.items()} for r in results],
                           linear=linear), f, indent=1, default=float)


if __name__ == "__main__":
    main()
