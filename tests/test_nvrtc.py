"""Compile-only proof of the GPU path on machines without a GPU: NVRTC (from the
nvidia-cuda-nvrtc wheel, driven through CuPy's low-level binding) compiles every kernel module for
float and double, the core headers on their own, and the struct layouts the backend mirrors.
"""

import os
import re
import shutil

import numpy as np
import pytest

import gdsolve
from gdsolve import _structs
from gdsolve.gpu import backend, kernels

# CuPy >= 14 finds libnvrtc inside the nvidia-cuda-nvrtc wheel by itself (cuda-pathfinder), so no
# CUDA_PATH or preloading is needed; skip only when the binding itself is not installed.
nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc")

ARCH = "--gpu-architecture=compute_90"
CORE_HEADERS = (
    "config.h", "codes.h", "structs.h", "math/losses.h", "math/activations.h",
    "math/penalties.h", "math/clip.h", "math/optimizers.h", "math/schedules.h", "math/muon.h",
    "math/sophia.h", "model/linear.h", "model/mlp.h", "model/spectral.h", "model/lbfgs.h",
    "driver/epoch_rules.h",
)  # every NVRTC-safe header; cpu/, driver/shuffle.h and math/fast_math.h are host-only
HOST_ONLY = ("cpu/", "driver/shuffle.h", "math/fast_math.h")


class CompileError(AssertionError):
    pass


def nvrtc_compile(source, name, name_expressions=(), options=None):
    """Compile with NVRTC; return ({name expression: lowered name}, PTX text).

    On failure raise CompileError carrying the NVRTC log."""
    options = list(kernels.compile_options() if options is None else options) + [ARCH]
    prog = nvrtc.createProgram(source, name, [], [])
    try:
        for expr in name_expressions:
            nvrtc.addNameExpression(prog, expr)
        try:
            nvrtc.compileProgram(prog, options)
        except nvrtc.NVRTCError as exc:
            raise CompileError(
                f"NVRTC failed on {name} ({exc}) with {options}:\n{nvrtc.getProgramLog(prog)}"
            ) from None
        lowered = {expr: nvrtc.getLoweredName(prog, expr) for expr in name_expressions}
        ptx = nvrtc.getPTX(prog).decode(errors="replace")
        return lowered, ptx
    finally:
        nvrtc.destroyProgram(prog)


@pytest.mark.parametrize("ctype", ["float", "double"])
@pytest.mark.parametrize("module", kernels.MODULE_NAMES)
def test_kernel_module_compiles(module, ctype):
    source = kernels.module_source(module)
    exprs = kernels.name_expressions(module, (ctype,))
    lowered, ptx = nvrtc_compile(source, f"{module}.cu", exprs)
    templated, plain = kernels.module_kernels(module)
    assert len(exprs) == len(templated) + len(plain)
    for expr in exprs:
        # a real kernel entry point was emitted for every name the backend will ask CuPy for
        assert f".entry {lowered[expr]}(" in ptx, f"{expr} missing from the PTX"


def test_kernel_sources_table_covers_both_types():
    table = kernels.kernel_sources()
    assert set(table) == set(kernels.MODULE_NAMES)
    for module, (source, exprs) in table.items():
        templated, plain = kernels.module_kernels(module)
        assert source == kernels.module_source(module)
        for k in templated:
            pattern = kernels.kernel_pattern(module, k)
            assert {pattern.format(T="float"), pattern.format(T="double")} <= set(exprs)
            assert f"__global__ void {k}(" in source
        for k in plain:
            assert k in exprs and f"__global__ void {k}(" in source


def test_kernels_include_only_device_portable_core_headers():
    included = set()
    for source, _ in kernels.kernel_sources().values():
        included |= set(re.findall(r'#include "gdsolve/([\w./]+)"', source))
    assert included and included <= set(CORE_HEADERS)
    assert not any(h.startswith(HOST_ONLY) for h in included)


# Math the kernels must take from the core, never write themselves.
_RAW_MATH = re.compile(
    r"(?<![\w:.])(exp|expf|log|logf|log1p|log1pf|sqrt|sqrtf|rsqrt|pow|powf|tanh|tanhf|cos|sin|"
    r"fabs|fabsf|fmax|fmin|fma|abs|max|min|floor|ceil|copysign|signbit|sign)\s*\("
)


@pytest.mark.parametrize("module", kernels.MODULE_NAMES)
def test_kernels_hold_no_math_of_their_own(module):
    source = kernels.module_source(module)
    assert not _RAW_MATH.findall(source)
    assert "#include <" not in source  # no host standard library under NVRTC
    assert "gds::" in source


_GLOBAL_SIGNATURE = re.compile(r"__global__\s+void\s+(\w+)\s*\(([^)]*)\)", re.S)
_PASSABLE_SCALARS = {"long long", "double"} | {f"gds::{name}" for name in _structs.STRUCT_NAMES}


@pytest.mark.parametrize("module", kernels.MODULE_NAMES)
def test_kernel_scalar_parameters_match_cupy_argument_passing(module):
    # CuPy sends a Python int as 8 bytes and a float as a double: an `int` or `T` scalar
    # parameter would read garbage, so kernels take long long / double / config structs only.
    signatures = _GLOBAL_SIGNATURE.findall(kernels.module_source(module))
    assert signatures
    for kernel, params in signatures:
        for param in params.split(","):
            decl = " ".join(param.split())
            if "*" in decl:
                continue
            ptype = decl.rsplit(" ", 1)[0]
            assert ptype in _PASSABLE_SCALARS, f"{kernel}: parameter '{decl}'"


def test_broken_kernel_fails_with_the_nvrtc_log():
    source = kernels.module_source("optimizer").replace(
        "gds::optimizer_update<T>(", "gds::optimizer_update_missing<T>("
    )
    with pytest.raises(CompileError, match="optimizer_update_missing"):
        nvrtc_compile(source, "broken.cu", kernels.name_expressions("optimizer"))


def _header_templates():
    """Names of every function template in the NVRTC-safe core headers."""
    names, n_templates = [], 0
    for header in CORE_HEADERS:
        with open(os.path.join(gdsolve.get_include(), "gdsolve", header)) as f:
            text = f.read()
        n_templates += len(re.findall(r"template <class T>(?!\s*struct)", text))
        names += re.findall(
            r"template <class T>\s*(?:GDS_HD\s+)?inline\s+[\w:&*<> ]*?\b(\w+)\s*\(", text
        )
    assert len(names) == n_templates, f"function templates missed by the parser: {names}"
    return set(names)


def test_core_headers_compile_alone_with_every_template_instantiated():
    templates = _header_templates()
    # the parser must see the templates it is meant to see, or this test would prove nothing
    assert {"optimizer_update", "loss_value", "softmax_cross_entropy", "clip_gradient",
            "activation_value", "soft_threshold"} <= templates
    includes = "".join(f'#include "gdsolve/{h}"\n' for h in CORE_HEADERS)
    # Taking each template's address in device code instantiates its device version for T.
    uses = "".join(f"    (void)&gds::{name}<T>;\n" for name in sorted(templates))
    source = (
        includes
        + "template <class T> __global__ void instantiate_core() {\n"
        + uses
        + "}\n"
    )
    exprs = ["instantiate_core<float>", "instantiate_core<double>"]
    nvrtc_compile(source, "core_headers.cu", exprs)


def test_headers_come_from_get_include(tmp_path, monkeypatch):
    options = kernels.compile_options()
    assert options[0] == "-I" + gdsolve.get_include()
    assert options[2] == "-DGDSOLVE_HEADERS=" + kernels.header_hash()

    # without the include path the headers are not found at all
    with pytest.raises(CompileError, match="gdsolve/math/optimizers.h"):
        nvrtc_compile(kernels.module_source("optimizer"), "noinc.cu", (), options=["--std=c++17"])

    # point get_include() at a marked copy: the compile must read that copy
    shutil.copytree(gdsolve.get_include(), tmp_path / "include")
    config = tmp_path / "include" / "gdsolve" / "config.h"
    config.write_text(config.read_text() + '\n#error "gdsolve headers read from the copy"\n')
    monkeypatch.setattr(gdsolve, "get_include", lambda: str(tmp_path / "include"))
    assert kernels.compile_options()[0] == "-I" + str(tmp_path / "include")
    with pytest.raises(CompileError, match="gdsolve headers read from the copy"):
        nvrtc_compile(kernels.module_source("optimizer"), "marked.cu", ())


def test_header_hash_tracks_header_content_not_location(tmp_path):
    original = kernels.header_hash()
    shutil.copytree(gdsolve.get_include(), tmp_path / "same")
    assert kernels.header_hash(str(tmp_path / "same")) == original
    shutil.copytree(gdsolve.get_include(), tmp_path / "edited")
    losses = tmp_path / "edited" / "gdsolve" / "math" / "losses.h"
    losses.write_text(losses.read_text() + "\n// edited\n")
    assert kernels.header_hash(str(tmp_path / "edited")) != original
    assert kernels.compile_options(str(tmp_path / "edited"))[2].endswith(
        kernels.header_hash(str(tmp_path / "edited"))
    )


# ---- struct layouts: the NumPy records (gdsolve._structs, from the host's layout table) vs the
# structs as written in structs.h and as NVRTC lays them out ----

STRUCT_MIRRORS = {name: _structs.dtype(name) for name in _structs.STRUCT_NAMES}


def _struct_fields(struct):
    """Field names of gds::<struct> in declaration order, read from structs.h's X-macro list."""
    with open(os.path.join(gdsolve.get_include(), "gdsolve", "structs.h")) as f:
        text = f.read()
    lists = dict(re.findall(r"X\((\w+), (GDS_\w+_FIELDS)\)", text))
    body = re.search(rf"#define {lists[struct]}\(F, A, S\)(.*?)(?:\n\n|\n#)", text, re.S)
    assert body, f"field list of {struct} not found"
    return re.findall(r"\b[FA]\(S, [\w ]+, (\w+),", body.group(1))


@pytest.mark.parametrize("struct", sorted(STRUCT_MIRRORS))
def test_struct_mirror_has_the_header_fields_in_order(struct):
    assert list(STRUCT_MIRRORS[struct].names) == _struct_fields(struct)


def test_struct_mirror_layout_matches_the_device_layout():
    checks = []
    for struct, dtype in STRUCT_MIRRORS.items():
        checks.append(
            f'static_assert(sizeof(gds::{struct}) == {dtype.itemsize}, "sizeof {struct}");'
        )
        for name in dtype.names:
            offset = dtype.fields[name][1]
            checks.append(
                f"static_assert(__builtin_offsetof(gds::{struct}, {name}) == {offset}, "
                f'"offset of {struct}::{name}");'
            )
    source = '#include "gdsolve/structs.h"\n' + "\n".join(checks)
    nvrtc_compile(source, "layout.cu")

    # the check can fail: a shifted offset is rejected
    wrong = source.replace(
        f"gds::OptimizerConfig, lr) == {backend.OPTIMIZER_CONFIG_DTYPE.fields['lr'][1]}",
        "gds::OptimizerConfig, lr) == 4",
    )
    assert wrong != source
    with pytest.raises(CompileError, match="offset of OptimizerConfig::lr"):
        nvrtc_compile(wrong, "layout_wrong.cu")


def test_config_records_are_one_element_arrays_cupy_passes_by_value():
    # CuPy passes a size-one numpy.ndarray to a kernel by value (its raw bytes) and rejects larger
    # ones (cupy/cuda/function.pyx _pointer). The structured scalar record[0] is accepted by
    # CuPy 14 but not by CuPy 13, so the records stay one-element arrays.
    opt = backend.optimizer_config_record({"code": 3, "lr": 0.1})
    sched = backend.schedule_config_record({"code": 0, "base_lr": 0.1})
    for record, dtype in ((opt, backend.OPTIMIZER_CONFIG_DTYPE),
                          (sched, backend.SCHEDULE_CONFIG_DTYPE)):
        assert isinstance(record, np.ndarray) and record.shape == (1,)
        assert record.dtype == dtype and record.nbytes == dtype.itemsize
