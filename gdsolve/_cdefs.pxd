# Cython declarations of the C++ core (csrc/include/gdsolve/*.h) shared by every binding module,
# plus converters from the plain Python dicts built by gdsolve.optim / gdsolve.schedules to the
# C++ config structs, and the Ctrl-C poll both training loops call back into. No math here.

from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int64_t

cdef extern from "gdsolve/config.h":
    ctypedef int64_t gds_int64

cdef extern from "gdsolve/codes.h" namespace "gds":
    cdef cppclass CodeEntry:
        const char* kind
        const char* name
        int value
    const CodeEntry* code_table(int* n_entries)

cdef extern from "gdsolve/optimizers.h" namespace "gds":
    cdef struct OptimizerConfig:
        int code
        double lr
        double momentum
        double dampening
        int nesterov
        double beta1
        double beta2
        double eps
        double weight_decay
        int amsgrad
        double lr_decay
        double initial_accumulator_value
        double alpha
        int centered
        double momentum_decay
        int decoupled_weight_decay
    cdef struct OptimizerScalars:
        gds_int64 step
        double mu_product
    cdef struct OptimizerStep:
        double lr
        double momentum
    int optimizer_state_slots(const OptimizerConfig& c) nogil
    OptimizerStep optimizer_begin_step(const OptimizerConfig& c, OptimizerScalars& s, double lr,
                                       double momentum_override) nogil
    void optimizer_update_array[T](const OptimizerConfig& c, const OptimizerStep& st, T* w,
                                   const T* g, T* s0, T* s1, T* s2, gds_int64 n) nogil

cdef extern from "gdsolve/schedules.h" namespace "gds":
    cdef struct ScheduleConfig:
        int code
        double base_lr
        double alpha
        double optimal_t0
        double power_t
        double step_size
        double gamma
        int n_milestones
        gds_int64 milestones[32]
        double T_max
        double eta_min
        double T_0
        double T_mult
        double max_lr
        double total_steps
        double pct_start
        int anneal
        double div_factor
        double final_div_factor
        int three_phase
        int cycle_momentum
        double base_momentum
        double max_momentum
        double step_size_up
        double step_size_down
        int mode
        double warmup_steps
        double warmup_start_factor
    cdef struct ReduceOnPlateauConfig:
        double factor
        int patience
        double threshold
        int threshold_mode_rel
        int cooldown
        double min_lr
        double eps
    cdef struct ReduceOnPlateauState:
        double best
        int num_bad_epochs
        int cooldown_counter
        double lr
    double optimal_t0(double alpha, double dloss_at_minus_typw) nogil
    double optimal_typw(double alpha) nogil
    double schedule_lr(const ScheduleConfig& s, double step, double t) nogil
    double schedule_momentum(const ScheduleConfig& s, double step) nogil
    int reduce_on_plateau_step(const ReduceOnPlateauConfig& c, ReduceOnPlateauState& s,
                               double metric) nogil
    cdef struct PlateauStop:
        double best
        int no_improvement
    int plateau_stop_update(PlateauStop& p, double value, double tol, int n_iter_no_change,
                            int higher_is_better, int adaptive, double current_lr,
                            double& lr_factor) nogil

cdef extern from "gdsolve/losses.h" namespace "gds":
    T loss_value[T](int code, T p, T y, T param) nogil
    T loss_derivative[T](int code, T p, T y, T param) nogil
    T softmax_cross_entropy[T](T* z, int k, int label) nogil

cdef extern from "gdsolve/activations.h" namespace "gds":
    T activation_value[T](int code, T z) nogil
    T activation_derivative_from_output[T](int code, T a) nogil

cdef extern from "gdsolve/penalties.h" namespace "gds":
    cdef struct PenaltySplit:
        double l2
        double l1
    PenaltySplit penalty_split(int code, double alpha, double l1_ratio) nogil
    T penalty_value[T](const PenaltySplit& s, const T* w, gds_int64 n) nogil
    T soft_threshold[T](T w, T threshold) nogil
    void cumulative_l1_truncate[T](T& w, T& q, T u) nogil

cdef extern from "gdsolve/clip.h" namespace "gds":
    void clip_gradient[T](int code, double limit, T* g, gds_int64 n) nogil


cdef inline OptimizerConfig optimizer_config_from_dict(dict d) except *:
    """Fill the C++ struct from gdsolve.optim.Optimizer.to_config(); missing keys are 0."""
    cdef OptimizerConfig c
    c.code = int(d["code"])
    c.lr = float(d.get("lr", 0.0))
    c.momentum = float(d.get("momentum", 0.0))
    c.dampening = float(d.get("dampening", 0.0))
    c.nesterov = int(bool(d.get("nesterov", False)))
    c.beta1 = float(d.get("beta1", 0.0))
    c.beta2 = float(d.get("beta2", 0.0))
    c.eps = float(d.get("eps", 0.0))
    c.weight_decay = float(d.get("weight_decay", 0.0))
    c.amsgrad = int(bool(d.get("amsgrad", False)))
    c.lr_decay = float(d.get("lr_decay", 0.0))
    c.initial_accumulator_value = float(d.get("initial_accumulator_value", 0.0))
    c.alpha = float(d.get("alpha", 0.0))
    c.centered = int(bool(d.get("centered", False)))
    c.momentum_decay = float(d.get("momentum_decay", 0.0))
    c.decoupled_weight_decay = int(bool(d.get("decoupled_weight_decay", False)))
    return c


cdef inline ReduceOnPlateauConfig plateau_config_from_dict(dict d) except *:
    """Fill the C++ struct from ReduceLROnPlateau.plateau_config() (also contained in its
    to_config()); missing keys take PyTorch's defaults."""
    cdef ReduceOnPlateauConfig c
    c.factor = float(d.get("factor", 0.1))
    c.patience = int(d.get("patience", 10))
    c.threshold = float(d.get("threshold", 1e-4))
    c.threshold_mode_rel = int(d.get("threshold_mode", "rel") == "rel")
    c.cooldown = int(d.get("cooldown", 0))
    c.min_lr = float(d.get("min_lr", 0.0))
    c.eps = float(d.get("eps", 1e-8))
    return c


cdef inline ScheduleConfig schedule_config_from_dict(dict d) except *:
    """Fill the C++ struct from gdsolve.schedules.Schedule.to_config(); missing keys are 0."""
    cdef ScheduleConfig s
    cdef int i
    s.code = int(d["code"])
    s.base_lr = float(d.get("base_lr", 0.0))
    s.alpha = float(d.get("alpha", 0.0))
    s.optimal_t0 = float(d.get("optimal_t0", 0.0))
    s.power_t = float(d.get("power_t", 0.0))
    s.step_size = float(d.get("step_size", 1.0))
    s.gamma = float(d.get("gamma", 1.0))
    milestones = list(d.get("milestones", ()))
    if len(milestones) > 32:
        raise ValueError("at most 32 milestones are supported")
    s.n_milestones = len(milestones)
    for i in range(32):
        s.milestones[i] = int(milestones[i]) if i < len(milestones) else 0
    s.T_max = float(d.get("T_max", 1.0))
    s.eta_min = float(d.get("eta_min", 0.0))
    s.T_0 = float(d.get("T_0", 1.0))
    s.T_mult = float(d.get("T_mult", 1.0))
    s.max_lr = float(d.get("max_lr", 0.0))
    s.total_steps = float(d.get("total_steps", 1.0))
    s.pct_start = float(d.get("pct_start", 0.3))
    s.anneal = int(d.get("anneal", 0))
    s.div_factor = float(d.get("div_factor", 25.0))
    s.final_div_factor = float(d.get("final_div_factor", 1e4))
    s.three_phase = int(bool(d.get("three_phase", False)))
    s.cycle_momentum = int(bool(d.get("cycle_momentum", False)))
    s.base_momentum = float(d.get("base_momentum", 0.85))
    s.max_momentum = float(d.get("max_momentum", 0.95))
    s.step_size_up = float(d.get("step_size_up", 1.0))
    s.step_size_down = float(d.get("step_size_down", 0.0))
    s.mode = int(d.get("mode", 0))
    s.warmup_steps = float(d.get("warmup_steps", 0.0))
    s.warmup_start_factor = float(d.get("warmup_start_factor", 0.0))
    return s


cdef inline int check_signals_for_loop(void* context) noexcept nogil:
    # The compiled loops' Ctrl-C poll (called at most every ~0.1 s with the GIL released): runs
    # Python's signal handlers; a KeyboardInterrupt becomes the return value 1, which stops the
    # loop (the estimator then warns and keeps the last completed epoch), and is cleared here.
    with gil:
        try:
            PyErr_CheckSignals()  # raises KeyboardInterrupt after Ctrl-C
        except BaseException:
            return 1
    return 0
