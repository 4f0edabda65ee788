"""`gdsolve bench`: gdsolve against closed-form solvers, scikit-learn and PyTorch on built-in data.

Run by the console script (`gdsolve bench`, see gdsolve/__main__.py), by `python -m gdsolve.bench`
and by tests/test_bench.py. Every case fits gdsolve and its peers in one process, alternating the
repeats, and reports median time per epoch, fit time, final objective, relative gap to the exact
optimum (gdsolve.reference) and held-out score; ratios gdsolve/peer are the headline numbers.
Writes a terminal table, bench.json (every number and the machine), results.md and PNG plots.

Modules: cases (suites, sizes, settings, records, data), peers (the solver adapters), suites (the
cases of each suite), timing (run_case, traces, time_to_gap, crossover), report (table, markdown,
JSON), plots (the PNGs), env (optional modules, threads, machine), cli (parser, run, main). This
file re-exports their public names, and env's _optional and _load_average; to replace those two
in a test, patch gdsolve.bench.env, where every module looks them up.
"""

from gdsolve.bench.cases import (
    ADAM_BATCH,
    ADAM_LR,
    ALPHA,
    DEFAULT_SUITES,
    MLP_ALPHA,
    MLP_BATCH,
    MLP_LR,
    SGD_ETA0_REGRESSION,
    SGD_POWER_T_REGRESSION,
    SIZES,
    SUITES,
    Case,
    Fitted,
    Solver,
)
from gdsolve.bench.cli import build_parser, main, run
from gdsolve.bench.env import _load_average as _load_average
from gdsolve.bench.env import _optional as _optional
from gdsolve.bench.env import machine_info
from gdsolve.bench.plots import GAP_FLOOR, plot_crossover, plot_gap
from gdsolve.bench.report import (
    TABLE_COLUMNS,
    format_markdown,
    format_table,
    machine_summary,
    table_rows,
    write_outputs,
)
from gdsolve.bench.suites import build_cases
from gdsolve.bench.timing import run_case, run_crossover, time_to_gap

__all__ = [
    "ADAM_BATCH", "ADAM_LR", "ALPHA", "DEFAULT_SUITES", "GAP_FLOOR", "MLP_ALPHA", "MLP_BATCH",
    "MLP_LR", "SGD_ETA0_REGRESSION", "SGD_POWER_T_REGRESSION", "SIZES", "SUITES",
    "TABLE_COLUMNS", "Case", "Fitted", "Solver", "build_cases", "build_parser", "format_markdown",
    "format_table", "machine_info", "machine_summary", "main", "plot_crossover", "plot_gap",
    "run", "run_case", "run_crossover", "table_rows", "time_to_gap", "write_outputs",
]
