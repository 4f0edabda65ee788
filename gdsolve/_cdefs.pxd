# Cython declarations of the C++ core (csrc/include/gdsolve) shared by every binding module: the
# structs of structs.h as opaque types (their fields are defined once, in that header; Python
# fills them as NumPy records, gdsolve/_structs.py, and `struct_ptr` hands a record's bytes to
# C++), the math functions the bindings expose, and the Ctrl-C poll the compiled loops call back
# into. No math here.

from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int64_t, uint32_t, uint64_t
cimport numpy as cnp

cdef extern from "gdsolve/config.h":
    ctypedef int64_t gds_int64

cdef extern from "gdsolve/codes.h" namespace "gds":
    cdef cppclass CodeEntry:
        const char* kind
        const char* name
        int value
    const CodeEntry* code_table(int* n_entries)

cdef extern from "gdsolve/structs.h" namespace "gds":
    ctypedef struct OptimizerConfig:
        pass
    ctypedef struct OptimizerScalars:
        pass
    ctypedef struct OptimizerStep:
        pass
    ctypedef struct ScheduleConfig:
        pass
    ctypedef struct ReduceOnPlateauConfig:
        pass
    ctypedef struct ReduceOnPlateauState:
        pass
    ctypedef struct PlateauStop:
        pass
    ctypedef struct LinearConfig:
        pass
    ctypedef struct MlpConfig:
        pass
    ctypedef struct DriverConfig:
        pass
    ctypedef struct CpuConfig:
        pass
    ctypedef struct FitScalars:
        pass
    cdef cppclass FieldLayout:
        const char* name
        char kind
        int count
        gds_int64 offset
        double default_value
    cdef cppclass StructLayout:
        const char* name
        gds_int64 size
        int n_fields
        const FieldLayout* fields
    const StructLayout* struct_layouts(int* n_structs)

cdef extern from "gdsolve/driver/shuffle.h" namespace "gds":
    ctypedef uint32_t RowIndex

cdef extern from "gdsolve/cpu/interrupt.h" namespace "gds":
    ctypedef int (*InterruptCallback)(void* context) noexcept nogil


cdef inline void* struct_ptr(object rec, str name, size_t size, bint writeable=False) except NULL:
    """The bytes of a gdsolve._structs.record(name, ...) as a pointer to the C++ struct (of
    `size` bytes, checked), e.g. <OptimizerConfig*>struct_ptr(rec, "OptimizerConfig",
    sizeof(OptimizerConfig)). With `writeable`, C++ may update the record in place."""
    from gdsolve import _structs

    if not isinstance(rec, cnp.ndarray) or rec.size != 1 or rec.dtype != _structs.dtype(name):
        raise ValueError(f"expected a one-element {name} record (gdsolve._structs.record), "
                         f"got {type(rec).__name__}")
    if rec.dtype.itemsize != size:
        raise RuntimeError(f"{name}: the record has {rec.dtype.itemsize} bytes, the compiled "
                           f"struct {size}")
    if not rec.flags.c_contiguous or (writeable and not rec.flags.writeable):
        raise ValueError(f"the {name} record must be contiguous" +
                         (" and writeable" if writeable else ""))
    return cnp.PyArray_DATA(<cnp.ndarray>rec)


cdef inline int check_signals_for_loop(void* context) noexcept nogil:
    # The compiled loops' Ctrl-C poll (called at most every ~0.1 s with the GIL released): runs
    # Python's signal handlers; a KeyboardInterrupt becomes the return value 1, which stops the
    # loop (the driver then warns and keeps the last completed epoch), and is cleared here.
    with gil:
        try:
            PyErr_CheckSignals()  # raises KeyboardInterrupt after Ctrl-C
        except BaseException:
            return 1
    return 0
