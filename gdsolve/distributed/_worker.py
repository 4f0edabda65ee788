"""The tasks a distributed fit runs on the Dask workers, one block (shard) per task: the first
pass (checks, labels), the Gram statistics of the full-batch step size, a round of local
training (the compiled CPU executors over the shard), the gradient of part of a global batch,
and the validation statistics. Every task receives its block (Dask keeps it where it lives) and
everything else by value, so it can run on any worker, again, after a worker is lost.

A per-process cache keyed by (fit token, block index) keeps the checked arrays, the encoded
targets, the validation split and the executors between tasks; it is an optimization only: on a
miss (another worker, a restarted one) the shard is rebuilt from the block. Callers: the client
side of gdsolve.distributed (_shards.py submits these; linear.py / mlp.py build the specs).
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import assert_all_finite, check_array, column_or_1d
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _check_sample_weight

from gdsolve import _core, _cpu_linear, _cpu_mlp, _structs
from gdsolve._codes import FitStatus, Loss
from gdsolve.engine import FitState

_MAX_FITS = 4  # fits whose shards one worker process keeps (older ones are dropped)
_cache = OrderedDict()  # token -> {block index: _Shard}
_lock = threading.Lock()


# ---- the specs (small, sent with every task) ----------------------------------------------------

@dataclass(frozen=True)
class DataSpec:
    """How a fit's blocks are checked: the estimator's name (for scikit-learn's messages), the
    dtype it trains in, the kind of target."""

    token: str
    name: str
    dtype: str
    target: str  # "labels" (classifier), "numeric" (regressor), "mlp_labels" (MLP classifier)
    multi_output: bool = False
    accept_sparse: tuple = ("csr", "csc")


@dataclass(frozen=True)
class FitSpec:
    """One training problem over the shards (one per one-vs-rest class): the model kind and its
    records, how targets are encoded, the validation split, the strategy."""

    data: DataSpec
    model: str                       # "linear" or "mlp"
    records: dict                    # model / optimizer / schedule / driver / cpu records
    n_slots: int                     # optimizer slots the rule uses
    loss: int
    n_outputs: int
    classes: np.ndarray = None       # classifiers: the sorted classes
    positive: int = -1               # one-vs-rest: this loop's class index; -1 multinomial
    class_weight: np.ndarray = None  # per class, multiplying the sample weights
    binarizer: object = None         # MLP LOG outputs: the fitted LabelBinarizer
    units: tuple = ()                # MLP layer sizes
    validation_fraction: float = 0.0  # 0: no validation split
    split_seed: int = 0
    stratify: bool = False
    sync_every: int = 0              # local_sgd: steps per round (0: one local epoch)
    extra: dict = field(default_factory=dict)


# ---- the cache ----------------------------------------------------------------------------------

class _Shard:
    """The checked arrays of one block and what the fits derive from them."""

    def __init__(self, source, X, y, sw):
        self.source = source  # the block object the arrays were made from
        self.X, self.y, self.sw = X, y, sw
        self.derived = {}


def _shard(spec, index, xb, yb, swb):
    data = spec if isinstance(spec, DataSpec) else spec.data
    with _lock:
        fit = _cache.get(data.token)
        shard = None if fit is None else fit.get(index)
    if shard is not None and shard.source is xb:
        return shard
    X, y, sw = check_block(data, xb, yb, swb)
    shard = _Shard(xb, X, y, sw)
    with _lock:
        fit = _cache.setdefault(data.token, {})
        _cache.move_to_end(data.token)
        fit[index] = shard
        while len(_cache) > _MAX_FITS:
            _cache.popitem(last=False)
    return shard


def release(token, dask_worker=None):
    """Drop a fit's shards (client.run calls this on every worker at the end of a fit)."""
    with _lock:
        return _cache.pop(token, None) is not None


# ---- the first pass -----------------------------------------------------------------------------

def check_block(data, xb, yb, swb):
    """One block's (X, y, sample_weight) checked as the estimator checks its whole input on one
    machine (the same functions, so the same messages: NaN, infinity, dtype, shapes)."""
    dtype = np.dtype(data.dtype)
    X = check_array(xb, accept_sparse=list(data.accept_sparse), dtype=dtype, order="C",
                    input_name="X", estimator=data.name)
    if sp.issparse(X):
        X = X.tocsr()
    if data.multi_output:
        y = check_array(yb, accept_sparse=False, ensure_2d=False, dtype=None, input_name="y",
                        estimator=data.name)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
    else:
        y = column_or_1d(yb, warn=False)
        assert_all_finite(y, input_name="y", estimator_name=data.name)
    if data.target == "numeric":
        if y.dtype.kind == "O":
            y = y.astype(np.float64)
        assert_all_finite(y, input_name="y", estimator_name=data.name)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                         f"[{X.shape[0]}, {y.shape[0]}]")
    sw = None
    if swb is not None:
        sw = np.ascontiguousarray(_check_sample_weight(swb, X, dtype=dtype))
    return X, y, sw


def prepare(data, index, xb, yb, swb):
    """The first pass over a block: the checks, then what the client needs to know (rows,
    features, the labels and their counts, the target's shape). Keeps the checked arrays."""
    shard = _shard(data, index, xb, yb, swb)
    X, y = shard.X, shard.y
    out = {"n_rows": X.shape[0], "n_features": X.shape[1], "sparse": sp.issparse(X)}
    if data.target in ("labels", "mlp_labels"):
        if y.ndim == 1:
            classes, counts = np.unique(y, return_counts=True)
            out["classes"], out["counts"] = classes, counts
            if shard.sw is not None:
                idx = np.searchsorted(classes, y)
                out["weighted_counts"] = np.bincount(idx, weights=shard.sw,
                                                     minlength=len(classes))
        else:
            out["target_type"] = type_of_target(y)
            out["n_outputs"] = y.shape[1]
    else:
        out["n_outputs"] = 1 if y.ndim == 1 else y.shape[1]
    return out


# ---- per-fit derived data -----------------------------------------------------------------------

def _split(spec, shard, index, strata):
    """(train rows, validation rows) of the block, int64 and sorted: a split drawn per block
    from the fit's seed, stratified by `strata` (class indices, or None) where the block
    allows it."""
    key = ("split", spec.validation_fraction, spec.split_seed)
    if key in shard.derived:
        return shard.derived[key]
    n = shard.X.shape[0]
    n_val = split_sizes(n, spec.validation_fraction)[1]
    rows = np.arange(n, dtype=np.int64)
    if n_val == 0:
        out = (rows, rows[:0])
    else:
        seed = (int(spec.split_seed) + 1_000_003 * (index + 1)) % (2 ** 31 - 1)
        X0 = np.zeros((n, 1))
        split = None
        if spec.stratify and strata is not None:
            try:
                split = next(StratifiedShuffleSplit(test_size=n_val, random_state=seed)
                             .split(X0, strata))
            except ValueError:  # a class with one member in this block: plain split
                split = None
        if split is None:
            split = next(ShuffleSplit(test_size=n_val, random_state=seed).split(X0))
        out = (np.sort(split[0]).astype(np.int64), np.sort(split[1]).astype(np.int64))
    shard.derived[key] = out
    return out


def split_sizes(n, fraction):
    """(train, validation) rows of a block of n rows (the client computes the same sizes)."""
    if fraction <= 0.0 or n < 2:
        return n, 0
    n_val = int(np.ceil(fraction * n))
    if n_val >= n:
        return n, 0
    return n - n_val, n_val


def _class_indices(spec, shard):
    key = ("class_indices",)
    if key not in shard.derived:
        shard.derived[key] = np.searchsorted(spec.classes, shard.y)
    return shard.derived[key]


def _linear_problem(spec, shard, index):
    """(X as the executor takes it, targets, weights, train rows, validation rows)."""
    key = ("linear", spec.loss, spec.positive, spec.validation_fraction, spec.split_seed)
    if key in shard.derived:
        return shard.derived[key]
    dtype = np.dtype(spec.data.dtype)
    sw = shard.sw
    if spec.classes is not None:
        y_idx = _class_indices(spec, shard)
        if spec.loss == Loss.SOFTMAX:
            y = np.ascontiguousarray(y_idx, dtype=dtype)
        else:
            positive = 1 if spec.positive < 0 else spec.positive
            y = np.where(y_idx == positive, 1.0, -1.0).astype(dtype)
        if spec.class_weight is not None:
            w = np.asarray(spec.class_weight)[y_idx].astype(dtype)
            sw = np.ascontiguousarray(w if sw is None else w * sw)
        strata = y_idx
    else:
        y = np.ascontiguousarray(shard.y, dtype=dtype)
        strata = None
    train, val = _split(spec, shard, index, strata)
    X = shard.X
    if sp.issparse(X):
        from gdsolve.linear_model import _SGDLinearBase

        X = _SGDLinearBase._loop_X(X)
    out = (X, y, sw, train, val)
    shard.derived[key] = out
    return out


def _mlp_problem(spec, shard, index):
    """(train MlpArrays, validation MlpArrays) of the block."""
    key = ("mlp", spec.validation_fraction, spec.split_seed)
    if key in shard.derived:
        return shard.derived[key]
    dtype = np.dtype(spec.data.dtype)
    labels = targets = None
    strata = None
    if spec.loss == Loss.SOFTMAX:
        labels = np.searchsorted(spec.classes, shard.y).astype(np.int32)
        strata = labels
    elif spec.loss == Loss.LOG:
        binarized = spec.binarizer.transform(shard.y)
        if sp.issparse(binarized):
            binarized = binarized.toarray()
        targets = np.ascontiguousarray(binarized, dtype=dtype)
        strata = targets[:, 0] if targets.shape[1] == 1 else None
    else:
        targets = np.ascontiguousarray(shard.y.reshape(shard.y.shape[0], -1), dtype=dtype)
    train, val = _split(spec, shard, index, strata)

    def arrays(rows):
        whole = rows.shape[0] == shard.X.shape[0]
        X = shard.X if whole else shard.X[rows]
        return _cpu_mlp.MlpArrays(X, None if targets is None else (targets if whole
                                                                    else targets[rows]),
                                  None if labels is None else (labels if whole else labels[rows]))

    out = (arrays(train), arrays(val))
    shard.derived[key] = out
    return out


def _n_threads(threads):
    from gdsolve._base import available_threads

    return max(1, min(int(threads), available_threads()))


def _records(spec, *, shuffle=None, batch=None, threads=1):
    rec = spec.records
    driver = rec["driver"].copy()
    if shuffle is not None:
        driver["shuffle"] = bool(shuffle)
    if batch is not None:
        driver["batch_size"] = int(batch)
    cpu = rec["cpu"].copy()
    cpu["n_threads"] = _n_threads(threads)
    return rec["model"], rec["optimizer"], rec["schedule"], driver, cpu


def _cached_executor(shard, key, build):
    """The shard's executor for `key`, built on a miss; a few are kept (local rounds use two
    sizes, one-vs-rest one problem per class at a time)."""
    executors = shard.derived.setdefault("executors", OrderedDict())
    ex = executors.get(key)
    if ex is None:
        ex = executors[key] = build()
        while len(executors) > 4:
            executors.popitem(last=False)
    executors.move_to_end(key)
    return ex


def _linear_executor(spec, shard, index, n_train, shuffle, threads):
    X, y, sw, train, val = _linear_problem(spec, shard, index)

    def build():
        model, opt, sched, driver, cpu = _records(spec, shuffle=shuffle, threads=threads)
        return _cpu_linear.LinearExecutor(model, opt, sched, driver, cpu, X, y, sw, n_train,
                                          None)

    key = ("linear", spec.loss, spec.positive, n_train, bool(shuffle), int(threads))
    return _cached_executor(shard, key, build)


def _mlp_executor(spec, train, shuffle, threads, shard=None):
    if shard is not None:
        key = ("mlp", bool(shuffle), int(threads))
        return _cached_executor(shard, key,
                                lambda: _mlp_executor(spec, train, shuffle, threads))
    model, opt, sched, driver, cpu = _records(spec, shuffle=shuffle, threads=threads)
    if threads > 1:
        cpu["n_threads"] = _cpu_mlp.team_size(int(cpu["n_threads"][0]),
                                              int(driver["batch_size"][0]))
    empty = _cpu_mlp.MlpArrays(np.empty((0, train.n_features), dtype=train.dtype),
                               None if spec.loss == Loss.SOFTMAX
                               else np.empty((0, spec.n_outputs), dtype=train.dtype),
                               np.empty(0, np.int32) if spec.loss == Loss.SOFTMAX else None)
    return _cpu_mlp.MlpExecutor(np.asarray(spec.units, dtype=np.int64), model, opt, sched,
                                driver, cpu, train, empty)


# ---- the shard's row order ----------------------------------------------------------------------

def epoch_order(rows, seed, shuffle):
    """The shard's training rows in this epoch's order (uint32): shuffled by driver/shuffle.h
    from the shard's seed, as its CPU executor would shuffle them."""
    order = np.ascontiguousarray(rows, dtype=np.uint32).copy()
    if shuffle and order.shape[0] > 1:
        sc = _structs.record("FitScalars", {"rng": int(seed)})
        _core.shuffle_order(order, sc)
    return order


def _round_bounds(n_rows, batch, steps, r):
    """Rows [start, stop) of round r of `steps` batches of `batch` rows."""
    per_round = batch * steps
    return min(n_rows, r * per_round), min(n_rows, (r + 1) * per_round)


# ---- local training -----------------------------------------------------------------------------

def _state_from(payload, dtype):
    arrays, scalars = payload
    params = np.array(arrays["params"], dtype=dtype)
    slots = [np.array(s, dtype=dtype) for s in arrays["slots"]]
    st = FitState(params, slots=slots,
                  avg_params=None if arrays.get("avg_params") is None
                  else np.array(arrays["avg_params"], dtype=dtype),
                  l1_q=None if arrays.get("l1_q") is None
                  else np.array(arrays["l1_q"], dtype=dtype))
    st.scalars[...] = scalars
    return st


def _result(status, objective, rows, st, n_slots):
    arrays = {"params": st.params, "slots": [getattr(st, f"slot{k}") for k in range(n_slots)],
              "avg_params": st.avg_params, "l1_q": st.l1_q}
    return {"status": int(status), "objective": float(objective), "rows": int(rows),
            "arrays": arrays, "scalars": st.scalars.copy()}


def local_round(spec, index, xb, yb, swb, payload, seed, r, threads):
    """Train one round on this shard from the client's state: one local epoch (shuffled from
    `seed`), or round r of sync_every steps of the shard's epoch order. Returns the new state's
    arrays and scalars, the round's objective and how many rows it trained on."""
    shard = _shard(spec, index, xb, yb, swb)
    dtype = np.dtype(spec.data.dtype)
    st = _state_from(payload, dtype)
    st["rng"] = int(seed)
    driver = spec.records["driver"]
    shuffle = bool(driver["shuffle"][0])
    if spec.model == "linear":
        return _linear_round(spec, shard, index, st, seed, r, shuffle, threads)
    return _mlp_round(spec, shard, index, st, seed, r, shuffle, threads)


def _per_epoch(shard, kind, seed, make):
    """The shard's `kind` array for the epoch of `seed`, made once per epoch by make(); the
    previous epoch's is dropped (the rounds of one epoch share it, and memory holds one)."""
    key = (kind, seed)
    value = shard.derived.get(key)
    if value is None:
        for old in [k for k in shard.derived if k[0] == kind]:
            del shard.derived[old]
        value = shard.derived[key] = make()
    return value


def _linear_round(spec, shard, index, st, seed, r, shuffle, threads):
    X, y, sw, train, val = _linear_problem(spec, shard, index)
    batch = int(spec.records["driver"]["batch_size"][0])
    n_train = train.shape[0]
    if spec.sync_every <= 0 or batch <= 0:
        rows = train.astype(np.uint32)
        full = batch <= 0 or batch >= n_train
        ex = _linear_executor(spec, shard, index, n_train, shuffle and not full, threads)
    else:
        start, stop = _round_bounds(n_train, batch, spec.sync_every, r)
        if stop <= start:
            return {"status": int(FitStatus.MAX_ITER), "objective": 0.0, "rows": 0}
        order = _per_epoch(shard, "order", seed, lambda: epoch_order(train, seed, shuffle))
        rows = order[start:stop]
        ex = _linear_executor(spec, shard, index, rows.shape[0], False, threads)
    st.order = np.ascontiguousarray(rows, dtype=np.uint32)
    status, objective = ex.run_epoch(st)
    return _result(status, objective, st.order.shape[0], st, spec.n_slots)


def _mlp_round(spec, shard, index, st, seed, r, shuffle, threads):
    train, _ = _mlp_problem(spec, shard, index)
    n_train = train.n_rows
    batch = int(spec.records["driver"]["batch_size"][0])
    if spec.sync_every <= 0:
        ex = _mlp_executor(spec, train, shuffle, threads, shard=shard)
        st.order = np.arange(n_train, dtype=np.uint32)
        rows = n_train
    else:
        start, stop = _round_bounds(n_train, batch, spec.sync_every, r)
        if stop <= start:
            return {"status": int(FitStatus.MAX_ITER), "objective": 0.0, "rows": 0}
        # the MLP executor walks its training arrays in memory order when it does not shuffle:
        # the shard is permuted into this epoch's order once, and each round trains on a slice
        permuted = _per_epoch(shard, "mlp_epoch", seed, lambda: _take(
            train, epoch_order(np.arange(n_train), seed, shuffle).astype(np.int64)))
        part = _slice(permuted, start, stop)
        ex = _mlp_executor(spec, part, False, threads)
        st.order = np.arange(part.n_rows, dtype=np.uint32)
        rows = part.n_rows
    status, objective = ex.run_epoch(st)
    return _result(status, objective, rows, st, spec.n_slots)


def _take(arrays, rows):
    X = arrays.dense if arrays.dense is not None else sp.csr_matrix(
        (arrays.values, arrays.indices, arrays.indptr), shape=(arrays.n_rows, arrays.n_features))
    return _cpu_mlp.MlpArrays(X[rows], None if arrays.Y is None else arrays.Y[rows],
                              None if arrays.labels is None else arrays.labels[rows])


def _slice(arrays, start, stop):
    X = arrays.dense if arrays.dense is not None else sp.csr_matrix(
        (arrays.values, arrays.indices, arrays.indptr), shape=(arrays.n_rows, arrays.n_features))
    return _cpu_mlp.MlpArrays(X[start:stop], None if arrays.Y is None else arrays.Y[start:stop],
                              None if arrays.labels is None else arrays.labels[start:stop])


# ---- gradients (sync_gradient) ------------------------------------------------------------------

def piece_bounds(n_rows, n_pieces, j):
    """Rows [start, stop) of piece j when n_rows are cut into n_pieces nearly equal pieces."""
    return (j * n_rows) // n_pieces, ((j + 1) * n_rows) // n_pieces


def gradient(spec, index, xb, yb, swb, params, seed, j, n_pieces, scale, threads):
    """(loss sum, summed gradient (float64; the MLP's scaled by `scale`), rows) of piece j of the
    shard's epoch order at `params`: this shard's part of global batch j."""
    shard = _shard(spec, index, xb, yb, swb)
    shuffle = bool(spec.records["driver"]["shuffle"][0]) and n_pieces > 1
    if spec.model == "linear":
        X, y, sw, train, val = _linear_problem(spec, shard, index)
        n_train = train.shape[0]
    else:
        train_arrays, _ = _mlp_problem(spec, shard, index)
        n_train = train_arrays.n_rows
        train = np.arange(n_train)
    if n_pieces <= 1:
        rows = np.ascontiguousarray(train, dtype=np.uint32)
    else:
        order = _per_epoch(shard, "order", seed, lambda: epoch_order(train, seed, shuffle))
        start, stop = piece_bounds(n_train, n_pieces, j)
        rows = order[start:stop]
    if rows.shape[0] == 0:
        return 0.0, None, 0
    dtype = np.dtype(spec.data.dtype)
    params = np.ascontiguousarray(params, dtype=dtype)
    if spec.model == "linear":
        ex = _linear_executor(spec, shard, index, n_train, False, threads)
        loss, grad = ex.gradient(params, rows)
    else:
        ex = _mlp_executor(spec, train_arrays, False, threads, shard=shard)
        loss, grad = ex.gradient(params, rows, float(scale))
        grad = grad.astype(np.float64)
    return float(loss), grad, int(rows.shape[0])


# ---- the start of a fresh fit -------------------------------------------------------------------

def start_stats(spec, index, xb, yb, swb):
    """What the client needs of the shard's training rows for the best-constant start
    (gdsolve/distributed/_start.py): sums where the optimum is a closed form, the weighted class
    counts (linear classifiers, MLP softmax), (weight, weighted sum of y) for the squared loss,
    (rows, column sums of the 0/1 or real targets) for the MLP's other outputs; the training
    targets and weights themselves for Huber and epsilon-insensitive, whose optimum needs a
    sort."""
    shard = _shard(spec, index, xb, yb, swb)
    if spec.model == "mlp":
        train, _ = _mlp_problem(spec, shard, index)
        if spec.loss == Loss.SOFTMAX:
            return np.bincount(train.labels, minlength=spec.n_outputs).astype(np.float64)
        return float(train.n_rows), np.asarray(train.Y, dtype=np.float64).sum(axis=0)
    _, y, sw, train, _ = _linear_problem(spec, shard, index)
    s = None if sw is None else np.asarray(sw[train], dtype=np.float64)
    if spec.classes is not None:
        return np.bincount(_class_indices(spec, shard)[train], weights=s,
                           minlength=len(spec.classes)).astype(np.float64)
    yt = np.asarray(y[train], dtype=np.float64)
    if spec.loss == Loss.SQUARED:
        return (float(train.shape[0]) if s is None else float(s.sum()),
                float(yt.sum()) if s is None else float((s * yt).sum()))
    return yt, s


# ---- validation statistics and the step size ----------------------------------------------------

def validation_stats(spec, index, xb, yb, swb, params):
    """Sums the client combines into the validation score (early stopping): for classifiers
    (weighted hits, weight total); for regressors (weight, sum w r^2, sum w y, sum w y^2) per
    output. None when the block holds no validation rows."""
    shard = _shard(spec, index, xb, yb, swb)
    dtype = np.dtype(spec.data.dtype)
    params = np.asarray(params, dtype=dtype)
    if spec.model == "linear":
        X, y, sw, train, val = _linear_problem(spec, shard, index)
        if val.shape[0] == 0:
            return None
        Xv = shard.X[val]
        K, d = spec.n_outputs, shard.X.shape[1]
        W = params[:K * d].reshape(K, d)
        z = np.asarray(Xv @ W.T) + params[K * d:]
        yv = y[val].astype(np.float64)
        w = np.ones(val.shape[0]) if sw is None else sw[val].astype(np.float64)
        if spec.classes is not None:
            hit = (z[:, 0] > 0) == (yv > 0) if K == 1 else np.argmax(z, axis=1) == yv
            return np.array([np.dot(w, hit), w.sum()])
        r = yv - z[:, 0].astype(np.float64)
        return np.array([[w.sum(), np.dot(w, r * r), np.dot(w, yv), np.dot(w, yv * yv)]])
    _, val = _mlp_problem(spec, shard, index)
    if val.n_rows == 0:
        return None
    out = _cpu_mlp.predict(np.asarray(spec.units, dtype=np.int64),
                           int(spec.records["model"]["activation"][0]), int(spec.loss), params, val)
    if not np.all(np.isfinite(out)):
        return np.array([np.nan])
    if spec.loss == Loss.SOFTMAX:
        return np.array([np.sum(np.argmax(out, axis=1) == val.labels), val.n_rows])
    if spec.loss == Loss.LOG:
        hit = np.all((out > 0.5) == (val.Y > 0.5), axis=1)
        return np.array([hit.sum(), val.n_rows])
    e = out.astype(np.float64) - val.Y
    yv = val.Y.astype(np.float64)
    n = np.full(yv.shape[1], float(val.n_rows))
    return np.stack([n, (e * e).sum(axis=0), yv.sum(axis=0), (yv * yv).sum(axis=0)], axis=1)


def _training_rows(spec, index, xb, yb, swb):
    """(X, sample weights or None) of the shard's training rows (validation rows left out)."""
    shard = _shard(spec, index, xb, yb, swb)
    _, _, sw, train, _ = _linear_problem(spec, shard, index)
    X = shard.X
    if train.shape[0] != X.shape[0]:
        X = X[train]
        sw = None if sw is None else sw[train]
    return X, sw


def gram_stats(spec, index, xb, yb, swb, fit_intercept):
    """(X' S X, column sums of S X, sum of S, rows) over the shard's training rows, float64: the
    client sums them into the Gram matrix whose largest eigenvalue sets the full-batch step."""
    from gdsolve.linear_model import _gram_and_colsum

    X, sw = _training_rows(spec, index, xb, yb, swb)
    gram, colsum = _gram_and_colsum(X, sw)
    total = float(X.shape[0] if sw is None else np.sum(sw, dtype=np.float64))
    return gram, colsum, total, int(X.shape[0])


def matvec_stats(spec, index, xb, yb, swb, v, fit_intercept):
    """X~' S X~ v over the shard's training rows (X~ = [X, 1] with an intercept), float64: one
    product of the Lanczos iteration for more than 2000 features."""
    X, sw = _training_rows(spec, index, xb, yb, swb)
    d = X.shape[1]
    z = np.asarray(X @ v[:d], dtype=np.float64).ravel() + (v[d] if fit_intercept else 0.0)
    if sw is not None:
        z *= sw
    out = np.empty(d + int(fit_intercept))
    out[:d] = np.asarray(X.T @ z).ravel()
    if fit_intercept:
        out[d] = z.sum()
    return out
