"""Two builds of gdsolve side by side: the gdsolve cases of bench_linear.py and bench_mlp.py (same
data, settings and seeds), timed in one run with the builds alternating, so that a refactor can
show it kept the speed on this (noisy) machine.

    python benchmarks/compare_builds.py --a /path/to/old-venv/bin/python \\
        --b /path/to/new-venv/bin/python --rounds 5

Each round starts one worker process per build (this file with --worker), A then B (B then A on
odd rounds), which builds the data once and times every case once; the table gives, per case,
each build's fastest and median seconds per epoch over the rounds, and B's best over A's. Only
the public estimator API is used, so any two versions compare. Cases (bench_linear.py's sizes by
default): per-sample SGD ('optimal', L2 1e-4, 10 epochs) dense float64 / float32 on 200,000 x 100
and sparse CSR on 200,000 x 50,000 with 50 nonzeros a row; full batch (1/L) dense float64 /
float32, the epoch loop; mini-batch (256) Adam float64 / float32; the MLP (128, 64) on 50,000 x 50,
10 classes, batch 200, Adam 1e-3, 5 epochs, float64 / float32.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np


def _linear_data(n, d, sparse_d, nnz):
    import scipy.sparse as sp
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=d, n_informative=d // 2, random_state=0)
    rng = np.random.default_rng(0)
    indices = rng.integers(0, sparse_d, size=n * nnz).astype(np.int32)
    indptr = np.arange(0, n * nnz + 1, nnz, dtype=np.int64)
    Xs = sp.csr_matrix((rng.random(n * nnz), indices, indptr), shape=(n, sparse_d))
    Xs.sum_duplicates()
    ys = (Xs @ rng.standard_normal(sparse_d) + 0.5 * rng.standard_normal(n) > 0).astype(np.int64)
    return X, y, Xs, ys


def _mlp_data(n, n_test, d, k):
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=n + n_test, n_features=d, n_informative=min(d, 20),
                               n_redundant=min(max(d - 20, 0), 10), n_classes=k, random_state=0)
    return StandardScaler().fit_transform(X[:n]), y[:n]


def worker(args):
    from sklearn.exceptions import ConvergenceWarning

    from gdsolve import SGDLogistic, SGDMLPClassifier

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y, Xs, ys = _linear_data(args.n, args.d, args.sparse_d, args.nnz)
    Xm, ym = _mlp_data(args.mlp_n, 10_000, 50, 10)
    e, alpha = args.epochs, 1e-4
    # the same algorithm in both builds: the constant step 1/L, which builds with the spectral
    # full batch (issue 14) call learning_rate='lipschitz' and older ones run by default
    try:
        SGDLogistic(batch_size="full", learning_rate="lipschitz", max_iter=1,
                    tol=None).fit(X[:50], y[:50])
        full = {"learning_rate": "lipschitz"}
    except ValueError:
        full = {}
    cases = {
        "per-sample dense f64": (lambda: SGDLogistic(alpha=alpha, max_iter=e, tol=None,
                                                     random_state=0), X, y, e),
        "per-sample dense f32": (lambda: SGDLogistic(alpha=alpha, max_iter=e, tol=None,
                                                     random_state=0), X.astype(np.float32), y, e),
        "per-sample sparse": (lambda: SGDLogistic(alpha=alpha, max_iter=e, tol=None,
                                                  random_state=0), Xs, ys, e),
        "full batch f64 (loop)": (lambda: SGDLogistic(alpha=alpha, batch_size="full", max_iter=e,
                                                      tol=None, **full), X, y, e),
        "full batch f32 (loop)": (lambda: SGDLogistic(alpha=alpha, batch_size="full", max_iter=e,
                                                      tol=None, **full),
                                  X.astype(np.float32), y, e),
        "mini-batch Adam f64": (lambda: SGDLogistic(alpha=alpha, optimizer="adam",
                                                    learning_rate="constant", eta0=1e-3,
                                                    batch_size=256, max_iter=e, tol=None,
                                                    random_state=0), X, y, e),
        "mini-batch Adam f32": (lambda: SGDLogistic(alpha=alpha, optimizer="adam",
                                                    learning_rate="constant", eta0=1e-3,
                                                    batch_size=256, max_iter=e, tol=None,
                                                    random_state=0), X.astype(np.float32), y, e),
    }
    for dtype, label in ((np.float64, "f64"), (np.float32, "f32")):
        cases[f"MLP (128, 64) {label}"] = (
            lambda: SGDMLPClassifier(hidden_layer_sizes=(128, 64), alpha=alpha, batch_size=200,
                                     learning_rate_init=1e-3, max_iter=5, tol=0.0,
                                     n_iter_no_change=6, random_state=0),
            Xm.astype(dtype), ym, 5)
    out = {}
    for name, (make, Xc, yc, epochs) in cases.items():
        est = make()
        start = time.perf_counter()
        est.fit(Xc, yc)
        elapsed = time.perf_counter() - start
        if "(loop)" in name:  # the compiled epochs only, as bench_linear.py's epoch-loop row
            elapsed = est._loop_seconds
        coef = est.coef_ if hasattr(est, "coef_") else est.coefs_[0]
        out[name] = {"s_per_epoch": elapsed / epochs, "checksum": float(np.sum(coef))}
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", help="python of build A (the old one)")
    p.add_argument("--b", help="python of build B (the new one)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--d", type=int, default=100)
    p.add_argument("--sparse-d", type=int, default=50_000)
    p.add_argument("--nnz", type=int, default=50)
    p.add_argument("--mlp-n", type=int, default=50_000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    if not (args.a and args.b):
        p.error("give --a and --b")
    passthrough = ["--n", str(args.n), "--d", str(args.d), "--sparse-d", str(args.sparse_d),
                   "--nnz", str(args.nnz), "--mlp-n", str(args.mlp_n),
                   "--epochs", str(args.epochs)]
    results = {"A": [], "B": []}
    env = dict(os.environ)
    for r in range(args.rounds):
        for label in (("A", "B") if r % 2 == 0 else ("B", "A")):
            python = args.a if label == "A" else args.b
            run = subprocess.run([python, os.path.abspath(__file__), "--worker", *passthrough],
                                 capture_output=True, text=True, env=env, cwd="/", check=True)
            results[label].append(json.loads(run.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {label} done", file=sys.stderr, flush=True)
    names = list(results["A"][0])
    print(f"{args.rounds} rounds alternating A = {args.a} and B = {args.b}")
    print(f"{'case':<24} {'A best':>9} {'A median':>9} {'B best':>9} {'B median':>9} "
          f"{'B/A best':>9} {'B/A med':>8}")
    for name in names:
        a = np.array([res[name]["s_per_epoch"] for res in results["A"]])
        b = np.array([res[name]["s_per_epoch"] for res in results["B"]])
        same = {res[name]["checksum"] for res in results["A"] + results["B"]}
        print(f"{name:<24} {a.min():9.4f} {np.median(a):9.4f} {b.min():9.4f} {np.median(b):9.4f}"
              f" {b.min() / a.min():9.3f} {np.median(b) / np.median(a):8.3f}"
              + ("" if len(same) == 1 else "  (models differ)"))


if __name__ == "__main__":
    sys.exit(main())
