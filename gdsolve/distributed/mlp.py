"""Distributed fit / partial_fit of SGDMLPClassifier and SGDMLPRegressor on Dask collections: the
preparation of neural_network._BaseSGDMLP._fit (initialisation, FitState, records, attributes)
over data in shards on the workers, with a ShardedExecutor in place of the CPU executor. The
differences from one machine: the early-stopping split is drawn per block, and the labels /
targets are found by a first pass over the blocks. Called by the estimators' dispatch hooks.
"""

import math

import numpy as np
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets

from gdsolve import _core, _structs, engine
from gdsolve import neural_network as nn
from gdsolve._base import FIT_DIVERGED, handle_fit_status, resolve_optimizer, resolve_schedule
from gdsolve._codes import Loss
from gdsolve.distributed import _worker
from gdsolve.distributed._executor import ShardedExecutor
from gdsolve.distributed._params import check_update_rule
from gdsolve.distributed._shards import fit_on_shards
from gdsolve.distributed._start import mlp_output_bias


class MlpOps:
    """What the sharded executor needs of the MLP: the state it sends, the step from a batch's
    mean gradient (model/mlp.h through _core.mlp_step), the objective as the CPU executor
    defines it (the mean of the batch objectives, each with 0.5 alpha ||W||^2 / batch), and the
    validation score (accuracy, or the mean R^2 over outputs) from the shards' sums."""

    averaged = ("params", "slots")

    def __init__(self, records, n_slots, n_coef, classify):
        self.model = records["model"]
        self.optimizer = records["optimizer"]
        self.schedule = records["schedule"]
        self.n_slots = n_slots
        self.n_coef = n_coef
        self.alpha = float(self.model["alpha"][0])
        self.classify = classify

    def payload(self, work):
        return ({"params": work.params,
                 "slots": [getattr(work, f"slot{k}") for k in range(self.n_slots)]},
                work.scalars)

    def end_local_epoch(self, work):
        pass  # every shard's executor advanced t by its rows (the local clock)

    def step(self, work, grad, count, loss, full):
        sq = _core.mlp_step(self.model, self.optimizer, self.schedule, work.scalars,
                            work.params, grad, count, self.n_coef, work.slot0, work.slot1,
                            work.slot2)
        return loss + 0.5 * self.alpha * sq

    def end_sync_epoch(self, work, total, n, full):
        work["t"] = work["t"] + n  # scikit-learn's MLP: t advances once per epoch
        return total / n

    def score_params(self, state):
        return state.params

    def score(self, stats):
        if any(np.isnan(s).any() for s in stats):
            return np.nan
        if self.classify:
            return float(sum(s[0] for s in stats) / sum(s[1] for s in stats))
        n, sse, sy, syy = np.sum(stats, axis=0).T
        ss_tot = syy - sy * sy / n
        r2 = np.where(ss_tot == 0.0, (sse == 0.0).astype(float),
                      1.0 - sse / np.where(ss_tot == 0.0, 1.0, ss_tot))
        return float(np.mean(r2))


def fit(est, X, y, *, incremental=False, classes=None):
    """est.fit (incremental: partial_fit, one epoch) on Dask collections."""
    check_update_rule(est, est.optimizer)  # before any work
    return fit_on_shards(est, X, y, None,
                         lambda data, token: _fit(est, data, token, incremental, classes))


def _targets(est, summaries, incremental, classes, first_pass):
    """(loss code, outputs) from the blocks' labels / targets; sets classes_ and the binarizer
    as the estimator's own _validate_fit_data does."""
    name = type(est).__name__
    if not hasattr(est, "predict_proba"):  # regressor
        outputs = {s["n_outputs"] for s in summaries}
        if len(outputs) > 1:
            raise ValueError(f"{name}: the blocks of y have different numbers of outputs "
                             f"{sorted(outputs)}")
        est._n_outputs_for_loop = outputs.pop()
        return Loss.SQUARED, est._n_outputs_for_loop
    kinds = {s.get("target_type", "1d") for s in summaries}
    if kinds - {"1d", "multilabel-indicator"} or len(kinds) > 1:
        raise ValueError(f"{name}: y must be 1-D labels or a multilabel indicator matrix in "
                         f"every block, got {sorted(kinds)}")
    multilabel = kinds == {"multilabel-indicator"}
    if multilabel:
        k = {s["n_outputs"] for s in summaries}
        if len(k) > 1:
            raise ValueError(f"{name}: the blocks of y have different numbers of labels")
        found = np.arange(k.pop())
        sample = np.eye(len(found), dtype=int)
    else:
        found = np.unique(np.concatenate([s["classes"] for s in summaries]))
        check_classification_targets(found)
        sample = found
    if incremental and not hasattr(est, "classes_"):
        if classes is None and not multilabel:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        est._label_binarizer = LabelBinarizer().fit(sample if multilabel else classes)
        est.classes_ = est._label_binarizer.classes_
    elif incremental and classes is not None and not np.array_equal(
            np.unique(classes), np.asarray(est.classes_)):
        raise ValueError(f"`classes={np.asarray(classes)!r}` is not the same as on the first "
                         f"call to partial_fit, was {est.classes_!r}")
    if not incremental and (not hasattr(est, "classes_") or not est.warm_start):
        est._label_binarizer = LabelBinarizer().fit(sample)
        est.classes_ = est._label_binarizer.classes_
    elif not multilabel:
        if est.warm_start and not incremental:
            if set(found) != set(est.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {est.classes_}, `y` has {found}")
        elif len(np.setdiff1d(found, est.classes_, assume_unique=True)):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{est.classes_}. 'y' has {found}.")
    if est._label_binarizer.y_type_ == "multiclass":
        est._loss_code = Loss.SOFTMAX
        est._n_outputs_for_loop = len(est.classes_)
    else:
        est._loss_code = Loss.LOG
        est._n_outputs_for_loop = est._label_binarizer.transform(sample[:1]).shape[1]
    return est._loss_code, est._n_outputs_for_loop


def _fit(est, data, token, incremental, classes):
    name = type(est).__name__
    est._check_params()
    hidden = est._hidden_sizes()
    if incremental and est.early_stopping:
        raise ValueError("partial_fit does not support early_stopping=True")
    first_pass = not hasattr(est, "coefs_") or (not est.warm_start and not incremental)
    dtype = np.dtype(np.float32 if data.dtype == np.float32 else np.float64)
    clf = hasattr(est, "predict_proba")
    dspec = _worker.DataSpec(token, name, dtype.name, "mlp_labels" if clf else "numeric",
                             multi_output=True, accept_sparse=("csr",))
    summaries = data.run(_worker.prepare, dspec, name="prepare")  # the first pass: the checks
    d = summaries[0]["n_features"]
    if not first_pass and hasattr(est, "n_features_in_") and d != est.n_features_in_:
        raise ValueError(f"X has {d} features, but {name} is expecting {est.n_features_in_} "
                         "features as input.")
    loss, n_outputs = _targets(est, summaries, incremental, classes, first_pass)
    units = [d] + hidden + [n_outputs]
    rs = check_random_state(est.random_state)

    params, state, loss_curve, val_curve = est._start_parameters(units, rs, dtype, first_pass)

    # early stopping: a validation split per block, drawn after the initial weights
    fraction = float(est.validation_fraction) if est.early_stopping else 0.0
    split_seed = int(rs.randint(np.iinfo(np.int32).max)) if est.early_stopping else 0
    sizes = [_worker.split_sizes(n, fraction) for n in data.rows]
    n_train = [s[0] for s in sizes]
    n_val = [s[1] for s in sizes]
    if est.early_stopping and sum(n_val) < 2:
        raise ValueError("The validation set is too small. Increase 'validation_fraction' or "
                         "the size of your dataset.")
    n_total = sum(n_train)
    batch_size = est._batch_size_for(n_total)
    seed = int(rs.randint(np.iinfo(np.int32).max))  # the shuffling generator's seed
    strategy = est.distributed
    if strategy == "sync_gradient" and batch_size < min(len(n_train), n_total):
        raise ValueError(
            f"{name}: distributed='sync_gradient' cuts every global batch of batch_size rows "
            f"across the {len(n_train)} blocks: batch_size must be at least the number of "
            f"blocks, or 'full'; got {batch_size}")
    if est.sync_every is not None and batch_size >= n_total:
        raise ValueError(f"{name}: sync_every counts local steps, and with a full batch every "
                         "local epoch is one step: leave sync_every=None")

    optimizer, base_lr = resolve_optimizer(est.optimizer, est.learning_rate_init)
    if strategy == "local_sgd":  # per-step schedules count the steps of one local trajectory
        largest = max(n_train)
        steps_per_epoch = math.ceil(largest / min(batch_size, largest))
    else:
        steps_per_epoch = math.ceil(n_total / batch_size)
    total_steps = int(est.max_iter) * steps_per_epoch
    schedule, schedule_config = resolve_schedule(
        est.learning_rate, lr=base_lr, total_steps=total_steps, alpha=est.alpha or None,
        loss=Loss.LOG if nn.is_classifier_loss(loss) else Loss.SQUARED, power_t=est.power_t)
    plateau_lr = float(schedule_config.get("base_lr", base_lr))

    state = est._start_state(state, params, optimizer, None, units, dtype, incremental,
                             first_pass, plateau_lr)
    state.start_fit(seed)
    state.order = None
    rules = est._fit_rules(schedule, schedule_config, batch_size, incremental)
    driver = rules.driver
    model = est._model_record(loss)
    optimizer_rec = _structs.record("OptimizerConfig", optimizer.to_config())
    records = {"model": model, "optimizer": optimizer_rec, "schedule": rules.schedule,
               "driver": driver, "cpu": _structs.record("CpuConfig", {"n_threads": 1})}
    n_slots = int(_core.state_slots(optimizer_rec))
    n_coef = sum(a * b for a, b in zip(units[:-1], units[1:], strict=True))
    spec = _worker.FitSpec(
        data=dspec, model="mlp", records=records, n_slots=n_slots, loss=int(loss),
        n_outputs=n_outputs, classes=getattr(est, "classes_", None) if clf else None,
        binarizer=getattr(est, "_label_binarizer", None) if loss == Loss.LOG else None,
        units=tuple(units), validation_fraction=fraction, split_seed=split_seed,
        stratify=clf and (loss == Loss.SOFTMAX or n_outputs == 1),
        sync_every=int(est.sync_every or 0))
    data.refresh_holders()
    if first_pass and nn.starts_from_best_constant(est):
        # the output layer's bias at the best constant of the shards' training rows
        bias = mlp_output_bias(data, spec, loss, n_outputs)
        for p in (state.params, state.best_params):
            if p is not None:
                p[-n_outputs:] = bias
    executor = ShardedExecutor(data, spec, MlpOps(records, n_slots, n_coef, clf),
                               strategy=strategy, sync_every=est.sync_every, batch=batch_size,
                               shuffle=bool(est.shuffle), n_train=n_train, n_val=n_val)
    report = engine.run(executor, state, rules, on_epoch=nn._verbose_printer(est.verbose))
    handle_fit_status(report.status, report.stop_epoch, name,
                      1 if incremental else int(est.max_iter), float(est.tol))
    if report.status == FIT_DIVERGED:  # pragma: no cover - handle_fit_status raised
        return est

    est._store_fit(state, report, units, loss, n_outputs, loss_curve, val_curve)
    est.n_features_in_ = d
    if data.names is not None:
        est.feature_names_in_ = data.names
    elif hasattr(est, "feature_names_in_") and first_pass:
        del est.feature_names_in_
    est._distributed_stats = {"strategy": strategy, "rounds": executor.rounds,
                              "bytes_sent": executor.bytes_sent, "n_shards": len(n_train)}
    return est
