"""Running a case: exact optima, warm-up and alternating timed fits, objective / gap / score, the
gap-vs-time traces, ratios against the paired gdsolve solver; time_to_gap and the closed-form
crossover.

Called by gdsolve.bench.cli (run_case, run_crossover, _count_fits) and tests (time_to_gap).
"""

import gc
import math
import time
import warnings
from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from gdsolve import reference as ref
from gdsolve.bench.cases import ALPHA, _labels, _make_case, _synthetic_regression
from gdsolve.bench.env import _blas_limit
from gdsolve.bench.peers import _closed_form, _gdsolve_linear


def _objective_and_score(case, solver, fitted):
    """(final training objective, relative gap or None, held-out score)."""
    from sklearn.metrics import accuracy_score, r2_score

    if case.problem is not None:
        reference = case.references[solver.reference]
        value = ref.objective_value(fitted.coef, fitted.intercept, reference.X, reference.y,
                                    reference.problem, classes=reference.classes)
        gap = (value - reference.objective) / max(abs(reference.objective), 1e-300)
    else:
        proba = np.clip(fitted.predict_proba(case.X), 1e-300, 1.0)
        index = _labels(case.y, case.classes)[0]
        n = case.X.shape[0]
        value = float(-np.mean(np.log(proba[np.arange(n), index])))
        value += 0.5 * case.mlp_alpha * fitted.squared_weights / n
        gap = None
    predicted = fitted.predict(case.X_test)
    if case.kind == "regression":
        score = float(r2_score(case.y_test, predicted))
    else:
        score = float(accuracy_score(case.y_test, predicted))
    return float(value), (None if gap is None else float(gap)), score


def _run_fit(solver, X, y, budget):
    """Time one fit; warnings (ConvergenceWarning by design: budgets are fixed) silenced and the
    garbage collector paused, as timeit does."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            fitted = solver.fit(X, y, budget)
            elapsed = time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return fitted, elapsed


def _trace_budgets(budget, points):
    if budget is None:
        return []
    grid = np.unique(np.round(np.geomspace(1, budget, num=max(points, 1))).astype(int))
    return [int(b) for b in grid if b < budget]


def _references(case):
    """Exact optima for the case's problem (and the one-vs-rest one when a peer needs it)."""
    if case.problem is None or not case.solvers:
        return
    X64 = case.X.astype(np.float64)
    needed = {s.reference for s in case.solvers} | {"main"}
    for key in sorted(needed):
        problem = case.problem if key == "main" else replace(case.problem, multi_class="ovr")
        start = time.perf_counter()
        # Untimed and small: one BLAS thread avoids the large slowdowns of threaded
        # factorisations on a machine shared with other work.
        with warnings.catch_warnings(), _blas_limit(1):
            warnings.simplefilter("ignore")
            case.references[key] = ref.solve(X64, case.y, problem)
        case.reference_times[key] = time.perf_counter() - start


def run_case(case, repeats, trace_points, progress=None):
    """Every solver of `case`: one warm-up, `repeats` timed fits (solver order alternating
    between repeats), then shorter fits for the gap-vs-time trace. Returns the case's record."""
    case_started = time.perf_counter()
    _references(case)
    records = {s.name: {"times": [], "epochs": [], "fitted": None, "error": None}
               for s in case.solvers}

    def tick(label):
        if progress is not None:
            if progress.n >= progress.total:  # the fit count is estimated up front
                progress.total = progress.n + 1
            progress.set_postfix_str(f"{case.name}: {label}"[:60])
            progress.update(1)

    for solver in case.solvers:  # warm-up: imports, first-call allocations
        try:
            _run_fit(solver, case.X, case.y, 1 if solver.budget else None)
        except Exception as err:  # a failing solver is reported, never aborts the run
            records[solver.name]["error"] = f"{type(err).__name__}: {err}"
        tick(solver.name)
    for r in range(repeats):
        order = case.solvers if r % 2 == 0 else case.solvers[::-1]
        for solver in order:
            rec = records[solver.name]
            if rec["error"] is None:
                try:
                    fitted, elapsed = _run_fit(solver, case.X, case.y, solver.budget)
                    rec["times"].append(elapsed)
                    rec["epochs"].append(fitted.n_epochs)
                    rec["fitted"] = fitted
                except Exception as err:
                    rec["error"] = f"{type(err).__name__}: {err}"
            tick(solver.name)

    results = []
    for solver in case.solvers:
        rec = records[solver.name]
        row = {
            "solver": solver.name, "library": solver.library, "unit": solver.unit,
            "budget": solver.budget, "pair": solver.pair, "reference": solver.reference,
            "note": solver.note, "error": rec["error"], "fit_times": rec["times"],
            "epochs_run": rec["epochs"][-1] if rec["epochs"] else None,
            "median_fit_time": None, "median_epoch_time": None, "objective": None,
            "gap": None, "score": None, "trace": [],
            "ratio_epoch_time": None, "ratio_fit_time": None,
        }
        if rec["fitted"] is not None:
            fit_time = float(np.median(rec["times"]))
            row["median_fit_time"] = fit_time
            epochs = rec["epochs"][-1]
            if epochs:
                row["median_epoch_time"] = float(np.median(
                    [t / max(e, 1) for t, e in zip(rec["times"], rec["epochs"], strict=True)]))
            value, gap, score = _objective_and_score(case, solver, rec["fitted"])
            row.update(objective=value, gap=gap, score=score)
            trace = []
            snapshots = rec["fitted"].snapshots
            if snapshots:
                # In-run snapshots of the last timed fit, at geometrically spaced epochs.
                wanted = set(_trace_budgets(epochs, 2 * trace_points))
                for elapsed, epoch, make in snapshots:
                    if epoch in wanted:
                        value_b, gap_b, _ = _objective_and_score(case, solver, make())
                        trace.append({"budget": epoch, "epochs": epoch, "time": elapsed,
                                      "objective": value_b, "gap": gap_b})
            # Else shorter fits up to what the timed fit ran (an iteration budget may stop early).
            for budget in _trace_budgets(epochs or None, trace_points) if not snapshots else []:
                try:
                    # Best of two: a single short fit is easily hit by a scheduling hiccup.
                    fitted, elapsed = _run_fit(solver, case.X, case.y, budget)
                    elapsed = min(elapsed, _run_fit(solver, case.X, case.y, budget)[1])
                except Exception as err:
                    row["note"] = (row["note"] + "; " if row["note"] else "") + \
                        f"trace fit failed at budget {budget}: {type(err).__name__}"
                    break
                value_b, gap_b, _ = _objective_and_score(case, solver, fitted)
                trace.append({"budget": budget, "epochs": fitted.n_epochs, "time": elapsed,
                              "objective": value_b, "gap": gap_b})
                tick(f"{solver.name} trace")
            trace.append({"budget": solver.budget, "epochs": epochs, "time": fit_time,
                          "objective": value, "gap": gap})
            row["trace"] = trace
        results.append(row)
        del rec["fitted"]

    by_name = {row["solver"]: row for row in results}
    for row in results:
        partner = by_name.get(row["pair"]) if row["pair"] else None
        if partner is None:
            continue
        if partner["median_epoch_time"] and row["median_epoch_time"]:
            row["ratio_epoch_time"] = partner["median_epoch_time"] / row["median_epoch_time"]
        if partner["median_fit_time"] and row["median_fit_time"]:
            row["ratio_fit_time"] = partner["median_fit_time"] / row["median_fit_time"]
    if case.problem is None:
        best = min((r["objective"] for r in results if r["objective"] is not None),
                   default=None)
        for row in results:
            for point in row["trace"]:
                point["gap_to_best"] = (None if best is None else
                                        (point["objective"] - best) / max(abs(best), 1e-300))
    return {
        "name": case.name, "suite": case.suite, "kind": case.kind, "source": case.source,
        "n_samples": int(case.X.shape[0]), "n_features": int(case.X.shape[1]),
        "n_test": int(case.X_test.shape[0]), "sparse": bool(sp.issparse(case.X)),
        "dtype": str(case.X.dtype),
        "problem": None if case.problem is None else dict(case.problem.__dict__),
        "mlp_alpha": case.mlp_alpha if case.problem is None else None,
        "reference": {
            key: {"solver": r.solver, "objective": r.objective, "n_iter": r.n_iter,
                  "gradient_norm": r.gradient_norm, "time": case.reference_times[key],
                  "problem": dict(r.problem.__dict__)}
            for key, r in case.references.items()
        },
        "score_name": "r2" if case.kind == "regression" else "accuracy",
        "wall_time": time.perf_counter() - case_started,
        "results": results,
        "notes": list(dict.fromkeys(case.notes)),
    }


def time_to_gap(trace, target):
    """Seconds to first reach `target` relative gap, interpolating log(gap) between trace
    points; None when never reached."""
    points = sorted((p["time"], p["gap"]) for p in trace if p.get("gap") is not None)
    prev = None
    for t, gap in points:
        if gap <= target:
            if prev is None or prev[1] <= 0 or gap <= 0:
                return t
            lg0, lg1, lt = math.log(prev[1]), math.log(gap), math.log(target)
            frac = (lg0 - lt) / (lg0 - lg1) if lg0 != lg1 else 1.0
            return prev[0] + frac * (t - prev[0])
        prev = (t, gap)
    return None


def run_crossover(sizes, dtype, seed, repeats, targets, progress=None, n_samples=None):
    """Time to reach each gap target vs number of features: gdsolve GD against lstsq and
    Cholesky on ridge problems n x p (the closed-form crossover)."""
    n, features = sizes["crossover"]
    n = n_samples or n
    rows = []
    problem = ref.Problem(loss="squared_error", penalty="l2", alpha=ALPHA)
    for p in features:
        X, y = _synthetic_regression(n, p, seed + p)
        case = _make_case(f"crossover p={p}", "closed-form", "regression", "synthetic", X, y,
                          seed, dtype, problem)
        solvers = [
            _gdsolve_linear(case, "full-batch", sizes["full_epochs"], seed, case.notes),
            _closed_form(case, "lstsq", pair="gdsolve full-batch"),
            _closed_form(case, "cholesky", pair="gdsolve full-batch"),
        ]
        case.solvers = [s for s in solvers if s is not None]
        record = run_case(case, repeats, sizes["trace_points"] + 2, progress)
        entry = {"n_samples": record["n_samples"], "n_features": p, "solvers": {},
                 "notes": record["notes"]}
        for row in record["results"]:
            entry["solvers"][row["solver"]] = {
                "median_fit_time": row["median_fit_time"], "gap": row["gap"],
                "time_to_gap": {f"{t:g}": time_to_gap(row["trace"], t) for t in targets},
                "trace": row["trace"], "error": row["error"],
            }
        rows.append(entry)
    return {"n_samples": n, "features": list(features), "targets": list(targets),
            "alpha": ALPHA, "rows": rows}


def _count_fits(cases, repeats, trace_points):
    total = 0
    for case in cases:
        for s in case.solvers:
            total += 1 + repeats + (len(_trace_budgets(s.budget, trace_points)) if s.budget
                                    else 0)
    return total
