"""The client side of a distributed fit's data: Dask arrays or DataFrames in, one persisted
block (shard) per row chunk, each held by the worker that computed it; tasks over the shards
(gdsolve.distributed._worker) submitted next to their blocks and their small results gathered.
Nothing here moves a block: Dask schedules each task where its block lives (a loose worker
restriction to the block's holder), recomputes lost blocks from the graph and retries tasks.
Callers: gdsolve.distributed.linear, gdsolve.distributed.mlp, gdsolve.distributed._predict.
"""

import itertools
import uuid

import dask.array as da
import numpy as np
from distributed import futures_of, get_client, wait

_counter = itertools.count()


def resolve_client(client, name):
    """(Client, owned): the Client a fit runs on, the estimator's `client` (a Client, or a
    scheduler address: a Client of the fit's own, owned = True, closed at its end) or the active
    one."""
    if client is None:
        try:
            return get_client(), False
        except ValueError:
            raise ValueError(
                f"{name}: fitting on Dask collections needs a dask.distributed Client: start one "
                "(`from distributed import Client, LocalCluster; client = Client(LocalCluster())`"
                ") or pass client=... (a Client or a scheduler address); see docs/distributed.md"
            ) from None
    if isinstance(client, str):
        from distributed import Client

        return Client(client, set_as_default=False), True
    return client, False


def fit_on_shards(est, X, y, sample_weight, fit_body):
    """Shard X, y (and sample_weight) on the estimator's client and return
    fit_body(data, token). On any error the estimator is restored as it was before the call (no
    partial model); the shards are released and a Client of the fit's own is closed either way."""
    name = type(est).__name__
    client, owned = resolve_client(est.client, name)
    saved = dict(est.__dict__)
    token = uuid.uuid4().hex
    data = None
    try:
        data = ShardedData(client, X, y, sample_weight, name)
        return fit_body(data, token)
    except BaseException:
        est.__dict__.clear()
        est.__dict__.update(saved)
        raise
    finally:
        if data is not None:
            data.release(token)
        if owned:
            client.close()


def as_dask_array(obj, what, *, ndim=None, client=None):
    """A Dask array of `obj` (Dask arrays as they are; DataFrames / Series persisted, then with
    their partition lengths taken from the persisted partitions; NumPy arrays split later to
    match X)."""
    if obj is None:
        return None
    if hasattr(obj, "to_dask_array"):
        if client is not None:
            obj = client.persist(obj)
        obj = obj.to_dask_array(lengths=True)
    if not isinstance(obj, da.Array):
        return None if obj is None else np.asarray(obj)
    if ndim is not None and obj.ndim not in ndim:
        raise ValueError(f"{what} must be a {' or '.join(f'{n}-D' for n in ndim)} array, got "
                         f"{obj.ndim}-D with shape {obj.shape}")
    return obj


def feature_names(X):
    """feature_names_in_ of a Dask DataFrame (string column names), else None."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "to_dask_array"):
        return None
    names = np.asarray(list(columns), dtype=object)
    if len(names) and all(isinstance(c, str) for c in names):
        return names
    return None


class ShardedData:
    """X, y and sample_weight persisted on the cluster in matching row blocks.

    blocks[i] = (x, y, sw) futures of block i (sw None when unweighted); rows[i] its rows.
    Blocks without rows are left out."""

    def __init__(self, client, X, y, sample_weight, name):
        self.client = client
        self.name = name
        self.names = feature_names(X)
        X = as_dask_array(X, "X", ndim=(2,), client=client)
        if not isinstance(X, da.Array):
            raise ValueError(f"{name}: X must be a Dask array or DataFrame here")
        if y is None:
            raise ValueError(f"{name} requires y to be passed, but the target y is None.")
        y = as_dask_array(y, "y", ndim=(1, 2), client=client)
        sw = as_dask_array(sample_weight, "sample_weight", ndim=(1,), client=client)
        if X.numblocks[1] > 1:
            X = X.rechunk({1: -1})  # one block of columns: each task holds whole rows
        X, y, sw = (self._chunked_like(X, a, what) for a, what in
                    ((X, "X"), (y, "y"), (sw, "sample_weight")))
        if isinstance(y, da.Array) and y.ndim == 2 and y.numblocks[1] > 1:
            y = y.rechunk({1: -1})
        arrays = [a for a in (X, y, sw) if a is not None]
        persisted = client.persist(arrays)
        X, y = persisted[0], persisted[1]
        sw = persisted[2] if sw is not None else None
        if any(np.isnan(c) for a in persisted for c in a.chunks[0]):
            for a in persisted:
                a.compute_chunk_sizes()
            self._check_chunks(X, y, sw)
        self.X, self.y, self.sw = X, y, sw
        self.n_features = X.shape[1]
        self.dtype = X.dtype
        futures = {f.key: f for a in persisted for f in futures_of(a)}
        x_keys = [k[0] if isinstance(k, list) else k for k in X.__dask_keys__()]
        y_keys = [k[0] if isinstance(k, list) else k for k in y.__dask_keys__()]
        w_keys = (list(sw.__dask_keys__()) if sw is not None else [None] * len(x_keys))
        self.blocks, self.rows, self.index = [], [], []
        for i, (xk, yk, wk) in enumerate(zip(x_keys, y_keys, w_keys, strict=True)):
            n = int(X.chunks[0][i])
            if n == 0:
                continue
            self.blocks.append((futures[xk], futures[yk], None if wk is None else futures[wk]))
            self.rows.append(n)
            self.index.append(i)
        self.n_rows = int(sum(self.rows))
        if self.n_rows == 0:
            raise ValueError(f"Found array with 0 sample(s) (shape=(0, {self.n_features})) "
                             f"while a minimum of 1 is required by {name}.")
        self.holders = [None] * len(self.blocks)
        self.threads = [1] * len(self.blocks)
        self._persisted = persisted

    def _chunked_like(self, X, a, what):
        if a is None or a is X:
            return a
        if not isinstance(a, da.Array):  # a NumPy y or sample_weight: split as X's rows
            a = np.asarray(a)
            if a.shape[0] != X.shape[0] and not np.isnan(X.shape[0]):
                raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                                 f"[{X.shape[0]}, {a.shape[0]}]")
            chunks = (X.chunks[0],) + tuple((s,) for s in a.shape[1:])
            return da.from_array(a, chunks=chunks)
        self._check_chunks(X, a if what == "y" else None, a if what != "y" else None)
        return a

    def _check_chunks(self, X, y, sw):
        for a, what in ((y, "y"), (sw, "sample_weight")):
            if a is None or any(np.isnan(c) for c in a.chunks[0] + X.chunks[0]):
                continue
            if a.shape[0] != X.shape[0]:
                raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                                 f"[{X.shape[0]}, {a.shape[0]}]")
            if a.chunks[0] != X.chunks[0]:
                raise ValueError(
                    f"{self.name}: X and {what} must be split into the same row blocks (the "
                    f"chunks along axis 0): X has {X.chunks[0]}, {what} has {a.chunks[0]}. "
                    f"Rechunk one of them, e.g. {what}.rechunk({{0: X.chunks[0]}}).")

    # -- tasks over the shards ----------------------------------------------------------------

    def refresh_holders(self):
        """Which worker holds each block now (the tasks' placement hint), and the threads each
        task may use: the holder's threads shared by the blocks it holds."""
        who = self.client.who_has([b[0] for b in self.blocks])
        self.holders = [next(iter(who.get(b[0].key, ()) or ()), None) for b in self.blocks]
        nthreads = self.client.nthreads()
        per_worker = {}
        for h in self.holders:
            per_worker[h] = per_worker.get(h, 0) + 1
        self.threads = [max(1, nthreads.get(h, 1) // per_worker[h]) if h else 1
                        for h in self.holders]

    def submit(self, fn, spec, args_of, which=None, name="task"):
        """Futures of fn(spec, block index, x, y, sw, *args_of(k)) for the k-th shard of
        `which` (default all)."""
        which = range(len(self.blocks)) if which is None else which
        tag = uuid.uuid4().hex[:8]
        futures = []
        for k in which:
            x, y, sw = self.blocks[k]
            holder = self.holders[k]
            where = {"workers": [holder], "allow_other_workers": True} if holder else {}
            futures.append(self.client.submit(
                fn, spec, self.index[k], x, y, sw, *args_of(k),
                key=f"gdsolve-{name}-{tag}-{next(_counter)}", pure=False, **where))
        return futures

    def gather(self, futures):
        """The results of `futures` (small: parameters, gradients, statistics); Ctrl-C cancels
        them."""
        try:
            return self.client.gather(futures)
        except BaseException:
            self.client.cancel(futures)
            raise

    def run(self, fn, spec, args_of=lambda k: (), which=None, name="task"):
        return self.gather(self.submit(fn, spec, args_of, which, name))

    def wait(self):
        wait([b[0] for b in self.blocks])

    def release(self, token):
        """Drop the fit's worker caches; the persisted blocks go with the last reference."""
        from gdsolve.distributed import _worker

        try:
            self.client.run(_worker.release, token)
        except Exception:  # noqa: BLE001 - a worker gone at the end of a fit: nothing to drop
            pass
