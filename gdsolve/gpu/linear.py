"""The GPU executor of the linear model: the driver's executor protocol (run_epoch, score,
has_validation) over CuPy arrays, with the products on cuBLAS / cuSPARSE and everything else in
the kernels of gdsolve/gpu/kernels/linear.cu, which only call model/linear.h. Written against a
Runtime (gdsolve.gpu.device), so the same code runs the same kernels on NumPy arrays on the CPU
(tests/test_gpu_path.py). Called by gdsolve.linear_model for device="cuda".

Per batch: gather the batch's rows (dense), Z = X_b W' + b (cuBLAS), the row rule on Z (loss,
and Z becomes s_i clamp(dloss/dz)), G = [Z' X_b, sum Z] (cuBLAS), then the step: one thread
for its constants (advancing the FitScalars held on the device), one per parameter. No host
synchronisation inside an epoch: the per-batch loss sums stay on the device and are read once at
its end; on a GPU, dense epochs are recorded once as a CUDA graph and replayed.

Sophia: on the steps that refresh its Hessian estimate (known on the host, one step a batch) the
outputs Z are kept before the row rule overwrites them; after the step's constants (which count
the step the draws are keyed on) one thread per row writes its factors (math/sophia.h: GNB
deltas at labels drawn as the CPU draws them, or the exact curvature, times s_i), cuBLAS sums
them against X (GNB) or X * X (exact; dense by blocks, sparse from X * X kept once), and the
estimate's EMA runs before the step kernel. One graph is recorded per pattern of refreshes.
"""

import numpy as np

from gdsolve import _core, _structs
from gdsolve._codes import FitStatus, HessianEstimator, Loss
from gdsolve._codes import Optimizer as OptimizerCode
from gdsolve.gpu import backend
from gdsolve.gpu.graphs import EpochGraph

# Mixed precision, full batch: the f16/bf16 rows are converted to float32 a block at a time.
BLOCK_ROWS = 16384


def _upload(rt, dev, host):
    if rt.emulated:
        np.copyto(dev, host)
    else:
        dev.set(np.ascontiguousarray(host))


def begin_epoch(ex, state):
    """What every GPU epoch starts with (the linear and MLP executors, `ex`): the epoch's order
    shuffled on the host by the CPU's generator, then the order, the FitScalars, the parameters
    and the optimizer slots uploaded; for Sophia the draws' key (the generator as the epoch
    starts, before its shuffle, as the CPU's) and the epoch's refreshing batches. Returns the
    host copies (order, scalars) that finish_epoch commits."""
    rt = ex.rt
    order = state.order.copy()
    scalars = state.scalars.copy()
    if ex.shuffles:
        _core.shuffle_order(order, scalars)
    _upload(rt, ex.order, order)
    _upload(rt, ex.scalars, scalars.view(np.uint8))
    _upload(rt, ex.P, state.params)
    for dev, host in zip(ex.slots, (state.slot0, state.slot1, state.slot2), strict=True):
        _upload(rt, dev, host)
    if ex.sophia:
        _upload(rt, ex.key, state.scalars["rng"].astype(np.uint64))
        ex.refresh = sophia_refreshing_batches(ex.optimizer, state, ex.n_batches)
    return order, scalars


def finish_epoch(ex, state, order, scalars):
    """A completed epoch into `state`: the parameters, the slots and the device's FitScalars,
    with the generator where the host's shuffle left it, and the epoch's order."""
    rt = ex.rt
    state.params[...] = rt.asnumpy(ex.P)
    for dev, host in zip(ex.slots, (state.slot0, state.slot1, state.slot2), strict=True):
        host[...] = rt.asnumpy(dev)
    rng = scalars["rng"][0]
    state.scalars.view(np.uint8)[...] = rt.asnumpy(ex.scalars)
    state.scalars["rng"] = rng
    state.order[...] = order


def sophia_refreshing_batches(optimizer, state, n_batches):
    """The epoch's batches whose step refreshes Sophia's estimate (math/sophia.h's
    sophia_refresh of step t; batch b is step optimizer_step + b + 1: one step a batch)."""
    t0 = int(state.scalars["optimizer_step"][0])
    return frozenset(b for b in range(n_batches) if _core.sophia_refresh(optimizer, t0 + b + 1))


class GpuLinearExecutor:
    """The GPU executor of one linear fit. X: a dense (n, d) array (NumPy or CuPy; float32 /
    float64, or held as float16 / bfloat16 with mixed precision) or a CSR matrix (scipy.sparse
    or cupyx.scipy.sparse); y, sample_weight (or None) of n rows; the training rows are the
    FitState's order (n_train of them); val_rows: the validation rows (or None). The records are
    the CPU executor's (gdsolve._structs)."""

    def __init__(self, model, optimizer, schedule, driver, X, y, sample_weight, n_train,
                 val_rows=None, *, runtime, storage=None):
        rt = self.rt = runtime
        xp = rt.xp
        self.model, self.optimizer, self.schedule, self.driver = model, optimizer, schedule, driver
        self.K = int(model["n_outputs"][0])
        self.loss = int(model["loss"][0])
        self.sparse = rt.sparse.issparse(X)
        compute = np.dtype(np.float32) if storage is not None else np.dtype(X.dtype)
        if compute not in (np.float32, np.float64):
            raise ValueError(f"GPU fits run in float32 or float64, got X of dtype {X.dtype}")
        self.dtype = compute
        n_rows, d = X.shape
        self.d, self.n_rows, self.n_train = d, n_rows, int(n_train)
        self.n_w = self.K * d
        self.n_all = self.n_w + self.K
        batch = int(driver["batch_size"][0])
        self.full = batch <= 0 or batch >= self.n_train
        self.batch = self.n_train if self.full else batch
        self.shuffles = bool(driver["shuffle"][0]) and not self.full
        self.averaging = int(model["average_start"][0]) > 0
        if self.sparse:
            self.X = rt.sparse.csr_matrix(X, dtype=compute)
        else:
            self.X = xp.ascontiguousarray(xp.asarray(X), dtype=storage or compute)
        self.storage = storage
        self.y = xp.asarray(y, dtype=compute)
        self.sw = None if sample_weight is None else xp.asarray(sample_weight, dtype=compute)
        self.val_rows = None if val_rows is None or len(val_rows) == 0 else xp.asarray(val_rows)
        self.has_validation = self.val_rows is not None
        self.module = rt.compile("linear", compute)
        # device buffers, allocated once: their addresses are what a captured epoch replays
        B, K = self.batch, self.K
        self.P = xp.zeros(self.n_all, compute)
        self.slots = [xp.zeros(self.n_all, compute) for _ in range(3)]
        self.A = xp.zeros(self.n_all, compute) if self.averaging else None
        self.G = xp.zeros(self.n_all, compute)
        self.Z = xp.zeros((B, K), compute)
        self.yb = xp.zeros(B, compute)
        self.swb = None if self.sw is None else xp.zeros(B, compute)
        self.loss_rows = xp.zeros(B, np.float64)
        self.n_batches = -(-self.n_train // B)
        self.batch_loss = xp.zeros(self.n_batches, np.float64)
        self.penalty = xp.zeros(1, np.float64)
        self.order = xp.zeros(self.n_train, np.uint32)
        self.scalars = xp.zeros(_structs.dtype("FitScalars").itemsize, np.uint8)
        self.plan = xp.zeros(_core.linear_step_plan_size(), np.uint8)
        if not self.sparse and not self.full:  # a mini-batch's gathered rows
            self.Xb = xp.zeros((B, d), compute)
            self.stage = xp.zeros((B, d), storage) if storage is not None else None
        elif not self.sparse and storage is not None:  # full batch, converted by blocks
            self.Xb = xp.zeros((min(B, BLOCK_ROWS), d), compute)
            self.part = xp.zeros((K, d), compute)
        self.graph = EpochGraph(rt)
        self.train_view = None  # full batch: the training rows of X, gathered once
        self.sophia = int(optimizer["code"][0]) == OptimizerCode.SOPHIA
        self.refresh = frozenset()
        if self.sophia:
            self._sophia_buffers(X, storage)

    def _sophia_buffers(self, X, storage):
        xp, dt, B, K, d = self.rt.xp, self.dtype, self.batch, self.K, self.d
        self.exact = (int(self.optimizer["hessian_estimator"][0])
                      == HessianEstimator.EXACT)
        self.Zs = xp.zeros((B, K), dt)  # the outputs, kept for the draws
        self.R = xp.zeros((B, K), dt)
        self.H = xp.zeros(self.n_all, dt)
        self.key = xp.zeros(1, np.uint64)
        self.X_sq = None
        if self.sparse:
            if self.exact:  # X * X, once per fit (sparse epochs allocate anyway)
                self.X_sq = self.X.multiply(self.X).tocsr()
        elif not self.full:
            if self.exact:
                self.Xsq = xp.zeros((B, d), dt)
        elif self.exact or storage is not None:  # full batch: by blocks of rows
            self.hblk = xp.zeros((min(B, BLOCK_ROWS), d), dt)
            self.hpart = xp.zeros((K, d), dt)

    # ---- the epoch ----------------------------------------------------------------------------

    def run_epoch(self, state):
        rt, xp = self.rt, self.rt.xp
        order, scalars = begin_epoch(self, state)
        if self.averaging:
            _upload(rt, self.A, state.avg_params)
        if self.full and self.train_view is None:
            self.train_view = self._train_rows(order)
            if self.sophia and self.X_sq is not None:  # sparse, exact: X * X of those rows
                whole = self.train_view[0] is self.X
                self.train_sq = self.X_sq if whole else self.X_sq[xp.asarray(order)]
        self.graph.run(self._enqueue_epoch, capturable=not self.sparse, key=self.refresh)
        loss_sum = float(rt.asnumpy(self.batch_loss).sum())
        if not self.full:  # the penalty at the epoch's end (full batch: at its start, above)
            self._penalty()
        objective = loss_sum / self.n_train + float(rt.asnumpy(self.penalty)[0])
        if not (np.isfinite(objective) and bool(xp.isfinite(self.P).all())):
            return int(FitStatus.DIVERGED), objective
        finish_epoch(self, state, order, scalars)
        if self.averaging:
            state.avg_params[...] = rt.asnumpy(self.A)
        return int(FitStatus.MAX_ITER), objective

    def _train_rows(self, order):
        """Full batch: X's training rows in the (fixed) order, as one array (X itself when they
        are all of its rows in memory order)."""
        if len(order) == self.n_rows and np.array_equal(order, np.arange(self.n_rows)):
            return self.X, self.y, self.sw
        rows = self.rt.xp.asarray(order)
        return (self.X[rows], self.y[rows], None if self.sw is None else self.sw[rows])

    def _enqueue_epoch(self):
        """Every batch of the epoch: the device work only (capturable)."""
        for b in range(self.n_batches):
            start = b * self.batch
            count = min(self.batch, self.n_train - start)
            self._batch(b, start, count)

    def _batch(self, b, start, count):
        xp, m = self.rt.xp, self.module
        Z = self.Z[:count]
        if self.full:
            X, y, sw = self.train_view
        else:
            rows = self.order[start:start + count]
            X, y, sw = self._gather(rows, count)
        W = self.P[:self.n_w].reshape(self.K, self.d)
        bias = self.P[self.n_w:]
        if self.storage is not None and self.full:
            self._blocked_outputs(X, W, Z)
        elif self.sparse:
            Z[...] = X @ W.T
        else:
            xp.matmul(X, W.T, out=Z)
        xp.add(Z, bias, out=Z)
        refresh = b in self.refresh
        if refresh:
            xp.copyto(self.Zs[:count], Z)
        grid, block = backend.launch_shape(count)
        m.kernel("linear_row_loss_kernel")(
            grid, block, (self.model, Z, y, sw, self.loss_rows[:count], np.int64(count)))
        xp.sum(self.loss_rows[:count], out=self.batch_loss[b:b + 1].reshape(()))
        Gw = self.G[:self.n_w].reshape(self.K, self.d)
        if self.storage is not None and self.full:
            self._blocked_gradient(X, Z, Gw)
        elif self.sparse:
            Gw[...] = (X.T @ Z).T
        else:
            xp.matmul(Z.T, X, out=Gw)
        xp.sum(Z, axis=0, out=self.G[self.n_w:])
        if self.full:  # the objective's penalty at the epoch's start
            self._penalty()
        m.kernel("linear_step_begin_kernel")(
            (1,), (1,), (self.model, self.optimizer, self.schedule, self.scalars,
                         np.int64(count), np.int64(self.d), self.G, self.plan))
        if refresh:
            self._sophia_refresh(X, sw, start, count)
        grid, block = backend.launch_shape(self.n_all)
        s0, s1, s2 = self.slots
        m.kernel("linear_step_kernel")(
            grid, block, (self.model, self.optimizer, self.plan, np.int64(self.d), self.P,
                          self.G, s0, s1, s2, self.A, np.int64(self.n_all)))

    def _sophia_refresh(self, X, sw, start, count):
        """h <- beta2 h + (1 - beta2) hhat from the batch's rows X (as the gradient saw them)
        at the parameters before the step."""
        xp, m = self.rt.xp, self.module
        rows = self.order[start:start + count]
        R = self.R[:count]
        grid, block = backend.launch_shape(count)
        m.kernel("linear_sophia_rows_kernel")(
            grid, block, (self.model, self.optimizer, self.Zs[:count], sw, self.key,
                          self.scalars, rows, R, np.int64(count)))
        Hw = self.H[:self.n_w].reshape(self.K, self.d)
        if self.sparse:
            Xs = X
            if self.exact:
                Xs = self.train_sq if self.full else self.X_sq[rows]
            Hw[...] = (Xs.T @ R).T
        elif not self.full:
            if self.exact:
                xp.multiply(X, X, out=self.Xsq[:count])
                X = self.Xsq[:count]
            xp.matmul(R.T, X, out=Hw)
        elif self.exact or self.storage is not None:
            Hw[...] = 0
            for a in range(0, X.shape[0], BLOCK_ROWS):
                e = min(a + BLOCK_ROWS, X.shape[0])
                blk = self.hblk[:e - a]
                xp.copyto(blk, X[a:e], casting="unsafe")
                if self.exact:
                    xp.multiply(blk, blk, out=blk)
                xp.matmul(R[a:e].T, blk, out=self.hpart)
                xp.add(Hw, self.hpart, out=Hw)
        else:
            xp.matmul(R.T, X, out=Hw)
        xp.sum(R, axis=0, out=self.H[self.n_w:])
        grid, block = backend.launch_shape(self.n_all)
        m.kernel("linear_sophia_hessian_kernel")(
            grid, block, (self.model, self.optimizer, self.H, float(count), np.int64(self.d),
                          self.slots[1]))

    def _gather(self, rows, count):
        xp = self.rt.xp
        xp.take(self.y, rows, out=self.yb[:count])
        sw = None
        if self.sw is not None:
            xp.take(self.sw, rows, out=self.swb[:count])
            sw = self.swb[:count]
        if self.sparse:
            return self.X[rows], self.yb[:count], sw
        if self.storage is None:
            xp.take(self.X, rows, axis=0, out=self.Xb[:count])
        else:  # rows read in their 2-byte storage, converted once to float32
            xp.take(self.X, rows, axis=0, out=self.stage[:count])
            xp.copyto(self.Xb[:count], self.stage[:count], casting="unsafe")
        return self.Xb[:count], self.yb[:count], sw

    def _blocked_outputs(self, X, W, Z):
        xp = self.rt.xp
        for a in range(0, X.shape[0], BLOCK_ROWS):
            e = min(a + BLOCK_ROWS, X.shape[0])
            blk = self.Xb[:e - a]
            xp.copyto(blk, X[a:e], casting="unsafe")
            xp.matmul(blk, W.T, out=Z[a:e])

    def _blocked_gradient(self, X, Z, Gw):
        xp = self.rt.xp
        part = self.part
        Gw[...] = 0
        for a in range(0, X.shape[0], BLOCK_ROWS):
            e = min(a + BLOCK_ROWS, X.shape[0])
            blk = self.Xb[:e - a]
            xp.copyto(blk, X[a:e], casting="unsafe")
            xp.matmul(Z[a:e].T, blk, out=part)
            xp.add(Gw, part, out=Gw)

    def _penalty(self):
        self.module.kernel("linear_penalty_kernel")(
            (1,), (1,), (self.model, self.P, np.int64(self.d), self.penalty))

    # ---- validation ---------------------------------------------------------------------------

    def score(self, state):
        """Validation score (accuracy, or R^2; sample-weighted) at the state's model (the
        averaged one when averaging), as the CPU executor's."""
        if not self.has_validation:
            return np.nan
        xp = self.rt.xp
        averaged = self.averaging and state["avg_count"] > 0
        params = xp.asarray(state.avg_params if averaged else state.params, dtype=self.dtype)
        rows = self.val_rows
        X = self.X[rows]
        if self.storage is not None:
            X = X.astype(self.dtype)
        Z = X @ params[:self.n_w].reshape(self.K, self.d).T + params[self.n_w:]
        y = self.y[rows].astype(np.float64)
        w = xp.ones(y.shape[0]) if self.sw is None else self.sw[rows].astype(np.float64)
        wsum = float(w.sum())
        if wsum <= 0.0:
            return 0.0
        if self.loss in (Loss.LOG, Loss.SOFTMAX):
            if self.K == 1:
                hit = (Z[:, 0] > 0) == (y > 0)
            else:
                hit = xp.argmax(Z, axis=1) == y.astype(np.int64)
            return float((w * hit).sum()) / wsum
        r = y - Z[:, 0].astype(np.float64)
        sse = float((w * r * r).sum())
        wy, wyy = float((w * y).sum()), float((w * y * y).sum())
        sst = wyy - wy * wy / wsum
        if sst <= 0.0:
            return 1.0 if sse == 0.0 else 0.0
        return 1.0 - sse / sst
