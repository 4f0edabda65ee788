"""Benchmark of gdsolve's compiled linear loop against its peers, measured in the same run.

Cases (the linear-estimators issue's targets): per-sample SGD ('optimal', log loss, L2) vs
scikit-learn's SGDClassifier on dense float64 / float32 and sparse CSR; full-batch descent vs one
NumPy `X @ w` plus one `X.T @ r`; mini-batch (256) Adam vs a plain PyTorch CPU loop. Every result
is also shown against the one-pass memory-bandwidth floor: bytes of X over the GB/s that a NumPy
(or scipy.sparse) `X @ w` reaches in this run. Shuffled epochs read X's rows in a random order,
which costs more than a streaming pass: their floor is a compiled pass over the rows in a random
permutation (one dot product per row, no updates, gdsolve._linear_loop.row_pass) on all threads:
mini-batches are shared between threads, and per-sample SGD (sequential) reads shuffled rows
through a helper thread that gathers them ahead. scikit-learn's SGD runs on one thread; the
one-thread floor is printed too. Repeats alternate between gdsolve and the peer; the table
reports the fastest repeat of each.

    python benchmarks/bench_linear.py            # issue sizes: 200,000 x 100; 200,000 x 50,000
    python benchmarks/bench_linear.py --quick    # small smoke run
"""

import argparse
import os
import platform
import time
import warnings

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier

import gdsolve
from gdsolve import SGDLogistic, _linear_loop
from gdsolve._base import available_threads


def best_time(fn, repeats):
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def alternate(fns, repeats):
    """Fastest wall time of each callable, running them in turn `repeats` times."""
    best = [np.inf] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def log_objective(X, y01, alpha, w, b):
    """(1/n) sum log(1 + exp(-y z)) + alpha/2 ||w||^2, computed in float64."""
    z = np.asarray(X @ np.asarray(w, dtype=X.dtype), dtype=np.float64).ravel() + float(b)
    ys = np.where(y01 > 0, 1.0, -1.0)
    w = np.asarray(w, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, -ys * z)) + 0.5 * alpha * w @ w)


def sparse_problem(n, d, nnz_per_row, seed=0):
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, d, size=n * nnz_per_row).astype(np.int32)
    data = rng.random(n * nnz_per_row)
    indptr = np.arange(0, n * nnz_per_row + 1, nnz_per_row, dtype=np.int64)
    X = sp.csr_matrix((data, indices, indptr), shape=(n, d))
    X.sum_duplicates()
    w = rng.standard_normal(d)
    y = (X @ w + 0.5 * rng.standard_normal(n) > 0).astype(np.int64)
    return X, y


def x_nbytes(X):
    if sp.issparse(X):
        return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    return X.nbytes


def matvec_time(X, repeats):
    w = np.ones(X.shape[1], dtype=X.dtype)
    return best_time(lambda: X @ w, repeats)


def shuffled_pass_time(X, threads, repeats):
    """Fastest compiled pass over X's rows in a random order (one dot product per row)."""
    order = np.random.default_rng(0).permutation(X.shape[0]).astype(np.uint32)
    return min(_linear_loop.row_pass(X, order, threads)[0] for _ in range(repeats))


class Table:
    def __init__(self):
        self.rows = []

    def add(self, case, method, epoch_s, ratio, ratio_label, objective, floor_s,
            shuffled_s=None):
        self.rows.append((case, method, epoch_s, ratio, ratio_label, objective, floor_s,
                          shuffled_s))

    def show(self):
        head = (f"{'case':<26} {'method':<34} {'s/epoch':>9} {'ratio':>7} {'vs':<22} "
                f"{'objective':>10} {'x floor':>8} {'x shuffled floor':>16}")
        print(head)
        print("-" * len(head))
        for case, method, s, ratio, label, obj, floor, shuffled in self.rows:
            ratio_s = "" if ratio is None else f"{ratio:7.3f}"
            obj_s = "" if obj is None else f"{obj:10.5f}"
            shuf_s = "" if shuffled is None else f"{s / shuffled:16.2f}"
            print(f"{case:<26} {method:<34} {s:9.4f} {ratio_s:>7} {label:<22} {obj_s:>10} "
                  f"{s / floor:8.2f} {shuf_s:>16}")


def per_sample_case(table, name, X, y, alpha, epochs, repeats, floor_s, shuffled_s=None):
    common = dict(alpha=alpha, max_iter=epochs, tol=None, random_state=0)
    ours = SGDLogistic(**common)
    peer = SGDClassifier(loss="log_loss", **common)
    t_ours, t_peer = alternate([lambda: ours.fit(X, y), lambda: peer.fit(X, y)], repeats)
    e_ours, e_peer = t_ours / epochs, t_peer / epochs
    table.add(name, "gdsolve SGDLogistic (per-sample)", e_ours, e_ours / e_peer,
              "x sklearn SGDClassifier", log_objective(X, y, alpha, ours.coef_[0],
                                                       ours.intercept_[0]), floor_s, shuffled_s)
    table.add(name, "sklearn SGDClassifier", e_peer, None, "",
              log_objective(X, y, alpha, peer.coef_[0], peer.intercept_[0]), floor_s,
              shuffled_s)


def full_batch_case(table, name, X, y, alpha, epochs, repeats, floor_s):
    ours = SGDLogistic(alpha=alpha, batch_size="full", max_iter=epochs, tol=None)
    w = np.ones(X.shape[1], dtype=X.dtype)
    r = np.ones(X.shape[0], dtype=X.dtype)

    def numpy_pass():
        X @ w
        X.T @ r

    t_ours, t_np = alternate([lambda: ours.fit(X, y), numpy_pass], repeats)
    loop = ours._loop_seconds / epochs
    e_ours = t_ours / epochs
    obj = log_objective(X, y, alpha, ours.coef_[0], ours.intercept_[0])
    table.add(name, "gdsolve full batch (whole fit)", e_ours, e_ours / t_np,
              "x NumPy X@w + X.T@r", obj, floor_s)
    table.add(name, "gdsolve full batch (epoch loop)", loop, loop / t_np,
              "x NumPy X@w + X.T@r", obj, floor_s)
    table.add(name, "NumPy X@w + X.T@r", t_np, None, "", None, floor_s)


def torch_adam_epochs(X, y, alpha, lr, batch, epochs, seed=0):
    import torch

    torch.manual_seed(seed)
    dtype = torch.float64 if X.dtype == np.float64 else torch.float32
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(np.where(y > 0, 1.0, -1.0)).to(dtype)
    w = torch.zeros(X.shape[1], dtype=dtype, requires_grad=True)
    b = torch.zeros(1, dtype=dtype, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)
    n = X.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n)
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            z = Xt[idx] @ w + b
            loss = torch.nn.functional.softplus(-yt[idx] * z).mean() + 0.5 * alpha * (w @ w)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return w.detach().numpy(), float(b.detach()[0])


def adam_case(table, name, X, y, alpha, epochs, repeats, floor_s, shuffled_s=None, batch=256,
              lr=1e-3):
    ours = SGDLogistic(alpha=alpha, optimizer="adam", learning_rate="constant", eta0=lr,
                       batch_size=batch, max_iter=epochs, tol=None, random_state=0)
    try:
        import torch  # noqa: F401
    except ImportError:
        t_ours = best_time(lambda: ours.fit(X, y), repeats)
        table.add(name, "gdsolve Adam (PyTorch missing)", t_ours / epochs, None, "",
                  log_objective(X, y, alpha, ours.coef_[0], ours.intercept_[0]), floor_s)
        return
    peer_result = {}

    def run_torch():
        peer_result["wb"] = torch_adam_epochs(X, y, alpha, lr, batch, epochs)

    # PyTorch costs ~0.5 ms a step: fewer of its repeats keep the run short
    t_ours, t_torch = alternate([lambda: ours.fit(X, y), run_torch], max(1, repeats - 1))
    e_ours, e_torch = t_ours / epochs, t_torch / epochs
    table.add(name, "gdsolve Adam, batch 256", e_ours, e_ours / e_torch, "x PyTorch loop",
              log_objective(X, y, alpha, ours.coef_[0], ours.intercept_[0]), floor_s,
              shuffled_s)
    w, b = peer_result["wb"]
    table.add(name, "PyTorch Adam loop, batch 256", e_torch, None, "",
              log_objective(X, y, alpha, w, b), floor_s, shuffled_s)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="rows (dense and sparse)")
    parser.add_argument("--d", type=int, default=100, help="dense features")
    parser.add_argument("--sparse-d", type=int, default=50_000, help="sparse features")
    parser.add_argument("--nnz", type=int, default=50, help="nonzeros per sparse row")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--skip", nargs="*", default=(),
                        choices=("sgd", "full", "adam", "sparse"), help="cases to leave out")
    args = parser.parse_args()
    if args.quick:
        args.n, args.d, args.sparse_d, args.epochs, args.repeats = 5000, 50, 2000, 3, 1
    warnings.simplefilter("ignore", ConvergenceWarning)

    print(f"gdsolve {gdsolve.__version__}, numpy {np.__version__}, scikit-learn "
          f"{sklearn.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    X, y = make_classification(args.n, args.d, random_state=0)
    X = np.ascontiguousarray(X)
    X32 = X.astype(np.float32)
    print(f"dense {X.shape}, sparse {args.n} x {args.sparse_d} ({args.nnz} nnz/row), "
          f"{args.epochs} epochs, L2 alpha={args.alpha}, best of {args.repeats} alternating "
          "repeats")

    floors = {}
    n_threads = available_threads()  # what the estimators share mini-batches between
    for label, A in (("f64", X), ("f32", X32)):
        t = matvec_time(A, 5)
        floors[label] = t
        print(f"bandwidth floor, dense {label}: X @ w {t * 1e3:.2f} ms = "
              f"{x_nbytes(A) / t / 1e9:.1f} GB/s over {x_nbytes(A) / 1e6:.0f} MB")
        for threads in sorted({1, n_threads}):
            t = shuffled_pass_time(A, threads, 5)
            floors[(label, threads)] = t
            print(f"shuffled-row floor, dense {label}, {threads} thread(s): {t * 1e3:.2f} ms = "
                  f"{x_nbytes(A) / t / 1e9:.1f} GB/s")
    Xs = ys = None
    if "sparse" not in args.skip:
        Xs, ys = sparse_problem(args.n, args.sparse_d, args.nnz)
        t = matvec_time(Xs, 5)
        floors["sparse"] = t
        print(f"bandwidth floor, sparse CSR: X @ w {t * 1e3:.2f} ms = "
              f"{x_nbytes(Xs) / t / 1e9:.1f} GB/s over {x_nbytes(Xs) / 1e6:.0f} MB")
    print()

    table = Table()
    if "sgd" not in args.skip:
        per_sample_case(table, "per-sample SGD dense f64", X, y, args.alpha, args.epochs,
                        args.repeats, floors["f64"], floors[("f64", n_threads)])
        per_sample_case(table, "per-sample SGD dense f32", X32, y, args.alpha, args.epochs,
                        args.repeats, floors["f32"], floors[("f32", n_threads)])
        if Xs is not None:
            per_sample_case(table, "per-sample SGD sparse f64", Xs, ys, args.alpha, args.epochs,
                            args.repeats, floors["sparse"])
    if "full" not in args.skip:
        full_batch_case(table, "full batch dense f64", X, y, args.alpha, args.epochs,
                        args.repeats, floors["f64"])
        full_batch_case(table, "full batch dense f32", X32, y, args.alpha, args.epochs,
                        args.repeats, floors["f32"])
    if "adam" not in args.skip:
        adam_case(table, "mini-batch Adam dense f64", X, y, args.alpha, args.epochs,
                  args.repeats, floors["f64"], floors[("f64", n_threads)])
        adam_case(table, "mini-batch Adam dense f32", X32, y, args.alpha, args.epochs,
                  args.repeats, floors["f32"], floors[("f32", n_threads)])
    table.show()
    print("\nratio: time per epoch over the peer's in this run; x floor: time per epoch over "
          "one X @ w at the bandwidth NumPy / scipy reach here; x shuffled floor: over one "
          f"compiled pass reading the rows in a random order on {n_threads} thread(s). "
          "objective: (1/n) sum log-loss + alpha/2 ||w||^2 of the final model.")


if __name__ == "__main__":
    main()
