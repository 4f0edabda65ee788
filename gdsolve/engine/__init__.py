"""gdsolve's training engine: the FitState a fit carries, the one epoch driver, and the records
of the config structs. The executors live with their backends (gdsolve._cpu_linear,
gdsolve._cpu_mlp, gdsolve.gpu, gdsolve.distributed). docs/architecture.md traces a fit."""

from gdsolve.engine.driver import FitReport, FitRules, run
from gdsolve.engine.state import LBFGS_MEMORY, FitState, lbfgs_history_size

__all__ = ["FitReport", "FitRules", "FitState", "LBFGS_MEMORY", "lbfgs_history_size", "run"]
