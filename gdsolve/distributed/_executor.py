"""The data-parallel executor: the epoch driver's executor protocol (`run_epoch(state)`,
`score(state)`, `has_validation`) over a ShardedData, so gdsolve.engine.run drives a fit on a
Dask cluster exactly as it drives one on the CPU. The FitState lives on the client; the shards'
tasks (gdsolve.distributed._worker) run the CPU executors where the blocks are.

Two strategies (docs/distributed.md writes the formulas):

- local_sgd: each round, every shard trains from the current state with its CPU executor for
  one local epoch (or `sync_every` steps of it); the client averages the parameters, optimizer
  slots, averaged parameters and L1 ledger weighted by the rows each shard trained on, and takes
  the counters of the longest local trajectory (the schedule's clock).
- sync_gradient: every step, each shard returns the summed gradient of its part of the global
  batch (all its training rows for full batch); the client sums them and applies the model's
  compiled step (_core.linear_step / _core.mlp_step) once.

The model kind (linear, MLP) supplies a small `ops` object: its step, its objective, the score
from the shards' validation statistics. Callers: gdsolve.distributed.linear, .mlp.
"""

import math

import numpy as np

from gdsolve._codes import FitStatus
from gdsolve.distributed import _worker

_MASK = 0xFFFFFFFFFFFFFFFF


def splitmix64(x):
    """One splitmix64 output (driver/shuffle.h's generator) of the 64-bit state x + golden."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def shard_seed(epoch_seed, index):
    """The generator state a shard shuffles its rows with this epoch: derived from the
    FitState's generator and the block index, so any worker recomputes the same order."""
    return splitmix64((epoch_seed ^ splitmix64(index + 1)) & _MASK)


class ShardedExecutor:
    """One fit's executor over the shards. n_train / n_val: training / validation rows of each
    shard; batch: rows per step (0: full batch)."""

    def __init__(self, data, spec, ops, *, strategy, sync_every, batch, shuffle, n_train,
                 n_val):
        self.data = data
        self.spec = spec
        self.ops = ops
        self.strategy = strategy
        self.sync_every = int(sync_every or 0)
        self.batch = int(batch)
        self.shuffle = bool(shuffle)
        self.n_train = [int(n) for n in n_train]
        self.n_val = [int(n) for n in n_val]
        self.n_total = int(sum(self.n_train))
        self.has_validation = sum(self.n_val) > 0
        self.rounds = 0        # synchronisations so far (rounds or steps), for the records
        self.bytes_sent = 0    # payload bytes of the states sent to the shards

    # -- the protocol ---------------------------------------------------------------------------
    def run_epoch(self, state):
        work = state.copy()
        seed = int(work["rng"])
        self.data.refresh_holders()
        if self.strategy == "local_sgd":
            status, objective = self._local_epoch(work, seed)
        else:
            status, objective = self._sync_epoch(work, seed)
        if status != FitStatus.MAX_ITER:
            return int(status), objective
        if not (math.isfinite(objective) and np.all(np.isfinite(work.params))):
            return int(FitStatus.DIVERGED), objective
        work["rng"] = splitmix64(seed)  # the next epoch's shard orders
        _commit(work, state)
        return int(FitStatus.MAX_ITER), float(objective)

    def score(self, state):
        if not self.has_validation:
            return np.nan
        params = self.ops.score_params(state)
        which = [k for k, n in enumerate(self.n_val) if n > 0]
        stats = self.data.run(_worker.validation_stats, self.spec, lambda k: (params,), which,
                              name="score")
        return self.ops.score([s for s in stats if s is not None])

    # -- local_sgd ------------------------------------------------------------------------------
    def _n_rounds(self):
        if not self.sync_every or self.batch <= 0:
            return 1
        per_round = self.batch * self.sync_every
        return max(-(-n // per_round) for n in self.n_train)

    def _local_epoch(self, work, seed):
        loss, rows_total = 0.0, 0
        for r in range(self._n_rounds()):
            payload = self.ops.payload(work)
            self.bytes_sent += _nbytes(payload) * len(self.n_train)
            which = [k for k in range(len(self.n_train)) if self._round_rows(k, r) > 0]
            results = self.data.run(
                _worker.local_round, self.spec,
                lambda k, payload=payload, r=r: (payload, shard_seed(seed, self.data.index[k]),
                                                 r, self.data.threads[k]),
                which, name="round")
            self.rounds += 1
            done = [res for res in results if res["rows"] > 0]
            for res in done:
                if res["status"] != FitStatus.MAX_ITER:
                    return res["status"], res["objective"]
            if not done:
                continue
            _average(work, done, self.ops.averaged)
            loss += sum(res["objective"] * res["rows"] for res in done)
            rows_total += sum(res["rows"] for res in done)
        self.ops.end_local_epoch(work)
        return FitStatus.MAX_ITER, loss / max(rows_total, 1)

    def _round_rows(self, k, r):
        n = self.n_train[k]
        if not self.sync_every or self.batch <= 0:
            return n if r == 0 else 0
        per_round = self.batch * self.sync_every
        return max(0, min(n, (r + 1) * per_round) - r * per_round)

    # -- sync_gradient ----------------------------------------------------------------------------
    def _sync_epoch(self, work, seed):
        full = self.batch <= 0 or self.batch >= self.n_total
        steps = 1 if full else -(-self.n_total // self.batch)
        objective_sum = 0.0
        for j in range(steps):
            sizes = [_worker.piece_bounds(n, steps, j) for n in self.n_train]
            which = [k for k, (a, b) in enumerate(sizes) if b > a]
            count = sum(b - a for a, b in sizes)
            if count == 0:
                continue
            params = work.params.copy()
            self.bytes_sent += params.nbytes * len(which)
            results = self.data.run(
                _worker.gradient, self.spec,
                lambda k, params=params, j=j, count=count: (
                    params, shard_seed(seed, self.data.index[k]), j, steps, 1.0 / count,
                    self.data.threads[k]),
                which, name="gradient")
            self.rounds += 1
            loss = sum(res[0] for res in results)
            grad = np.zeros(work.params.shape[0])
            for res in results:
                if res[1] is not None:
                    grad += res[1]
            objective_sum += self.ops.step(work, grad, count, loss, full)
            if not np.isfinite(objective_sum):
                return FitStatus.DIVERGED, objective_sum
        objective = self.ops.end_sync_epoch(work, objective_sum, self.n_total, full)
        return FitStatus.MAX_ITER, objective


def _nbytes(payload):
    arrays, scalars = payload
    total = scalars.nbytes
    for value in arrays.values():
        if isinstance(value, list):
            total += sum(v.nbytes for v in value)
        elif value is not None:
            total += value.nbytes
    return total


def _average(work, results, names):
    """Row-weighted means of the shards' arrays into `work`; the counters of the shard that
    trained on the most rows (the first of those)."""
    weights = np.array([res["rows"] for res in results], dtype=np.float64)
    weights /= weights.sum()
    for name in names:
        if name == "slots":
            for s in range(len(results[0]["arrays"]["slots"])):
                target = getattr(work, f"slot{s}")
                target[...] = sum(w * res["arrays"]["slots"][s].astype(np.float64)
                                  for w, res in zip(weights, results, strict=True))
            continue
        target = getattr(work, name)
        if target is None:
            continue
        target[...] = sum(w * res["arrays"][name].astype(np.float64)
                          for w, res in zip(weights, results, strict=True))
    clock = int(np.argmax([res["rows"] for res in results]))
    rng = work["rng"]
    work.scalars[...] = results[clock]["scalars"]
    work["rng"] = rng


def _commit(work, state):
    for name in ("params", "slot0", "slot1", "slot2", "avg_params", "l1_q"):
        src = getattr(work, name)
        if src is not None:
            np.copyto(getattr(state, name), src)
    state.scalars[...] = work.scalars
