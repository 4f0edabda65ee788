// gdsolve/driver/epoch_rules.h - what the epoch driver decides at the end of every epoch, the
// same for every model kind and executor: the monitored value (training objective, or the
// validation score under early stopping), PyTorch's reduce-on-plateau, scikit-learn's stopping
// rule and `adaptive` schedule, and whether the epoch improved on the best so far (early
// stopping keeps those parameters). Device-portable plain functions over the FitScalars.
// Callers: gdsolve/engine/driver.py through _core.pyx (every executor's fit).
#pragma once
#include "gdsolve/codes.h"
#include "gdsolve/config.h"
#include "gdsolve/math/schedules.h"
#include "gdsolve/structs.h"

namespace gds {

struct EpochDecision {
    int stop;       // the stopping rule ends the fit (FitStatus::CONVERGED)
    int improved;   // the monitored value beat the best before this epoch (no tolerance)
    double lr;      // the rate the epoch ended with (before this epoch's plateau rules)
};

// Advances the plateau counters of `st` by one finished epoch with training objective
// `objective` and validation score `score` (used when d.monitor_score).
GDS_HD inline EpochDecision epoch_end(const DriverConfig& d, const ScheduleConfig& s,
                                      const ReduceOnPlateauConfig& p, FitScalars& st,
                                      double objective, double score) {
    EpochDecision out{0, 0, 0.0};
    out.lr = schedule_lr(s, static_cast<double>(st.step), st.t) * st.lr_factor;
    const double minimised = d.monitor_score ? -score : objective;
    out.improved = minimised < st.best;
    if (d.plateau_mode == static_cast<int>(PlateauMode::REDUCE_ON_PLATEAU)) {
        ReduceOnPlateauState r{st.plateau_best, st.plateau_bad_epochs, st.plateau_cooldown,
                               st.plateau_lr};
        reduce_on_plateau_step(p, r, minimised);
        st.plateau_best = r.best;
        st.plateau_bad_epochs = r.num_bad_epochs;
        st.plateau_cooldown = r.cooldown_counter;
        st.plateau_lr = r.lr;
        st.lr_factor = s.base_lr > 0.0 ? r.lr / s.base_lr : 1.0;
    }
    if (d.count_plateau) {
        PlateauStop ps{st.best, st.no_improvement};
        const int keep_going = plateau_stop_update(
            ps, d.monitor_score ? score : objective, d.tol, d.patience, d.monitor_score,
            d.plateau_mode == static_cast<int>(PlateauMode::ADAPTIVE), out.lr, st.lr_factor);
        st.best = ps.best;
        st.no_improvement = ps.no_improvement;
        out.stop = !keep_going && d.stop_on_plateau;
    }
    st.epoch += 1;
    return out;
}

}  // namespace gds
