"""The installed package ships the C++ core headers and nothing generated (.cpp/.pyx)."""

import os

import pytest

import gdsolve

CORE_HEADERS = [
    "config.h",
    "codes.h",
    "structs.h",
    "math/losses.h",
    "math/activations.h",
    "math/penalties.h",
    "math/clip.h",
    "math/optimizers.h",
    "math/schedules.h",
    "math/fast_math.h",
    "model/linear.h",
    "model/mlp.h",
    "driver/epoch_rules.h",
    "driver/shuffle.h",
    "cpu/linear_executor.h",
    "cpu/mlp_executor.h",
    "cpu/worker_team.h",
]

PACKAGE_DIR = os.path.dirname(os.path.abspath(gdsolve.__file__))
IS_SOURCE_CHECKOUT = os.path.isfile(os.path.join(os.path.dirname(PACKAGE_DIR), "setup.py"))


@pytest.mark.parametrize("header", CORE_HEADERS)
def test_get_include_holds_core_headers(header):
    path = os.path.join(gdsolve.get_include(), "gdsolve", header)
    assert os.path.isfile(path), f"{header} missing from {gdsolve.get_include()}"
    with open(path) as f:
        assert "#pragma once" in f.read()


def test_ci_tests_the_installed_package_not_the_source_tree():
    if os.environ.get("GDSOLVE_EXPECT_INSTALLED") != "1":
        pytest.skip("only meaningful in CI, which installs the wheel")
    assert not IS_SOURCE_CHECKOUT, f"tests imported gdsolve from the source tree: {PACKAGE_DIR}"
    assert gdsolve.get_include() == os.path.join(PACKAGE_DIR, "include")


@pytest.mark.skipif(IS_SOURCE_CHECKOUT, reason="editable/source checkout holds build files")
def test_wheel_has_no_generated_sources():
    leaked = [f for f in os.listdir(PACKAGE_DIR) if f.endswith((".cpp", ".pyx", ".pxi"))]
    assert not leaked, f"generated or source files shipped in the wheel: {leaked}"


def test_package_ships_the_cuda_host_shim():
    # gdsolve.gpu.host_emulation force-includes it to run the CUDA kernels on the CPU
    from gdsolve.gpu import host_emulation

    assert host_emulation.SHIM_PATH == os.path.join(PACKAGE_DIR, "gpu", "cuda_host_shim.h")
    with open(host_emulation.SHIM_PATH) as f:
        assert "#pragma GCC poison __shared__" in f.read()
