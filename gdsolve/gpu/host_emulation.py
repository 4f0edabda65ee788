"""Run CUDA kernels on the CPU: a stand-in for `cupy.RawModule` that compiles the same kernel
source text with the host C++ compiler and launches each kernel one thread at a time.

This is how the GPU path runs in CI, where there is no GPU: the kernel sources of
gdsolve.gpu.kernels, compiled for the host under cuda_host_shim.h (force-included; it defines the
CUDA built-ins and poisons __shared__/__syncthreads), launched by the same driver code, with NumPy
arrays standing where CuPy arrays would. It is exact for gdsolve's kernels because they are
grid-stride loops without shared memory: run in order, one thread at a time, they compute what the
device computes (up to floating point: no flush-to-zero and no fused multiply-add contraction on the
host, where CuPy compiles with -ftz=true and NVRTC contracts by default).

API (the subset of CuPy the backend uses)
-----------------------------------------
HostModule(code, options=(), name_expressions=())
    Compiles `code` once (``$CXX`` or g++ from PATH; -std=c++17 -O1 -fPIC -shared), with one
    generated launch entry per name expression. Of `options` it keeps -I/--include-path,
    -D/--define-macro, -U/--undefine-macro and --std/-std (c++17 or c++20); it ignores the
    NVRTC-only code-generation options (--gpu-architecture/-arch, -ftz, -prec-div, -prec-sqrt,
    -fmad, --use_fast_math, -lineinfo, ...) and rejects anything else. A compiler error raises
    HostCompileError carrying the compiler's log; a kernel using __shared__, __syncthreads() or a
    warp primitive raises UnsupportedKernelError (a HostCompileError) explaining why.
HostModule.get_function(name_expression) -> HostKernel
    Only the name expressions given to the constructor (CuPy also accepts the plain name of an
    extern "C" kernel that was not listed; the emulation needs every kernel listed).
HostKernel(grid, block, args, *, shared_mem=0, stream=None)
    Launches like `cupy.RawKernel.__call__`. grid and block must be tuples of up to three ints, as
    CuPy's Function.__call__ declares them (`tuple grid, tuple block`; an int raises TypeError
    there); entries below 1 count as 1, as CuPy's `max(1, grid[0])`; CUDA's limits (grid.x < 2**31,
    grid.y/z <= 65535, block <= (1024, 1024, 64) and <= 1024 threads) raise ValueError.
    shared_mem must be 0; `stream` is ignored (every launch is synchronous here).

Argument conversion (CuPy 14.2 and its main branch; source: cupy/cuda/function.pyx `_pointer`,
cupy/_core/_scalar.pyx `numpy_dtype_from_pyscalar` and `CScalar`, cupy/_core/core.pyx
`_CArray_from_ndarray`, docs/source/user_guide/kernel.rst "Kernel arguments")
-----------------------------------------------------------------------------------------------
CuPy hands the driver one pointer per argument (kernelParams) and the driver copies
sizeof(parameter) bytes from it; CuPy itself never checks types or counts. What each Python value
becomes:

* `cupy.ndarray` -> a CArray struct whose first 8 bytes are `arr.data.ptr`, so a `T*` parameter
  receives the data pointer (a view's offset included; a size-0 array has pointer 0). CuPy does
  not check contiguity or dtype. Here a `numpy.ndarray` stands for it, at pointer parameters only.
* `None` -> a null pointer (CIntptr(0)).
* `numpy.ndarray` of size one -> its bytes, by value (CNumpyArray: its data pointer); any other
  size raises TypeError ("Only numpy.ndarrays of size one can be passed by value"). This is how a
  config struct goes by value: a one-element structured array, as backend.py does it.
* Python `bool` -> numpy.bool_ (1 byte); `float` -> float64 (`double`); `complex` -> complex128;
  `int` -> int64 (`long long`), or uint64 when 2**63 <= x < 2**64; beyond that OverflowError
  (NumPy's PyArray_Pack, NEP 50). Only these exact types: `numpy_dtype_from_pyscalar` tests
  `type(x) is int`, so a subclass such as an IntEnum member is "Unsupported type" (TypeError) in
  CuPy 14. (CuPy 13.x differed: it sent a Python bool as int64 and accepted int subclasses.)
* NumPy scalars (`numpy.generic`) -> their bytes, by value, with their own dtype (np.float32 is 4
  bytes). This includes a structured scalar (`np.void`, e.g. `record[0]`): CuPy 14 packs it with
  PyArray_Pack. CuPy 13.x rejected np.void ("Unsupported type"), so the one-element structured
  array that backend.py passes is the form both accept.
* Anything else (list, str, a Python object) -> TypeError("Unsupported type ...").

The emulation accepts exactly those, and with the kernel's signature in hand (each entry exports
its parameter count, sizeof/alignof and kind of every parameter and pointee, and the signature
text) it refuses what would run wrong on the device instead of misreading memory
(KernelArgumentError, a TypeError):

* a wrong argument count;
* a by-value argument whose byte size differs from sizeof(parameter) (np.float32 for a double, a
  Python bool for a long long), or whose kind differs (a Python int for a double: CuPy would send
  int64 bits, read as a denormal), or a non-native byte order; a struct parameter takes a NumPy
  structured value (one-element array or np.void) or complex of the struct's size;
* at a pointer parameter: anything but a C-contiguous numpy.ndarray or None (not a Python int
  address, not a cupy.ndarray, which lives in device memory); an array whose dtype kind or itemsize
  differs from an arithmetic pointee (a float64 array for `float*`), whose size is not a multiple
  of a struct pointee, whose data is misaligned for the pointee, or that is read-only where the
  pointee is not const. A size-0 array is passed as a null pointer, as CuPy does.

What the emulation cannot catch: driver code that hands a numpy.ndarray to a pointer parameter on
a real GPU (CuPy would pass a size-one array's bytes by value, or raise). Drivers must make their
device arrays through `xp` (cupy, or numpy under the emulation) and check them against
`xp.ndarray`, as GpuOptimizer does.

Caching
-------
A compiled library is keyed by sha256 over (emulator version, source text, translated compiler
flags, name expressions, shim text, compiler command and `--version` output, machine). It lives in
``$GDSOLVE_CACHE_DIR/host-kernels``, else ``$XDG_CACHE_HOME/gdsolve/host-kernels``, else
``~/.cache/gdsolve/host-kernels``, next to a manifest of the headers the compile read (g++ -MMD)
and their sha256: a changed header means a recompile (unlike CuPy's cache). Within a process,
libraries are also kept in memory by key.
"""

import ctypes
import functools
import hashlib
import json
import operator
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
import threading

import numpy as np

__all__ = [
    "HostCompileError",
    "HostKernel",
    "HostModule",
    "KernelArgumentError",
    "UnsupportedKernelError",
    "cache_dir",
    "compiler_command",
    "refused_names",
    "translate_options",
    "SHIM_PATH",
]

SHIM_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda_host_shim.h")

# Bump when the generated entries, the launcher protocol or the compile flags change meaning.
_EMULATOR_VERSION = "1"
_BASE_FLAGS = ("-O1", "-fPIC", "-shared", "-fvisibility=hidden")

# Kinds, as gds_emu::Kind in the shim.
K_OTHER, K_BOOL, K_SIGNED, K_UNSIGNED, K_FLOAT, K_VOID, K_POINTER, K_ENUM = range(8)
# NumPy dtype kinds a value of each C kind may come from.
_VALUE_KINDS = {
    K_BOOL: "b",
    K_SIGNED: "i",
    K_UNSIGNED: "u",
    K_FLOAT: "f",
    K_ENUM: "iu",
    K_OTHER: "Vc",
}
_KIND_WORDS = {
    K_OTHER: "struct",
    K_BOOL: "bool",
    K_SIGNED: "signed integer",
    K_UNSIGNED: "unsigned integer",
    K_FLOAT: "floating-point",
    K_VOID: "void",
    K_POINTER: "pointer",
    K_ENUM: "enum",
}

# CUDA launch limits (every architecture CuPy 14 supports).
_MAX_GRID = (2**31 - 1, 65535, 65535)
_MAX_BLOCK = (1024, 1024, 64)
_MAX_THREADS_PER_BLOCK = 1024


class HostCompileError(RuntimeError):
    """The host compiler rejected a kernel source; `.log` holds its output."""

    def __init__(self, message, log="", command=()):
        super().__init__(message)
        self.log = log
        self.command = list(command)


class UnsupportedKernelError(HostCompileError):
    """The kernel shares data between threads (__shared__, __syncthreads, warp primitives)."""


class KernelArgumentError(TypeError):
    """A kernel argument CuPy would not accept, or one the device would misread."""


# ---- compiler ---------------------------------------------------------------------------------


def compiler_command():
    """The host C++ compiler as an argument list: $CXX (split like a shell), else g++ from PATH."""
    cxx = os.environ.get("CXX")
    if cxx:
        return shlex.split(cxx)
    found = shutil.which("g++")
    if not found:
        raise HostCompileError(
            "no host C++ compiler: set $CXX or put g++ on PATH to run CUDA kernels on the CPU"
        )
    return [found]


@functools.lru_cache(maxsize=None)
def _compiler_version(command):
    try:
        out = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, check=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise HostCompileError(f"cannot run the host C++ compiler {list(command)}: {exc}") from None
    return out.stdout.strip()


def cache_dir():
    """Folder of the compiled host-kernel libraries (see the module docstring)."""
    root = os.environ.get("GDSOLVE_CACHE_DIR")
    if root:
        return os.path.join(root, "host-kernels")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "gdsolve", "host-kernels")


@functools.lru_cache(maxsize=1)
def _shim_text():
    with open(SHIM_PATH, encoding="utf-8") as f:
        return f.read()


@functools.lru_cache(maxsize=1)
def refused_names():
    """The CUDA names the shim poisons (__shared__, __syncthreads, the warp primitives, ...)."""
    names = []
    for line in _shim_text().splitlines():
        if line.startswith("#pragma GCC poison"):
            names += line.split()[3:]
    return tuple(names)


# ---- options ----------------------------------------------------------------------------------

# NVRTC options that only steer device code generation: meaningless for the host compile.
_IGNORED_FLAGS = frozenset({
    "-lineinfo", "--generate-line-info", "-G", "--device-debug", "--use_fast_math",
    "-use_fast_math", "-rdc", "--extensible-whole-program", "-ewp", "--device-int128",
    "-restrict", "--restrict", "--extra-device-vectorization", "-extra-device-vectorization",
    "--device-as-default-execution-space", "-default-device", "--no-source-include",
    "-no-source-include", "--disable-warnings", "-w", "--dlink-time-opt", "-dlto",
    "--optimization-info", "--time", "--minimal", "-minimal",
})
_IGNORED_PREFIXES = (
    "--gpu-architecture=", "-arch=", "-arch", "--gpu-architecture", "-ftz=", "--ftz=",
    "-prec-div=", "--prec-div=", "-prec-sqrt=", "--prec-sqrt=", "-fmad=", "--fmad=",
    "--relocatable-device-code=", "-rdc=", "-dopt=", "--dopt=", "--maxrregcount=",
    "-maxrregcount=", "--ptxas-options=", "-Xptxas=", "--split-compile=",
    "--jump-table-density=", "--device-stack-protector=", "--builtin-move-forward=",
    "--builtin-initializer-list=", "--optimization-info=",
)
_STANDARDS = ("c++17", "c++20")


def translate_options(options):
    """Host compiler flags from NVRTC options: (-I/-D/-U flags, "-std=..."); see the docstring."""
    if isinstance(options, str):
        options = (options,)
    flags, std = [], "-std=c++17"
    items = list(options)
    i = 0
    while i < len(items):
        opt = items[i]
        if not isinstance(opt, str):
            raise TypeError(f"compile options must be strings, got {opt!r}")
        i += 1
        matched = False
        for long_form, short in (
            ("--include-path=", "-I"), ("--define-macro=", "-D"), ("--undefine-macro=", "-U"),
        ):
            if opt.startswith(long_form) or opt.startswith(short):
                value = opt[len(long_form):] if opt.startswith(long_form) else opt[len(short):]
                if not value:  # "-I", "dir" as two items
                    if i >= len(items):
                        raise ValueError(f"compile option {opt!r} needs a value")
                    value = items[i]
                    i += 1
                if short == "-I":
                    value = os.path.abspath(value)
                flags.append(short + value)
                matched = True
                break
        if matched:
            continue
        m = re.fullmatch(r"--?std=(\S+)", opt)
        if m:
            if m.group(1) not in _STANDARDS:
                raise ValueError(
                    f"compile option {opt!r}: the host emulation compiles C++17 or C++20 only"
                )
            std = "-std=" + m.group(1)
            continue
        if opt in _IGNORED_FLAGS or opt.startswith(_IGNORED_PREFIXES):
            continue
        raise ValueError(
            f"compile option {opt!r} has no host equivalent the emulation knows; it keeps -I, -D, "
            "-U and --std and ignores NVRTC's code-generation options"
        )
    return flags, std


# ---- generated entries --------------------------------------------------------------------------

_NAME_EXPRESSION = re.compile(r"[A-Za-z_:][\w:<>,*&\s()]*")


def _entries_source(name_expressions):
    lines = ['\n#line 1 "<gdsolve host emulation entries>"']
    for i, expr in enumerate(name_expressions):
        lines.append(
            f"GDS_EMU_EXPORT int gds_emu_launch_{i}(const unsigned int* g, const unsigned int* b, "
            f"void** a) {{ return ::gds_emu::launch(&{expr}, g, b, a); }}\n"
            f"GDS_EMU_EXPORT long long gds_emu_params_{i}(const ::gds_emu::ParamInfo** out) "
            f"{{ return ::gds_emu::params(&{expr}, out); }}\n"
            f"GDS_EMU_EXPORT const char* gds_emu_signature_{i}() "
            f"{{ return ::gds_emu::signature(&{expr}); }}"
        )
    lines.append(
        "GDS_EMU_EXPORT const char* gds_emu_last_error() { return ::gds_emu::last_error; }\n"
    )
    return "\n".join(lines)


class _ParamInfo(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_longlong)
        for name in ("size", "align", "kind", "pointee_size", "pointee_align", "pointee_kind",
                     "pointee_const")
    ]


# ---- compile and cache --------------------------------------------------------------------------

_UNSUPPORTED_MESSAGE = (
    "the kernel source uses {names}, which the host emulation refuses: it runs a kernel one thread "
    "at a time, so threads of a block cannot share memory or wait for each other. gdsolve's rule "
    "is grid-stride kernels without shared memory; reduce with CuPy/cuBLAS instead."
)


def _hash_file(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _parse_deps(text):
    """Prerequisites of a make rule written by -MMD -MT x (backslash-escaped spaces)."""
    text = text.replace("\\\n", " ")
    _, _, rest = text.partition(":")
    deps, current, k = [], [], 0
    while k < len(rest):
        c = rest[k]
        if c == "\\" and k + 1 < len(rest) and rest[k + 1] in " #":
            current.append(rest[k + 1])
            k += 2
            continue
        if c.isspace():
            if current:
                deps.append("".join(current))
                current = []
        else:
            current.append(c)
        k += 1
    if current:
        deps.append("".join(current))
    return deps


def _deps_digest(deps):
    return hashlib.sha256(json.dumps(sorted(deps.items())).encode()).hexdigest()[:16]


def _deps_current(deps):
    return all(_hash_file(path) == digest for path, digest in deps.items())


class _Library:
    def __init__(self, path, deps, n_entries):
        self.path = path
        self.deps = deps
        self.lib = ctypes.CDLL(path)
        self.lib.gds_emu_last_error.restype = ctypes.c_char_p
        self.lib.gds_emu_last_error.argtypes = []
        self.launchers, self.params, self.signatures = [], [], []
        for i in range(n_entries):
            launch = getattr(self.lib, f"gds_emu_launch_{i}")
            launch.restype = ctypes.c_int
            launch.argtypes = [
                ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                ctypes.POINTER(ctypes.c_void_p),
            ]
            table_fn = getattr(self.lib, f"gds_emu_params_{i}")
            table_fn.restype = ctypes.c_longlong
            table_fn.argtypes = [ctypes.POINTER(ctypes.POINTER(_ParamInfo))]
            table = ctypes.POINTER(_ParamInfo)()
            n = table_fn(ctypes.byref(table))
            params = tuple(
                {name: getattr(table[k], name) for name, _ in _ParamInfo._fields_}
                for k in range(n)
            )
            sig_fn = getattr(self.lib, f"gds_emu_signature_{i}")
            sig_fn.restype = ctypes.c_char_p
            sig_fn.argtypes = []
            self.launchers.append(launch)
            self.params.append(params)
            self.signatures.append(_signature_text(sig_fn().decode(errors="replace")))


def _signature_text(pretty):
    # "... [with F = void (*)(double*, long long)]" (g++) or "... [F = void (*)(...)]" (clang)
    m = re.search(r"\bF = (.*)\]\s*$", pretty)
    return m.group(1) if m else pretty


_memory_cache = {}
_cache_lock = threading.Lock()


def _build(code, flags, std, name_expressions):
    command = tuple(compiler_command())
    version = _compiler_version(command)
    shim = _shim_text()
    key = hashlib.sha256(
        json.dumps(
            [_EMULATOR_VERSION, code, flags, std, list(name_expressions), shim, list(command),
             version, platform.machine(), list(_BASE_FLAGS)]
        ).encode()
    ).hexdigest()[:40]
    with _cache_lock:
        cached = _memory_cache.get(key)
        if cached is not None and _deps_current(cached.deps):
            return cached
        folder = cache_dir()
        os.makedirs(folder, exist_ok=True)
        manifest_path = os.path.join(folder, key + ".json")
        library = _load_from_disk(folder, manifest_path, len(name_expressions))
        if library is None:
            library = _compile(folder, manifest_path, key, code, flags, std, name_expressions,
                               command)
        _memory_cache[key] = library
        return library


def _load_from_disk(folder, manifest_path, n_entries):
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        deps = dict(manifest["deps"])
        path = os.path.join(folder, manifest["library"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not os.path.exists(path) or not _deps_current(deps):
        return None
    try:
        return _Library(path, deps, n_entries)
    except (OSError, AttributeError):  # a truncated or foreign file: compile afresh
        return None


def _compile(folder, manifest_path, key, code, flags, std, name_expressions, command):
    with tempfile.TemporaryDirectory(dir=folder, prefix="build-") as tmp:
        source = os.path.join(tmp, "kernel.cu")
        with open(source, "w", encoding="utf-8") as f:
            f.write(code)
            f.write(_entries_source(name_expressions))
        output = os.path.join(tmp, "kernel.so")
        depfile = os.path.join(tmp, "kernel.d")
        argv = [
            *command, std, *_BASE_FLAGS, "-include", SHIM_PATH, *flags,
            "-MMD", "-MT", "x", "-MF", depfile, "-x", "c++", source, "-o", output,
        ]
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            log = (proc.stderr + proc.stdout).strip()
            # g++: 'attempt to use poisoned "__shared__"'; clang++: '... a poisoned identifier'
            poisoned = [n for n in refused_names() if re.search(rf"\b{n}\b", log)]
            if "poisoned" in log and poisoned:
                raise UnsupportedKernelError(
                    _UNSUPPORTED_MESSAGE.format(names=", ".join(poisoned)) + "\n\n" + log,
                    log, argv,
                )
            raise HostCompileError(
                f"host compilation of the kernel source failed ({shlex.join(argv)}):\n{log}",
                log, argv,
            )
        with open(depfile, encoding="utf-8") as f:
            dep_paths = [p for p in _parse_deps(f.read()) if os.path.abspath(p) != source]
        deps = {os.path.abspath(p): _hash_file(p) for p in dep_paths}
        name = f"{key}-{_deps_digest(deps)}.so"
        final = os.path.join(folder, name)
        os.replace(output, final)
        tmp_manifest = os.path.join(tmp, "manifest.json")
        with open(tmp_manifest, "w", encoding="utf-8") as f:
            json.dump({"library": name, "deps": deps}, f, indent=1)
        os.replace(tmp_manifest, manifest_path)
    return _Library(final, deps, len(name_expressions))


# ---- module and kernels -------------------------------------------------------------------------


class HostModule:
    """Drop-in for `cupy.RawModule(code=..., options=..., name_expressions=...)` on the CPU."""

    def __init__(self, code, options=(), name_expressions=()):
        if not isinstance(code, str):
            raise TypeError(f"code must be the kernel source text, got {type(code).__name__}")
        if isinstance(name_expressions, str):
            name_expressions = (name_expressions,)
        exprs = []
        for expr in name_expressions:
            if not isinstance(expr, str) or not _NAME_EXPRESSION.fullmatch(expr):
                raise ValueError(f"not a kernel name expression: {expr!r}")
            if expr not in exprs:
                exprs.append(expr)
        self.code = code
        self.options = tuple(options) if not isinstance(options, str) else (options,)
        self.name_expressions = tuple(exprs)
        flags, std = translate_options(self.options)
        self._library = _build(code, flags, std, self.name_expressions)
        self._kernels = {}

    @property
    def library_path(self):
        """Path of the compiled shared library (in the cache folder)."""
        return self._library.path

    def get_function(self, name_expression):
        """The kernel of one name expression given to the constructor, as a HostKernel."""
        try:
            index = self.name_expressions.index(name_expression)
        except ValueError:
            raise ValueError(
                f"get_function({name_expression!r}): the host emulation launches only the kernels "
                f"named in name_expressions {list(self.name_expressions)}; add it there (CuPy "
                "also finds an unlisted kernel by its plain name when it is extern \"C\")"
            ) from None
        kernel = self._kernels.get(index)
        if kernel is None:
            kernel = HostKernel(self, name_expression, index)
            self._kernels[index] = kernel
        return kernel


def _dims(value, what):
    if not isinstance(value, tuple):
        raise TypeError(
            f"{what} must be a tuple of up to three ints, as for cupy.RawKernel "
            f"(got {type(value).__name__})"
        )
    if len(value) > 3:
        raise ValueError(f"{what} has {len(value)} dimensions; CUDA has at most three")
    try:
        dims = [max(1, operator.index(v)) for v in value]
    except TypeError:
        raise TypeError(f"{what} entries must be ints, got {value!r}") from None
    return tuple(dims + [1] * (3 - len(dims)))


def _c_type(kind, size):
    if kind == K_FLOAT:
        return {4: "float", 8: "double"}.get(size, f"{size}-byte floating point")
    if kind == K_SIGNED:
        return {1: "signed char", 2: "short", 4: "int", 8: "long long"}.get(size, "integer")
    if kind == K_UNSIGNED:
        return {1: "unsigned char", 2: "unsigned short", 4: "unsigned int",
                8: "unsigned long long"}.get(size, "unsigned integer")
    if kind == K_BOOL:
        return "bool"
    return f"{size}-byte {_KIND_WORDS[kind]}"


def _describe_param(p):
    if p["kind"] == K_POINTER:
        const = "const " if p["pointee_const"] else ""
        if p["pointee_kind"] == K_VOID:
            return f"a pointer to {const}void"
        return f"a pointer to {const}{_c_type(p['pointee_kind'], p['pointee_size'])}"
    return f"a {_c_type(p['kind'], p['size'])} value"


def _cupy_scalar(arg):
    """What CuPy makes of a non-array argument (function.pyx _pointer -> _scalar.CScalar)."""
    kind = type(arg)
    if kind is bool:
        return np.bool_(arg), "a Python bool (CuPy sends numpy.bool_, 1 byte)"
    if kind is float:
        return np.float64(arg), "a Python float (CuPy sends float64, 8 bytes)"
    if kind is complex:
        return np.complex128(arg), "a Python complex (CuPy sends complex128, 16 bytes)"
    if kind is int:
        if -(2**63) <= arg < 2**63:
            return np.int64(arg), "a Python int (CuPy sends int64, 8 bytes)"
        if 2**63 <= arg < 2**64:
            return np.uint64(arg), "a Python int >= 2**63 (CuPy sends uint64, 8 bytes)"
        raise OverflowError(f"Python integer {arg} out of bounds for int64/uint64")
    if isinstance(arg, np.generic):
        return arg, f"numpy.{arg.dtype.name} ({arg.dtype.itemsize} bytes)"
    raise KernelArgumentError(
        f"Unsupported type {kind} (CuPy accepts cupy/numpy arrays, None, numpy scalars and "
        "Python bool/int/float/complex of exactly those types)"
    )


def _is_cupy_array(arg):
    return type(arg).__module__.split(".")[0] == "cupy" and hasattr(arg, "data")


class HostKernel:
    """One kernel of a HostModule, called like `cupy.RawKernel`."""

    def __init__(self, module, name, index):
        self.module = module
        self.name = name
        library = module._library
        self._launch = library.launchers[index]
        self._last_error = library.lib.gds_emu_last_error
        self.params = library.params[index]
        sig = library.signatures[index]
        # "void (*)(double, const double*)" -> "axpy<double>(double, const double*)"
        self.signature = name + sig[len("void (*)"):] if sig.startswith("void (*)(") else sig

    @property
    def num_params(self):
        return len(self.params)

    def __repr__(self):
        return f"<HostKernel {self.name}: {self.signature}>"

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None):
        grid = _dims(grid, "grid")
        block = _dims(block, "block")
        for axis, (g, limit) in enumerate(zip(grid, _MAX_GRID, strict=True)):
            if g > limit:
                raise ValueError(f"grid[{axis}] = {g} exceeds CUDA's limit {limit}")
        for axis, (b, limit) in enumerate(zip(block, _MAX_BLOCK, strict=True)):
            if b > limit:
                raise ValueError(f"block[{axis}] = {b} exceeds CUDA's limit {limit}")
        if block[0] * block[1] * block[2] > _MAX_THREADS_PER_BLOCK:
            raise ValueError(
                f"block {block} has more than {_MAX_THREADS_PER_BLOCK} threads, CUDA's limit"
            )
        if shared_mem:
            raise ValueError(
                "shared_mem must be 0: the host emulation runs no kernel that uses shared memory"
            )
        if isinstance(args, (str, bytes)) or not hasattr(args, "__len__"):
            raise TypeError(f"args must be a tuple or list, got {type(args).__name__}")
        args = list(args)
        if len(args) != len(self.params):
            raise KernelArgumentError(
                f"{self.signature} takes {len(self.params)} arguments, got {len(args)}"
            )
        keep = []
        pointers = (ctypes.c_void_p * max(1, len(args)))()
        for i, (arg, param) in enumerate(zip(args, self.params, strict=True)):
            pointers[i] = self._argument(i, arg, param, keep)
        g = (ctypes.c_uint * 3)(*grid)
        b = (ctypes.c_uint * 3)(*block)
        if self._launch(g, b, pointers) != 0:
            raise RuntimeError(
                f"kernel {self.name} threw a C++ exception: "
                f"{self._last_error().decode(errors='replace')}"
            )

    # -- argument conversion --

    def _fail(self, i, param, message):
        raise KernelArgumentError(
            f"argument {i} of {self.signature}: the parameter is "
            f"{_describe_param(param)}; {message}"
        )

    def _argument(self, i, arg, param, keep):
        if param["kind"] == K_POINTER:
            return self._pointer_argument(i, arg, param, keep)
        if arg is None:
            self._fail(i, param, "None passes a null pointer, which fits only a pointer parameter")
        if isinstance(arg, np.ndarray):
            if arg.size != 1:
                self._fail(
                    i, param,
                    f"got a numpy.ndarray of shape {arg.shape}. Only numpy.ndarrays of size one "
                    "can be passed by value (CuPy raises TypeError too)",
                )
            dtype, data, origin = arg.dtype, arg, f"a one-element {arg.dtype} array"
        elif _is_cupy_array(arg):
            self._fail(i, param, "got a cupy.ndarray, which CuPy passes as a pointer")
        else:
            value, origin = _cupy_scalar(arg)
            dtype, data = value.dtype, value
        if dtype.hasobject:
            self._fail(i, param, f"got {origin}, which holds Python objects")
        nbytes = dtype.itemsize
        kinds = _VALUE_KINDS.get(param["kind"], "")
        kind_ok = dtype.kind in kinds or (
            # a non-negative Python int arrives as int64 bits, which an unsigned reads right
            param["kind"] == K_UNSIGNED and type(arg) is int and arg >= 0
        )
        if not kind_ok:
            hint = ""
            if param["kind"] == K_FLOAT and type(arg) is int:
                hint = " (pass float(x): the device would read the int64 bits as a double)"
            elif param["kind"] == K_OTHER:
                hint = " (pass a one-element NumPy structured array of the struct's layout)"
            self._fail(i, param, f"got {origin}{hint}")
        if nbytes != param["size"]:
            self._fail(
                i, param,
                f"got {origin}: {nbytes} bytes where the kernel reads {param['size']}",
            )
        if not dtype.isnative:
            self._fail(i, param, f"got {origin} in non-native byte order")
        align = max(1, param["align"])
        buf = np.zeros(nbytes + align, dtype=np.uint8)
        offset = (-buf.ctypes.data) % align
        buf[offset:offset + nbytes] = np.frombuffer(data.tobytes(), dtype=np.uint8)
        keep.append(buf)
        return buf.ctypes.data + offset

    def _pointer_argument(self, i, arg, param, keep):
        if arg is None:
            holder = ctypes.c_void_p(None)
        elif isinstance(arg, np.ndarray):
            self._check_array(i, arg, param)
            keep.append(arg)
            holder = ctypes.c_void_p(arg.ctypes.data if arg.nbytes else None)
        elif _is_cupy_array(arg):
            self._fail(
                i, param,
                "got a cupy.ndarray, which lives in device memory; the host emulation runs on "
                "numpy.ndarrays",
            )
        else:
            self._fail(
                i, param,
                f"got {type(arg).__name__}; pass a numpy.ndarray (standing for a cupy.ndarray) "
                "or None",
            )
        keep.append(holder)
        return ctypes.addressof(holder)

    def _check_array(self, i, arr, param):
        if arr.dtype.hasobject:
            self._fail(i, param, "got an array of Python objects")
        if not arr.flags.c_contiguous:
            self._fail(
                i, param,
                "got a non-C-contiguous array: CuPy passes only the data pointer, so the kernel "
                "would read it as contiguous; pass numpy.ascontiguousarray(a)",
            )
        if not param["pointee_const"] and not arr.flags.writeable:
            self._fail(i, param, "got a read-only array for a pointer to non-const data")
        kind = param["pointee_kind"]
        size = param["pointee_size"]
        if kind in (K_BOOL, K_SIGNED, K_UNSIGNED, K_FLOAT, K_ENUM):
            if arr.dtype.kind not in _VALUE_KINDS[kind] or arr.dtype.itemsize != size:
                self._fail(i, param, f"got an array of {arr.dtype}")
            if not arr.dtype.isnative:
                self._fail(i, param, f"got an array of {arr.dtype} in non-native byte order")
        elif kind in (K_OTHER, K_POINTER) and size:
            if arr.nbytes % size:
                self._fail(
                    i, param,
                    f"got {arr.nbytes} bytes of {arr.dtype}, not a whole number of {size}-byte "
                    "elements",
                )
        align = param["pointee_align"]
        if arr.nbytes and align and arr.ctypes.data % align:
            self._fail(i, param, f"got data at an address not aligned to {align} bytes")
