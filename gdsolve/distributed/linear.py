"""Distributed fit / partial_fit of SGDLinearRegression and SGDLogistic on Dask collections: the
estimator's own records, FitStates, schedule resolution and attribute storage (linear_model.py),
with the data in shards on the workers and a ShardedExecutor in place of the CPU executor.
Called by the estimators' dispatch hooks (linear_model.py) when X is a Dask collection.
"""


import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets

from gdsolve import _core
from gdsolve._base import (
    FIT_INTERRUPTED,
    settle_loop_statuses,
)
from gdsolve.distributed import _worker
from gdsolve.distributed._executor import ShardedExecutor
from gdsolve.distributed._params import check_update_rule
from gdsolve.distributed._shards import fit_on_shards
from gdsolve.distributed._start import linear_start
from gdsolve.linear_model import _REGRESSION_LOSSES, run_loop, start_call_state

_MAX_LANCZOS_FEATURES = 2000  # as linear_model._GRAM_MAX_FEATURES


class LinearOps:
    """What the sharded executor needs of the linear model: the state it sends, the step from a
    summed gradient (model/linear.h through _core.linear_step), the objective as the CPU
    executor defines it, and the validation score from the shards' sums."""

    averaged = ("params", "slots", "avg_params", "l1_q")

    def __init__(self, records, n_slots, n_outputs, n_features, classify):
        self.model = records["model"]
        self.optimizer = records["optimizer"]
        self.schedule = records["schedule"]
        self.n_slots = n_slots
        self.n_w = n_outputs * n_features
        self.classify = classify
        self._penalty_before = 0.0

    def payload(self, work):
        arrays = {"params": work.params,
                  "slots": [getattr(work, f"slot{k}") for k in range(self.n_slots)],
                  "avg_params": work.avg_params, "l1_q": work.l1_q}
        return arrays, work.scalars

    def penalty(self, params):
        m = self.model
        return _core.penalty(int(m["penalty"][0]), float(m["alpha"][0]), float(m["l1_ratio"][0]),
                             np.ascontiguousarray(params[:self.n_w]))[2]

    def end_local_epoch(self, work):
        pass

    def step(self, work, grad, count, loss, full):
        if full:  # the full-batch objective is exact at the epoch's start
            self._penalty_before = self.penalty(work.params)
        _core.linear_step(self.model, self.optimizer, self.schedule, work.scalars, work.params,
                          grad, count, work.slot0, work.slot1, work.slot2, work.avg_params)
        return loss

    def end_sync_epoch(self, work, loss_sum, n, full):
        return loss_sum / n + (self._penalty_before if full else self.penalty(work.params))

    def score_params(self, state):
        averaging = (state.avg_params is not None and int(self.model["average_start"][0]) > 0
                     and state["avg_count"] > 0)
        return state.avg_params if averaging else state.params

    def score(self, stats):
        if self.classify:
            hits = sum(s[0] for s in stats)
            total = sum(s[1] for s in stats)
            return float(hits / total) if total > 0 else 0.0
        w, sse, wy, wyy = np.sum([s[0] for s in stats], axis=0)
        if w <= 0:
            return 0.0
        sst = wyy - wy * wy / w
        if sst <= 0:  # scikit-learn's r2_score convention for constant targets
            return 1.0 if sse == 0 else 0.0
        return float(1.0 - sse / sst)


class _ShardedLipschitz:
    """Stands in for X in linear_model.lipschitz_constant: the Gram matrix of the training rows
    summed over the shards (or, beyond 2000 features, Lanczos over distributed products)."""

    def __init__(self, data, spec):
        self.data, self.spec = data, spec

    def lipschitz_constant(self, sample_weight, fit_intercept, rows):
        d = self.data.n_features
        if d + 1 <= _MAX_LANCZOS_FEATURES:
            parts = self.data.run(_worker.gram_stats, self.spec, lambda k: (fit_intercept,),
                                  name="gram")
            gram = sum(p[0] for p in parts)
            colsum = sum(p[1] for p in parts)
            total = sum(p[2] for p in parts)
            n = sum(p[3] for p in parts)
            if fit_intercept:
                gram = np.block([[gram, colsum[:, None]], [colsum[None, :], np.array([[total]])]])
            return max(float(np.linalg.eigvalsh(gram / n)[-1]), 0.0)
        from scipy.sparse.linalg import LinearOperator, eigsh

        n = sum(self.data.rows)  # the training rows are counted from the first product
        m = d + int(fit_intercept)

        def matvec(v):
            v = np.ravel(v).astype(np.float64)
            parts = self.data.run(_worker.matvec_stats, self.spec, lambda k: (v, fit_intercept),
                                  name="matvec")
            return sum(parts) / n

        op = LinearOperator((m, m), matvec=matvec, dtype=np.float64)
        lam = eigsh(op, k=1, which="LA", tol=1e-4, v0=np.ones(m) / np.sqrt(m),
                    return_eigenvectors=False)[0]
        return max(float(lam) * 1.01, 0.0)


def fit(est, X, y, sample_weight=None, *, partial=False, classes=None):
    """est.fit (or partial_fit: one epoch continuing the fitted state) on Dask collections."""
    check_update_rule(est, est.optimizer)  # before any work
    return fit_on_shards(est, X, y, sample_weight,
                         lambda data, token: _fit(est, data, token, partial, classes))


def _fit(est, data, token, partial, classes):
    name = type(est).__name__
    dtype = np.dtype(np.float32 if data.dtype == np.float32 else np.float64)
    clf = est._is_classifier
    dspec = _worker.DataSpec(token, name, dtype.name, "labels" if clf else "numeric")
    summaries = data.run(_worker.prepare, dspec, name="prepare")  # the first pass: the checks
    d = summaries[0]["n_features"]
    first = not hasattr(est, "_fit_states")
    old_classes = getattr(est, "classes_", None)
    if partial and hasattr(est, "n_features_in_") and d != est.n_features_in_:
        raise ValueError(f"X has {d} features, but {name} is expecting {est.n_features_in_} "
                         "features as input.")

    class_weight = None
    if clf:
        found, counts = _labels(summaries)
        if data.y.dtype.kind not in "biu":
            check_classification_targets(found)
        if partial:
            first = _check_partial_fit_first_call(est, classes)
            if len(est.classes_) < 2:
                raise ValueError(f"{name} needs at least 2 classes in `classes`")
        else:
            if found.shape[0] < 2:
                raise ValueError(f"{name} needs samples of at least 2 classes in the data, got "
                                 f"{found.shape[0]} class")
            est.classes_ = found
        if np.setdiff1d(found, est.classes_).size:
            raise ValueError("classes should include all valid labels that can be in y")
        class_weight = _class_weights(est, found, counts)
        n_loops, n_outputs, loss_code = est._layout()
    else:
        n_loops, n_outputs, loss_code = 1, 1, _REGRESSION_LOSSES[est.loss]
    early = bool(est.early_stopping) and not partial
    fraction = float(est.validation_fraction) if early else 0.0
    sizes = [_worker.split_sizes(n, fraction) for n in data.rows]
    n_train = [s[0] for s in sizes]
    n_val = [s[1] for s in sizes]
    if early and sum(n_val) == 0:
        raise ValueError(
            f"Splitting {data.n_rows} samples into a train set and a validation set with "
            f"validation_fraction={est.validation_fraction} led to an empty set; increase the "
            "number of samples, change validation_fraction or disable early_stopping.")
    split_seed = int(check_random_state(est.random_state).randint(np.iinfo(np.int32).max))

    batch = 0 if est.batch_size == "full" else int(est.batch_size)
    strategy = est.distributed
    _check_strategy(est, batch, len(data.rows))
    max_iter = 1 if partial else int(est.max_iter)
    tol = None if partial else est.tol

    base = _worker.FitSpec(
        data=_worker.DataSpec(token, name, dtype.name, "labels" if clf else "numeric"),
        model="linear", records={}, n_slots=0, loss=int(loss_code), n_outputs=n_outputs,
        classes=est.classes_ if clf else None, positive=-1 if n_loops == 1 else 0,
        class_weight=class_weight, validation_fraction=fraction, split_seed=split_seed,
        stratify=clf, sync_every=int(est.sync_every or 0))
    data.refresh_holders()
    # the states: as the estimator's own fit / partial_fit build them (a fresh one starts at
    # the best constant of the shards' training rows, by intercept_start)
    if partial and not first and hasattr(est, "_fit_states"):
        states = [s.astype(dtype) for s in est._fit_states]
    elif (not partial and est.warm_start and hasattr(est, "coef_")
          and est.coef_.shape == ((n_loops * n_outputs, d) if clf else (d,))
          and (not clf or (old_classes is not None
                           and np.array_equal(old_classes, est.classes_)))):
        states = est._new_states(n_loops, n_outputs, d, dtype, est.coef_.reshape(-1, d),
                                 est.intercept_)
    else:
        states = est._new_states(n_loops, n_outputs, d, dtype, intercept_init=linear_start(
            est, data, base, loss_code, n_loops, n_outputs))
    # per-step schedules count the steps of one local trajectory under local_sgd
    clock_rows = max(n_train) if strategy == "local_sgd" else sum(n_train)
    opt, _, sched_cfg, plateau_mode, plateau_cfg = est._resolve_training(
        _ShardedLipschitz(data, base), None, loss_code, clock_rows, batch, None, path="dask")
    model, optimizer, cpu, rules = est._records(loss_code, n_outputs, opt, sched_cfg,
                                                plateau_mode, plateau_cfg, batch, max_iter, tol,
                                                early)
    records = {"model": model, "optimizer": optimizer, "schedule": rules.schedule,
               "driver": rules.driver, "cpu": cpu}
    n_slots = int(_core.state_slots(optimizer))
    rng = check_random_state(est.random_state)
    new_states, reports = [], []
    stats = {"strategy": strategy, "rounds": 0, "bytes_sent": 0, "n_shards": len(data.rows)}
    for k, state in enumerate(states):
        spec = _replace(base, records=records, n_slots=n_slots,
                        positive=k if n_loops > 1 else -1)
        ops = LinearOps(records, n_slots, n_outputs, d, clf)
        executor = ShardedExecutor(data, spec, ops, strategy=strategy,
                                   sync_every=est.sync_every, batch=batch,
                                   shuffle=bool(est.shuffle), n_train=n_train, n_val=n_val)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        st = start_call_state(state, seed, rules, None)
        st.order = None
        label = "" if n_loops == 1 else f"class {est.classes_[k]!r}, "
        rep = run_loop(executor, st, rules, est._verbose_printer(label), name, max_iter, tol)
        rep.per_sample, rep.gathered = None, False
        stats["rounds"] += executor.rounds
        stats["bytes_sent"] += executor.bytes_sent
        new_states.append(st)
        reports.append(rep)
        if rep.status == FIT_INTERRUPTED:
            break
    settle_loop_statuses(reports, states, new_states, name, max_iter, tol)

    coef, intercept = est._store(new_states, reports, n_outputs, d, dtype)
    est.coef_ = coef if clf else coef.ravel()
    est.intercept_ = intercept
    est.n_features_in_ = d
    if data.names is not None:
        est.feature_names_in_ = data.names
    elif hasattr(est, "feature_names_in_") and not partial:
        del est.feature_names_in_
    est._distributed_stats = stats
    return est


def _replace(spec, **fields):
    from dataclasses import replace

    return replace(spec, **fields)


def _labels(summaries):
    """The sorted labels of all blocks and their counts (the union of the blocks' np.unique)."""
    found = np.unique(np.concatenate([s["classes"] for s in summaries]))
    counts = np.zeros(found.shape[0], dtype=np.int64)
    for s in summaries:
        counts[np.searchsorted(found, s["classes"])] += s["counts"]
    return found, counts


def _class_weights(est, found, counts):
    """The per-class factors of the sample weights (compute_class_weight's, from the counts)."""
    cw = est.class_weight
    if cw is None:
        return None
    classes = est.classes_
    if isinstance(cw, str):  # 'balanced': n / (n_labels_present * count), as scikit-learn
        if not np.all(np.isin(classes, found)):
            raise ValueError("classes should have valid labels that are in y")
        recip = counts.sum() / (found.shape[0] * counts.astype(np.float64))
        return recip[np.searchsorted(found, classes)]
    return compute_class_weight(cw, classes=classes, y=found)


def _check_strategy(est, batch, n_shards):
    name = type(est).__name__
    if est.distributed == "sync_gradient" and 0 < batch < n_shards:
        raise ValueError(
            f"{name}: distributed='sync_gradient' cuts every global batch of batch_size rows "
            f"across the {n_shards} blocks (one round trip per step): batch_size must be at "
            f"least the number of blocks, or 'full'; got batch_size={batch}. For per-sample "
            "SGD use distributed='local_sgd'.")
    if est.sync_every is not None and batch == 0:
        raise ValueError(f"{name}: sync_every counts local steps, and with batch_size='full' "
                         "every local epoch is one step: leave sync_every=None")
