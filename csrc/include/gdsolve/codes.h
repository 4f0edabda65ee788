// gdsolve/codes.h - the integer codes for losses, activations, penalties, optimizers, schedules,
// gradient clipping, plateau handling and fit status, defined once here. gdsolve/_codes.py
// mirrors them; tests/test_codes.py reads code_table() through the compiled module and proves
// the two agree.
#pragma once
#include "gdsolve/config.h"

// X-macros: (NAME, value). Add a code here and in gdsolve/_codes.py; the test catches a mismatch.
#define GDS_LOSS_CODES(X) \
    X(SQUARED, 0)         \
    X(HUBER, 1)           \
    X(EPSILON_INSENSITIVE, 2) \
    X(LOG, 3)             \
    X(SOFTMAX, 4)

#define GDS_ACTIVATION_CODES(X) \
    X(IDENTITY, 0)              \
    X(RELU, 1)                  \
    X(TANH, 2)                  \
    X(LOGISTIC, 3)

#define GDS_PENALTY_CODES(X) \
    X(NONE, 0)               \
    X(L2, 1)                 \
    X(L1, 2)                 \
    X(ELASTICNET, 3)

#define GDS_OPTIMIZER_CODES(X) \
    X(SGD, 0)                  \
    X(ADAGRAD, 1)              \
    X(RMSPROP, 2)              \
    X(ADAM, 3)                 \
    X(ADAMW, 4)                \
    X(NADAM, 5)                \
    X(RADAM, 6)                \
    X(LION, 7)                 \
    X(MUON, 8)                 \
    X(SOPHIA, 9)

// Muon's learning-rate adjustment for a weight matrix of A rows (outputs) and B columns (inputs):
// torch.optim.Muon's adjust_lr_fn ("original": sqrt(max(1, A / B)); "match_rms_adamw":
// 0.2 sqrt(max(A, B))).
#define GDS_MUON_ADJUST_LR_CODES(X) \
    X(ORIGINAL, 0)                  \
    X(MATCH_RMS_ADAMW, 1)

// Sophia's diagonal Hessian estimate: the Gauss-Newton-Bartlett estimator of Liu et al. (2023)
// (labels sampled from the model), or the exact Gauss-Newton diagonal (linear models).
#define GDS_HESSIAN_ESTIMATOR_CODES(X) \
    X(GNB, 0)                          \
    X(EXACT, 1)

#define GDS_SCHEDULE_CODES(X) \
    X(CONSTANT, 0)            \
    X(OPTIMAL, 1)             \
    X(INVSCALING, 2)          \
    X(ADAPTIVE, 3)            \
    X(STEP, 4)                \
    X(MULTISTEP, 5)           \
    X(EXPONENTIAL, 6)         \
    X(COSINE, 7)              \
    X(COSINE_WARM_RESTARTS, 8) \
    X(ONE_CYCLE, 9)           \
    X(CYCLIC, 10)             \
    X(REDUCE_ON_PLATEAU, 11)

#define GDS_CYCLIC_MODE_CODES(X) \
    X(TRIANGULAR, 0)             \
    X(TRIANGULAR2, 1)            \
    X(EXP_RANGE, 2)

#define GDS_ANNEAL_CODES(X) \
    X(COS, 0)               \
    X(LINEAR, 1)

#define GDS_CLIP_CODES(X) \
    X(NONE, 0)            \
    X(VALUE, 1)           \
    X(NORM, 2)

// What the epoch driver does on a plateau of the monitored value besides stopping:
// scikit-learn's `adaptive` (divide the rate by 5) or PyTorch's ReduceLROnPlateau.
#define GDS_PLATEAU_MODE_CODES(X) \
    X(NONE, 0)                    \
    X(ADAPTIVE, 1)                \
    X(REDUCE_ON_PLATEAU, 2)

// What an epoch (and a fit) ended with; gdsolve/_base.py turns these into warnings and errors.
#define GDS_FIT_STATUS_CODES(X) \
    X(MAX_ITER, 0)    /* ran every epoch (ConvergenceWarning when tol was set) */ \
    X(CONVERGED, 1)   /* stopped by tol / n_iter_no_change */ \
    X(DIVERGED, 2)    /* non-finite loss or weights: the epoch was not kept */ \
    X(INTERRUPTED, 3) /* KeyboardInterrupt: the epoch was not kept */

namespace gds {

#define GDS_ENUM_ENTRY(name, value) name = value,
enum class Loss : int { GDS_LOSS_CODES(GDS_ENUM_ENTRY) };
enum class Activation : int { GDS_ACTIVATION_CODES(GDS_ENUM_ENTRY) };
enum class Penalty : int { GDS_PENALTY_CODES(GDS_ENUM_ENTRY) };
enum class Optimizer : int { GDS_OPTIMIZER_CODES(GDS_ENUM_ENTRY) };
enum class MuonAdjustLr : int { GDS_MUON_ADJUST_LR_CODES(GDS_ENUM_ENTRY) };
enum class HessianEstimator : int { GDS_HESSIAN_ESTIMATOR_CODES(GDS_ENUM_ENTRY) };
enum class Schedule : int { GDS_SCHEDULE_CODES(GDS_ENUM_ENTRY) };
enum class CyclicMode : int { GDS_CYCLIC_MODE_CODES(GDS_ENUM_ENTRY) };
enum class Anneal : int { GDS_ANNEAL_CODES(GDS_ENUM_ENTRY) };
enum class Clip : int { GDS_CLIP_CODES(GDS_ENUM_ENTRY) };
enum class PlateauMode : int { GDS_PLATEAU_MODE_CODES(GDS_ENUM_ENTRY) };
enum class FitStatus : int { GDS_FIT_STATUS_CODES(GDS_ENUM_ENTRY) };
#undef GDS_ENUM_ENTRY

#ifndef GDS_DEVICE_COMPILE
// Host-only table of every code, for the Python mirror test.
struct CodeEntry {
    const char* kind;
    const char* name;
    int value;
};

inline const CodeEntry* code_table(int* n_entries) {
#define GDS_TABLE_ENTRY_LOSS(name, value) {"Loss", #name, value},
#define GDS_TABLE_ENTRY_ACT(name, value) {"Activation", #name, value},
#define GDS_TABLE_ENTRY_PEN(name, value) {"Penalty", #name, value},
#define GDS_TABLE_ENTRY_OPT(name, value) {"Optimizer", #name, value},
#define GDS_TABLE_ENTRY_ADJ(name, value) {"MuonAdjustLr", #name, value},
#define GDS_TABLE_ENTRY_HESS(name, value) {"HessianEstimator", #name, value},
#define GDS_TABLE_ENTRY_SCHED(name, value) {"Schedule", #name, value},
#define GDS_TABLE_ENTRY_CYC(name, value) {"CyclicMode", #name, value},
#define GDS_TABLE_ENTRY_ANN(name, value) {"Anneal", #name, value},
#define GDS_TABLE_ENTRY_CLIP(name, value) {"Clip", #name, value},
#define GDS_TABLE_ENTRY_PLATEAU(name, value) {"PlateauMode", #name, value},
#define GDS_TABLE_ENTRY_STATUS(name, value) {"FitStatus", #name, value},
    static const CodeEntry table[] = {
        GDS_LOSS_CODES(GDS_TABLE_ENTRY_LOSS) GDS_ACTIVATION_CODES(GDS_TABLE_ENTRY_ACT)
        GDS_PENALTY_CODES(GDS_TABLE_ENTRY_PEN) GDS_OPTIMIZER_CODES(GDS_TABLE_ENTRY_OPT)
        GDS_MUON_ADJUST_LR_CODES(GDS_TABLE_ENTRY_ADJ) GDS_HESSIAN_ESTIMATOR_CODES(GDS_TABLE_ENTRY_HESS)
        GDS_SCHEDULE_CODES(GDS_TABLE_ENTRY_SCHED) GDS_CYCLIC_MODE_CODES(GDS_TABLE_ENTRY_CYC)
        GDS_ANNEAL_CODES(GDS_TABLE_ENTRY_ANN) GDS_CLIP_CODES(GDS_TABLE_ENTRY_CLIP)
        GDS_PLATEAU_MODE_CODES(GDS_TABLE_ENTRY_PLATEAU) GDS_FIT_STATUS_CODES(GDS_TABLE_ENTRY_STATUS)
    };
    *n_entries = static_cast<int>(sizeof(table) / sizeof(table[0]));
    return table;
}
#endif

}  // namespace gds
