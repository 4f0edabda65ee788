"""Build of gdsolve's compiled modules.

Design: every ``gdsolve/_*.pyx`` listed in EXTENSIONS is a thin Cython binding over the header-only
C++17 core in ``csrc/include/gdsolve``. The headers are also copied into the package
(``gdsolve/include/gdsolve``) so that ``gdsolve.get_include()`` finds them in an installed wheel,
where the CuPy backend compiles them with NVRTC.
"""

import os
import shutil
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER_DIR = os.path.join("csrc", "include")

# Extension modules (name -> .pyx). Each is C++17 over the core headers.
EXTENSIONS = {
    "gdsolve._core": "gdsolve/_core.pyx",
    "gdsolve._cpu_linear": "gdsolve/_cpu_linear.pyx",
    "gdsolve._cpu_mlp": "gdsolve/_cpu_mlp.pyx",
}


def compile_args():
    if sys.platform == "win32":
        return ["/std:c++17", "/O2"]
    # -Wno-psabi: fast_math.h passes 32-byte vectors between inlined functions, where gcc's note
    # that a non-AVX caller would pass them differently concerns no real call
    args = ["-std=c++17", "-O3", "-fopenmp-simd", "-fno-math-errno", "-Wno-unused-function",
            "-Wno-psabi"]
    if os.environ.get("GDSOLVE_NATIVE") == "1":  # opt-in only: binaries then need this CPU
        args += ["-march=native", "-DGDS_NO_CLONES"]
    return args


def make_extensions():
    exts = []
    only = os.environ.get("GDSOLVE_ONLY")  # developer aid: rebuild one module, e.g. gdsolve._core
    for name, source in EXTENSIONS.items():
        if not os.path.exists(os.path.join(HERE, source)) or (only and name != only):
            continue
        exts.append(
            Extension(
                name,
                [source],
                language="c++",
                include_dirs=[HEADER_DIR, np.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
                extra_compile_args=compile_args(),
                extra_link_args=[] if sys.platform == "win32" else ["-pthread"],
            )
        )
    return cythonize(
        exts,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
        },
    )


class BuildPyWithHeaders(build_py):
    """Ship the header tree csrc/include/gdsolve/**.h inside the package as
    gdsolve/include/gdsolve/ (same sub-folders)."""

    def run(self):
        super().run()
        src = os.path.join(HERE, HEADER_DIR, "gdsolve")
        dst = os.path.join(self.build_lib, "gdsolve", "include", "gdsolve")
        for dirpath, _, filenames in os.walk(src):
            target = os.path.join(dst, os.path.relpath(dirpath, src))
            for fname in sorted(filenames):
                if fname.endswith(".h"):
                    os.makedirs(target, exist_ok=True)
                    shutil.copy2(os.path.join(dirpath, fname), os.path.join(target, fname))


setup(ext_modules=make_extensions(), cmdclass={"build_py": BuildPyWithHeaders})
