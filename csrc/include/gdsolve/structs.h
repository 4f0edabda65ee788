// gdsolve/structs.h - every struct that crosses the Python boundary (configs, the fit state's
// scalars, the per-step constants the GPU keeps on the device), each defined once as an X-macro
// field list. From that one list come the C++ struct (here, for host and NVRTC alike) and, on the
// host, a layout table (name, kind, offset, default of every field) that gdsolve/_structs.py
// reads through the compiled core to build the NumPy dtypes, the defaults and the records the
// bindings copy into these structs. Nothing else spells the fields out.
#pragma once
#include "config.h"

#ifndef GDS_DEVICE_COMPILE
#include <cstddef>
#include <cstdint>
#include <limits>
#endif

#if defined(__CUDACC_RTC__)
typedef unsigned long long gds_uint64;
#else
typedef std::uint64_t gds_uint64;
#endif

// F(S, type, name, default) declares a scalar field of struct S; A(S, type, name, count) an array
// field (zeros).
// Defaults are what a config dict may leave out; GDS_INF is +infinity.

// Hyper-parameters of the update rules; PyTorch's names (Sophia: the paper's). Unused fields are
// ignored by the rules that do not need them. Formulas: docs/optimizers.md.
#define GDS_OPTIMIZER_CONFIG_FIELDS(F, A, S)                                                       \
    F(S, int, code, 0)                       /* gds::Optimizer */                                  \
    F(S, double, lr, 0.0)                    /* base learning rate (a schedule may override it) */ \
    F(S, double, momentum, 0.0)              /* SGD, RMSprop */                                    \
    F(S, double, dampening, 0.0)             /* SGD */                                             \
    F(S, int, nesterov, 0)                   /* SGD */                                             \
    F(S, double, beta1, 0.0)                 /* Adam family, Lion */                               \
    F(S, double, beta2, 0.0)                                                                       \
    F(S, double, eps, 0.0)                   /* Adagrad, RMSprop, Adam family */                   \
    F(S, double, weight_decay, 0.0)          /* coupled (L2 into the gradient) unless decoupled */ \
    F(S, int, amsgrad, 0)                    /* Adam, AdamW */                                     \
    F(S, double, lr_decay, 0.0)              /* Adagrad */                                         \
    F(S, double, initial_accumulator_value, 0.0) /* Adagrad (used by init, not by the update) */   \
    F(S, double, alpha, 0.0)                 /* RMSprop smoothing constant */                      \
    F(S, int, centered, 0)                   /* RMSprop */                                         \
    F(S, double, momentum_decay, 0.0)        /* NAdam psi */                                       \
    F(S, int, decoupled_weight_decay, 0)     /* NAdam, RAdam (AdamW and Lion always decouple) */ \
    F(S, double, ns_a, 3.4445)               /* Muon: Newton-Schulz coefficients (a, b, c) */      \
    F(S, double, ns_b, -4.775)                                                                     \
    F(S, double, ns_c, 2.0315)                                                                     \
    F(S, int, ns_steps, 5)                   /* Muon: Newton-Schulz iterations */                  \
    F(S, int, adjust_lr_fn, 0)               /* Muon: gds::MuonAdjustLr */                         \
    F(S, double, gamma, 0.04)                /* Sophia: scale of the Hessian in the denominator */ \
    F(S, int, k, 10)                         /* Sophia: Hessian estimate every k steps */          \
    F(S, int, hessian_estimator, 0)          /* Sophia: gds::HessianEstimator */

// Scalar state of an update rule carried between steps.
#define GDS_OPTIMIZER_SCALARS_FIELDS(F, A, S) \
    F(S, gds_int64, step, 0)                  /* steps taken so far */ \
    F(S, double, mu_product, 1.0)             /* NAdam: product of mu_1..mu_t */

// Per-step constants shared by every element of one step (optimizer_begin_step's result).
#define GDS_OPTIMIZER_STEP_FIELDS(F, A, S)                                                        \
    F(S, double, lr, 0.0)                                                                          \
    F(S, double, momentum, 0.0)       /* SGD/RMSprop momentum or Adam/Lion beta1 in use */          \
    F(S, double, decay_factor, 1.0)   /* multiplicative decoupled decay, 1 - lr*wd (1: coupled) */ \
    F(S, double, l2, 0.0)             /* coupled weight decay added to the gradient */             \
    F(S, double, step_size, 0.0)      /* Adam: lr / (1 - beta1^t); Adagrad: lr / (1 + (t-1) d) */  \
    F(S, double, inv_sqrt_bc2, 1.0)   /* 1 / sqrt(1 - beta2^t) */                                  \
    F(S, double, inv_bc1, 1.0)        /* 1 / (1 - beta1^t) */                                      \
    F(S, double, bc2, 1.0)            /* 1 - beta2^t */                                            \
    F(S, double, coef_grad, 0.0)      /* NAdam: lr (1 - mu_t) / (1 - prod mu) */                   \
    F(S, double, coef_momentum, 0.0)  /* NAdam: lr mu_{t+1} / (1 - prod mu * mu_{t+1}) */          \
    F(S, double, rect, 1.0)           /* RAdam rectification term (valid when use_rect) */         \
    F(S, int, use_rect, 0)            /* RAdam: rho_t > 5 */                                       \
    F(S, int, first, 0)               /* 1 on the first step (momentum buffer starts as g) */

#define GDS_MAX_MILESTONES 32

// Learning-rate schedules (docs/schedules.md): PyTorch's names for PyTorch's schedules,
// scikit-learn's for optimal / invscaling.
#define GDS_SCHEDULE_CONFIG_FIELDS(F, A, S)                                                        \
    F(S, int, code, 0)                   /* gds::Schedule */                                       \
    F(S, double, base_lr, 0.0)           /* lr / eta0: the starting (or constant) rate */          \
    F(S, double, alpha, 0.0)             /* optimal: regularisation strength */                    \
    F(S, double, optimal_t0, 0.0)        /* optimal: t0 = 1 / (eta_init * alpha) */                \
    F(S, double, power_t, 0.0)           /* invscaling exponent */                                 \
    F(S, double, step_size, 1.0)         /* StepLR step_size (steps) */                            \
    F(S, double, gamma, 1.0)             /* step / multistep / exponential / cyclic exp_range */   \
    F(S, int, n_milestones, 0)                                                                     \
    A(S, gds_int64, milestones, GDS_MAX_MILESTONES) /* MultiStepLR, increasing */                  \
    F(S, double, T_max, 1.0)             /* cosine */                                              \
    F(S, double, eta_min, 0.0)                                                                     \
    F(S, double, T_0, 1.0)               /* warm restarts */                                       \
    F(S, double, T_mult, 1.0)                                                                      \
    F(S, double, max_lr, 0.0)            /* one-cycle, cyclic */                                   \
    F(S, double, total_steps, 1.0)                                                                 \
    F(S, double, pct_start, 0.3)                                                                   \
    F(S, int, anneal, 0)                 /* gds::Anneal */                                         \
    F(S, double, div_factor, 25.0)                                                                 \
    F(S, double, final_div_factor, 1e4)                                                            \
    F(S, int, three_phase, 0)                                                                      \
    F(S, int, cycle_momentum, 0)                                                                   \
    F(S, double, base_momentum, 0.85)                                                              \
    F(S, double, max_momentum, 0.95)                                                               \
    F(S, double, step_size_up, 1.0)      /* cyclic */                                              \
    F(S, double, step_size_down, 0.0)                                                              \
    F(S, int, mode, 0)                   /* gds::CyclicMode */                                     \
    F(S, double, warmup_steps, 0.0)      /* linear warm-up in front of any schedule (0: none) */   \
    F(S, double, warmup_start_factor, 0.0)

// PyTorch's ReduceLROnPlateau (mode "min"), and its state.
#define GDS_REDUCE_ON_PLATEAU_CONFIG_FIELDS(F, A, S) \
    F(S, double, factor, 0.1)                        \
    F(S, int, patience, 10)                          \
    F(S, double, threshold, 1e-4)                    \
    F(S, int, threshold_mode_rel, 1) /* 1: relative, 0: absolute */ \
    F(S, int, cooldown, 0)                           \
    F(S, double, min_lr, 0.0)                        \
    F(S, double, eps, 1e-8)

#define GDS_REDUCE_ON_PLATEAU_STATE_FIELDS(F, A, S) \
    F(S, double, best, GDS_INF)                     \
    F(S, int, num_bad_epochs, 0)                    \
    F(S, int, cooldown_counter, 0)                  \
    F(S, double, lr, 0.0)                           /* current learning rate */

// scikit-learn's stopping rule / `adaptive` schedule state (schedules.h: plateau_stop_update).
#define GDS_PLATEAU_STOP_FIELDS(F, A, S) \
    F(S, double, best, GDS_INF)          \
    F(S, int, no_improvement, 0)

// A linear model: K outputs (1, or the classes of a multinomial model) over d features, the
// parameters laid out as K*d weights (row k = output k) then K intercepts. The objective is
// (1/n) sum_i s_i loss(y_i, x_i W' + b) + alpha R(W) (gds::Penalty R, l1_ratio for elasticnet).
#define GDS_LINEAR_CONFIG_FIELDS(F, A, S)                                                           \
    F(S, int, loss, 0)                /* gds::Loss; LOG: y in {-1, +1}; SOFTMAX: class indices */   \
    F(S, double, loss_param, 0.1)     /* epsilon of huber / epsilon_insensitive */                  \
    F(S, int, n_outputs, 1)           /* K */                                                       \
    F(S, int, fit_intercept, 1)                                                                     \
    F(S, int, penalty, 0)             /* gds::Penalty */                                            \
    F(S, double, alpha, 0.0)                                                                        \
    F(S, double, l1_ratio, 0.0)                                                                     \
    F(S, gds_int64, average_start, 0) /* averaged iterates from this sample count on (0: off) */    \
    F(S, int, clip, 0)                /* gds::Clip of each update's data gradient */                \
    F(S, double, clip_limit, 0.0)                                                                   \
    F(S, int, spectral, 0)            /* full batch: spectral steps, line search (model/spectral.h) */ \
    F(S, double, grad_tol, 0.0)       /* spectral: stop at ||min-norm subgradient||_inf <= grad_tol */ \
    F(S, int, lbfgs_memory, 0)        /* spectral without L1: L-BFGS directions from this many      \
                                      pairs (model/lbfgs.h); 0: Barzilai-Borwein steps */

// A dense MLP's training rules (the layer sizes travel separately): hidden activation, the
// output loss (SQUARED, LOG per output, SOFTMAX), scikit-learn's L2 convention
// 0.5 alpha ||W||^2 / batch over the coefficient matrices, gradient clipping.
#define GDS_MLP_CONFIG_FIELDS(F, A, S)                           \
    F(S, int, activation, 1)          /* gds::Activation */      \
    F(S, int, loss, 0)                /* gds::Loss */            \
    F(S, double, alpha, 0.0)                                     \
    F(S, int, clip, 0)                /* gds::Clip of the flat batch gradient */ \
    F(S, double, clip_limit, 0.0)

// The epoch driver's rules, the same for every model kind and executor (driver/epoch_rules.h).
#define GDS_DRIVER_CONFIG_FIELDS(F, A, S)                                                           \
    F(S, int, max_iter, 1)            /* epochs of the whole fit */                                 \
    F(S, gds_int64, batch_size, 0)    /* rows per update; 0: the whole training set */              \
    F(S, int, shuffle, 1)             /* reshuffle the row order at the start of every epoch */     \
    F(S, double, tol, 0.0)            /* improvement below tol counts as none */                    \
    F(S, int, patience, 5)            /* epochs in a row without improvement that end a plateau */  \
    F(S, int, count_plateau, 0)       /* track the plateau counters (scikit-learn's rule) */        \
    F(S, int, stop_on_plateau, 0)     /* a plateau stops the fit (else only `adaptive` acts) */     \
    F(S, int, monitor_score, 0)       /* decide on the validation score (higher is better) */       \
    F(S, int, plateau_mode, 0)        /* gds::PlateauMode: none, adaptive, reduce_on_plateau */     \
    F(S, int, keep_best, 0)           /* end with the parameters of the best validation score */

// The CPU executor's threads (cpu/worker_team.h, cpu/row_gatherer.h).
#define GDS_CPU_CONFIG_FIELDS(F, A, S)                                                              \
    F(S, int, n_threads, 1)           /* threads sharing each batch's rows; 1: none */              \
    F(S, int, gather_rows, -1)        /* per-sample, shuffled: -1 auto, 0 off, 1 on, 2 on without   \
                                      the helper thread (tests) */

// Everything scalar a fit carries from one step to the next (the arrays live beside it in a
// FitState: parameters, optimizer slots, averaged parameters, L1 ledger, row order).
#define GDS_FIT_SCALARS_FIELDS(F, A, S)                                                             \
    F(S, int, epoch, 0)               /* epochs completed in this fit */                            \
    F(S, gds_int64, step, 0)          /* updates taken: the schedules' step */                      \
    F(S, double, t, 1.0)              /* scikit-learn's t: samples seen + 1 */                      \
    F(S, gds_int64, optimizer_step, 0) /* OptimizerScalars.step (bias corrections) */               \
    F(S, double, mu_product, 1.0)     /* OptimizerScalars.mu_product (NAdam) */                     \
    F(S, gds_int64, avg_count, 0)     /* iterates averaged so far */                                \
    F(S, double, l1_u, 0.0)           /* per-sample cumulative L1: penalty every weight could have  \
                                      received so far */                                         \
    F(S, double, lr_factor, 1.0)      /* adaptive (/5 on plateaus) and reduce-on-plateau factor */  \
    F(S, gds_uint64, rng, 0)          /* the shuffling generator's state (driver/shuffle.h) */      \
    F(S, double, best, GDS_INF)       /* PlateauStop: best monitored value (minimised) */           \
    F(S, int, no_improvement, 0)                                                                    \
    F(S, double, plateau_best, GDS_INF) /* ReduceOnPlateauState */                                  \
    F(S, int, plateau_bad_epochs, 0)                                                                \
    F(S, int, plateau_cooldown, 0)                                                                  \
    F(S, double, plateau_lr, 0.0)                                                                  \
    F(S, double, spectral_step, 0.0)  /* spectral full batch: the next trial step (0: not begun) */ \
    F(S, double, spectral_f, 0.0)     /* its objective at the parameters */                         \
    F(S, double, spectral_ref, 0.0)   /* Zhang-Hager reference value C */                           \
    F(S, double, spectral_q, 0.0)     /* and its weight Q */                                       \
    F(S, int, lbfgs_pairs, 0)         /* L-BFGS full batch: curvature pairs in the history */       \
    F(S, int, lbfgs_newest, 0)        /* and the newest one's slot */

// Every struct above: X(Name, FIELD_LIST).
#define GDS_STRUCTS(X)                                              \
    X(OptimizerConfig, GDS_OPTIMIZER_CONFIG_FIELDS)                 \
    X(OptimizerScalars, GDS_OPTIMIZER_SCALARS_FIELDS)               \
    X(OptimizerStep, GDS_OPTIMIZER_STEP_FIELDS)                     \
    X(ScheduleConfig, GDS_SCHEDULE_CONFIG_FIELDS)                   \
    X(ReduceOnPlateauConfig, GDS_REDUCE_ON_PLATEAU_CONFIG_FIELDS)   \
    X(ReduceOnPlateauState, GDS_REDUCE_ON_PLATEAU_STATE_FIELDS)     \
    X(PlateauStop, GDS_PLATEAU_STOP_FIELDS)                         \
    X(LinearConfig, GDS_LINEAR_CONFIG_FIELDS)                       \
    X(MlpConfig, GDS_MLP_CONFIG_FIELDS)                             \
    X(DriverConfig, GDS_DRIVER_CONFIG_FIELDS)                       \
    X(CpuConfig, GDS_CPU_CONFIG_FIELDS)                             \
    X(FitScalars, GDS_FIT_SCALARS_FIELDS)

namespace gds {

constexpr int kMaxMilestones = GDS_MAX_MILESTONES;

#define GDS_STRUCT_SCALAR(S, type, name, default_value) type name;
#define GDS_STRUCT_ARRAY(S, type, name, count) type name[count];
#define GDS_DEFINE_STRUCT(NAME, FIELDS) \
    struct NAME {                       \
        FIELDS(GDS_STRUCT_SCALAR, GDS_STRUCT_ARRAY, NAME) \
    };
GDS_STRUCTS(GDS_DEFINE_STRUCT)
#undef GDS_DEFINE_STRUCT
#undef GDS_STRUCT_ARRAY
#undef GDS_STRUCT_SCALAR

#ifndef GDS_DEVICE_COMPILE
// ---- Host-only layout table (gdsolve/_structs.py builds the NumPy mirrors from it) -------------

struct FieldLayout {
    const char* name;
    char kind;          // NumPy type character: i (int32), q (int64), Q (uint64), d (double)
    int count;          // 1, or the length of an array field
    gds_int64 offset;   // bytes from the start of the struct
    double default_value;
};

struct StructLayout {
    const char* name;
    gds_int64 size;
    int n_fields;
    const FieldLayout* fields;
};

template <class T> struct FieldKind;
template <> struct FieldKind<int> { static constexpr char value = 'i'; };
template <> struct FieldKind<long> { static constexpr char value = sizeof(long) == 8 ? 'q' : 'i'; };
template <> struct FieldKind<long long> { static constexpr char value = 'q'; };
template <> struct FieldKind<unsigned long> {
    static constexpr char value = sizeof(unsigned long) == 8 ? 'Q' : 'I';
};
template <> struct FieldKind<unsigned long long> { static constexpr char value = 'Q'; };
template <> struct FieldKind<double> { static constexpr char value = 'd'; };

inline const StructLayout* struct_layouts(int* n_structs) {
#define GDS_INF std::numeric_limits<double>::infinity()
#define GDS_LAYOUT_SCALAR(S, type, name, default_value) \
    {#name, FieldKind<type>::value, 1, static_cast<gds_int64>(offsetof(S, name)), \
     static_cast<double>(default_value)},
#define GDS_LAYOUT_ARRAY(S, type, name, count) \
    {#name, FieldKind<type>::value, count, static_cast<gds_int64>(offsetof(S, name)), 0.0},
#define GDS_LAYOUT_FIELDS(NAME, FIELDS) \
    static const FieldLayout NAME##_fields[] = {FIELDS(GDS_LAYOUT_SCALAR, GDS_LAYOUT_ARRAY, NAME)};
#define GDS_LAYOUT_ENTRY(NAME, FIELDS)                                          \
    {#NAME, static_cast<gds_int64>(sizeof(NAME)),                               \
     static_cast<int>(sizeof(NAME##_fields) / sizeof(FieldLayout)), NAME##_fields},
    GDS_STRUCTS(GDS_LAYOUT_FIELDS)
    static const StructLayout table[] = {GDS_STRUCTS(GDS_LAYOUT_ENTRY)};
#undef GDS_LAYOUT_ENTRY
#undef GDS_LAYOUT_FIELDS
#undef GDS_LAYOUT_ARRAY
#undef GDS_LAYOUT_SCALAR
#undef GDS_INF
    *n_structs = static_cast<int>(sizeof(table) / sizeof(table[0]));
    return table;
}
#endif

}  // namespace gds
