"""Tests of `gdsolve bench`: the --quick run through the console entry point writes bench.json
with every field and non-empty PNG plots; the numbers in it are consistent (gaps against the
reference objective, ratios against the paired gdsolve solver); argument errors and missing
optional pieces degrade with a clear message."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from gdsolve import bench

RESULT_FIELDS = {
    "solver", "library", "unit", "budget", "pair", "reference", "note", "error", "fit_times",
    "epochs_run", "median_fit_time", "median_epoch_time", "objective", "gap", "score", "trace",
    "ratio_epoch_time", "ratio_fit_time",
}
CASE_FIELDS = {
    "name", "suite", "kind", "source", "n_samples", "n_features", "n_test", "sparse", "dtype",
    "problem", "reference", "score_name", "results", "notes",
}
PEERS = {
    "sklearn SGDRegressor", "sklearn SGDClassifier", "sklearn LogisticRegression",
    "sklearn Ridge", "sklearn LinearRegression", "sklearn MLPClassifier", "scipy lstsq",
    "Cholesky normal eq.",
}


def _torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `python -m gdsolve bench --quick` run (the console script's code path)."""
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "gdsolve", "bench", "--quick", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=out,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "bench.json") as fh:
        report = json.load(fh)
    return out, report, proc.stdout


@pytest.mark.slow
def test_quick_run_writes_json_with_every_field(quick_run):
    _, report, stdout = quick_run
    assert {"command", "config", "machine", "cases", "crossover", "notes", "images",
            "wall_time"} <= set(report)
    machine = report["machine"]
    assert machine["cpu"] and machine["cpu_count"] >= 1
    assert any(entry["internal_api"] for entry in machine["blas"])  # BLAS from threadpoolctl
    assert {"gdsolve", "numpy", "scipy", "scikit-learn", "python"} <= set(machine["versions"])
    assert {c["suite"] for c in report["cases"]} == set(bench.DEFAULT_SUITES)
    for case in report["cases"]:
        assert CASE_FIELDS <= set(case), case["name"]
        assert case["results"], case["name"]
        for row in case["results"]:
            assert RESULT_FIELDS <= set(row), (case["name"], row["solver"])
            assert row["error"] is None, (case["name"], row["solver"], row["error"])
            assert row["median_fit_time"] > 0 and row["score"] is not None
            assert math.isfinite(row["objective"])
            assert row["trace"], (case["name"], row["solver"])
    solvers = {row["solver"] for case in report["cases"] for row in case["results"]}
    assert PEERS <= solvers
    if _torch_available():
        assert {"PyTorch Adam", "PyTorch full-batch GD"} <= solvers
    else:
        assert any("PyTorch is not installed" in note for note in report["notes"])
    cross = report["crossover"]
    assert [row["n_features"] for row in cross["rows"]] == cross["features"]
    # The terminal table names every case and solver.
    for case in report["cases"]:
        assert case["name"] in stdout


@pytest.mark.slow
def test_quick_run_numbers_are_consistent(quick_run):
    _, report, _ = quick_run
    for case in report["cases"]:
        by_name = {row["solver"]: row for row in case["results"]}
        for row in case["results"]:
            if case["problem"] is None:
                assert row["gap"] is None  # MLP: non-convex, no exact optimum
                continue
            best = case["reference"][row["reference"]]["objective"]
            # gap is (objective - optimum) / |optimum|, never below round-off
            assert row["gap"] == pytest.approx((row["objective"] - best) / abs(best),
                                               rel=1e-6, abs=1e-12)
            assert row["gap"] > -1e-9, (case["name"], row["solver"])
            if row["library"] == "scipy":  # closed form: the optimum itself
                assert abs(row["gap"]) < 1e-9
            times = row["fit_times"]
            assert row["median_fit_time"] == pytest.approx(float(np.median(times)))
            if row["pair"] in by_name and row["ratio_fit_time"] is not None:
                partner = by_name[row["pair"]]
                assert partner["library"] == "gdsolve"
                assert row["ratio_fit_time"] == pytest.approx(
                    partner["median_fit_time"] / row["median_fit_time"])
        if case["kind"] != "regression":
            assert all(0 <= r["score"] <= 1 for r in case["results"])


@pytest.mark.slow
def test_quick_run_plots_are_non_empty_images(quick_run):
    import matplotlib.image as mpimg

    out, report, _ = quick_run
    assert len(report["images"]) == len(report["cases"]) + 1  # one per case + crossover
    assert "crossover.png" in report["images"]
    for name in report["images"]:
        path = out / name
        with open(path, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n", name
        image = mpimg.imread(path)
        assert image.shape[0] > 100 and image.shape[1] > 100, name
        assert float(image[..., :3].std()) > 0.01, name  # something drawn, not a blank canvas
    assert (out / "results.md").read_text().count("\n") > len(report["cases"])


def test_time_to_gap_interpolates_in_log_gap():
    trace = [{"time": 1.0, "gap": 1e-2}, {"time": 3.0, "gap": 1e-6}, {"time": 2.0, "gap": 1e-4}]
    # 1e-5 lies half way (in log) between 1e-4 at t=2 and 1e-6 at t=3
    assert bench.time_to_gap(trace, 1e-5) == pytest.approx(2.5)
    assert bench.time_to_gap(trace, 1e-2) == pytest.approx(1.0)
    assert bench.time_to_gap(trace, 1e-9) is None


def test_gap_plot_of_a_hand_made_case(tmp_path):
    record = {"name": "toy", "dtype": "float64", "problem": {"loss": "squared_error"},
              "results": [
                  {"solver": "a", "trace": [{"time": 0.1, "gap": 1e-1},
                                            {"time": 0.2, "gap": 1e-3}]},
                  {"solver": "closed", "trace": [{"time": 0.05, "gap": -1e-17}]},
                  {"solver": "failed", "trace": []},
              ]}
    assert bench.plot_gap(record, tmp_path / "toy.png") == 2
    assert (tmp_path / "toy.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--suite", "nope"], "unknown suite"),
        (["--repeats", "0"], "--repeats"),
        (["--n-samples", "3"], "--n-samples"),
        (["--gap-target", "2"], "--gap-target"),
    ],
)
def test_bad_arguments_exit_with_a_message(tmp_path, capsys, argv, message):
    code = bench.main(argv + ["--out", str(tmp_path / "x")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")  # refused before any work


def test_entry_points_answer_help(tmp_path):
    for cmd in ([sys.executable, "-m", "gdsolve.bench", "--help"],
                [sys.executable, "-m", "gdsolve", "bench", "--help"]):
        # From a neutral folder: `python -m` puts the working directory first on sys.path, and in
        # a source checkout that would shadow the installed (compiled) package.
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                              cwd=tmp_path)
        assert proc.returncode == 0 and "--quick" in proc.stdout, cmd


def test_missing_estimators_and_torch_degrade_with_notes(monkeypatch, tmp_path):
    real_optional = bench._optional

    def without(module):
        if module in ("gdsolve.linear_model", "torch"):
            return None
        return real_optional(module)

    monkeypatch.setattr(bench.env, "_optional", without)
    code = bench.main(["--suite", "linear", "--quick", "--no-datasets", "--no-plots",
                       "--quiet", "--n-samples", "400", "--out", str(tmp_path)])
    assert code == 0
    with open(tmp_path / "bench.json") as fh:
        report = json.load(fh)
    notes = " ".join(report["notes"])
    assert "SGDLinearRegression is not available" in notes
    assert "PyTorch is not installed" in notes
    solvers = {row["library"] for case in report["cases"] for row in case["results"]}
    assert solvers == {"scikit-learn", "scipy"}


def test_busy_machine_runs_single_threaded_and_says_so(monkeypatch, tmp_path):
    import os as _os

    monkeypatch.setattr(bench.env, "_load_average", lambda: 10.0 * (_os.cpu_count() or 1))
    before = _os.sched_getaffinity(0) if hasattr(_os, "sched_getaffinity") else None
    code = bench.main(["--size", "quick", "--suite", "closed-form", "--no-plots", "--quiet",
                       "--no-torch", "--out", str(tmp_path)])
    assert code == 0
    with open(tmp_path / "bench.json") as fh:
        report = json.load(fh)
    assert report["config"]["threads"] == 1
    assert report["machine"]["usable_cpus"] == 1  # gdsolve's own loop threads follow affinity
    assert any("busy" in note and "--threads" in note for note in report["notes"])
    if before is not None:
        assert _os.sched_getaffinity(0) == before  # restored after the run


@pytest.fixture
def emulated_gpu(monkeypatch, tmp_path_factory):
    """device='cuda' on the CPU emulation of the GPU path (as tests/test_gpu_path.py)."""
    import gdsolve.gpu.backend as backend
    import gdsolve.gpu.inputs as gpu_inputs
    from gdsolve.gpu.device import emulated_runtime

    monkeypatch.setenv("GDSOLVE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))
    runtime = emulated_runtime()
    monkeypatch.setattr(backend, "device_status", lambda: (True, ""))
    monkeypatch.setattr(gpu_inputs, "runtime_for", lambda: runtime)
    return runtime


def test_gpu_section_on_the_emulation_measures_every_case_against_the_cpu(emulated_gpu):
    from gdsolve.bench import gpu

    section = gpu.run_gpu_section("quick", 0, 1, torch=None, runtime=emulated_gpu)
    assert section["available"] and section["emulated"]
    rows = section["rows"]
    cases = {row["case"] for row in rows}
    assert len(cases) == 5 and len(rows) == 10  # logistic x 2, the MLP with Adam, Muon, Sophia
    assert any("Muon" in c for c in cases) and any("Sophia" in c for c in cases)
    assert {row["device"] for row in rows} == {"cpu", "cuda"}
    for row in rows:
        assert row["epoch_time"] >= 0 and row["fit_time"] > 0
        chance = 0.1 if "MLP" in row["case"] else 0.5  # 10 classes; two
        assert math.isfinite(row["objective"]) and chance + 0.1 < row["score"] <= 1.0
        if row["device"] == "cuda":
            # the same model as the CPU path's: float32 summation order only
            assert row["pair"] == "gdsolve (cpu)" and row["objective_diff"] < 1e-4
    # the objective column is the documented formula at the model
    X, y, _, _ = gpu._logistic_data(300, 5, 10, 1)
    w, b = np.arange(5) / 10.0, np.array([0.2])
    s = np.where(y == 1, 1.0, -1.0)
    expected = np.mean(np.log1p(np.exp(-s * (X.astype(float) @ w + 0.2)))) + 0.5e-4 * w @ w
    assert gpu._logistic_objective(w, b, X, y) == pytest.approx(expected, rel=1e-12)
    assert 0 < section["floor"] and section["bandwidth"] > 0
    verdicts = {v["target"]: v for v in section["targets"]}
    assert any("objective within" in t for t in verdicts)
    text = "\n".join(gpu.format_gpu_section(section))
    assert "floor" in text and "gdsolve (cuda)" in text


def test_gpu_suite_without_a_device_says_so(monkeypatch, tmp_path):
    import gdsolve.gpu.backend as backend

    monkeypatch.setattr(backend, "device_status", lambda: (False, "no driver"))
    code = bench.main(["--suite", "gpu", "--quick", "--no-plots", "--quiet", "--no-torch",
                       "--out", str(tmp_path)])
    assert code == 0
    with open(tmp_path / "bench.json") as fh:
        report = json.load(fh)
    assert report["gpu"]["available"] is False
    assert "no CUDA device (no driver)" in report["gpu"]["note"]
    assert "no CUDA device" in (tmp_path / "results.md").read_text()
