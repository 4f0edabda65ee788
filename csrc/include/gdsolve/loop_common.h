// gdsolve/loop_common.h - host-only pieces shared by the CPU training loops (linear_loop.h,
// mlp_loop.h): fit status codes, a small deterministic RNG for shuffling, and the throttled
// interrupt check that lets Ctrl-C stop a nogil loop. Not for NVRTC.
#pragma once
#include <chrono>
#include <cstdint>
#include <vector>

#include "config.h"

namespace gds {

// What a fit call returns; gdsolve/_base.py maps these to warnings and errors.
enum class FitStatus : int {
    MAX_ITER = 0,     // ran all epochs (ConvergenceWarning when tol was set)
    CONVERGED = 1,    // stopped by tol / n_iter_no_change
    DIVERGED = 2,     // non-finite loss or weights: model left at the last finite epoch
    INTERRUPTED = 3,  // KeyboardInterrupt: model left at the last completed epoch
};

// splitmix64: tiny, fast, and identical on every platform, so a fixed seed reproduces bit for bit.
struct Rng {
    std::uint64_t state;
    explicit Rng(std::uint64_t seed) : state(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    // Uniform integer in [0, bound) (Lemire's multiply-shift; bias < 2^-32 for our sizes).
    std::uint64_t below(std::uint64_t bound) {
        return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
    }
    double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
};

// Fisher-Yates from position i down (idx[i..) already final), at most `steps` swaps; the
// shuffle is complete once i <= 1. Returns whether work remains.
template <class Index>
inline bool fisher_yates_steps(Index* idx, std::size_t& i, Rng& rng, std::size_t steps) {
    for (; i > 1 && steps > 0; --i, --steps) {
        const std::size_t j = static_cast<std::size_t>(rng.below(i));
        const Index tmp = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = tmp;
    }
    return i > 1;
}

template <class Index> inline void shuffle_in_place(std::vector<Index>& idx, Rng& rng) {
    std::size_t i = idx.size();
    fisher_yates_steps(idx.data(), i, rng, static_cast<std::size_t>(-1));
}

// The next epoch's order, shuffled a slice at a time while the current epoch runs (in time the
// training thread would otherwise spend waiting for its team). Starting from a copy of this
// epoch's order and drawing from the same generator in the same sequence, it ends equal to
// shuffle_in_place(order, rng) at the start of the next epoch.
template <class Index> struct ShuffleAhead {
    std::vector<Index> next;
    Rng* rng = nullptr;
    std::size_t i = 0;  // Fisher-Yates position: next[i..) final, done once i <= 1

    void begin(const std::vector<Index>& order, Rng& generator) {
        next = order;
        rng = &generator;
        i = next.size();
    }
    bool active() const { return rng != nullptr; }
    // Up to `steps` swaps; false when the shuffle is complete.
    bool advance(std::size_t steps) { return fisher_yates_steps(next.data(), i, *rng, steps); }
    // Completes the shuffle and hands the order over.
    void finish_into(std::vector<Index>& order) {
        advance(static_cast<std::size_t>(-1));
        order.swap(next);
        rng = nullptr;
    }
    static bool idle_slice(void* self) { return static_cast<ShuffleAhead*>(self)->advance(64); }
};

// Callback into Python (takes the GIL, calls PyErr_CheckSignals); returns nonzero to stop.
typedef int (*InterruptCallback)(void* context);

// Calls the callback at most every `interval_s` seconds; cheap to poll often (a counter gates the
// clock read).
struct InterruptChecker {
    InterruptCallback callback = nullptr;
    void* context = nullptr;
    double interval_s = 0.1;
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    std::int64_t polls = 0;
    bool stopped = false;

    // Poll from the hot loop; `weight` says roughly how much work passed since the last poll.
    bool should_stop(std::int64_t weight = 1) {
        if (!callback || stopped) return stopped;
        polls += weight;
        if (polls < 4096) return false;
        polls = 0;
        const auto now = std::chrono::steady_clock::now();
        if (std::chrono::duration<double>(now - last).count() < interval_s) return false;
        last = now;
        stopped = callback(context) != 0;
        return stopped;
    }
};

}  // namespace gds
