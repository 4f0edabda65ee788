// gdsolve/model/step.h - what every model's optimizer step begins with: this step's rate (the
// schedule at the fit's step and sample count, times the plateau factor), the rule's per-step
// constants (advancing its counters in the FitScalars), and the step counter; for Muon, its
// companion's constants too. Device-portable. Callers: model/linear.h, model/mlp.h.
#pragma once
#include "gdsolve/config.h"
#include "gdsolve/math/optimizers.h"
#include "gdsolve/math/schedules.h"
#include "gdsolve/structs.h"

namespace gds {

GDS_HD inline OptimizerStep scheduled_optimizer_step(const OptimizerConfig& o,
                                                    const ScheduleConfig& s, FitScalars& st) {
    const double step = static_cast<double>(st.step);
    const double lr = schedule_lr(s, step, st.t) * st.lr_factor;
    OptimizerScalars os{st.optimizer_step, st.mu_product};
    const OptimizerStep out = optimizer_begin_step(o, os, lr, schedule_momentum(s, step));
    st.optimizer_step = os.step;
    st.mu_product = os.mu_product;
    st.step += 1;
    return out;
}

// The same for Muon (o) and its companion rule (the parameters Muon does not define), which step
// together: both see this step's counters; the companion's rate is its own lr times this step's
// rate over Muon's lr (the schedule and lr_factor scale both), and one-cycle's momentum cycles
// Muon's momentum and the companion's momentum / beta1 alike. The counters advance once.
GDS_HD inline void scheduled_muon_steps(const OptimizerConfig& o, const OptimizerConfig& companion,
                                        const ScheduleConfig& s, FitScalars& st,
                                        OptimizerStep& muon, OptimizerStep& other) {
    const double step = static_cast<double>(st.step);
    const double lr = schedule_lr(s, step, st.t) * st.lr_factor;
    const double momentum = schedule_momentum(s, step);
    OptimizerScalars mine{st.optimizer_step, st.mu_product};
    muon = optimizer_begin_step(o, mine, lr, momentum);
    OptimizerScalars os{st.optimizer_step, st.mu_product};
    const double ratio = o.lr > 0.0 ? lr / o.lr : 0.0;
    other = optimizer_begin_step(companion, os, companion.lr * ratio, momentum);
    st.optimizer_step = os.step;
    st.mu_product = os.mu_product;
    st.step += 1;
}

}  // namespace gds
