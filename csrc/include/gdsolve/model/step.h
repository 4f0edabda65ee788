// gdsolve/model/step.h - what every model's optimizer step begins with: this step's rate (the
// schedule at the fit's step and sample count, times the plateau factor), the rule's per-step
// constants (advancing its counters in the FitScalars), and the step counter. Device-portable.
// Callers: model/linear.h, model/mlp.h.
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

}  // namespace gds
