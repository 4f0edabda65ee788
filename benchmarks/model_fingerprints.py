"""Fingerprints of the models every estimator configuration trains, for proving that a refactor
kept the arithmetic: run it once in an environment with the old build and once with the new one,
then compare the two files bit for bit.

    python benchmarks/model_fingerprints.py --out old.npz      # in the old build's venv
    python benchmarks/model_fingerprints.py --out new.npz      # in the new build's venv
    python benchmarks/model_fingerprints.py --compare old.npz new.npz

`--set NAME=VALUE` (repeatable) passes one more parameter to every estimator, e.g.
`--set intercept_start=sklearn` to fingerprint the zero start of builds before intercept_start
against a build that has it.

Each case fits one estimator configuration (fixed data, random_state and thread count) and stores
its fitted arrays (coef_/intercept_ or coefs_/intercepts_), loss curve, validation scores and
n_iter_. `--compare` lists every case whose arrays differ in any bit, with the largest difference.
"""

import argparse
import os
import sys
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_regression

from gdsolve import SGDLinearRegression, SGDLogistic, SGDMLPClassifier, SGDMLPRegressor
from gdsolve.schedules import ReduceLROnPlateau

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "amsgrad",
              "nadam", "radam", "lion")
SCHEDULES = ("constant", "cosine", "one_cycle", "step", "exponential", "warmup_cosine", "cyclic",
             "warm_restarts", "multistep", "adaptive", "invscaling")


def _data():
    Xc, yc = make_classification(3000, 40, n_informative=10, n_classes=3, random_state=0)
    Xb, yb = make_classification(3000, 40, n_informative=10, random_state=1)
    Xr, yr = make_regression(3000, 40, noise=5.0, random_state=2)
    Xr = Xr / Xr.std(axis=0)
    yr = (yr - yr.mean()) / yr.std() * 3.0 + 1.5
    sparse = sp.csr_matrix(np.where(np.abs(Xb) > 0.6, Xb, 0.0))
    # big enough (> 8 MiB) for the per-sample row gatherer
    Xg, yg = make_classification(12000, 100, n_informative=20, random_state=3)
    rng = np.random.RandomState(4)
    sw = rng.uniform(0.2, 2.0, 3000)
    return dict(Xc=Xc, yc=yc, Xb=Xb, yb=yb, Xr=Xr, yr=yr, sparse=sparse, Xg=Xg, yg=yg, sw=sw)


def linear_cases():
    cases = []
    add = cases.append
    base = dict(random_state=0, tol=None, max_iter=4)
    # per-sample SGD (scikit-learn's algorithm)
    for kw in ({}, {"average": True}, {"average": 500}, {"penalty": "l1"},
               {"penalty": "elasticnet"}, {"clip_grad_norm": 0.5},
               {"learning_rate": "invscaling", "eta0": 0.05},
               {"learning_rate": "adaptive", "eta0": 0.05, "tol": 1e-3, "max_iter": 30},
               {"shuffle": False}, {"tol": 1e-3, "max_iter": 40}):
        for data in ("b", "c"):
            add((f"logistic-ps-{data}-{kw}", SGDLogistic, {**base, **kw}, data, {}))
    add(("logistic-ps-ovr", SGDLogistic, {**base, "multi_class": "ovr"}, "c", {}))
    add(("logistic-ps-ovr-avg", SGDLogistic, {**base, "multi_class": "ovr", "average": True},
         "c", {}))
    add(("logistic-ps-sparse", SGDLogistic, base, "sparse", {}))
    add(("logistic-ps-sparse-l1", SGDLogistic, {**base, "penalty": "l1"}, "sparse", {}))
    add(("logistic-ps-gather", SGDLogistic, {**base, "max_iter": 2}, "g", {}))
    add(("logistic-ps-gather-f32", SGDLogistic, {**base, "max_iter": 2}, "g32", {}))
    add(("logistic-ps-f32", SGDLogistic, base, "b32", {}))
    add(("logistic-ps-sw", SGDLogistic, base, "b", {"sw": True}))
    add(("logistic-ps-cw", SGDLogistic, {**base, "class_weight": "balanced"}, "c", {}))
    add(("logistic-ps-early", SGDLogistic, {**base, "early_stopping": True, "tol": 1e-4,
                                            "max_iter": 50}, "b", {}))
    # mini-batch: every optimizer, several schedules
    for opt in OPTIMIZERS:
        for data in ("b", "c"):
            add((f"logistic-mb-{opt}-{data}", SGDLogistic,
                 {**base, "optimizer": opt, "batch_size": 128, "learning_rate": "constant",
                  "eta0": 0.01}, data, {}))
    for sched in SCHEDULES:
        add((f"logistic-mb-adam-{sched}", SGDLogistic,
             {**base, "optimizer": "adam", "batch_size": 100, "learning_rate": sched,
              "eta0": 0.01, "max_iter": 6}, "c", {}))
        add((f"logistic-mb-momentum-{sched}", SGDLogistic,
             {**base, "optimizer": "momentum", "batch_size": 100, "learning_rate": sched,
              "eta0": 0.01, "max_iter": 6}, "b", {}))
    plateau = ReduceLROnPlateau(factor=0.5, patience=0, threshold=0.01)
    add(("logistic-mb-plateau", SGDLogistic,
         {**base, "optimizer": "adam", "batch_size": 64, "learning_rate": plateau, "eta0": 0.01,
          "max_iter": 8}, "c", {}))
    for kw in ({"penalty": "l1", "alpha": 1e-3}, {"penalty": "elasticnet", "alpha": 1e-3},
               {"clip_grad_norm": 0.3}, {"average": 1000}, {"early_stopping": True,
                                                             "tol": 1e-4, "max_iter": 40},
               {"multi_class": "ovr"}, {"tol": 1e-4, "max_iter": 60}):
        for opt in ("adam", "momentum", "rmsprop"):
            add((f"logistic-mb-{opt}-{kw}", SGDLogistic,
                 {**base, "optimizer": opt, "batch_size": 256, "learning_rate": "constant",
                  "eta0": 0.01, **kw}, "c", {}))
    add(("logistic-mb-sparse", SGDLogistic,
         {**base, "optimizer": "adam", "batch_size": 256, "learning_rate": "constant",
          "eta0": 0.01}, "sparse", {}))
    add(("logistic-mb-f32", SGDLogistic,
         {**base, "optimizer": "adam", "batch_size": 256, "learning_rate": "constant",
          "eta0": 0.01}, "c32", {}))
    add(("logistic-mb-sw", SGDLogistic,
         {**base, "optimizer": "adam", "batch_size": 256, "learning_rate": "constant",
          "eta0": 0.01}, "b", {"sw": True}))
    # full batch
    for kw in ({}, {"penalty": "l1", "alpha": 1e-3}, {"penalty": "elasticnet", "alpha": 1e-3},
               {"learning_rate": plateau, "eta0": 0.5},
               {"tol": 1e-6, "max_iter": 300}, {"early_stopping": True, "tol": 1e-5,
                                                "max_iter": 100},
               {"optimizer": "adam", "learning_rate": "constant", "eta0": 0.05},
               {"clip_grad_norm": 0.1}):
        for data in ("b", "c", "sparse", "c32"):
            if data == "sparse" and "early_stopping" in kw:
                continue
            add((f"logistic-full-{data}-{kw}", SGDLogistic,
                 {**base, "batch_size": "full", "max_iter": 20, **kw}, data, {}))
    # regression
    for loss in ("squared", "huber", "epsilon_insensitive"):
        for kw in ({}, {"average": True}, {"batch_size": 64, "optimizer": "adam",
                                           "learning_rate": "cosine", "eta0": 0.01},
                   {"batch_size": "full"}, {"batch_size": "full", "penalty": "l1"},
                   {"early_stopping": True, "tol": 1e-4, "max_iter": 30}):
            add((f"regression-{loss}-{kw}", SGDLinearRegression, {**base, "loss": loss, **kw},
                 "r", {}))
    add(("regression-sw", SGDLinearRegression, base, "r", {"sw": True}))
    add(("regression-f32", SGDLinearRegression, {**base, "batch_size": 32, "optimizer": "nadam",
                                                 "learning_rate": "constant", "eta0": 0.01},
         "r32", {}))
    # partial_fit sequences and warm starts
    add(("logistic-partial", SGDLogistic, {"random_state": 0, "average": 100}, "c",
         {"partial": 3}))
    add(("logistic-partial-adam", SGDLogistic,
         {"random_state": 0, "optimizer": "adam", "batch_size": 64, "learning_rate": "adaptive",
          "eta0": 0.01}, "b", {"partial": 3}))
    add(("regression-partial", SGDLinearRegression, {"random_state": 0}, "r", {"partial": 3}))
    add(("logistic-warm", SGDLogistic, {**base, "warm_start": True}, "c", {"warm": True}))
    return cases


def mlp_cases():
    cases = []
    add = cases.append
    base = dict(random_state=0, hidden_layer_sizes=(32, 16), max_iter=4, tol=0.0)
    for opt in OPTIMIZERS:
        add((f"mlp-{opt}", SGDMLPClassifier, {**base, "optimizer": opt}, "c", {}))
    for act in ("relu", "tanh", "logistic", "identity"):
        add((f"mlp-act-{act}", SGDMLPClassifier, {**base, "activation": act}, "b", {}))
    for sched in ("adaptive", "invscaling", "cosine", "one_cycle"):
        add((f"mlp-sched-{sched}", SGDMLPClassifier,
             {**base, "learning_rate": sched, "optimizer": "nesterov",
              "learning_rate_init": 0.01, "max_iter": 8}, "c", {}))
    plateau = ReduceLROnPlateau(factor=0.5, patience=0, threshold=0.01)
    add(("mlp-plateau", SGDMLPClassifier, {**base, "learning_rate": plateau, "max_iter": 8},
         "c", {}))
    add(("mlp-early", SGDMLPClassifier, {**base, "early_stopping": True, "max_iter": 40,
                                         "tol": 1e-4, "n_iter_no_change": 3}, "c", {}))
    add(("mlp-tol", SGDMLPClassifier, {**base, "max_iter": 60, "tol": 1e-3,
                                       "n_iter_no_change": 2}, "b", {}))
    add(("mlp-clip", SGDMLPClassifier, {**base, "clip_grad_norm": 0.5}, "c", {}))
    add(("mlp-sparse", SGDMLPClassifier, base, "sparse", {}))
    add(("mlp-f32", SGDMLPClassifier, base, "c32", {}))
    add(("mlp-full", SGDMLPClassifier, {**base, "batch_size": "full", "max_iter": 6}, "c", {}))
    add(("mlp-noshuffle", SGDMLPClassifier, {**base, "shuffle": False}, "c", {}))
    add(("mlp-multilabel", SGDMLPClassifier, base, "ml", {}))
    add(("mlp-partial", SGDMLPClassifier, {**base}, "c", {"partial": 3}))
    add(("mlp-warm", SGDMLPClassifier, {**base, "warm_start": True}, "c", {"warm": True}))
    add(("mlpreg", SGDMLPRegressor, base, "r", {}))
    add(("mlpreg-multi", SGDMLPRegressor, base, "r2", {}))
    add(("mlpreg-early", SGDMLPRegressor, {**base, "early_stopping": True, "max_iter": 30,
                                           "tol": 1e-4}, "r", {}))
    add(("mlpreg-clip-f32", SGDMLPRegressor, {**base, "clip_grad_norm": 1.0}, "r32", {}))
    return cases


def _xy(data, d):
    if data == "sparse":
        return d["sparse"], d["yb"]
    if data == "ml":
        y = np.column_stack([d["yc"] == 0, d["yc"] == 1, d["yb"]]).astype(int)
        return d["Xc"], y
    if data == "r2":
        return d["Xr"], np.column_stack([d["yr"], -0.5 * d["yr"] + 1.0])
    f32 = data.endswith("32")
    key = data[:-2] if f32 else data
    X, y = d["X" + key], d["y" + key]
    return (X.astype(np.float32) if f32 else X), y


def run_case(case, d, extra=None):
    name, cls, params, data, how = case
    X, y = _xy(data, d)
    sw = d["sw"] if how.get("sw") else None
    est = cls(**params, **(extra or {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if how.get("partial"):
            parts = np.array_split(np.arange(X.shape[0]), how["partial"])
            kw = {"classes": np.unique(y)} if cls in (SGDLogistic,) else {}
            if cls is SGDMLPClassifier:
                kw = {"classes": np.unique(y)}
            for rows in parts:
                est.partial_fit(X[rows], y[rows], **kw)
        elif how.get("warm"):
            est.fit(X, y)
            est.fit(X[:2000], y[:2000])
        elif sw is not None:
            est.fit(X, y, sample_weight=sw)
        else:
            est.fit(X, y)
    out = {}
    for attr in ("coef_", "intercept_", "n_iter_", "t_", "loss_curve_", "validation_scores_",
                 "loss_"):
        value = getattr(est, attr, None)
        if value is None:
            continue
        if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
            value = np.concatenate([np.ravel(v) for v in value])
        out[attr] = np.asarray(value, dtype=np.float64).ravel()
    for attr in ("coefs_", "intercepts_"):
        value = getattr(est, attr, None)
        if value is not None:
            out[attr] = np.concatenate([np.ravel(v).astype(np.float64) for v in value])
    return name, out


def collect(threads, extra=None):
    d = _data()
    d["Xg32"], d["yg32"] = d["Xg"].astype(np.float32), d["yg"]
    results = {}
    for n_threads in threads:
        os.environ["GDSOLVE_NUM_THREADS"] = str(n_threads)
        for case in linear_cases() + mlp_cases():
            name, out = run_case(case, d, extra)
            for key, value in out.items():
                results[f"t{n_threads}|{name}|{key}"] = value
    return results


def compare(a_path, b_path):
    a, b = np.load(a_path), np.load(b_path)
    keys = sorted(set(a.files) | set(b.files))
    differ = []
    for key in keys:
        if key not in a.files or key not in b.files:
            differ.append((key, "missing in " + (b_path if key in a.files else a_path)))
            continue
        x, y = a[key], b[key]
        if x.shape != y.shape:
            differ.append((key, f"shape {x.shape} vs {y.shape}"))
        elif not np.array_equal(x.view(np.uint64), y.view(np.uint64)):
            diff = np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-300))
            differ.append((key, f"max relative difference {diff:.3g}"))
    cases = {k.rsplit("|", 1)[0] for k in keys}
    print(f"{len(cases)} cases, {len(keys)} arrays; {len(differ)} arrays differ")
    for key, why in differ:
        print(f"  {key}: {why}")
    return 1 if differ else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the fingerprints of this build here (.npz)")
    parser.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two files")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="one more estimator parameter for every case (a string value)")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if not args.out:
        parser.error("give --out or --compare")
    extra = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set needs NAME=VALUE, got {item!r}")
        extra[key] = value
    results = collect([int(t) for t in args.threads.split(",")], extra)
    np.savez(args.out, **results)
    print(f"{len(results)} arrays written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
