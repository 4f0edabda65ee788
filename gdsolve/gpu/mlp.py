"""The GPU executor of the dense MLPs: the driver's executor protocol over CuPy arrays. The layer
structure is the CPU executor's (cpu/mlp_executor.h): per layer one product on cuBLAS and one
fused intercept + activation pass; the output layer's loss and delta, the activation derivatives
and the optimizer step are the kernels of gdsolve/gpu/kernels/mlp.cu and activation.cu, which
only call model/mlp.h and math/activations.h. Written against a Runtime (gdsolve.gpu.device), so
the same code runs the same kernels on NumPy arrays on the CPU (tests/test_gpu_path.py). Called
by gdsolve.neural_network for device="cuda".

Parameters are the CPU's flat layout: every coefficient matrix (fan_in x fan_out, row-major),
then every intercept vector. No allocation and no host synchronisation inside an epoch; on a GPU
an epoch is recorded once as a CUDA graph and replayed.

Muon (model/mlp.h, math/muon.h): on each hidden matrix the momentum kernel, the Newton-Schulz
iteration's three products per step on cuBLAS with its combinations in a kernel, into buffers
allocated once for the largest matrix, then the update kernel; the companion rule steps the tail
(output matrix, intercepts) through the element step of every other rule. Sophia: on the steps
that refresh its Hessian estimate (known on the host: the step counter advances once a batch)
the logits are kept, the GNB deltas at labels drawn as the CPU draws them (math/sophia.h) go
through a second backward pass, and the estimate's EMA runs before the step kernel; an epoch's
graph is recorded per pattern of refreshing batches.
"""

import numpy as np

from gdsolve import _core, _structs
from gdsolve._codes import Activation, FitStatus, Loss
from gdsolve._codes import Optimizer as OptimizerCode
from gdsolve.gpu import backend
from gdsolve.gpu.graphs import EpochGraph
from gdsolve.gpu.linear import begin_epoch, finish_epoch


def _layout(units):
    """(coefficient offsets, intercept offsets, n_coef, n_params) of the flat layout."""
    coef, bias, off = [], [], 0
    for fan_in, fan_out in zip(units[:-1], units[1:], strict=True):
        coef.append(off)
        off += fan_in * fan_out
    n_coef = off
    for fan_out in units[1:]:
        bias.append(off)
        off += fan_out
    return coef, bias, n_coef, off


def logits(runtime, units, activation, params, X, activations=None):
    """The network's output layer before its activation, for the rows of X (device arrays)."""
    activations = activations or runtime.compile("activation", params.dtype)
    coef, bias, _, _ = _layout(units)
    Z = X
    for layer, (fan_in, fan_out) in enumerate(zip(units[:-1], units[1:], strict=True)):
        W = params[coef[layer]:coef[layer] + fan_in * fan_out].reshape(fan_in, fan_out)
        Z = Z @ W + params[bias[layer]:bias[layer] + fan_out]
        if layer + 2 < len(units):
            grid, block = backend.launch_shape(Z.size)
            activations.kernel("activation_forward_kernel")(
                grid, block, (np.int64(activation), Z, Z, np.int64(Z.size)))
    return Z


def predict_output(runtime, units, activation, loss, params, X):
    """The network's outputs on the device: probabilities for LOG / SOFTMAX, else the values."""
    xp = runtime.xp
    Z = logits(runtime, units, activation, params, X)
    if loss == Loss.SOFTMAX:
        Z = xp.exp(Z - Z.max(axis=1, keepdims=True))
        return Z / Z.sum(axis=1, keepdims=True)
    if loss == Loss.LOG:
        return 1.0 / (1.0 + xp.exp(-Z))
    return Z


class NewtonSchulz:
    """math/muon.h's newton_schulz on the device for matrices of the given (R, C) shapes:
    buffers for the largest, allocated once (two iterates R x C, the Gram matrix and its
    polynomial m x m with m = min(R, C), the squares of U); the products on cuBLAS (the wide
    orientation through transposes, as the CPU's), the normalisation and the combinations in
    mlp.cu's kernels. `optimizer`: Muon's OptimizerConfig record."""

    def __init__(self, runtime, module, optimizer, shapes):
        xp, dt = runtime.xp, module.dtype
        big = max((r * c for r, c in shapes), default=0)
        square = max((min(r, c) ** 2 for r, c in shapes), default=0)
        self.xp, self.module, self.optimizer = xp, module, optimizer
        self.x = [xp.zeros(big, dt), xp.zeros(big, dt)]  # x[0][:R*C] takes U
        self.sq = xp.zeros(big, np.float64)  # U's squares (the momentum kernel writes them)
        self.gram = xp.zeros(square, dt)
        self.poly = xp.zeros(square, dt)
        self.norm = xp.zeros(1, np.float64)
        o = optimizer
        self.coefficients = (float(o["ns_a"][0]), float(o["ns_b"][0]), float(o["ns_c"][0]))
        self.steps = int(o["ns_steps"][0])

    def orthogonalise(self, R, C):
        """U = x[0][:R*C] (row-major R x C, its squares in sq) to its orthogonalisation;
        returns the flat view that holds it."""
        xp, m = self.xp, self.module
        n = R * C
        U = self.x[0][:n]
        grid, block = backend.launch_shape(n)
        xp.sum(self.sq[:n], out=self.norm.reshape(()))
        m.kernel("muon_normalize_kernel")(grid, block, (self.optimizer, self.norm, U,
                                                        np.int64(n)))
        tall = R > C
        k = C if tall else R
        gram = self.gram[:k * k].reshape(k, k)
        poly = self.poly[:k * k].reshape(k, k)
        a, b, c = self.coefficients
        combine = m.kernel("muon_combine_kernel")
        gk, bk = backend.launch_shape(k * k)
        X, Y = U.reshape(R, C), self.x[1][:n].reshape(R, C)
        for _ in range(self.steps):
            # A = X X' (wide) or X' X (tall); B = b A + c A A; X <- a X + B X (or X B')
            if tall:
                xp.matmul(X.T, X, out=gram)
            else:
                xp.matmul(X, X.T, out=gram)
            xp.matmul(gram, gram, out=poly)
            combine(gk, bk, (b, gram, c, poly, poly, np.int64(k * k)))
            if tall:
                xp.matmul(X, poly.T, out=Y)
            else:
                xp.matmul(poly, X, out=Y)
            combine(grid, block, (a, X, 1.0, Y, Y, np.int64(n)))
            X, Y = Y, X
        return X.reshape(n)


class GpuMlpExecutor:
    """The GPU executor of one MLP fit: layer sizes `units`, the training data (X dense (n, d),
    targets Y (n, k) for SQUARED / LOG, or labels (n,) int for SOFTMAX), the validation data
    (or None), the records of the CPU executor. With `storage` (float16 / bfloat16) X is held in
    that dtype on the device and each batch is converted to float32 once, after its gather."""

    def __init__(self, units, model, optimizer, schedule, driver, train, val=None, *, runtime,
                 storage=None, companion=None):
        rt = self.rt = runtime
        xp = rt.xp
        X, Y, labels = train
        if rt.sparse.issparse(X):
            raise ValueError("GPU MLPs take dense X; convert the sparse matrix with .toarray() "
                             "or fit on the CPU (device='cpu')")
        self.units = [int(u) for u in units]
        self.n_layers = len(self.units) - 1
        self.model, self.optimizer, self.schedule, self.driver = model, optimizer, schedule, driver
        self.activation = int(model["activation"][0])
        self.loss = int(model["loss"][0])
        compute = np.dtype(np.float32) if storage is not None else np.dtype(X.dtype)
        if compute not in (np.float32, np.float64):
            raise ValueError(f"GPU fits run in float32 or float64, got X of dtype {X.dtype}")
        self.dtype, self.storage = compute, storage
        self.n_train = int(X.shape[0])
        self.k = self.units[-1]
        self.coef_offset, self.bias_offset, self.n_coef, self.n_params = _layout(self.units)
        B = int(driver["batch_size"][0])
        self.batch = max(1, min(B, self.n_train))
        self.shuffles = bool(driver["shuffle"][0])
        self.X = xp.ascontiguousarray(xp.asarray(X), dtype=storage or compute)
        self.Y = None if Y is None else xp.ascontiguousarray(xp.asarray(Y), dtype=compute)
        self.labels = None if labels is None else xp.ascontiguousarray(xp.asarray(labels),
                                                                       dtype=np.int32)
        self.val = val
        self.has_validation = val is not None and val[0].shape[0] > 0
        if self.has_validation:
            Xv, Yv, lv = val
            self.val = (xp.asarray(Xv, dtype=compute),
                        None if Yv is None else xp.asarray(Yv, dtype=np.float64),
                        None if lv is None else xp.asarray(lv))
        self.module = rt.compile("mlp", compute)
        self.activations = rt.compile("activation", compute)
        # buffers, allocated once
        nb, d = self.batch, self.units[0]
        self.P = xp.zeros(self.n_params, compute)
        self.slots = [xp.zeros(self.n_params, compute) for _ in range(3)]
        self.G = xp.zeros(self.n_params, compute)
        self.a0 = xp.zeros((nb, d), compute)
        self.stage = xp.zeros((nb, d), storage) if storage is not None else None
        self.act = [None] + [xp.zeros((nb, u), compute) for u in self.units[1:]]
        self.delta = [None] + [xp.zeros((nb, u), compute) for u in self.units[1:-1]] + [None]
        self.Yb = None if self.Y is None else xp.zeros((nb, self.k), compute)
        self.lb = None if self.labels is None else xp.zeros(nb, np.int32)
        self.loss_rows = xp.zeros(nb, np.float64)
        self.n_batches = -(-self.n_train // nb)
        self.batch_loss = xp.zeros(self.n_batches, np.float64)
        self.batch_sqw = xp.zeros(self.n_batches, np.float64)
        self.w_sq = xp.zeros(self.n_params, np.float64)
        self.g_sq = xp.zeros(self.n_params, np.float64)
        self.sqg = xp.zeros(1, np.float64)
        self.order = xp.zeros(self.n_train, np.uint32)
        self.scalars = xp.zeros(_structs.dtype("FitScalars").itemsize, np.uint8)
        self.plan = xp.zeros(_core.mlp_step_plan_size(compute), np.uint8)
        self.graph = EpochGraph(rt)
        code = int(optimizer["code"][0])
        self.muon = code == OptimizerCode.MUON
        self.sophia = code == OptimizerCode.SOPHIA
        self.refresh = frozenset()  # Sophia: the epoch's batches that refresh the estimate
        if self.muon:
            if companion is None:
                raise ValueError("Muon on the GPU needs its companion rule's OptimizerConfig")
            self.companion = companion
            self._muon_buffers()
        if self.sophia:
            self.logits = xp.zeros((nb, self.k), compute)
            self.G_drawn = xp.zeros(self.n_params, compute)
            self.key = xp.zeros(1, np.uint64)

    def _muon_buffers(self):
        # model/mlp.h's mlp_muon_layer: every layer but the output layer
        self.muon_layers = list(range(self.n_layers - 1))
        shapes = [(self.units[l], self.units[l + 1]) for l in self.muon_layers]
        self.newton_schulz = NewtonSchulz(self.rt, self.module, self.optimizer, shapes)
        self.muon_plan = self.rt.xp.zeros(_core.mlp_muon_plan_size(), np.uint8)

    def _W(self, params, layer):
        fan_in, fan_out = self.units[layer], self.units[layer + 1]
        start = self.coef_offset[layer]
        return params[start:start + fan_in * fan_out].reshape(fan_in, fan_out)

    def _b(self, params, layer):
        start = self.bias_offset[layer]
        return params[start:start + self.units[layer + 1]]

    # ---- the epoch ----------------------------------------------------------------------------

    def run_epoch(self, state):
        rt, xp = self.rt, self.rt.xp
        order, scalars = begin_epoch(self, state)
        self.graph.run(self._enqueue_epoch, key=self.refresh)
        alpha = float(self.model["alpha"][0])
        epoch_sum = (float(rt.asnumpy(self.batch_loss).sum())
                     + 0.5 * alpha * float(rt.asnumpy(self.batch_sqw).sum()))
        objective = epoch_sum / self.n_train
        if not (np.isfinite(objective) and bool(xp.isfinite(self.P).all())):
            return int(FitStatus.DIVERGED), objective
        finish_epoch(self, state, order, scalars)
        state["t"] = state["t"] + self.n_train  # scikit-learn's MLP: t advances once per epoch
        return int(FitStatus.MAX_ITER), objective

    def _enqueue_epoch(self):
        for b in range(self.n_batches):
            start = b * self.batch
            self._batch(b, start, min(self.batch, self.n_train - start))

    def _forward(self, params, a0, count, acts):
        """Hidden activations into acts[1..L-1]; the logits into acts[L] (rows 0..count)."""
        xp, m = self.rt.xp, self.module
        inp = a0
        for layer in range(self.n_layers):
            out = acts[layer + 1][:count]
            xp.matmul(inp, self._W(params, layer), out=out)
            code = self.activation if layer + 1 < self.n_layers else int(Activation.IDENTITY)
            grid, block = backend.launch_shape(out.size)
            m.kernel("mlp_bias_activation_kernel")(
                grid, block, (np.int64(code), out, self._b(params, layer), np.int64(count),
                              np.int64(out.shape[1])))
            inp = out
        return inp

    def _batch(self, b, start, count):
        xp, m = self.rt.xp, self.module
        rows = self.order[start:start + count]
        a0 = self.a0[:count]
        if self.storage is None:
            xp.take(self.X, rows, axis=0, out=a0)
        else:
            xp.take(self.X, rows, axis=0, out=self.stage[:count])
            xp.copyto(a0, self.stage[:count], casting="unsafe")
        Y = labels = None
        if self.Y is not None:
            Y = self.Yb[:count]
            xp.take(self.Y, rows, axis=0, out=Y)
        if self.labels is not None:
            labels = self.lb[:count]
            xp.take(self.labels, rows, out=labels)
        Z = self._forward(self.P, a0, count, self.act)
        refresh = b in self.refresh
        if refresh:  # Sophia's draws read the logits the loss kernel overwrites
            xp.copyto(self.logits[:count], Z)
        grid, block = backend.launch_shape(count)
        m.kernel("mlp_output_kernel")(
            grid, block, (self.model, Z, Y, labels, 1.0 / count, self.loss_rows[:count],
                          np.int64(count), np.int64(self.k)))
        xp.sum(self.loss_rows[:count], out=self.batch_loss[b:b + 1].reshape(()))
        self._backward(Z, a0, count, self.G)
        n = self.n_params
        grid, block = backend.launch_shape(n)
        m.kernel("mlp_step_squares_kernel")(
            grid, block, (self.model, self.P, self.G, np.int64(self.n_coef), np.int64(count),
                          self.w_sq, self.g_sq, np.int64(n)))
        xp.sum(self.w_sq, out=self.batch_sqw[b:b + 1].reshape(()))
        xp.sum(self.g_sq, out=self.sqg.reshape(()))
        s0, s1, s2 = self.slots
        if self.muon:
            self._muon_step(count)
            return
        m.kernel("mlp_step_begin_kernel")(
            (1,), (1,), (self.model, self.optimizer, self.schedule, self.scalars,
                         np.int64(count), self.sqg, self.plan))
        if refresh:
            self._sophia_refresh(start, count, Z, a0)
        m.kernel("mlp_step_kernel")(
            grid, block, (self.model, self.optimizer, self.plan, np.int64(self.n_coef), self.P,
                          self.G, s0, s1, s2, np.int64(n)))

    def _backward(self, D, a0, count, G):
        """The batch-mean gradient into G (no L2 part) from D, the output layer's delta (its
        buffer and the hidden deltas' are overwritten)."""
        xp = self.rt.xp
        for layer in range(self.n_layers - 1, -1, -1):
            inp = a0 if layer == 0 else self.act[layer][:count]
            fan_in, fan_out = self.units[layer], self.units[layer + 1]
            gW = G[self.coef_offset[layer]:self.coef_offset[layer] + fan_in * fan_out]
            xp.matmul(inp.T, D, out=gW.reshape(fan_in, fan_out))
            xp.sum(D, axis=0, out=self._b(G, layer))
            if layer > 0:
                Dp = self.delta[layer][:count]
                xp.matmul(D, self._W(self.P, layer).T, out=Dp)
                grid, block = backend.launch_shape(Dp.size)
                self.activations.kernel("activation_backward_kernel")(
                    grid, block, (np.int64(self.activation), inp, Dp, np.int64(Dp.size)))
                D = Dp

    # ---- Sophia ---------------------------------------------------------------------------------

    def _sophia_refresh(self, start, count, Z, a0):
        """h <- beta2 h + (1 - beta2) B ghat^2, ghat the batch's gradient at labels drawn from
        the network (the step's plan has counted the step the draws are keyed on)."""
        m = self.module
        rows = self.order[start:start + count]
        grid, block = backend.launch_shape(count)
        m.kernel("mlp_gnb_output_kernel")(
            grid, block, (self.model, self.logits[:count], self.key, self.scalars, rows,
                          1.0 / count, Z, np.int64(count), np.int64(self.k)))
        self._backward(Z, a0, count, self.G_drawn)
        grid, block = backend.launch_shape(self.n_params)
        m.kernel("sophia_gnb_hessian_kernel")(
            grid, block, (self.optimizer, self.G_drawn, np.int64(count), self.slots[1],
                          np.int64(self.n_params)))

    # ---- Muon -----------------------------------------------------------------------------------

    def _muon_step(self, count):
        m = self.module
        m.kernel("mlp_muon_step_begin_kernel")(
            (1,), (1,), (self.model, self.optimizer, self.companion, self.schedule,
                         self.scalars, np.int64(count), self.sqg, self.muon_plan))
        for layer in self.muon_layers:
            self._muon_matrix(layer)
        tail, n = self.coef_offset[self.n_layers - 1], self.n_params
        s0, s1, s2 = self.slots
        grid, block = backend.launch_shape(n - tail)
        m.kernel("mlp_companion_step_kernel")(
            grid, block, (self.model, self.companion, self.muon_plan, np.int64(tail),
                          np.int64(self.n_coef), self.P, self.G, s0, s1, s2, np.int64(n)))

    def _muon_matrix(self, layer):
        """One hidden matrix (R = fan_in rows, C = fan_out columns; torch's shape C x R):
        momentum, Newton-Schulz, decay and update."""
        m, ns = self.module, self.newton_schulz
        R, C = self.units[layer], self.units[layer + 1]
        n, off = R * C, self.coef_offset[layer]
        P, G, buf = self.P[off:off + n], self.G[off:off + n], self.slots[0][off:off + n]
        U = ns.x[0][:n]
        grid, block = backend.launch_shape(n)
        m.kernel("mlp_muon_momentum_kernel")(
            grid, block, (self.model, self.optimizer, self.muon_plan, P, G, buf, U,
                          ns.sq[:n], np.int64(n)))
        O = ns.orthogonalise(R, C)
        m.kernel("mlp_muon_apply_kernel")(
            grid, block, (self.optimizer, self.muon_plan, float(C), float(R), P, O,
                          np.int64(n)))

    # ---- validation ---------------------------------------------------------------------------

    def score(self, state):
        """scikit-learn's MLP score on the validation rows: accuracy (all labels of a row for
        multilabel), or the mean R^2 over outputs; NaN when a prediction is not finite."""
        if not self.has_validation:
            return np.nan
        xp = self.rt.xp
        Xv, Yv, lv = self.val
        params = xp.asarray(state.params, dtype=self.dtype)
        Z = logits(self.rt, self.units, self.activation, params, Xv, self.activations)
        if not bool(xp.isfinite(Z).all()):
            return np.nan
        if self.loss == Loss.SOFTMAX:
            return float((xp.argmax(Z, axis=1) == lv).mean())
        if self.loss == Loss.LOG:
            return float(((Z > 0) == (Yv > 0.5)).all(axis=1).mean())
        ss_res = ((Z.astype(np.float64) - Yv) ** 2).sum(axis=0)
        ss_tot = ((Yv - Yv.mean(axis=0)) ** 2).sum(axis=0)
        r2 = xp.where(ss_tot == 0, xp.where(ss_res == 0, 1.0, 0.0),
                      1.0 - ss_res / xp.where(ss_tot == 0, 1.0, ss_tot))
        return float(r2.mean())
