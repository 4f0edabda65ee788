"""Shared pytest setup: report which gdsolve is under test (CI tests the installed wheel)."""

import os
import signal
import threading
import time

import pytest

import gdsolve
from gdsolve._base import FitInterruptedWarning


def pytest_report_header(config):
    return f"gdsolve {gdsolve.__version__} from {gdsolve.__file__}; headers {gdsolve.get_include()}"


@pytest.fixture
def fit_interrupted():
    """fit_interrupted(est, X, y, after): est.fit(X, y) with a SIGINT sent `after` seconds in;
    asserts the fit warns that it was interrupted and returns the fit's wall time."""

    def run(est, X, y, after):
        # a process started in the background by a non-interactive shell ignores SIGINT: make
        # it raise
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        timer = threading.Timer(after, os.kill, (os.getpid(), signal.SIGINT))
        start = time.perf_counter()
        timer.start()
        try:
            with pytest.warns(FitInterruptedWarning, match="interrupted"):
                est.fit(X, y)
        finally:
            timer.cancel()
            timer.join()
            signal.signal(signal.SIGINT, previous)
        return time.perf_counter() - start

    return run
