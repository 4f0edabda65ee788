// gdsolve/cpu/row_gatherer.h - shuffled per-sample SGD on data beyond the caches: a helper
// thread copies the epoch's rows, in the epoch's order, into a ring of chunks that the training
// thread reads as contiguous memory. Host only. Callers: cpu/linear_executor.h.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "gdsolve/config.h"
#include "gdsolve/cpu/linear_per_sample.h"
#include "gdsolve/cpu/rows.h"
#include "gdsolve/cpu/worker_team.h"
#include "gdsolve/driver/shuffle.h"

namespace gds {
namespace linear_detail {

// Per-sample SGD is sequential: on a shuffled epoch its loads wait on memory a row at a time, and
// software prefetching overlaps them with the update chain only in part. A helper thread copies
// the epoch's rows (and their targets and weights), in the epoch's order, into a ring of chunks
// ahead of the training thread, which reads each chunk as contiguous memory through the same
// per-sample code. Same rows, same order, same arithmetic: the model equals the direct loop's bit
// for bit. Chunks are claimed in order from one counter: when the training thread finds its next
// chunk not ready (the copying is the slower side, e.g. float32 rows), it claims and fills the
// next unclaimed chunk itself instead of waiting, so the two threads share the copying.
template <class T> struct GatherChunk {
    gds_int64 count = 0;
    std::vector<T> X;                    // dense rows, count x d
    std::vector<T> data;                 // CSR rows
    std::vector<std::int32_t> indices;
    std::vector<gds_int64> indptr;
    std::vector<T> y, sw;
};

template <class T, class Rows> class RowGatherer {
  public:
    static constexpr gds_int64 kChunkRows = 512;
    static constexpr int kSlots = 8;

    // The ring and the in-chunk order are allocated once per fit; each epoch is one
    // start() ... finish() with its own helper thread.
    // with_helper false: no helper thread, the training thread fills every chunk (as when the
    // system refuses a thread; the tests use it to check that path).
    RowGatherer(const Problem<T, Rows>& pb, bool with_helper)
        : pb_(pb), slots_(kSlots), in_chunk_(kChunkRows), with_helper_(with_helper) {
        for (auto& ch : slots_) {
            if (Rows::kDense) ch.X.resize(static_cast<std::size_t>(kChunkRows * pb.d));
            else ch.indptr.resize(kChunkRows + 1);
            ch.y.resize(kChunkRows);
            if (pb.sw) ch.sw.resize(kChunkRows);
        }
        for (gds_int64 j = 0; j < kChunkRows; ++j) in_chunk_[j] = static_cast<RowIndex>(j);
    }
    RowGatherer(const RowGatherer&) = delete;
    RowGatherer& operator=(const RowGatherer&) = delete;
    ~RowGatherer() { finish(); }

    // Begins gathering the rows order[0..n) (order must stay unchanged until finish()).
    void start(const RowIndex* order, gds_int64 n) {
        order_ = order;
        n_ = n;
        n_chunks_ = (n + kChunkRows - 1) / kChunkRows;
        next_fill_.store(0, std::memory_order_relaxed);
        consumed_.store(0, std::memory_order_relaxed);
        for (auto& r : ready_) r.store(-1, std::memory_order_relaxed);
        stop_.store(false, std::memory_order_relaxed);
        if (!with_helper_) return;  // acquire() claims and fills every chunk itself
        try {
            thread_ = std::thread(&RowGatherer::produce, this);
        } catch (const std::system_error&) {
            // no helper: as above
        }
    }
    // Stops the helper (also after an early exit) and waits for it.
    void finish() {
        stop_.store(true, std::memory_order_release);
        if (thread_.joinable()) thread_.join();
    }

    gds_int64 n_chunks() const { return n_chunks_; }
    // Row order within every chunk: 0, 1, 2, ...
    const RowIndex* in_chunk_order() const { return in_chunk_.data(); }

    // The problem restricted to chunk c, its rows in order. While chunk c is not ready, fills
    // the next unclaimed chunk whose slot is free (every chunk before c has been released).
    Problem<T, Rows> acquire(gds_int64 c) {
        for (std::uint32_t spins = 0;
             ready_[c % kSlots].load(std::memory_order_acquire) != c; ++spins) {
            gds_int64 k = next_fill_.load(std::memory_order_relaxed);
            if (k < n_chunks_ && k < c + kSlots &&
                next_fill_.compare_exchange_strong(k, k + 1, std::memory_order_relaxed)) {
                fill_chunk(k);
                continue;
            }
            if (spins < (1u << 14)) GDS_SPIN_PAUSE();
            else std::this_thread::yield();
        }
        const GatherChunk<T>& ch = slots_[c % kSlots];
        Problem<T, Rows> part = pb_;
        part.X = view(ch);
        part.y = ch.y.data();
        part.sw = pb_.sw ? ch.sw.data() : nullptr;
        return part;
    }
    gds_int64 count(gds_int64 c) const { return std::min(n_, (c + 1) * kChunkRows) - c * kChunkRows; }
    void release(gds_int64 c) { consumed_.store(c + 1, std::memory_order_release); }

  private:
    DenseRows<T> view_dense(const GatherChunk<T>& ch) const {
        return DenseRows<T>{ch.X.data(), ch.count, pb_.d, pb_.d};
    }
    CsrRows<T> view_csr(const GatherChunk<T>& ch) const {
        CsrRows<T> rows{ch.data.data(), ch.indices.data(), ch.indptr.data(), ch.count, pb_.d};
        rows.prefetch_lines = pb_.X.prefetch_lines;
        rows.prefetch_index_lines = pb_.X.prefetch_index_lines;
        return rows;
    }
    Rows view(const GatherChunk<T>& ch) const {
        if constexpr (Rows::kDense) return view_dense(ch);
        else return view_csr(ch);
    }

    void fill(GatherChunk<T>& ch, gds_int64 a, gds_int64 e) {
        const gds_int64 m = e - a;
        ch.count = m;
        const RowIndex* rows = order_ + a;
        for (gds_int64 j = 0; j < m; ++j) {
            ch.y[j] = pb_.y[rows[j]];
            if (pb_.sw) ch.sw[j] = pb_.sw[rows[j]];
        }
        if constexpr (Rows::kDense) {
            const gds_int64 d = pb_.d;
            for (gds_int64 j = 0; j < m; ++j) {
                if (j + 8 < m) pb_.X.prefetch(rows[j + 8]);
                std::memcpy(ch.X.data() + j * d, pb_.X.row(rows[j]),
                            sizeof(T) * static_cast<std::size_t>(d));
            }
        } else {
            const CsrRows<T>& X = pb_.X;
            ch.indptr[0] = 0;
            for (gds_int64 j = 0; j < m; ++j) ch.indptr[j + 1] = ch.indptr[j] + X.row_nnz(rows[j]);
            const std::size_t nnz = static_cast<std::size_t>(ch.indptr[m]);
            if (ch.data.size() < nnz) {
                ch.data.resize(nnz);
                ch.indices.resize(nnz);
            }
            for (gds_int64 j = 0; j < m; ++j) {
                if (j + 8 < m) X.prefetch(rows[j + 8]);
                const gds_int64 from = X.indptr[rows[j]], len = ch.indptr[j + 1] - ch.indptr[j];
                std::memcpy(ch.data.data() + ch.indptr[j], X.data + from,
                            sizeof(T) * static_cast<std::size_t>(len));
                std::memcpy(ch.indices.data() + ch.indptr[j], X.indices + from,
                            sizeof(std::int32_t) * static_cast<std::size_t>(len));
            }
        }
    }

    void fill_chunk(gds_int64 c) {
        fill(slots_[c % kSlots], c * kChunkRows, std::min(n_, (c + 1) * kChunkRows));
        ready_[c % kSlots].store(c, std::memory_order_release);
    }

    // The helper: claims the next chunk, waits for its slot to be released, fills it.
    void produce() {
        for (;;) {
            const gds_int64 c = next_fill_.fetch_add(1, std::memory_order_relaxed);
            if (c >= n_chunks_) return;
            for (std::uint32_t spins = 0;
                 c - consumed_.load(std::memory_order_acquire) >= kSlots; ++spins) {
                if (stop_.load(std::memory_order_acquire)) return;
                if (spins < (1u << 10)) GDS_SPIN_PAUSE();
                else std::this_thread::yield();
            }
            if (stop_.load(std::memory_order_acquire)) return;
            fill_chunk(c);
        }
    }

    const Problem<T, Rows>& pb_;
    const RowIndex* order_ = nullptr;
    gds_int64 n_ = 0, n_chunks_ = 0;
    std::vector<GatherChunk<T>> slots_;
    std::vector<RowIndex> in_chunk_;
    alignas(64) std::atomic<gds_int64> next_fill_{0};  // next chunk to claim for filling
    alignas(64) std::atomic<gds_int64> ready_[kSlots];  // chunk now in each slot (-1: none)
    alignas(64) std::atomic<gds_int64> consumed_{0};
    alignas(64) std::atomic<bool> stop_{false};
    bool with_helper_;
    std::thread thread_;
};

// Bytes of row data above which a shuffled per-sample epoch gathers its rows on a helper thread
// (smaller data sits in cache, where the copy would only cost).
constexpr double kGatherMinBytes = 8.0 * (1 << 20);

}  // namespace linear_detail
}  // namespace gds
