"""Shared pytest setup: report which gdsolve is under test (CI tests the installed wheel)."""

import gdsolve


def pytest_report_header(config):
    return f"gdsolve {gdsolve.__version__} from {gdsolve.__file__}; headers {gdsolve.get_include()}"
