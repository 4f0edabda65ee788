// gdsolve/math/schedules.h - learning-rate schedules as pure functions of the step, plus the two
// loop-driven ones (sklearn `adaptive`, reduce-on-plateau) as small explicit state machines.
// Callers: gdsolve.schedules (via _core.pyx), the training loops, GPU kernels. Formulas:
// docs/schedules.md (PyTorch closed forms; scikit-learn's for optimal/invscaling/adaptive).
#pragma once
#include "gdsolve/codes.h"
#include "gdsolve/config.h"
#include "gdsolve/structs.h"

namespace gds {

// ScheduleConfig, ReduceOnPlateauConfig / State and PlateauStop are defined in structs.h.

// scikit-learn's heuristic t0 for `optimal`: eta_init = typw / max(1, dloss(-typw, 1)), with
// typw = sqrt(1 / sqrt(alpha)); the caller passes dloss evaluated by the loss in use. The
// derivative is taken with its sign, as scikit-learn does (no abs): for its losses it is <= 0
// there, so eta_init = typw.
GDS_HD inline double optimal_typw(double alpha) { return sqrt(1.0 / sqrt(alpha)); }
GDS_HD inline double optimal_t0(double alpha, double dloss_at_minus_typw) {
    const double eta_init = optimal_typw(alpha) / max(1.0, dloss_at_minus_typw);
    return 1.0 / (eta_init * alpha);
}

GDS_HD inline double anneal_between(int anneal, double start, double end, double pct) {
    if (anneal == static_cast<int>(Anneal::LINEAR)) return (end - start) * pct + start;
    return end + (start - end) / 2.0 * (cos(pi * pct) + 1.0);
}

// One-cycle: value of lr (which=0) or momentum (which=1) at `step`.
GDS_HD inline double one_cycle_value(const ScheduleConfig& s, double step, int which) {
    const double initial_lr = s.max_lr / s.div_factor;
    const double min_lr = initial_lr / s.final_div_factor;
    const double total = s.total_steps;
    double ends[3], lr_from[3], lr_to[3], mom_from[3], mom_to[3];
    int n_phases;
    if (s.three_phase) {
        n_phases = 3;
        ends[0] = s.pct_start * total - 1.0;
        ends[1] = 2.0 * s.pct_start * total - 2.0;
        ends[2] = total - 1.0;
        lr_from[0] = initial_lr; lr_to[0] = s.max_lr;
        lr_from[1] = s.max_lr; lr_to[1] = initial_lr;
        lr_from[2] = initial_lr; lr_to[2] = min_lr;
        mom_from[0] = s.max_momentum; mom_to[0] = s.base_momentum;
        mom_from[1] = s.base_momentum; mom_to[1] = s.max_momentum;
        mom_from[2] = s.max_momentum; mom_to[2] = s.max_momentum;
    } else {
        n_phases = 2;
        ends[0] = s.pct_start * total - 1.0;
        ends[1] = total - 1.0;
        lr_from[0] = initial_lr; lr_to[0] = s.max_lr;
        lr_from[1] = s.max_lr; lr_to[1] = min_lr;
        mom_from[0] = s.max_momentum; mom_to[0] = s.base_momentum;
        mom_from[1] = s.base_momentum; mom_to[1] = s.max_momentum;
    }
    double start_step = 0.0;
    for (int i = 0; i < n_phases; ++i) {
        const double end_step = ends[i];
        if (step <= end_step || i == n_phases - 1) {
            const double pct = (step - start_step) / (end_step - start_step);
            return which == 0 ? anneal_between(s.anneal, lr_from[i], lr_to[i], pct)
                              : anneal_between(s.anneal, mom_from[i], mom_to[i], pct);
        }
        start_step = end_step;
    }
    return which == 0 ? min_lr : s.max_momentum;
}

GDS_HD inline double cyclic_lr(const ScheduleConfig& s, double step) {
    const double down = s.step_size_down > 0.0 ? s.step_size_down : s.step_size_up;
    const double total = s.step_size_up + down;
    const double ratio = s.step_size_up / total;
    const double cycle = floor(1.0 + step / total);
    const double x = 1.0 + step / total - cycle;
    const double scale = x <= ratio ? x / ratio : (x - 1.0) / (ratio - 1.0);
    const double height = (s.max_lr - s.base_lr) * scale;
    double factor = 1.0;
    if (s.mode == static_cast<int>(CyclicMode::TRIANGULAR2)) factor = 1.0 / pow(2.0, cycle - 1.0);
    if (s.mode == static_cast<int>(CyclicMode::EXP_RANGE)) factor = pow(s.gamma, step);
    return s.base_lr + height * factor;
}

GDS_HD inline double cosine_warm_restarts_lr(const ScheduleConfig& s, double step) {
    double t_cur, t_i;
    if (s.T_mult == 1.0) {
        t_i = s.T_0;
        t_cur = step - s.T_0 * floor(step / s.T_0);
    } else {
        double n = floor(log(step / s.T_0 * (s.T_mult - 1.0) + 1.0) / log(s.T_mult));
        // the log ratio can land just below an integer at a restart (e.g. log(243)/log(3)):
        // move n to the cycle that really contains `step`
        if (step >= s.T_0 * (pow(s.T_mult, n + 1.0) - 1.0) / (s.T_mult - 1.0)) n += 1.0;
        else if (n > 0.0 && step < s.T_0 * (pow(s.T_mult, n) - 1.0) / (s.T_mult - 1.0)) n -= 1.0;
        t_cur = step - s.T_0 * (pow(s.T_mult, n) - 1.0) / (s.T_mult - 1.0);
        t_i = s.T_0 * pow(s.T_mult, n);
    }
    return s.eta_min + (s.base_lr - s.eta_min) * (1.0 + cos(pi * t_cur / t_i)) / 2.0;
}

// The schedule without warm-up. `step` counts optimizer steps from 0; `t` is scikit-learn's sample
// counter (1 for the first sample), used only by optimal and invscaling.
GDS_HD inline double schedule_lr_inner(const ScheduleConfig& s, double step, double t) {
    switch (static_cast<Schedule>(s.code)) {
        case Schedule::CONSTANT:
        case Schedule::ADAPTIVE:           // the loop divides by 5 on plateaus
        case Schedule::REDUCE_ON_PLATEAU:  // the loop multiplies by its factor
            return s.base_lr;
        case Schedule::OPTIMAL:
            return 1.0 / (s.alpha * (s.optimal_t0 + t - 1.0));
        case Schedule::INVSCALING:
            return s.base_lr / pow(t, s.power_t);
        case Schedule::STEP:
            return s.base_lr * pow(s.gamma, floor(step / s.step_size));
        case Schedule::MULTISTEP: {
            int passed = 0;
            for (int i = 0; i < s.n_milestones; ++i)
                if (static_cast<double>(s.milestones[i]) <= step) ++passed;
            return s.base_lr * pow(s.gamma, static_cast<double>(passed));
        }
        case Schedule::EXPONENTIAL:
            return s.base_lr * pow(s.gamma, step);
        case Schedule::COSINE:
            return s.eta_min + (s.base_lr - s.eta_min) * (1.0 + cos(pi * step / s.T_max)) / 2.0;
        case Schedule::COSINE_WARM_RESTARTS:
            return cosine_warm_restarts_lr(s, step);
        case Schedule::ONE_CYCLE:
            return one_cycle_value(s, step, 0);
        case Schedule::CYCLIC:
            return cyclic_lr(s, step);
    }
    return s.base_lr;
}

// Learning rate at `step`, with the linear warm-up (if any) in front: during the first
// warmup_steps the rate ramps from start_factor * inner(0) to inner(0), then inner(step - warmup).
GDS_HD inline double schedule_lr(const ScheduleConfig& s, double step, double t) {
    if (s.warmup_steps > 0.0) {
        if (step < s.warmup_steps) {
            const double f = s.warmup_start_factor +
                             (1.0 - s.warmup_start_factor) * step / s.warmup_steps;
            return schedule_lr_inner(s, 0.0, t) * f;
        }
        step -= s.warmup_steps;
    }
    return schedule_lr_inner(s, step, t);
}

// Momentum/beta1 to use at `step`, or -1 when the schedule does not cycle momentum.
GDS_HD inline double schedule_momentum(const ScheduleConfig& s, double step) {
    if (static_cast<Schedule>(s.code) != Schedule::ONE_CYCLE || !s.cycle_momentum) return -1.0;
    if (s.warmup_steps > 0.0) step = step < s.warmup_steps ? 0.0 : step - s.warmup_steps;
    return one_cycle_value(s, step, 1);
}

// ---- Loop-driven schedules -------------------------------------------------------------------

// scikit-learn's `adaptive` and the stopping rule shared by every schedule: after
// n_iter_no_change epochs in a row without the objective improving by tol, `adaptive` divides the
// rate by 5 (while it is above 1e-6); any other schedule (or adaptive at its floor) stops.
// `p` is that rule's state (best value so far, epochs without improvement). Returns 1 to keep going, 0 to stop. `lr_factor` is divided by 5 on an adaptive plateau.
// `higher_is_better` is set for validation scores (early stopping), clear for training objectives.
GDS_HD inline int plateau_stop_update(PlateauStop& p, double value, double tol, int n_iter_no_change,
                                      int higher_is_better, int adaptive, double current_lr,
                                      double& lr_factor) {
    const double v = higher_is_better ? -value : value;
    if (v > p.best - tol) p.no_improvement += 1;
    else p.no_improvement = 0;
    if (v < p.best) p.best = v;
    if (p.no_improvement >= n_iter_no_change) {
        if (adaptive && current_lr > 1e-6) {
            lr_factor /= 5.0;
            p.no_improvement = 0;
            return 1;
        }
        return 0;
    }
    return 1;
}

// PyTorch's ReduceLROnPlateau (mode "min"): feed one metric value; returns 1 if the rate was
// reduced.
GDS_HD inline int reduce_on_plateau_step(const ReduceOnPlateauConfig& c, ReduceOnPlateauState& s,
                                         double metric) {
    const bool better = c.threshold_mode_rel ? metric < s.best * (1.0 - c.threshold)
                                             : metric < s.best - c.threshold;
    if (better) {
        s.best = metric;
        s.num_bad_epochs = 0;
    } else {
        s.num_bad_epochs += 1;
    }
    if (s.cooldown_counter > 0) {
        s.cooldown_counter -= 1;
        s.num_bad_epochs = 0;
    }
    if (s.num_bad_epochs > c.patience) {
        s.num_bad_epochs = 0;
        s.cooldown_counter = c.cooldown;
        const double new_lr = max(s.lr * c.factor, c.min_lr);
        if (s.lr - new_lr > c.eps) {
            s.lr = new_lr;
            return 1;
        }
    }
    return 0;
}

}  // namespace gds
