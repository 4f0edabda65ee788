// gdsolve/cpu/mlp_executor.h - the CPU executor of the dense MLPs: one epoch at a time over an
// explicit FitState (flat parameters, optimizer slots, row order, FitScalars), undone unless it
// completes. Per batch: one GEMM (the BLAS gemm the binding passes in, scipy's cython_blas) plus
// one fused bias + activation pass per layer, model/mlp.h's output loss, the backward pass, and
// the optimizer over the flat parameters, with every layer updated as soon as its gradient is
// complete when no clipping needs the whole gradient first; a batch is shared by a team of
// threads, each with single-threaded BLAS. No allocation per batch. Host only. Called by
// gdsolve/_cpu_mlp.pyx through the entry points at the bottom (AVX2+FMA and baseline clones),
// once per epoch by the epoch driver (gdsolve/engine/driver.py).
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "gdsolve/codes.h"
#include "gdsolve/config.h"
#include "gdsolve/cpu/blas.h"
#include "gdsolve/cpu/fast_losses.h"
#include "gdsolve/cpu/fit_setup.h"
#include "gdsolve/cpu/interrupt.h"
#include "gdsolve/cpu/worker_team.h"
#include "gdsolve/driver/shuffle.h"
#include "gdsolve/math/activations.h"
#include "gdsolve/math/clip.h"
#include "gdsolve/math/optimizers.h"
#include "gdsolve/math/schedules.h"
#include "gdsolve/model/mlp.h"
#include "gdsolve/structs.h"

namespace gds {

// Architecture. Layer l (0-based) maps units[l] inputs to units[l + 1] outputs. The output layer's
// activation follows from the loss: identity for SQUARED, logistic per output for LOG (binary and
// multilabel), softmax for SOFTMAX.
struct MlpShape {
    int n_layers;            // weight layers = hidden layers + 1
    const gds_int64* units;  // n_layers + 1 entries: n_features, hidden sizes..., n_outputs
    int activation;          // gds::Activation of the hidden layers
    int loss;                // gds::Loss: SQUARED, LOG or SOFTMAX
};

// Where each parameter lives in the one flat buffer: every layer's coefficient matrix
// (units[l] x units[l+1], row-major) first, then every layer's intercepts. The L2 penalty covers
// exactly the prefix [0, n_coef); the optimizer and the clipping see one contiguous vector.
struct MlpLayout {
    int n_layers = 0;
    std::vector<gds_int64> units, coef_offset, bias_offset;
    gds_int64 n_coef = 0, n_params = 0;

    explicit MlpLayout(const MlpShape& s)
        : n_layers(s.n_layers), units(s.units, s.units + s.n_layers + 1) {
        coef_offset.resize(n_layers);
        bias_offset.resize(n_layers);
        gds_int64 off = 0;
        for (int l = 0; l < n_layers; ++l) {
            coef_offset[l] = off;
            off += units[l] * units[l + 1];
        }
        n_coef = off;
        for (int l = 0; l < n_layers; ++l) {
            bias_offset[l] = off;
            off += units[l + 1];
        }
        n_params = off;
    }
    gds_int64 n_features() const { return units[0]; }
    gds_int64 n_outputs() const { return units[n_layers]; }
};

// A data set: dense rows or CSR, with regression/multilabel targets Y (n_rows x n_outputs) or class
// indices (softmax).
template <class T> struct MlpData {
    gds_int64 n_rows;
    const T* X;                // dense, row-major n_rows x n_features; null for CSR
    const gds_int64* indptr;   // CSR (used when X is null)
    const std::int32_t* indices;
    const T* values;
    const T* Y;                // targets for SQUARED and LOG
    const int* labels;         // class index per row for SOFTMAX
};

// Per-call buffers, sized once for `capacity` rows: no allocation inside the epoch loop.
template <class T> struct MlpWorkspace {
    gds_int64 capacity;
    std::vector<T> input;                // gathered dense rows of a shuffled batch
    std::vector<std::vector<T>> act;     // act[l]: layer l's output (l = 1..n_layers); logits last
    std::vector<std::vector<T>> delta;   // delta[l]: d loss / d pre-activation of hidden layer l
    std::vector<T> row_scratch;          // one value per row (softmax: the label's shifted logit)
    std::vector<T> logits;               // Sophia: the batch's logits, for the drawn labels
    const T* a0 = nullptr;               // the batch's dense input rows (into X or `input`)

    MlpWorkspace(const MlpLayout& lay, gds_int64 cap, bool dense) : capacity(cap) {
        if (dense) input.resize(static_cast<std::size_t>(cap * lay.n_features()));
        row_scratch.resize(static_cast<std::size_t>(cap));
        act.resize(lay.n_layers + 1);
        delta.resize(lay.n_layers + 1);
        for (int l = 1; l <= lay.n_layers; ++l) {
            act[l].resize(static_cast<std::size_t>(cap * lay.units[l]));
            if (l < lay.n_layers) delta[l].resize(static_cast<std::size_t>(cap * lay.units[l]));
        }
    }
};


// ---- Elementwise kernels (the activation code is a template argument: branch-free loops) --------

template <class T, int ACT> inline void activate_n(T* z, gds_int64 n) {
    for (gds_int64 i = 0; i < n; ++i) z[i] = activation_value<T>(ACT, z[i]);
}

template <class T> inline void activate(int code, T* z, gds_int64 n) {
    switch (static_cast<Activation>(code)) {
        case Activation::IDENTITY: return;
        case Activation::RELU: activate_n<T, static_cast<int>(Activation::RELU)>(z, n); return;
        case Activation::TANH: activate_n<T, static_cast<int>(Activation::TANH)>(z, n); return;
        case Activation::LOGISTIC:
            activate_n<T, static_cast<int>(Activation::LOGISTIC)>(z, n);
            return;
    }
}

// z = f(z + bias) row by row (nb rows of width n): the intercepts join the activation pass
// instead of costing a pass of their own.
template <class T, int ACT>
inline void add_bias_activate_n(T* z, const T* bias, gds_int64 nb, gds_int64 n) {
    for (gds_int64 b = 0; b < nb; ++b) {
        T* row = z + b * n;
        for (gds_int64 j = 0; j < n; ++j) row[j] = activation_value<T>(ACT, row[j] + bias[j]);
    }
}

template <class T>
inline void add_bias_activate(int code, T* z, const T* bias, gds_int64 nb, gds_int64 n) {
    switch (static_cast<Activation>(code)) {
        case Activation::IDENTITY:
            add_bias_activate_n<T, static_cast<int>(Activation::IDENTITY)>(z, bias, nb, n);
            return;
        case Activation::RELU:
            add_bias_activate_n<T, static_cast<int>(Activation::RELU)>(z, bias, nb, n);
            return;
        case Activation::TANH:
            add_bias_activate_n<T, static_cast<int>(Activation::TANH)>(z, bias, nb, n);
            return;
        case Activation::LOGISTIC:
            add_bias_activate_n<T, static_cast<int>(Activation::LOGISTIC)>(z, bias, nb, n);
            return;
    }
}

// d *= f'(z) for a block of nb rows of width n, with f'(z) written through a = f(z); `colsum`
// receives the column sums of the result (the intercept gradient of the layer), in the same pass.
template <class T, int ACT>
inline void times_derivative_colsum_n(T* __restrict d, const T* __restrict a, gds_int64 nb,
                                      gds_int64 n, T* __restrict colsum) {
    for (gds_int64 j = 0; j < n; ++j) colsum[j] = T(0);
    for (gds_int64 b = 0; b < nb; ++b) {
        T* __restrict drow = d + b * n;
        const T* __restrict arow = a + b * n;
#pragma omp simd
        for (gds_int64 j = 0; j < n; ++j) {
            T v;
            if constexpr (ACT == static_cast<int>(Activation::RELU)) {
                // relu's 0/1 written out here: through the inlined switch of
                // activation_derivative_from_output gcc 12 leaves a branch and does not vectorize
                const T mask = arow[j] > T(0) ? T(1) : T(0);
                v = drow[j] * mask;
            } else {
                v = drow[j] * activation_derivative_from_output<T>(ACT, arow[j]);
            }
            drow[j] = v;
            colsum[j] += v;
        }
    }
}

template <class T>
inline void times_derivative_colsum(int code, T* d, const T* a, gds_int64 nb, gds_int64 n,
                                    T* colsum) {
    switch (static_cast<Activation>(code)) {
#define GDS_MLP_DERIVATIVE_CASE(name, value)                                        \
    case Activation::name:                                                          \
        times_derivative_colsum_n<T, value>(d, a, nb, n, colsum);                   \
        return;
        GDS_ACTIVATION_CODES(GDS_MLP_DERIVATIVE_CASE)
#undef GDS_MLP_DERIVATIVE_CASE
    }
}


// ---- Optimizer pass over the flat parameter vector ----------------------------------------------

// One update of every parameter; returns ||W||^2 over the first n_penalized entries (the
// coefficient matrices) taken before the update. Those entries also get the L2 gradient
// `penalty * w` added on the fly, which saves the separate pass over w and g (pass penalty = 0
// when the gradient already holds it). The rule's code becomes a compile-time constant (so the
// switch in optimizer_update folds away), and the usual case without coupled/decoupled weight
// decay or AMSGrad gets its own loops where those branches are constants too: they vectorize.
template <class T, int CODE>
inline double update_flat_code(OptimizerConfig c, OptimizerStep st, T* __restrict w,
                               const T* __restrict g, T* __restrict s0, T* __restrict s1,
                               T* __restrict s2, gds_int64 n, gds_int64 n_penalized, T penalty) {
    c.code = CODE;
    // ||W||^2 in its own short pass: a reduction inside the update loop keeps gcc 12 from
    // vectorizing that loop once everything is inlined into the fit
    double sq = 0.0;
#pragma omp simd reduction(+ : sq)
    for (gds_int64 i = 0; i < n_penalized; ++i)
        sq += static_cast<double>(w[i]) * static_cast<double>(w[i]);
    if (st.l2 == 0.0 && st.decay_factor == 1.0 && !c.amsgrad) {
        st.l2 = 0.0;
        st.decay_factor = 1.0;
        c.amsgrad = 0;
#pragma omp simd
        for (gds_int64 i = 0; i < n_penalized; ++i)
            optimizer_update<T>(c, st, w[i], g[i] + penalty * w[i], s0[i], s1[i], s2[i]);
#pragma omp simd
        for (gds_int64 i = n_penalized; i < n; ++i)
            optimizer_update<T>(c, st, w[i], g[i], s0[i], s1[i], s2[i]);
    } else {
        for (gds_int64 i = 0; i < n_penalized; ++i)
            optimizer_update<T>(c, st, w[i], g[i] + penalty * w[i], s0[i], s1[i], s2[i]);
        for (gds_int64 i = n_penalized; i < n; ++i)
            optimizer_update<T>(c, st, w[i], g[i], s0[i], s1[i], s2[i]);
    }
    return sq;
}

template <class T>
inline double update_flat(const OptimizerConfig& c, const OptimizerStep& st, T* w, const T* g,
                          T* s0, T* s1, T* s2, gds_int64 n, gds_int64 n_penalized, T penalty) {
    switch (static_cast<Optimizer>(c.code)) {
#define GDS_MLP_UPDATE_CASE(name, value)                                                   \
    case Optimizer::name:                                                                  \
        return update_flat_code<T, value>(c, st, w, g, s0, s1, s2, n, n_penalized, penalty);
        GDS_OPTIMIZER_CODES(GDS_MLP_UPDATE_CASE)
#undef GDS_MLP_UPDATE_CASE
    }
    return 0.0;
}


// ---- Forward / loss / backward on one batch -----------------------------------------------------

// A batch is `count` rows: rows[0..count) of the data set when `rows` is given (shuffled order),
// else the contiguous block starting at `first`.
struct MlpBatch {
    const RowIndex* rows;
    gds_int64 first;
    gds_int64 count;
    gds_int64 row(gds_int64 b) const { return rows ? rows[b] : first + b; }
};

// Hidden activations into ws.act[1..L-1]; the output layer's pre-activation (logits) into
// ws.act[L]. Every dense layer is one gemm followed by one pass adding the intercepts and applying
// the activation; a sparse first layer starts from the intercepts and adds the stored entries.
template <class T>
inline void mlp_forward_batch(const MlpLayout& lay, int activation, GemmFn<T> gemm, const T* params,
                              const MlpData<T>& d, const MlpBatch& batch, MlpWorkspace<T>& ws) {
    const gds_int64 nb = batch.count;
    const gds_int64 n_features = lay.n_features();
    const bool dense = d.X != nullptr;
    if (dense) {
        if (batch.rows) {
            T* dst = ws.input.data();
            for (gds_int64 b = 0; b < nb; ++b)
                std::memcpy(dst + b * n_features, d.X + batch.rows[b] * n_features,
                            sizeof(T) * static_cast<std::size_t>(n_features));
            ws.a0 = dst;
        } else {
            ws.a0 = d.X + batch.first * n_features;
        }
    } else {
        ws.a0 = nullptr;
    }
    const T* in = ws.a0;
    for (int l = 0; l < lay.n_layers; ++l) {
        const gds_int64 n_in = lay.units[l], n_out = lay.units[l + 1];
        const T* W = params + lay.coef_offset[l];
        const T* bias = params + lay.bias_offset[l];
        T* out = ws.act[l + 1].data();
        const int act = l + 1 < lay.n_layers ? activation : static_cast<int>(Activation::IDENTITY);
        if (l == 0 && !dense) {
            // sparse rows times W: add value * (row j of W) for each stored entry
            for (gds_int64 b = 0; b < nb; ++b)
                std::memcpy(out + b * n_out, bias, sizeof(T) * static_cast<std::size_t>(n_out));
            for (gds_int64 b = 0; b < nb; ++b) {
                const gds_int64 r = batch.row(b);
                T* o = out + b * n_out;
                for (gds_int64 p = d.indptr[r]; p < d.indptr[r + 1]; ++p) {
                    const T v = d.values[p];
                    const T* wrow = W + d.indices[p] * n_out;
                    for (gds_int64 j = 0; j < n_out; ++j) o[j] += v * wrow[j];
                }
            }
            activate<T>(act, out, nb * n_out);
        } else {
            gemm_row_major<T>(gemm, false, false, nb, n_out, n_in, T(1), in, n_in, W, n_out, T(0),
                              out, n_out);
            add_bias_activate<T>(act, out, bias, nb, n_out);
        }
        in = out;
    }
}

// Sum over the batch of the per-sample loss at logits z (nb x k); z is replaced by
// d loss / d z scaled by `scale` (1 / batch size: the objective is the batch mean). The batch's
// targets are contiguous: `labels` (softmax) or `y` (nb x k), see mlp_batch_targets. Each output
// follows model/mlp.h; softmax rows take the vectorised batch path (cpu/fast_losses.h).
template <class T>
inline double mlp_output_loss_and_delta(int loss, T* z, gds_int64 nb, gds_int64 k,
                                        const int* labels, const T* y, T scale,
                                        MlpWorkspace<T>& ws) {
    double total = 0.0;
    if (loss == static_cast<int>(Loss::SOFTMAX))
        return softmax_cross_entropy_batch<T>(z, nb, k, labels, scale, ws.row_scratch.data());
    const gds_int64 n = nb * k;
    if (loss == static_cast<int>(Loss::LOG)) {
        for (gds_int64 i = 0; i < n; ++i) {
            T delta;
            total += mlp_logistic_output<T>(z[i], y[i], scale, delta);
            z[i] = delta;
        }
    } else {  // SQUARED: 0.5 (z - y)^2 summed over outputs
#pragma omp simd reduction(+ : total)
        for (gds_int64 i = 0; i < n; ++i) {
            T delta;
            total += mlp_squared_output<T>(z[i], y[i], scale, delta);
            z[i] = delta;
        }
    }
    return total;
}

// The optimizer step applied layer by layer inside the backward pass: as soon as a layer's
// gradient is complete (and its weights have been used to propagate the delta further down) its
// coefficients and intercepts are updated, while that gradient and those weights are still in
// cache. Same arithmetic as one pass after the backward pass; not usable with clipping, which needs
// the whole gradient first.
template <class T> struct MlpInlineUpdate {
    const OptimizerConfig* opt;
    const OptimizerStep* step;
    T* params;
    T* s0;
    T* s1;
    T* s2;
    T penalty;        // L2 gradient factor alpha / batch size on the coefficients
    double sq_coefs;  // out: ||W||^2 before the update, summed over the layers
};

// Gradient of the batch's mean loss w.r.t. every parameter into `grad` (no L2 part). Starts from
// the output delta left in ws.act[L]; each hidden layer's delta gets the activation derivative
// and its column sums (the intercept gradient) in one pass. With `update`, each layer is updated as
// soon as its gradient is complete (see MlpInlineUpdate).
template <class T>
inline void mlp_backward_batch(const MlpLayout& lay, int activation, GemmFn<T> gemm,
                               const T* params, const MlpData<T>& d, const MlpBatch& batch,
                               MlpWorkspace<T>& ws, T* grad, MlpInlineUpdate<T>* update = nullptr) {
    const gds_int64 nb = batch.count;
    const T* D = ws.act[lay.n_layers].data();
    {
        const gds_int64 k = lay.n_outputs();
        T* gb = grad + lay.bias_offset[lay.n_layers - 1];
        for (gds_int64 j = 0; j < k; ++j) gb[j] = T(0);
        for (gds_int64 b = 0; b < nb; ++b)
            for (gds_int64 j = 0; j < k; ++j) gb[j] += D[b * k + j];
    }
    for (int l = lay.n_layers - 1; l >= 0; --l) {
        const gds_int64 n_in = lay.units[l], n_out = lay.units[l + 1];
        const T* W = params + lay.coef_offset[l];
        T* gW = grad + lay.coef_offset[l];
        // coefficients: A_l^T D
        if (l == 0 && d.X == nullptr) {
            std::memset(gW, 0, sizeof(T) * static_cast<std::size_t>(n_in * n_out));
            for (gds_int64 b = 0; b < nb; ++b) {
                const gds_int64 r = batch.row(b);
                const T* row = D + b * n_out;
                for (gds_int64 p = d.indptr[r]; p < d.indptr[r + 1]; ++p) {
                    const T v = d.values[p];
                    T* g = gW + d.indices[p] * n_out;
                    for (gds_int64 j = 0; j < n_out; ++j) g[j] += v * row[j];
                }
            }
        } else {
            const T* A = l == 0 ? ws.a0 : ws.act[l].data();
            gemm_row_major<T>(gemm, true, false, n_in, n_out, nb, T(1), A, n_in, D, n_out, T(0), gW,
                              n_out);
        }
        // propagate to the hidden layer below: (D W_l^T) * f'(A_l), and its intercept gradient
        if (l > 0) {
            T* Dp = ws.delta[l].data();
            gemm_row_major<T>(gemm, false, true, nb, n_in, n_out, T(1), D, n_out, W, n_out, T(0),
                              Dp, n_in);
            times_derivative_colsum<T>(activation, Dp, ws.act[l].data(), nb, n_in,
                                       grad + lay.bias_offset[l - 1]);
            D = Dp;
        }
        if (update) {  // layer l's gradient is final and W_l is no longer needed
            const gds_int64 c0 = lay.coef_offset[l], b0 = lay.bias_offset[l];
            MlpInlineUpdate<T>& u = *update;
            u.sq_coefs += update_flat<T>(*u.opt, *u.step, u.params + c0, grad + c0, u.s0 + c0,
                                         u.s1 + c0, u.s2 + c0, n_in * n_out, n_in * n_out,
                                         u.penalty);
            update_flat<T>(*u.opt, *u.step, u.params + b0, grad + b0, u.s0 + b0, u.s1 + b0,
                           u.s2 + b0, n_out, 0, T(0));
        }
    }
}

// scikit-learn's MLP convention: the batch objective carries 0.5 alpha ||W||^2 / batch_size over
// the coefficient matrices (not the intercepts). Adds its gradient and returns ||W||^2.
template <class T>
inline double mlp_add_penalty(const MlpLayout& lay, const T* params, T* grad, double alpha,
                              gds_int64 batch_size) {
    if (alpha == 0.0) return 0.0;
    const T c = static_cast<T>(alpha / static_cast<double>(batch_size));
    double sq = 0.0;
    const gds_int64 n = lay.n_coef;
#pragma omp simd reduction(+ : sq)
    for (gds_int64 i = 0; i < n; ++i) {
        const T w = params[i];
        sq += static_cast<double>(w) * static_cast<double>(w);
        grad[i] += c * w;
    }
    return sq;
}

// Forward pass and loss for one batch; returns the batch's mean loss (no L2 part) and leaves the
// output delta in ws.act[L] for the backward pass. `labels` / `y`: the batch's targets,
// contiguous (null when the loss does not use them).
template <class T>
inline double mlp_batch_loss(const MlpLayout& lay, const MlpShape& shape, GemmFn<T> gemm,
                             const T* params, const MlpData<T>& d, const MlpBatch& batch,
                             const int* labels, const T* y, MlpWorkspace<T>& ws) {
    mlp_forward_batch<T>(lay, shape.activation, gemm, params, d, batch, ws);
    const double inv = 1.0 / static_cast<double>(batch.count);
    const double data_loss = mlp_output_loss_and_delta<T>(
        shape.loss, ws.act[lay.n_layers].data(), batch.count, lay.n_outputs(), labels, y,
        static_cast<T>(inv), ws);
    return data_loss * inv;
}

// Sophia's second gradient of a batch: at labels drawn from the network (model/mlp.h:
// mlp_gnb_output_delta with this key and step), into `grad`.
template <class T> struct MlpSampledGradient {
    T* grad;
    gds_uint64 key;
    gds_int64 t;
};

// Forward, loss and backward of a batch (or a member's share of one) into `grad` (no L2 part),
// the output delta scaled by `scale`; with `sampled`, also the gradient at the drawn labels from
// the same forward pass. Returns the loss sum. ws.logits must hold nb * k values with `sampled`.
template <class T>
inline double mlp_member_gradients(const MlpLayout& lay, const MlpShape& shape, GemmFn<T> gemm,
                                   const T* params, const MlpData<T>& d, const MlpBatch& batch,
                                   const int* labels, const T* y, T scale, MlpWorkspace<T>& ws,
                                   T* grad, const MlpSampledGradient<T>* sampled) {
    const gds_int64 k = lay.n_outputs(), nb = batch.count;
    mlp_forward_batch<T>(lay, shape.activation, gemm, params, d, batch, ws);
    T* z = ws.act[lay.n_layers].data();
    if (sampled) std::memcpy(ws.logits.data(), z, sizeof(T) * static_cast<std::size_t>(nb * k));
    const double loss = mlp_output_loss_and_delta<T>(shape.loss, z, nb, k, labels, y, scale, ws);
    mlp_backward_batch<T>(lay, shape.activation, gemm, params, d, batch, ws, grad);
    if (sampled) {
        for (gds_int64 b = 0; b < nb; ++b)
            mlp_gnb_output_delta<T>(shape.loss, ws.logits.data() + b * k, k, sampled->key,
                                    sampled->t, batch.row(b), scale, z + b * k);
        mlp_backward_batch<T>(lay, shape.activation, gemm, params, d, batch, ws, sampled->grad);
    }
    return loss;
}

// Prefetch the input rows of a shuffled batch (the next one, while this one is computed), so
// that gathering it later finds them in cache instead of waiting on each row in turn.
template <class T>
inline void mlp_prefetch_rows(const MlpData<T>& d, const RowIndex* rows, gds_int64 count,
                              gds_int64 n_features) {
    if (!rows || !d.X) return;
    const gds_int64 row_bytes = n_features * static_cast<gds_int64>(sizeof(T));
    for (gds_int64 b = 0; b < count; ++b) {
        const char* p = reinterpret_cast<const char*>(d.X + rows[b] * n_features);
        for (gds_int64 off = 0; off < row_bytes; off += 64) __builtin_prefetch(p + off);
    }
}

// Targets in the epoch's shuffled order, so that every batch reads its labels / target rows from
// one contiguous block: one tight pass per epoch instead of scattered loads in every batch.
template <class T>
inline void mlp_shuffle_targets(const MlpData<T>& d, const RowIndex* order, gds_int64 n,
                                gds_int64 k, std::vector<int>& labels, std::vector<T>& y) {
    if (d.labels) {
        for (gds_int64 i = 0; i < n; ++i) labels[i] = d.labels[order[i]];
    } else if (d.Y) {
        for (gds_int64 i = 0; i < n; ++i)
            std::memcpy(y.data() + i * k, d.Y + order[i] * k,
                        sizeof(T) * static_cast<std::size_t>(k));
    }
}

// ---- One batch shared by a team of threads --------------------------------------------------------

// Rows per member below which a batch is not split: small GEMMs lose more to the hand-off than
// they gain.
constexpr gds_int64 kMlpMinRowsPerMember = 32;

inline int mlp_team_size(int n_threads, gds_int64 batch_size) {
    gds_int64 m = n_threads < 1 ? 1 : n_threads;
    if (m > kMaxTeamSize) m = kMaxTeamSize;
    if (m > batch_size / kMlpMinRowsPerMember) m = batch_size / kMlpMinRowsPerMember;
    return m < 1 ? 1 : static_cast<int>(m);
}

// Data-parallel step: member m runs forward, loss and backward on its share of the batch rows
// (with single-threaded BLAS, so the members' GEMMs run side by side), into its own workspace and
// gradient; then each member sums the gradients over its slice of the parameter vector and applies
// the optimizer there. The batch mean scales every share by 1 / count, so the summed gradient is
// the whole batch's.
template <class T> struct MlpTeamStep {
    const MlpLayout* lay;
    const MlpShape* shape;
    GemmFn<T> gemm;
    T* params;
    const MlpData<T>* data;
    MlpBatch batch;
    const RowIndex* next_rows;  // the following shuffled batch (prefetched), or null
    gds_int64 next_count;
    const int* labels;  // the batch's targets, contiguous (or null)
    const T* y;
    MlpWorkspace<T>* ws;  // one per member
    T** grads;            // one per member
    int members;
    int phase;  // 0: gradients, 1: reduce and update
    double loss[kMaxTeamSize];
    // update phase
    const OptimizerConfig* opt;
    const OptimizerStep* step;
    T* s0;
    T* s1;
    T* s2;
    T penalty;
    double sq[kMaxTeamSize];
    T scale = T(0);  // phase 0: factor of d loss; 0 means 1 / batch.count (the batch mean)
    // Sophia's Hessian refresh: each member's gradient at the drawn labels too (summed in phase 1
    // into sampled_grads[0]); null otherwise
    T** sampled_grads = nullptr;
    gds_uint64 key = 0;
    gds_int64 t = 0;
};

template <class T> inline void mlp_team_member(MlpTeamStep<T>& job, int m) {
    const MlpLayout& lay = *job.lay;
    if (job.phase == 0) {
        const gds_int64 count = job.batch.count;
        const gds_int64 per = (count + job.members - 1) / job.members;
        const gds_int64 a = m * per < count ? m * per : count;
        const gds_int64 e = a + per < count ? a + per : count;
        if (job.next_rows) {
            const gds_int64 np = (job.next_count + job.members - 1) / job.members;
            const gds_int64 na = m * np < job.next_count ? m * np : job.next_count;
            const gds_int64 ne = na + np < job.next_count ? na + np : job.next_count;
            mlp_prefetch_rows<T>(*job.data, job.next_rows + na, ne - na, lay.n_features());
        }
        const MlpBatch part{job.batch.rows ? job.batch.rows + a : nullptr, job.batch.first + a,
                            e - a};
        const gds_int64 k = lay.n_outputs();
        const MlpSampledGradient<T> sampled{job.sampled_grads ? job.sampled_grads[m] : nullptr,
                                            job.key, job.t};
        job.loss[m] = mlp_member_gradients<T>(
            lay, *job.shape, job.gemm, job.params, *job.data, part,
            job.labels ? job.labels + a : nullptr, job.y ? job.y + a * k : nullptr,
            job.scale != T(0) ? job.scale : static_cast<T>(1.0 / static_cast<double>(count)),
            job.ws[m], job.grads[m], job.sampled_grads ? &sampled : nullptr);
    } else {
        const gds_int64 n = lay.n_params;
        const gds_int64 per = (n + job.members - 1) / job.members;
        const gds_int64 a = m * per < n ? m * per : n;
        const gds_int64 e = a + per < n ? a + per : n;
        T* g = job.grads[0];
        for (int o = 1; o < job.members; ++o) {  // fixed order: bit-reproducible per team size
            const T* go = job.grads[o];
#pragma omp simd
            for (gds_int64 j = a; j < e; ++j) g[j] += go[j];
        }
        if (job.sampled_grads) {
            T* h = job.sampled_grads[0];
            for (int o = 1; o < job.members; ++o) {
                const T* ho = job.sampled_grads[o];
#pragma omp simd
                for (gds_int64 j = a; j < e; ++j) h[j] += ho[j];
            }
        }
        if (!job.opt) {  // clipping, Muon, Sophia's refresh: the caller updates
            job.sq[m] = 0.0;
            return;
        }
        gds_int64 n_pen = lay.n_coef - a;
        if (n_pen < 0) n_pen = 0;
        if (n_pen > e - a) n_pen = e - a;
        job.sq[m] = update_flat<T>(*job.opt, *job.step, job.params + a, g + a, job.s0 + a,
                                   job.s1 + a, job.s2 + a, e - a, n_pen, job.penalty);
    }
}

GDS_CLONED_TEAM_JOB(mlp_team_job, mlp_team_member, MlpTeamStep<double>)
GDS_CLONED_TEAM_JOB(mlp_team_job, mlp_team_member, MlpTeamStep<float>)

// Output activation in place on logits (nb x k): probabilities for LOG / SOFTMAX.
template <class T> inline void mlp_output_activation(int loss, T* z, gds_int64 nb, gds_int64 k) {
    if (loss == static_cast<int>(Loss::SOFTMAX)) {
        for (gds_int64 b = 0; b < nb; ++b) softmax_inplace<T>(z + b * k, static_cast<int>(k));
    } else if (loss == static_cast<int>(Loss::LOG)) {
        for (gds_int64 i = 0; i < nb * k; ++i) z[i] = logistic<T>(z[i]);
    }
}

// ---- Validation score (early stopping): accuracy for classifiers, mean R^2 for regressors -------

struct MlpValidationTargets {
    std::vector<double> mean, ss_tot;  // per output (R^2 only)
};

template <class T>
inline MlpValidationTargets mlp_validation_targets(const MlpShape& shape, const MlpData<T>& val,
                                                   gds_int64 k) {
    MlpValidationTargets t;
    if (shape.loss != static_cast<int>(Loss::SQUARED) || val.n_rows == 0) return t;
    t.mean.assign(k, 0.0);
    t.ss_tot.assign(k, 0.0);
    for (gds_int64 i = 0; i < val.n_rows; ++i)
        for (gds_int64 j = 0; j < k; ++j) t.mean[j] += val.Y[i * k + j];
    for (gds_int64 j = 0; j < k; ++j) t.mean[j] /= static_cast<double>(val.n_rows);
    for (gds_int64 i = 0; i < val.n_rows; ++i)
        for (gds_int64 j = 0; j < k; ++j) {
            const double r = val.Y[i * k + j] - t.mean[j];
            t.ss_tot[j] += r * r;
        }
    return t;
}

// The score scikit-learn's MLP uses for early stopping (estimator.score): NaN when a prediction is
// not finite.
template <class T>
inline double mlp_validation_score(const MlpLayout& lay, const MlpShape& shape, GemmFn<T> gemm,
                                   const T* params, const MlpData<T>& val,
                                   const MlpValidationTargets& targets, MlpWorkspace<T>& ws) {
    const gds_int64 k = lay.n_outputs();
    const T* z_all = ws.act[lay.n_layers].data();
    double correct = 0.0;
    std::vector<double> ss_res(shape.loss == static_cast<int>(Loss::SQUARED) ? k : 0, 0.0);
    for (gds_int64 start = 0; start < val.n_rows; start += ws.capacity) {
        const gds_int64 nb = val.n_rows - start < ws.capacity ? val.n_rows - start : ws.capacity;
        const MlpBatch batch{nullptr, start, nb};
        mlp_forward_batch<T>(lay, shape.activation, gemm, params, val, batch, ws);
        for (gds_int64 b = 0; b < nb; ++b) {
            const T* z = z_all + b * k;
            const gds_int64 r = start + b;
            for (gds_int64 j = 0; j < k; ++j)
                if (!isfinite(z[j])) return std::numeric_limits<double>::quiet_NaN();
            if (shape.loss == static_cast<int>(Loss::SOFTMAX)) {
                gds_int64 best = 0;  // first maximum, as np.argmax
                for (gds_int64 j = 1; j < k; ++j)
                    if (z[j] > z[best]) best = j;
                correct += best == val.labels[r] ? 1.0 : 0.0;
            } else if (shape.loss == static_cast<int>(Loss::LOG)) {
                // p > 0.5 <=> z > 0; multilabel counts a row only when every label matches
                bool all = true;
                for (gds_int64 j = 0; j < k; ++j)
                    all = all && ((z[j] > T(0)) == (val.Y[r * k + j] > T(0.5)));
                correct += all ? 1.0 : 0.0;
            } else {
                for (gds_int64 j = 0; j < k; ++j) {
                    const double e = static_cast<double>(z[j]) - val.Y[r * k + j];
                    ss_res[j] += e * e;
                }
            }
        }
    }
    if (shape.loss != static_cast<int>(Loss::SQUARED))
        return correct / static_cast<double>(val.n_rows);
    double r2 = 0.0;  // uniform average over outputs, constant targets as sklearn's force_finite
    for (gds_int64 j = 0; j < k; ++j) {
        if (targets.ss_tot[j] == 0.0) r2 += ss_res[j] == 0.0 ? 1.0 : 0.0;
        else r2 += 1.0 - ss_res[j] / targets.ss_tot[j];
    }
    return r2 / static_cast<double>(k);
}


// ---- The executor -------------------------------------------------------------------------------

// What a fit is: the network, and its update rule, schedule, driver's rules and threads.
struct MlpSetup {
    MlpShape shape;
    MlpConfig model;
    FitSetup fit;
};

// The MLP executor as the binding holds it (its objective is the mean of the batch objectives,
// each with its L2 term; its score the mean R^2 for several outputs).
template <class T> class MlpRunner : public EpochRunner<T> {
  public:
    // Loss sum of rows[0..count) of the training data at `params` and the gradient of
    // scale * (that sum) (no L2 part) into grad; the rows shared by the team.
    virtual double gradient(const T* params, const RowIndex* rows, gds_int64 count, double scale,
                            T* grad) = 0;
    int members = 1;  // threads sharing each batch
};

template <class T> class MlpCpuRunner final : public MlpRunner<T> {
  public:
    MlpCpuRunner(const MlpSetup& setup, GemmFn<T> gemm, const MlpData<T>& train,
                 const MlpData<T>& val)
        : setup_(setup), lay_(setup.shape), gemm_(gemm), train_(train), val_(val) {
        const gds_int64 n = train.n_rows;
        bs_ = setup.fit.driver.batch_size < 1 ? 1 : setup.fit.driver.batch_size;
        if (bs_ > n) bs_ = n;
        // A team shares each batch's rows when there are threads and rows enough: member m has
        // its own workspace and gradient; member 0's also serves unsplit batches and validation.
        int members = mlp_team_size(setup.fit.cpu.n_threads, bs_);
        if (members > 1) {
            team_.reset(new WorkerTeam(members));
            members = team_->size();  // fewer if the system refused a thread
        }
        this->members = members;
        const gds_int64 np = lay_.n_params, k = lay_.n_outputs();
        workspaces_.reserve(members);
        workspaces_.emplace_back(lay_, bs_, train.X != nullptr);
        for (int m = 1; m < members; ++m)
            workspaces_.emplace_back(lay_, (bs_ + members - 1) / members, train.X != nullptr);
        grads_.assign(members, std::vector<T>(static_cast<std::size_t>(np)));
        grad_ptrs_.resize(members);
        for (int m = 0; m < members; ++m) grad_ptrs_[m] = grads_[m].data();
        labels_.resize(train.labels ? static_cast<std::size_t>(n) : 0);
        ys_.resize(train.Y ? static_cast<std::size_t>(n * k) : 0);
        targets_ = mlp_validation_targets<T>(setup.shape, val, k);
        checker_.callback = setup.fit.interrupt;
        checker_.context = setup.fit.interrupt_context;
        const OptimizerConfig& opt = setup.fit.optimizer;
        n_slots_ = optimizer_state_slots(opt);  // slots the rule reads
        muon_ = opt.code == static_cast<int>(Optimizer::MUON);
        sophia_ = opt.code == static_cast<int>(Optimizer::SOPHIA);
        if (muon_) {
            // Muon's matrices and the companion share the slots (disjoint parameters)
            const int companion_slots = optimizer_state_slots(setup.fit.companion);
            if (companion_slots > n_slots_) n_slots_ = companion_slots;
            gds_int64 u = 0, ns = 0;  // scratch for the largest hidden matrix, once per fit
            for (int l = 0; l < lay_.n_layers; ++l) {
                if (!mlp_muon_layer(l, lay_.n_layers)) continue;
                const gds_int64 r = lay_.units[l], c = lay_.units[l + 1];
                if (r * c > u) u = r * c;
                if (newton_schulz_scratch(r, c) > ns) ns = newton_schulz_scratch(r, c);
            }
            muon_u_.resize(static_cast<std::size_t>(u));
            muon_scratch_.resize(static_cast<std::size_t>(ns));
        }
        if (sophia_) {
            sampled_.assign(members, std::vector<T>(static_cast<std::size_t>(np)));
            sampled_ptrs_.resize(members);
            for (int m = 0; m < members; ++m) {
                sampled_ptrs_[m] = sampled_[m].data();
                workspaces_[m].logits.resize(static_cast<std::size_t>(workspaces_[m].capacity * k));
            }
        }
    }

    int run_epoch(StateView<T>& s, double& objective) override;

    double score(const StateView<T>& s) override;

    double score_body(const T* params) {
        return mlp_validation_score<T>(lay_, setup_.shape, gemm_, params, val_, targets_,
                                       workspaces_[0]);
    }

    double gradient(const T* params, const RowIndex* rows, gds_int64 count, double scale,
                    T* grad) override;

    // The body of the cloned epoch entry.
    int epoch(StateView<T>& s, double& objective) {
        const gds_int64 n = train_.n_rows;
        const gds_int64 np = lay_.n_params;
        const gds_int64 k = lay_.n_outputs();
        const int members = this->members;
        const MlpShape& shape = setup_.shape;
        const MlpConfig& model = setup_.model;
        const OptimizerConfig& opt = setup_.fit.optimizer;
        const bool shuffle = setup_.fit.driver.shuffle != 0;
        FitScalars sc = *s.scalars;
        take_snapshot(s);
        const RowIndex* order = s.order;
        if (shuffle) {
            order_.assign(s.order, s.order + n);
            next_epoch_order(order_.data(), static_cast<std::size_t>(n), sc.rng);
            mlp_shuffle_targets<T>(train_, order_.data(), n, k, labels_, ys_);
            order = order_.data();
        }
        const int* labels = shuffle ? labels_.data() : train_.labels;
        const T* ys = shuffle ? ys_.data() : train_.Y;
        T* params = s.params;
        T* slot0 = s.slot0;
        T* slot1 = s.slot1;
        T* slot2 = s.slot2;
        std::vector<T>& grad = grads_[0];
        MlpWorkspace<T>& ws = workspaces_[0];
        const bool clip = model.clip != static_cast<int>(Clip::NONE);
        const gds_uint64 key = s.scalars->rng;  // Sophia's draws: the generator as the epoch starts
        double epoch_sum = 0.0;
        bool bad = false, stop = false;
        for (gds_int64 start = 0; start < n; start += bs_) {
            const gds_int64 nb = n - start < bs_ ? n - start : bs_;
            const MlpBatch batch{shuffle ? order + start : nullptr, start, nb};
            const gds_int64 next = !shuffle || start + bs_ >= n ? 0
                                   : (n - start - bs_ < bs_ ? n - start - bs_ : bs_);
            const bool split = members > 1 && nb >= members * kMlpMinRowsPerMember;
            const T* batch_y = ys ? ys + start * k : nullptr;
            const int* batch_labels = labels ? labels + start : nullptr;
            MlpTeamStep<T> job{&lay_, &shape, gemm_, params, &train_, batch,
                               next ? order + start + bs_ : nullptr, next, batch_labels, batch_y,
                               workspaces_.data(), grad_ptrs_.data(), members, 0, {},
                               nullptr, nullptr, slot0, slot1, slot2, T(0), {}};
            // Muon and Sophia's Hessian refreshes update once the whole gradient is known
            const bool refresh = sophia_ && sophia_refresh(opt, sc.optimizer_step + 1);
            if (muon_ || refresh) {
                if (refresh) {
                    job.sampled_grads = sampled_ptrs_.data();
                    job.key = key;
                    job.t = sc.optimizer_step + 1;
                }
                double sq;
                const double data_loss = whole_gradient_step(job, split, sc, nb, sq);
                const double obj = data_loss + 0.5 * model.alpha * sq / static_cast<double>(nb);
                if (!isfinite(data_loss) || !isfinite(obj)) {
                    bad = true;
                    break;
                }
                epoch_sum += obj * static_cast<double>(nb);
                if (checker_.should_stop(4096)) {
                    stop = true;
                    break;
                }
                continue;
            }
            double data_loss;
            if (split) {
                team_->run(team_job<MlpTeamStep<T>, mlp_team_job>, &job);
                double sum = 0.0;
                for (int m = 0; m < members; ++m) sum += job.loss[m];
                data_loss = sum / static_cast<double>(nb);
            } else {
                if (next) mlp_prefetch_rows<T>(train_, order + start + bs_, next, lay_.n_features());
                data_loss = mlp_batch_loss<T>(lay_, shape, gemm_, params, train_, batch,
                                              batch_labels, batch_y, ws);
            }
            if (!isfinite(data_loss)) {
                bad = true;
                break;
            }
            // model/mlp.h's step; the L2 term 0.5 alpha ||W||^2 / nb joins the update pass,
            // unless clipping needs the whole gradient (penalty included) before any update
            const MlpStepPlan<T> plan =
                mlp_step_begin<T>(model, opt, setup_.fit.schedule, sc, nb, 0.0);
            double sq;
            if (split) {
                // members sum the gradients over their parameter slices (and update them there,
                // unless clipping needs the whole gradient first)
                job.phase = 1;
                job.opt = clip ? nullptr : &opt;
                job.step = &plan.opt;
                job.penalty = plan.penalty;
                team_->run(team_job<MlpTeamStep<T>, mlp_team_job>, &job);
                sq = 0.0;
                for (int m = 0; m < members; ++m) sq += job.sq[m];
                if (clip) sq = clip_and_update(plan, params, grad.data(), slot0, slot1, slot2, nb);
            } else if (clip) {
                mlp_backward_batch<T>(lay_, shape.activation, gemm_, params, train_, batch, ws,
                                      grad.data());
                sq = clip_and_update(plan, params, grad.data(), slot0, slot1, slot2, nb);
            } else {
                MlpInlineUpdate<T> update{&opt, &plan.opt, params, slot0, slot1, slot2,
                                          plan.penalty, 0.0};
                mlp_backward_batch<T>(lay_, shape.activation, gemm_, params, train_, batch, ws,
                                      grad.data(), &update);
                sq = update.sq_coefs;
            }
            const double obj = data_loss + 0.5 * model.alpha * sq / static_cast<double>(nb);
            if (!isfinite(obj)) {
                bad = true;
                break;
            }
            epoch_sum += obj * static_cast<double>(nb);
            if (checker_.should_stop(4096)) {
                stop = true;
                break;
            }
        }
        if (!bad && !stop) {
            for (gds_int64 i = 0; i < np; ++i)
                if (!isfinite(params[i])) {
                    bad = true;
                    break;
                }
        }
        if (bad || stop) {
            restore_snapshot(s);
            return static_cast<int>(bad ? FitStatus::DIVERGED : FitStatus::INTERRUPTED);
        }
        sc.t += static_cast<double>(n);  // scikit-learn's MLP: t advances once per epoch
        *s.scalars = sc;
        if (shuffle) std::copy(order_.begin(), order_.end(), s.order);
        objective = epoch_sum / static_cast<double>(n);
        return static_cast<int>(FitStatus::MAX_ITER);
    }

    double gradient_body(const T* params, const RowIndex* rows, gds_int64 count, double scale,
                         T* grad_out) {
        const gds_int64 k = lay_.n_outputs();
        mlp_shuffle_targets<T>(train_, rows, count, k, labels_, ys_);
        const MlpBatch batch{rows, 0, count};
        const int* labels = train_.labels ? labels_.data() : nullptr;
        const T* ys = train_.Y ? ys_.data() : nullptr;
        double loss;
        const int members = this->members;
        if (members > 1 && count >= members * kMlpMinRowsPerMember &&
            count <= workspaces_[0].capacity) {
            MlpTeamStep<T> job{&lay_, &setup_.shape, gemm_, const_cast<T*>(params), &train_,
                               batch, nullptr, 0, labels, ys, workspaces_.data(),
                               grad_ptrs_.data(), members, 0, {}, nullptr, nullptr, nullptr,
                               nullptr, nullptr, T(0), {}};
            job.scale = static_cast<T>(scale);
            team_->run(team_job<MlpTeamStep<T>, mlp_team_job>, &job);
            loss = 0.0;
            for (int m = 0; m < members; ++m) loss += job.loss[m];
            job.phase = 1;  // sums only (no optimizer)
            team_->run(team_job<MlpTeamStep<T>, mlp_team_job>, &job);
        } else {
            MlpWorkspace<T> ws(lay_, count, train_.X != nullptr);
            mlp_forward_batch<T>(lay_, setup_.shape.activation, gemm_, params, train_, batch, ws);
            loss = mlp_output_loss_and_delta<T>(setup_.shape.loss, ws.act[lay_.n_layers].data(),
                                                count, k, labels, ys, static_cast<T>(scale), ws);
            mlp_backward_batch<T>(lay_, setup_.shape.activation, gemm_, params, train_, batch, ws,
                                  grads_[0].data());
        }
        std::copy(grads_[0].begin(), grads_[0].end(), grad_out);
        return loss;
    }

  private:
    // A step that needs the whole gradient before any update (Muon; Sophia on the steps that
    // refresh its Hessian estimate, which also takes the gradient at the drawn labels): the
    // batch's gradients on the team (split) or this thread, then the update. Returns the batch's
    // mean data loss (NaN or inf: nothing was updated) and ||W||^2 before the update in sq.
    double whole_gradient_step(MlpTeamStep<T>& job, bool split, FitScalars& sc, gds_int64 nb,
                               double& sq) {
        const OptimizerConfig& opt = setup_.fit.optimizer;
        const MlpConfig& model = setup_.model;
        T* grad = grads_[0].data();
        T* sampled = job.sampled_grads ? sampled_[0].data() : nullptr;
        double data_loss;
        sq = 0.0;
        if (split) {
            team_->run(team_job<MlpTeamStep<T>, mlp_team_job>, &job);
            double sum = 0.0;
            for (int m = 0; m < job.members; ++m) sum += job.loss[m];
            data_loss = sum / static_cast<double>(nb);
            job.phase = 1;  // sums only: job.opt is null
            team_->run(team_job<MlpTeamStep<T>, mlp_team_job>, &job);
        } else {
            const T scale = static_cast<T>(1.0 / static_cast<double>(nb));
            const MlpSampledGradient<T> drawn{sampled, job.key, job.t};
            if (job.next_rows)
                mlp_prefetch_rows<T>(train_, job.next_rows, job.next_count, lay_.n_features());
            data_loss = mlp_member_gradients<T>(lay_, setup_.shape, gemm_, job.params, train_,
                                                job.batch, job.labels, job.y, scale,
                                                workspaces_[0], grad,
                                                sampled ? &drawn : nullptr) /
                        static_cast<double>(nb);
        }
        if (!isfinite(data_loss)) return data_loss;
        T* params = job.params;
        sq = mlp_add_penalty<T>(lay_, params, grad, model.alpha, nb);
        clip_gradient<T>(model.clip, model.clip_limit, grad, lay_.n_params);
        if (muon_) {
            const MlpMuonPlan plan = mlp_muon_step_begin(model, opt, setup_.fit.companion,
                                                         setup_.fit.schedule, sc, nb, 0.0);
            muon_update(plan, params, grad, job.s0, job.s1, job.s2);
        } else {
            const MlpStepPlan<T> plan =
                mlp_step_begin<T>(model, opt, setup_.fit.schedule, sc, nb, 0.0);
            // h <- beta2 h + (1 - beta2) nb ghat^2, then the rule with the new h
            T* h = job.s1;
            const double rows = static_cast<double>(nb);
            for (gds_int64 j = 0; j < lay_.n_params; ++j)
                sophia_hessian_ema<T>(opt.beta2, h[j], gnb_estimate<T>(sampled[j], rows));
            update_flat<T>(opt, plan.opt, params, grad, job.s0, job.s1, job.s2, lay_.n_params, 0,
                           T(0));
        }
        return data_loss;
    }

    // model/mlp.h's Muon step: every hidden layer's matrix orthogonalised (math/muon.h, its
    // products through the executor's gemm), the companion rule on the tail of the vector.
    void muon_update(const MlpMuonPlan& plan, T* params, const T* grad, T* s0, T* s1, T* s2) {
        const OptimizerConfig& opt = setup_.fit.optimizer;
        const RowMajorGemm<T> gemm{gemm_};
        T* U = muon_u_.data();
        for (int l = 0; l < lay_.n_layers; ++l) {
            if (!mlp_muon_layer(l, lay_.n_layers)) continue;
            const gds_int64 rows = lay_.units[l], cols = lay_.units[l + 1];
            const gds_int64 off = lay_.coef_offset[l];
            // torch's shape of this weight is fan_out x fan_in
            muon_matrix_update<T>(gemm, opt, plan.muon, params + off, grad + off, s0 + off, rows,
                                  cols, static_cast<double>(cols), static_cast<double>(rows), U,
                                  muon_scratch_.data());
        }
        const gds_int64 tail = lay_.coef_offset[lay_.n_layers - 1];
        update_flat<T>(setup_.fit.companion, plan.companion, params + tail, grad + tail, s0 + tail,
                       s1 + tail, s2 + tail, lay_.n_params - tail, 0, T(0));
    }

    // Clipping needs the whole gradient: add the L2 part, clip, then update (no L2 in the pass).
    double clip_and_update(const MlpStepPlan<T>& plan, T* params, T* grad, T* s0, T* s1, T* s2,
                           gds_int64 nb) {
        const double sq = mlp_add_penalty<T>(lay_, params, grad, setup_.model.alpha, nb);
        clip_gradient<T>(setup_.model.clip, setup_.model.clip_limit, grad, lay_.n_params);
        update_flat<T>(setup_.fit.optimizer, plan.opt, params, grad, s0, s1, s2, lay_.n_params, 0,
                       T(0));
        return sq;
    }

    void take_snapshot(const StateView<T>& s) {
        const gds_int64 np = lay_.n_params;
        snap_params_.assign(s.params, s.params + np);
        if (n_slots_ > 0) snap_s0_.assign(s.slot0, s.slot0 + np);
        if (n_slots_ > 1) snap_s1_.assign(s.slot1, s.slot1 + np);
        if (n_slots_ > 2) snap_s2_.assign(s.slot2, s.slot2 + np);
    }
    void restore_snapshot(StateView<T>& s) const {
        std::copy(snap_params_.begin(), snap_params_.end(), s.params);
        if (n_slots_ > 0) std::copy(snap_s0_.begin(), snap_s0_.end(), s.slot0);
        if (n_slots_ > 1) std::copy(snap_s1_.begin(), snap_s1_.end(), s.slot1);
        if (n_slots_ > 2) std::copy(snap_s2_.begin(), snap_s2_.end(), s.slot2);
    }

    const MlpSetup setup_;
    const MlpLayout lay_;
    const GemmFn<T> gemm_;
    const MlpData<T> train_, val_;
    gds_int64 bs_ = 1;
    std::unique_ptr<WorkerTeam> team_;
    std::vector<MlpWorkspace<T>> workspaces_;
    std::vector<std::vector<T>> grads_;
    std::vector<T*> grad_ptrs_;
    std::vector<int> labels_;  // targets in the epoch's order
    std::vector<T> ys_;
    std::vector<RowIndex> order_;
    MlpValidationTargets targets_;
    InterruptChecker checker_;
    int n_slots_ = 0;
    std::vector<T> snap_params_, snap_s0_, snap_s1_, snap_s2_;
    bool muon_ = false, sophia_ = false;
    std::vector<T> muon_u_, muon_scratch_;  // Muon: one matrix's update and Newton-Schulz scratch
    std::vector<std::vector<T>> sampled_;   // Sophia: each member's gradient at drawn labels
    std::vector<T*> sampled_ptrs_;
};

// Objective and gradient over the whole data set as one batch (gradient checks, tests).
template <class T>
inline double mlp_loss_grad(const MlpShape& shape, GemmFn<T> gemm, const T* params,
                            const MlpData<T>& d, double alpha, T* grad) {
    const MlpLayout lay(shape);
    MlpWorkspace<T> ws(lay, d.n_rows, d.X != nullptr);
    const MlpBatch batch{nullptr, 0, d.n_rows};
    const double data_loss = mlp_batch_loss<T>(lay, shape, gemm, params, d, batch, d.labels, d.Y,
                                               ws);
    mlp_backward_batch<T>(lay, shape.activation, gemm, params, d, batch, ws, grad);
    const double sq = mlp_add_penalty<T>(lay, params, grad, alpha, d.n_rows);
    return data_loss + 0.5 * alpha * sq / static_cast<double>(d.n_rows);
}

// Network output (n_rows x n_outputs, probabilities for classifiers) in chunks of 512 rows.
template <class T>
inline void mlp_predict(const MlpShape& shape, GemmFn<T> gemm, const T* params,
                        const MlpData<T>& d, T* out) {
    const MlpLayout lay(shape);
    const gds_int64 k = lay.n_outputs();
    const gds_int64 cap = d.n_rows < 512 ? (d.n_rows > 0 ? d.n_rows : 1) : 512;
    MlpWorkspace<T> ws(lay, cap, d.X != nullptr);
    for (gds_int64 start = 0; start < d.n_rows; start += cap) {
        const gds_int64 nb = d.n_rows - start < cap ? d.n_rows - start : cap;
        const MlpBatch batch{nullptr, start, nb};
        mlp_forward_batch<T>(lay, shape.activation, gemm, params, d, batch, ws);
        T* z = ws.act[lay.n_layers].data();
        mlp_output_activation<T>(shape.loss, z, nb, k);
        std::memcpy(out + start * k, z, sizeof(T) * static_cast<std::size_t>(nb * k));
    }
}

// ---- Entry points: overloads per value type, compiled for AVX2+FMA and baseline ---------------

#define GDS_MLP_ENTRIES(T)                                                                      \
    GDS_SIMD_CLONES static int mlp_epoch_entry(MlpCpuRunner<T>& r, StateView<T>& s,          \
                                               double& objective) {                             \
        return r.epoch(s, objective);                                                           \
    }                                                                                           \
    GDS_SIMD_CLONES static double mlp_gradient_entry(MlpCpuRunner<T>& r, const T* params,       \
                                                     const RowIndex* rows, gds_int64 count,     \
                                                     double scale, T* grad) {                   \
        return r.gradient_body(params, rows, count, scale, grad);                               \
    }                                                                                           \
    GDS_SIMD_CLONES static double mlp_score_entry(MlpCpuRunner<T>& r, const T* params) {        \
        return r.score_body(params);                                                            \
    }                                                                                           \
    GDS_SIMD_CLONES static double mlp_loss_grad_entry(const MlpShape& shape, GemmFn<T> gemm,   \
                                                      const T* params, const MlpData<T>& d,    \
                                                      double alpha, T* grad) {                  \
        return mlp_loss_grad<T>(shape, gemm, params, d, alpha, grad);                           \
    }                                                                                           \
    GDS_SIMD_CLONES static void mlp_predict_entry(const MlpShape& shape, GemmFn<T> gemm,        \
                                                  const T* params, const MlpData<T>& d,        \
                                                  T* out) {                                     \
        mlp_predict<T>(shape, gemm, params, d, out);                                            \
    }
GDS_MLP_ENTRIES(double)
GDS_MLP_ENTRIES(float)
#undef GDS_MLP_ENTRIES

template <class T> int MlpCpuRunner<T>::run_epoch(StateView<T>& s, double& objective) {
    return mlp_epoch_entry(*this, s, objective);
}

template <class T> double MlpCpuRunner<T>::score(const StateView<T>& s) {
    return mlp_score_entry(*this, s.params);
}

template <class T>
double MlpCpuRunner<T>::gradient(const T* params, const RowIndex* rows, gds_int64 count,
                                 double scale, T* grad) {
    return mlp_gradient_entry(*this, params, rows, count, scale, grad);
}

}  // namespace gds
