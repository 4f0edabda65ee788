// gdsolve/cpu/interrupt.h - how a compiled loop that runs with the GIL released still sees
// Ctrl-C: a throttled poll of a callback into Python (gdsolve/_cdefs.pxd:
// check_signals_for_loop). Host only. Callers: the CPU executors (cpu/linear_executor.h,
// cpu/mlp_executor.h).
#pragma once
#include <chrono>
#include <cstdint>

namespace gds {

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
