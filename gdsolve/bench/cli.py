"""The command line of `gdsolve bench` / `python -m gdsolve.bench`: the argument parser, thread
and affinity set-up, the run from cases to report, and main (the exit code).

Called by gdsolve/__main__.py and gdsolve/bench/__main__.py (main) and tests (main).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from gdsolve.bench import env, gpu
from gdsolve.bench.cases import (
    ADAM_BATCH,
    ADAM_LR,
    ALPHA,
    DEFAULT_SUITES,
    MLP_BATCH,
    MLP_LR,
    SIZES,
    SUITES,
)
from gdsolve.bench.env import _blas_threads, _torch, machine_info
from gdsolve.bench.report import _jsonable, format_table, write_outputs
from gdsolve.bench.suites import build_cases
from gdsolve.bench.timing import _count_fits, run_case, run_crossover


def _parse_suites(values):
    suites = []
    for value in values or []:
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            if name == "all":
                suites.extend(DEFAULT_SUITES)
            elif name not in SUITES:
                raise ValueError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
            else:
                suites.append(name)
    return tuple(dict.fromkeys(suites)) or DEFAULT_SUITES


def build_parser(prog="gdsolve bench"):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark gdsolve against closed-form solvers, scikit-learn and PyTorch. "
                    "With no arguments: every suite on the default problems (< 2 minutes on "
                    "2 cores).",
    )
    p.add_argument("--suite", action="append", metavar="NAME",
                   help=f"suites to run, comma separated or repeated: {', '.join(SUITES)}, all "
                        f"(default: {','.join(DEFAULT_SUITES)})")
    p.add_argument("--quick", action="store_true",
                   help="small problems, 1 repeat, 1 thread: the CI smoke run (< 20 s)")
    p.add_argument("--size", choices=sorted(SIZES), default=None,
                   help="problem-size preset (default: 'default', or 'quick' with --quick)")
    p.add_argument("--n-samples", type=int, default=None,
                   help="override the number of samples of the synthetic problems")
    p.add_argument("--n-features", type=int, default=None,
                   help="override the number of features of the synthetic problems")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed fits per solver (median reported; default from the preset)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of the stochastic solvers (default from the preset)")
    p.add_argument("--gap-target", type=float, action="append", default=None,
                   help="relative gap(s) for the closed-form crossover (default 1e-4 and 1e-8)")
    p.add_argument("--out", default="gdsolve-bench",
                   help="output folder for bench.json, results.md and the PNGs")
    p.add_argument("--threads", type=int, default=None,
                   help="cores for everyone: BLAS (threadpoolctl), PyTorch and gdsolve's loops "
                        "(CPU affinity). Default: all cores, or 1 when the machine is busy "
                        "(load average above half the cores) and with --quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peers")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-datasets", action="store_true",
                   help="skip scikit-learn's bundled datasets (synthetic problems only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _check_args(args):
    for name in ("repeats", "epochs", "n_samples", "n_features", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.n_samples is not None and args.n_samples < 8:
        raise ValueError(f"--n-samples must be >= 8, got {args.n_samples}")
    for target in args.gap_target or []:
        if not 0 < target < 1:
            raise ValueError(f"--gap-target must be in (0, 1), got {target}")


def run(args):
    """Run the benchmark described by parsed `args`; returns the report dict (also written)."""
    _check_args(args)
    threads = args.threads or (1 if args.quick else None)
    busy_note = None
    load = env._load_average()
    cores = os.cpu_count() or 1
    if threads is None and load is not None and load > 0.5 * cores:
        # Multi-threaded BLAS / PyTorch kernels on small blocks slow down 10-100x when another
        # process holds a core (their threads spin at every barrier): on a busy machine the
        # default run goes single-threaded, and says so.
        threads = 1
        busy_note = (f"the machine was busy at the start (load average {load:.1f} on {cores} "
                     "cores): ran single-threaded, as --threads 1; pass --threads N to override")
    args.busy_note = busy_note
    if threads is None:
        return _run(args, None)
    from threadpoolctl import threadpool_limits

    # N threads means N cores for everyone: BLAS (threadpoolctl), PyTorch, and gdsolve's own
    # loop threads, which follow the process's CPU affinity.
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        if affinity is not None and threads < len(affinity):
            os.sched_setaffinity(0, sorted(affinity)[:threads])
        with threadpool_limits(limits=threads):
            return _run(args, threads)
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)


def _run(args, threads):
    suites = _parse_suites(args.suite)
    preset = args.size or ("quick" if args.quick else "default")
    sizes = dict(SIZES[preset])
    if args.epochs is not None:
        sizes["epochs"] = args.epochs
        sizes["mlp_epochs"] = args.epochs
    if args.no_datasets:
        sizes["datasets"] = ()
    repeats = args.repeats or sizes["repeats"]
    dtype = np.dtype(args.dtype)
    targets = tuple(args.gap_target or (1e-4, 1e-8))
    torch = _torch(not args.no_torch, threads)
    notes = [args.busy_note] if getattr(args, "busy_note", None) else []
    if torch is None and not args.no_torch:
        notes.append("PyTorch is not installed: PyTorch peers skipped (pip install torch)")
    tqdm = env._optional("tqdm")
    started = time.perf_counter()

    cases = build_cases(suites, sizes, dtype, args.seed, torch, args.n_samples, args.n_features)
    n_fits = _count_fits(cases, repeats, sizes["trace_points"])
    if "closed-form" in suites:
        crossover_case_fits = (1 + repeats) * 3 + sizes["trace_points"] + 2
        n_fits += crossover_case_fits * len(sizes["crossover"][1])
    gpu_repeats = min(repeats, 3)
    if "gpu" in suites:
        n_fits += gpu.gpu_fit_count(gpu_repeats, torch)
    progress = None
    if tqdm is not None and not args.quiet:
        progress = tqdm.tqdm(total=n_fits, desc="gdsolve bench", unit="fit", file=sys.stderr,
                             dynamic_ncols=True)
    records = []
    try:
        for case in cases:
            records.append(run_case(case, repeats, sizes["trace_points"], progress))
        crossover = (run_crossover(sizes, dtype, args.seed, repeats, targets, progress,
                                   args.n_samples) if "closed-form" in suites else None)
        gpu_section = (gpu.run_gpu_section(preset, args.seed, gpu_repeats, torch, progress)
                       if "gpu" in suites else None)
    finally:
        if progress is not None:
            progress.close()
    # One line per distinct note, naming the cases it concerns.
    where = {}
    for record in records:
        for note in record["notes"]:
            where.setdefault(note, []).append(record["name"])
    for row in (crossover or {}).get("rows", []):
        for note in row["notes"]:
            where.setdefault(note, []).append(f"crossover p={row['n_features']}")
    notes.extend(f"{note} ({', '.join(cases)})" for note, cases in where.items())
    report = {
        "command": "gdsolve bench " + " ".join(getattr(args, "argv", []) or []),
        "config": {"suites": list(suites), "size": preset, "dtype": args.dtype,
                   "repeats": repeats, "seed": args.seed, "sizes": _jsonable(sizes),
                   "threads": threads or _blas_threads(),
                   "alpha": ALPHA, "adam_lr": ADAM_LR, "adam_batch": ADAM_BATCH,
                   "mlp_lr": MLP_LR, "mlp_batch": MLP_BATCH, "gap_targets": list(targets)},
        "machine": machine_info(torch),
        "cases": records,
        "crossover": crossover,
        "gpu": gpu_section,
        "notes": list(dict.fromkeys(notes)),
    }
    report["wall_time"] = time.perf_counter() - started
    write_outputs(report, args.out, plots=not args.no_plots)
    report["wall_time"] = time.perf_counter() - started
    # rewrite with the final wall time (plots included)
    with open(os.path.join(args.out, "bench.json"), "w") as fh:
        json.dump(_jsonable(report), fh, indent=1, allow_nan=False)
    return report


def main(argv=None, prog="gdsolve bench"):
    """Entry point of `gdsolve bench` / `python -m gdsolve.bench`. Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    args.argv = argv
    try:
        report = run(args)
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    print(format_table(report))
    if report.get("gpu") is not None:
        print("\n" + "\n".join(gpu.format_gpu_section(report["gpu"])))
    for note in report["notes"]:
        print(f"note: {note}")
    print(f"\nratios are gdsolve/peer (below 1: gdsolve faster). Wrote {args.out}/bench.json, "
          f"results.md and {len(report['images'])} plots in {report['wall_time']:.1f} s.")
    return 0
