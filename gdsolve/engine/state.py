"""FitState: everything a fit carries from one step to the next (parameters, optimizer slots,
averaged parameters, the per-sample L1 ledger, the row order, and the FitScalars record of
csrc/include/gdsolve/structs.h: counters, schedule and plateau state, early-stopping counters,
the shuffling generator's position). Plain NumPy data: it pickles, crosses process boundaries,
and a fit continues from it bit for bit. Built by the estimators; read and written by the
executors (gdsolve._cpu_linear, gdsolve._cpu_mlp, the GPU and Dask executors) and the driver.
"""

import numpy as np

from gdsolve import _structs

__all__ = ["FitState", "ARRAYS", "LBFGS_MEMORY", "lbfgs_history_size"]

# The arrays of a state; those a model kind does not use are None.
ARRAYS = ("params", "slot0", "slot1", "slot2", "avg_params", "l1_q", "best_params", "history",
          "order")

# The curvature pairs the linear model's L-BFGS full batch keeps (scipy's L-BFGS-B default).
LBFGS_MEMORY = 10


def lbfgs_history_size(model, n_features):
    """Elements of the L-BFGS history a linear fit with LinearConfig record `model` over
    n_features columns needs (m pairs (s, y) over the updated parameters, model/lbfgs.h);
    0 when it runs another method."""
    m = int(model["lbfgs_memory"][0])
    if not (int(model["spectral"][0]) and m > 0):
        return 0
    if m > 64:
        raise ValueError(f"lbfgs_memory must be at most 64 (model/lbfgs.h), got {m}")
    K = int(model["n_outputs"][0])
    return 2 * m * (K * int(n_features) + (K if int(model["fit_intercept"][0]) else 0))


class FitState:
    """The state of one fit (one model: one-vs-rest keeps one per class).

    params: the flat parameters (linear: K*d weights then K intercepts; MLP: every coefficient
    matrix, then every intercept vector). slot0..slot2: the update rule's per-parameter state
    (gdsolve.optim's state_slot_names, in order; unused slots are zeros). avg_params: averaged
    parameters (linear, average=...); l1_q: the L1 penalty each weight received (linear,
    per-sample L1); best_params: the best validated parameters (MLP early stopping); history:
    the linear L-BFGS full batch's curvature pairs (lbfgs_history_size). order:
    the training rows (uint32) in the last epoch's order. scalars: a FitScalars record
    (`state["t"]` reads one of its fields)."""

    __slots__ = ARRAYS + ("scalars",)

    def __init__(self, params, *, slots=None, avg_params=None, l1_q=None, best_params=None,
                 history=None, order=None, scalars=None):
        params = np.ascontiguousarray(params)
        self.params = params
        slots = list(slots or [])
        if len(slots) > 3:
            raise ValueError(f"at most 3 optimizer slots, got {len(slots)}")
        slots += [np.zeros_like(params) for _ in range(3 - len(slots))]
        self.slot0, self.slot1, self.slot2 = (np.ascontiguousarray(s, dtype=params.dtype)
                                              for s in slots)
        self.avg_params = avg_params
        self.l1_q = l1_q
        self.best_params = best_params
        self.history = history
        self.order = None if order is None else np.ascontiguousarray(order, dtype=np.uint32)
        self.scalars = _structs.record("FitScalars", scalars)

    def __getitem__(self, field):
        value = self.scalars[field]  # (1,), or (1, count) for an array field
        return value.item() if value.ndim == 1 else value[0]  # np.ndim cost 10x this read

    def __setitem__(self, field, value):
        self.scalars[field] = value

    def update(self, **fields):
        """Set several FitScalars fields."""
        for key, value in fields.items():
            self[key] = value
        return self

    def copy(self):
        """A deep copy (executors write into the arrays)."""
        new = FitState.__new__(FitState)
        for name in ARRAYS:
            value = getattr(self, name)
            setattr(new, name, None if value is None else value.copy())
        new.scalars = _structs.copy(self.scalars)
        return new

    def astype(self, dtype):
        """A copy with the floating arrays in `dtype` (order and scalars unchanged)."""
        new = self.copy()
        for name in ARRAYS:
            value = getattr(new, name)
            if value is not None and name != "order":
                setattr(new, name, np.ascontiguousarray(value, dtype=dtype))
        return new

    def start_fit(self, seed, order=None, **fields):
        """Begin a new fit (or partial_fit call) from this state: epoch 0, the shuffling
        generator at `seed`, the given row order, and any other FitScalars fields reset."""
        self.update(epoch=0, rng=int(seed) & 0xFFFFFFFFFFFFFFFF, **fields)
        if order is not None:
            self.order = np.ascontiguousarray(order, dtype=np.uint32)
        return self

    def __getstate__(self):
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state):
        for name in self.__slots__:
            setattr(self, name, state.get(name))  # states pickled before `history` lack it

    def __repr__(self):
        return (f"FitState(params={self.params.shape[0]} {self.params.dtype}, "
                f"epoch={self['epoch']}, step={self['step']}, t={self['t']})")
