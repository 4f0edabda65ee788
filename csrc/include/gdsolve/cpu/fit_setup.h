// gdsolve/cpu/fit_setup.h - what every CPU executor is given besides its model and data: the update
// rule and schedule, the driver's rules (batch size, shuffling, the epoch count), the threads, the
// Ctrl-C poll; and its view of a FitState's arrays. Host only. Callers: cpu/linear_executor.h, cpu/mlp_executor.h and their
// bindings (gdsolve/_cdefs.pxd: fill_fit_setup).
#pragma once
#include "gdsolve/cpu/interrupt.h"
#include "gdsolve/driver/shuffle.h"
#include "gdsolve/structs.h"

namespace gds {

struct FitSetup {
    OptimizerConfig optimizer;
    OptimizerConfig companion;  // Muon: the rule of the parameters that are not its matrices
    ScheduleConfig schedule;
    DriverConfig driver;
    CpuConfig cpu;
    InterruptCallback interrupt;  // may be null
    void* interrupt_context;
    double interrupt_interval;    // seconds between polls (0: 0.1)
};

// A FitState's arrays (owned by the caller): the flat parameters, the three optimizer slots, the
// averaged parameters and the per-sample L1 ledger (linear models; null when unused), the
// training rows in the last epoch's order, the scalars.
template <class T> struct StateView {
    T* params;
    T* slot0;
    T* slot1;
    T* slot2;
    T* avg_params;
    T* l1_q;
    T* history;  // L-BFGS full batch: the curvature pairs (model/lbfgs.h), else null
    gds_int64 n_history;
    RowIndex* order;
    gds_int64 n_order;
    FitScalars* scalars;
};

// A CPU executor as its binding holds it (one per value type), and as the epoch driver sees it.
template <class T> class EpochRunner {
  public:
    virtual ~EpochRunner() = default;
    // Trains one epoch from the state; on success writes the new state and returns
    // FitStatus::MAX_ITER ("the epoch ran") with the epoch's objective, else returns DIVERGED
    // or INTERRUPTED and leaves the state as it was.
    virtual int run_epoch(StateView<T>& s, double& objective) = 0;
    // The validation score (accuracy, or R^2) at the state's model.
    virtual double score(const StateView<T>& s) = 0;
};

}  // namespace gds
