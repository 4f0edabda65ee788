// gdsolve/cpu/linear_executor.h - the CPU executor of the linear model: one epoch at a time over
// an explicit FitState (parameters, optimizer slots, averaged parameters, L1 ledger, row order,
// FitScalars), committed only when the epoch completes. Per-sample SGD runs scikit-learn's
// algorithm (cpu/linear_per_sample.h, with the row gatherer on large shuffled data); mini-batch
// and full batch take the gradient of each batch on a thread team (cpu/linear_batch.h) and apply
// model/linear.h's step. Host only. Called by gdsolve/_cpu_linear.pyx through the non-template
// entry points at the bottom (each compiled for AVX2+FMA and baseline, see config.h), once per
// epoch by the epoch driver (gdsolve/engine/driver.py).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "gdsolve/codes.h"
#include "gdsolve/config.h"
#include "gdsolve/cpu/fit_setup.h"
#include "gdsolve/cpu/interrupt.h"
#include "gdsolve/cpu/linear_batch.h"
#include "gdsolve/cpu/linear_hessian.h"
#include "gdsolve/cpu/linear_per_sample.h"
#include "gdsolve/cpu/row_gatherer.h"
#include "gdsolve/cpu/rows.h"
#include "gdsolve/cpu/worker_team.h"
#include "gdsolve/driver/shuffle.h"
#include "gdsolve/model/lbfgs.h"
#include "gdsolve/model/linear.h"
#include "gdsolve/model/spectral.h"
#include "gdsolve/structs.h"

namespace gds {

// The data of one fit (arrays owned by the caller): dense row-major X (ld = row stride) or CSR;
// targets (SOFTMAX: class indices), sample weights (null: ones), validation rows (may be none).
template <class T> struct LinearData {
    int sparse;
    const T* X;
    gds_int64 ld;
    const T* data;
    const std::int32_t* indices;
    const gds_int64* indptr;
    gds_int64 n_rows, n_cols;
    const T* y;
    const T* sample_weight;
    const gds_int64* val_rows;
    gds_int64 n_val;
};

// What a fit is: the model, and its update rule, schedule, driver's rules and threads.
struct LinearSetup {
    LinearConfig model;
    FitSetup fit;
};

// The linear executor as the binding holds it (its score is sample-weighted and uses the
// averaged parameters when averaging).
template <class T> class LinearRunner : public EpochRunner<T> {
  public:
    // Loss sum and unnormalised gradient (K*d + K doubles) of rows[0..count) at `params`, the
    // rows shared by the team; false when interrupted.
    virtual bool gradient(const T* params, const RowIndex* rows, gds_int64 count, double* grad,
                          double& loss_sum) = 0;
    int per_sample = 0;  // the scikit-learn per-sample path runs
    int gathered = 0;    // a helper thread gathers its shuffled rows
};

namespace linear_detail {

// Validation score at the given (materialized) weights: accuracy for LOG / SOFTMAX, R^2
// otherwise; sample-weighted as scikit-learn's score.
template <class T, class Rows>
double validation_score(const Problem<T, Rows>& pb, const T* params, const gds_int64* rows,
                        gds_int64 n) {
    const int K = pb.K;
    const gds_int64 d = pb.d, n_w = static_cast<gds_int64>(K) * d;
    const T* b = params + n_w;
    std::vector<T> z(K);
    const bool classify = pb.loss == static_cast<int>(Loss::LOG) ||
                          pb.loss == static_cast<int>(Loss::SOFTMAX);
    double hit = 0.0, wsum = 0.0, sse = 0.0, wy = 0.0, wyy = 0.0;
    for (gds_int64 ii = 0; ii < n; ++ii) {
        const gds_int64 i = rows[ii];
        const double swi = pb.sw ? static_cast<double>(pb.sw[i]) : 1.0;
        for (int k = 0; k < K; ++k) z[k] = pb.X.dot(i, params + k * d) + b[k];
        const double yi = static_cast<double>(pb.y[i]);
        wsum += swi;
        if (classify) {
            bool ok;
            if (K == 1) {
                ok = (z[0] > T(0)) == (yi > 0.0);
            } else {
                int best = 0;
                for (int k = 1; k < K; ++k)
                    if (z[k] > z[best]) best = k;
                ok = best == static_cast<int>(yi);
            }
            if (ok) hit += swi;
        } else {
            const double r = yi - static_cast<double>(z[0]);
            sse += swi * r * r;
            wy += swi * yi;
            wyy += swi * yi * yi;
        }
    }
    if (wsum <= 0.0) return 0.0;
    if (classify) return hit / wsum;
    const double sst = wyy - wy * wy / wsum;
    if (sst <= 0.0) return sse == 0.0 ? 1.0 : 0.0;  // scikit-learn's r2_score convention
    return 1.0 - sse / sst;
}

}  // namespace linear_detail

template <class T, class Rows> class LinearCpuRunner final : public LinearRunner<T> {
  public:
    LinearCpuRunner(const LinearSetup& setup, const Rows& rows, const LinearData<T>& data,
                    gds_int64 n_train)
        : setup_(setup),
          model_(setup.model),
          data_(data),
          pb_{rows, data.y, data.sample_weight, setup.model.n_outputs, data.n_cols,
              setup.model.loss, static_cast<T>(setup.model.loss_param)},
          pen_(penalty_split(setup.model.penalty, setup.model.alpha, setup.model.l1_ratio)),
          K_(setup.model.n_outputs),
          d_(data.n_cols),
          n_w_(static_cast<gds_int64>(setup.model.n_outputs) * data.n_cols),
          n_all_(n_w_ + setup.model.n_outputs),
          n_train_(n_train) {
        using namespace linear_detail;
        const OptimizerConfig& opt = setup.fit.optimizer;
        const DriverConfig& drv = setup.fit.driver;
        full_ = drv.batch_size <= 0 || drv.batch_size >= n_train;
        per_sample_ = drv.batch_size == 1 && opt.code == static_cast<int>(Optimizer::SGD) &&
                      opt.momentum == 0.0 && opt.weight_decay == 0.0 &&
                      model_.clip != static_cast<int>(Clip::VALUE);
        batch_ = full_ ? std::max<gds_int64>(n_train, 1) : drv.batch_size;
        spectral_ = full_ && model_.spectral != 0;
        shuffles_ = drv.shuffle && !full_;
        const int n_threads = std::min(kMaxTeamSize, std::max(1, setup.fit.cpu.n_threads));
        // Batches big enough to split get a team of threads for the whole fit (per-sample SGD is
        // sequential: no team).
        if (!per_sample_) {
            const int members = batch_members(n_threads, batch_, mean_row_cost(), K_);
            if (members > 1) team_.reset(new WorkerTeam(members));
            scratch_for(members);
            step_grad_.assign(n_all_, T(0));
        }
        // Shuffled per-sample epochs on data larger than the caches: rows gathered by a helper.
        const double row_bytes =
            Rows::kDense ? static_cast<double>(data.n_rows) * static_cast<double>(d_) * sizeof(T)
                         : static_cast<double>(data.indptr[data.n_rows] - data.indptr[0]) *
                               (sizeof(T) + sizeof(std::int32_t));
        const int gather_rows = setup.fit.cpu.gather_rows;
        const bool gather =
            per_sample_ && drv.shuffle &&
            (gather_rows > 0 || (gather_rows < 0 && n_threads > 1 && row_bytes >= kGatherMinBytes));
        if (gather) gatherer_.reset(new RowGatherer<T, Rows>(pb_, gather_rows != 2));
        ps_ = PerSampleSettings{pen_.l1, pen_.l2, model_.fit_intercept,
                                model_.clip == static_cast<int>(Clip::NORM), model_.clip_limit,
                                model_.average_start};
        checker_.callback = setup.fit.interrupt;
        checker_.context = setup.fit.interrupt_context;
        const double interval = setup.fit.interrupt_interval;
        checker_.interval_s = interval > 0.0 ? interval : 0.1;
        this->per_sample = per_sample_ ? 1 : 0;
        this->gathered = gather ? 1 : 0;
    }

    int run_epoch(StateView<T>& s, double& objective) override;

    double score(const StateView<T>& s) override;

    double score_body(const StateView<T>& s) const {
        const bool averaged = s.avg_params != nullptr && model_.average_start > 0 &&
                              s.scalars->avg_count > 0;
        return linear_detail::validation_score(pb_, averaged ? s.avg_params : s.params,
                                               data_.val_rows, data_.n_val);
    }

    bool gradient(const T* params, const RowIndex* rows, gds_int64 count, double* grad,
                  double& loss_sum) override;

    // The bodies of the cloned entries.
    int epoch(StateView<T>& s, double& objective) {
        using namespace linear_detail;
        if (spectral_) {
            if (model_.lbfgs_memory > 0) return lbfgs_epoch(s, objective);
            return spectral_epoch(s, objective);
        }
        load(s);
        // the epoch's order: the last one shuffled (already done in idle time, when a team
        // shuffled ahead from this same state)
        const RowIndex* order = s.order;
        std::uint64_t rng = w_.sc.rng;
        if (shuffles_) {
            if (ahead_.active() && ahead_.from_rng == rng) {
                ahead_.finish();
                order_.swap(ahead_.next);
                rng = ahead_.rng.state;
            } else {
                order_.assign(s.order, s.order + n_train_);
                next_epoch_order(order_.data(), static_cast<std::size_t>(n_train_), rng);
            }
            // a team's batches leave the training thread idle moments for the next shuffle
            if (team_ && w_.sc.epoch + 1 < setup_.fit.driver.max_iter)
                ahead_.begin(order_.data(), static_cast<std::size_t>(n_train_), rng);
            order = order_.data();
        }
        double loss_sum = 0.0, penalty_before = 0.0;
        bool completed = true;
        const bool simple = K_ == 1 && !w_.averaging && pen_.l1 == 0.0;
        const ScheduleConfig& sched = setup_.fit.schedule;
        if (gatherer_) {
            gatherer_->start(order, n_train_);
            const RowIndex* in_chunk = gatherer_->in_chunk_order();
            for (gds_int64 c = 0; c < gatherer_->n_chunks() && completed; ++c) {
                const Problem<T, Rows> part = gatherer_->acquire(c);
                const gds_int64 m = gatherer_->count(c);
                completed = simple ? per_sample_simple_cloned(part, ps_, sched, w_, in_chunk, m,
                                                             loss_sum, checker_)
                                   : per_sample_cloned(part, ps_, sched, w_, in_chunk, m,
                                                      loss_sum, checker_);
                gatherer_->release(c);
            }
            gatherer_->finish();
        } else if (per_sample_ && simple) {
            completed = per_sample_simple_cloned(pb_, ps_, sched, w_, order, n_train_, loss_sum,
                                                checker_);
        } else if (per_sample_) {
            completed =
                per_sample_cloned(pb_, ps_, sched, w_, order, n_train_, loss_sum, checker_);
        } else {
            for (gds_int64 start = 0; start < n_train_ && completed; start += batch_) {
                const gds_int64 count = std::min(batch_, n_train_ - start);
                double batch_loss = 0.0;
                // rows of the next batch follow in `order` (prefetched at the end of this one)
                const gds_int64 next_count =
                    setup_.fit.driver.shuffle ? std::min(batch_, n_train_ - start - count) : 0;
                completed = batch_gradient(pb_, w_.p.data(), order + start, count, next_count,
                                           team_.get(), scratch_, batch_loss, checker_,
                                           ahead_.active() ? &ahead_ : nullptr);
                loss_sum += batch_loss;
                if (!completed) break;
                if (full_) penalty_before = penalty_value(pen_, w_.p.data(), n_w_);
                step(scratch_.grad[0].data(), count, order + start);
            }
        }
        if (!completed) return static_cast<int>(FitStatus::INTERRUPTED);
        materialize(w_, n_w_);
        const double pen_now = full_ ? penalty_before : penalty_value(pen_, w_.p.data(), n_w_);
        objective =
            loss_sum / static_cast<double>(std::max<gds_int64>(n_train_, 1)) + pen_now;
        if (!isfinite(objective) || !all_finite(w_.p.data(), n_all_))
            return static_cast<int>(FitStatus::DIVERGED);
        w_.sc.rng = rng;
        commit(s);
        if (shuffles_) std::copy(order_.begin(), order_.end(), s.order);
        return static_cast<int>(FitStatus::MAX_ITER);
    }

    bool batch_gradient_into(const T* params, const RowIndex* rows, gds_int64 count,
                             double* grad, double& loss_sum) {
        using namespace linear_detail;
        const int members = batch_members(team_ ? team_->size() : 1, count, mean_row_cost(), K_);
        if (static_cast<int>(scratch_.grad.size()) < members) scratch_for(members);
        const bool done = batch_gradient(pb_, params, rows, count, 0, team_.get(), scratch_,
                                         loss_sum, checker_);
        std::copy(scratch_.grad[0].begin(), scratch_.grad[0].end(), grad);
        return done;
    }

  private:
    // The full-batch methods (spectral, L-BFGS) share two steps, written once below: the start
    // of a fit (`full_batch_start`) and the backtracking search along the method's trial point
    // (`backtrack`); each method adds only its trial point, its acceptance test and its memory.
    enum class Search { ACCEPTED, STALLED, INTERRUPTED };
    static constexpr int kContinue = -1;

    // The first epoch of a fit (or one whose step was lost): one pass at the start, grad F into
    // slot0, F and the first trial step, and every method's memory emptied (the spectral
    // reference, the L-BFGS pairs). Returns a FitStatus to end the epoch with, else kContinue.
    int full_batch_start(StateView<T>& s, double& objective) {
        FitScalars& sc = w_.sc;
        if (sc.epoch != 0 && sc.spectral_step > 0.0) return kContinue;
        const double inv_n = 1.0 / static_cast<double>(std::max<gds_int64>(n_train_, 1));
        const gds_int64 n_upd = linear_updated_params(model_, d_);
        const T* P = w_.p.data();
        T* G = w_.s0.data();
        double loss_sum = 0.0;
        if (!spectral_pass(P, loss_sum)) return static_cast<int>(FitStatus::INTERRUPTED);
        const double* raw = scratch_.grad[0].data();
        double gmax = 0.0, rmax = 0.0;
        for (gds_int64 j = 0; j < n_all_; ++j) {
            const bool weight = j < n_w_;
            const double g =
                j < n_upd ? spectral_gradient(raw[j], inv_n, pen_.l2, weight, P[j]) : 0.0;
            G[j] = static_cast<T>(g);
            gmax = std::max(gmax, std::abs(g));
            rmax = std::max(rmax, std::abs(spectral_residual(P[j], g, pen_.l1, weight)));
        }
        sc.spectral_f = loss_sum * inv_n + spectral_penalty(P);
        sc.spectral_ref = sc.spectral_f;
        sc.spectral_q = 1.0;
        sc.spectral_step = spectral_initial_step(gmax);
        sc.lbfgs_pairs = 0;
        sc.lbfgs_newest = 0;
        if (!isfinite(sc.spectral_f)) return static_cast<int>(FitStatus::DIVERGED);
        if (rmax <= model_.grad_tol) {  // already optimal: nothing to step
            objective = sc.spectral_f;
            commit(s);
            return static_cast<int>(FitStatus::CONVERGED);
        }
        return kContinue;
    }

    // From `step`, shrinks it by `shrink` until accept(F(x+), step, ||x+ - x||^2) holds, x+ the
    // trial point trial(j, step) of the updated parameters (the rest kept); each trial is one
    // fused pass, which leaves grad f(x+) in scratch_.grad[0]. STALLED when the trial no longer
    // moves any parameter, or lost(step) says no step this short can decrease F beyond its
    // round-off (F cannot decrease further from x).
    template <class Trial, class Accept, class Lost>
    Search backtrack(double& step, double shrink, int max_backtracks, Trial trial, Accept accept,
                     Lost lost, double& F_new) {
        const double inv_n = 1.0 / static_cast<double>(std::max<gds_int64>(n_train_, 1));
        const gds_int64 n_upd = linear_updated_params(model_, d_);
        const T* P = w_.p.data();
        trial_.resize(static_cast<std::size_t>(n_all_));
        double loss_sum = 0.0;
        for (int b = 0; b <= max_backtracks; ++b, step *= shrink) {
            if (lost(step)) return Search::STALLED;
            double sq = 0.0, moved = 0.0, largest = 0.0;
            for (gds_int64 j = 0; j < n_all_; ++j) {
                trial_[j] = j < n_upd ? trial(j, step) : P[j];
                const double dj = static_cast<double>(trial_[j]) - static_cast<double>(P[j]);
                sq += dj * dj;
                moved = std::max(moved, std::abs(dj));
                largest = std::max(largest, std::abs(static_cast<double>(P[j])));
            }
            // the step moves no parameter by more than a few units in the last place
            if (spectral_stalled(moved, largest, std::numeric_limits<T>::epsilon()))
                return Search::STALLED;
            if (!spectral_pass(trial_.data(), loss_sum)) return Search::INTERRUPTED;
            F_new = loss_sum * inv_n + spectral_penalty(trial_.data());
            if (isfinite(F_new) && accept(F_new, step, sq)) return Search::ACCEPTED;
        }
        return Search::STALLED;
    }

    // One iteration of the spectral full-batch method (model/spectral.h): tries
    // x+ = prox(x - a g) until the non-monotone test accepts it, and keeps grad f(x+) in slot0
    // for the next. Returns CONVERGED when the min-norm subgradient is within grad_tol, or when
    // no step can decrease F any more (round-off).
    int spectral_epoch(StateView<T>& s, double& objective) {
        load(s);
        order_rows_ = s.order;
        const int started = full_batch_start(s, objective);
        if (started != kContinue) return started;
        FitScalars& sc = w_.sc;
        const PenaltySplit pen = pen_;
        const double inv_n = 1.0 / static_cast<double>(std::max<gds_int64>(n_train_, 1));
        const gds_int64 n_upd = linear_updated_params(model_, d_);
        T* P = w_.p.data();
        T* G = w_.s0.data();  // grad f at P
        double step = sc.spectral_step, F_new = 0.0;
        const Search found = backtrack(
            step, SpectralConstants::shrink, SpectralConstants::max_backtracks,
            [&](gds_int64 j, double a) {
                return spectral_trial(P[j], static_cast<double>(G[j]), a, pen.l1, j < n_w_);
            },
            [&](double F, double a, double sq) {
                return spectral_accept(F, sc.spectral_ref, a, sq);
            },
            [](double) { return false; },  // non-monotone: no such bound
            F_new);
        if (found == Search::INTERRUPTED) return static_cast<int>(FitStatus::INTERRUPTED);
        if (found == Search::STALLED) {
            objective = sc.spectral_f;
            commit(s);
            return static_cast<int>(FitStatus::CONVERGED);
        }
        const double* raw = scratch_.grad[0].data();
        double ss = 0.0, sy = 0.0, yy = 0.0, rmax = 0.0;
        for (gds_int64 j = 0; j < n_all_; ++j) {
            const bool weight = j < n_w_;
            const double g =
                j < n_upd ? spectral_gradient(raw[j], inv_n, pen.l2, weight, trial_[j]) : 0.0;
            const double sj = static_cast<double>(trial_[j]) - static_cast<double>(P[j]);
            ss += sj * sj;
            const double yj = g - static_cast<double>(G[j]);
            sy += sj * yj;
            yy += yj * yj;
            P[j] = trial_[j];
            G[j] = static_cast<T>(g);
            rmax = std::max(rmax, std::abs(spectral_residual(P[j], g, pen.l1, weight)));
        }
        spectral_reference_update(sc.spectral_ref, sc.spectral_q, F_new);
        sc.spectral_f = F_new;
        sc.spectral_step = spectral_next_step(ss, sy, yy, step);
        sc.step += 1;
        sc.t += static_cast<double>(n_train_);
        objective = F_new;
        commit(s);
        return static_cast<int>(rmax <= model_.grad_tol ? FitStatus::CONVERGED
                                                        : FitStatus::MAX_ITER);
    }

    // One iteration of the L-BFGS full batch (model/lbfgs.h; smooth objectives): steps along
    // d = -H g, halving from t0 until Armijo's test holds, keeps grad F in slot0 and writes the
    // new pair straight into the state's history (nothing can fail once a step is accepted).
    // CONVERGED when ||g||_inf <= grad_tol, or when no step decreases F.
    int lbfgs_epoch(StateView<T>& s, double& objective) {
        constexpr double kEpsilon = std::numeric_limits<T>::epsilon();
        load(s);
        order_rows_ = s.order;
        const int started = full_batch_start(s, objective);
        if (started != kContinue) return started;
        FitScalars& sc = w_.sc;
        const double l2 = pen_.l2;
        const double inv_n = 1.0 / static_cast<double>(std::max<gds_int64>(n_train_, 1));
        const gds_int64 n_upd = linear_updated_params(model_, d_);
        const int m = model_.lbfgs_memory;
        T* P = w_.p.data();
        T* G = w_.s0.data();  // grad F at P
        T* S = s.history;
        T* Y = S + static_cast<gds_int64>(m) * n_upd;
        qn_g_.resize(static_cast<std::size_t>(n_upd));
        qn_d_.resize(static_cast<std::size_t>(n_upd));
        double* g = qn_g_.data();
        double* d = qn_d_.data();
        for (gds_int64 j = 0; j < n_upd; ++j) g[j] = static_cast<double>(G[j]);
        double gd = lbfgs_direction(S, Y, m, sc.lbfgs_pairs, sc.lbfgs_newest, n_upd, g, d);
        if (!(gd < 0.0)) {  // round-off spoilt the estimate: restart from the gradient
            sc.lbfgs_pairs = 0;
            gd = lbfgs_direction(S, Y, m, 0, 0, n_upd, g, d);
        }
        double t = sc.spectral_step, F_new = 0.0;
        const Search found = backtrack(
            t, QuasiNewtonConstants::shrink, QuasiNewtonConstants::max_backtracks,
            [&](gds_int64 j, double a) {
                return static_cast<T>(static_cast<double>(P[j]) + a * d[j]);
            },
            [&](double F, double a, double) { return lbfgs_accept(F, sc.spectral_f, a, gd); },
            [&](double a) { return lbfgs_decrease_lost(a, gd, sc.spectral_f, kEpsilon); },
            F_new);
        if (found == Search::INTERRUPTED) return static_cast<int>(FitStatus::INTERRUPTED);
        if (found == Search::STALLED) {
            objective = sc.spectral_f;
            commit(s);
            return static_cast<int>(FitStatus::CONVERGED);
        }
        // the new pair goes into the slot after the newest (the oldest once m are kept)
        const double* raw = scratch_.grad[0].data();
        const int slot = sc.lbfgs_pairs == 0 ? 0 : (sc.lbfgs_newest + 1) % m;
        T* s_new = S + static_cast<gds_int64>(slot) * n_upd;
        T* y_new = Y + static_cast<gds_int64>(slot) * n_upd;
        double sy = 0.0, yy = 0.0, gmax = 0.0;
        for (gds_int64 j = 0; j < n_upd; ++j) {
            const double gj = spectral_gradient(raw[j], inv_n, l2, j < n_w_, trial_[j]);
            const double sj = static_cast<double>(trial_[j]) - static_cast<double>(P[j]);
            const double yj = gj - g[j];
            sy += sj * yj;
            yy += yj * yj;
            s_new[j] = static_cast<T>(sj);
            y_new[j] = static_cast<T>(yj);
            P[j] = trial_[j];
            G[j] = static_cast<T>(gj);
            gmax = std::max(gmax, std::abs(gj));
        }
        if (lbfgs_keep_pair(sy, yy)) {
            sc.lbfgs_newest = slot;
            sc.lbfgs_pairs = std::min(sc.lbfgs_pairs + 1, m);
        } else if (sc.lbfgs_pairs == m) {
            sc.lbfgs_pairs = m - 1;  // the slot written was the oldest pair's
        }
        sc.spectral_f = F_new;
        sc.spectral_step = 1.0;
        sc.step += 1;
        sc.t += static_cast<double>(n_train_);
        objective = F_new;
        commit(s);
        return static_cast<int>(gmax <= model_.grad_tol ? FitStatus::CONVERGED
                                                        : FitStatus::MAX_ITER);
    }

    // The full batch's loss sum and summed gradient (into scratch_.grad[0]) at `params`.
    bool spectral_pass(const T* params, double& loss_sum) {
        return linear_detail::batch_gradient(pb_, params, order_rows_, n_train_, 0, team_.get(),
                                             scratch_, loss_sum, checker_);
    }

    // The penalty alpha R(w) in double.
    double spectral_penalty(const T* P) const {
        double sq = 0.0, ab = 0.0;
        for (gds_int64 j = 0; j < n_w_; ++j) {
            const double w = static_cast<double>(P[j]);
            sq += w * w;
            ab += std::abs(w);
        }
        return 0.5 * pen_.l2 * sq + pen_.l1 * ab;
    }

    gds_int64 mean_row_cost() const {
        if (Rows::kDense) return d_;
        return std::max<gds_int64>(1, (data_.indptr[data_.n_rows] - data_.indptr[0]) /
                                          std::max<gds_int64>(1, data_.n_rows));
    }

    void scratch_for(int members) {
        using namespace linear_detail;
        scratch_.grad.assign(members, std::vector<double>(n_all_));
        scratch_.block.assign(members, std::vector<T>(Rows::kDense ? n_w_ : 0));
        scratch_.z.assign(members, std::vector<T>(Rows::kDense ? kGroupRows * K_ : 0));
    }

    void load(const StateView<T>& s) {
        w_.p.assign(s.params, s.params + n_all_);
        w_.wscale = 1.0;
        w_.averaging = s.avg_params != nullptr && model_.average_start > 0;
        w_.avg_beta = 1.0;
        w_.avg_gamma = 0.0;
        if (w_.averaging) w_.avg.assign(s.avg_params, s.avg_params + n_all_);
        w_.s0.assign(s.slot0, s.slot0 + n_all_);
        w_.s1.assign(s.slot1, s.slot1 + n_all_);
        w_.s2.assign(s.slot2, s.slot2 + n_all_);
        if (pen_.l1 > 0.0) w_.q.assign(s.l1_q, s.l1_q + n_w_);
        w_.sc = *s.scalars;
    }

    void commit(StateView<T>& s) const {
        std::copy(w_.p.begin(), w_.p.end(), s.params);
        if (w_.averaging) std::copy(w_.avg.begin(), w_.avg.end(), s.avg_params);
        std::copy(w_.s0.begin(), w_.s0.end(), s.slot0);
        std::copy(w_.s1.begin(), w_.s1.end(), s.slot1);
        std::copy(w_.s2.begin(), w_.s2.end(), s.slot2);
        if (pen_.l1 > 0.0) std::copy(w_.q.begin(), w_.q.end(), s.l1_q);
        *s.scalars = w_.sc;
    }

    // model/linear.h's step from the batch's summed gradient G over `count` rows, stage by stage
    // (Sophia: its Hessian estimate refreshed from the batch's `rows` first, every k-th step).
    void step(const double* G, gds_int64 count, const RowIndex* rows) {
        const double sq =
            model_.clip == static_cast<int>(Clip::NORM)
                ? linear_clip_sqnorm<T>(G, 1.0 / static_cast<double>(count),
                                        linear_updated_params(model_, d_))
                : 0.0;
        const LinearStepPlan plan =
            linear_step_begin(model_, setup_.fit.optimizer, setup_.fit.schedule, w_.sc, count,
                              sq);
        T* P = w_.p.data();
        T* A = w_.averaging ? w_.avg.data() : nullptr;
        T* g = step_grad_.data();
        const gds_int64 n_params = linear_updated_params(model_, d_);
        if (setup_.fit.optimizer.code == static_cast<int>(Optimizer::SOPHIA))
            sophia_refresh_hessian(P, rows, count, n_params);
        for (gds_int64 j = 0; j < n_params; ++j)
            g[j] = linear_step_gradient(model_, plan, j, n_w_, G, P);
        optimizer_update_array(setup_.fit.optimizer, plan.opt, P, g, w_.s0.data(), w_.s1.data(),
                               w_.s2.data(), n_params);
        for (gds_int64 j = 0; j < n_all_; ++j)
            linear_step_finish(setup_.fit.optimizer, plan, j, n_w_, P, w_.s0.data(), w_.s1.data(),
                               w_.s2.data(), A);
    }

    // Sophia: h <- beta2 h + (1 - beta2) hhat on the steps t (already counted) with t mod k = 1,
    // hhat from the batch at the parameters before the step; the draws take the generator's
    // state as the epoch started (w_.sc.rng is advanced only when the epoch commits).
    void sophia_refresh_hessian(const T* P, const RowIndex* rows, gds_int64 count,
                                gds_int64 n_params) {
        const OptimizerConfig& opt = setup_.fit.optimizer;
        const gds_int64 t = w_.sc.optimizer_step;
        if (!sophia_refresh(opt, t)) return;
        hessian_.resize(static_cast<std::size_t>(n_all_));
        hessian_z_.resize(static_cast<std::size_t>(K_));
        linear_detail::linear_hessian_estimate(pb_, opt.hessian_estimator, P, rows, count,
                                               w_.sc.rng, t, hessian_.data(), hessian_z_.data());
        T* h = w_.s1.data();
        for (gds_int64 j = 0; j < n_params; ++j)
            sophia_hessian_ema<T>(opt.beta2, h[j], static_cast<T>(hessian_[j]));
    }

    const LinearSetup setup_;
    const LinearConfig model_;
    const LinearData<T> data_;
    const linear_detail::Problem<T, Rows> pb_;
    const PenaltySplit pen_;
    const int K_;
    const gds_int64 d_, n_w_, n_all_, n_train_;
    bool full_ = false, per_sample_ = false, shuffles_ = false, spectral_ = false;
    gds_int64 batch_ = 1;
    std::unique_ptr<WorkerTeam> team_;
    linear_detail::BatchScratch<T> scratch_;
    std::unique_ptr<linear_detail::RowGatherer<T, Rows>> gatherer_;
    linear_detail::PerSampleSettings ps_{};
    linear_detail::Work<T> w_;
    std::vector<T> step_grad_;  // the gradient the rule sees (model/linear.h's stage 1)
    std::vector<double> hessian_;  // Sophia: the batch's Hessian estimate
    std::vector<T> hessian_z_;
    std::vector<RowIndex> order_;
    std::vector<T> trial_;                  // spectral, L-BFGS: the trial parameters
    std::vector<double> qn_g_, qn_d_;       // L-BFGS: the gradient and the direction
    const RowIndex* order_rows_ = nullptr;  // spectral: the training rows (the state's order)
    ShuffleAhead<RowIndex> ahead_;
    InterruptChecker checker_;
};

// One epoch, one batch gradient and the validation score, as cloned entry points per (T, Rows): everything they call
// is inlined into the AVX2+FMA and the baseline copy.
#define GDS_LINEAR_EPOCH_ENTRY(T, ROWS)                                                        \
    GDS_SIMD_CLONES static int linear_epoch_entry(LinearCpuRunner<T, ROWS<T>>& r,            \
                                                  StateView<T>& s, double& objective) { \
        return r.epoch(s, objective);                                                          \
    }                                                                                          \
    GDS_SIMD_CLONES static bool linear_gradient_entry(LinearCpuRunner<T, ROWS<T>>& r,         \
                                                      const T* params, const RowIndex* rows,  \
                                                      gds_int64 count, double* grad,          \
                                                      double& loss_sum) {                     \
        return r.batch_gradient_into(params, rows, count, grad, loss_sum);                    \
    }                                                                                          \
    GDS_SIMD_CLONES static double linear_score_entry(const LinearCpuRunner<T, ROWS<T>>& r,    \
                                                     const StateView<T>& s) {            \
        return r.score_body(s);                                                                \
    }
GDS_LINEAR_ROW_TYPES(GDS_LINEAR_EPOCH_ENTRY)
#undef GDS_LINEAR_EPOCH_ENTRY

template <class T, class Rows>
int LinearCpuRunner<T, Rows>::run_epoch(StateView<T>& s, double& objective) {
    return linear_epoch_entry(*this, s, objective);
}

template <class T, class Rows>
double LinearCpuRunner<T, Rows>::score(const StateView<T>& s) {
    return linear_score_entry(*this, s);
}

template <class T, class Rows>
bool LinearCpuRunner<T, Rows>::gradient(const T* params, const RowIndex* rows, gds_int64 count,
                                        double* grad, double& loss_sum) {
    return linear_gradient_entry(*this, params, rows, count, grad, loss_sum);
}

// The executor for one fit's data: CSR or dense rows.
template <class T>
inline LinearRunner<T>* new_linear_runner(const LinearSetup& setup, const LinearData<T>& data,
                                          gds_int64 n_train) {
    if (data.sparse) {
        CsrRows<T> rows{data.data, data.indices, data.indptr, data.n_rows, data.n_cols};
        rows.set_prefetch_lines();
        return new LinearCpuRunner<T, CsrRows<T>>(setup, rows, data, n_train);
    }
    const DenseRows<T> rows{data.X, data.n_rows, data.n_cols, data.ld};
    return new LinearCpuRunner<T, DenseRows<T>>(setup, rows, data, n_train);
}

}  // namespace gds
