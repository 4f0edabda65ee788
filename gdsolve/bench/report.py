"""The outputs of a run: the terminal table, results.md (markdown with the machine line and the
crossover tables), bench.json (JSON-safe values) and the plots' files.

Called by gdsolve.bench.cli (format_table, write_outputs, _jsonable).
"""

import json
import math
import os

import numpy as np

from gdsolve.bench import env
from gdsolve.bench.plots import plot_crossover, plot_gap
from gdsolve.bench.timing import time_to_gap


def _fmt(value, kind):
    if value is None:
        return "-"
    if kind == "time":
        if value >= 1:
            return f"{value:.2f}s"
        if value >= 1e-3:
            return f"{value * 1e3:.1f}ms"
        return f"{value * 1e6:.0f}us"
    if kind == "gap":
        return f"{value:.1e}"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "obj":
        return f"{value:.6g}"
    if kind == "score":
        return f"{value:.4f}"
    return str(value)


TABLE_COLUMNS = ("case", "solver", "epochs", "time/epoch", "fit time", "objective", "gap",
                 "t to 1e-6", "score", "gdsolve/peer epoch", "gdsolve/peer fit")
GAP_TARGET = 1e-6  # the "t to 1e-6" column: time_to_gap over the solver's gap-vs-time trace


def table_rows(report):
    rows = []
    for case in report["cases"]:
        for r in case["results"]:
            if r["error"]:
                rows.append([case["name"], r["solver"], "-", "-", "-", "-", "-", "-", "-", "-",
                             "error: " + r["error"][:40]])
                continue
            epochs = "-" if not r["epochs_run"] else f"{r['epochs_run']}" + (
                " it" if r["unit"] == "iteration" else "")
            gap = r["gap"]
            reached = time_to_gap(r["trace"], GAP_TARGET) if gap is not None else None
            rows.append([
                case["name"], r["solver"], epochs, _fmt(r["median_epoch_time"], "time"),
                _fmt(r["median_fit_time"], "time"), _fmt(r["objective"], "obj"),
                _fmt(gap, "gap") if gap is not None else "n/a",
                _fmt(reached, "time") if gap is not None else "n/a",
                _fmt(r["score"], "score"), _fmt(r["ratio_epoch_time"], "ratio"),
                _fmt(r["ratio_fit_time"], "ratio"),
            ])
    return rows


def _blank_repeated_cases(rows):
    """The rows with the case name shown only on the first row of each case."""
    previous = None
    for row in rows:
        shown = list(row)
        if row[0] == previous:
            shown[0] = ""
        previous = row[0]
        yield shown


def format_table(report):
    rows = table_rows(report)
    widths = [max(len(str(c)) for c in col) for col in zip(TABLE_COLUMNS, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(TABLE_COLUMNS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for shown in _blank_repeated_cases(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(shown, widths, strict=True)))
    return "\n".join(lines)


def machine_summary(machine):
    """One line: CPU, cores, BLAS and versions."""
    blas = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
                     f"{b.get('num_threads')} threads)" for b in machine["blas"]
                     if b.get("user_api") == "blas")
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    return (f"{machine['cpu']}, {machine['cpu_count']} cores ({machine['usable_cpus']} used); "
            f"BLAS: {blas or 'unknown'}; {versions}")


def format_markdown(report, image_prefix=""):
    """results.md: command, machine, the table, the crossover times and the plots."""
    rows = table_rows(report)
    lines = [f"Command: `{report['command'].strip()}` ({report['machine']['date']}, "
             f"{report['wall_time']:.0f} s)", "",
             f"Machine: {machine_summary(report['machine'])}", "",
             "| " + " | ".join(TABLE_COLUMNS) + " |",
             "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"]
    for shown in _blank_repeated_cases(rows):
        lines.append("| " + " | ".join(str(c) for c in shown) + " |")
    lines += ["", "Ratios are gdsolve/peer against the paired gdsolve solver (below 1: gdsolve "
              "is faster); gap is (objective - optimum) / |optimum|; t to 1e-6 is the time to "
              "a gap of 1e-6, interpolated on the gap-vs-time trace ('-': not reached)."]
    cross = report.get("crossover")
    if cross and cross["rows"]:
        names = sorted({name for row in cross["rows"] for name in row["solvers"]})
        for target in cross["targets"]:
            key = f"{target:g}"
            lines += ["", f"Time to reach relative gap {key} (ridge, n = {cross['n_samples']}):",
                      "", "| n_features | " + " | ".join(names) + " |",
                      "|---|" + "|".join("---" for _ in names) + "|"]
            for row in cross["rows"]:
                cells = []
                for name in names:
                    entry = row["solvers"].get(name)
                    value = None if entry is None else entry["time_to_gap"].get(key)
                    cells.append(_fmt(value, "time") if value is not None else "not reached")
                lines.append(f"| {row['n_features']} | " + " | ".join(cells) + " |")
    if report.get("gpu") is not None:
        from gdsolve.bench.gpu import format_gpu_section

        lines += ["", "GPU section (`--suite gpu`):", ""]
        lines += format_gpu_section(report["gpu"], markdown=True)
    if report["notes"]:
        lines += [""] + [f"- {note}" for note in report["notes"]]
    images = report.get("images") or []
    if images:
        lines.append("")
        lines += [f"![{name[:-4]}]({image_prefix}{name})" for name in images]
    return "\n".join(lines)


def _slug(name):
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


def write_outputs(report, out, plots=True):
    """bench.json, results.md and (unless plots=False) gap_<case>.png and crossover.png."""
    os.makedirs(out, exist_ok=True)
    images = []
    if plots:
        if env._optional("matplotlib") is None:
            report["notes"].append("matplotlib is not installed: plots skipped")
        else:
            for case in report["cases"]:
                if not case["results"]:
                    continue
                name = f"gap_{_slug(case['name'])}.png"
                plot_gap(case, os.path.join(out, name))
                images.append(name)
            if report.get("crossover"):
                plot_crossover(report["crossover"], os.path.join(out, "crossover.png"))
                images.append("crossover.png")
    report["images"] = images
    with open(os.path.join(out, "bench.json"), "w") as fh:
        json.dump(_jsonable(report), fh, indent=1, allow_nan=False)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(format_markdown(report) + "\n")
