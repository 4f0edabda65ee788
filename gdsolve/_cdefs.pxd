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

cdef extern from "gdsolve/cpu/fit_setup.h" namespace "gds":
    cdef cppclass StateView[T]:
        T* params
        T* slot0
        T* slot1
        T* slot2
        T* avg_params
        T* l1_q
        T* history
        gds_int64 n_history
        RowIndex* order
        gds_int64 n_order
        FitScalars* scalars
    cdef cppclass EpochRunner[T]:
        int run_epoch(StateView[T]& s, double& objective) nogil
        double score(const StateView[T]& s) nogil
    cdef struct FitSetup:
        OptimizerConfig optimizer
        OptimizerConfig companion
        ScheduleConfig schedule
        DriverConfig driver
        CpuConfig cpu
        InterruptCallback interrupt
        void* interrupt_context
        double interrupt_interval


cdef inline void* struct_ptr(object rec, str name, size_t size, bint writeable=False) except NULL:
    """The bytes of a gdsolve._structs.record(name, ...) as a pointer to the C++ struct (of
    `size` bytes, checked), e.g. <OptimizerConfig*>struct_ptr(rec, "OptimizerConfig",
    sizeof(OptimizerConfig)). With `writeable`, C++ may update the record in place. The checks
    read the array through NumPy's C API: the driver calls this several times an epoch."""
    from gdsolve import _structs

    cdef cnp.ndarray arr
    if not cnp.PyArray_Check(rec) or cnp.PyArray_SIZE(<cnp.ndarray>rec) != 1:
        raise ValueError(f"expected a one-element {name} record (gdsolve._structs.record), "
                         f"got {type(rec).__name__}")
    arr = <cnp.ndarray>rec
    expected = _structs.dtype(name)
    if <object>cnp.PyArray_DESCR(arr) is not expected and arr.dtype != expected:
        raise ValueError(f"expected a one-element {name} record (gdsolve._structs.record), "
                         f"got {type(rec).__name__}")
    if <size_t>cnp.PyArray_ITEMSIZE(arr) != size:
        raise RuntimeError(f"{name}: the record has {arr.dtype.itemsize} bytes, the compiled "
                           f"struct {size}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr) or (writeable and not cnp.PyArray_ISWRITEABLE(arr)):
        raise ValueError(f"the {name} record must be contiguous" +
                         (" and writeable" if writeable else ""))
    return cnp.PyArray_DATA(arr)


ctypedef fused state_float:
    float
    double


cdef inline object check_vector(object a, object dtype, Py_ssize_t n, str what,
                                bint optional=False):
    """`a` as a contiguous 1-d array of `dtype` with n elements (n < 0: any), or ValueError
    naming `what`."""
    cdef cnp.ndarray arr
    if cnp.PyArray_Check(a):  # the common case in C: NumPy's builtin dtypes are singletons
        arr = <cnp.ndarray>a
        if (<object>cnp.PyArray_DESCR(arr) is dtype and cnp.PyArray_NDIM(arr) == 1
                and cnp.PyArray_IS_C_CONTIGUOUS(arr) and (n < 0 or cnp.PyArray_DIM(arr, 0) == n)):
            return a
    import numpy as np

    if a is None:
        if optional:
            return None
        raise ValueError(f"{what} is required")
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.ndim != 1:
        raise ValueError(f"{what} must be a 1-d {np.dtype(dtype).name} array")
    if not a.flags.c_contiguous:
        raise ValueError(f"{what} must be contiguous")
    if n >= 0 and a.shape[0] != n:
        raise ValueError(f"{what} has {a.shape[0]} elements, expected {n}")
    return a


cdef inline state_float* _data(object a, state_float sample) except? NULL:
    """The first element of a writeable contiguous 1-d array of state_float (NULL when None or
    empty); a memoryview checks any other array."""
    cdef state_float[::1] view
    cdef int type_num = cnp.NPY_DOUBLE if state_float is double else cnp.NPY_FLOAT
    cdef cnp.ndarray arr
    if a is None:
        return NULL
    if cnp.PyArray_Check(a):
        arr = <cnp.ndarray>a
        if cnp.PyArray_NDIM(arr) == 1 and cnp.PyArray_DIM(arr, 0) == 0:
            return NULL
        if (cnp.PyArray_TYPE(arr) == type_num and cnp.PyArray_NDIM(arr) == 1
                and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISWRITEABLE(arr)
                and cnp.PyArray_ISNOTSWAPPED(arr)):
            return <state_float*>cnp.PyArray_DATA(arr)
    if a.shape[0] == 0:
        return NULL
    view = a
    return &view[0]


cdef inline object fill_state_view(StateView[state_float]& v, object state, object dtype,
                                   Py_ssize_t n_params, Py_ssize_t n_order, Py_ssize_t n_avg,
                                   Py_ssize_t n_l1, state_float sample,
                                   Py_ssize_t n_history=0):
    """Point the C++ view at a gdsolve.engine.FitState's arrays, checked: parameters and slots
    of n_params elements, the order of n_order rows, the averaged parameters / L1 ledger /
    L-BFGS history when n_avg / n_l1 / n_history > 0 (else null). Returns the order array."""
    check_vector(state.params, dtype, n_params, "state.params")
    check_vector(state.slot0, dtype, n_params, "state.slot0")
    check_vector(state.slot1, dtype, n_params, "state.slot1")
    check_vector(state.slot2, dtype, n_params, "state.slot2")
    if n_avg > 0:
        check_vector(state.avg_params, dtype, n_avg, "state.avg_params")
    if n_l1 > 0:
        check_vector(state.l1_q, dtype, n_l1, "state.l1_q")
    if n_history > 0:
        check_vector(state.history, dtype, n_history, "state.history")
    order = check_vector(state.order, <object>cnp.PyArray_DescrFromType(cnp.NPY_UINT32), n_order,
                         "state.order")
    if n_order > 0 and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>order):
        raise ValueError("state.order must be writeable (executors shuffle it in place)")
    v.params = _data(state.params, sample)
    v.slot0 = _data(state.slot0, sample)
    v.slot1 = _data(state.slot1, sample)
    v.slot2 = _data(state.slot2, sample)
    v.avg_params = _data(state.avg_params, sample) if n_avg > 0 else NULL
    v.l1_q = _data(state.l1_q, sample) if n_l1 > 0 else NULL
    v.history = _data(state.history, sample) if n_history > 0 else NULL
    v.n_history = n_history
    v.order = <RowIndex*>cnp.PyArray_DATA(<cnp.ndarray>order) if n_order > 0 else NULL
    v.n_order = n_order
    v.scalars = <FitScalars*>struct_ptr(state.scalars, "FitScalars", sizeof(FitScalars), True)
    return order


cdef inline tuple runner_epoch(EpochRunner[state_float]* runner, StateView[state_float]& view):
    """One epoch of a CPU executor with the GIL released: (gds::FitStatus, objective)."""
    cdef double objective = 0.0
    cdef int status
    with nogil:
        status = runner.run_epoch(view, objective)
    return status, objective


cdef inline double runner_score(EpochRunner[state_float]* runner,
                                StateView[state_float]& view) except? -1.0:
    """A CPU executor's validation score at the state's model, with the GIL released."""
    cdef double value
    with nogil:
        value = runner.score(view)
    return value


cdef inline int fill_fit_setup(FitSetup& fit, object optimizer, object schedule, object driver,
                               object cpu, double interrupt_interval,
                               object companion=None) except -1:
    """A CPU executor's FitSetup from the records, with the Ctrl-C poll below. `companion`
    (an OptimizerConfig record, or None: the header's defaults) is Muon's companion rule."""
    from gdsolve import _structs

    fit.optimizer = (<OptimizerConfig*>struct_ptr(optimizer, "OptimizerConfig",
                                                  sizeof(OptimizerConfig)))[0]
    if companion is None:
        companion = _structs.record("OptimizerConfig")
    fit.companion = (<OptimizerConfig*>struct_ptr(companion, "OptimizerConfig",
                                                  sizeof(OptimizerConfig)))[0]
    fit.schedule = (<ScheduleConfig*>struct_ptr(schedule, "ScheduleConfig",
                                                sizeof(ScheduleConfig)))[0]
    fit.driver = (<DriverConfig*>struct_ptr(driver, "DriverConfig", sizeof(DriverConfig)))[0]
    fit.cpu = (<CpuConfig*>struct_ptr(cpu, "CpuConfig", sizeof(CpuConfig)))[0]
    fit.interrupt = check_signals_for_loop
    fit.interrupt_context = NULL
    fit.interrupt_interval = interrupt_interval
    if int(driver["max_iter"][0]) < 1:
        raise ValueError("max_iter must be >= 1")
    return 0


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
