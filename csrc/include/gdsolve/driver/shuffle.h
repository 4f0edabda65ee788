// gdsolve/driver/shuffle.h - the row order of every epoch: splitmix64 (tiny, fast, the same on
// every platform, so a seed reproduces bit for bit) drives a Fisher-Yates shuffle of the previous
// epoch's order. Host only. Callers: the CPU executors (which may shuffle the next epoch ahead in
// idle time: ShuffleAhead, same draws, same order) and _core.pyx (next_epoch_order, for the
// executors written in Python: GPU, Dask).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gdsolve/config.h"

namespace gds {

// Training-row order: 32 bits halve the shuffle's and the order's memory traffic (fits take at
// most 2^32 - 1 rows).
typedef std::uint32_t RowIndex;

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

// The next epoch's order: order[0..n) shuffled in place with the generator state `rng`
// (advanced).
template <class Index> inline void next_epoch_order(Index* order, std::size_t n, std::uint64_t& rng) {
    Rng gen(rng);
    std::size_t i = n;
    fisher_yates_steps(order, i, gen, static_cast<std::size_t>(-1));
    rng = gen.state;
}

// The next epoch's order, shuffled a slice at a time while the current epoch runs (in time the
// training thread would otherwise spend waiting for its team). Starting from a copy of this
// epoch's order and the generator state after it, it ends equal to next_epoch_order.
template <class Index> struct ShuffleAhead {
    std::vector<Index> next;
    Rng rng{0};
    std::size_t i = 0;     // Fisher-Yates position: next[i..) final, done once i <= 1
    bool running = false;
    std::uint64_t from_rng = 0;  // the generator state the shuffle started from

    void begin(const Index* order, std::size_t n, std::uint64_t rng_state) {
        next.assign(order, order + n);
        rng = Rng(rng_state);
        from_rng = rng_state;
        i = n;
        running = true;
    }
    bool active() const { return running; }
    // Up to `steps` swaps; false when the shuffle is complete.
    bool advance(std::size_t steps) { return fisher_yates_steps(next.data(), i, rng, steps); }
    // Completes the shuffle: `next` then holds the order, `rng.state` the generator after it.
    void finish() {
        advance(static_cast<std::size_t>(-1));
        running = false;
    }
    static bool idle_slice(void* self) { return static_cast<ShuffleAhead*>(self)->advance(64); }
};

}  // namespace gds
